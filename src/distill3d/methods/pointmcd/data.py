"""PointMCD data: the camera rig, view renders, point visibility, and the splits of both stages.

* **Rig** (:func:`build_rig`): ``views`` cameras in rings of equal elevation (``view_elevations_deg``), every
  360°/(views per ring) of azimuth, looking at the origin from distance 3 with focal length 1.3·size pixels
  (the shapes world's MVCNN-style rig, :func:`distill3d.data.worlds.shapes.multiview_rig`). Objects lie in the unit
  sphere. ``up_axis="y"`` turns y-up data (the ShapeNetPart release) so that the azimuth turns about its up axis.
* **Renders**: the shapes world ray-casts each object's surfaces (grey background, fixed light), with the
  surface depth of every pixel; real data (ModelNet40, ShapeNetPart: points with normals, no meshes here) is
  rendered as shaded point splats (:func:`splat_render`, a z-buffer of ``(2r + 1)²`` pixel squares).
* **Visibility** (:func:`rig_visibility`): M (B, N, V), point i seen by view v. Shapes world: the point projects
  into the image (:func:`distill3d.geometry.visibility.point_visibility` gives its pixel) and is not behind the
  rendered surface at that pixel by more than the tolerance (the mesh depth test METHODS.md §4.2 names as the
  standard choice). Real data: the z-buffer of the points themselves with the splat radius of the renders
  (``point_visibility``), the occlusion the point renders show.
* **Splits**: point clouds (points, normals, category, part labels where the dataset has them) are materialised
  once (:class:`~distill3d.data.cache.MaterializedDataset`, optionally cached on disk); the teacher stage serves
  the V renders (``image`` (V, 3, H, W)) and the category; the student stage serves points and labels, and in
  training the ``labelled`` flag and the cached teacher knowledge (``visibility`` (N, V), ``teacher_descriptors``
  (V, D)). No student batch holds an image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from distill3d.data.cache import MaterializedDataset
from distill3d.data.worlds.shapes import (
    CATEGORIES,
    PART_NAMES,
    ShapesPointCloudDataset,
    ShapesWorld,
    category_part_ids,
    multiview_rig,
    render_viewpoints,
)
from distill3d.geometry.camera import project_points
from distill3d.geometry.visibility import point_visibility
from distill3d.methods.pointmcd.options import Options

RIG_DISTANCE = 3.0
RIG_FOCAL_FACTOR = 1.3
BACKGROUND = 0.92
AMBIENT = 0.35
LIGHT_DIRECTION = (-0.4, -0.6, -0.7)  # camera frame, towards the light (upper left, behind the camera), as the world's
#: y-up object frame → the rig's z-up frame: (x, y, z) ↦ (x, −z, y), so +y (up) becomes +z.
Y_UP_TO_Z_UP = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
WORLD_VERSION = 2


# ---------------------------------------------------------------------------------------------------- rig
@dataclass(frozen=True)
class ViewRig:
    """V fixed cameras: K (3, 3) shared, R (V, 3, 3) and t (V, 3) object→camera (OpenCV), viewpoints (V, 3)
    (azimuth, elevation, in-plane) radians, square renders of ``image_size`` pixels."""

    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    viewpoints: np.ndarray
    image_size: int
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def views(self) -> int:
        return len(self.R)


def build_rig(views: int, elevations_deg: Sequence[float], image_size: int, up_axis: str = "z") -> ViewRig:
    """The rig of ``views`` cameras split evenly over one ring per elevation (see the module docstring)."""
    per_ring = views // len(elevations_deg)
    rings = [multiview_rig(image_size, per_ring, float(e), RIG_DISTANCE, RIG_FOCAL_FACTOR) for e in elevations_deg]
    K = torch.tensor(rings[0][0][0], dtype=torch.float32)
    R = torch.tensor(np.concatenate([ring[1] for ring in rings]), dtype=torch.float32)
    t = torch.tensor(np.concatenate([ring[2] for ring in rings]), dtype=torch.float32)
    if up_axis == "y":
        R = R @ Y_UP_TO_Z_UP
    description = {"views": views, "elevations_deg": [float(e) for e in elevations_deg], "image_size": image_size,
                   "up_axis": up_axis, "distance": RIG_DISTANCE, "focal_factor": RIG_FOCAL_FACTOR}
    return ViewRig(K, R, t, np.concatenate([ring[3] for ring in rings]), int(image_size), description)


def rig_of(options: Options) -> ViewRig:
    return build_rig(options.views, options.view_elevations_deg, options.image_size, options.up_axis)


# ------------------------------------------------------------------------------------------------ renders
def render_shape_views(world: ShapesWorld, split: str, indices: Sequence[int], rig: ViewRig
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray-cast renders of shapes-world objects from every rig camera: images (B, V, 3, S, S) in [0, 1] and the
    surface depth (B, V, S, S) (camera z, 0 where no surface)."""
    objects = [world.object(split, int(i)) for i in indices]
    batch, views, size = len(objects), rig.views, rig.image_size
    out, _ = render_viewpoints([obj for obj in objects for _ in range(views)], np.tile(rig.viewpoints, (batch, 1)),
                               RIG_DISTANCE, size, RIG_FOCAL_FACTOR)
    return out.rgb.view(batch, views, 3, size, size), out.depth.view(batch, views, size, size)


