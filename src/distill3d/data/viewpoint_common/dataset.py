"""The real viewpoint datasets' samples: crops that keep the intrinsics in sync, and the dataset base class.

Camera: the toolbox projects ``u = M·f·x/(−z) + px``, ``v = −M·f·y/(−z) + py`` (after the in-plane turn) with
M = viewport, 1-based pixels; in our OpenCV convention (0-based pixel centres) that is
``K = [[M·f, 0, px − 1], [0, M·f, py − 1], [0, 0, 1]]``, ``R = diag(1, −1, −1)·R_pascal`` and
``t = (0, 0, distance)`` for CAD coordinates. Samples express t and distance for the **normalised** point
cloud ``p = (X − c)/s`` instead: ``t = (R·c + (0, 0, d))/s``, ``distance = d/s`` (a uniform scale of the camera
frame leaves the projection unchanged), so ``project(R·points + t, K)`` overlays the image crop.

Crop (PoseFromShape ``dataset.py`` at test time): the box ``int(bbox)`` is cut out of the image as the PIL box
``(left, upper, right, lower)`` (pixels ``[left, right) × [upper, lower)``; parts outside the image are
black), resized so its longer side is ``image_size`` (aspect kept, bilinear) and zero-padded to a square with
``ceil`` of the slack on the left/top. K follows every step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from distill3d.data.mesh_io import sample_mesh_surface
from distill3d.data.viewpoint_common.annotations import (
    DEFAULT_DISTANCE,
    DEFAULT_FOCAL,
    DEFAULT_THETA_DEG,
    DEFAULT_VIEWPORT,
    ObjectTable,
    viewpoint_degrees_to_radians,
)
from distill3d.data.viewpoint_common.cad import CadLibrary, CadShape
from distill3d.errors import DataFormatError
from distill3d.geometry.camera import crop_and_resize_intrinsics
from distill3d.geometry.rotations import viewpoint_to_opencv_rotation

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}

#: A crop box may exceed its image (PoseFromShape pads with black) by at most this factor of the image side.
_MAX_CROP_FACTOR = 4

# ----------------------------------------------------------------------------------------------------------
# Crop / resize / pad with intrinsics
# ----------------------------------------------------------------------------------------------------------


def crop_box(bbox: np.ndarray) -> tuple[int, int, int, int]:
    """PoseFromShape's crop box: the stored ``x1 y1 x2 y2`` truncated to integers (``astype(int)``)."""
    left, upper, right, lower = (int(v) for v in np.asarray(bbox, np.float64))
    return left, upper, right, lower


def crop_resize_pad(
    image: Image.Image, box: tuple[int, int, int, int], size: int, K: np.ndarray
) -> tuple[torch.Tensor, np.ndarray]:
    """Crop ``box`` (PIL ``left, upper, right, lower``), resize its longer side to ``size`` and zero-pad.

    Returns the image (3, size, size) float32 in [0, 1] and the matching K (3, 3) float64 (from the full
    image's K, pixel centres at integers).
    """
    left, upper, right, lower = box
    width, height = right - left, lower - upper
    scale = size / max(width, height)
    new_width = min(size, max(1, round(width * scale)))
    new_height = min(size, max(1, round(height * scale)))
    pad_left, pad_top = math.ceil((size - new_width) / 2), math.ceil((size - new_height) / 2)
    crop = image.crop(box).resize((new_width, new_height), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (size, size))
    canvas.paste(crop, (pad_left, pad_top))
    pixels = torch.from_numpy(np.asarray(canvas, dtype=np.uint8).copy()).permute(2, 0, 1)
    K_crop = crop_and_resize_intrinsics(
        torch.from_numpy(np.asarray(K, np.float64))[None],
        torch.tensor([box], dtype=torch.float64),
        (new_height, new_width),
    )[0].numpy()
    K_crop[0, 2] += pad_left
    K_crop[1, 2] += pad_top
    return pixels.float().div_(255.0), K_crop


