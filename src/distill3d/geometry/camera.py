"""Pinhole camera: projection, back-projection, extrinsics and intrinsics for crops and resizes.

Conventions (shared by all of :mod:`distill3d.geometry`):

* Camera coordinates are OpenCV/KITTI: x right, y down, z forward, in metres.
* A pixel coordinate ``(u, v)`` has ``u`` along the image x axis (columns) and ``v`` along y (rows);
  pixel centres sit at integer coordinates, so pixel ``(i, j)`` (row i, column j) covers
  ``u ∈ [j − ½, j + ½)``, ``v ∈ [i − ½, i + ½)`` and the image spans ``[−½, W − ½) × [−½, H − ½)``.
* Intrinsics ``K`` are (..., 3, 3) ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``; the skew ``s`` is ignored by
  projection (kornia reads only fx, fy, cx, cy), so keep it zero.
* Extrinsics map world to camera: ``X_cam = R·X_world + t`` with ``R`` (..., 3, 3) and ``t`` (..., 3);
  functions that take extrinsics also accept a single (..., 4, 4) matrix ``[[R, t], [0, 1]]``.
* Angles are in radians unless a name ends in ``_deg``.

Projection and back-projection wrap :mod:`kornia.geometry.camera`; depth maps use
:func:`kornia.geometry.depth.depth_to_3d_v2`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from kornia.geometry.camera import project_points as _kornia_project_points
from kornia.geometry.camera import unproject_points as _kornia_unproject_points
from kornia.geometry.depth import depth_to_3d_v2

from distill3d.errors import ShapeError, check_shape

__all__ = [
    "backproject",
    "crop_and_resize_intrinsics",
    "crop_intrinsics",
    "depth_to_points",
    "extrinsics_to_rotation_translation",
    "look_at",
    "project_points",
    "resize_intrinsics",
    "transform_points",
]


def _check_last_dims(name: str, tensor: torch.Tensor, trailing: tuple[int, ...]) -> None:
    if tensor.dim() < len(trailing) or tuple(tensor.shape[-len(trailing) :]) != trailing:
        want = "(..., " + ", ".join(str(size) for size in trailing) + ")"
        raise ShapeError(f"{name} must have shape {want}, got {tuple(tensor.shape)}")


def project_points(points: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Project camera-frame points (..., N, 3) with K (..., 3, 3) → uv (..., N, 2) pixels, depth (..., N) m.

    ``u = fx·x/z + cx``, ``v = fy·y/z + cy``, ``depth = z``. K's leading dims broadcast against the
    points' leading dims (not N). Points with ``z ≤ 0`` are projected anyway (kornia skips the divide at
    ``|z| ≤ 1e-8``); mask them with ``depth > 0``.
    """
    _check_last_dims("points", points, (3,))
    _check_last_dims("K", K, (3, 3))
    if points.dim() < 2:
        raise ShapeError(f"points must have shape (..., N, 3), got {tuple(points.shape)}")
    uv = _kornia_project_points(points, K.unsqueeze(-3).to(points.dtype))
    return uv, points[..., 2]


