"""The shapes world: 16 procedural object categories built from parametric parts.

It stands in for Pascal3D+/ObjectNet3D (viewpoint estimation from an image), ModelNet40 (point-cloud
classification) and ShapeNetPart (part segmentation).  Everything is generated on the fly and is a
pure function of ``(world, split, index, seed)``: per-sample random streams come from
``numpy.random.default_rng([WORLD_ID, seed, split_id, index, stream])`` (PCG64, the same on every
machine), never from global state.

Canonical object frame (Pascal3D+ / PoseFromShape convention)
------------------------------------------------------------
* z is **up**; the object's **front faces −y** (a chair's seat edge, a car's bonnet and lights, an
  aeroplane's nose, a monitor's display, a guitar's sound hole, a bookshelf's open side, a bed's foot
  end, a lamp's arm); +x is on the viewer's right when the front is seen head-on.  A mug's handle is
  on +x.
* The object is centred on its axis-aligned bounding box (symmetric objects: on their symmetry axis, the
  z axis, so that rotations about z map them onto themselves) and scaled so that the box's farthest corner is
  at distance 1 (every point lies in the unit sphere, as in ModelNet's normalisation).

Viewpoint (Pascal3D+): azimuth a about the up axis, elevation e, in-plane rotation θ, distance d.
The camera centre is ``d·(cos e·sin a, −cos e·cos a, sin e)``: a = 0, e = 0 looks at the front from
the −y side, a = 90° looks at the +x side.  Labels are in **radians** (``viewpoint`` =
(azimuth ∈ [0, 2π), elevation, inplane)); ``numpy.degrees`` gives the degrees Pascal3D+ files store.  The library's
:func:`distill3d.geometry.rotations.viewpoint_to_matrix` gives Pascal3D+'s rotation, whose camera looks
down −z with y up; the OpenCV extrinsics used for rendering are ``R = diag(1, −1, −1)·R_pascal``,
``t = (0, 0, d)`` (see :func:`viewpoint_extrinsics`).  Geodesic errors between two Pascal3D+ rotations
are unchanged by that fixed flip.

Splits ``train`` / ``val`` / ``test`` draw from independent random streams of the same distribution;
category ids are indices into :data:`CATEGORIES` whatever subset a dataset uses.

Speed (2 shared CPU cores, default 64×64, 1 ray/pixel, batches of 256; ``benchmarks/world_speed.py``):
≈550–650 viewpoint samples/s with 1024-point clouds, ≈0.8–1.1k without, ≈1.1k point-cloud
samples/s, ≈200/s with the 12-view rig renders (the shared cores make these vary by ±30 %).  Point
clouds are generated on the fly (several times faster than training consumes them); rendered viewpoint
splits that are reused over epochs are rendered once and cached by the methods
(:class:`distill3d.data.cache.MaterializedDataset`; see ``benchmarks/results/world_speed.md``).
Datasets implement ``__getitems__``, so a DataLoader worker renders a whole batch in one call.
"""

from __future__ import annotations

import colorsys
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from distill3d.data.worlds.difficulty import Difficulty, check_difficulty
from distill3d.data.worlds.render import (
    PrimitiveKind,
    Primitives,
    RenderOutput,
    SceneBatch,
    primitive_aabb,
    render,
    rotation_from_z,
    sample_surface,
)
from distill3d.geometry.rotations import canonical_azimuth, rotation_x, rotation_z, viewpoint_to_matrix

__all__ = [
    "CATEGORIES",
    "PART_NAMES",
    "SEEN_CATEGORIES",
    "SHAPES_PRESETS",
    "SPLITS",
    "UNSEEN_CATEGORIES",
    "CategoryInfo",
    "ShapeObject",
    "ShapesPointCloudDataset",
    "ShapesPreset",
    "ShapesViewpointDataset",
    "ShapesWorld",
    "build_object",
    "category_part_ids",
    "intrinsics",
    "multiview_rig",
    "procedural_backgrounds",
    "render_viewpoints",
    "viewpoint_extrinsics",
]

WORLD_ID = 1  # distinguishes the shapes world's random streams from the other worlds'
SPLITS = {"train": 0, "val": 1, "test": 2}
_STREAM_OBJECT, _STREAM_VIEW, _STREAM_APPEARANCE, _STREAM_POINTS = 0, 1, 2, 3
Vec = Sequence[float] | np.ndarray
Mat = np.ndarray


@dataclass(frozen=True)
class CategoryInfo:
    """A category: its parts (ShapeNetPart style) and its rotational symmetry about the up axis.

    ``symmetry`` is ``"continuous"`` for objects of revolution (bottle, cup: azimuth is undefined, as
    in Pascal3D+/ObjectNet3D evaluations that treat such classes specially), ``"discrete"`` when the
    instances are n-fold symmetric with n varying per instance (rocket: fins, stool: legs, table: 2
    for rectangular tops, 0 = continuous for round pedestal tables; see
    :attr:`ShapeObject.symmetry_order`), else ``"none"``.
    """

    name: str
    parts: tuple[str, ...]
    symmetry: Literal["none", "continuous", "discrete"] = "none"