def annotation_intrinsics(focal: float, viewport: float, px: float, py: float, bbox: np.ndarray) -> np.ndarray:
    """Full-image K (3, 3) from the toolbox camera (1-based principal point → 0-based; defaults for NaNs)."""
    focal = DEFAULT_FOCAL if math.isnan(focal) else focal
    viewport = DEFAULT_VIEWPORT if math.isnan(viewport) else viewport
    px = (bbox[0] + bbox[2]) / 2 if math.isnan(px) else px
    py = (bbox[1] + bbox[3]) / 2 if math.isnan(py) else py
    return np.array([[focal * viewport, 0.0, px - 1.0], [0.0, focal * viewport, py - 1.0], [0.0, 0.0, 1.0]])


def opencv_rotation(viewpoint_rad: np.ndarray) -> np.ndarray:
    """OpenCV object→camera rotation (3, 3) of a Pascal3D+ viewpoint (3,) radians: diag(1, −1, −1)·R_pascal."""
    angles = torch.from_numpy(np.asarray(viewpoint_rad, np.float64))
    return viewpoint_to_opencv_rotation(angles[0], angles[1], angles[2]).numpy()


# ----------------------------------------------------------------------------------------------------------
# The dataset
# ----------------------------------------------------------------------------------------------------------


def resolve_categories(
    categories: Sequence[str] | str, known: Sequence[str], named: dict[str, Sequence[str]], dataset: str
) -> tuple[str, ...]:
    """A named set or a list of class names → a tuple in the dataset's class order; unknown names raise."""
    if isinstance(categories, str):
        if categories in named:
            return tuple(named[categories])
        categories = (categories,)
    unknown = [c for c in categories if c not in known]
    if unknown:
        raise ValueError(f"unknown {dataset} categories {unknown}; use class names or one of {sorted(named)}")
    chosen = set(categories)
    return tuple(c for c in known if c in chosen)


