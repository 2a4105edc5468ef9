"""SKD-WM3D's data path: which fields each split may carry, the objects of a batch, the flip, the KITTI records.

Weak supervision sees only images, 2D boxes with their class, the camera and a depth ESTIMATE: the weak training
split is cached with :data:`WEAK_TRAIN_KEYS` only, so no 3D box, observation angle or true depth ever reaches a
weak training step (a test checks it). Full supervision (the ceiling arm) adds the 3D boxes. Validation and test
splits carry the labels the KITTI evaluation needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from distill3d.data.cache import MaterializedDataset
from distill3d.data.worlds.road import CLASS_NAMES, KITTI_IMAGE_SIZE, RoadDataset
from distill3d.metrics.kitti import FrameAnnotations

WEAK_TRAIN_KEYS = ("image", "depth_estimate", "K", "P2_image", "boxes2d", "labels")
"""What a weakly supervised training step may see."""
FULL_TRAIN_KEYS = (*WEAK_TRAIN_KEYS, "boxes3d")
EVAL_KEYS = (*FULL_TRAIN_KEYS, "P2", "truncation", "occlusion", "alpha", "dontcare")
RAGGED = ("boxes2d", "boxes3d", "labels", "truncation", "occlusion", "alpha", "dontcare")


def road_split(split: str, size: int, data_seed: int, image_size: tuple[int, int], keys: tuple[str, ...],
               cache: bool) -> MaterializedDataset:
    """``size`` frames of a road-world split with only ``keys``, rendered once (disk-cached when ``cache``)."""
    source = RoadDataset(split, size, data_seed, image_size)
    description = {"world": "road", "split": split, "size": size, "seed": data_seed, "image_size": list(image_size),
                   "keys": list(keys)}
    return MaterializedDataset(source, keys, description if cache else None,
                               ragged_keys=[k for k in keys if k in RAGGED])


def kitti_to_input_pixels(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """(N, 4) boxes in the original 1242×375 frame → pixels of the (H, W) input (half-pixel convention)."""
    scale = boxes.new_tensor([image_size[1] / KITTI_IMAGE_SIZE[1], image_size[0] / KITTI_IMAGE_SIZE[0]] * 2)
    return (boxes + 0.5) * scale - 0.5


def input_to_kitti_pixels(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`kitti_to_input_pixels`."""
    scale = boxes.new_tensor([image_size[1] / KITTI_IMAGE_SIZE[1], image_size[0] / KITTI_IMAGE_SIZE[0]] * 2)
    return (boxes + 0.5) / scale - 0.5


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
    boxes2d = kitti_to_input_pixels(torch.cat(list(batch["boxes2d"])).to(device).float(), image_size)
    boxes3d = torch.cat(list(batch["boxes3d"])).to(device).float()[keep] if "boxes3d" in batch else None
    return Objects(batch_index[keep], classes[keep], boxes2d[keep], boxes3d)


def flip_batch(batch: dict[str, Any], flip: torch.Tensor) -> dict[str, Any]:
    """Mirror the images where ``flip`` (B,) is true, with everything that depends on it: the depth estimate,
    the 2D boxes (original-frame pixels: x → 1241 − x), the camera (``P' = F·P·diag(−1, 1, 1, 1)`` with
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
    kitti_width = KITTI_IMAGE_SIZE[1]
    boxes2d, boxes3d = [], []
    for i, boxes in enumerate(batch["boxes2d"]):
        if flip[i]:
            boxes = torch.stack([kitti_width - 1 - boxes[:, 2], boxes[:, 1], kitti_width - 1 - boxes[:, 0],
                                 boxes[:, 3]], dim=1)
        boxes2d.append(boxes)
        if "boxes3d" in batch:
            box = batch["boxes3d"][i]
            if flip[i]:
                ry = torch.remainder(math.pi - box[:, 6] + math.pi, 2 * math.pi) - math.pi
                box = torch.cat([-box[:, :1], box[:, 1:6], ry[:, None]], dim=1)
            boxes3d.append(box)
    out["boxes2d"] = boxes2d
    if "boxes3d" in batch:
        out["boxes3d"] = boxes3d
    return out


def ground_truth_frames(batch: dict[str, Any]) -> list[FrameAnnotations]:
    """KITTI records of a collated evaluation batch (objects + DontCare rows; original-frame pixels)."""
    frames = []
    for i in range(len(batch["labels"])):
        labels = batch["labels"][i].numpy()
        boxes3d = batch["boxes3d"][i].double().numpy()
        objects = FrameAnnotations(
            name=np.asarray([CLASS_NAMES[j] for j in labels], dtype=str),
            truncated=batch["truncation"][i].double().numpy(), occluded=batch["occlusion"][i].numpy(),
            alpha=batch["alpha"][i].double().numpy(), bbox=batch["boxes2d"][i].double().numpy(),
            dimensions=boxes3d[:, 3:6], location=boxes3d[:, :3], rotation_y=boxes3d[:, 6],
            score=np.full(len(labels), np.nan))
        ignored = FrameAnnotations.dont_care(batch["dontcare"][i].numpy())
        frames.append(FrameAnnotations.concatenate([objects, ignored]))
    return frames