_CATEGORY_LIST = (
    CategoryInfo("airplane", ("fuselage", "wing", "tail", "engine")),
    CategoryInfo("bed", ("frame", "mattress", "headboard", "pillow")),
    CategoryInfo("bench", ("seat", "leg", "back")),
    CategoryInfo("bookshelf", ("frame", "shelf", "book")),
    CategoryInfo("bottle", ("body", "neck", "cap"), "continuous"),
    CategoryInfo("car", ("body", "cabin", "wheel", "light")),
    CategoryInfo("chair", ("seat", "back", "leg", "arm")),
    CategoryInfo("cup", ("body", "base"), "continuous"),
    CategoryInfo("guitar", ("body", "neck", "head")),
    CategoryInfo("lamp", ("base", "pole", "shade")),
    CategoryInfo("monitor", ("display", "frame", "stand", "base")),
    CategoryInfo("mug", ("body", "handle")),
    CategoryInfo("rocket", ("body", "nose", "fin", "engine"), "discrete"),
    CategoryInfo("sofa", ("seat", "back", "arm", "leg")),
    CategoryInfo("stool", ("seat", "leg"), "discrete"),
    CategoryInfo("table", ("top", "leg"), "discrete"),
)
CATEGORIES: tuple[str, ...] = tuple(c.name for c in _CATEGORY_LIST)
CATEGORY_INFO: dict[str, CategoryInfo] = {c.name: c for c in _CATEGORY_LIST}
#: Category-agnostic setting: methods train on SEEN and are evaluated on the held-out UNSEEN categories.
UNSEEN_CATEGORIES: tuple[str, ...] = ("bed", "guitar", "rocket", "stool")
SEEN_CATEGORIES: tuple[str, ...] = tuple(c for c in CATEGORIES if c not in UNSEEN_CATEGORIES)

_PART_OFFSETS: dict[str, int] = {}
_offset = 0
for _info in _CATEGORY_LIST:
    _PART_OFFSETS[_info.name] = _offset
    _offset += len(_info.parts)
#: Global part names, indexed by part id ("category/part"); 51 parts over 16 categories.
PART_NAMES: tuple[str, ...] = tuple(f"{c.name}/{p}" for c in _CATEGORY_LIST for p in c.parts)


def category_part_ids(category: str) -> list[int]:
    """Global part ids of a category (ShapeNetPart's category → parts table)."""
    start = _PART_OFFSETS[category]
    return list(range(start, start + len(CATEGORY_INFO[category].parts)))


