"""The shapes world's 16 object categories: part recipes, symmetry, normalisation (see the package docstring)."""

from __future__ import annotations

import colorsys
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from distill3d.data.worlds.render import (
    PrimitiveKind,
    Primitives,
    primitive_aabb,
    rotation_from_z,
)
from distill3d.geometry.rotations import rotation_x, rotation_z

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


#: The readable guitar's top (sound board): light spruce, against sides and back of a darker random colour.
_SPRUCE = (0.9, 0.78, 0.55)


def _guitar(b: _Builder) -> int:
    rng = b.rng
    lower, upper, depth = rng.uniform(0.17, 0.22), rng.uniform(0.12, 0.16), rng.uniform(0.04, 0.06)
    bouts = ([0, 0, lower], [lower, depth, lower * 1.1]), ([0, 0, 2 * lower + upper * 0.6], [upper, depth, upper * 1.1])
    if b.readable:  # sides and back darker than the light top, so the two faces differ in colour
        b.colors["body"] = _random_color(rng, value=(0.2, 0.5))
    for center, semi in bouts:
        b.ellipsoid("body", center, semi)
    hole_z, front = 2 * lower * 0.95, -depth
    if b.readable:
        # The front (−y) must be readable at 64 px, in an image and in a point cloud: a light top standing a little
        # proud of the body, a larger sound hole, a bridge and a dark fretboard that stand out from it, and a head
        # tilted further back; without them front and back differ only by a 2–3 px hole (and the side views by a
        # sub-pixel head tilt), and every model, the teacher with the shape included, stays at chance on guitars.
        front = -depth * 1.1
        for (cx, cy, cz), (sx, _, sz) in bouts:
            b.ellipsoid("body", [cx, cy - depth * 0.4, cz], [sx * 0.94, depth * 0.7, sz * 0.95], albedo=_SPRUCE)
        b.box("body", [0, front - 0.008, lower * 0.55], [lower * 0.35, 0.012, 0.018], albedo=_DARK)
    hole_radius = rng.uniform(0.06, 0.075) if b.readable else 0.045
    b.cylinder("body", [0, front + 0.01, hole_z], [0, front - 0.005, hole_z], hole_radius, albedo=_DARK)
    neck_bottom, neck_len = 2 * lower + upper * 1.2, rng.uniform(0.4, 0.55)
    b.box("neck", [0, 0, neck_bottom + neck_len / 2], [0.025, 0.015, neck_len / 2])
    if b.readable:
        fretboard_bottom = 2 * lower + upper * 0.6
        fretboard_top = neck_bottom + neck_len
        b.box("neck", [0, -0.022, (fretboard_bottom + fretboard_top) / 2],
              [0.028, 0.01, (fretboard_top - fretboard_bottom) / 2], albedo=_DARK)
    tilt = rng.uniform(0.35, 0.5) if b.readable else rng.uniform(0.1, 0.3)
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
    # readable: a fin points to the front (−y), as a stool's first leg, so the canonical azimuth a mod 2π/n can
    # be read from the fins; hard keeps the original random fin phase (the label then unreadable from any image)
    start = -np.pi / 2 if b.readable else rng.random() * 2 * np.pi / fins
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
    lamps a longer arm, mugs a larger handle, benches always a back, rectangular tables a clearly oblong top,
    rockets a fin at the front (their fin phase is otherwise random, so their canonical azimuth is unreadable), and
    guitars a light top with a larger sound hole, a bridge and a dark fretboard, and a head tilted further back.
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
