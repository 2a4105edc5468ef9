"""The road world: procedural street scenes with KITTI's camera, label conventions and file format.

It stands in for the KITTI 3D object benchmark (monocular 3D detection, SKD-WM3D).  Every frame is a pure
function of ``(world, split, index, seed)``: its random stream is
``numpy.random.default_rng([WORLD_ID, seed, split_id, index])``, never global state.

Camera and frames
-----------------
* Labels live in KITTI's *rectified camera 0* frame (x right, y down, z forward, metres).  The flat ground
  is the plane ``y = CAMERA_HEIGHT = 1.65`` m (KITTI's camera height); every object stands on it.
* The image is KITTI's left colour camera: ``P2`` of training frame 000000 (:data:`KITTI_P2`,
  ``fx = fy = 721.5377``, ``cx = 609.5593``, ``cy = 172.854`` plus the translation column of the 6 cm
  stereo offset) for the original 375×1242 (H×W) image.  ``P2 = K2·[I | t2]``; the renderer places the
  camera at ``X_cam2 = X_rect + t2``, so the rendered image, the rendered depth and ``P2`` agree exactly.
* Images are rendered at ``image_size`` (default 96×320, H×W) with the intrinsics scaled by
  :func:`distill3d.geometry.camera.resize_intrinsics` (half-pixel convention, so the image is what an
  area-downsampling of the full-size image would show): :func:`image_intrinsics`.
* **2D boxes, truncation and ``P2`` are in the ORIGINAL 1242×375 KITTI pixel frame** whatever the
  rendered size, so KITTI's Easy / Moderate / Hard filters (box height ≥ 40 / 25 / 25 px) mean the same
  thing as on KITTI.  :func:`image_to_kitti_pixels` / :func:`kitti_to_image_pixels` convert coordinates.
  ``depth`` and ``K`` belong to the rendered image.

Labels (:class:`RoadAnnotations`)
---------------------------------
* ``boxes3d`` ``(x, y, z, h, w, l, ry)``: bottom centre, KITTI's convention (:mod:`distill3d.geometry.boxes3d`);
  the box is tight around the object's primitives.
* ``boxes2d`` ``(x1, y1, x2, y2)``: the tight box of the object's *amodal* silhouette (the object rendered
  alone, so occluders do not shrink it, as KITTI's annotators drew occluded objects), read off the rendered
  instance map at the render resolution, mapped to the original frame and clipped to
  ``[0, 1241] × [0, 374]``.  (``RoadConfig(box2d_source="projection")`` uses the enclosing box of the
  projected 3D box instead.)
* ``truncation = 1 − area(projected 3D box ∩ image) / area(projected 3D box)`` with the enclosing 2D box of
  the projected 3D box, in [0, 1].
* ``occlusion``: from the visible fraction ``f`` = (pixels of the object in the full render) / (pixels of its
  amodal silhouette inside the image): ``f ≥ 0.8 → 0`` (fully visible), ``f ≥ 0.5 → 1`` (partly occluded),
  ``f > 0.1 → 2`` (largely occluded), else ``3`` (KITTI's "unknown", which every difficulty excludes).
* ``alpha = ry − atan2(x, z)`` wrapped to [−π, π).
* Objects with no visible pixel (fully hidden or outside the image) are dropped.  Objects whose 2D box is
  lower than ``RoadConfig.min_box_height`` (15 px in the original frame) become DontCare regions.

Depth
-----
``depth`` is the rendered z of camera 2 in metres, 0 where no surface is hit (sky; KITTI's "invalid").
:func:`estimated_depth` degrades it like a monocular depth estimator (global scale error, smooth distortion,
blurred discontinuities, noise growing with distance): SKD-WM3D takes its depth from an estimator, never
from ground truth.

Speed (2 shared CPU cores, 96×320, 1 ray/pixel, amodal silhouettes included): ≈60 frames/s for
:func:`road_frames`, a few % less through :class:`RoadDataset` (its depth estimate is vectorised over the batch
and adds ≈1.5 ms per frame; ``benchmarks/world_speed.py`` measures both); 2×2 anti-aliasing
(``RoadConfig(samples_per_side=2)``) ≈20 frames/s; full-size 375×1242 export ≈2-3 frames/s.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from distill3d.data.cache import collate_ragged
from distill3d.data.kitti_io import KittiCalib, write_calib_file, write_label_file
from distill3d.data.worlds.render import PrimitiveKind, Primitives, SceneBatch, render, rotation_from_z
from distill3d.geometry.boxes3d import project_box3d_to_image, rotation_y_to_alpha
from distill3d.geometry.camera import resize_intrinsics
from distill3d.metrics.kitti import FIELDS, FrameAnnotations

__all__ = [
    "CAMERA_HEIGHT",
    "CLASS_NAMES",
    "GROUND_INSTANCE",
    "KITTI_IMAGE_SIZE",
    "KITTI_P2",
    "MEAN_DIMENSIONS",
    "SPLITS",
    "RoadAnnotations",
    "RoadConfig",
    "RoadDataset",
    "RoadFrame",
    "RoadObject",
    "RoadScene",
    "estimated_depth",
    "export_kitti",
    "image_intrinsics",
    "image_projection",
    "image_to_kitti_pixels",
    "kitti_to_image_pixels",
    "make_road_scene",
    "object_primitives",
    "render_road_scenes",
    "road_frame",
    "road_frames",
    "sample_road_scene",
]

WORLD_ID = 3  # distinguishes the road world's random streams from the other worlds'
SPLITS = {"train": 0, "val": 1, "test": 2}

KITTI_IMAGE_SIZE = (375, 1242)
"""(H, W) of KITTI's image_2 (the frame of :data:`KITTI_P2`, 2D boxes and truncation)."""
KITTI_P2 = np.array(
    [
        [721.5377, 0.0, 609.5593, 44.85728],
        [0.0, 721.5377, 172.854, 0.2163791],
        [0.0, 0.0, 1.0, 0.002745884],
    ]
)
"""P2 (3, 4) of KITTI training frame 000000: rectified camera-0 coordinates → original image pixels."""
CAMERA_HEIGHT = 1.65
"""Height of KITTI's camera above the ground (m): the ground is the plane y = 1.65 in the label frame."""