def _category_names(categories: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(categories, str):
        named = {"all": CATEGORIES, "seen": SEEN_CATEGORIES, "unseen": UNSEEN_CATEGORIES}
        if categories in named:
            return named[categories]
        categories = (categories,)
    unknown = [c for c in categories if c not in CATEGORY_INFO]
    if unknown:
        raise ValueError(f"unknown shape categories {unknown}; known: {CATEGORIES}")
    return tuple(categories)


def _sample_rng(seed: int, split: str, index: int, stream: int) -> np.random.Generator:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    return np.random.default_rng([WORLD_ID, int(seed), SPLITS[split], int(index), stream])


# ----------------------------------------------------------------------------------------------
# Part recipes.
# ----------------------------------------------------------------------------------------------


def _rot_x(angle: float) -> np.ndarray:
    return rotation_x(torch.tensor(float(angle), dtype=torch.float64)).numpy()


def _rot_z(angle: float) -> np.ndarray:
    return rotation_z(torch.tensor(float(angle), dtype=torch.float64)).numpy()


def _random_color(
    rng: np.random.Generator, saturation: tuple[float, float] = (0.2, 0.85), value: tuple[float, float] = (0.35, 0.95)
) -> np.ndarray:
    hue = rng.random()
    return np.array(colorsys.hsv_to_rgb(hue, rng.uniform(*saturation), rng.uniform(*value)))


class _Builder:
    """Accumulates one object's primitives; each part gets one random colour unless given one."""

    def __init__(self, category: str, rng: np.random.Generator, readable: bool = False) -> None:
        self.category, self.rng, self.readable = category, rng, readable
        self.part_index = {p: i for i, p in enumerate(CATEGORY_INFO[category].parts)}
        self.colors: dict[str, np.ndarray] = {}
        self.rows: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]] = []

    def color(self, part: str) -> np.ndarray:
        if part not in self.colors:
            self.colors[part] = _random_color(self.rng)
        return self.colors[part]

    def add(
        self, kind: int, part: str, center: Vec, size: Vec, rotation: Mat | None = None, albedo: Vec | None = None
    ) -> None:
        size4 = np.zeros(4)
        size4[: len(size)] = size
        rot = np.eye(3) if rotation is None else np.asarray(rotation, np.float64)
        color = self.color(part) if albedo is None else np.asarray(albedo, np.float64)
        part_id = _PART_OFFSETS[self.category] + self.part_index[part]
        self.rows.append((int(kind), rot, np.asarray(center, np.float64), size4, color, part_id))

    def box(
        self,
        part: str,
        center: Vec,
        half: Vec,
        rounding: float = 0.0,
        rotation: Mat | None = None,
        albedo: Vec | None = None,
    ) -> None:
        rounding = min(rounding, 0.95 * min(half))
        self.add(PrimitiveKind.BOX, part, center, [*half, rounding], rotation, albedo)

    def sphere(self, part: str, center: Vec, radius: float, albedo: Vec | None = None) -> None:
        self.add(PrimitiveKind.SPHERE, part, center, [radius], None, albedo)

    def ellipsoid(
        self, part: str, center: Vec, semi: Vec, rotation: Mat | None = None, albedo: Vec | None = None
    ) -> None:
        self.add(PrimitiveKind.ELLIPSOID, part, center, semi, rotation, albedo)

    def _segment(self, kind: int, part: str, start: Vec, end: Vec, size: list[float], albedo: Vec | None) -> None:
        start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
        half = 0.5 * float(np.linalg.norm(end - start))
        rotation = rotation_from_z(end - start)
        size = [size[0], size[1], half] if kind == PrimitiveKind.CONE else [size[0], half]
        self.add(kind, part, 0.5 * (start + end), size, rotation, albedo)

    def cylinder(self, part: str, start: Vec, end: Vec, radius: float, albedo: Vec | None = None) -> None:
        self._segment(PrimitiveKind.CYLINDER, part, start, end, [radius], albedo)

    def capsule(self, part: str, start: Vec, end: Vec, radius: float, albedo: Vec | None = None) -> None:
        self._segment(PrimitiveKind.CAPSULE, part, start, end, [radius], albedo)

    def cone(
        self, part: str, start: Vec, end: Vec, radius_start: float, radius_end: float, albedo: Vec | None = None
    ) -> None:
        self._segment(PrimitiveKind.CONE, part, start, end, [radius_start, radius_end], albedo)

    def build(self) -> Primitives:
        kind, rot, center, size, albedo, part = zip(*self.rows, strict=True)
        return Primitives(
            kind=np.array(kind, np.int32),
            rotation=np.stack(rot),
            center=np.stack(center),
            size=np.stack(size),
            albedo=np.clip(np.stack(albedo), 0.0, 1.0),
            part=np.array(part, np.int64),
            instance=np.zeros(len(kind), np.int64),
        )


_DARK = (0.08, 0.08, 0.1)


def _legs_at_corners(b: _Builder, half_x: float, half_y: float, top: float, radius: float, part: str = "leg") -> None:
    """Four legs (all round or all square) under the corners of a top at height ``top``."""
    round_legs = b.rng.random() < 0.5
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = sx * (half_x - radius), sy * (half_y - radius)
            if round_legs:
                b.cylinder(part, [x, y, 0.0], [x, y, top], radius)
            else:
                b.box(part, [x, y, top / 2], [radius, radius, top / 2])


def _airplane(b: _Builder) -> int:
    rng = b.rng
    length, radius = rng.uniform(3.0, 4.5), rng.uniform(0.18, 0.3)
    b.capsule("fuselage", [0, -length / 2, 0], [0, length / 2, 0], radius)
    span, chord = rng.uniform(1.4, 2.2), rng.uniform(0.35, 0.6)
    sweep, wing_z = rng.uniform(0.0, 0.5), rng.choice([-0.5, 0.0, 0.6]) * radius
    wing_y = rng.uniform(-0.15, 0.1) * length
    thick = rng.uniform(0.03, 0.06)
    for side in (-1, 1):
        rotation = _rot_z(side * sweep)
        offset = rotation @ np.array([side * span / 2, 0.0, 0.0])
        b.box("wing", [offset[0], wing_y + offset[1], wing_z], [span / 2, chord / 2, thick], rotation=rotation)
    tail_y = length / 2 - 0.15
    fin_h = rng.uniform(0.45, 0.8)
    b.box("tail", [0, tail_y, radius + fin_h / 2 - 0.05], [0.03, rng.uniform(0.2, 0.35), fin_h / 2])
    b.box("tail", [0, tail_y, 0.1 * radius], [rng.uniform(0.45, 0.8), rng.uniform(0.12, 0.2), 0.03])
    engines = int(rng.choice([0, 2, 4]))
    for k in range(engines):
        side = -1 if k % 2 == 0 else 1
        reach = span * (0.35 if k < 2 else 0.7)
        x, y = side * reach * math.cos(sweep), wing_y + reach * math.sin(sweep) - 0.1
        r = rng.uniform(0.09, 0.14) if k < 2 else 0.08
        b.cylinder("engine", [x, y - 0.35, wing_z - 0.15], [x, y + 0.15, wing_z - 0.15], r)
    return 1


