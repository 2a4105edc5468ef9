"""3D box geometry: corners, projection, 2D / BEV / 3D IoU (constructed cases and the mmdet3d reference)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import shared_path
from distill3d.data.kitti_io import read_calib_file, read_label_dir
from distill3d.errors import ShapeError
from distill3d.geometry.boxes3d import (
    alpha_to_rotation_y,
    bev_intersection,
    bev_iou,
    box2d_ioa,
    box2d_iou,
    box3d_corners,
    box3d_iou,
    boxes3d_to_bev,
    project_box3d_to_image,
    rotation_y_to_alpha,
)


def random_boxes3d(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 7) boxes scattered over a 6 m x 6 m patch so that many pairs overlap."""
    location = rng.uniform([-3.0, 1.0, 10.0], [3.0, 2.0, 16.0], size=(n, 3))
    size = rng.uniform([1.0, 1.0, 1.0], [2.0, 2.5, 5.0], size=(n, 3))
    yaw = rng.uniform(-math.pi, math.pi, size=(n, 1))
    return np.concatenate([location, size, yaw], axis=1)


# ---------------------------------------------------------------------------------------------- corners


def test_corners_axis_aligned_box_follows_documented_order() -> None:
    box = np.array([[1.0, 2.0, 10.0, 1.5, 2.0, 4.0, 0.0]])  # h=1.5, w=2, l=4
    corners = box3d_corners(box)[0]
    assert corners.shape == (8, 3)
    np.testing.assert_allclose(corners[0], [3.0, 2.0, 11.0])  # (+l/2, 0, +w/2)
    np.testing.assert_allclose(corners[1], [3.0, 2.0, 9.0])
    np.testing.assert_allclose(corners[2], [-1.0, 2.0, 9.0])
    np.testing.assert_allclose(corners[3], [-1.0, 2.0, 11.0])
    np.testing.assert_allclose(corners[4:, 1], 0.5)  # top face at y - h
    np.testing.assert_allclose(corners[4:, [0, 2]], corners[:4, [0, 2]])


def test_corners_yaw_turns_length_from_x_to_minus_z() -> None:
    box = np.array([[0.0, 0.0, 0.0, 1.0, 2.0, 4.0, math.pi / 2]])
    corner0 = box3d_corners(box)[0, 0]
    np.testing.assert_allclose(corner0, [1.0, 0.0, -2.0], atol=1e-12)  # (w/2, 0, -l/2)


def test_corners_torch_is_differentiable_and_matches_numpy() -> None:
    boxes = random_boxes3d(np.random.default_rng(0), 5)
    tensor = torch.tensor(boxes, requires_grad=True)
    corners = box3d_corners(tensor)
    corners.sum().backward()
    assert tensor.grad is not None and torch.isfinite(tensor.grad).all()
    np.testing.assert_allclose(corners.detach().numpy(), box3d_corners(boxes), atol=1e-12)


def test_corner_footprint_is_the_bev_rectangle() -> None:
    boxes = random_boxes3d(np.random.default_rng(1), 6)
    footprint = box3d_corners(boxes)[:, :4][:, :, [0, 2]]  # (N, 4, 2) bottom face in (x, z)
    # Every footprint corner lies on the boundary of its own BEV rectangle and the area matches l * w.
    edges = np.roll(footprint, -1, axis=1) - footprint
    twice_area = np.abs(np.sum(footprint[..., 0] * np.roll(footprint[..., 1], -1, 1)
                               - np.roll(footprint[..., 0], -1, 1) * footprint[..., 1], axis=1))  # fmt: skip
    np.testing.assert_allclose(twice_area / 2, boxes[:, 5] * boxes[:, 4])
    np.testing.assert_allclose(np.linalg.norm(edges[:, 0], axis=1), boxes[:, 4])  # corner 0 -> 1 spans w
    np.testing.assert_allclose(bev_iou(boxes3d_to_bev(boxes), boxes3d_to_bev(boxes)).diagonal(), 1.0)


