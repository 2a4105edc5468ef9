"""The KITTI 3D object benchmark from a local folder, as the same sample dicts as the road world's RoadDataset.

Layout read (nothing is downloaded)::

    root/training/image_2/<id>.png    left colour image (8-bit RGB; sizes vary: 1242×375, 1241×376, 1224×370, ...)
    root/training/calib/<id>.txt      calibration (P0..P3, R0_rect, Tr_velo_to_cam)
    root/training/label_2/<id>.txt    labels (only with ``with_labels=True``)
    depth_root/<id>.png               optional depth maps: 16-bit PNG, value / 256 = metres, 0 = invalid

Pixel frames (the road world's conventions, :mod:`distill3d.data.worlds.road`):

* ``image`` is the original image resized to ``image_size`` (H, W) with an anti-aliased bilinear filter
  (PIL-style, half-pixel centres); ``K`` and ``P2_image`` belong to that resized image
  (:func:`distill3d.geometry.camera.resize_intrinsics`: ``u' = (u + ½)·s_x − ½``), ``P2`` to the original image.
* ``bbox``, ``dontcare`` and the neighbour boxes are in the ORIGINAL pixels of that frame, as in the label
  file, so KITTI's difficulty filters (box height ≥ 40 / 25 px) mean what they mean in the devkit. KITTI's
  original sizes differ by a few pixels between drives, so each sample carries ``image_size_original`` (2,)
  ``(H, W)``: a box maps into the resized image as ``(x + ½)·W/W_orig − ½`` (likewise y). For a 1242×375 frame
  this is exactly the road world's :func:`~distill3d.data.worlds.road.kitti_to_image_pixels`.

Classes (:data:`distill3d.data.worlds.road.CLASS_NAMES` = Car, Pedestrian, Cyclist): their rows become
``labels`` / ``bbox`` / ``boxes3d`` / ... . The official evaluation ignores (does not miss) a Van when
evaluating Car and a Person_sitting when evaluating Pedestrian, matched in 2D, BEV or 3D, so these rows are kept
apart as ``neighbour_*`` (:data:`NEIGHBOUR_CLASS_NAMES`) with their 3D boxes; :func:`evaluation_frames` puts
objects, neighbours and DontCare regions back into the records the evaluator takes. Truck, Tram, Misc and any
other type play no part in the evaluation of the three classes and are dropped (they are not made DontCare).
Every labelled object of the three classes is kept, however small or occluded (the evaluation's difficulty
filter ignores the hard ones; a training recipe may filter further).

Depth (``depth_estimate``, only with ``depth_root``): the PNG must have the image's original size; it is
reduced to ``image_size`` by a min-pool over the VALID pixels of each output cell (the cells of
``adaptive_max_pool2d``), so invalid pixels never mix with valid ones and a sparse map (projected LiDAR) keeps
its points; the nearest surface wins where several meet in one cell. Cells without a valid pixel, and depths
beyond ``max_depth``, get ``max_depth`` = 80 m: the road world's estimator writes the same value into sky /
invalid pixels, and the SKD-WM3D task ignores depth ≥ 80 m. True depth (``depth``) is never provided.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from distill3d.data.cache import collate_ragged
from distill3d.data.kitti_io import read_calib_file, read_label_file, read_split_file, write_label_file
from distill3d.data.worlds.road import CLASS_NAMES
from distill3d.errors import DataFormatError
from distill3d.geometry.camera import resize_intrinsics
from distill3d.metrics.kitti import DONTCARE, FrameAnnotations

__all__ = [
    "NEIGHBOUR_CLASS_NAMES",
    "KittiDetectionDataset",
    "evaluation_frames",
    "read_depth_png",
    "resize_depth_min",
    "write_kitti_results",
]

PathLike = str | os.PathLike

NEIGHBOUR_CLASS_NAMES = ("Van", "Person_sitting")
"""Neighbour class id → KITTI type: GT the evaluation ignores (not misses) for Car / Pedestrian."""
DEPTH_PNG_SCALE = 256.0
"""A depth PNG stores ``round(metres · 256)`` as uint16 (KITTI depth benchmark convention); 0 = invalid."""


# ----------------------------------------------------------------------------------------------------------
# Image and depth files
# ----------------------------------------------------------------------------------------------------------


def _read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 pixels of an image file."""
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise DataFormatError(path, "image not found") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:  # PIL's error types
        raise DataFormatError(path, f"unreadable image ({error})") from None