def _bed(b: _Builder) -> int:
    rng = b.rng
    width, length, frame_h = rng.uniform(1.0, 1.8), rng.uniform(1.9, 2.2), rng.uniform(0.25, 0.4)
    leg = rng.uniform(0.05, 0.15)
    b.box("frame", [0, 0, leg + frame_h / 2], [width / 2, length / 2, frame_h / 2])
    _legs_at_corners(b, width / 2, length / 2, leg + 0.01, 0.04, part="frame")
    mattress_h = rng.uniform(0.15, 0.3)
    top = leg + frame_h + mattress_h / 2
    b.box("mattress", [0, -0.02, top], [width / 2 - 0.03, length / 2 - 0.05, mattress_h / 2], rounding=0.06)
    head_h = rng.uniform(0.5, 0.9)
    b.box(
        "headboard",
        [0, length / 2 + 0.03, (leg + frame_h + head_h) / 2],
        [width / 2 + 0.02, 0.04, (leg + frame_h + head_h) / 2],
    )
    if rng.random() < 0.5:  # footboard, lower, at the front end
        foot_h = rng.uniform(0.1, 0.3) + leg + frame_h
        b.box("headboard", [0, -length / 2 - 0.03, foot_h / 2], [width / 2 + 0.02, 0.04, foot_h / 2])
    pillows = 1 if width < 1.3 else 2
    for k in range(pillows):
        x = 0.0 if pillows == 1 else (k - 0.5) * width / 2
        b.ellipsoid(
            "pillow", [x, length / 2 - 0.3, leg + frame_h + mattress_h + 0.05], [min(0.3, width / 4.4), 0.17, 0.07]
        )
    return 1


def _bench(b: _Builder) -> int:
    rng = b.rng
    width, depth, height, thick = rng.uniform(1.2, 1.9), rng.uniform(0.32, 0.45), rng.uniform(0.4, 0.5), 0.05
    b.box("seat", [0, 0, height - thick / 2], [width / 2, depth / 2, thick / 2], rounding=0.01)
    if rng.random() < 0.5:  # two panel legs
        for sx in (-1, 1):
            b.box(
                "leg", [sx * (width / 2 - 0.1), 0, (height - thick) / 2], [0.03, depth / 2 - 0.02, (height - thick) / 2]
            )
    else:
        _legs_at_corners(b, width / 2 - 0.05, depth / 2, height - thick, 0.035)
    if b.readable or rng.random() < 0.6:
        back_h, tilt = rng.uniform(0.3, 0.45), rng.uniform(0.0, 0.25)
        center = [0, depth / 2 - 0.03 + math.sin(tilt) * back_h / 2, height + 0.05 + math.cos(tilt) * back_h / 2]
        b.box("back", center, [width / 2, 0.025, back_h / 2], rotation=_rot_x(-tilt))
        for sx in (-1, 1):
            b.box("back", [sx * (width / 2 - 0.1), depth / 2 - 0.03, height + 0.03], [0.025, 0.025, 0.06])
        return 1
    return 2  # no back: the seat and legs look the same from the front and from behind


def _bookshelf(b: _Builder) -> int:
    rng = b.rng
    width, depth, height, board = rng.uniform(0.6, 1.2), rng.uniform(0.25, 0.4), rng.uniform(0.9, 2.0), 0.025
    for sx in (-1, 1):
        b.box("frame", [sx * (width / 2 - board), 0, height / 2], [board, depth / 2, height / 2])
    b.box("frame", [0, 0, height - board], [width / 2, depth / 2, board])
    b.box("frame", [0, 0, board + 0.03], [width / 2, depth / 2, board + 0.03])
    b.box("frame", [0, depth / 2 - 0.006, height / 2], [width / 2, 0.006, height / 2])
    shelves = int(rng.integers(2, 6))
    levels = np.linspace(0.06 + 2 * board, height - 2 * board, shelves + 1)
    for level in levels[1:-1]:
        b.box("shelf", [0, 0, level], [width / 2 - 2 * board, depth / 2 - 0.01, board * 0.8])
    gap = levels[1] - levels[0]
    for k in range(shelves):
        x = -width / 2 + 2 * board + 0.01
        for _ in range(int(rng.integers(0, 7))):
            w, h = rng.uniform(0.02, 0.06), rng.uniform(0.5, 0.85) * gap
            if x + 2 * w > width / 2 - 2 * board:
                break
            b.box(
                "book",
                [x + w, -0.01, levels[k] + board + h / 2],
                [w, depth / 2 - 0.04, h / 2],
                albedo=_random_color(rng),
            )
            x += 2 * w + rng.uniform(0.0, 0.03)
    return 1


