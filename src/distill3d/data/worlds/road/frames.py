"""Rendering road scenes into frames with KITTI labels (boxes, truncation, occlusion, DontCare; see the package
docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from distill3d.data.worlds.render import Primitives, SceneBatch, render
from distill3d.data.worlds.road.scene import (
    _KITTI_T2,
    CLASS_NAMES,
    KITTI_IMAGE_SIZE,
    KITTI_P2,
    SPLITS,
    WORLD_ID,
    RoadConfig,
    RoadScene,
    image_intrinsics,
    image_to_kitti_pixels,
    object_primitives,
    sample_road_scene,
)
from distill3d.geometry.boxes3d import project_box3d_to_image, rotation_y_to_alpha
from distill3d.metrics.kitti import FrameAnnotations

# ----------------------------------------------------------------------------------------------------------
# Rendering and labels
# ----------------------------------------------------------------------------------------------------------


@dataclass
class RoadFrame:
    """One rendered frame.

    image (3, H, W) float32 in [0, 1]; depth (H, W) float32 camera-2 z in metres, 0 = no surface (sky);
    instance (H, W) int64 (objects 0..N-1 in scene order, :data:`GROUND_INSTANCE` for the ground, 1001+ other
    scenery, -1 sky); K (3, 3) intrinsics of the rendered image; P2 (3, 4) original-frame projection;
    objects: the kept objects' KITTI record (:class:`~distill3d.metrics.kitti.FrameAnnotations`: class name,
    truncation, occlusion, alpha, 2D box in the original frame, dimensions, bottom-centre location, ry; no score);
    labels (N,) int64 class ids (:data:`CLASS_NAMES`) and visible_fraction (N,) of the same objects; dontcare
    (M, 4) DontCare regions (original frame); all_* arrays cover every object of the scene (before
    dropping hidden ones): all_visible_fraction (N_all,), all_occlusion (N_all,), all_truncation (N_all,),
    all_boxes2d (N_all, 4) (NaN where the object has no pixel in the image).
    """

    image: torch.Tensor
    depth: torch.Tensor
    instance: torch.Tensor
    K: np.ndarray
    P2: np.ndarray
    objects: FrameAnnotations
    labels: np.ndarray
    visible_fraction: np.ndarray
    dontcare: np.ndarray
    all_visible_fraction: np.ndarray
    all_occlusion: np.ndarray
    all_truncation: np.ndarray
    all_boxes2d: np.ndarray

    def kitti_record(self) -> FrameAnnotations:
        """The objects plus DontCare rows, as written to ``label_2``."""
        return FrameAnnotations.concatenate([self.objects, FrameAnnotations.dont_care(self.dontcare)])


def _sky(scenes: Sequence[RoadScene], image_size: tuple[int, int], K: np.ndarray) -> np.ndarray:
    """Sky gradients (B, 3, H, W): horizon colour at the horizon row, top colour at the top row."""
    height, width = image_size
    horizon = K[1, 2]
    rows = np.arange(height, dtype=np.float64)
    weight = np.clip((horizon - rows) / max(horizon, 1.0), 0.0, 1.0) ** 0.7  # (H,)
    top = np.stack([s.sky_top for s in scenes])[:, :, None]
    bottom = np.stack([s.sky_horizon for s in scenes])[:, :, None]
    column = bottom * (1.0 - weight) + top * weight  # (B, 3, H)
    return np.ascontiguousarray(np.broadcast_to(column[..., None], (len(scenes), 3, height, width)), np.float32)


def _occlusion_level(fraction: np.ndarray, thresholds: tuple[float, float, float]) -> np.ndarray:
    full, partly, largely = thresholds
    return np.where(fraction >= full, 0, np.where(fraction >= partly, 1, np.where(fraction > largely, 2, 3)))


def _truncation(boxes3d: np.ndarray) -> np.ndarray:
    """1 − clipped / unclipped area of the projected 3D boxes' enclosing rectangles (original frame)."""
    if len(boxes3d) == 0:
        return np.zeros(0)
    _, projected = project_box3d_to_image(boxes3d, KITTI_P2)
    height, width = KITTI_IMAGE_SIZE
    limits = np.array([width - 1, height - 1, width - 1, height - 1], np.float64)
    clipped = np.clip(projected, 0.0, limits)
    area = (projected[:, 2] - projected[:, 0]) * (projected[:, 3] - projected[:, 1])
    inside = np.clip(clipped[:, 2] - clipped[:, 0], 0, None) * np.clip(clipped[:, 3] - clipped[:, 1], 0, None)
    return np.clip(1.0 - inside / np.maximum(area, 1e-9), 0.0, 1.0)


def _mask_boxes(masks: torch.Tensor, image_size: tuple[int, int]) -> np.ndarray:
    """Tight boxes (M, 4) of boolean masks (M, H, W) as pixel *edges* in the original frame (NaN if empty)."""
    rows, cols = masks.any(dim=2).numpy(), masks.any(dim=1).numpy()
    height, width = rows.shape[1], cols.shape[1]
    empty = ~rows.any(axis=1)
    top, bottom = rows.argmax(axis=1), height - 1 - rows[:, ::-1].argmax(axis=1)
    left_col, right_col = cols.argmax(axis=1), width - 1 - cols[:, ::-1].argmax(axis=1)
    low = image_to_kitti_pixels(np.stack([left_col - 0.5, top - 0.5], 1), image_size)
    high = image_to_kitti_pixels(np.stack([right_col + 0.5, bottom + 0.5], 1), image_size)
    boxes = np.concatenate([low, high], axis=1)
    limits = np.array([KITTI_IMAGE_SIZE[1] - 1, KITTI_IMAGE_SIZE[0] - 1] * 2, np.float64)
    boxes = np.clip(boxes, 0.0, limits)
    boxes[empty] = np.nan
    return boxes