def _camera_points(points: torch.Tensor, rig: ViewRig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rig extrinsics (B, V, 3, 3), (B, V, 3), intrinsics (3, 3) in the points' dtype and device."""
    batch = points.shape[0]
    R = rig.R.to(points).expand(batch, -1, -1, -1)
    t = rig.t.to(points).expand(batch, -1, -1)
    return R, t, rig.K.to(points)


def splat_render(points: torch.Tensor, normals: torch.Tensor, rig: ViewRig, splat_radius: int = 1
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Shaded point-splat renders of clouds from every rig camera (for data without meshes).

    points, normals (B, N, 3) object frame → images (B, V, 3, S, S) grey in [0, 1] and depth (B, V, S, S) (camera
    z of the nearest splat, 0 where none). Every point covers the ``(2r + 1)²`` pixels around its projection; a
    pixel shows the nearest covering point, shaded ``ambient + (1 − ambient)·|n·l|`` (normals may be unoriented).
    """
    batch = points.shape[0]
    R, t, K = _camera_points(points, rig)
    views, size = rig.views, rig.image_size
    with torch.no_grad():
        camera = points.unsqueeze(1) @ R.transpose(-1, -2) + t.unsqueeze(-2)  # (B, V, N, 3)
        uv, depth = project_points(camera, K)
        pixel = torch.floor(uv + 0.5).long()
        offsets = torch.arange(-splat_radius, splat_radius + 1, device=points.device)
        du, dv = (grid.reshape(-1) for grid in torch.meshgrid(offsets, offsets, indexing="xy"))
        u, v = pixel[..., 0:1] + du, pixel[..., 1:2] + dv  # (B, V, N, S²)
        inside = (depth.unsqueeze(-1) > 1e-6) & (u >= 0) & (u < size) & (v >= 0) & (v < size)
        image_index = torch.arange(batch * views, device=points.device).view(batch, views, 1, 1)
        flat = (image_index * size + v.clamp(0, size - 1)) * size + u.clamp(0, size - 1)
        splat_depth = depth.unsqueeze(-1).expand_as(flat)
        zbuffer = torch.full((batch * views * size * size,), torch.inf, dtype=points.dtype, device=points.device)
        zbuffer.scatter_reduce_(0, flat[inside], splat_depth[inside], reduce="amin")
        front = inside & (splat_depth <= zbuffer[flat])
        light = torch.tensor(LIGHT_DIRECTION, dtype=points.dtype, device=points.device)
        camera_normals = normals.unsqueeze(1) @ R.transpose(-1, -2)  # (B, V, N, 3)
        lambert = (camera_normals @ (light / light.norm())).abs()
        shade = (AMBIENT + (1 - AMBIENT) * lambert.clamp(max=1)).unsqueeze(-1).expand_as(flat)
        image = torch.full_like(zbuffer, BACKGROUND)
        image[flat[front]] = shade[front]
        depth_map = torch.where(torch.isfinite(zbuffer), zbuffer, torch.zeros(()))
    images = image.view(batch, views, 1, size, size).expand(-1, -1, 3, -1, -1).contiguous()
    return images, depth_map.view(batch, views, size, size)


def rig_visibility(points: torch.Tensor, rig: ViewRig, tolerance: float, surface_depth: torch.Tensor | None = None,
                   splat_radius: int = 1) -> torch.Tensor:
    """Visibility matrices M (B, N, V) bool of clouds (B, N, 3) (object frame) in the rig's views.

    With ``surface_depth`` (B, V, S, S) (rendered surfaces, 0 where none): a point is visible iff it projects
    into the image and its depth is at most the surface depth at its pixel + ``tolerance`` (or the pixel shows no
    surface: a silhouette point). Without it: the points' own z-buffer with splats of ``splat_radius`` pixels
    (:func:`~distill3d.geometry.visibility.point_visibility`, absolute tolerance).
    """
    R, t, K = _camera_points(points, rig)
    size = (rig.image_size, rig.image_size)
    if surface_depth is None:
        visible, _ = point_visibility(points, R, t, K, size, tolerance, "absolute", splat_radius)
        return visible.transpose(1, 2)
    _, pixels = point_visibility(points, R, t, K, size, tolerance, "absolute", 0)  # (B, V, N, 2), −1 outside
    with torch.no_grad():
        depth = (points.unsqueeze(1) @ R.transpose(-1, -2) + t.unsqueeze(-2))[..., 2]  # (B, V, N)
        inside = pixels[..., 0] >= 0
        flat = pixels[..., 1].clamp(min=0) * rig.image_size + pixels[..., 0].clamp(min=0)
        surface = surface_depth.to(depth).flatten(2).gather(2, flat)  # (B, V, N)
        visible = inside & ((surface <= 0) | (depth <= surface + tolerance))
    return visible.transpose(1, 2)


# ---------------------------------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class DataSpec:
    """Label spaces of a dataset: classes (classification targets, ``category``), parts (global part ids,
    ``part_labels``; 0 without part labels) and {category id: its part ids} for the part-segmentation metrics."""

    num_classes: int
    num_parts: int
    category_to_parts: dict[int, tuple[int, ...]]
    category_names: tuple[str, ...]


def shapes_categories(options: Options) -> tuple[str, ...]:
    return CATEGORIES if options.categories == "all" else tuple(options.categories)


def data_spec(options: Options) -> DataSpec:
    """The label spaces of ``options.dataset`` (real data: read from its list files)."""
    if options.dataset == "shapes":
        table = {CATEGORIES.index(c): tuple(category_part_ids(c)) for c in shapes_categories(options)}
        return DataSpec(len(CATEGORIES), len(PART_NAMES), table, CATEGORIES)
    if options.dataset == "modelnet40":
        from distill3d.data.modelnet40 import ModelNet40Dataset

        dataset = ModelNet40Dataset(options.data_root, "test", options.num_points)
        return DataSpec(dataset.num_classes, 0, {}, dataset.category_names)
    from distill3d.data.shapenetpart import ShapeNetPartDataset

    dataset = ShapeNetPartDataset(options.data_root, "test", options.num_points)
    parts = {int(k): tuple(v) for k, v in dataset.category_to_parts.items()}
    return DataSpec(len(dataset.category_names), 1 + max(max(p) for p in parts.values()), parts,
                    dataset.category_names)


def point_keys(options: Options) -> tuple[str, ...]:
    """The fields of a materialised point split (part labels where the dataset has them)."""
    keys = ("points", "normals", "category")
    return keys if options.dataset == "modelnet40" else (*keys, "part_labels")


def point_source(options: Options, split: str, data_seed: int) -> tuple[Dataset, dict[str, Any]]:
    """The point-cloud split (not materialised) and the description that determines its samples."""
    o = options
    if o.dataset == "shapes":
        size = {"train": o.train_size, "val": o.val_size, "test": o.test_size}[split]
        categories = list(shapes_categories(o))
        source: Dataset = ShapesPointCloudDataset(split, size, categories, o.num_points, data_seed,
                                                  difficulty=o.difficulty)
        return source, {"world": "pointmcd-shapes-points", "split": split, "size": size, "categories": categories,
                        "n_points": o.num_points, "seed": data_seed, "difficulty": o.difficulty,
                        "world_version": WORLD_VERSION}
    root = str(Path(o.data_root).resolve())
    if o.dataset == "modelnet40":
        from distill3d.data.modelnet40 import ModelNet40Dataset

        source = ModelNet40Dataset(o.data_root, split, o.num_points, val_fraction=o.validation_fraction,
                                   seed=data_seed)
        extra = {"validation_fraction": o.validation_fraction}
    else:
        from distill3d.data.shapenetpart import ShapeNetPartDataset

        source = ShapeNetPartDataset(o.data_root, split, o.num_points, seed=data_seed)
        extra = {}
    return source, {"world": f"pointmcd-{o.dataset}-points", "root": root, "split": split,
                    "n_points": o.num_points, "seed": data_seed, **extra}


def materialize(source: Dataset, keys: Sequence[str], description: dict[str, Any], options: Options,
                transform: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None
                ) -> MaterializedDataset:
    return MaterializedDataset(source, keys, description if options.cache else None, options.cache_dir,
                               num_workers=options.generate_workers, batch_size=64, progress=False,
                               transform=transform)


class _BatchServed(Dataset):
    """A dataset that builds whole batches (``batch(indices)`` → dict of stacked tensors) and serves samples from
    them: the DataLoader's ``__getitems__`` gets one batch, ``__getitem__`` a batch of one."""

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        batch = self.batch(indices)
        return [{k: v[i] for k, v in batch.items()} for i in range(len(indices))]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])[0]