def _bottle(b: _Builder) -> int:
    rng = b.rng
    radius, body_h = rng.uniform(0.1, 0.17), rng.uniform(0.35, 0.6)
    neck_r, neck_h, shoulder = radius * rng.uniform(0.25, 0.45), rng.uniform(0.1, 0.2), rng.uniform(0.05, 0.15)
    b.cylinder("body", [0, 0, 0], [0, 0, body_h], radius)
    b.cone("body", [0, 0, body_h], [0, 0, body_h + shoulder], radius, neck_r)
    b.cylinder("neck", [0, 0, body_h + shoulder - 0.01], [0, 0, body_h + shoulder + neck_h], neck_r)
    top = body_h + shoulder + neck_h
    b.cylinder("cap", [0, 0, top - 0.005], [0, 0, top + rng.uniform(0.03, 0.06)], neck_r * 1.15)
    return 0


def _car(b: _Builder) -> int:
    rng = b.rng
    width, length, wheel_r = rng.uniform(1.6, 1.9), rng.uniform(3.6, 4.8), rng.uniform(0.28, 0.38)
    body_low, body_h = wheel_r * 0.6, rng.uniform(0.5, 0.75)
    b.box("body", [0, 0, body_low + body_h / 2], [width / 2, length / 2, body_h / 2], rounding=0.12)
    cabin_l, cabin_h = length * rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6)
    cabin_y = rng.uniform(0.08, 0.2) * length if b.readable else rng.uniform(0.0, 0.15) * length
    top = body_low + body_h
    b.box("cabin", [0, cabin_y, top + cabin_h / 2 - 0.03], [width / 2 - 0.1, cabin_l / 2, cabin_h / 2], rounding=0.1,
          albedo=np.array(_DARK) + rng.uniform(0.0, 0.25))  # fmt: skip
    axle = length / 2 - wheel_r * rng.uniform(1.3, 1.8)
    for sx in (-1, 1):
        for sy in (-1, 1):
            b.cylinder(
                "wheel",
                [sx * (width / 2 - 0.12), sy * axle, wheel_r],
                [sx * (width / 2 + 0.02), sy * axle, wheel_r],
                wheel_r,
                albedo=_DARK,
            )
    light_z = body_low + body_h * 0.65
    light_size = [0.2, 0.05, 0.1] if b.readable else [0.14, 0.04, 0.06]
    for sx in (-1, 1):
        b.box("light", [sx * width * 0.32, -length / 2 + 0.02, light_z], light_size, albedo=(1.0, 0.95, 0.7))
        if b.readable:  # red tail lights: front and back differ at 64 px
            b.box("light", [sx * width * 0.36, length / 2 - 0.02, light_z], [0.14, 0.05, 0.07],
                  albedo=(0.8, 0.05, 0.05))
    return 1


def _chair(b: _Builder) -> int:
    rng = b.rng
    width, depth, height, thick = (
        rng.uniform(0.4, 0.55),
        rng.uniform(0.4, 0.52),
        rng.uniform(0.4, 0.5),
        rng.uniform(0.04, 0.08),
    )
    b.box("seat", [0, 0, height - thick / 2], [width / 2, depth / 2, thick / 2], rounding=rng.uniform(0.0, 0.02))
    _legs_at_corners(b, width / 2, depth / 2, height - thick, rng.uniform(0.02, 0.035))
    back_h, tilt = rng.uniform(0.35, 0.6), rng.uniform(0.0, 0.3)
    center = [0, depth / 2 - 0.03 + math.sin(tilt) * back_h / 2, height + math.cos(tilt) * back_h / 2]
    b.box("back", center, [width / 2, 0.03, back_h / 2], rounding=rng.uniform(0.0, 0.02), rotation=_rot_x(-tilt))
    if rng.random() < 0.4:
        arm_z = height + rng.uniform(0.18, 0.25)
        for sx in (-1, 1):
            x = sx * (width / 2 + 0.02)
            b.box("arm", [x, 0, arm_z], [0.03, depth / 2, 0.02])
            b.capsule("arm", [x, -depth / 2 + 0.05, height], [x, -depth / 2 + 0.05, arm_z], 0.018)
    return 1


def _cup(b: _Builder) -> int:
    rng = b.rng
    bottom_r, top_r, height = rng.uniform(0.05, 0.08), rng.uniform(0.08, 0.11), rng.uniform(0.1, 0.18)
    b.cone("body", [0, 0, 0.01], [0, 0, height], bottom_r, top_r)
    b.cylinder("body", [0, 0, height - 0.004], [0, 0, height + 0.001], top_r * 0.9, albedo=np.array(_DARK) + 0.1)
    b.cylinder("base", [0, 0, 0], [0, 0, 0.015], bottom_r * 1.1)
    return 0