class RealViewpointDataset(Dataset):
    """Base of :class:`Pascal3DDataset` and :class:`ObjectNet3DDataset`: index in memory, images loaded lazily.

    Subclasses set ``table`` (one row per kept object), ``image_paths`` (N,) and the class metadata, then
    call :meth:`_finish`.
    """

    dataset_id: ClassVar[int] = 0
    class_names: ClassVar[tuple[str, ...]] = ()
    symmetry_orders: ClassVar[dict[str, int]] = {}

    root: Path
    split: str
    categories: tuple[str, ...]
    image_size: int
    n_points: int
    seed: int
    with_points: bool
    table: ObjectTable
    cad: CadLibrary
    dropped: dict[str, int]

    def _finish(self, table: ObjectTable, image_paths: np.ndarray) -> None:
        self.table = table
        self.image_paths = image_paths
        class_index = {name: i for i, name in enumerate(self.class_names)}
        #: (N,) int64 category of every sample (index into ``class_names``), for per-class metrics.
        self.category_ids = np.array([class_index[c] for c in table.class_name], np.int64)
        self.viewpoints = viewpoint_degrees_to_radians(
            table["azimuth_deg"], table["elevation_deg"], np.nan_to_num(table["theta_deg"], nan=DEFAULT_THETA_DEG)
        ).astype(np.float32)

    def __len__(self) -> int:
        return len(self.table)

    def _filter(self, table: ObjectTable, reasons: dict[str, np.ndarray]) -> ObjectTable:
        """Drop the rows flagged by each named reason (in order), counting them in ``self.dropped``."""
        keep = np.ones(len(table), bool)
        for reason, flagged in reasons.items():
            newly = keep & flagged
            if newly.any():
                self.dropped[reason] = self.dropped.get(reason, 0) + int(newly.sum())
            keep &= ~flagged
        return table.select(keep)

    def common_reasons(self, table: ObjectTable) -> dict[str, np.ndarray]:
        """Filters shared by both datasets: class, pose present, difficult, elevation 90°, usable box and CAD."""
        boxes = np.nan_to_num(table.bbox, nan=0.0).astype(np.int64)
        return {
            "other_category": ~np.isin(table.class_name, self.categories),
            "no_viewpoint": table["has_viewpoint"] == 0,
            "difficult": table["difficult"] != 0,
            "elevation_90": np.abs(table["elevation_deg"] - 90.0) < 1e-9,
            "empty_box": (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]),
            "no_cad": table["cad_index"] < 1,
        }

    def _load_image(self, index: int) -> Image.Image:
        path = Path(self.image_paths[index])
        if not path.exists():
            for suffix in (".jpg", ".JPEG", ".jpeg", ".png", ".JPG"):
                if path.with_suffix(suffix).exists():
                    path = path.with_suffix(suffix)
                    break
            else:
                raise DataFormatError(path, "image file not found")
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:  # PIL's error types
            raise DataFormatError(path, f"cannot read image: {error}") from None

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """One object: image (3, S, S) float32 [0, 1]; viewpoint (3,) float32 radians; category, symmetry_order,
        cad_index () int64; distance () and t (3,) in normalised-shape units; K, R (3, 3) float32; points (N, 3)
        float32 in the unit sphere (and normals (N, 3) for mesh sources) unless ``with_points=False``."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} samples")
        index = index % len(self)
        row = {k: v[index] for k, v in self.table.values.items()}
        category = self.table.class_name[index]
        bbox = self.table.bbox[index]
        viewpoint = self.viewpoints[index].astype(np.float64)
        K_full = annotation_intrinsics(row["focal"], row["viewport"], row["px"], row["py"], bbox)
        full_image = self._load_image(index)
        box = crop_box(bbox)
        if max(box[2] - box[0], box[3] - box[1]) > _MAX_CROP_FACTOR * max(full_image.size):
            raise DataFormatError(self.image_paths[index], f"object box {list(box)} is far larger than the image "
                                                           f"{full_image.size} (corrupt annotation?)")
        image, K = crop_resize_pad(full_image, box, self.image_size, K_full)

        shape = self.cad.shape(category, int(row["cad_index"]))
        distance = DEFAULT_DISTANCE if math.isnan(row["distance"]) else float(row["distance"])
        R = opencv_rotation(viewpoint)
        t = (R @ shape.center + np.array([0.0, 0.0, distance])) / shape.scale
        sample = {
            "image": image,
            "viewpoint": torch.from_numpy(self.viewpoints[index].copy()),
            "category": torch.tensor(self.category_ids[index], dtype=torch.int64),
            "symmetry_order": torch.tensor(self.symmetry_orders.get(category, 1), dtype=torch.int64),
            "cad_index": torch.tensor(int(row["cad_index"]), dtype=torch.int64),
            "distance": torch.tensor(distance / shape.scale, dtype=torch.float32),
            "K": torch.from_numpy(K).float(),
            "R": torch.from_numpy(R).float(),
            "t": torch.from_numpy(t).float(),
        }
        if self.with_points:
            sample.update(self.sample_points(index, shape))
        return sample

    def sample_points(self, index: int, shape: CadShape) -> dict[str, torch.Tensor]:
        """points (N, 3) (and normals for meshes) of ``shape``, a pure function of (seed, split, index)."""
        rng = np.random.default_rng([self.dataset_id, self.seed, SPLIT_IDS[self.split], int(index)])
        if shape.is_mesh:
            try:
                points, normals = sample_mesh_surface(shape.vertices, shape.faces, self.n_points, rng)
            except ValueError as error:
                raise DataFormatError(shape.path, str(error)) from None
            return {"points": torch.from_numpy(points), "normals": torch.from_numpy(normals)}
        cloud = shape.points
        chosen = rng.choice(len(cloud), self.n_points, replace=len(cloud) < self.n_points)
        return {"points": torch.from_numpy(np.ascontiguousarray(cloud[chosen]))}
