"""Z-buffer point visibility on constructed scenes: occlusion, opposite views, out of image, behind camera."""

from __future__ import annotations

import pytest
import torch

from distill3d.errors import ShapeError
from distill3d.geometry.camera import look_at, project_points, transform_points
from distill3d.geometry.visibility import point_visibility

K = torch.tensor([[50.0, 0.0, 31.5], [0.0, 50.0, 23.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
IMAGE_SIZE = (48, 64)


def two_opposite_views() -> tuple[torch.Tensor, torch.Tensor]:
    """Cameras on the +x and -x axis, both looking at the origin (world z up); R (1, 2, 3, 3), t (1, 2, 3)."""
    eyes = torch.tensor([[5.0, 0.0, 0.0], [-5.0, 0.0, 0.0]], dtype=torch.float64)
    R, t = look_at(eyes, torch.zeros(2, 3, dtype=torch.float64), up=(0.0, 0.0, 1.0))
    return R.unsqueeze(0), t.unsqueeze(0)


def test_point_hidden_in_one_view_is_visible_from_the_opposite_one() -> None:
    R, t = two_opposite_views()
    points = torch.tensor(
        [
            [1.0, 0.0, 0.0],  # near the +x camera, in front of point 1 from there
            [-1.0, 0.0, 0.0],  # behind point 0 for the +x camera, in front for the -x camera
            [0.0, 0.5, 0.3],  # off-axis, seen by both
        ],
        dtype=torch.float64,
    ).unsqueeze(0)
    visible, pixels = point_visibility(points, R, t, K, IMAGE_SIZE, depth_tolerance=0.05)
    assert visible.shape == (1, 2, 3) and pixels.shape == (1, 2, 3, 2) and pixels.dtype == torch.long
    assert visible[0, 0].tolist() == [True, False, True]
    assert visible[0, 1].tolist() == [False, True, True]
    # Both axis points land on the principal-point pixel (31.5, 23.5) → round half up to (32, 24).
    assert pixels[0, 0, 0].tolist() == [32, 24] and pixels[0, 0, 1].tolist() == [32, 24]


def test_tolerance_keeps_surface_neighbours_visible() -> None:
    R, t = two_opposite_views()
    points = torch.tensor([[[1.0, 0.0, 0.0], [0.98, 0.0, 0.0]]], dtype=torch.float64)  # 2 cm apart in depth
    absolute_tight, _ = point_visibility(points, R, t, K, IMAGE_SIZE, depth_tolerance=0.01)
    absolute_loose, _ = point_visibility(points, R, t, K, IMAGE_SIZE, depth_tolerance=0.03)
    relative, _ = point_visibility(
        points, R, t, K, IMAGE_SIZE, depth_tolerance=0.01, tolerance_mode="relative"
    )
    # From the +x camera the first point is at 4.00 m, the second at 4.02 m on the same pixel.
    assert absolute_tight[0, 0].tolist() == [True, False]
    assert absolute_loose[0, 0].tolist() == [True, True]
    assert relative[0, 0].tolist() == [True, True]  # 0.01 · 4.00 m > 2 cm


def test_outside_image_and_behind_camera() -> None:
    R = torch.eye(3, dtype=torch.float64).expand(1, 1, 3, 3)
    t = torch.zeros(1, 1, 3, dtype=torch.float64)
    points = torch.tensor(
        [
            [0.0, 0.0, 2.0],  # centre
            [10.0, 0.0, 2.0],  # far right, outside the image
            [0.0, 0.0, -2.0],  # behind the camera (would project onto the centre)
            [0.0, 0.0, 0.0],  # at the camera centre
            [float("nan"), 0.0, 1.0],  # invalid
            [-31.9 / 50 * 1.0, -23.9 / 50, 1.0],  # projects to (-0.4, -0.4): rounds to pixel (0, 0)
            [-32.1 / 50 * 1.0, 0.0, 1.0],  # projects to u = -0.6: outside
        ],
        dtype=torch.float64,
    ).unsqueeze(0)
    visible, pixels = point_visibility(points, R, t, K, IMAGE_SIZE, depth_tolerance=0.01)
    assert visible[0, 0].tolist() == [True, False, False, False, False, True, False]
    assert pixels[0, 0, 1].tolist() == [-1, -1] and pixels[0, 0, 2].tolist() == [-1, -1]
    assert pixels[0, 0, 5].tolist() == [0, 0]


def test_splat_radius_lets_a_near_point_cover_its_neighbours() -> None:
    R = torch.eye(3, dtype=torch.float64).expand(1, 1, 3, 3)
    t = torch.zeros(1, 1, 3, dtype=torch.float64)
    # A near point on pixel (32, 24) and a far point one pixel to the right.
    near = torch.tensor([0.5 / 50 * 1.0, 0.5 / 50, 1.0], dtype=torch.float64)
    far = torch.tensor([1.5 / 50 * 3.0, 0.5 / 50 * 3.0, 3.0], dtype=torch.float64)
    points = torch.stack([near, far]).unsqueeze(0)
    without, pixels = point_visibility(points, R, t, K, IMAGE_SIZE, depth_tolerance=0.1)
    assert pixels[0, 0].tolist() == [[32, 24], [33, 24]]
    assert without[0, 0].tolist() == [True, True]
    with_splat, _ = point_visibility(points, R, t, K, IMAGE_SIZE, depth_tolerance=0.1, splat_radius=1)
    assert with_splat[0, 0].tolist() == [True, False]


def test_matches_a_reference_loop_on_a_random_scene() -> None:
    generator = torch.Generator().manual_seed(0)
    batch, views, count = 2, 3, 400
    points = torch.randn(batch, count, 3, generator=generator, dtype=torch.float64)
    eyes = 6 * torch.nn.functional.normalize(
        torch.randn(batch, views, 3, generator=generator, dtype=torch.float64), dim=-1
    )
    R, t = look_at(eyes, torch.zeros_like(eyes), up=(0.3, 0.2, 1.0))
    Ks = K.expand(batch, views, 3, 3).clone()
    Ks[:, :, 0, 0] = 20.0
    Ks[:, :, 1, 1] = 20.0
    visible, pixels = point_visibility(points, R, t, Ks, (24, 32), depth_tolerance=0.05)
    # Brute-force z-buffer per view (test-only loop).
    for b in range(batch):
        for v in range(views):
            camera_points = transform_points(points[b], R[b, v], t[b, v])
            uv, depth = project_points(camera_points, Ks[b, v])
            pix = torch.floor(uv + 0.5).long()
            ok = (depth > 1e-6) & (pix[:, 0] >= 0) & (pix[:, 0] < 32) & (pix[:, 1] >= 0) & (pix[:, 1] < 24)
            nearest = {}
            for i in torch.nonzero(ok).flatten().tolist():
                key = tuple(pix[i].tolist())
                nearest[key] = min(nearest.get(key, float("inf")), float(depth[i]))
            expected = [
                bool(ok[i]) and float(depth[i]) <= nearest[tuple(pix[i].tolist())] + 0.05
                for i in range(count)
            ]
            assert visible[b, v].tolist() == expected
            assert torch.equal(pixels[b, v][ok], pix[ok])
    assert 0 < int(visible.sum()) < visible.numel()


def test_shape_errors() -> None:
    R, t = two_opposite_views()
    with pytest.raises(ShapeError):
        point_visibility(torch.zeros(1, 4, 2), R, t, K, IMAGE_SIZE, 0.1)
    with pytest.raises(ShapeError):
        point_visibility(torch.zeros(1, 4, 3), R, t[:, :1], K, IMAGE_SIZE, 0.1)
    with pytest.raises(ShapeError):
        point_visibility(torch.zeros(1, 4, 3), R, t, K.expand(1, 1, 3, 3), IMAGE_SIZE, 0.1)