def test_wrong_shapes_raise_shape_error() -> None:
    with pytest.raises(ShapeError):
        box3d_corners(np.zeros((3, 6)))
    with pytest.raises(ShapeError):
        bev_iou(np.zeros((3, 7)), np.zeros((2, 5)))
    with pytest.raises(ShapeError):
        box2d_iou(np.zeros(4), np.zeros((2, 4)))


# ---------------------------------------------------------------------------------------------- projection


def test_projection_matches_pinhole_model_and_accepts_k() -> None:
    K = np.array([[700.0, 0.0, 600.0], [0.0, 700.0, 180.0], [0.0, 0.0, 1.0]])
    boxes = random_boxes3d(np.random.default_rng(2), 4)
    corners_uv, boxes2d = project_box3d_to_image(boxes, K)
    corners = box3d_corners(boxes)
    expected = corners[..., :2] * 700.0 / corners[..., 2:] + [600.0, 180.0]
    np.testing.assert_allclose(corners_uv, expected)
    np.testing.assert_allclose(boxes2d[:, :2], expected.min(axis=1))
    np.testing.assert_allclose(boxes2d[:, 2:], expected.max(axis=1))
    P = np.concatenate([K, np.zeros((3, 1))], axis=1)
    np.testing.assert_allclose(project_box3d_to_image(boxes, P)[1], boxes2d)


def test_projection_handles_corners_behind_the_camera() -> None:
    K = np.array([[700.0, 0.0, 600.0], [0.0, 700.0, 180.0], [0.0, 0.0, 1.0]])
    straddling = [2.0, 1.0, 0.5, 1.5, 1.6, 4.0, 0.0]  # z from -1.5 to 2.5
    behind = [0.0, 1.0, -10.0, 1.5, 1.6, 4.0, 0.0]
    corners_uv, boxes2d = project_box3d_to_image(np.array([straddling, behind]), K, min_depth=0.1)
    in_front = box3d_corners(np.array([straddling]))[0, :, 2] > 0.1
    assert np.isnan(corners_uv[0][~in_front]).all() and np.isfinite(corners_uv[0][in_front]).all()
    assert np.isfinite(boxes2d[0]).all()
    # The box reaches the near plane, so its 2D extent goes far beyond the projected visible corners.
    assert boxes2d[0, 2] > np.nanmax(corners_uv[0, :, 0]) + 1000
    assert np.isnan(boxes2d[1]).all() and np.isnan(corners_uv[1]).all()
    _, clipped = project_box3d_to_image(np.array([straddling]), K, image_size=(1242, 375))
    np.testing.assert_allclose(clipped[0, 2:], [1241.0, 374.0])


@pytest.mark.shared
def test_projection_reproduces_golden_label_boxes() -> None:
    """Golden GT 2D boxes are projections of their 3D boxes with KITTI 000000's P2, clipped to the image."""
    P2 = read_calib_file(shared_path("data", "kitti", "training", "calib", "000000.txt")).P2
    labels = read_label_dir(shared_path("golden", "kitti_eval", "gt"))
    errors = []
    for objects in labels.values():
        objects = objects.select(objects.name != "DontCare")
        _, boxes2d = project_box3d_to_image(objects.boxes3d(), P2, image_size=(1242, 375))
        errors.append(np.abs(boxes2d - objects.bbox).max(axis=1))
    errors = np.concatenate(errors)
    assert np.median(errors) < 0.3 and errors.max() < 4.0  # labels keep 2 decimals of the 3D box


@pytest.mark.shared
def test_alpha_conversion_round_trip_and_golden_labels() -> None:
    labels = read_label_dir(shared_path("golden", "kitti_eval", "gt"))
    for objects in labels.values():
        objects = objects.select(objects.name != "DontCare")
        alpha = rotation_y_to_alpha(objects.rotation_y, objects.location)
        assert np.all(np.abs(np.angle(np.exp(1j * (alpha - objects.alpha)))) < 0.02)
        back = alpha_to_rotation_y(alpha, objects.location)
        np.testing.assert_allclose(np.angle(np.exp(1j * (back - objects.rotation_y))), 0.0, atol=1e-9)
    as_tensor = rotation_y_to_alpha(torch.tensor([3.0]), torch.tensor([[-1.0, 0.0, 1.0]]))
    assert -math.pi <= float(as_tensor) < math.pi


