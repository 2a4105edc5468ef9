"""Rotation matrices: single-axis rotations, Pascal3D+ viewpoints and the geodesic distance.

Conventions (shared by all of :mod:`distill3d.geometry`):

* Camera coordinates are OpenCV/KITTI: x right, y down, z forward, in metres.
* Rotation matrices act on column vectors from the left, ``x' = R @ x``; a positive angle turns
  counter-clockwise about its axis by the right-hand rule (``rotation_z(pi/2) @ e_x = e_y``).
* Angles are in radians unless a name ends in ``_deg``. Every function is batched over any number
  of leading dimensions and differentiable.

Viewpoints follow Pascal3D+/ObjectNet3D as used by StarMap and PoseFromShape: a viewpoint is
``(azimuth a, elevation e, in-plane rotation θ)`` and its object-to-camera rotation is

    R = Rz(θ) · Rx(e − π/2) · Rz(−a),

with ``Rz(t) = [[cos t, −sin t, 0], [sin t, cos t, 0], [0, 0, 1]]`` and
``Rx(t) = [[1, 0, 0], [0, cos t, −sin t], [0, sin t, cos t]]`` (this is StarMap's ``angle2dcm``).

**R maps into Pascal3D+'s camera frame** (x right, y *up*, looking down −z, as in its ``project_3d.m``), not
the OpenCV frame: to project with an OpenCV camera use ``diag(1, −1, −1) · R`` and ``t = (0, 0, distance)``
(the shapes world does exactly this). Rotation errors are unaffected: the geodesic distance between two
viewpoints is the same in either frame.

kornia 0.9 has axis-angle/quaternion conversions but no single-axis builders and no Pascal3D
viewpoint parameterisation, so those are written here; axis-angle conversions are re-exported
from kornia under our names.
"""

from __future__ import annotations

import math

import torch
from kornia.geometry.conversions import axis_angle_to_rotation_matrix, rotation_matrix_to_axis_angle

from distill3d.errors import ShapeError

__all__ = [
    "axis_angle_to_rotation_matrix",
    "canonical_azimuth",
    "geodesic_distance",
    "matrix_to_viewpoint",
    "rotation_matrix_to_axis_angle",
    "rotation_x",
    "rotation_y",
    "rotation_z",
    "viewpoint_to_matrix",
    "viewpoint_to_opencv_rotation",
]


def _as_float_tensor(value: torch.Tensor | float) -> torch.Tensor:
    tensor = torch.as_tensor(value)
    return tensor if tensor.is_floating_point() else tensor.to(torch.get_default_dtype())


def _check_matrices(name: str, matrix: torch.Tensor) -> None:
    if matrix.dim() < 2 or matrix.shape[-2:] != (3, 3):
        raise ShapeError(f"{name} must have shape (..., 3, 3), got {tuple(matrix.shape)}")


def _axis_rotation(angle: torch.Tensor | float, axis: int) -> torch.Tensor:
    """(..., 3, 3) right-handed rotation by ``angle`` (radians) about coordinate axis ``axis``."""
    angle = _as_float_tensor(angle)
    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 0:
        rows = ((one, zero, zero), (zero, cos, -sin), (zero, sin, cos))
    elif axis == 1:
        rows = ((cos, zero, sin), (zero, one, zero), (-sin, zero, cos))
    else:
        rows = ((cos, -sin, zero), (sin, cos, zero), (zero, zero, one))
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def rotation_x(angle: torch.Tensor | float) -> torch.Tensor:
    """Rotation about +x: ``[[1, 0, 0], [0, c, −s], [0, s, c]]``; angle (...) radians → (..., 3, 3)."""
    return _axis_rotation(angle, 0)


def rotation_y(angle: torch.Tensor | float) -> torch.Tensor:
    """Rotation about +y: ``[[c, 0, s], [0, 1, 0], [−s, 0, c]]``; angle (...) radians → (..., 3, 3)."""
    return _axis_rotation(angle, 1)


def rotation_z(angle: torch.Tensor | float) -> torch.Tensor:
    """Rotation about +z: ``[[c, −s, 0], [s, c, 0], [0, 0, 1]]``; angle (...) radians → (..., 3, 3)."""
    return _axis_rotation(angle, 2)


def viewpoint_to_matrix(
    azimuth: torch.Tensor | float, elevation: torch.Tensor | float, inplane: torch.Tensor | float
) -> torch.Tensor:
    """Pascal3D+ viewpoint (radians, broadcastable (...)) → ``Rz(θ)·Rx(e − π/2)·Rz(−a)`` (..., 3, 3)."""
    azimuth, elevation, inplane = torch.broadcast_tensors(
        _as_float_tensor(azimuth), _as_float_tensor(elevation), _as_float_tensor(inplane)
    )
    return rotation_z(inplane) @ rotation_x(elevation - math.pi / 2) @ rotation_z(-azimuth)


def viewpoint_to_opencv_rotation(
    azimuth: torch.Tensor | float, elevation: torch.Tensor | float, inplane: torch.Tensor | float
) -> torch.Tensor:
    """OpenCV object→camera rotation (..., 3, 3) of a Pascal3D+ viewpoint: ``diag(1, −1, −1)·R_pascal``.

    Pascal3D+'s camera looks down −z with y up; OpenCV's looks down +z with y down: the same camera, its y and z
    axes flipped. Geodesic errors between two viewpoints are the same in either frame.
    """
    pascal = viewpoint_to_matrix(azimuth, elevation, inplane)
    return pascal * pascal.new_tensor([1.0, -1.0, -1.0])[:, None]


