"""Cameras, backgrounds, distractors, difficulty presets and :class:`ShapesWorld` (see the package docstring)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from distill3d.data.worlds.difficulty import Difficulty, check_difficulty
from distill3d.data.worlds.render import (
    PrimitiveKind,
    Primitives,
    RenderOutput,
    SceneBatch,
    render,
    rotation_from_z,
    sample_surface,
)
from distill3d.data.worlds.shapes.categories import (
    _STREAM_APPEARANCE,
    _STREAM_OBJECT,
    _STREAM_POINTS,
    _STREAM_VIEW,
    ShapeObject,
    _category_names,
    _random_color,
    _sample_rng,
    build_object,
)
from distill3d.geometry.rotations import canonical_azimuth, viewpoint_to_opencv_rotation

# ----------------------------------------------------------------------------------------------
# Cameras, backgrounds, rendering.
# ----------------------------------------------------------------------------------------------



def viewpoint_extrinsics(
    azimuth: np.ndarray | float,
    elevation: np.ndarray | float,
    inplane: np.ndarray | float,
    distance: np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV world(object)→camera extrinsics of Pascal3D+ viewpoints (radians, broadcast (B,)).

    Returns R (B, 3, 3) = diag(1, −1, −1)·viewpoint_to_matrix(a, e, θ) and t (B, 3) = (0, 0, d).
    """
    a, e, th, d = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(x, np.float64)) for x in (azimuth, elevation, inplane, distance))
    )
    R = viewpoint_to_opencv_rotation(torch.from_numpy(a.copy()), torch.from_numpy(e.copy()),
                                     torch.from_numpy(th.copy())).numpy()
    t = np.zeros((len(d), 3))
    t[:, 2] = d
    return R, t


def intrinsics(focal: np.ndarray | float, cx: np.ndarray | float, cy: np.ndarray | float) -> np.ndarray:
    """Pinhole K (B, 3, 3) from focal lengths and principal points in pixels (broadcast (B,))."""
    f, cx, cy = np.broadcast_arrays(*(np.atleast_1d(np.asarray(x, np.float64)) for x in (focal, cx, cy)))
    K = np.zeros((len(f), 3, 3))
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = f, f, cx, cy, 1.0
    return K


