"""Camera: projection/back-projection, depth maps, extrinsics, crop/resize intrinsics vs real resamples."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from distill3d.errors import ShapeError
from distill3d.geometry.camera import (
    backproject,
    crop_and_resize_intrinsics,
    crop_intrinsics,
    depth_to_points,
    look_at,
    project_points,
    resize_intrinsics,
    transform_points,
)
from distill3d.geometry.rotations import rotation_z

FAST = settings(max_examples=30, deadline=None)


def make_K(fx: float = 500.0, fy: float = 480.0, cx: float = 320.0, cy: float = 240.0) -> torch.Tensor:
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float64)


def test_project_points_formula_and_broadcasting() -> None:
    K = make_K()
    points = torch.tensor([[0.0, 0.0, 2.0], [1.0, -0.5, 4.0]], dtype=torch.float64)
    uv, depth = project_points(points, K)
    expected = torch.tensor([[320.0, 240.0], [320 + 500 * 0.25, 240 - 480 * 0.125]], dtype=torch.float64)
    torch.testing.assert_close(uv, expected)
    torch.testing.assert_close(depth, points[:, 2])
    batched_K = torch.stack([K, make_K(100.0, 100.0, 0.0, 0.0)])  # (2, 3, 3) against (2, 5, 3)
    uv_b, depth_b = project_points(points[:1].expand(2, 5, 3), batched_K)
    assert uv_b.shape == (2, 5, 2) and depth_b.shape == (2, 5)
    torch.testing.assert_close(uv_b[1, 0], torch.tensor([0.0, 0.0], dtype=torch.float64))


@FAST
@given(
    u=st.floats(-100, 700),
    v=st.floats(-100, 500),
    depth=st.floats(0.1, 80.0),
    focal=st.floats(50.0, 2000.0),
)
def test_backproject_inverts_project(u: float, v: float, depth: float, focal: float) -> None:
    K = make_K(focal, focal * 0.9, 311.5, 187.25)
    uv = torch.tensor([[u, v]], dtype=torch.float64)
    points = backproject(uv, torch.tensor([depth], dtype=torch.float64), K)
    assert float(points[0, 2]) == pytest.approx(depth)
    uv_back, depth_back = project_points(points, K)
    torch.testing.assert_close(uv_back, uv, atol=1e-9, rtol=0)
    torch.testing.assert_close(depth_back, torch.tensor([depth], dtype=torch.float64))


def test_depth_to_points_uses_column_u_and_row_v() -> None:
    K = make_K(2.0, 4.0, 1.0, 0.5).unsqueeze(0)
    depth = torch.full((1, 2, 3), 2.0, dtype=torch.float64)
    points = depth_to_points(depth, K)
    assert points.shape == (1, 2, 3, 3)
    # Row 1, column 2 → u = 2, v = 1.
    torch.testing.assert_close(
        points[0, 1, 2], torch.tensor([(2 - 1) / 2 * 2, (1 - 0.5) / 4 * 2, 2.0], dtype=torch.float64)
    )
    uv, _ = project_points(points.reshape(1, -1, 3), K)
    rows, cols = torch.meshgrid(torch.arange(2.0), torch.arange(3.0), indexing="ij")
    torch.testing.assert_close(uv[0], torch.stack([cols, rows], -1).reshape(-1, 2).double())


def test_transform_points_accepts_rt_and_4x4() -> None:
    R = rotation_z(torch.tensor(0.4, dtype=torch.float64))
    t = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    points = torch.randn(7, 3, dtype=torch.float64)
    moved = transform_points(points, R, t)
    torch.testing.assert_close(moved, (R @ points.T).T + t)
    matrix = torch.eye(4, dtype=torch.float64)
    matrix[:3, :3], matrix[:3, 3] = R, t
    torch.testing.assert_close(transform_points(points, matrix), moved)
    with pytest.raises(ShapeError):
        transform_points(points, matrix, t)


def test_look_at_puts_target_on_the_optical_axis_with_y_down() -> None:
    eye = torch.tensor([[4.0, 0.0, 1.5], [0.0, -3.0, 2.0]], dtype=torch.float64)
    target = torch.tensor([[0.0, 0.0, 0.5], [0.5, 0.5, 0.0]], dtype=torch.float64)
    R, t = look_at(eye, target, up=(0.0, 0.0, 1.0))
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(2, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(2, dtype=torch.float64))
    target_cam = transform_points(target.unsqueeze(1), R, t).squeeze(1)
    torch.testing.assert_close(target_cam[:, :2], torch.zeros(2, 2, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(target_cam[:, 2], (target - eye).norm(dim=-1))
    torch.testing.assert_close(
        transform_points(eye.unsqueeze(1), R, t).squeeze(1), torch.zeros(2, 3).double()
    )
    # A point above the target (world +z) appears higher in the image: smaller v, i.e. negative camera y.
    above = transform_points((target + torch.tensor([0.0, 0.0, 0.3])).unsqueeze(1), R, t).squeeze(1)
    assert bool((above[:, 1] < 0).all())
    with pytest.raises(ValueError):
        look_at(torch.zeros(3), torch.tensor([0.0, 0.0, 5.0]))


def test_crop_and_resize_intrinsics_formulas() -> None:
    K = make_K().unsqueeze(0)
    box = torch.tensor([[100.0, 50.0, 300.0, 250.0]], dtype=torch.float64)
    cropped = crop_intrinsics(K, box)
    assert float(cropped[0, 0, 2]) == 220.0 and float(cropped[0, 1, 2]) == 190.0
    resized = resize_intrinsics(K, 0.5, 2.0)
    torch.testing.assert_close(
        resized[0],
        torch.tensor([[250.0, 0.0, 159.75], [0.0, 960.0, 480.5], [0.0, 0.0, 1.0]], dtype=torch.float64),
    )
    combined = crop_and_resize_intrinsics(K, box, (100, 400))
    torch.testing.assert_close(combined, resize_intrinsics(cropped, 2.0, 0.5))


def coordinate_image(height: int, width: int) -> torch.Tensor:
    """(1, 2, H, W) image whose channels hold each pixel's own u (column) and v (row)."""
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([cols, rows]).double().unsqueeze(0)


