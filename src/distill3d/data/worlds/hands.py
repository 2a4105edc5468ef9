"""The hands world: a 21-joint kinematic right hand rendered from primitives, standing in for FreiHAND.

Every sample is a pure function of ``(world, split, index, seed)``: its random stream is
``numpy.random.default_rng([WORLD_ID, seed, split_id, index])``, never global state.

Joints (FreiHAND / :mod:`distill3d.metrics.hand` order)
-------------------------------------------------------
0 wrist; 1-4 thumb (CMC → tip); 5-8 index (MCP, PIP, DIP, tip); 9-12 middle; 13-16 ring; 17-20 little.
:data:`PARENTS` gives each joint's parent; bone ``j`` is the segment ``PARENTS[j] → j`` (j = 1..20).

Hand model
----------
* A right hand in its local frame: x towards the thumb (radial), y along the fingers (distal), z out of the
  palm (palmar); origin at the wrist.  The palm (joints 0, 1, 5, 9, 13, 17) is rigid.
* Bone lengths: adult means (:data:`MEAN_BONE_LENGTHS`, metres) times a per-hand scale (0.85-1.18) times a
  per-bone factor (0.95-1.05): every bone lies in :data:`BONE_LENGTH_RANGE`.
* Angles (radians, :data:`ANGLE_LIMITS`): per finger MCP abduction and flexion, PIP and DIP flexion; thumb
  CMC abduction and flexion, MCP and IP flexion.  Flexion turns the next bone towards the palm.  Poses are
  drawn around a random grasp (open hand ... fist) with per-finger variation and then clipped to the limits.
* Forward kinematics is vectorised over the batch (:func:`forward_kinematics`).

Camera and image
----------------
The default image is 64×64 (FreiHAND's 224×224 crops scaled by 2/7, fast enough for CPU pre-training); any
square size works, 128×128 shows finger detail better.  The hand is
0.4-0.9 m in front of the camera with a uniformly random orientation; the focal length is chosen so that the
joints' 2D extent fills 50-80 % of the image (like FreiHAND's hand-centred crops) and clipped to FreiHAND's
focal range, 360-1130 px at 224 px, scaled to the image size; the principal point is the image centre.  The
hand is drawn as shaded capsules (bones) and spheres (joints), a rounded box for the palm and a capsule for
the forearm, with skin tones from light to dark, a random light, and a random procedural background
(:func:`distill3d.data.worlds.shapes.procedural_backgrounds`).

Labels: ``joints_xyz`` (21, 3) camera frame, metres; ``joints_uv`` (21, 2) pixels (``K·xyz``); ``K`` (3, 3);
``scale`` = ‖J10 − J9‖ (metres; FreiHAND's ``training_scale.json`` reference bone, middle MCP → PIP).

Difficulty presets (``difficulty=``, :mod:`distill3d.data.worlds.difficulty`)
---------------------------------------------------------------------------
Labels mean the same under every preset (same kinematics, joint order, K convention, pose sampler); only the
image statistics change.  Every preset consumes each sample's random stream in the same order, so ``hard`` is
bit-identical to the world before presets existed and a given ``(split, index, seed)`` is the same articulated
hand (bone lengths, joint angles, skin) under every preset: the presets map the same draws of orientation, size,
light and background to narrower ranges.

==========================  ===========================  =========================  ======================
what                        ``hard`` (the original)      ``standard`` (benchmarks)  ``easy``
==========================  ===========================  =========================  ======================
joints' 2D extent / image   50-80 %                      65-85 %                    70-85 %
hand orientation            uniform on SO(3)             palm normal ≤ 60° from     ≤ 45°
                                                         the viewing axis (palm or
                                                         back towards the camera)
in-plane roll (wrist →      any                          within ±60° of "fingers    ±45°
middle MCP in the image)                                 up"
background                  procedural, full contrast    procedural, blurred and    plain colour
                                                         contrast halved, at least
                                                         0.15 luma from the hand
ambient light               0.25-0.6                     0.35-0.6                   0.5
light direction spread      σ = 0.6                      σ = 0.4                    fixed
sensor noise σ / gain       0-0.02 / ×0.9-1.1            0-0.01 / ×0.95-1.05        none
==========================  ===========================  =========================  ======================

No preset draws occluders (the forearm sleeve is the only non-hand object); ``easy`` has no noise at all.
Measured (``python -m benchmarks.learnability_hands --measure``; 512 ``val`` images at 64 px):

=========  ======================  ==============  ===========================  ==========================
preset     joints' 2D extent (px)  hand mask share  mean |luma gap| hand vs bg   share with luma gap < 0.1
=========  ======================  ==============  ===========================  ==========================
hard       34.4                    0.21            0.179                        0.33
standard   39.8                    0.26            0.214                        0.05
easy       41.4                    0.26            0.275                        0.00
=========  ======================  ==============  ===========================  ==========================

The reference bone projects to ≈ 10 px under every preset.  Learning speed (``benchmarks/learnability_hands.py``,
the supervised heat-map model after 5 minutes of 1-thread training on shared cores, fresh samples, 2D error on
``val``): with uniform in-plane roll, 7.7 px with standard's appearance and 8.0 px with easy's plain background
and fixed light — appearance is not what limits it, and the error is flat across quartiles of palm tilt, hand
size, luma gap, finger curl and roll (7.4-8.5 px).  Limiting the roll to ±60° (now part of ``standard``) gives
6.3 px (PA-EPE 22 mm instead of 26 mm) in the same time: the network need not learn every image rotation
before it can tell the fingers apart.  What remains hard is articulation: fingertips (8.5-11 px) against the
wrist and knuckles (3-4 px), and fists (7.1 px) against open hands (4.7 px).

Speed: see :class:`HandsDataset`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from distill3d.data.worlds.difficulty import Difficulty, check_difficulty
from distill3d.data.worlds.render import PrimitiveKind, Primitives, SceneBatch, render, rotation_from_z
from distill3d.data.worlds.shapes import procedural_backgrounds
from distill3d.geometry.hand_skeleton import FINGERS, MEAN_BONE_LENGTHS, NUM_JOINTS, PARENTS

__all__ = [
    "ANGLE_LIMITS",
    "BONE_LENGTH_RANGE",
    "DEFAULT_SPLIT_SIZES",
    "FINGERS",
    "MEAN_BONE_LENGTHS",
    "NUM_JOINTS",
    "PARENTS",
    "PRESETS",
    "SPLITS",
    "HandsDataset",
    "HandsPreset",
    "forward_kinematics",
    "hand_batch",
    "hand_primitives",
    "sample_hand_poses",
]

WORLD_ID = 2  # distinguishes the hands world's random streams from the other worlds'
SPLITS = {"unlabelled": 0, "labelled": 1, "val": 2, "test": 3}
DEFAULT_SPLIT_SIZES = {"unlabelled": 100_000, "labelled": 2_000, "val": 500, "test": 1_000}
"""Suggested split sizes (any size works: samples are generated on demand)."""

_HAND_SCALE_RANGE = (0.85, 1.18)
_BONE_JITTER = 0.05
BONE_LENGTH_RANGE = np.stack(
    [
        MEAN_BONE_LENGTHS * _HAND_SCALE_RANGE[0] * (1 - _BONE_JITTER),
        MEAN_BONE_LENGTHS * _HAND_SCALE_RANGE[1] * (1 + _BONE_JITTER),
    ],
    axis=1,
)
"""(21, 2) min / max length (metres) of bone ``PARENTS[j] → j``."""

ANGLE_LIMITS = {
    "finger_abduction": (-0.30, 0.30),
    "finger_mcp": (-0.35, 1.60),
    "finger_pip": (0.0, 1.90),
    "finger_dip": (-0.10, 1.40),
    "thumb_cmc_abduction": (-0.45, 0.60),
    "thumb_cmc_flexion": (-0.40, 0.90),
    "thumb_mcp": (-0.20, 1.00),
    "thumb_ip": (-0.30, 1.40),
}
"""Joint angle limits in radians (flexion positive towards the palm)."""

# Rest directions (hand frame) of the metacarpals of index..little and of the thumb's first bones, as
# (angle in the palm plane from +y towards +x, palmar tilt).
_METACARPAL_DIRECTIONS = ((0.20, 0.0), (0.03, 0.0), (-0.13, 0.05), (-0.28, 0.12))
_THUMB_BASE_DIRECTION = (0.95, 0.30)
_THUMB_REST_DIRECTION = (0.70, 0.55)
_THUMB_TWIST = -0.9  # pronation of the thumb about its own axis, so that it flexes across the palm

_JOINT_RADII = np.array([
    0.020, 0.015, 0.012, 0.0105, 0.009,
    0.0110, 0.0100, 0.0090, 0.0082,
    0.0115, 0.0105, 0.0092, 0.0084,
    0.0110, 0.0100, 0.0088, 0.0080,
    0.0098, 0.0088, 0.0078, 0.0072,
])  # fmt: skip
_SKIN_TONES = np.array([
    [0.96, 0.80, 0.69], [0.92, 0.73, 0.60], [0.84, 0.63, 0.50], [0.72, 0.52, 0.38],
    [0.58, 0.40, 0.28], [0.42, 0.28, 0.19], [0.30, 0.20, 0.14],
])  # fmt: skip
_FOCAL_RANGE_224 = (360.0, 1130.0)


@dataclass(frozen=True)
class HandsPreset:
    """What a difficulty preset changes (see the module docstring's table).

    fill: range of the joints' 2D extent as a share of the image side; max_tilt_deg: largest angle between the
    palm normal and the viewing axis (``None``: uniform orientation); max_roll_deg: largest in-plane angle of the
    wrist → middle-MCP direction from "fingers up" (``None``: any); background: ``procedural`` / ``soft``
    (blurred, contrast × ``background_contrast``, kept ≥ ``min_luma_gap`` from the skin) / ``plain``; ambient:
    range of the ambient light; light_spread: σ of the light direction's lateral components; noise: largest
    σ of the additive Gaussian sensor noise; gain: half-range of the per-channel gain.
    """

    fill: tuple[float, float]
    max_tilt_deg: float | None
    max_roll_deg: float | None
    background: str
    background_contrast: float
    min_luma_gap: float
    ambient: tuple[float, float]
    light_spread: float
    noise: float
    gain: float


PRESETS: dict[str, HandsPreset] = {
    "hard": HandsPreset((0.5, 0.8), None, None, "procedural", 1.0, 0.0, (0.25, 0.6), 0.6, 0.02, 0.1),
    "standard": HandsPreset((0.65, 0.85), 60.0, 60.0, "soft", 0.5, 0.15, (0.35, 0.6), 0.4, 0.01, 0.05),
    "easy": HandsPreset((0.7, 0.85), 45.0, 45.0, "plain", 0.0, 0.25, (0.5, 0.5), 0.0, 0.0, 0.0),
}
"""The hands world's difficulty presets."""


def _direction(angle: float, tilt: float) -> np.ndarray:
    v = np.array([math.sin(angle), math.cos(angle), tilt])
    return v / np.linalg.norm(v)


def _frame(direction: np.ndarray) -> np.ndarray:
    """(3, 3) frame with columns (x, y = direction, z = palmar component orthogonal to y)."""
    y = direction / np.linalg.norm(direction)
    z = np.array([0.0, 0.0, 1.0]) - y[2] * y
    z /= np.linalg.norm(z)
    return np.stack([np.cross(y, z), y, z], axis=1)


def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotations (B, 3, 3) about a coordinate axis by angles (B,)."""
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros((len(angle), 3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out[:, axis, axis] = 1.0
    out[:, i, i], out[:, i, j], out[:, j, i], out[:, j, j] = c, -s, s, c
    return out


def _twist(frame: np.ndarray, angle: float) -> np.ndarray:
    return frame @ _rot(1, np.array([angle]))[0]


_FINGER_FRAMES = np.stack([_frame(_direction(*d)) for d in _METACARPAL_DIRECTIONS])  # (4, 3, 3)
_THUMB_FRAME = _twist(_frame(_direction(*_THUMB_REST_DIRECTION)), _THUMB_TWIST)


def sample_hand_poses(rngs: Sequence[np.random.Generator]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Random bone lengths (B, 21) (metres, index j = bone ``PARENTS[j] → j``) and joint angles, a dict of
    (B,) thumb and (B, 4) finger (index..little) arrays in radians (keys of :data:`ANGLE_LIMITS`)."""
    lengths, angles = [], {key: [] for key in ANGLE_LIMITS}
    for rng in rngs:
        scale = np.clip(rng.normal(1.0, 0.07), *_HAND_SCALE_RANGE)
        lengths.append(MEAN_BONE_LENGTHS * scale * rng.uniform(1 - _BONE_JITTER, 1 + _BONE_JITTER, NUM_JOINTS))
        grasp = rng.beta(0.9, 1.2)
        curl = np.clip(grasp + rng.normal(0.0, 0.2, 5), 0.0, 1.0)
        independent = rng.random(5) < 0.25
        curl = np.where(independent, rng.choice([0.05, 0.95], 5) + rng.normal(0.0, 0.05, 5), curl)
        curl = np.clip(curl, 0.0, 1.0)
        fingers = curl[1:]

        def between(key: str, fraction, noise: float, rng: np.random.Generator = rng) -> np.ndarray:
            low, high = ANGLE_LIMITS[key]
            return low + (high - low) * np.clip(fraction + rng.normal(0.0, noise, np.shape(fraction)), 0.0, 1.0)

        spread = rng.uniform(-0.1, 0.25)
        abduction = (np.array([-1.0, 0.0, 1.0, 2.0]) * spread * 0.5 + rng.normal(0.0, 0.08, 4)) * (1 - fingers)
        angles["finger_abduction"].append(abduction)
        angles["finger_mcp"].append(between("finger_mcp", 0.18 + 0.82 * fingers, 0.08))
        pip = between("finger_pip", fingers, 0.08)
        angles["finger_pip"].append(pip)
        angles["finger_dip"].append(0.67 * pip + rng.normal(0.0, 0.08, 4))
        angles["thumb_cmc_abduction"].append(between("thumb_cmc_abduction", rng.random(), 0.0))
        angles["thumb_cmc_flexion"].append(between("thumb_cmc_flexion", 0.3 + 0.5 * curl[0], 0.15))
        angles["thumb_mcp"].append(between("thumb_mcp", curl[0], 0.1))
        angles["thumb_ip"].append(between("thumb_ip", 0.2 + 0.7 * curl[0], 0.1))
    out = {key: np.clip(np.array(values, np.float64), *ANGLE_LIMITS[key]) for key, values in angles.items()}
    return np.array(lengths), out


def forward_kinematics(lengths: np.ndarray, angles: dict[str, np.ndarray]) -> np.ndarray:
    """Joint positions (B, 21, 3) in the hand frame (metres) from bone lengths (B, 21) and angles."""
    batch = lengths.shape[0]
    joints = np.zeros((batch, NUM_JOINTS, 3))
    # Thumb: the CMC joint sits at a fixed direction from the wrist; three bones follow.
    joints[:, 1] = lengths[:, 1:2] * _direction(*_THUMB_BASE_DIRECTION)
    frame = (
        _THUMB_FRAME[None]
        @ _rot(2, angles["thumb_cmc_abduction"])
        @ _rot(0, angles["thumb_cmc_flexion"])
    )  # fmt: skip
    for step, (joint, key) in enumerate(((2, None), (3, "thumb_mcp"), (4, "thumb_ip"))):
        if step:
            frame = frame @ _rot(0, angles[key])
        joints[:, joint] = joints[:, joint - 1] + lengths[:, joint : joint + 1] * frame[:, :, 1]
    # Fingers: a metacarpal from the wrist, then MCP (abduction, flexion), PIP and DIP flexion.
    for finger in range(4):
        mcp = 5 + 4 * finger
        rest = _FINGER_FRAMES[finger]
        joints[:, mcp] = lengths[:, mcp : mcp + 1] * rest[:, 1]
        frame = rest[None] @ _rot(2, angles["finger_abduction"][:, finger]) @ _rot(0, angles["finger_mcp"][:, finger])
        for step, key in enumerate(("finger_pip", "finger_dip", None)):
            joint = mcp + 1 + step
            joints[:, joint] = joints[:, joint - 1] + lengths[:, joint : joint + 1] * frame[:, :, 1]
            if key is not None:
                frame = frame @ _rot(0, angles[key][:, finger])
    return joints


def _random_rotations(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation (3, 3) (from a normalised Gaussian quaternion)."""
    w, x, y, z = (q := rng.standard_normal(4)) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip


def _limit_roll(rotation: np.ndarray, up_local: np.ndarray, max_roll_deg: float | None) -> np.ndarray:
    """Turn a hand rotation (3, 3) about the viewing axis so that the image direction of ``up_local`` (hand
    frame, e.g. wrist → middle MCP) has its roll θ (0 = pointing up the image, v decreasing) mapped linearly
    from [−180°, 180°] onto [−max_roll_deg, max_roll_deg]."""
    if max_roll_deg is None:
        return rotation
    up = rotation @ up_local
    roll = math.atan2(up[0], -up[1])
    turn = roll * max_roll_deg / 180.0 - roll
    c, s = math.cos(turn), math.sin(turn)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ rotation


def _limit_tilt(rotation: np.ndarray, max_tilt_deg: float | None) -> np.ndarray:
    """Turn a hand rotation (3, 3) so that its palm normal (hand z) lies within ``max_tilt_deg`` of the viewing
    axis (either sign: palm or back towards the camera), mapping the tilt θ ∈ [0°, 90°] linearly onto
    [0°, max_tilt_deg] about the axis ``normal × ±z`` (the roll about the viewing axis is kept)."""
    if max_tilt_deg is None:
        return rotation
    normal = rotation[:, 2]
    target = np.array([0.0, 0.0, 1.0 if normal[2] >= 0 else -1.0])
    tilt = math.acos(min(1.0, abs(float(normal[2]))))
    axis = np.cross(normal, target)
    norm = np.linalg.norm(axis)
    if norm < 1e-12:
        return rotation
    axis /= norm
    angle = tilt - tilt * max_tilt_deg / 90.0  # turn towards the axis by this much
    cross = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    turn = np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross  # Rodrigues
    return turn @ rotation


_LUMA = np.array([0.299, 0.587, 0.114])


def _backgrounds(rngs: Sequence[np.random.Generator], size: int, preset: HandsPreset) -> np.ndarray:
    """Backgrounds (B, 3, S, S) float32 in [0, 1] of a preset.

    ``procedural`` is :func:`~distill3d.data.worlds.shapes.procedural_backgrounds` as is; ``soft`` blurs it
    (separable box filter of side 2·⌊S/16⌋ + 1 px) and scales its deviation from its mean colour by
    ``background_contrast``; ``plain`` is that mean colour only.
    """
    images = procedural_backgrounds(rngs, size, size)
    if preset.background == "procedural":
        return images
    mean = images.mean(axis=(2, 3), keepdims=True)  # (B, 3, 1, 1)
    if preset.background == "plain":
        return np.ascontiguousarray(np.broadcast_to(mean, images.shape), dtype=np.float32)
    radius = max(1, size // 16)
    kernel = torch.ones(3, 1, 2 * radius + 1, 1, dtype=torch.float32) / (2 * radius + 1)
    x = torch.nn.functional.pad(torch.from_numpy(images), (radius, radius, radius, radius), mode="replicate")
    x = torch.nn.functional.conv2d(torch.nn.functional.conv2d(x, kernel, groups=3), kernel.transpose(2, 3), groups=3)
    return (mean + preset.background_contrast * (x.numpy() - mean)).astype(np.float32)


def _separate_background(rgb: torch.Tensor, coverage: torch.Tensor, min_gap: float) -> torch.Tensor:
    """Shift the background of renders rgb (B, 3, S, S) so that its mean luma differs from the foreground's
    (pixels with coverage (B, S, S) > 0.5) by at least ``min_gap``; the shift is weighted by 1 − coverage,
    towards whichever side (darker / brighter) leaves more room.  ``min_gap = 0`` returns rgb unchanged."""
    if min_gap <= 0:
        return rgb
    luma = torch.einsum("c,bchw->bhw", torch.tensor(_LUMA, dtype=rgb.dtype), rgb)
    fg = coverage > 0.5
    fg_luma = (luma * fg).sum((1, 2)) / fg.sum((1, 2)).clamp_min(1)
    bg_luma = (luma * ~fg).sum((1, 2)) / (~fg).sum((1, 2)).clamp_min(1)
    gap = bg_luma - fg_luma
    brighter = torch.where(gap.abs() > 1e-6, gap > 0, fg_luma < 0.5)
    brighter = torch.where(brighter & (fg_luma + min_gap > 0.95), False, brighter)
    brighter = torch.where(~brighter & (fg_luma - min_gap < 0.05), True, brighter)
    target = torch.where(brighter, torch.full_like(gap, min_gap), torch.full_like(gap, -min_gap))
    shift = torch.where(gap.abs() < min_gap, target - gap, torch.zeros_like(gap))
    return (rgb + shift[:, None, None, None] * (1 - coverage)[:, None]).clamp(0.0, 1.0)


def hand_primitives(
    joints: np.ndarray, scale: float, skin: np.ndarray, sleeve: np.ndarray, forearm: float
) -> Primitives:
    """Primitives of one hand from its camera-frame joints (21, 3): joint spheres, bone capsules, a rounded
    palm box and a forearm capsule of length ``forearm`` metres.  Part ids: 0 palm/wrist/forearm, 1-5
    thumb..little (instance 0)."""
    radii = _JOINT_RADII * scale
    rows: list[tuple[int, np.ndarray, np.ndarray, tuple[float, ...], np.ndarray, int]] = []
    finger_of = [0] + [1 + (j - 1) // 4 for j in range(1, NUM_JOINTS)]
    for j in range(NUM_JOINTS):
        rows.append((PrimitiveKind.SPHERE, np.eye(3), joints[j], (radii[j], 0, 0, 0), skin, finger_of[j]))
    for j in range(1, NUM_JOINTS):
        parent = PARENTS[j]
        if parent == 0 and j != 1:
            continue  # metacarpals are inside the palm box
        axis = joints[j] - joints[parent]
        radius = 0.95 * min(radii[j], radii[parent]) if parent else 0.017 * scale
        rows.append((PrimitiveKind.CAPSULE, rotation_from_z(axis), (joints[j] + joints[parent]) / 2,
                     (radius, np.linalg.norm(axis) / 2, 0, 0), skin, finger_of[j]))  # fmt: skip
    wrist, knuckles = joints[0], joints[[5, 9, 13, 17]]
    along = knuckles.mean(0) - wrist
    across = joints[5] - joints[17]
    y = along / np.linalg.norm(along)
    x = across - (across @ y) * y
    x /= np.linalg.norm(x)
    palm_rotation = np.stack([x, y, np.cross(x, y)], axis=1)
    half = (np.linalg.norm(across) / 2 + 0.6 * radii[5], np.linalg.norm(along) / 2, 0.013 * scale, 0.009 * scale)
    rows.append((PrimitiveKind.BOX, palm_rotation, wrist + along / 2, half, skin, 0))
    elbow = wrist - forearm * y
    rows.append((PrimitiveKind.CAPSULE, rotation_from_z(y), (wrist + elbow) / 2, (0.026 * scale, forearm / 2, 0, 0),
                 sleeve, 0))  # fmt: skip
    return Primitives(
        kind=np.array([r[0] for r in rows], np.int32),
        rotation=np.array([r[1] for r in rows]),
        center=np.array([r[2] for r in rows]),
        size=np.array([r[3] for r in rows], np.float64),
        albedo=np.clip(np.array([r[4] for r in rows]), 0.0, 1.0),
        part=np.array([r[5] for r in rows], np.int64),
        instance=np.zeros(len(rows), np.int64),
    )


def _sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    return np.random.default_rng([WORLD_ID, int(seed), SPLITS[split], int(index)])


def hand_batch(split: str, indices: Sequence[int], seed: int = 0, image_size: int = 64,
               samples_per_side: int = 1, difficulty: Difficulty = "standard") -> dict[str, torch.Tensor]:  # fmt: skip
    """Render the samples ``indices`` of a split in one renderer call, under a difficulty preset
    (:data:`PRESETS`; ``hard`` is the original world).

    Returns image (B, 3, S, S) float32 in [0, 1], mask (B, S, S) bool (hand pixels), K (B, 3, 3), joints_xyz
    (B, 21, 3) camera frame (m), joints_uv (B, 21, 2) px, scale (B,) m, index (B,) int64 (float32 tensors).
    """
    preset = PRESETS[check_difficulty(difficulty)]
    rngs = [_sample_rng(seed, split, i) for i in indices]
    lengths, angles = sample_hand_poses(rngs)
    local = forward_kinematics(lengths, angles)
    size = int(image_size)
    center_px = (size - 1) / 2.0
    focal_low, focal_high = (f * size / 224.0 for f in _FOCAL_RANGE_224)
    scenes, Ks, joints_cam, lights, ambients = [], [], [], [], []
    for b, rng in enumerate(rngs):
        rotation = _limit_tilt(_random_rotations(rng), preset.max_tilt_deg)
        rotation = _limit_roll(rotation, local[b, 9] - local[b, 0], preset.max_roll_deg)
        points = (local[b] - local[b].mean(0)) @ rotation.T
        depth = rng.uniform(0.4, 0.9)
        margin = 0.012  # metres around the joints (finger thickness)
        normalised = points[:, :2] / (depth + points[:, 2:3])
        extent = (normalised.max(0) - normalised.min(0) + 2 * margin / depth).max()
        focal = float(np.clip(rng.uniform(*preset.fill) * size / extent, focal_low, focal_high))
        fill = focal * extent / size
        offset_px = rng.uniform(-1, 1, 2) * max(0.0, (1.0 - fill) / 2 - 0.02) * size
        # Centre the joints' 2D box (plus the jitter) on the principal point by moving the hand sideways.
        center_n = (normalised.max(0) + normalised.min(0)) / 2
        shift = (-center_n + offset_px / focal) * depth
        xyz = points + np.array([shift[0], shift[1], depth])
        joints_cam.append(xyz)
        Ks.append(np.array([[focal, 0.0, center_px], [0.0, focal, center_px], [0.0, 0.0, 1.0]]))
        tone = _SKIN_TONES[rng.integers(len(_SKIN_TONES))]
        skin = np.clip(tone * rng.uniform(0.9, 1.08) + rng.normal(0.0, 0.02, 3), 0.0, 1.0)
        sleeve = skin if rng.random() < 0.5 else rng.uniform(0.05, 0.9, 3)
        hand_scale = lengths[b, 10] / MEAN_BONE_LENGTHS[10]
        scenes.append(hand_primitives(xyz, hand_scale, skin, sleeve, rng.uniform(0.05, 0.12)))
        light = np.array([rng.normal(0, 0.6), rng.normal(-0.3, 0.6), -1.0 - rng.random()])
        if preset.light_spread != 0.6:  # the same draws, narrower spread about the mean direction (0, −0.3, ·)
            light[:2] = (light[:2] - (0.0, -0.3)) * (preset.light_spread / 0.6) + (0.0, -0.3)
        lights.append(light / np.linalg.norm(light))
        ambients.append(rng.uniform(*preset.ambient))
    background_rngs = [np.random.default_rng([WORLD_ID, int(seed), SPLITS[split], int(i), 1]) for i in indices]
    backgrounds = _backgrounds(background_rngs, size, preset)
    K = np.stack(Ks)
    eye, zero = np.tile(np.eye(3), (len(indices), 1, 1)), np.zeros((len(indices), 3))
    out = render(
        SceneBatch.stack(scenes), K, eye, zero, size, size, background=backgrounds,
        light_direction=np.stack(lights), ambient=np.array(ambients), samples_per_side=samples_per_side,
    )  # fmt: skip
    xyz = np.stack(joints_cam)
    uv = np.einsum("bij,bnj->bni", K, xyz)
    uv = uv[..., :2] / uv[..., 2:3]
    gain = preset.gain
    gains = torch.from_numpy(np.stack([rng.uniform(1 - gain, 1 + gain, 3) for rng in rngs]).astype(np.float32))
    noise = torch.from_numpy(np.stack([rng.normal(0.0, rng.uniform(0.0, preset.noise), (3, size, size))
                                       for rng in rngs]))
    rgb = _separate_background(out.rgb, out.coverage, preset.min_luma_gap)
    image = (rgb * gains[:, :, None, None] + noise.float()).clamp(0.0, 1.0)
    return {
        "image": image,
        "mask": out.mask,
        "K": torch.from_numpy(K).float(),
        "joints_xyz": torch.from_numpy(xyz).float(),
        "joints_uv": torch.from_numpy(uv).float(),
        "scale": torch.from_numpy(np.linalg.norm(xyz[:, 10] - xyz[:, 9], axis=1)).float(),
        "index": torch.tensor([int(i) for i in indices], dtype=torch.int64),
    }


_UNLABELLED_KEYS = ("image", "index")
_LABELLED_KEYS = ("image", "K", "joints_xyz", "joints_uv", "scale", "index")


class HandsDataset(Dataset):
    """Hands-world samples (FreiHAND stand-in).

    ``HandsDataset(split="labelled", size=2000, seed=0, image_size=64, difficulty="standard")``; splits
    ``unlabelled`` (large, for self-supervised pre-training: samples are ``{"image", "index"}`` only),
    ``labelled`` (small), ``val`` and ``test``.  A labelled sample: image (3, S, S) float32 in [0, 1], K (3, 3),
    joints_xyz (21, 3) camera frame metres, joints_uv (21, 2) px, scale () metres (‖J10 − J9‖), index () int64.
    ``__getitems__`` (used by DataLoader) renders a whole batch in one renderer call.

    Speed on 2 shared CPU cores, batches of 64, 1 ray/pixel: ≈500 images/s at 64×64, ≈225 images/s at 128×128
    (``benchmarks/world_speed.py``).
    """

    def __init__(
        self,
        split: str = "labelled",
        size: int | None = None,
        seed: int = 0,
        image_size: int = 64,
        samples_per_side: int = 1,
        difficulty: Difficulty = "standard",
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
        self.split, self.seed, self.image_size = split, int(seed), int(image_size)
        self.difficulty = check_difficulty(difficulty)
        self.size = DEFAULT_SPLIT_SIZES[split] if size is None else int(size)
        self.samples_per_side = int(samples_per_side)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        indices = [int(i) for i in indices]
        if any(i < 0 or i >= self.size for i in indices):
            raise IndexError(f"index out of range for a dataset of {self.size} samples")
        batch = hand_batch(self.split, indices, self.seed, self.image_size, self.samples_per_side,
                           self.difficulty)
        keys = (
            ("image", "index")
            if self.split == "unlabelled"
            else ("image", "K", "joints_xyz", "joints_uv", "scale", "index")
        )
        return [{key: batch[key][i] for key in keys} for i in range(len(indices))]