def render_road_scenes(scenes: Sequence[RoadScene], config: RoadConfig = RoadConfig()) -> list[RoadFrame]:
    """Render a batch of scenes (one renderer call for the images, one for the objects' amodal silhouettes)
    and derive every label (see the module docstring)."""
    height, width = config.image_size
    K = image_intrinsics(config.image_size)
    batch = len(scenes)
    full = [Primitives.concatenate([s.scenery] + [object_primitives(o, i) for i, o in enumerate(s.objects)])
            for s in scenes]  # fmt: skip
    t = np.tile(_KITTI_T2, (batch, 1))
    out = render(
        SceneBatch.stack(full), np.tile(K, (batch, 1, 1)), np.tile(np.eye(3), (batch, 1, 1)), t, height, width,
        background=_sky(scenes, config.image_size, K),
        light_direction=np.stack([s.light_direction for s in scenes]),
        ambient=np.array([s.ambient for s in scenes]),
        samples_per_side=config.samples_per_side,
    )  # fmt: skip

    owners = [(b, i) for b, s in enumerate(scenes) for i in range(len(s.objects))]
    if owners:
        solo_scenes = [object_primitives(scenes[b].objects[i], i) for b, i in owners]
        count = len(owners)
        eye, t_solo = np.tile(np.eye(3), (count, 1, 1)), np.tile(_KITTI_T2, (count, 1))
        solo = render(SceneBatch.stack(solo_scenes), np.tile(K, (count, 1, 1)), eye, t_solo, height, width)
        solo_mask = solo.mask
        scene_index = torch.tensor([b for b, _ in owners])
        instance_index = torch.tensor([i for _, i in owners])
        visible_mask = out.instance[scene_index] == instance_index[:, None, None]
        amodal = solo_mask.flatten(1).sum(1).numpy().astype(np.float64)
        visible = visible_mask.flatten(1).sum(1).numpy().astype(np.float64)
        silhouette_boxes = _mask_boxes(solo_mask, config.image_size)
    else:
        amodal = visible = np.zeros(0)
        silhouette_boxes = np.zeros((0, 4))

    frames = []
    start = 0
    for b, scene in enumerate(scenes):
        n = len(scene.objects)
        stop = start + n
        boxes3d = np.stack([o.box3d for o in scene.objects]) if n else np.zeros((0, 7))
        fraction = np.where(amodal[start:stop] > 0, visible[start:stop] / np.maximum(amodal[start:stop], 1), 0.0)
        occlusion = _occlusion_level(fraction, config.occlusion_thresholds).astype(np.int64)
        truncation = _truncation(boxes3d)
        if config.box2d_source == "projection" and n:
            kitti_wh = (KITTI_IMAGE_SIZE[1], KITTI_IMAGE_SIZE[0])
            _, boxes2d = project_box3d_to_image(boxes3d, KITTI_P2, image_size=kitti_wh)
            boxes2d[amodal[start:stop] == 0] = np.nan
        else:
            boxes2d = silhouette_boxes[start:stop]
        seen = visible[start:stop] > 0
        start = stop
        tall = (boxes2d[:, 3] - boxes2d[:, 1]) >= config.min_box_height
        keep, dontcare = seen & tall, seen & ~tall
        category = np.array([o.category for o in scene.objects], dtype=str).reshape(-1)
        kept_boxes3d = boxes3d[keep]
        objects = FrameAnnotations(
            name=category[keep], truncated=truncation[keep], occluded=occlusion[keep],
            alpha=rotation_y_to_alpha(kept_boxes3d[:, 6], kept_boxes3d[:, :3]), bbox=boxes2d[keep],
            dimensions=kept_boxes3d[:, 3:6], location=kept_boxes3d[:, :3], rotation_y=kept_boxes3d[:, 6],
            score=np.full(int(keep.sum()), np.nan),
        )
        labels = np.array([CLASS_NAMES.index(c) for c in category[keep]], np.int64)
        image = out.rgb[b] * scene.exposure
        if scene.noise_std > 0:
            generator = torch.Generator().manual_seed(scene.noise_seed)
            image = image + scene.noise_std * torch.randn(image.shape, generator=generator)
        frames.append(
            RoadFrame(
                image=image.clamp(0.0, 1.0),
                depth=out.depth[b],
                instance=out.instance[b],
                K=K.copy(),
                P2=KITTI_P2.copy(),
                objects=objects,
                labels=labels,
                visible_fraction=fraction[keep],
                dontcare=boxes2d[dontcare],
                all_visible_fraction=fraction,
                all_occlusion=occlusion,
                all_truncation=truncation,
                all_boxes2d=boxes2d,
            )
        )
    return frames


def _frame_rng(seed: int, split: str, index: int) -> np.random.Generator:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    return np.random.default_rng([WORLD_ID, int(seed), SPLITS[split], int(index)])


def road_frames(
    split: str, indices: Sequence[int], seed: int = 0, config: RoadConfig = RoadConfig()
) -> list[RoadFrame]:
    """The frames ``indices`` of a split, rendered in one batch (each a pure function of its index)."""
    scenes = [sample_road_scene(_frame_rng(seed, split, i), config) for i in indices]
    return render_road_scenes(scenes, config)


def road_frame(split: str, index: int, seed: int = 0, config: RoadConfig = RoadConfig()) -> RoadFrame:
    """Frame ``index`` of a split."""
    return road_frames(split, [index], seed, config)[0]