def read_depth_png(path: PathLike) -> torch.Tensor:
    """A 16-bit depth PNG → (H, W) float32 metres (value / 256), 0 where invalid.

    Raises:
        DataFormatError: missing or unreadable file, or not a single-channel 16-bit image.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode not in ("I;16", "I;16B", "I"):
                raise DataFormatError(path, f"depth PNG must be single-channel 16-bit, got PIL mode {mode!r}")
            values = np.asarray(image)
    except FileNotFoundError:
        raise DataFormatError(path, "depth map not found") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataFormatError(path, f"unreadable depth PNG ({error})") from None
    if mode == "I" and (values.min() < 0 or values.max() > np.iinfo(np.uint16).max):
        raise DataFormatError(path, "depth PNG values outside the 16-bit range")
    return torch.from_numpy(values.astype(np.float32) / DEPTH_PNG_SCALE)


def resize_depth_min(depth: torch.Tensor, size: tuple[int, int], invalid_value: float = 80.0,
                     max_depth: float = 80.0) -> torch.Tensor:
    """Reduce a depth map (..., H, W) (metres, ≤ 0 = invalid) to ``size`` (h, w) by a min-pool over valid pixels.

    Output cell ``(i, j)`` covers source rows ``[⌊i·H/h⌋, ⌈(i+1)·H/h⌉)`` and columns likewise (the cells of
    ``adaptive_max_pool2d``) and holds the smallest valid depth among them: no average of a surface and an
    invalid pixel (or of two surfaces) invents a depth. Cells without a valid pixel, and depths above
    ``max_depth``, become ``invalid_value``. Works on any device / float dtype.
    """
    lead, (height, width) = depth.shape[:-2], depth.shape[-2:]
    flat = depth.reshape(-1, 1, height, width)
    negated = torch.where(flat > 0, -flat, torch.full_like(flat, -torch.inf))
    nearest = -F.adaptive_max_pool2d(negated, size)
    filled = torch.where(torch.isfinite(nearest) & (nearest <= max_depth), nearest,
                         torch.full_like(nearest, invalid_value))
    return filled.reshape(*lead, *size)


# ----------------------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------------------


def _check_frame_ids(ids: Sequence[str]) -> list[str]:
    ids = [str(frame_id) for frame_id in ids]
    bad = next((i for i in ids if not i or Path(i).name != i or i in (".", "..")), None)
    if bad is not None:
        raise ValueError(f"frame id {bad!r} is not a file stem (e.g. '000042')")
    return ids


class KittiDetectionDataset(Dataset):
    """KITTI object frames from a local folder as RoadDataset-compatible samples (module docstring).

    ``KittiDetectionDataset(root, split_file=root / "ImageSets/val.txt", image_size=(96, 320),
    depth_root=None, with_labels=True)``; a sample is a dict:

    * image (3, H, W) float32 in [0, 1]; depth_estimate (H, W) float32 metres, ``max_depth`` where invalid
      (only with ``depth_root``); K (3, 3) float32 of the resized image; P2_image (3, 4) float32 label frame →
      resized image; P2 (3, 4) float32 label frame → original pixels; image_size_original (2,) int64 (H, W);
    * with labels: bbox (N, 4) float32 original pixels; boxes3d (N, 7) float32 ``(x, y, z, h, w, l, ry)``
      bottom centre, rectified camera-0 frame, metres; labels (N,) int64 into ``CLASS_NAMES``; truncated (N,)
      float32; occluded (N,) int64; alpha (N,) float32; dontcare (M, 4) float32 original pixels;
      neighbour_bbox (K, 4), neighbour_boxes3d (K, 7) float32 and neighbour_labels (K,) int64 into
      :data:`NEIGHBOUR_CLASS_NAMES` (Van / Person_sitting, for the evaluation only);
    * index () int64 (position in the dataset; ``dataset.ids[index]`` is the frame id).

    Args:
        root: KITTI object folder (holding ``training/`` or ``testing/``).
        split_ids: frame ids ("000042"), in order.
        split_file: a split file (``ImageSets/val.txt``) instead of ``split_ids``. Neither: every image of
            ``image_2``, sorted.
        image_size: (H, W) of the network input.
        depth_root: folder of ``<id>.png`` 16-bit depth maps at the original image size, or None.
        with_labels: read ``label_2`` (False for the testing subset or for images only).
        subset: ``"training"`` or ``"testing"``.
        max_depth: depth (m) written where the depth map is invalid or farther (the road world's sky value).

    Raises:
        DataFormatError: a missing folder or file (checked for every frame up front), or a malformed file when a
            sample is read; the message names the file.
    """

    ragged_keys = ("bbox", "boxes3d", "labels", "truncated", "occluded", "alpha", "dontcare",
                   "neighbour_bbox", "neighbour_boxes3d", "neighbour_labels")

    def __init__(
        self,
        root: PathLike,
        split_ids: Sequence[str] | None = None,
        split_file: PathLike | None = None,
        image_size: tuple[int, int] = (96, 320),
        depth_root: PathLike | None = None,
        with_labels: bool = True,
        subset: str = "training",
        max_depth: float = 80.0,
    ) -> None:
        if split_ids is not None and split_file is not None:
            raise ValueError("pass split_ids or split_file, not both")
        if subset not in ("training", "testing"):
            raise ValueError(f"subset must be 'training' or 'testing', got {subset!r}")
        if len(image_size) != 2 or min(image_size) <= 0:
            raise ValueError(f"image_size must be (H, W) with positive sides, got {image_size}")
        self.root = Path(root)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.with_labels, self.max_depth = bool(with_labels), float(max_depth)
        base = self.root / subset
        self.image_dir, self.calib_dir, self.label_dir = base / "image_2", base / "calib", base / "label_2"
        self.depth_dir = None if depth_root is None else Path(depth_root)
        folders = [self.image_dir, self.calib_dir, *([self.label_dir] if with_labels else []),
                   *([self.depth_dir] if self.depth_dir is not None else [])]
        for folder in folders:
            if not folder.is_dir():
                raise DataFormatError(folder, "directory not found")
        if split_file is not None:
            self.ids = read_split_file(split_file)
        elif split_ids is not None:
            self.ids = _check_frame_ids(split_ids)
        else:
            self.ids = sorted(path.stem for path in self.image_dir.glob("*.png"))
        if not self.ids:
            raise DataFormatError(split_file or self.image_dir, "no frames")
        for frame_id in self.ids:
            for path in self._paths(frame_id).values():
                if not path.is_file():
                    raise DataFormatError(path, "file not found")

    def _paths(self, frame_id: str) -> dict[str, Path]:
        paths = {"image": self.image_dir / f"{frame_id}.png", "calib": self.calib_dir / f"{frame_id}.txt"}
        if self.with_labels:
            paths["label"] = self.label_dir / f"{frame_id}.txt"
        if self.depth_dir is not None:
            paths["depth"] = self.depth_dir / f"{frame_id}.png"
        return paths

    def __len__(self) -> int:
        return len(self.ids)

    def annotations(self, index: int) -> FrameAnnotations:
        """Every row of frame ``index``'s label file (all types, DontCare included), as read."""
        return read_label_file(self._paths(self.ids[index])["label"])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        indices = [int(i) for i in indices]
        if any(i < 0 or i >= len(self) for i in indices):
            raise IndexError(f"index out of range for a dataset of {len(self)} frames")
        return [self._sample(index) for index in indices]

    def _sample(self, index: int) -> dict[str, torch.Tensor]:
        paths = self._paths(self.ids[index])
        pixels = torch.from_numpy(_read_rgb(paths["image"])).permute(2, 0, 1)
        original = tuple(pixels.shape[-2:])  # (H, W)
        image = F.interpolate(pixels[None].float() / 255.0, size=self.image_size, mode="bilinear",
                              align_corners=False, antialias=True)[0].clamp_(0.0, 1.0)
        P2 = torch.from_numpy(read_calib_file(paths["calib"]).P2)  # float64
        K = resize_intrinsics(P2[:, :3], self.image_size[1] / original[1], self.image_size[0] / original[0])
        # P2 = K2·[I | t2] → the resized image sees K·[I | t2] (the road world's image_projection)
        P2_image = torch.cat([K, K @ torch.linalg.solve(P2[:, :3], P2[:, 3:])], dim=1)
        sample = {"image": image, "K": K.float(), "P2_image": P2_image.float(), "P2": P2.float(),
                  "image_size_original": torch.tensor(original, dtype=torch.int64)}
        if self.depth_dir is not None:
            depth = read_depth_png(paths["depth"])
            if tuple(depth.shape) != original:
                raise DataFormatError(paths["depth"], f"depth map is {tuple(depth.shape)} (H, W), "
                                                      f"its image {original}: they must match")
            sample["depth_estimate"] = resize_depth_min(depth, self.image_size, self.max_depth, self.max_depth)
        if self.with_labels:
            sample.update(_label_tensors(read_label_file(paths["label"], with_score=False)))
        sample["index"] = torch.tensor(index, dtype=torch.int64)
        return sample

    @staticmethod
    def collate(samples: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Stack fixed-size entries (B, ...); per-object entries become lists of B tensors."""
        return collate_ragged(samples, KittiDetectionDataset.ragged_keys)


def _label_tensors(objects: FrameAnnotations) -> dict[str, torch.Tensor]:
    """The per-object entries of a sample from a label file's records (module docstring: classes)."""
    def class_ids(names: tuple[str, ...]) -> np.ndarray:
        return np.array([names.index(n) if n in names else -1 for n in objects.name], dtype=np.int64)

    def floats(values: np.ndarray, columns: int | None = None) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
        return tensor if columns is None else tensor.reshape(-1, columns)

    labels, neighbours = class_ids(CLASS_NAMES), class_ids(NEIGHBOUR_CLASS_NAMES)
    kept, other = objects[labels >= 0], objects[neighbours >= 0]
    return {
        "bbox": floats(kept.bbox, 4),
        "boxes3d": floats(kept.boxes3d(), 7),
        "labels": torch.from_numpy(labels[labels >= 0]),
        "truncated": floats(kept.truncated),
        "occluded": torch.from_numpy(kept.occluded.astype(np.int64)),
        "alpha": floats(kept.alpha),
        "dontcare": floats(objects.bbox[objects.name == DONTCARE], 4),
        "neighbour_bbox": floats(other.bbox, 4),
        "neighbour_boxes3d": floats(other.boxes3d(), 7),
        "neighbour_labels": torch.from_numpy(neighbours[neighbours >= 0]),
    }


# ----------------------------------------------------------------------------------------------------------
# Evaluation records and result files
# ----------------------------------------------------------------------------------------------------------


def evaluation_frames(batch: dict[str, Any]) -> list[FrameAnnotations]:
    """Ground-truth records of a collated batch for :func:`distill3d.metrics.kitti.evaluate_kitti`.

    Per frame: the objects of ``CLASS_NAMES`` (``labels``, ``bbox``, ``boxes3d``, ``truncated``,
    ``occluded``, ``alpha``), then the neighbours (Van / Person_sitting; truncation and occlusion −1 and alpha
    from the box, values the evaluation never reads for them), then the DontCare regions; every 2D box in
    original-frame pixels. A batch without the ``neighbour_*`` keys (e.g. the road world) gets none.
    """
    frames = []
    for i in range(len(batch["labels"])):
        labels = batch["labels"][i].cpu().numpy()
        boxes3d = batch["boxes3d"][i].cpu().double().numpy()
        parts = [FrameAnnotations(
            name=np.asarray([CLASS_NAMES[j] for j in labels], dtype=str),
            truncated=batch["truncated"][i].cpu().double().numpy(), occluded=batch["occluded"][i].cpu().numpy(),
            alpha=batch["alpha"][i].cpu().double().numpy(), bbox=batch["bbox"][i].cpu().double().numpy(),
            dimensions=boxes3d[:, 3:6], location=boxes3d[:, :3], rotation_y=boxes3d[:, 6],
            score=np.full(len(labels), np.nan))]
        if "neighbour_labels" in batch:
            names = np.asarray([NEIGHBOUR_CLASS_NAMES[j] for j in batch["neighbour_labels"][i].cpu().numpy()],
                               dtype=str)
            neighbours = FrameAnnotations.from_boxes3d(names, batch["neighbour_boxes3d"][i].cpu().double().numpy(),
                                                       batch["neighbour_bbox"][i].cpu().double().numpy())
            parts.append(neighbours)
        parts.append(FrameAnnotations.dont_care(batch["dontcare"][i].cpu().numpy()))
        frames.append(FrameAnnotations.concatenate(parts))
    return frames


def write_kitti_results(frames: Sequence[FrameAnnotations], ids: Sequence[str], out_dir: PathLike) -> list[Path]:
    """Write one KITTI result file (16 columns, with score) per frame: ``out_dir/<id>.txt``, atomically.

    A frame without detections gets an empty file (the devkit reads it as "no detections"). Returns the paths.

    Raises:
        ValueError: ``frames`` and ``ids`` differ in length, an id is not a file stem or repeats, or a frame
            has a NaN score.
    """
    ids = _check_frame_ids(ids)
    if len(frames) != len(ids):
        raise ValueError(f"got {len(frames)} frames for {len(ids)} ids")
    if len(set(ids)) != len(ids):
        raise ValueError("frame ids repeat")
    out_dir = Path(out_dir)
    paths = []
    for frame, frame_id in zip(frames, ids, strict=True):
        path = out_dir / f"{frame_id}.txt"
        write_label_file(path, frame, with_score=True)
        paths.append(path)
    return paths
