"""Primitive scenes: kinds, per-object primitive tables, batched scenes, render outputs (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numba
import numpy as np
import torch

# DataLoader workers fork the process; GNU OpenMP (numba's first choice when present) aborts a forked
# child once the parent has run a parallel region, so unless the user chose a layer ask for a fork-safe
# one (workqueue/tbb).  This must happen before the first parallel kernel runs.
if numba.config.THREADING_LAYER == "default":
    numba.config.THREADING_LAYER = "forksafe"


class PrimitiveKind(IntEnum):
    """Primitive type codes used in :class:`Primitives` (0 marks padding in a batch)."""

    NONE = 0
    SPHERE = 1
    CAPSULE = 2
    BOX = 3
    CYLINDER = 4
    CONE = 5
    ELLIPSOID = 6
    PLANE = 7


# Plain-int copies of the kind codes for hot numpy code (enum attribute access is slow).
_NONE, _SPHERE, _CAPSULE, _BOX, _CYLINDER, _CONE, _ELLIPSOID, _PLANE = (int(k) for k in PrimitiveKind)


@dataclass
class Primitives:
    """One scene's primitives as numpy arrays (P primitives).

    kind (P,) int32 :class:`PrimitiveKind`; rotation (P, 3, 3) local→world; center (P, 3) metres;
    size (P, 4) shape parameters (see module docstring); albedo (P, 3) RGB in [0, 1];
    part (P,) int64 part id; instance (P,) int64 instance id.
    """

    kind: np.ndarray
    rotation: np.ndarray
    center: np.ndarray
    size: np.ndarray
    albedo: np.ndarray
    part: np.ndarray
    instance: np.ndarray

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    @staticmethod
    def empty() -> Primitives:
        """A scene with no primitives."""
        return Primitives(
            kind=np.zeros(0, np.int32),
            rotation=np.zeros((0, 3, 3)),
            center=np.zeros((0, 3)),
            size=np.zeros((0, 4)),
            albedo=np.zeros((0, 3)),
            part=np.zeros(0, np.int64),
            instance=np.zeros(0, np.int64),
        )

    @staticmethod
    def concatenate(items: list[Primitives]) -> Primitives:
        """Primitives of several scenes merged into one scene."""
        items = [p for p in items if len(p)] or [Primitives.empty()]
        return Primitives(
            kind=np.concatenate([p.kind for p in items]).astype(np.int32),
            rotation=np.concatenate([p.rotation for p in items]),
            center=np.concatenate([p.center for p in items]),
            size=np.concatenate([p.size for p in items]),
            albedo=np.concatenate([p.albedo for p in items]),
            part=np.concatenate([p.part for p in items]).astype(np.int64),
            instance=np.concatenate([p.instance for p in items]).astype(np.int64),
        )

    def select(self, keep: np.ndarray) -> Primitives:
        """The primitives selected by a boolean mask or index array."""
        return Primitives(
            self.kind[keep],
            self.rotation[keep],
            self.center[keep],
            self.size[keep],
            self.albedo[keep],
            self.part[keep],
            self.instance[keep],
        )

    def transformed(self, rotation: np.ndarray, translation: np.ndarray, scale: float = 1.0) -> Primitives:
        """The scene moved rigidly and scaled uniformly: ``X' = scale · rotation · X + translation``."""
        rotation = np.asarray(rotation, np.float64)
        size = self.size.copy()
        # Every size parameter is a length, so a uniform scale multiplies them all.
        size *= scale
        return Primitives(
            kind=self.kind.copy(),
            rotation=np.einsum("ij,pjk->pik", rotation, self.rotation),
            center=scale * self.center @ rotation.T + np.asarray(translation, np.float64),
            size=size,
            albedo=self.albedo.copy(),
            part=self.part.copy(),
            instance=self.instance.copy(),
        )


@dataclass
class SceneBatch:
    """B scenes padded to P primitives: the arrays of :class:`Primitives` with a leading batch axis.

    ``count`` (B,) is the number of valid primitives per scene; padded rows have kind 0.
    """

    kind: np.ndarray
    rotation: np.ndarray
    center: np.ndarray
    size: np.ndarray
    albedo: np.ndarray
    part: np.ndarray
    instance: np.ndarray
    count: np.ndarray

    @property
    def batch_size(self) -> int:
        return int(self.kind.shape[0])

    @staticmethod
    def stack(scenes: list[Primitives]) -> SceneBatch:
        """Pad the scenes to the largest primitive count and stack them."""
        batch, width = len(scenes), max([len(s) for s in scenes] + [1])
        out = SceneBatch(
            kind=np.zeros((batch, width), np.int32),
            rotation=np.tile(np.eye(3), (batch, width, 1, 1)),
            center=np.zeros((batch, width, 3)),
            size=np.zeros((batch, width, 4)),
            albedo=np.zeros((batch, width, 3)),
            part=np.full((batch, width), -1, np.int64),
            instance=np.full((batch, width), -1, np.int64),
            count=np.array([len(s) for s in scenes], np.int64),
        )
        for i, scene in enumerate(scenes):
            n = len(scene)
            out.kind[i, :n] = scene.kind
            out.rotation[i, :n] = scene.rotation
            out.center[i, :n] = scene.center
            out.size[i, :n] = scene.size
            out.albedo[i, :n] = scene.albedo
            out.part[i, :n] = scene.part
            out.instance[i, :n] = scene.instance
        return out


@dataclass
class RenderOutput:
    """Rendered maps, all torch tensors.

    depth (B, H, W) float32 camera-z in metres, 0 on background; normal (B, H, W, 3) float32 unit
    camera-frame normals facing the camera, 0 on background; part, instance, primitive (B, H, W)
    int64, -1 on background; mask (B, H, W) bool (any surface at the pixel centre); coverage
    (B, H, W) float32 fraction of sub-pixel rays that hit; rgb (B, 3, H, W) float32 in [0, 1].
    """

    depth: torch.Tensor
    normal: torch.Tensor
    part: torch.Tensor
    instance: torch.Tensor
    primitive: torch.Tensor
    mask: torch.Tensor
    coverage: torch.Tensor
    rgb: torch.Tensor


def rotation_from_z(axis: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) whose third column is the unit vector along ``axis`` (..., 3).

    Used to orient axis-symmetric primitives (capsule, cylinder, cone) along a segment; the
    rotation about the axis is arbitrary but deterministic.
    """
    z = np.asarray(axis, np.float64)
    z = z / np.sqrt((z * z).sum(-1, keepdims=True))
    zx, zy, zz = z[..., 0], z[..., 1], z[..., 2]
    # x = normalize(helper × z) with helper = e_x, or e_y when z is close to e_x.
    use_ex = np.abs(zx) < 0.9
    x = np.where(use_ex[..., None], np.stack([0 * zx, -zz, zy], -1), np.stack([zz, 0 * zx, -zx], -1))
    x = x / np.sqrt((x * x).sum(-1, keepdims=True))
    xx, xy, xz = x[..., 0], x[..., 1], x[..., 2]
    y = np.stack([zy * xz - zz * xy, zz * xx - zx * xz, zx * xy - zy * xx], -1)
    return np.stack([x, y, z], axis=-1)