CLASS_NAMES = ("Car", "Pedestrian", "Cyclist")
"""Class id → KITTI class name."""
MEAN_DIMENSIONS = {"Car": (1.53, 1.63, 3.88), "Pedestrian": (1.76, 0.66, 0.84), "Cyclist": (1.74, 0.60, 1.76)}
"""KITTI's mean (h, w, l) per class (metres); sizes are drawn around them."""
_DIMENSION_SPREAD = {"Car": (0.10, 0.08, 0.35), "Pedestrian": (0.10, 0.08, 0.14), "Cyclist": (0.08, 0.06, 0.12)}

GROUND_INSTANCE = 1000
"""Instance id of the ground plane in the rendered instance map (objects are 0..N-1)."""
_MARKING_INSTANCE, _SIDEWALK_INSTANCE, _BUILDING_INSTANCE, _TREE_INSTANCE = 1001, 1002, 1003, 1004
_PART_BODY, _PART_GLASS, _PART_WHEEL, _PART_SKIN, _PART_CLOTHES, _PART_FRAME, _PART_SCENERY = range(7)

_KITTI_T2 = np.linalg.solve(KITTI_P2[:, :3], KITTI_P2[:, 3])  # camera-2 centre offset: X_cam2 = X_rect + t2
_DONTCARE_HEIGHT = 15.0


# ----------------------------------------------------------------------------------------------------------
# Cameras and pixel frames
# ----------------------------------------------------------------------------------------------------------


def _scales(image_size: tuple[int, int]) -> tuple[float, float]:
    """(scale_x, scale_y) = rendered size / original size."""
    return image_size[1] / KITTI_IMAGE_SIZE[1], image_size[0] / KITTI_IMAGE_SIZE[0]


def image_intrinsics(image_size: tuple[int, int] = (96, 320)) -> np.ndarray:
    """(3, 3) intrinsics of the rendered image of size (H, W): KITTI's K2 resized (half-pixel convention)."""
    scale_x, scale_y = _scales(image_size)
    K = torch.from_numpy(KITTI_P2[:, :3].copy())
    return resize_intrinsics(K, scale_x, scale_y).numpy()


def image_projection(image_size: tuple[int, int] = (96, 320)) -> np.ndarray:
    """(3, 4) projection of label-frame points into the rendered image: ``K_image·[I | t2]``."""
    K = image_intrinsics(image_size)
    return np.concatenate([K, (K @ _KITTI_T2)[:, None]], axis=1)


