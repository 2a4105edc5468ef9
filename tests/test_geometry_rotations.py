"""Rotations: axis builders, Pascal3D+ viewpoint round trips, geodesic distance (incl. golden matrices)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_path
from distill3d.errors import ShapeError
from distill3d.geometry.rotations import (
    axis_angle_to_rotation_matrix,
    geodesic_distance,
    matrix_to_viewpoint,
    rotation_x,
    rotation_y,
    rotation_z,
    viewpoint_to_matrix,
)

FAST = settings(max_examples=40, deadline=None)
angle = st.floats(-2 * math.pi, 2 * math.pi, allow_nan=False)
azimuths = st.floats(0.0, 2 * math.pi, exclude_max=True)
elevations = st.floats(-math.pi / 2 + 1e-3, math.pi / 2 - 1e-3)
inplanes = st.floats(-math.pi, math.pi, exclude_min=True)


def random_rotations(count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    axis_angle = torch.randn(count, 3, generator=generator, dtype=torch.float64)
    return axis_angle_to_rotation_matrix(axis_angle)


def test_axis_rotations_turn_counter_clockwise_and_match_kornia() -> None:
    quarter = torch.tensor(math.pi / 2, dtype=torch.float64)
    e_x, e_y, e_z = torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(rotation_z(quarter) @ e_x, e_y)
    torch.testing.assert_close(rotation_x(quarter) @ e_y, e_z)
    torch.testing.assert_close(rotation_y(quarter) @ e_z, e_x)
    angles = torch.linspace(-3, 3, 7, dtype=torch.float64)
    zeros = torch.zeros_like(angles)
    for builder, axis in ((rotation_x, 0), (rotation_y, 1), (rotation_z, 2)):
        axis_angle = torch.stack([angles if i == axis else zeros for i in range(3)], dim=-1)
        torch.testing.assert_close(builder(angles), axis_angle_to_rotation_matrix(axis_angle))


def test_viewpoint_matches_starmap_angle2dcm_golden() -> None:
    folder = shared_path("golden", "viewpoint_eval")
    inputs = np.load(folder / "inputs.npz")
    expected = json.loads((folder / "expected.json").read_text())
    gt = torch.from_numpy(np.deg2rad(inputs["gt_azi_ele_theta_deg"]))
    matrices = viewpoint_to_matrix(gt[:, 0], gt[:, 1], gt[:, 2])
    reference = torch.tensor(expected["gt_rotation_matrices_starmap_angle2dcm"], dtype=torch.float64)
    torch.testing.assert_close(matrices, reference, atol=1e-12, rtol=0)
    back = torch.stack(matrix_to_viewpoint(matrices), dim=-1)
    torch.testing.assert_close(back, gt, atol=1e-9, rtol=0)


def test_viewpoint_formula_is_the_documented_product() -> None:
    a, e, t = torch.tensor(0.7), torch.tensor(0.3), torch.tensor(-0.2)
    expected = rotation_z(t) @ rotation_x(e - math.pi / 2) @ rotation_z(-a)
    torch.testing.assert_close(viewpoint_to_matrix(a, e, t), expected)
    # Broadcasting of scalar and batched angles.
    assert viewpoint_to_matrix(torch.zeros(4, 2), 0.1, 0.0).shape == (4, 2, 3, 3)


@FAST
@given(azimuth=azimuths, elevation=elevations, inplane=inplanes)
def test_viewpoint_round_trip(azimuth: float, elevation: float, inplane: float) -> None:
    angles = torch.tensor([azimuth, elevation, inplane], dtype=torch.float64)
    recovered = torch.stack(matrix_to_viewpoint(viewpoint_to_matrix(*angles)))
    # Compare on the circle: azimuth wraps at 2π and inplane at ±π.
    difference = torch.remainder(recovered - angles + math.pi, 2 * math.pi) - math.pi
    assert difference.abs().max() < 1e-7
    assert 0 <= recovered[0] < 2 * math.pi
    assert -math.pi < recovered[2] <= math.pi


@FAST
@given(azimuth=angle, elevation=st.sampled_from([math.pi / 2, -math.pi / 2]), inplane=angle)
def test_gimbal_poles_rebuild_the_same_rotation(azimuth: float, elevation: float, inplane: float) -> None:
    matrix = viewpoint_to_matrix(*torch.tensor([azimuth, elevation, inplane], dtype=torch.float64))
    a, e, t = matrix_to_viewpoint(matrix)
    assert float(t) == 0.0
    assert float(e) == pytest.approx(elevation)
    torch.testing.assert_close(viewpoint_to_matrix(a, e, t), matrix, atol=1e-12, rtol=0)


def test_matrix_to_viewpoint_rebuilds_random_rotations() -> None:
    rotations = random_rotations(256)
    a, e, t = matrix_to_viewpoint(rotations)
    torch.testing.assert_close(viewpoint_to_matrix(a, e, t), rotations, atol=1e-12, rtol=0)
    assert bool(((a >= 0) & (a < 2 * math.pi)).all())
    assert bool(((e >= -math.pi / 2) & (e <= math.pi / 2)).all())
    assert bool(((t > -math.pi) & (t <= math.pi)).all())


def test_geodesic_equals_rotation_angle_including_near_zero_and_pi() -> None:
    axis = torch.nn.functional.normalize(torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64), dim=0)
    angles = torch.tensor(
        [0.0, 1e-9, 1e-4, 0.5, 2.0, math.pi - 1e-6, math.pi - 1e-9, math.pi], dtype=torch.float64
    )
    relative = axis_angle_to_rotation_matrix(angles.unsqueeze(-1) * axis)
    base = random_rotations(1, seed=3)[0]
    distance = geodesic_distance(base, base @ relative)
    torch.testing.assert_close(distance, angles, atol=1e-12, rtol=0)


@FAST
@given(seed=st.integers(0, 10_000))
def test_geodesic_is_symmetric_bounded_and_invariant(seed: int) -> None:
    first, second, third = random_rotations(3, seed=seed)
    forward = geodesic_distance(first, second)
    assert 0.0 <= float(forward) <= math.pi
    torch.testing.assert_close(forward, geodesic_distance(second, first), atol=1e-12, rtol=0)
    torch.testing.assert_close(forward, geodesic_distance(third @ first, third @ second), atol=1e-12, rtol=0)
    assert float(geodesic_distance(first, first)) == pytest.approx(0.0, abs=1e-7)


def test_geodesic_gradient_is_finite_at_identical_and_opposite_inputs() -> None:
    rotation = random_rotations(1, seed=5)[0]
    flipped = rotation @ rotation_z(torch.tensor(math.pi, dtype=torch.float64))
    for other in (rotation.clone(), flipped):
        moving = rotation.clone().requires_grad_(True)
        geodesic_distance(moving, other).backward()
        assert torch.isfinite(moving.grad).all()


def test_geodesic_gradient_matches_finite_differences() -> None:
    angle_tensor = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    distance = geodesic_distance(torch.eye(3, dtype=torch.float64), rotation_y(angle_tensor))
    distance.backward()
    assert float(angle_tensor.grad) == pytest.approx(1.0, abs=1e-9)


def test_shape_errors() -> None:
    with pytest.raises(ShapeError):
        geodesic_distance(torch.eye(4), torch.eye(4))
    with pytest.raises(ShapeError):
        matrix_to_viewpoint(torch.zeros(3))


def test_opencv_rotation_flips_the_pascal_camera_axes() -> None:
    from distill3d.geometry.rotations import viewpoint_to_opencv_rotation

    a, e, t = torch.tensor([0.3, 2.0]), torch.tensor([0.2, -0.1]), torch.tensor([0.05, -0.3])
    expected = torch.diag(torch.tensor([1.0, -1.0, -1.0])) @ viewpoint_to_matrix(a, e, t)
    torch.testing.assert_close(viewpoint_to_opencv_rotation(a, e, t), expected)