def multiview_rig(
    size: int = 64, views: int = 12, elevation_deg: float = 30.0, distance: float = 3.0, focal_factor: float = 1.3
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixed multi-view rig (MVCNN-style): ``views`` cameras every 360°/views of azimuth at one elevation.

    Returns K (V, 3, 3), R (V, 3, 3), t (V, 3) (OpenCV, object→camera) and the viewpoints (V, 3)
    radians; view k has azimuth k·360°/views, in-plane rotation 0, centred principal point.
    """
    azimuth = np.arange(views) * 2 * np.pi / views
    elevation = np.full(views, math.radians(elevation_deg))
    R, t = viewpoint_extrinsics(azimuth, elevation, 0.0, distance)
    K = np.repeat(intrinsics(focal_factor * size, (size - 1) / 2, (size - 1) / 2), views, axis=0)
    return K, R, t, np.stack([azimuth, elevation, np.zeros(views)], 1)


def procedural_backgrounds(rngs: Sequence[np.random.Generator], height: int, width: int, contrast: float = 1.0,
                           kinds: Sequence[int] = (0, 1, 2, 3)) -> np.ndarray:
    """One random background per generator (B, 3, H, W) float32 in [0, 1].

    Kinds: 0 linear gradient, 1 radial gradient, 2 smooth value noise with grain, 3 soft stripes/checkers (drawn
    uniformly from ``kinds``). ``contrast`` < 1 pulls every background towards its mean colour.
    """
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = u / max(width - 1, 1), v / max(height - 1, 1)
    out = np.empty((len(rngs), 3, height, width), np.float32)
    for i, rng in enumerate(rngs):
        c0, c1 = _random_color(rng, (0.0, 0.7), (0.15, 0.95)), _random_color(rng, (0.0, 0.7), (0.15, 0.95))
        kind = int(kinds[int(rng.integers(len(kinds)))])
        if kind == 0:
            angle = rng.random() * 2 * np.pi
            w = (u - 0.5) * math.cos(angle) + (v - 0.5) * math.sin(angle) + 0.5
        elif kind == 1:
            w = np.hypot(u - rng.random(), v - rng.random()) * rng.uniform(0.8, 1.6)
        elif kind == 2:
            cells = int(rng.integers(3, 9))
            grid = rng.random((cells + 1, cells + 1))
            gu, gv = u * cells, v * cells
            iu, iv = np.minimum(gu.astype(int), cells - 1), np.minimum(gv.astype(int), cells - 1)
            fu, fv = gu - iu, gv - iv
            fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
            top = grid[iv, iu] * (1 - fu) + grid[iv, iu + 1] * fu
            bottom = grid[iv + 1, iu] * (1 - fu) + grid[iv + 1, iu + 1] * fu
            w = top * (1 - fv) + bottom * fv
        else:
            angle, freq = rng.random() * np.pi, rng.uniform(2, 8)
            w = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (u * math.cos(angle) + v * math.sin(angle)))
            if rng.random() < 0.5:
                w = w * (0.5 + 0.5 * np.sin(2 * np.pi * freq * (-u * math.sin(angle) + v * math.cos(angle))))
        w = np.clip(w, 0.0, 1.0)
        image = c0[:, None, None] * (1 - w) + c1[:, None, None] * w
        image += rng.normal(0.0, rng.uniform(0.0, 0.04), (1, height, width))
        if contrast != 1.0:
            mean = image.mean(axis=(1, 2), keepdims=True)
            image = mean + contrast * (image - mean)
        out[i] = np.clip(image, 0.0, 1.0)
    return out


def _distractors(
    rng: np.random.Generator, R: np.ndarray, t: np.ndarray, K: np.ndarray, size: int, depth: float,
    max_count: int = 3,
) -> Primitives:
    """0…max_count random primitives behind the object (camera depth > object depth + 1.2), instance ids 1..,
    part -1."""
    count = int(rng.integers(0, max_count + 1))
    if count == 0:
        return Primitives.empty()
    z = depth + rng.uniform(1.2, 4.0, count)
    pix = rng.uniform(-0.1, 1.1, (count, 2)) * size
    cam = np.stack([(pix[:, 0] - K[0, 2]) / K[0, 0] * z, (pix[:, 1] - K[1, 2]) / K[1, 1] * z, z], 1)
    world = (cam - t) @ R
    kind = rng.choice(
        [PrimitiveKind.SPHERE, PrimitiveKind.BOX, PrimitiveKind.CYLINDER, PrimitiveKind.CONE, PrimitiveKind.ELLIPSOID],
        count,
    )
    dims = rng.uniform(0.2, 0.6, (count, 4)) * (z / 3.0)[:, None]
    dims[:, 3] = np.where(kind == PrimitiveKind.BOX, dims[:, 3] * rng.random(count) * 0.5, dims[:, 3])
    dims[:, 3] = np.minimum(dims[:, 3], dims[:, :3].min(axis=1) * 0.9)
    return Primitives(
        kind=kind.astype(np.int32),
        rotation=rotation_from_z(rng.standard_normal((count, 3))),
        center=world,
        size=dims,
        albedo=np.stack([_random_color(rng) for _ in range(count)]),
        part=np.full(count, -1, np.int64),
        instance=np.arange(1, count + 1, dtype=np.int64),
    )


@dataclass
class _View:
    """One render request: scene, camera, light direction (camera frame) and ambient level."""

    scene: Primitives
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    light: np.ndarray
    ambient: float


_DEFAULT_LIGHT = np.array([-0.4, -0.6, -0.7])  # camera frame: from the upper left, behind the camera


def render_viewpoints(
    objects: Sequence[ShapeObject],
    viewpoints: np.ndarray | torch.Tensor,
    distance: np.ndarray | float = 3.0,
    image_size: int = 64,
    focal_factor: float = 1.1,
    principal_offset: np.ndarray | None = None,
    background: np.ndarray | torch.Tensor | None = None,
    samples_per_side: int = 1,
) -> tuple[RenderOutput, dict[str, np.ndarray]]:
    """Render each object at a chosen Pascal3D+ viewpoint.

    viewpoints (B, 3) radians (azimuth, elevation, inplane); distance scalar or (B,); focal length
    ``focal_factor · image_size`` px; principal_offset (B, 2) pixels from the image centre (default 0);
    background (B, 3, H, W) (default light grey).  Returns the :class:`RenderOutput` and the cameras
    {K (B, 3, 3), R (B, 3, 3), t (B, 3)}.
    """
    viewpoints = np.asarray(viewpoints, np.float64).reshape(-1, 3)
    batch = len(viewpoints)
    if len(objects) != batch:
        raise ValueError(f"got {len(objects)} objects for {batch} viewpoints")
    offset = np.zeros((batch, 2)) if principal_offset is None else np.asarray(principal_offset, np.float64)
    center = (image_size - 1) / 2
    K = intrinsics(focal_factor * image_size, center + offset[:, 0], center + offset[:, 1])
    R, t = viewpoint_extrinsics(viewpoints[:, 0], viewpoints[:, 1], viewpoints[:, 2], distance)
    if background is None:
        background = np.full((batch, 3, image_size, image_size), 0.92, np.float32)
    out = render(
        SceneBatch.stack([o.primitives for o in objects]),
        K,
        R,
        t,
        image_size,
        image_size,
        background=background,
        light_direction=_DEFAULT_LIGHT,
        samples_per_side=samples_per_side,
    )
    return out, {"K": K, "R": R, "t": t}


@dataclass(frozen=True)
class ShapesPreset:
    """What a :data:`~distill3d.data.worlds.difficulty.Difficulty` preset sets in the shapes world.

    background_contrast: 1 = the procedural backgrounds as drawn, < 1 pulled towards their mean colour;
    background_kinds: which procedural kinds are drawn (0 linear, 1 radial gradient, 2 value noise, 3 stripes /
    checkers), ``()`` = flat light grey; max_distractors: 0…n random primitives behind the object;
    distance_range: camera distance (object radius ≤ 1, so smaller = larger in the frame); principal_jitter:
    object offset from the image centre as a fraction of the size; random_light: random light direction and
    ambient level (else a fixed light from the upper left); readable_fronts: see :func:`build_object`.
    """

    background_contrast: float
    background_kinds: tuple[int, ...]
    max_distractors: int
    distance_range: tuple[float, float]
    principal_jitter: float
    random_light: bool
    readable_fronts: bool


#: ``hard`` is the original world; ``standard`` (benchmarks, demos) keeps random lighting and a third of the
#: background contrast without stripes, at most one distractor, objects larger and more centred, readable
#: fronts; ``easy`` has a flat background, no distractors and a fixed light.
SHAPES_PRESETS: dict[str, ShapesPreset] = {
    "easy": ShapesPreset(1.0, (), 0, (2.4, 2.8), 0.03, False, True),
    "standard": ShapesPreset(0.35, (0, 1, 2), 1, (2.4, 3.0), 0.05, True, True),
    "hard": ShapesPreset(1.0, (0, 1, 2, 3), 3, (2.4, 3.6), 0.08, True, False),
}


class ShapesWorld:
    """Generator of shape-world samples; a sample is a pure function of (split, index, seed, difficulty).

    image_size: square render size in pixels; n_points: point-cloud size; categories: names or
    "all" / "seen" / "unseen"; samples_per_side: anti-aliasing rays per pixel side (1 = none);
    difficulty: ``easy | standard | hard`` (:data:`SHAPES_PRESETS`).
    Viewpoint distribution: azimuth U[0, 2π), elevation U[−10°, 45°], in-plane N(0, 6°) clipped to ±20°,
    distance U(preset range) (hard: [2.4, 3.6]), focal 1.1·size px, principal point offset U(±jitter) of the
    size from the centre (hard: 8 %).

    Labels of symmetric objects: an object with n-fold symmetry about its up axis looks the same from azimuths a
    and a + 2π/n, and an object of revolution (bottle, cup, round table) from every azimuth, so its label is the
    canonical azimuth (:func:`~distill3d.geometry.rotations.canonical_azimuth`: ``a mod 2π/n``, 0 for revolution)
    and it is rendered from there (the image is the same). The metrics then count these objects like any
    other: a prediction is right when it gives the canonical viewpoint.
    """

    elevation_range = (math.radians(-10.0), math.radians(45.0))
    inplane_std, inplane_limit = math.radians(6.0), math.radians(20.0)
    focal_factor = 1.1

    def __init__(
        self,
        image_size: int = 64,
        n_points: int = 1024,
        categories: Sequence[str] | str = "all",
        seed: int = 0,
        samples_per_side: int = 1,
        difficulty: Difficulty = "standard",
    ) -> None:
        self.image_size, self.n_points, self.seed = int(image_size), int(n_points), int(seed)
        self.categories = _category_names(categories)
        self.samples_per_side = int(samples_per_side)
        self.difficulty = check_difficulty(difficulty)
        self.preset = SHAPES_PRESETS[difficulty]
        self.distance_range, self.principal_jitter = self.preset.distance_range, self.preset.principal_jitter

    def category_of(self, index: int) -> str:
        """Categories cycle with the index, so every category is equally frequent."""
        return self.categories[index % len(self.categories)]

    def object(self, split: str, index: int) -> ShapeObject:
        """The object instance of sample ``index``."""
        return build_object(self.category_of(index), _sample_rng(self.seed, split, index, _STREAM_OBJECT),
                            self.preset.readable_fronts)

    def point_cloud(self, split: str, index: int, obj: ShapeObject | None = None) -> dict[str, torch.Tensor]:
        """Canonical point cloud of sample ``index``: points, normals (N, 3) float32, part_labels (N,) int64."""
        obj = self.object(split, index) if obj is None else obj
        points, normals, parts = sample_surface(
            obj.primitives, self.n_points, _sample_rng(self.seed, split, index, _STREAM_POINTS)
        )
        return {"points": points, "normals": normals, "part_labels": parts}

    def cameras(self, split: str, indices: Sequence[int],
                symmetry_orders: Sequence[int] | None = None) -> dict[str, np.ndarray]:
        """Cameras of the samples: viewpoint (B, 3) radians, distance (B,), K, R (B, 3, 3), t (B, 3).

        With the objects' ``symmetry_orders`` the azimuths are canonical (see the class docstring)."""
        params = np.empty((len(indices), 6))
        for row, index in enumerate(indices):
            rng = _sample_rng(self.seed, split, index, _STREAM_VIEW)
            azimuth = rng.random() * 2 * np.pi
            elevation = rng.uniform(*self.elevation_range)
            inplane = np.clip(rng.normal(0.0, self.inplane_std), -self.inplane_limit, self.inplane_limit)
            distance = rng.uniform(*self.distance_range)
            offset = rng.uniform(-1, 1, 2) * self.principal_jitter * self.image_size
            params[row] = (azimuth, elevation, inplane, distance, *offset)
        if symmetry_orders is not None:
            params[:, 0] = canonical_azimuth(torch.from_numpy(params[:, 0]),
                                             torch.as_tensor(np.asarray(symmetry_orders))).numpy()
        center = (self.image_size - 1) / 2
        K = intrinsics(self.focal_factor * self.image_size, center + params[:, 4], center + params[:, 5])
        R, t = viewpoint_extrinsics(params[:, 0], params[:, 1], params[:, 2], params[:, 3])
        return {"viewpoint": params[:, :3], "distance": params[:, 3], "K": K, "R": R, "t": t}

    def _render(self, views: list[_View], backgrounds: np.ndarray) -> RenderOutput:
        size = self.image_size
        return render(
            SceneBatch.stack([v.scene for v in views]),
            np.stack([v.K for v in views]),
            np.stack([v.R for v in views]),
            np.stack([v.t for v in views]),
            size,
            size,
            background=backgrounds,
            light_direction=np.stack([v.light for v in views]),
            ambient=np.array([v.ambient for v in views]),
            samples_per_side=self.samples_per_side,
        )

    def viewpoint_batch(self, split: str, indices: Sequence[int], with_points: bool = True) -> dict[str, torch.Tensor]:
        """Viewpoint-estimation samples rendered in one call; every value is stacked over the batch.

        Keys: image (B, 3, H, W) float32 [0, 1]; viewpoint (B, 3) float32 radians (azimuth, elevation,
        inplane); category (B,) int64; symmetry_order (B,) int64; distance (B,); K, R (B, 3, 3);
        t (B, 3); depth (B, H, W) metres (0 off the object); mask (B, H, W) bool (the object,
        distractors excluded); part_map (B, H, W) int64 global part ids (−1 elsewhere); and with
        ``with_points`` points, normals (B, N, 3) canonical, part_labels (B, N).
        """
        objects = [self.object(split, index) for index in indices]
        cams = self.cameras(split, indices, [o.symmetry_order for o in objects])
        preset, size = self.preset, self.image_size
        views, rngs, clouds = [], [], []
        for row, (index, obj) in enumerate(zip(indices, objects, strict=True)):
            K, R, t = cams["K"][row], cams["R"][row], cams["t"][row]
            rng = _sample_rng(self.seed, split, index, _STREAM_APPEARANCE)
            if preset.random_light:
                light = np.array([rng.uniform(-0.7, 0.7), rng.uniform(-1.0, -0.2), rng.uniform(-1.0, -0.3)])
                ambient = None  # drawn after the distractors (the hard preset's stream order)
            else:
                light, ambient = _DEFAULT_LIGHT, 0.35
            distractors = _distractors(rng, R, t, K, size, cams["distance"][row], preset.max_distractors)
            ambient = rng.uniform(0.25, 0.5) if ambient is None else ambient
            views.append(_View(Primitives.concatenate([obj.primitives, distractors]), K, R, t, light, ambient))
            rngs.append(rng)
            if with_points:
                clouds.append(self.point_cloud(split, index, obj))
        if preset.background_kinds:
            backgrounds = procedural_backgrounds(rngs, size, size, preset.background_contrast,
                                                 preset.background_kinds)
        else:
            backgrounds = np.full((len(views), 3, size, size), 0.92, np.float32)
        out = self._render(views, backgrounds)
        on_object = out.instance == 0
        batch = {
            "image": out.rgb,
            "viewpoint": torch.tensor(cams["viewpoint"], dtype=torch.float32),
            "category": torch.tensor([o.category_id for o in objects], dtype=torch.int64),
            "symmetry_order": torch.tensor([o.symmetry_order for o in objects], dtype=torch.int64),
            "distance": torch.tensor(cams["distance"], dtype=torch.float32),
            "K": torch.tensor(cams["K"], dtype=torch.float32),
            "R": torch.tensor(cams["R"], dtype=torch.float32),
            "t": torch.tensor(cams["t"], dtype=torch.float32),
            "depth": torch.where(on_object, out.depth, torch.zeros(())),
            "mask": on_object,
            "part_map": torch.where(on_object, out.part, torch.full((), -1)),
        }
        if with_points:
            for key in ("points", "normals", "part_labels"):
                batch[key] = torch.stack([c[key] for c in clouds])
        return batch

    def multiview_batch(self, split: str, indices: Sequence[int], views: int = 12) -> dict[str, torch.Tensor]:
        """The fixed rig's renders of each object: views (B, V, 3, H, W), view_depth (B, V, H, W), view_mask.

        Plain light-grey background, light from the camera's upper left, no distractors (as in
        multi-view shape classification); the rig's cameras are returned as view_K, view_R, view_t (V, …).
        """
        K, R, t, _ = multiview_rig(self.image_size, views)
        objects = [self.object(split, i) for i in indices]
        render_views = [
            _View(o.primitives, K[v], R[v], t[v], np.array([-0.4, -0.6, -0.7]), 0.35)
            for o in objects
            for v in range(views)
        ]
        size = self.image_size
        out = self._render(render_views, np.full((len(render_views), 3, size, size), 0.92, np.float32))
        shape = (len(objects), views)
        return {
            "views": out.rgb.reshape(*shape, 3, size, size),
            "view_depth": out.depth.reshape(*shape, size, size),
            "view_mask": out.mask.reshape(*shape, size, size),
            "view_K": torch.tensor(K, dtype=torch.float32),
            "view_R": torch.tensor(R, dtype=torch.float32),
            "view_t": torch.tensor(t, dtype=torch.float32),
        }

    def point_cloud_batch(
        self, split: str, indices: Sequence[int], with_views: bool = False
    ) -> dict[str, torch.Tensor]:
        """Classification / part-segmentation samples: points, normals (B, N, 3), part_labels (B, N),
        category (B,), symmetry_order (B,), and with ``with_views`` the multi-view renders (see
        :meth:`multiview_batch`)."""
        objects = [self.object(split, i) for i in indices]
        clouds = [self.point_cloud(split, i, o) for i, o in zip(indices, objects, strict=True)]
        batch = {key: torch.stack([c[key] for c in clouds]) for key in ("points", "normals", "part_labels")}
        batch["category"] = torch.tensor([o.category_id for o in objects], dtype=torch.int64)
        batch["symmetry_order"] = torch.tensor([o.symmetry_order for o in objects], dtype=torch.int64)
        if with_views:
            batch.update(self.multiview_batch(split, indices))
        return batch