def image_to_kitti_pixels(uv: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Pixel coordinates (..., 2) of the rendered image → the original 1242×375 frame (half-pixel map)."""
    scale = np.array(_scales(image_size))
    return (np.asarray(uv, np.float64) + 0.5) / scale - 0.5


def kitti_to_image_pixels(uv: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Pixel coordinates (..., 2) of the original frame → the rendered image of size (H, W)."""
    scale = np.array(_scales(image_size))
    return (np.asarray(uv, np.float64) + 0.5) * scale - 0.5


# ----------------------------------------------------------------------------------------------------------
# Objects and their primitives
# ----------------------------------------------------------------------------------------------------------


@dataclass
class RoadObject:
    """One labelled object: KITTI class name, box (7,) ``(x, y, z, h, w, l, ry)`` (bottom centre, label frame),
    main colour (3,) in [0, 1] and a style value in [0, 1] (cabin length, stride, ...)."""

    category: str
    box3d: np.ndarray
    color: np.ndarray = field(default_factory=lambda: np.array([0.6, 0.1, 0.1]))
    style: float = 0.5

    def __post_init__(self) -> None:
        if self.category not in CLASS_NAMES:
            raise ValueError(f"category must be one of {CLASS_NAMES}, got {self.category!r}")
        self.box3d = np.asarray(self.box3d, np.float64).reshape(7)
        self.color = np.asarray(self.color, np.float64).reshape(3)


class _PrimitiveList:
    """Collects primitives given in an object's local frame (x length, y down, z width; origin at the bottom
    centre) and maps them to the label frame."""

    def __init__(self, rotation: np.ndarray, origin: np.ndarray, instance: int) -> None:
        self.rotation, self.origin, self.instance = rotation, origin, instance
        self.rows: list[tuple[int, np.ndarray, np.ndarray, tuple[float, ...], np.ndarray, int]] = []

    def add(self, kind: int, center, size, albedo, part: int, local_rotation: np.ndarray | None = None) -> None:
        rot = np.eye(3) if local_rotation is None else local_rotation
        padded = (*size, *(0.0,) * (4 - len(size)))
        self.rows.append((kind, self.rotation @ rot, self.origin + self.rotation @ np.asarray(center, float),
                          padded, np.clip(np.asarray(albedo, float), 0.0, 1.0), part))  # fmt: skip

    def segment(self, start, end, radius: float, albedo, part: int) -> None:
        """A capsule from ``start`` to ``end`` (local coordinates)."""
        start, end = np.asarray(start, float), np.asarray(end, float)
        axis = end - start
        self.add(PrimitiveKind.CAPSULE, (start + end) / 2, (radius, np.linalg.norm(axis) / 2),
                 albedo, part, rotation_from_z(axis))  # fmt: skip

    def build(self) -> Primitives:
        return Primitives(
            kind=np.array([r[0] for r in self.rows], np.int32),
            rotation=np.array([r[1] for r in self.rows]),
            center=np.array([r[2] for r in self.rows]),
            size=np.array([r[3] for r in self.rows], np.float64),
            albedo=np.array([r[4] for r in self.rows]),
            part=np.array([r[5] for r in self.rows], np.int64),
            instance=np.full(len(self.rows), self.instance, np.int64),
        )


def _yaw_matrix(ry: float) -> np.ndarray:
    """KITTI's R_y(ry): box frame (x length, y down, z width) → label frame."""
    c, s = math.cos(ry), math.sin(ry)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


_TYRE, _GLASS = np.array([0.05, 0.05, 0.06]), np.array([0.10, 0.13, 0.17])


def _car(b: _PrimitiveList, h: float, w: float, length: float, color: np.ndarray, style: float) -> None:
    wheel_r = min(0.30 + 0.06 * style, 0.28 * h)
    clearance = 0.55 * wheel_r
    body_top = clearance + 0.42 * h - 0.05 * style
    body_h = body_top - clearance
    b.add(PrimitiveKind.BOX, (0.0, -(clearance + body_h / 2), 0.0), (length / 2, body_h / 2, w / 2, 0.06), color,
          _PART_BODY)  # fmt: skip
    cabin_l = length * (0.45 + 0.12 * style)
    cabin_h = h - body_top
    b.add(PrimitiveKind.BOX, (-0.06 * length, -(body_top + cabin_h / 2) + 0.02, 0.0),
          (cabin_l / 2, cabin_h / 2 + 0.02, 0.44 * w, 0.08), _GLASS, _PART_GLASS)  # fmt: skip
    wheel_half = 0.11
    for along in (0.5 * length - 1.25 * wheel_r, -0.5 * length + 1.25 * wheel_r):
        for side in (1.0, -1.0):
            b.add(PrimitiveKind.CYLINDER, (along, -wheel_r, side * (w / 2 - wheel_half)), (wheel_r, wheel_half),
                  _TYRE, _PART_WHEEL)  # fmt: skip


def _person(b: _PrimitiveList, h: float, w: float, length: float, color: np.ndarray, style: float,
            skin: np.ndarray) -> None:  # fmt: skip
    leg_r, arm_r, head_r = 0.06, 0.045, 0.105
    stride = max(length / 2 - leg_r, 0.0)
    hip, shoulder = 0.5 * h, 0.81 * h
    trousers = np.array([0.15, 0.15, 0.25]) * (0.6 + 0.8 * style)
    for sign in (1.0, -1.0):
        b.segment((sign * stride, -leg_r, sign * 0.09), (0.0, -hip, sign * 0.09), leg_r, trousers, _PART_CLOTHES)
        b.segment((0.0, -shoulder, sign * (w / 2 - arm_r - 0.02)),
                  (-sign * 0.6 * stride, -(0.47 * h), sign * (w / 2 - arm_r)), arm_r, color, _PART_CLOTHES)  # fmt: skip
    b.add(PrimitiveKind.ELLIPSOID, (0.0, -(hip + shoulder) / 2 - 0.02, 0.0),
          (0.12, (shoulder - hip) / 2 + 0.06, w / 2 - 2 * arm_r), color, _PART_CLOTHES)  # fmt: skip
    b.add(PrimitiveKind.SPHERE, (0.02, -(h - head_r), 0.0), (head_r,), skin, _PART_SKIN)


def _cyclist(b: _PrimitiveList, h: float, w: float, length: float, color: np.ndarray, style: float,
             skin: np.ndarray) -> None:  # fmt: skip
    wheel_r = min(0.34, length / 4)
    front, rear = length / 2 - wheel_r, -length / 2 + wheel_r
    frame = np.array([0.7, 0.7, 0.72]) * (0.3 + 0.7 * style)
    for along in (front, rear):
        b.add(PrimitiveKind.CYLINDER, (along, -wheel_r, 0.0), (wheel_r, 0.025), _TYRE, _PART_WHEEL)
    seat = np.array([rear + 0.35, -(2.3 * wheel_r + 0.1), 0.0])
    bar = np.array([front - 0.1, -(2.3 * wheel_r + 0.25), 0.0])
    hub_f, hub_r = np.array([front, -wheel_r, 0.0]), np.array([rear, -wheel_r, 0.0])
    crank = np.array([(front + rear) / 2 - 0.05, -wheel_r, 0.0])
    for start, end in ((hub_r, seat), (seat, crank), (crank, hub_r), (crank, bar), (bar, hub_f), (seat, bar)):
        b.segment(start, end, 0.025, frame, _PART_FRAME)
    b.segment(
        bar + np.array([0.0, 0.0, -(w / 2 - 0.03)]), bar + np.array([0.0, 0.0, w / 2 - 0.03]), 0.03, frame, _PART_FRAME
    )
    head_r = 0.105
    shoulder = np.array([seat[0] + 0.25, -(h - 2 * head_r - 0.05), 0.0])
    b.segment(seat + np.array([0.0, -0.05, 0.0]), shoulder, 0.13, color, _PART_CLOTHES)
    b.add(PrimitiveKind.SPHERE, (shoulder[0] + 0.08, -(h - head_r), 0.0), (head_r,), skin, _PART_SKIN)
    for sign in (1.0, -1.0):
        hand = bar + np.array([0.0, 0.0, sign * (w / 2 - 0.06)])
        b.segment(shoulder + np.array([0.0, 0.0, sign * 0.15]), hand, 0.04, color, _PART_CLOTHES)
        pedal = crank + np.array([sign * 0.12, sign * 0.1 - 0.02, sign * 0.12])
        b.segment(seat + np.array([0.0, -0.02, sign * 0.1]), pedal, 0.06, np.array([0.15, 0.15, 0.22]), _PART_CLOTHES)


def object_primitives(obj: RoadObject, instance: int) -> Primitives:
    """The primitives of one object (label frame) with the given instance id; tight inside ``obj.box3d``."""
    x, y, z, h, w, length, ry = obj.box3d
    builder = _PrimitiveList(_yaw_matrix(ry), np.array([x, y, z]), instance)
    skin = np.array([0.85, 0.64, 0.52]) * (0.45 + 0.55 * (1.0 - obj.style))
    if obj.category == "Car":
        _car(builder, h, w, length, obj.color, obj.style)
    elif obj.category == "Pedestrian":
        _person(builder, h, w, length, obj.color, obj.style, skin)
    else:
        _cyclist(builder, h, w, length, obj.color, obj.style, skin)
    return builder.build()


# ----------------------------------------------------------------------------------------------------------
# Scenes
# ----------------------------------------------------------------------------------------------------------


@dataclass
class RoadConfig:
    """Knobs of the road world.  ``image_size`` is (H, W) of the rendered image; distances in metres; box
    heights in original-frame pixels; ``samples_per_side`` s renders s×s rays per pixel for the colour."""

    image_size: tuple[int, int] = (96, 320)
    cars: tuple[int, int] = (1, 8)
    pedestrian_probability: float = 0.5
    max_pedestrians: int = 4
    cyclist_probability: float = 0.3
    max_cyclists: int = 2
    distance_range: tuple[float, float] = (4.0, 60.0)
    min_box_height: float = _DONTCARE_HEIGHT
    occlusion_thresholds: tuple[float, float, float] = (0.8, 0.5, 0.1)
    box2d_source: Literal["silhouette", "projection"] = "silhouette"
    samples_per_side: int = 1
    scenery: bool = True


@dataclass
class RoadScene:
    """One frame's content before rendering: objects, static scenery (label frame), sky and lighting."""

    objects: list[RoadObject]
    scenery: Primitives
    sky_top: np.ndarray = field(default_factory=lambda: np.array([0.35, 0.55, 0.85]))
    sky_horizon: np.ndarray = field(default_factory=lambda: np.array([0.78, 0.85, 0.93]))
    light_direction: np.ndarray = field(default_factory=lambda: np.array([0.3, -0.85, -0.4]))
    ambient: float = 0.45
    exposure: float = 1.0
    noise_std: float = 0.0
    noise_seed: int = 0


def _ground(color: np.ndarray) -> Primitives:
    return Primitives(
        kind=np.array([PrimitiveKind.PLANE], np.int32),
        rotation=rotation_from_z(np.array([0.0, -1.0, 0.0]))[None],
        center=np.array([[0.0, CAMERA_HEIGHT, 0.0]]),
        size=np.zeros((1, 4)),
        albedo=np.asarray(color, float)[None],
        part=np.array([_PART_SCENERY]),
        instance=np.array([GROUND_INSTANCE]),
    )


def make_road_scene(objects: Sequence[RoadObject], ground_color: Sequence[float] = (0.35, 0.35, 0.36)) -> RoadScene:
    """A plain scene (flat ground, default sky and light, no scenery) holding the given objects: for tests
    and hand-built examples."""
    return RoadScene(objects=list(objects), scenery=_ground(np.asarray(ground_color, float)))


def _flat_box(x0: float, x1: float, z0: float, z1: float, top: float, color, instance: int) -> tuple:
    """A BOX row (kind, rotation, centre, size, albedo, part, instance) from ground level to ``top`` metres."""
    center = ((x0 + x1) / 2, CAMERA_HEIGHT - top / 2, (z0 + z1) / 2)
    return (PrimitiveKind.BOX, np.eye(3), center, ((x1 - x0) / 2, top / 2, (z1 - z0) / 2, 0.0), color, instance)


def _rows_to_primitives(rows: list[tuple]) -> Primitives:
    return Primitives(
        kind=np.array([r[0] for r in rows], np.int32),
        rotation=np.array([r[1] for r in rows], np.float64).reshape(-1, 3, 3),
        center=np.array([r[2] for r in rows], np.float64).reshape(-1, 3),
        size=np.array([r[3] for r in rows], np.float64).reshape(-1, 4),
        albedo=np.clip(np.array([r[4] for r in rows], np.float64).reshape(-1, 3), 0.0, 1.0),
        part=np.full(len(rows), _PART_SCENERY, np.int64),
        instance=np.array([r[5] for r in rows], np.int64),
    )


_CAR_COLORS = np.array([
    [0.92, 0.92, 0.92], [0.08, 0.08, 0.09], [0.62, 0.63, 0.66], [0.40, 0.41, 0.43], [0.62, 0.08, 0.07],
    [0.10, 0.20, 0.50], [0.12, 0.30, 0.18], [0.75, 0.70, 0.55], [0.85, 0.55, 0.10], [0.30, 0.10, 0.25],
])  # fmt: skip


def _footprint_radius(category: str, w: float, length: float) -> float:
    return 0.5 * math.hypot(w, length) + (0.4 if category == "Car" else 0.25)


def _sample_dimensions(rng: np.random.Generator, category: str) -> np.ndarray:
    mean, spread = np.array(MEAN_DIMENSIONS[category]), np.array(_DIMENSION_SPREAD[category])
    return mean + spread * np.clip(rng.standard_normal(3), -2.0, 2.0)


def sample_road_scene(rng: np.random.Generator, config: RoadConfig = RoadConfig()) -> RoadScene:
    """A random street scene: road, lanes, sidewalks, buildings, trees, 1-8 cars, pedestrians, cyclists."""
    fx, cx = KITTI_P2[0, 0], KITTI_P2[0, 2]
    near, far = config.distance_range
    road_center = rng.uniform(-2.5, 2.5)
    lanes = int(rng.integers(2, 5))
    road_half = lanes * 3.5 / 2 + rng.uniform(0.0, 1.0)
    left, right = road_center - road_half, road_center + road_half
    sidewalk = rng.uniform(2.0, 4.0)

    placed: list[tuple[float, float, float]] = []  # (x, z, radius) footprints

    def free(x: float, z: float, radius: float) -> bool:
        return all((x - px) ** 2 + (z - pz) ** 2 > (radius + pr) ** 2 for px, pz, pr in placed)

    objects: list[RoadObject] = []

    def place(category: str, x_bounds: tuple[float, float], yaw_fn, z_range: tuple[float, float], color) -> None:
        """Put one object at a free spot with its footprint inside ``x_bounds`` and near the camera's view."""
        h, w, length = _sample_dimensions(rng, category)
        radius = _footprint_radius(category, w, length)
        for _ in range(30):
            # Denser near the camera, as in KITTI (a power-law draw over the distance range).
            z = z_range[0] + (z_range[1] - z_range[0]) * rng.random() ** 1.3
            # Allow centres up to 60 px (original frame) outside the image, for truncated objects.
            view_lo, view_hi = (-60.0 - cx) * z / fx, (KITTI_IMAGE_SIZE[1] + 60.0 - cx) * z / fx
            lo, hi = max(x_bounds[0] + radius, view_lo), min(x_bounds[1] - radius, view_hi)
            if hi <= lo:
                continue
            x = rng.uniform(lo, hi)
            if free(x, z, radius):
                placed.append((x, z, radius))
                box = np.array([x, CAMERA_HEIGHT, z, h, w, length, yaw_fn()])
                objects.append(RoadObject(category, box, color, float(rng.random())))
                return

    def road_yaw() -> float:
        if rng.random() < 0.2:
            return float(rng.uniform(-math.pi, math.pi))
        heading = -math.pi / 2 if rng.random() < 0.6 else math.pi / 2
        return float(np.clip(heading + rng.normal(0.0, 0.08), -math.pi, math.pi))

    n_cars = int(rng.integers(config.cars[0], config.cars[1] + 1))
    for _ in range(n_cars):
        color = _CAR_COLORS[rng.integers(len(_CAR_COLORS))] * rng.uniform(0.85, 1.1)
        place("Car", (left - 0.6, right + 0.6), road_yaw, (near, far), color)
    people = int(rng.integers(1, config.max_pedestrians + 1)) if rng.random() < config.pedestrian_probability else 0
    for _ in range(people):
        where = rng.random()
        if where < 0.35:
            x_bounds = (left - sidewalk, left - 0.1)
        elif where < 0.7:
            x_bounds = (right + 0.1, right + sidewalk)
        else:
            x_bounds = (left, right)
        clothes = rng.uniform(0.05, 0.9, 3)
        place("Pedestrian", x_bounds, lambda: float(rng.uniform(-math.pi, math.pi)), (near, 0.7 * far), clothes)
    riders = int(rng.integers(1, config.max_cyclists + 1)) if rng.random() < config.cyclist_probability else 0
    for _ in range(riders):
        x_bounds = (left - 0.3, left + 3.0) if rng.random() < 0.5 else (right - 3.0, right + 0.3)
        place("Cyclist", x_bounds, road_yaw, (near, 0.8 * far), rng.uniform(0.05, 0.9, 3))

    rows: list[tuple] = []
    # Lane markings: solid edge lines and dashed lane separators (5 mm thick boxes on the ground).
    white = np.full(3, rng.uniform(0.75, 0.95))
    for edge in (left + 0.3, right - 0.3):
        rows.append(_flat_box(edge - 0.07, edge + 0.07, 1.0, 90.0, 0.005, white, _MARKING_INSTANCE))
    phase = rng.uniform(0.0, 9.0)
    for lane in range(1, lanes):
        x_line = left + (right - left) * lane / lanes
        for z0 in np.arange(phase, 70.0, 9.0):
            rows.append(_flat_box(x_line - 0.07, x_line + 0.07, z0, z0 + 3.0, 0.005, white, _MARKING_INSTANCE))
    # Sidewalks (1 cm), buildings beyond them, trees on them.
    pavement = np.full(3, rng.uniform(0.45, 0.65)) * rng.uniform(0.95, 1.05, 3)
    rows.append(_flat_box(left - sidewalk, left, 0.0, 120.0, 0.01, pavement, _SIDEWALK_INSTANCE))
    rows.append(_flat_box(right, right + sidewalk, 0.0, 120.0, 0.01, pavement, _SIDEWALK_INSTANCE))
    for side in (-1.0, 1.0):
        if rng.random() < 0.25:
            continue
        inner = (left - sidewalk if side < 0 else right + sidewalk) + side * rng.uniform(0.0, 3.0)
        z = rng.uniform(-5.0, 5.0)
        while z < 110.0:
            length, height = rng.uniform(8.0, 25.0), rng.uniform(4.0, 18.0)
            x0, x1 = sorted((inner, inner + side * rng.uniform(8.0, 14.0)))
            wall = rng.uniform(0.25, 0.85) * rng.uniform(0.8, 1.1, 3)
            rows.append(_flat_box(x0, x1, z, z + length, height, wall, _BUILDING_INSTANCE))
            z += length + rng.uniform(0.0, 8.0)
    for _ in range(int(rng.integers(0, 6))):
        offset = rng.uniform(0.6, sidewalk - 0.4)
        side_x = left - offset if rng.random() < 0.5 else right + offset
        z = rng.uniform(near, far + 20.0)
        if not free(side_x, z, 0.9):
            continue
        placed.append((side_x, z, 0.9))
        trunk_h = rng.uniform(1.8, 3.0)
        rows.append((PrimitiveKind.CYLINDER, rotation_from_z(np.array([0.0, 1.0, 0.0])),
                     (side_x, CAMERA_HEIGHT - trunk_h / 2, z), (0.12, trunk_h / 2, 0.0, 0.0),
                     np.array([0.35, 0.25, 0.15]), _TREE_INSTANCE))  # fmt: skip
        crown = rng.uniform(1.0, 1.8)
        rows.append((PrimitiveKind.ELLIPSOID, np.eye(3), (side_x, CAMERA_HEIGHT - trunk_h - 0.6 * crown, z),
                     (crown, 1.2 * crown, crown, 0.0), np.array([0.15, 0.4, 0.12]) * rng.uniform(0.7, 1.3),
                     _TREE_INSTANCE))  # fmt: skip

    asphalt = np.full(3, rng.uniform(0.22, 0.42)) * rng.uniform(0.96, 1.04, 3)
    scenery = _ground(asphalt)
    if config.scenery:
        scenery = Primitives.concatenate([scenery, _rows_to_primitives(rows)])
    overcast = rng.random() < 0.3
    sky_top = np.array([0.30, 0.50, 0.85]) * rng.uniform(0.85, 1.1, 3)
    if overcast:
        sky_top = np.full(3, rng.uniform(0.6, 0.8))
    sky_horizon = np.clip(sky_top + rng.uniform(0.15, 0.4), 0.0, 1.0)
    sun = np.array([rng.uniform(-0.8, 0.8), -rng.uniform(0.4, 1.0), rng.uniform(-0.9, 0.3)])
    return RoadScene(
        objects=objects,
        scenery=scenery,
        sky_top=sky_top,
        sky_horizon=sky_horizon,
        light_direction=sun / np.linalg.norm(sun),
        ambient=float(rng.uniform(0.55, 0.75) if overcast else rng.uniform(0.3, 0.5)),
        exposure=float(rng.uniform(0.85, 1.15)),
        noise_std=float(rng.uniform(0.0, 0.02)),
        noise_seed=int(rng.integers(2**31)),
    )


# ----------------------------------------------------------------------------------------------------------
# Rendering and labels
# ----------------------------------------------------------------------------------------------------------


@dataclass
class RoadAnnotations:
    """Labels of one frame's N objects (numpy; boxes2d and truncation in the original KITTI pixel frame).

    category (N,) str; labels (N,) int64 class ids (:data:`CLASS_NAMES`); boxes3d (N, 7) float64
    ``(x, y, z, h, w, l, ry)``; boxes2d (N, 4) float64 ``(x1, y1, x2, y2)``; truncation (N,) in [0, 1];
    occlusion (N,) int64 0-3; visible_fraction (N,); alpha (N,) radians; dontcare (M, 4) float64 DontCare
    regions.
    """

    category: np.ndarray
    labels: np.ndarray
    boxes3d: np.ndarray
    boxes2d: np.ndarray
    truncation: np.ndarray
    occlusion: np.ndarray
    visible_fraction: np.ndarray
    alpha: np.ndarray
    dontcare: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to_kitti(self) -> FrameAnnotations:
        """The objects plus DontCare rows, as written to ``label_2``."""
        objects = FrameAnnotations(
            name=self.category,
            truncated=self.truncation,
            occluded=self.occlusion,
            alpha=self.alpha,
            bbox=self.boxes2d,
            dimensions=self.boxes3d[:, 3:6],
            location=self.boxes3d[:, 0:3],
            rotation_y=self.boxes3d[:, 6],
            score=np.full(len(self), np.nan),
        )
        m = len(self.dontcare)
        dontcare = FrameAnnotations(
            name=np.full(m, "DontCare"),
            truncated=np.full(m, -1.0),
            occluded=np.full(m, -1),
            alpha=np.full(m, -10.0),
            bbox=self.dontcare,
            dimensions=np.full((m, 3), -1.0),
            location=np.full((m, 3), -1000.0),
            rotation_y=np.full(m, -10.0),
            score=np.full(m, np.nan),
        )
        return FrameAnnotations(*(np.concatenate([getattr(objects, k), getattr(dontcare, k)]) for k in FIELDS))




@dataclass
class RoadFrame:
    """One rendered frame.

    image (3, H, W) float32 in [0, 1]; depth (H, W) float32 camera-2 z in metres, 0 = no surface (sky);
    instance (H, W) int64 (objects 0..N-1 in scene order, :data:`GROUND_INSTANCE` for the ground, 1001+ other
    scenery, -1 sky); K (3, 3) intrinsics of the rendered image; P2 (3, 4) original-frame projection;
    annotations (labels in the original frame); all_* arrays cover every object of the scene (before
    dropping hidden ones): all_visible_fraction (N_all,), all_occlusion (N_all,), all_truncation (N_all,),
    all_boxes2d (N_all, 4) (NaN where the object has no pixel in the image).
    """

    image: torch.Tensor
    depth: torch.Tensor
    instance: torch.Tensor
    K: np.ndarray
    P2: np.ndarray
    annotations: RoadAnnotations
    all_visible_fraction: np.ndarray
    all_occlusion: np.ndarray
    all_truncation: np.ndarray
    all_boxes2d: np.ndarray


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
        annotations = RoadAnnotations(
            category=category[keep],
            labels=np.array([CLASS_NAMES.index(c) for c in category[keep]], np.int64),
            boxes3d=boxes3d[keep],
            boxes2d=boxes2d[keep],
            truncation=truncation[keep],
            occlusion=occlusion[keep],
            visible_fraction=fraction[keep],
            alpha=rotation_y_to_alpha(boxes3d[keep, 6], boxes3d[keep, :3]),
            dontcare=boxes2d[dontcare],
        )
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
                annotations=annotations,
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


# ----------------------------------------------------------------------------------------------------------
# Monocular depth estimator stand-in
# ----------------------------------------------------------------------------------------------------------


def _gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, H, W) images, borders replicated; kernel radius ``max(1, ⌈2.5σ⌉)`` px.

    Written as a sum of shifted slices: a single-channel ``conv2d`` is several times slower on CPU, and
    element-wise sums give every frame the same result whatever the batch it is in.
    """
    radius = max(1, math.ceil(2.5 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    weights = (kernel / kernel.sum()).tolist()
    height, width = image.shape[-2:]
    padded = F.pad(image[:, None], (radius, radius, radius, radius), mode="replicate")[:, 0]
    rows = padded[:, :, :width] * weights[0]
    for offset, weight in enumerate(weights[1:], start=1):
        rows.add_(padded[:, :, offset : offset + width], alpha=weight)
    out = rows[:, :height] * weights[0]
    for offset, weight in enumerate(weights[1:], start=1):
        out.add_(rows[:, offset : offset + height], alpha=weight)
    return out


def _estimate_draws(
    rng: np.random.Generator, count: int, height: int, width: int, scale_error: float, distortion: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The random numbers of ``count`` frames in draw order: scale (count,), grid (count, 3, 5), noise (count, H, W)."""
    scale = 1.0 + np.clip(rng.normal(0.0, scale_error, count), -2 * scale_error, 2 * scale_error)
    grid = rng.normal(0.0, distortion, (count, 3, 5))
    noise = rng.standard_normal((count, height, width)).astype(np.float32)
    return scale, grid, noise