def matrix_to_viewpoint(rotation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of :func:`viewpoint_to_matrix`: (..., 3, 3) → (azimuth, elevation, inplane), each (...).

    Ranges: azimuth ∈ [0, 2π), elevation ∈ [−π/2, π/2], inplane ∈ (−π, π]. Expanding the product gives
    the bottom row ``(cos e·sin a, −cos e·cos a, sin e)`` and the last column
    ``(−cos e·sin θ, cos e·cos θ, sin e)``, so ``e = atan2(R22, ‖(R20, R21)‖)``,
    ``a = atan2(R20, −R21)`` and ``θ = atan2(−R02, R12)``. At the gimbal poles (``cos e ≈ 0``) only
    ``θ − a`` (e = π/2) or ``θ + a`` (e = −π/2) is defined; there inplane is set to 0 and the whole
    turn is given to the azimuth, read from the top-left block ``[[R00, R01], [R10, R11]]``.
    """
    _check_matrices("rotation", rotation)
    r = rotation
    cos_elevation = torch.hypot(r[..., 2, 0], r[..., 2, 1])
    elevation = torch.atan2(r[..., 2, 2], cos_elevation)
    azimuth = torch.atan2(r[..., 2, 0], -r[..., 2, 1])
    inplane = torch.atan2(-r[..., 0, 2], r[..., 1, 2])

    # Gimbal lock: R = Rz(θ − a) at e = π/2 and R = Rz(θ + a)·diag(1, −1, −1) at e = −π/2.
    gimbal_threshold = math.sqrt(torch.finfo(r.dtype).eps)
    at_pole = cos_elevation < gimbal_threshold
    north = r[..., 2, 2] > 0
    pole_turn = torch.atan2(r[..., 1, 0], r[..., 0, 0])
    azimuth = torch.where(at_pole, torch.where(north, -pole_turn, pole_turn), azimuth)
    inplane = torch.where(at_pole, torch.zeros_like(inplane), inplane)
    pole_elevation = torch.where(north, 1.0, -1.0).to(r.dtype) * (math.pi / 2)
    elevation = torch.where(at_pole, pole_elevation, elevation)

    two_pi = 2 * math.pi
    azimuth = torch.remainder(azimuth, two_pi)
    azimuth = torch.where(azimuth >= two_pi, azimuth - two_pi, azimuth)
    inplane = torch.where(inplane <= -math.pi, inplane + two_pi, inplane)
    return azimuth, elevation, inplane


def geodesic_distance(rotation_a: torch.Tensor, rotation_b: torch.Tensor) -> torch.Tensor:
    """Angle (radians, in [0, π]) of the relative rotation ``R_aᵀ·R_b``; (..., 3, 3) broadcast → (...).

    Equals ``arccos((tr(R_aᵀR_b) − 1)/2)`` (and StarMap's ``‖logm(R_aᵀR_b)‖_F/√2``) but is computed as
    ``atan2(sin θ, cos θ)`` with ``cos θ = (tr M − 1)/2``, ``sin θ = ½‖(M21 − M12, M02 − M20, M10 − M01)‖``,
    which keeps full precision near 0 and π where arccos loses half the digits. The gradient is finite
    everywhere; at identical inputs (θ = 0, not differentiable) it is zero.
    """
    _check_matrices("rotation_a", rotation_a)
    _check_matrices("rotation_b", rotation_b)
    relative = rotation_a.transpose(-1, -2) @ rotation_b
    cos_angle = (relative.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    skew = torch.stack(
        [
            relative[..., 2, 1] - relative[..., 1, 2],
            relative[..., 0, 2] - relative[..., 2, 0],
            relative[..., 1, 0] - relative[..., 0, 1],
        ],
        dim=-1,
    )
    squared = (skew * skew).sum(-1)
    nonzero = squared > 0
    # sqrt has an infinite derivative at 0: route zeros through a safe value so backward stays finite.
    sin_angle = (
        torch.where(nonzero, torch.sqrt(torch.where(nonzero, squared, torch.ones_like(squared))), 0.0) / 2
    )
    return torch.atan2(sin_angle, cos_angle)


def canonical_azimuth(azimuth: torch.Tensor, symmetry_order: torch.Tensor) -> torch.Tensor:
    """The smallest azimuth that shows a rotationally symmetric object exactly as ``azimuth`` does (radians).

    An object with n-fold symmetry about its up axis (``symmetry_order`` n ≥ 2) looks the same at a and
    a + 2π/n, so only ``a mod 2π/n`` can be read from an image; an object of revolution (order 0) looks the same
    from every azimuth, whose canonical value is 0; order 1 (no symmetry) keeps ``a mod 2π``. Shapes: azimuth
    (...) and symmetry_order (...) integer, broadcast → (...) in [0, 2π/n).
    """
    order = torch.as_tensor(symmetry_order, device=azimuth.device)
    period = 2 * math.pi / order.clamp(min=1).to(azimuth.dtype)
    return torch.where(order == 0, torch.zeros_like(azimuth), torch.remainder(azimuth, period))
