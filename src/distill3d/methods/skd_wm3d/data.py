"""SKD-WM3D's data path: which fields each split may carry, the objects of a batch, the flip, the KITTI records.

Weak supervision sees only images, 2D boxes with their class, the camera and a depth ESTIMATE: the weak training
split is cached with :data:`WEAK_TRAIN_KEYS` only, so no 3D box, observation angle or true depth ever reaches a
weak training step (a test checks it). Full supervision (the ceiling arm) adds the 3D boxes. Validation and test
splits carry the labels the KITTI evaluation needs (:func:`distill3d.data.kitti_detection.evaluation_frames`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from distill3d.data.cache import MaterializedDataset
from distill3d.data.kitti_detection import KittiDetectionDataset
from distill3d.data.worlds.difficulty import Difficulty
from distill3d.data.worlds.road import CLASS_NAMES, KITTI_IMAGE_SIZE, RoadDataset

WEAK_TRAIN_KEYS = ("image", "depth_estimate", "K", "P2_image", "bbox", "labels")
"""What a weakly supervised training step may see (road world; KITTI adds its frames' original sizes)."""
FULL_TRAIN_KEYS = (*WEAK_TRAIN_KEYS, "boxes3d")
EVAL_KEYS = (*FULL_TRAIN_KEYS, "P2", "truncated", "occluded", "alpha", "dontcare")
KITTI_EXTRA_KEYS = ("image_size_original", "neighbour_bbox", "neighbour_boxes3d", "neighbour_labels")
RAGGED = ("bbox", "boxes3d", "labels", "truncated", "occluded", "alpha", "dontcare", "neighbour_bbox",
          "neighbour_boxes3d", "neighbour_labels")


def road_split(split: str, size: int, data_seed: int, image_size: tuple[int, int], keys: tuple[str, ...],
               cache: bool, difficulty: Difficulty = "standard") -> MaterializedDataset:
    """``size`` frames of a road-world split (a difficulty preset) with only ``keys``, rendered once (disk-cached
    when ``cache``)."""
    source = RoadDataset(split, size, data_seed, image_size, difficulty=difficulty)
    description = {"world": "road", "split": split, "size": size, "seed": data_seed, "image_size": list(image_size),
                   "keys": list(keys), "config": repr(source.config)}
    return MaterializedDataset(source, keys, description if cache else None,
                               ragged_keys=[k for k in keys if k in RAGGED])


def kitti_split(root: Path, ids: list[str], depth_root: Path, image_size: tuple[int, int], keys: tuple[str, ...],
                evaluation: bool, cache: bool) -> MaterializedDataset:
    """KITTI frames ``ids`` read once (PNG decoding and resizing) and kept with only ``keys`` (plus the frames'
    original sizes; the evaluation splits also their Van / Person_sitting neighbours)."""
    keys = (*keys, "image_size_original", *(KITTI_EXTRA_KEYS[1:] if evaluation else ()))
    source = KittiDetectionDataset(root, split_ids=ids, image_size=image_size, depth_root=depth_root)
    description = {"world": "kitti", "root": str(root), "depth_root": str(depth_root), "ids": ids,
                   "image_size": list(image_size), "keys": list(keys)}
    dataset = MaterializedDataset(source, keys, description if cache else None,
                                  ragged_keys=[k for k in keys if k in RAGGED])
    dataset.ids = ids  # frame ids, for result files
    return dataset


def _scales(original: torch.Tensor | None, image_size: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    """(N, 4) or (4,) scale (W/W₀, H/H₀, W/W₀, H/H₀) from original sizes (N, 2) (H₀, W₀), or KITTI's 375×1242."""
    if original is None:
        return like.new_tensor([image_size[1] / KITTI_IMAGE_SIZE[1], image_size[0] / KITTI_IMAGE_SIZE[0]] * 2)
    original = original.to(like)
    return torch.stack([image_size[1] / original[:, 1], image_size[0] / original[:, 0]], dim=1).repeat(1, 2)


def kitti_to_input_pixels(boxes: torch.Tensor, image_size: tuple[int, int],
                          original_size: torch.Tensor | None = None) -> torch.Tensor:
    """(N, 4) boxes in the original frame's pixels → pixels of the (H, W) input (half-pixel convention).
    ``original_size``: (N, 2) (H₀, W₀) of each box's frame; None = KITTI's 375×1242 (the road world)."""
    return (boxes + 0.5) * _scales(original_size, image_size, boxes) - 0.5


def input_to_kitti_pixels(boxes: torch.Tensor, image_size: tuple[int, int],
                          original_size: torch.Tensor | None = None) -> torch.Tensor:
    """Inverse of :func:`kitti_to_input_pixels`."""
    return (boxes + 0.5) / _scales(original_size, image_size, boxes) - 0.5


@dataclass
class Objects:
    """The objects of a batch, flattened: N rows over all images.

    batch_index (N,) long; classes (N,) long (index into the run's ``classes``); boxes2d (N, 4) input-image
    pixels; boxes3d (N, 7) ``(x, y, z, h, w, l, ry)`` bottom centre, or None (weak supervision)."""

    batch_index: torch.Tensor
    classes: torch.Tensor
    boxes2d: torch.Tensor
    boxes3d: torch.Tensor | None


def flatten_objects(batch: dict[str, Any], image_size: tuple[int, int], class_names: tuple[str, ...]) -> Objects:
    """Objects of the detected classes from a collated batch (ragged lists of per-frame rows)."""
    road_to_run = torch.full((len(CLASS_NAMES),), -1, dtype=torch.long)
    for run_index, name in enumerate(class_names):
        road_to_run[CLASS_NAMES.index(name)] = run_index
    device = batch["image"].device
    counts = torch.tensor([len(labels) for labels in batch["labels"]], device=device)
    batch_index = torch.repeat_interleave(torch.arange(len(counts), device=device), counts)
    labels = torch.cat(list(batch["labels"])).to(device)
    classes = road_to_run.to(device)[labels]
    keep = classes >= 0
    original = batch["image_size_original"].to(device)[batch_index] if "image_size_original" in batch else None
    boxes2d = kitti_to_input_pixels(torch.cat(list(batch["bbox"])).to(device).float(), image_size, original)
    boxes3d = torch.cat(list(batch["boxes3d"])).to(device).float()[keep] if "boxes3d" in batch else None
    return Objects(batch_index[keep], classes[keep], boxes2d[keep], boxes3d)


def flip_batch(batch: dict[str, Any], flip: torch.Tensor) -> dict[str, Any]:
    """Mirror the images where ``flip`` (B,) is true, with everything that depends on it: the depth estimate,
    the 2D boxes (original-frame pixels: x → W₀ − 1 − x), the camera (``P' = F·P·diag(−1, 1, 1, 1)`` with
    ``F`` the image mirror, so the mirrored world x → −x projects exactly onto the mirrored image; K alike), and
    the 3D boxes (x → −x, ry → π − ry). Returns a new dict; the input is not changed."""
    if not bool(flip.any()):
        return batch
    out = dict(batch)
    images = batch["image"]
    width = images.shape[-1]
    out["image"] = torch.where(flip[:, None, None, None], images.flip(-1), images)
    out["depth_estimate"] = torch.where(flip[:, None, None], batch["depth_estimate"].flip(-1),
                                        batch["depth_estimate"])
    mirror_image = torch.tensor([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
                                dtype=batch["P2_image"].dtype, device=images.device)
    mirror_world = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=batch["P2_image"].dtype,
                                           device=images.device))
    flipped_P = mirror_image @ batch["P2_image"] @ mirror_world
    out["P2_image"] = torch.where(flip[:, None, None], flipped_P, batch["P2_image"])
    flipped_K = mirror_image @ batch["K"] @ mirror_world[:3, :3]
    out["K"] = torch.where(flip[:, None, None], flipped_K, batch["K"])
    boxes2d, boxes3d = [], []
    for i, boxes in enumerate(batch["bbox"]):
        if flip[i]:
            right = (int(batch["image_size_original"][i, 1]) if "image_size_original" in batch
                     else KITTI_IMAGE_SIZE[1]) - 1
            boxes = torch.stack([right - boxes[:, 2], boxes[:, 1], right - boxes[:, 0], boxes[:, 3]], dim=1)
        boxes2d.append(boxes)
        if "boxes3d" in batch:
            box = batch["boxes3d"][i]
            if flip[i]:
                ry = torch.remainder(math.pi - box[:, 6] + math.pi, 2 * math.pi) - math.pi
                box = torch.cat([-box[:, :1], box[:, 1:6], ry[:, None]], dim=1)
            boxes3d.append(box)
    out["bbox"] = boxes2d
    if "boxes3d" in batch:
        out["boxes3d"] = boxes3d
    return out