# ---------------------------------------------------------------------------------------------- 2D IoU


def test_box2d_iou_and_ioa_hand_computed() -> None:
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    b = np.array([[5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 10.0, 10.0]])
    np.testing.assert_allclose(box2d_iou(a, b), [[50 / 150, 0.0, 1.0]])
    np.testing.assert_allclose(box2d_ioa(a, b), [[0.5, 0.0, 1.0]])
    np.testing.assert_allclose(box2d_ioa(b[:1], np.array([[0.0, 0.0, 100.0, 100.0]])), [[1.0]])
    assert box2d_iou(np.zeros((0, 4)), b).shape == (0, 3)


def test_box2d_iou_torch_gradient_and_kind() -> None:
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]], requires_grad=True)
    iou = box2d_iou(a, torch.tensor([[5.0, 0.0, 15.0, 10.0]]))
    assert isinstance(iou, torch.Tensor) and iou.dtype == torch.float32
    iou.sum().backward()
    assert a.grad is not None and a.grad[0, 2] > 0  # widening a towards b increases the IoU


# ---------------------------------------------------------------------------------------------- BEV / 3D IoU


def test_bev_iou_hand_computed_cases() -> None:
    base = np.array([[0.0, 0.0, 4.0, 2.0, 0.0]])
    shifted = np.array([[1.0, 0.0, 4.0, 2.0, 0.0]])  # overlap 3 x 2
    np.testing.assert_allclose(bev_iou(base, shifted), [[6.0 / 10.0]])
    np.testing.assert_allclose(bev_intersection(base, shifted), [[6.0]])
    square = np.array([[0.0, 0.0, 2.0, 2.0, 0.0]])
    diamond = np.array([[0.0, 0.0, 2.0, 2.0, math.pi / 4]])  # intersection: regular octagon 8(sqrt2 - 1)
    octagon = 8 * (math.sqrt(2) - 1)
    np.testing.assert_allclose(bev_iou(square, diamond), [[octagon / (8 - octagon)]], rtol=1e-12)
    turned = np.array([[0.0, 0.0, 2.0, 4.0, math.pi / 2]])  # same footprint as base, l and w swapped
    np.testing.assert_allclose(bev_iou(base, turned), [[1.0]], rtol=1e-12)


def test_box3d_iou_hand_computed_vertical_overlap() -> None:
    a = np.array([[0.0, 0.0, 10.0, 2.0, 2.0, 4.0, 0.3]])  # spans y in [-2, 0]
    b = a.copy()
    b[0, 1] = 1.0  # spans y in [-1, 1]: 1 m of the 2 m overlap
    np.testing.assert_allclose(box3d_iou(a, b), [[8.0 / 24.0]], rtol=1e-12)
    b[0, 1] = 2.0  # touching at y = 0
    np.testing.assert_allclose(box3d_iou(a, b), [[0.0]])


def test_iou_properties_on_random_boxes() -> None:
    rng = np.random.default_rng(3)
    a, b = random_boxes3d(rng, 12), random_boxes3d(rng, 9)
    for iou in (bev_iou, box3d_iou):
        first, second = (boxes3d_to_bev(a), boxes3d_to_bev(b)) if iou is bev_iou else (a, b)
        both = iou(first, second)
        assert both.shape == (12, 9) and np.all((both >= 0) & (both <= 1 + 1e-12))
        assert np.any(both > 0.05) and np.any(both == 0)
        np.testing.assert_allclose(both, iou(second, first).T, atol=1e-12)  # symmetric
        np.testing.assert_allclose(np.diag(iou(first, first)), 1.0, rtol=1e-12)  # identical -> 1
        flipped = first.copy()
        flipped[:, -1] += math.pi  # a box rotated by pi is the same box
        np.testing.assert_allclose(np.diag(iou(first, flipped)), 1.0, rtol=1e-9)
        far = first.copy()
        far[:, 0] += 100.0
        assert np.all(iou(first, far) == 0)  # disjoint -> 0
    # The vertical overlap never exceeds either height, so 3D IoU <= BEV IoU.
    assert np.all(box3d_iou(a, b) <= bev_iou(boxes3d_to_bev(a), boxes3d_to_bev(b)) + 1e-12)
    assert box3d_iou(np.zeros((0, 7)), b).shape == (0, 9)