def _guitar(b: _Builder) -> int:
    rng = b.rng
    lower, upper, depth = rng.uniform(0.17, 0.22), rng.uniform(0.12, 0.16), rng.uniform(0.04, 0.06)
    b.ellipsoid("body", [0, 0, lower], [lower, depth, lower * 1.1])
    b.ellipsoid("body", [0, 0, 2 * lower + upper * 0.6], [upper, depth, upper * 1.1])
    b.cylinder("body", [0, -depth + 0.01, 2 * lower * 0.95], [0, -depth - 0.005, 2 * lower * 0.95], 0.045, albedo=_DARK)
    neck_bottom, neck_len = 2 * lower + upper * 1.2, rng.uniform(0.4, 0.55)
    b.box("neck", [0, 0, neck_bottom + neck_len / 2], [0.025, 0.015, neck_len / 2])
    tilt = rng.uniform(0.1, 0.3)
    head_len = rng.uniform(0.12, 0.18)
    top = neck_bottom + neck_len
    b.box(
        "head",
        [0, math.sin(tilt) * head_len / 2, top + math.cos(tilt) * head_len / 2],
        [0.04, 0.012, head_len / 2],
        rotation=_rot_x(-tilt),
    )
    return 1


def _lamp(b: _Builder) -> int:
    rng = b.rng
    base_r, height = rng.uniform(0.1, 0.18), rng.uniform(0.4, 1.0)
    if rng.random() < 0.5:
        b.cylinder("base", [0, 0, 0], [0, 0, 0.03], base_r)
    else:
        b.box("base", [0, 0.05, 0.02], [base_r, base_r * 1.2, 0.02], rounding=0.01)
    pole_r = rng.uniform(0.01, 0.02)
    b.cylinder("pole", [0, 0, 0.02], [0, 0, height], pole_r)
    reach = rng.uniform(0.3, 0.5) if b.readable else rng.uniform(0.15, 0.4)
    end = np.array([0.0, -reach, height + rng.uniform(-0.05, 0.1)])
    b.capsule("pole", [0, 0, height], end, pole_r)
    shade_h, shade_top, shade_bottom = rng.uniform(0.12, 0.2), rng.uniform(0.02, 0.06), rng.uniform(0.08, 0.15)
    b.cone("shade", end + np.array([0, 0, 0.01]), end - np.array([0, 0, shade_h]), shade_top, shade_bottom)
    return 1


def _monitor(b: _Builder) -> int:
    rng = b.rng
    width, height, depth = rng.uniform(0.5, 0.75), rng.uniform(0.3, 0.45), rng.uniform(0.02, 0.05)
    bottom = rng.uniform(0.1, 0.2)
    center_z = bottom + height / 2
    b.box("frame", [0, 0, center_z], [width / 2, depth / 2, height / 2], rounding=0.01)
    bezel = rng.uniform(0.01, 0.03)
    b.box("display", [0, -depth / 2, center_z], [width / 2 - bezel, 0.004, height / 2 - bezel],
          albedo=np.array([0.05, 0.08, 0.15]) + rng.uniform(0, 0.15))  # fmt: skip
    b.box("stand", [0, depth / 2 + 0.02, (center_z + 0.02) / 2], [0.03, 0.015, (center_z - 0.02) / 2])
    base_w = rng.uniform(0.12, 0.25)
    if rng.random() < 0.5:
        b.box("base", [0, 0.03, 0.01], [base_w, 0.1, 0.012], rounding=0.008)
    else:
        b.ellipsoid("base", [0, 0.03, 0.012], [base_w, 0.11, 0.015])
    return 1


def _mug(b: _Builder) -> int:
    rng = b.rng
    radius, height = rng.uniform(0.04, 0.06), rng.uniform(0.08, 0.12)
    b.cylinder("body", [0, 0, 0], [0, 0, height], radius)
    b.cylinder("body", [0, 0, height - 0.004], [0, 0, height + 0.001], radius * 0.88, albedo=np.array(_DARK) + 0.1)
    if b.readable:
        loop, thick = height * rng.uniform(0.4, 0.5), rng.uniform(0.01, 0.014)
    else:
        loop, thick = height * rng.uniform(0.3, 0.4), rng.uniform(0.006, 0.01)
    angles = np.linspace(-np.pi / 2, np.pi / 2, 5)
    arc = np.stack([radius * 0.9 + loop * np.cos(angles), 0 * angles, height / 2 + loop * np.sin(angles)], 1)
    for start, end in itertools.pairwise(arc):
        b.capsule("handle", start, end, thick)
    return 1