def backproject(uv: torch.Tensor, depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Lift pixels uv (..., N, 2) at depth (..., N) (z, metres) with K (..., 3, 3) to points (..., N, 3).

    ``X = depth · K⁻¹·(u, v, 1)``, i.e. ``((u − cx)/fx·z, (v − cy)/fy·z, z)``; inverse of
    :func:`project_points`.
    """
    _check_last_dims("uv", uv, (2,))
    _check_last_dims("K", K, (3, 3))
    if uv.dim() < 2 or depth.shape != uv.shape[:-1]:
        raise ShapeError(
            f"uv (..., N, 2) and depth (..., N) disagree: {tuple(uv.shape)} vs {tuple(depth.shape)}"
        )
    return _kornia_unproject_points(uv, depth.unsqueeze(-1), K.unsqueeze(-3).to(uv.dtype))


def depth_to_points(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Camera-frame point of every pixel: depth (B, H, W) (z, metres), K (B, 3, 3) → (B, H, W, 3).

    Pixel (row i, column j) maps to ``((j − cx)/fx·z, (i − cy)/fy·z, z)``.
    """
    check_shape("depth", depth, (None, None, None))
    check_shape("K", K, (depth.shape[0], 3, 3))
    return depth_to_3d_v2(depth, K.to(depth.dtype))


def extrinsics_to_rotation_translation(extrinsics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a world→camera matrix (..., 4, 4) ``[[R, t], [0, 1]]`` into R (..., 3, 3) and t (..., 3)."""
    _check_last_dims("extrinsics", extrinsics, (4, 4))
    return extrinsics[..., :3, :3], extrinsics[..., :3, 3]


def transform_points(points: torch.Tensor, R: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
    """Rigidly move points: ``X' = R·X + t``; points (..., N, 3), R (..., 3, 3), t (..., 3) → (..., N, 3).

    ``R`` may instead be a (..., 4, 4) matrix ``[[R, t], [0, 1]]`` with ``t`` omitted. Leading dims broadcast.
    """
    _check_last_dims("points", points, (3,))
    if R.shape[-2:] == (4, 4):
        if t is not None:
            raise ShapeError("pass either a (..., 4, 4) matrix or (R (..., 3, 3), t (..., 3)), not both")
        R, t = extrinsics_to_rotation_translation(R)
    _check_last_dims("R", R, (3, 3))
    moved = points @ R.transpose(-1, -2)
    if t is None:
        return moved
    _check_last_dims("t", t, (3,))
    return moved + t.unsqueeze(-2)


def crop_intrinsics(K: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Intrinsics of the crop at ``(x1, y1)``: K (B, 3, 3), boxes (B, 4) ``x1, y1, x2, y2`` → (B, 3, 3).

    The crop ``image[y1:y2, x1:x2]`` moves pixel (u, v) to ``(u − x1, v − y1)``: ``cx' = cx − x1``,
    ``cy' = cy − y1``; focal lengths are unchanged (x2, y2 do not matter).
    """
    check_shape("K", K, (None, 3, 3))
    check_shape("boxes", boxes, (K.shape[0], 4))
    cropped = K.clone()
    cropped[:, 0, 2] = K[:, 0, 2] - boxes[:, 0].to(K.dtype)
    cropped[:, 1, 2] = K[:, 1, 2] - boxes[:, 1].to(K.dtype)
    return cropped


def resize_intrinsics(
    K: torch.Tensor, scale_x: torch.Tensor | float, scale_y: torch.Tensor | float
) -> torch.Tensor:
    """Intrinsics after resizing the image by ``(scale_x, scale_y)`` (new size / old size); K (..., 3, 3).

    Uses the pixel-area (half-pixel) convention of ``F.interpolate(align_corners=False)``, OpenCV and
    PIL: a coordinate maps as ``u' = (u + ½)·scale_x − ½`` (likewise v), hence ``fx' = scale_x·fx``,
    ``cx' = (cx + ½)·scale_x − ½``, ``fy' = scale_y·fy``, ``cy' = (cy + ½)·scale_y − ½``. Scales broadcast
    against K's leading dims.
    """
    _check_last_dims("K", K, (3, 3))
    scale_x, scale_y = torch.broadcast_tensors(
        torch.as_tensor(scale_x, dtype=K.dtype, device=K.device),
        torch.as_tensor(scale_y, dtype=K.dtype, device=K.device),
    )
    # K' = A·K with the pixel map A = [[sx, 0, (sx − 1)/2], [0, sy, (sy − 1)/2], [0, 0, 1]].
    affine = torch.zeros((*scale_x.shape, 3, 3), dtype=K.dtype, device=K.device)
    affine[..., 0, 0] = scale_x
    affine[..., 0, 2] = (scale_x - 1) / 2
    affine[..., 1, 1] = scale_y
    affine[..., 1, 2] = (scale_y - 1) / 2
    affine[..., 2, 2] = 1
    return affine @ K


def crop_and_resize_intrinsics(
    K: torch.Tensor, boxes: torch.Tensor, out_size: Sequence[int] | tuple[int, int]
) -> torch.Tensor:
    """Intrinsics of ``resize(image[y1:y2, x1:x2], out_size)``; K (B, 3, 3), boxes (B, 4), out_size (H, W).

    The box ``x1, y1, x2, y2`` is read as the slice ``[x1, x2) × [y1, y2)`` of pixel indices, i.e. the
    continuous window ``[x1 − ½, x2 − ½) × [y1 − ½, y2 − ½)`` (the same window as ``roi_align(aligned=True)``
    with edge coordinates ``x1..x2``); non-integer boxes are allowed. With ``scale_x = W_out/(x2 − x1)``
    a pixel maps as ``u' = (u − x1 + ½)·scale_x − ½`` (half-pixel resize), so
    ``fx' = scale_x·fx``, ``cx' = (cx − x1 + ½)·scale_x − ½`` (likewise y with ``H_out/(y2 − y1)``).
    """
    check_shape("K", K, (None, 3, 3))
    check_shape("boxes", boxes, (K.shape[0], 4))
    out_height, out_width = (int(size) for size in out_size)
    boxes = boxes.to(K.dtype)
    scale_x = out_width / (boxes[:, 2] - boxes[:, 0])
    scale_y = out_height / (boxes[:, 3] - boxes[:, 1])
    return resize_intrinsics(crop_intrinsics(K, boxes), scale_x, scale_y)


def look_at(
    eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor | Sequence[float] = (0.0, 0.0, 1.0)
) -> tuple[torch.Tensor, torch.Tensor]:
    """World→camera R (..., 3, 3), t (..., 3) of a camera at ``eye`` (..., 3) looking at ``target`` (..., 3).

    Camera axes in world coordinates: ``z = normalise(target − eye)`` (forward),
    ``x = normalise(z × up)`` (right), ``y = z × x`` (down, i.e. against ``up``). ``R`` has these as its
    rows and ``t = −R·eye``, so ``X_cam = R·X_world + t`` puts ``target`` on the optical axis. ``up`` is the
    world's up direction (default +z); it must not be parallel to the viewing direction.
    """
    eye = torch.as_tensor(eye)
    if not eye.is_floating_point():
        eye = eye.to(torch.get_default_dtype())
    target = torch.as_tensor(target, dtype=eye.dtype, device=eye.device)
    up = torch.as_tensor(up, dtype=eye.dtype, device=eye.device)
    for name, vector in (("eye", eye), ("target", target), ("up", up)):
        _check_last_dims(name, vector, (3,))
    eye, target, up = torch.broadcast_tensors(eye, target, up)
    forward = target - eye
    forward_norm = torch.linalg.vector_norm(forward, dim=-1, keepdim=True)
    right = torch.linalg.cross(forward, up, dim=-1)
    right_norm = torch.linalg.vector_norm(right, dim=-1, keepdim=True)
    tiny = torch.finfo(eye.dtype).eps
    if bool((forward_norm <= tiny).any()):
        raise ValueError("look_at: eye and target coincide")
    if bool((right_norm <= tiny * forward_norm * torch.linalg.vector_norm(up, dim=-1, keepdim=True)).any()):
        raise ValueError("look_at: the viewing direction is parallel to the up vector")
    forward = forward / forward_norm
    right = right / right_norm
    down = torch.linalg.cross(forward, right, dim=-1)
    R = torch.stack([right, down, forward], dim=-2)
    t = -(R @ eye.unsqueeze(-1)).squeeze(-1)
    return R, t