class ShapesViewsDataset(_BatchServed):
    """Shapes-world objects with their rig renders: the point-cloud fields of
    :class:`~distill3d.data.worlds.shapes.ShapesPointCloudDataset` plus image (V, 3, S, S) and surface depth
    (V, S, S). ``batch(indices)`` renders a whole batch in one call."""

    def __init__(self, options: Options, split: str, data_seed: int, rig: ViewRig) -> None:
        self.points, _ = point_source(options, split, data_seed)
        assert isinstance(self.points, ShapesPointCloudDataset)
        self.world = ShapesWorld(rig.image_size, options.num_points, list(shapes_categories(options)), data_seed,
                                 difficulty=options.difficulty)
        self.split, self.rig = split, rig

    def __len__(self) -> int:
        return len(self.points)

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        out = self.points.batch(indices)
        out["image"], out["depth"] = render_shape_views(self.world, self.split, indices, self.rig)
        return out


def splat_transform(rig: ViewRig, splat_radius: int) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """Per-batch transform of a materialised real-data point split: adds the point-splat renders as ``image``."""

    def add_renders(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, _ = splat_render(batch["points"], batch["normals"], rig, splat_radius)
        return {**batch, "image": images}

    return add_renders


class ServedSplit(_BatchServed):
    """A materialised point split serving only ``keys`` (+ ``index``), plus per-sample ``extras`` (tensors whose
    first dimension is the split's length, served as float32 when stored as float16). ``transform`` (batch dict →
    batch dict, e.g. :func:`splat_transform`) runs on the stacked fields of the base before ``keys`` are picked."""

    def __init__(self, base: MaterializedDataset, keys: Sequence[str], extras: dict[str, torch.Tensor] | None = None,
                 transform: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None) -> None:
        self.base, self.keys, self.extras, self.transform = base, tuple(keys), dict(extras or {}), transform
        for name, value in self.extras.items():
            if len(value) != len(base):
                raise ValueError(f"{name} has {len(value)} rows for a split of {len(base)} samples")

    def __len__(self) -> int:
        return len(self.base)

    def batch(self, indices: Sequence[int] | torch.Tensor) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        source = self.base.batch(index)
        if self.transform is not None:
            source = self.transform(source)
        out = {key: source[key] for key in self.keys}
        for name, value in self.extras.items():
            rows = value[index]
            out[name] = rows.float() if rows.dtype == torch.float16 else rows
        out["index"] = index
        return out


def labelled_mask(category: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Which training shapes carry labels: in every class, ``max(1, round(fraction·n_class))`` shapes drawn at
    random (a pure function of the labels, fraction and seed). category (N,) int64 → (N,) bool."""
    if fraction >= 1:
        return torch.ones(len(category), dtype=torch.bool)
    generator = torch.Generator().manual_seed(int(seed))
    order = torch.argsort(category.double() + torch.rand(len(category), generator=generator, dtype=torch.float64))
    counts = torch.bincount(category)
    starts = counts.cumsum(0) - counts
    rank = torch.empty_like(category)
    rank[order] = torch.arange(len(category)) - starts[category[order]]
    quota = torch.clamp(torch.round(counts.double() * fraction).long(), min=1)
    return rank < quota[category]