@pytest.mark.parametrize(
    ("box", "out_size"),
    [((10, 6, 42, 30), (48, 64)), ((3, 2, 51, 38), (12, 16)), ((0, 0, 60, 40), (30, 90))],
)
def test_crop_resize_matches_the_resampled_image(
    box: tuple[int, int, int, int], out_size: tuple[int, int]
) -> None:
    """A 3D point lands on the output pixel whose resampled content came from its original pixel position."""
    image = coordinate_image(40, 60)
    x1, y1, x2, y2 = box
    crop = image[:, :, y1:y2, x1:x2]
    resized = F.interpolate(
        crop, size=out_size, mode="bilinear", align_corners=False
    )  # half-pixel convention
    K = make_K(70.0, 65.0, 29.3, 18.7).unsqueeze(0)
    K_new = crop_and_resize_intrinsics(K, torch.tensor([box], dtype=torch.float64), out_size)

    # Interior output pixels (bilinear resampling of a linear ramp is exact away from the clamped border).
    out_h, out_w = out_size
    rows, cols = torch.meshgrid(torch.arange(1, out_h - 1), torch.arange(1, out_w - 1), indexing="ij")
    source_uv = (
        resized[0, :, rows, cols].permute(1, 2, 0).reshape(-1, 2)
    )  # original (u, v) of each output pixel
    inside = (
        (source_uv[:, 0] >= x1)
        & (source_uv[:, 0] <= x2 - 1)
        & (source_uv[:, 1] >= y1)
        & (source_uv[:, 1] <= y2 - 1)
    )
    target_uv = torch.stack([cols, rows], -1).reshape(-1, 2).double()
    depth = torch.linspace(0.5, 9.0, source_uv.shape[0], dtype=torch.float64)
    points = backproject(source_uv.unsqueeze(0), depth.unsqueeze(0), K)
    projected, _ = project_points(points, K_new)
    torch.testing.assert_close(projected[0][inside], target_uv[inside], atol=1e-9, rtol=0)
    assert int(inside.sum()) > 0.5 * inside.numel()


def test_shape_errors() -> None:
    with pytest.raises(ShapeError):
        project_points(torch.zeros(4, 2), make_K())
    with pytest.raises(ShapeError):
        backproject(torch.zeros(4, 2), torch.zeros(5), make_K())
    with pytest.raises(ShapeError):
        crop_intrinsics(make_K().unsqueeze(0), torch.zeros(2, 4))
    with pytest.raises(ShapeError):
        depth_to_points(torch.zeros(2, 3), make_K().unsqueeze(0))
    assert math.isfinite(float(project_points(torch.zeros(1, 3), make_K())[0].sum()))
