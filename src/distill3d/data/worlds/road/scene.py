"""Road scenes: KITTI's camera and pixel frames, objects and their primitives, scene sampling (see the package
docstring)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from distill3d.data.worlds.difficulty import Difficulty, check_difficulty
from distill3d.data.worlds.render import PrimitiveKind, Primitives, rotation_from_z
from distill3d.geometry.camera import resize_intrinsics
from distill3d.geometry.rotations import rotation_y

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
    builder = _PrimitiveList(rotation_y(torch.tensor(float(ry), dtype=torch.float64)).numpy(), np.array([x, y, z]),
                             instance)  # KITTI's R_y(ry): box frame (x length, y down, z width) → label frame
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


ROAD_PRESETS: dict[str, dict] = {
    "easy": {"cars": (1, 4), "pedestrian_probability": 0.0, "cyclist_probability": 0.0,
             "distance_range": (4.0, 20.0), "scenery": False},
    "standard": {"distance_range": (4.0, 25.0)},
    "hard": {},
}
"""What each :data:`~distill3d.data.worlds.difficulty.Difficulty` preset changes from :class:`RoadConfig`'s
defaults (``hard`` = the defaults: cars up to 60 m, full clutter).  ``standard`` keeps every object kind and all
the clutter but places objects within 25 m, so every car is at least ≈ 44 px high in the original frame (KITTI's
Moderate starts at 25 px; at the 96×320 input a 60 m car is 5 px high and one input pixel of its box bottom is
±2 m of depth).  ``easy`` has 1-4 cars within 20 m on a bare ground plane, nothing else."""


def road_config(difficulty: Difficulty = "standard", **overrides) -> RoadConfig:
    """The :class:`RoadConfig` of a difficulty preset (:data:`ROAD_PRESETS`), with ``overrides`` applied."""
    return RoadConfig(**{**ROAD_PRESETS[check_difficulty(difficulty)], **overrides})


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