def _rocket(b: _Builder) -> int:
    rng = b.rng
    radius, height = rng.uniform(0.08, 0.14), rng.uniform(0.7, 1.1)
    base = 0.08
    b.cylinder("body", [0, 0, base], [0, 0, base + height], radius)
    b.cone("nose", [0, 0, base + height], [0, 0, base + height + rng.uniform(0.15, 0.3)], radius, 0.0)
    b.cone("engine", [0, 0, base], [0, 0, 0.0], radius * 0.6, radius * 0.85)
    fins = int(rng.choice([3, 4]))
    fin_h, fin_w = rng.uniform(0.15, 0.3), rng.uniform(0.08, 0.15)
    start = rng.random() * 2 * np.pi / fins
    for k in range(fins):
        angle = start + 2 * np.pi * k / fins
        rotation = _rot_z(angle)
        center = rotation @ np.array([radius + fin_w / 2 - 0.01, 0.0, base + fin_h / 2])
        b.box("fin", center, [fin_w / 2, 0.01, fin_h / 2], rotation=rotation)
    return fins


def _sofa(b: _Builder) -> int:
    rng = b.rng
    width, depth, seat_h = rng.uniform(1.4, 2.4), rng.uniform(0.8, 1.0), rng.uniform(0.35, 0.45)
    leg = rng.uniform(0.04, 0.1)
    b.box(
        "seat", [0, -0.05, leg + (seat_h - leg) / 2], [width / 2, depth / 2 - 0.05, (seat_h - leg) / 2], rounding=0.06
    )
    back_h = rng.uniform(0.35, 0.55)
    b.box(
        "back",
        [0, depth / 2 - 0.1, leg + (seat_h + back_h - leg) / 2],
        [width / 2, 0.1, (seat_h + back_h - leg) / 2],
        rounding=0.07,
    )
    if rng.random() < 0.85:
        arm_h = seat_h + rng.uniform(0.1, 0.25)
        for sx in (-1, 1):
            b.box(
                "arm",
                [sx * (width / 2 + 0.06), 0, leg + (arm_h - leg) / 2],
                [0.1, depth / 2, (arm_h - leg) / 2],
                rounding=0.06,
            )
    _legs_at_corners(b, width / 2, depth / 2 - 0.05, leg + 0.01, 0.03)
    return 1


def _stool(b: _Builder) -> int:
    rng = b.rng
    height, radius = rng.uniform(0.45, 0.8), rng.uniform(0.15, 0.22)
    legs = int(rng.choice([3, 4]))
    square = legs == 4 and rng.random() < 0.4
    if square:
        b.box("seat", [0, 0, height - 0.025], [radius, radius, 0.025], rounding=0.01)
    else:
        b.cylinder("seat", [0, 0, height - 0.05], [0, 0, height], radius)
    splay = rng.uniform(1.0, 1.4)
    for k in range(legs):
        angle = 2 * np.pi * k / legs + (np.pi / 4 if square else 0.0)
        direction = np.array([math.sin(angle), -math.cos(angle), 0.0])
        b.cylinder("leg", direction * radius * 0.7 + [0, 0, height - 0.05], direction * radius * splay * 0.8, 0.018)
    return legs


def _table(b: _Builder) -> int:
    rng = b.rng
    height, thick = rng.uniform(0.65, 0.8), rng.uniform(0.03, 0.06)
    if rng.random() < 0.4:  # round top on a pedestal
        radius = rng.uniform(0.4, 0.7)
        b.cylinder("top", [0, 0, height - thick], [0, 0, height], radius)
        b.cylinder("leg", [0, 0, 0.03], [0, 0, height - thick], rng.uniform(0.04, 0.07))
        b.cone("leg", [0, 0, 0], [0, 0, 0.05], radius * 0.6, radius * 0.3)
        return 0
    width, depth = (rng.uniform(1.1, 1.6), rng.uniform(0.6, 0.85)) if b.readable else (
        rng.uniform(0.8, 1.6), rng.uniform(0.6, 1.0))  # readable: clearly oblong, so 2-fold and not 4-fold
    b.box("top", [0, 0, height - thick / 2], [width / 2, depth / 2, thick / 2], rounding=rng.uniform(0.0, 0.02))
    _legs_at_corners(b, width / 2 - 0.04, depth / 2 - 0.04, height - thick, rng.uniform(0.025, 0.045))
    return 2


_RECIPES: dict[str, Callable[[_Builder], int]] = {
    "airplane": _airplane, "bed": _bed, "bench": _bench, "bookshelf": _bookshelf, "bottle": _bottle,
    "car": _car, "chair": _chair, "cup": _cup, "guitar": _guitar, "lamp": _lamp, "monitor": _monitor,
    "mug": _mug, "rocket": _rocket, "sofa": _sofa, "stool": _stool, "table": _table,
}  # fmt: skip