def estimated_depth(
    true_depth: torch.Tensor,
    seed: int | np.random.Generator | Sequence[np.random.Generator],
    scale_error: float = 0.04,
    distortion: float = 0.03,
    blur_pixels: float = 1.5,
    noise_at_zero: float = 0.01,
    noise_per_metre: float = 0.0008,
    max_depth: float = 80.0,
) -> torch.Tensor:
    """A monocular depth estimator's output, simulated from the true depth (H, W) or (B, H, W) (metres,
    0 = invalid/sky).

    The estimate is ``s · (1 + d(u, v)) · blur(depth) · (1 + n)`` with a global scale error
    ``s ~ 1 + N(0, scale_error)`` (clipped to ±2σ), a smooth multiplicative distortion ``d`` (a bicubic
    up-sampling of a 3×5 grid of N(0, distortion) values), discontinuities smeared by a Gaussian blur of
    ``blur_pixels`` (in inverse depth, like a network's output), and per-pixel noise ``n ~ N(0, σ(z))`` with
    ``σ(z) = noise_at_zero + noise_per_metre · z`` (larger far away).  Sky / invalid pixels get ``max_depth``;
    the result lies in ``(0, max_depth]``.  Deterministic given ``seed``: an int or a numpy generator (one
    stream for the batch), or one generator per frame (frame b then gets exactly what a call on frame b alone
    with generator b gives, so a batch is estimated in one vectorised pass without tying frames together).
    """
    depth = true_depth if true_depth.dim() == 3 else true_depth[None]
    batch, height, width = depth.shape
    if isinstance(seed, Sequence):
        if len(seed) != batch:
            raise ValueError(f"got {len(seed)} generators for {batch} depth maps")
        draws = [_estimate_draws(rng, 1, height, width, scale_error, distortion) for rng in seed]
        scale, grid, noise = (np.concatenate(parts) for parts in zip(*draws, strict=True))
    else:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng([WORLD_ID, 99, int(seed)])
        scale, grid, noise = _estimate_draws(rng, batch, height, width, scale_error, distortion)
    depth = depth.to(torch.float32)
    filled = torch.where(depth > 0, depth, torch.full_like(depth, max_depth)).clamp(max=max_depth)
    inverse = 1.0 / filled
    if blur_pixels > 0:
        inverse = _gaussian_blur(inverse, blur_pixels)
    blurred = 1.0 / inverse
    grid_t = torch.from_numpy(grid[:, None].astype(np.float32))
    field_ = F.interpolate(grid_t, size=(height, width), mode="bicubic", align_corners=True)[:, 0]
    sigma = noise_at_zero + noise_per_metre * blurred
    scale_t = torch.from_numpy(scale.astype(np.float32))[:, None, None]
    estimate = (scale_t * (1.0 + field_) * blurred * (1.0 + torch.from_numpy(noise) * sigma)).clamp(
        min=1e-3, max=max_depth
    )
    return estimate if true_depth.dim() == 3 else estimate[0]


