"""SKD-WM3D's data path: which fields each split may carry, the objects of a batch, the flip and the crop, the KITTI
records.

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


def crop_batch(batch: dict[str, Any], scale: torch.Tensor, origin: torch.Tensor,
               min_visible: float = 0.5) -> dict[str, Any]:
    """Zoom each image into a window and resize it back to the input size, with everything that depends on it.

    Image b's window has the input's aspect ratio, ``scale[b]`` (0, 1] of its size and its top-left corner at
    ``origin[b]`` = (x₀, y₀) input pixels (pixel EDGES: the window spans ``[x₀, x₀ + s·W] × [y₀, y₀ + s·H]``; keep it
    inside the image). A pixel centre u of the input lands at ``u' = (u + ½ − x₀)/s − ½``: the camera becomes
    ``A·P`` and ``A·K`` with that affine map ``A``, so every 3D point, box and depth value stays where it was and
    projects onto the zoomed image (3D boxes and depth values are unchanged). The image is resampled bilinearly,
    the depth estimate by nearest pixel (no blending across depth edges); the 2D boxes are mapped and clipped to
    the image (the KITTI label convention), and an object keeping less than ``min_visible`` of its box's area is
    dropped with its rows (the evaluation-only ``dontcare`` and ``neighbour_*`` regions are left as they are: this is
    a training augmentation).
    Returns a new dict; the input is not changed.

    Args:
        batch: a collated batch (``image`` (B, 3, H, W), ``depth_estimate`` (B, H, W), ``K``, ``P2_image``, ragged
            ``bbox`` in original-frame pixels and per-object rows).
        scale: (B,) window size as a share of the input; 1 leaves an image unchanged (with origin 0).
        origin: (B, 2) window corner in input pixels.
        min_visible: share of a mapped 2D box that must stay inside the zoomed image.
    """
    images = batch["image"]
    count, _, height, width = images.shape
    scale = scale.to(images.dtype)
    origin = origin.to(images.dtype)
    theta = torch.zeros(count, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, 0, 2] = scale - 1 + 2 * origin[:, 0] / width
    theta[:, 1, 2] = scale - 1 + 2 * origin[:, 1] / height
    grid = torch.nn.functional.affine_grid(theta, [count, 1, height, width], align_corners=False)
    out = dict(batch)
    out["image"] = torch.nn.functional.grid_sample(images, grid.to(images.dtype), mode="bilinear",
                                                   align_corners=False)
    depth = batch["depth_estimate"]
    out["depth_estimate"] = torch.nn.functional.grid_sample(depth[:, None], grid.to(depth.dtype), mode="nearest",
                                                            align_corners=False)[:, 0]
    camera = batch["P2_image"]
    affine = torch.zeros(count, 3, 3, dtype=camera.dtype, device=camera.device)
    affine[:, 0, 0] = affine[:, 1, 1] = 1 / scale.to(camera.dtype)
    affine[:, :2, 2] = (0.5 - origin.to(camera.dtype)) / scale.to(camera.dtype)[:, None] - 0.5
    affine[:, 2, 2] = 1
    out["P2_image"] = affine @ camera
    out["K"] = affine.to(batch["K"].dtype) @ batch["K"]
    per_object = [key for key in ("labels", "boxes3d", "truncated", "occluded", "alpha") if key in batch]
    rows: dict[str, list[torch.Tensor]] = {key: [] for key in (*per_object, "bbox")}
    for b in range(count):
        original = batch["image_size_original"][b : b + 1] if "image_size_original" in batch else None
        boxes = batch["bbox"][b]
        size = original.expand(len(boxes), 2) if original is not None else None
        inside = kitti_to_input_pixels(boxes.float(), (height, width), size)
        corner = origin[b].repeat(2).to(inside)
        mapped = (inside + 0.5 - corner) / float(scale[b]) - 0.5
        limits = inside.new_tensor([width - 1, height - 1] * 2)
        clipped = torch.minimum(mapped.clamp(min=0), limits)
        area = (mapped[:, 2:] - mapped[:, :2]).clamp(min=0).prod(1)
        kept_area = (clipped[:, 2:] - clipped[:, :2]).clamp(min=0).prod(1)
        keep = kept_area >= min_visible * area.clamp(min=1e-6)
        for key in per_object:
            rows[key].append(batch[key][b][keep])
        rows["bbox"].append(input_to_kitti_pixels(clipped[keep], (height, width),
                                                  None if size is None else size[keep]).to(boxes.dtype))
    out.update(rows)
    return out