def test_bev_intersection_matches_monte_carlo() -> None:
    """Independent check of the polygon clipping: fraction of random points inside both rectangles."""
    rng = np.random.default_rng(4)
    a = np.array([[0.3, -0.2, 4.2, 1.8, 0.4]])
    b = np.array([[1.1, 0.5, 3.9, 1.7, -0.9]])
    points = rng.uniform(-4.0, 4.0, size=(400_000, 2))

    def inside(box: np.ndarray) -> np.ndarray:
        x, z, length, width, yaw = box[0]
        cos, sin = math.cos(yaw), math.sin(yaw)
        dx, dz = points[:, 0] - x, points[:, 1] - z
        along = cos * dx - sin * dz  # inverse of the (cos, sin; -sin, cos) corner rotation
        across = sin * dx + cos * dz
        return (np.abs(along) <= length / 2) & (np.abs(across) <= width / 2)

    estimate = np.mean(inside(a) & inside(b)) * 64.0
    assert abs(bev_intersection(a, b)[0, 0] - estimate) < 0.05
    assert np.mean(inside(a)) * 64.0 == pytest.approx(4.2 * 1.8, abs=0.05)


def test_iou_returns_the_kind_of_its_input() -> None:
    boxes = random_boxes3d(np.random.default_rng(5), 3)
    as_numpy = box3d_iou(boxes, boxes)
    as_tensor = box3d_iou(torch.tensor(boxes, dtype=torch.float32), boxes)
    assert isinstance(as_numpy, np.ndarray) and as_numpy.dtype == np.float64
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.dtype == torch.float32
    np.testing.assert_allclose(as_tensor.numpy(), as_numpy, atol=1e-6)


# ---------------------------------------------------------------------------------------------- reference


@pytest.mark.shared
@pytest.mark.parametrize("folder", ["kitti_eval", "kitti_eval_lidarlike", "kitti_eval_realgt"])
def test_overlaps_match_mmdet3d_reference(folder: str) -> None:
    """Per-frame [num_dt, num_gt] 2D / BEV / 3D overlaps equal mmdet3d's float32 kernel to its rounding."""
    root = shared_path("golden", folder)
    reference = np.load(root / "reference_overlaps_mmdet3d.npz")
    float32_error = json.loads((root / "iou_precision_check.json").read_text())[
        "max_abs_diff_reference_vs_float64_shapely"
    ]
    labels = read_label_dir(root / "gt")
    detections = read_label_dir(root / "det", ids=labels, with_score=True, missing_ok=True)
    worst = {"bbox2d": 0.0, "bev": 0.0, "3d": 0.0}
    for frame_id, gt in labels.items():
        dt = detections[frame_id]
        ours = {
            "bbox2d": box2d_iou(dt.bbox, gt.bbox),
            "bev": bev_iou(boxes3d_to_bev(dt.boxes3d()), boxes3d_to_bev(gt.boxes3d())),
            "3d": box3d_iou(dt.boxes3d(), gt.boxes3d()),
        }
        real_objects = gt.name != "DontCare"  # the reference's BEV / 3D values for DontCare are meaningless
        for kind, matrix in ours.items():
            expected = reference[f"{kind}_{frame_id}"]
            assert matrix.shape == expected.shape
            if matrix.size and real_objects.any():
                worst[kind] = max(worst[kind], float(np.abs(matrix - expected)[:, real_objects].max()))
    assert worst["bbox2d"] < 1e-9
    for kind in ("bev", "3d"):
        assert worst[kind] <= float32_error[kind] + 1e-6 and worst[kind] < 5e-4