# ----------------------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------------------


class RoadDataset(Dataset):
    """Road-world frames as a torch Dataset (KITTI stand-in).

    ``RoadDataset(split="train", size=3712, seed=0, image_size=(96, 320))``; a sample is a dict:

    * image (3, H, W) float32 in [0, 1]; depth (H, W) float32 true camera-2 z (m, 0 = sky);
      depth_estimate (H, W) float32 (:func:`estimated_depth`); K (3, 3) float32 of the rendered image;
      P2_image (3, 4) float32 label frame → rendered image; P2 (3, 4) float32 label frame → original
      1242×375 pixels;
    * boxes2d (N, 4) float32 in the original 1242×375 frame; boxes3d (N, 7) float32; labels (N,) int64;
      truncation (N,) float32; occlusion (N,) int64; alpha (N,) float32; dontcare (M, 4) float32;
      index () int64.

    :meth:`collate` stacks the fixed-size entries and keeps the per-object ones as lists.  Batched access
    (``__getitems__``, used by DataLoader) renders the whole batch in one call.
    Speed on 2 shared CPU cores at 96×320, 1 ray/pixel, batches of 64: a few % below :func:`road_frames`, the
    depth estimate (one vectorised call per batch) included (``python -m distill3d.data.worlds.road``).
    """

    #: per-object entries (a different number of rows per frame); cache them with
    #: ``MaterializedDataset(..., ragged_keys=RoadDataset.ragged_keys)``.
    ragged_keys = ("boxes2d", "boxes3d", "labels", "truncation", "occlusion", "alpha", "dontcare")

    def __init__(
        self,
        split: str = "train",
        size: int = 3712,
        seed: int = 0,
        image_size: tuple[int, int] = (96, 320),
        config: RoadConfig | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
        self.split, self.size, self.seed = split, int(size), int(seed)
        self.config = replace(config or RoadConfig(), image_size=tuple(image_size))

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        indices = [int(i) for i in indices]
        if any(i < 0 or i >= self.size for i in indices):
            raise IndexError(f"index out of range for a dataset of {self.size} frames")
        frames = road_frames(self.split, indices, self.seed, self.config)
        P2_image = torch.from_numpy(image_projection(self.config.image_size)).float()
        estimate_rngs = [np.random.default_rng([WORLD_ID, self.seed, SPLITS[self.split], i, 1]) for i in indices]
        estimates = estimated_depth(torch.stack([frame.depth for frame in frames]), estimate_rngs)
        samples = []
        for index, frame, estimate in zip(indices, frames, estimates, strict=True):
            a = frame.annotations
            samples.append({
                "image": frame.image,
                "depth": frame.depth,
                "depth_estimate": estimate,
                "K": torch.from_numpy(frame.K).float(),
                "P2_image": P2_image.clone(),
                "P2": torch.from_numpy(frame.P2).float(),
                "boxes2d": torch.from_numpy(a.boxes2d).float().reshape(-1, 4),
                "boxes3d": torch.from_numpy(a.boxes3d).float().reshape(-1, 7),
                "labels": torch.from_numpy(a.labels),
                "truncation": torch.from_numpy(a.truncation).float(),
                "occlusion": torch.from_numpy(a.occlusion),
                "alpha": torch.from_numpy(np.asarray(a.alpha)).float(),
                "dontcare": torch.from_numpy(a.dontcare).float().reshape(-1, 4),
                "index": torch.tensor(index, dtype=torch.int64),
            })  # fmt: skip
        return samples

    @staticmethod
    def collate(samples: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Stack fixed-size entries (B, ...); per-object entries become lists of B tensors."""
        return collate_ragged(samples, RoadDataset.ragged_keys)


# ----------------------------------------------------------------------------------------------------------
# KITTI export
# ----------------------------------------------------------------------------------------------------------


def _kitti_calib() -> KittiCalib:
    """A KITTI calibration whose P2 is :data:`KITTI_P2` (the other cameras follow frame 000000's layout)."""
    K = KITTI_P2[:, :3]
    P0 = np.concatenate([K, np.zeros((3, 1))], axis=1)
    P1 = P0.copy()
    P1[0, 3] = -387.5744
    P3 = P0.copy()
    P3[:, 3] = [-333.4597, 1.930130, 0.003745884]
    velo_to_cam = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, -0.08], [1.0, 0.0, 0.0, -0.27]])
    return KittiCalib(P0=P0, P1=P1, P2=KITTI_P2.copy(), P3=P3, R0_rect=np.eye(3), Tr_velo_to_cam=velo_to_cam)