@dataclass
class ShapeObject:
    """One object instance in its canonical frame (z up, front −y, inside the unit sphere).

    ``symmetry_order``: 0 = continuous symmetry about z, 1 = none, n = n-fold about z.
    """

    category: str
    category_id: int
    primitives: Primitives
    symmetry_order: int


def build_object(category: str, rng: np.random.Generator, readable: bool = False) -> ShapeObject:
    """A random instance of ``category`` (random proportions, part counts and colours), normalised.

    ``readable`` (the ``easy`` and ``standard`` presets) makes the fronts of the categories that are hard to tell
    from their backs at 64 px readable: cars get larger head lights and red tail lights and a cabin set back,
    lamps a longer arm, mugs a larger handle, benches always a back, rectangular tables a clearly oblong top.
    """
    builder = _Builder(category, rng, readable)
    order = _RECIPES[category](builder)
    prims = builder.build()
    low, high = primitive_aabb(prims)
    center = 0.5 * (low + high)
    if order != 1:  # keep the symmetry axis (the recipes' z axis) through the origin
        center[:2] = 0.0
    corners = np.stack(np.meshgrid(*zip(low, high, strict=False), indexing="ij"), -1).reshape(-1, 3)
    scale = 1.0 / float(np.linalg.norm(corners - center, axis=1).max())
    prims = prims.transformed(np.eye(3), -scale * center, scale)
    return ShapeObject(category, CATEGORIES.index(category), prims, order)


# ----------------------------------------------------------------------------------------------
# Cameras, backgrounds, rendering.
# ----------------------------------------------------------------------------------------------

_PASCAL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])


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
    pascal = viewpoint_to_matrix(
        torch.from_numpy(a.copy()), torch.from_numpy(e.copy()), torch.from_numpy(th.copy())
    ).numpy()
    t = np.zeros((len(d), 3))
    t[:, 2] = d
    return _PASCAL_TO_OPENCV @ pascal, t


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


def _unbatch(batch: dict[str, torch.Tensor], size: int, shared: tuple[str, ...] = ()) -> list[dict[str, torch.Tensor]]:
    return [{k: (v if k in shared else v[i]) for k, v in batch.items()} for i in range(size)]


class _ShapesDataset(Dataset):
    def __init__(self, world: ShapesWorld, split: str, length: int) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
        self.world, self.split, self.length = world, split, int(length)

    def __len__(self) -> int:
        return self.length

    def _check(self, indices: Sequence[int]) -> list[int]:
        out = [int(i) for i in indices]
        if any(i < 0 or i >= self.length for i in out):
            raise IndexError(f"index out of range for a dataset of {self.length} samples")
        return out

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        """Batched generation (DataLoader calls this with a whole batch of indices)."""
        indices = self._check(indices)
        return _unbatch(self.batch(indices), len(indices), self._shared_keys)

    _shared_keys: tuple[str, ...] = ()

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class ShapesViewpointDataset(_ShapesDataset):
    """Images with Pascal3D+ viewpoint labels (see :meth:`ShapesWorld.viewpoint_batch` for the keys).

    ``ShapesViewpointDataset(split="train", length=10000, categories="seen", image_size=64, seed=0)``.
    """

    def __init__(
        self,
        split: str = "train",
        length: int = 10000,
        categories: Sequence[str] | str = "all",
        image_size: int = 64,
        n_points: int = 1024,
        seed: int = 0,
        samples_per_side: int = 1,
        with_points: bool = True,
        difficulty: Difficulty = "standard",
    ) -> None:
        super().__init__(ShapesWorld(image_size, n_points, categories, seed, samples_per_side, difficulty), split,
                         length)
        self.with_points = with_points

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Stacked samples for ``indices`` (one renderer call)."""
        return self.world.viewpoint_batch(self.split, self._check(indices), self.with_points)


class ShapesPointCloudDataset(_ShapesDataset):
    """Point clouds for classification and part segmentation (see :meth:`ShapesWorld.point_cloud_batch`).

    With ``with_views`` each sample also carries the fixed 12-view rig's renders (views (12, 3, H, W))
    and its cameras (view_K, view_R, view_t, the same for every sample).
    """

    _shared_keys = ("view_K", "view_R", "view_t")

    def __init__(
        self,
        split: str = "train",
        length: int = 10000,
        categories: Sequence[str] | str = "all",
        n_points: int = 1024,
        seed: int = 0,
        with_views: bool = False,
        image_size: int = 64,
        difficulty: Difficulty = "standard",
    ) -> None:
        super().__init__(ShapesWorld(image_size, n_points, categories, seed, difficulty=difficulty), split, length)
        self.with_views = with_views

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Stacked samples for ``indices``; view_K/R/t are (V, …), shared by the batch."""
        return self.world.point_cloud_batch(self.split, self._check(indices), self.with_views)