def _atomic_save_png(path: Path, image: torch.Tensor) -> None:
    array = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        Image.fromarray(array).save(temporary, format="PNG")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def export_kitti(
    out_dir: str | os.PathLike,
    n_frames: int,
    seed: int = 0,
    split: str = "train",
    image_size: tuple[int, int] = KITTI_IMAGE_SIZE,
    val_fraction: float = 0.5,
    batch_size: int = 8,
    config: RoadConfig | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``n_frames`` frames as a KITTI object dataset and return ``out_dir``.

    Layout: ``training/image_2/%06d.png``, ``training/calib/%06d.txt``, ``training/label_2/%06d.txt`` and
    ``ImageSets/{train,val,trainval}.txt`` (the first ``1 − val_fraction`` of the frames train, the rest val).
    Labels and calibration are in the original 1242×375 frame; with the default ``image_size`` the images
    are full size.  A smaller ``image_size`` writes images as if KITTI's had been down-sampled for storage
    (labels and calib unchanged: resize an image back by (1242/W, 375/H) to overlay them).  The folder is
    built in a temporary sibling and renamed into place, so an error never leaves a half-written dataset.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} exists; pass overwrite=True to replace it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    config = replace(config or RoadConfig(), image_size=tuple(image_size))
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        training = staging / "training"
        for sub in ("image_2", "calib", "label_2"):
            (training / sub).mkdir(parents=True)
        calib = _kitti_calib()
        for begin in range(0, n_frames, batch_size):
            indices = list(range(begin, min(begin + batch_size, n_frames)))
            for index, frame in zip(indices, road_frames(split, indices, seed, config), strict=True):
                name = f"{index:06d}"
                _atomic_save_png(training / "image_2" / f"{name}.png", frame.image)
                write_calib_file(training / "calib" / f"{name}.txt", calib)
                write_label_file(training / "label_2" / f"{name}.txt", frame.annotations.to_kitti(), with_score=False)
        ids = [f"{i:06d}" for i in range(n_frames)]
        n_train = n_frames - round(val_fraction * n_frames)
        (staging / "ImageSets").mkdir()
        for name, subset in (("train", ids[:n_train]), ("val", ids[n_train:]), ("trainval", ids)):
            (staging / "ImageSets" / f"{name}.txt").write_text("".join(f"{i}\n" for i in subset))
        if out_dir.exists():
            trash = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.old."))
            os.replace(out_dir, trash / out_dir.name)
            os.replace(staging, out_dir)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


if __name__ == "__main__":  # speed measurement
    import time

    dataset = RoadDataset("train", size=10_000)
    dataset.__getitems__([0])
    begin = time.perf_counter()
    dataset.__getitems__(list(range(64)))
    print(f"{64 / (time.perf_counter() - begin):.1f} frames/s at {dataset.config.image_size}")
