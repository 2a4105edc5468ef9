"""Weakly supervised monocular 3D losses (SKD-WM3D, distill3d.losses.mono3d) on hand-built geometry."""

from __future__ import annotations

import math

import pytest
import torch

from distill3d.errors import ShapeError
from distill3d.geometry.boxes3d import project_box3d_to_image
from distill3d.losses.mono3d import (
    box_depth_target,
    covered_by_nearer_boxes,
    dimension_prior_loss,
    focal_heatmap_loss,
    heatmap_distillation_loss,
    laplacian_l1,
    point_box_alignment_loss,
    projection_consistency_loss,
    scale_gradients,
    surface_points,
    transfer_modulation_coefficients,
    uncertainty_distillation_loss,
)

DTYPE = torch.float64
IMAGE_SIZE = (320, 96)  # (width, height) of the input image


def camera() -> tuple[torch.Tensor, torch.Tensor]:
    """A KITTI-like camera of a 320×96 image: K (3, 3) and P (3, 4) with a stereo-offset translation column."""
    K = torch.tensor([[186.0, 0.0, 157.3], [0.0, 186.0, 44.1], [0.0, 0.0, 1.0]], dtype=DTYPE)
    P = torch.cat([K, K @ torch.tensor([[0.06], [0.0], [0.0]], dtype=DTYPE)], dim=1)
    return K, P


def scene_boxes() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three cars in front of the camera: geometric centres (3, 3), dims (h, w, l) (3, 3), yaw (3,)."""
    bottom = torch.tensor([[1.0, 1.65, 15.0], [-3.0, 1.65, 22.0], [4.0, 1.65, 30.0]], dtype=DTYPE)
    dims = torch.tensor([[1.5, 1.6, 3.9], [1.6, 1.7, 4.2], [1.4, 1.6, 3.6]], dtype=DTYPE)
    ry = torch.tensor([0.3, -1.2, 2.5], dtype=DTYPE)
    centre = bottom - torch.stack([torch.zeros(3, dtype=DTYPE), dims[:, 0] / 2, torch.zeros(3, dtype=DTYPE)], 1)
    return centre, dims, ry


def true_boxes2d(centre: torch.Tensor, dims: torch.Tensor, ry: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """The 2D boxes of the 3D boxes, by the geometry module (independent of the loss's own projection)."""
    bottom = centre + torch.stack([torch.zeros_like(ry), dims[:, 0] / 2, torch.zeros_like(ry)], 1)
    _, boxes2d = project_box3d_to_image(torch.cat([bottom, dims, ry[:, None]], 1), P, image_size=IMAGE_SIZE)
    return boxes2d


# ----------------------------------------------------------------------------------------------------------
# Projection consistency
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["l1", "giou"])
def test_projection_loss_is_zero_for_the_true_box(mode: str) -> None:
    _, P = camera()
    centre, dims, ry = scene_boxes()
    boxes2d = true_boxes2d(centre, dims, ry, P)
    P_per_object = P.expand(3, 3, 4)
    loss = projection_consistency_loss(centre, dims, ry, P_per_object, boxes2d, IMAGE_SIZE, mode=mode)
    assert loss.item() == pytest.approx(0.0, abs=1e-10)
    # One shared matrix is accepted too.
    assert projection_consistency_loss(centre, dims, ry, P, boxes2d, IMAGE_SIZE, mode=mode).item() < 1e-10


@pytest.mark.parametrize("mode", ["l1", "giou"])
@pytest.mark.parametrize("perturbation", ["depth", "yaw"])
def test_projection_loss_grows_when_perturbed_and_its_gradient_undoes_it(mode: str, perturbation: str) -> None:
    _, P = camera()
    centre, dims, ry = scene_boxes()
    boxes2d = true_boxes2d(centre, dims, ry, P)
    centre = centre.clone().requires_grad_(True)
    ry = ry.clone().requires_grad_(True)
    with torch.no_grad():
        if perturbation == "depth":
            centre[:, 2] += 2.0
        else:
            ry += 0.4
    loss = projection_consistency_loss(centre, dims, ry, P.expand(3, 3, 4), boxes2d, IMAGE_SIZE, mode=mode)
    assert loss.item() > 1e-3
    loss.backward()
    assert torch.isfinite(centre.grad).all() and torch.isfinite(ry.grad).all()
    if perturbation == "depth":
        assert (centre.grad[:, 2] > 0).all()  # farther than the truth: the gradient pushes the boxes closer
        step = {"centre": centre - 0.01 * centre.grad / centre.grad.norm(), "ry": ry}
    else:
        assert ry.grad.abs().min() > 0
        step = {"centre": centre, "ry": ry - 0.005 * ry.grad / ry.grad.norm()}
    with torch.no_grad():
        moved = projection_consistency_loss(step["centre"], dims, step["ry"], P, boxes2d, IMAGE_SIZE, mode=mode)
    assert moved.item() < loss.item()


def test_projection_loss_l1_normalisation_and_per_object_values() -> None:
    _, P = camera()
    centre, dims, ry = scene_boxes()
    boxes2d = true_boxes2d(centre, dims, ry, P)
    shifted = boxes2d.clone()
    shifted[0, [0, 2]] += 3.0  # the first target moved right by 3 px: error 3 px on x1 and x2
    values = projection_consistency_loss(centre, dims, ry, P, shifted, IMAGE_SIZE, reduction="none")
    width = (boxes2d[0, 2] - boxes2d[0, 0]).item()
    assert values.shape == (3,)
    assert values[0].item() == pytest.approx(2 * 3.0 / (4 * width), rel=1e-9)
    assert values[1:].abs().max().item() < 1e-10


def test_projection_loss_is_finite_for_boxes_behind_the_camera() -> None:
    _, P = camera()
    centre, dims, ry = scene_boxes()
    boxes2d = true_boxes2d(centre, dims, ry, P)
    centre = centre.clone()
    centre[0, 2] = -5.0
    centre[1, 2] = 0.5  # straddles the near plane
    centre.requires_grad_(True)
    for mode in ("l1", "giou"):
        loss = projection_consistency_loss(centre, dims, ry, P, boxes2d, IMAGE_SIZE, mode=mode)
        loss.backward()
        assert torch.isfinite(loss) and loss.item() > 0
        assert torch.isfinite(centre.grad).all()
        centre.grad = None


def test_projection_loss_rejects_bad_shapes() -> None:
    _, P = camera()
    centre, dims, ry = scene_boxes()
    with pytest.raises(ShapeError):
        projection_consistency_loss(centre, dims, ry, P.expand(2, 3, 4), torch.zeros(3, 4, dtype=DTYPE))
    with pytest.raises(ValueError):
        projection_consistency_loss(centre, dims, ry, P, torch.zeros(3, 4, dtype=DTYPE), mode="iou")


# ----------------------------------------------------------------------------------------------------------
# Depth targets and surface points
# ----------------------------------------------------------------------------------------------------------


def test_box_depth_target_recovers_constant_and_planar_depth() -> None:
    height, width = 96, 320
    columns = torch.arange(width, dtype=DTYPE).expand(height, width)
    rows = torch.arange(height, dtype=DTYPE)[:, None].expand(height, width)
    depth = torch.stack([torch.full((height, width), 12.0, dtype=DTYPE), 10.0 + 0.05 * columns, 8.0 + 0.1 * rows])
    boxes = torch.tensor([[40.0, 20.0, 120.0, 60.0]] * 3, dtype=DTYPE)
    batch_index = torch.tensor([0, 1, 2])
    target = box_depth_target(depth, boxes, batch_index, quantile=0.3, shrink=0.2)
    assert target.shape == (3,) and target.dtype == DTYPE
    assert target[0].item() == pytest.approx(12.0, abs=1e-12)
    # The 0.3 quantile of a plane over the shrunk box [56, 104] × [28, 52], to within one lattice step.
    assert target[1].item() == pytest.approx(10.0 + 0.05 * (56.0 + 0.3 * 48.0), abs=0.05 * 3.0)
    assert target[2].item() == pytest.approx(8.0 + 0.1 * (28.0 + 0.3 * 24.0), abs=0.1 * 1.5)
    median = box_depth_target(depth, boxes, batch_index, quantile=0.5, shrink=0.2)
    assert median[1].item() == pytest.approx(10.0 + 0.05 * 80.0, abs=0.05 * 3.0)


def test_depth_target_ignores_samples_inside_nearer_objects_boxes() -> None:
    """A far car (bottom edge higher) partly hidden by a nearer one: its target must not read the occluder."""
    depth = torch.full((2, 60, 100), 30.0, dtype=DTYPE)
    depth[0, 20:60, 0:56] = 10.0  # the nearer object's pixels in image 0
    far, near = [30.0, 10.0, 70.0, 40.0], [0.0, 20.0, 55.0, 59.0]  # near: lower bottom edge (y2 59 > 40)
    boxes = torch.tensor([far, near, far], dtype=DTYPE)
    batch_index = torch.tensor([0, 0, 1])
    plain = box_depth_target(depth, boxes, batch_index, quantile=0.3, shrink=0.1)
    aware = box_depth_target(depth, boxes, batch_index, quantile=0.3, shrink=0.1, exclude_nearer_boxes=True)
    assert plain[0].item() == pytest.approx(10.0)  # the occluder fills > 30 % of the far box
    assert aware[0].item() == pytest.approx(30.0)
    assert aware[1].item() == pytest.approx(10.0)  # the nearer box itself is not masked by the farther one
    assert aware[2].item() == pytest.approx(30.0)  # another image's boxes never mask
    uv = torch.tensor([[[35.0, 30.0], [60.0, 30.0]], [[5.0, 30.0], [40.0, 50.0]], [[35.0, 30.0], [60.0, 30.0]]],
                      dtype=DTYPE)
    covered = covered_by_nearer_boxes(uv, boxes, batch_index)
    assert covered.tolist() == [[True, False], [False, False], [False, False]]
    points, valid = surface_points(depth, boxes, batch_index, torch.eye(3, dtype=DTYPE).expand(2, 3, 3),
                                   exclude_nearer_boxes=True)
    assert (points[0, :, 2][valid[0]] == 30.0).all() and valid[0].any()


def test_box_depth_target_ignores_invalid_pixels_and_returns_nan_without_any() -> None:
    depth = torch.full((1, 60, 80), 7.5)
    depth[:, :, 40:] = 0.0  # invalid right half
    depth[:, :10] = 80.0  # the estimator's sky value
    boxes = torch.tensor([[20.0, 20.0, 60.0, 50.0], [45.0, 20.0, 75.0, 50.0], [200.0, 10.0, 260.0, 40.0],
                          [30.0, 0.0, 38.0, 8.0]])
    target = box_depth_target(depth, boxes, torch.zeros(4, dtype=torch.long), max_depth=80.0)
    assert target[0].item() == pytest.approx(7.5)  # straddles the invalid half: only valid samples count
    assert math.isnan(target[1].item())  # wholly invalid
    assert math.isnan(target[2].item())  # wholly outside the image
    assert math.isnan(target[3].item())  # only sky
    assert target.dtype == torch.float32


def test_surface_points_backproject_the_depth_inside_each_box() -> None:
    K, _ = camera()
    depth = torch.full((2, 96, 320), 10.0, dtype=DTYPE)
    depth[1] = 20.0
    depth[1, :, :100] = 60.0  # far background in the left part of the second box
    boxes = torch.tensor([[100.0, 30.0, 140.0, 60.0], [80.0, 30.0, 160.0, 60.0]], dtype=DTYPE)
    points, valid = surface_points(depth, boxes, torch.tensor([0, 1]), K.expand(2, 3, 3), grid=8, shrink=0.0)
    assert points.shape == (2, 64, 3) and valid.shape == (2, 64) and points.dtype == DTYPE
    assert valid[0].all()
    assert torch.allclose(points[0, :, 2], torch.full((64,), 10.0, dtype=DTYPE))
    # u of each point re-projects inside the box
    u = points[0, :, 0] / points[0, :, 2] * K[0, 0] + K[0, 2]
    v = points[0, :, 1] / points[0, :, 2] * K[1, 1] + K[1, 2]
    assert (u > 99.5).all() and (u < 140.5).all() and (v > 29.5).all() and (v < 60.5).all()
    # the background samples (60 m, > 2.5 m from the median 20 m) are dropped and zeroed
    assert valid[1].any() and not valid[1].all()
    assert torch.allclose(points[1][valid[1]][:, 2], torch.tensor(20.0, dtype=DTYPE))
    assert (points[1][~valid[1]] == 0).all()
    _, keep_all = surface_points(depth, boxes, torch.tensor([0, 1]), K.expand(2, 3, 3), shrink=0.0,
                                 depth_tolerance=None)
    assert keep_all.all()


# ----------------------------------------------------------------------------------------------------------
# Point-to-box alignment
# ----------------------------------------------------------------------------------------------------------


def footprint_edge_points(centre: torch.Tensor, dims: torch.Tensor, ry: torch.Tensor,
                          per_edge: int = 5) -> torch.Tensor:
    """(N, 4·per_edge, 3) points on the four edges of each box footprint (camera frame, y = centre y)."""
    half_l, half_w = dims[:, 2:3] / 2, dims[:, 1:2] / 2
    t = torch.linspace(-1.0, 1.0, per_edge, dtype=centre.dtype)[None]
    along = torch.cat([t * half_l, t * half_l, half_l.expand(-1, per_edge), -half_l.expand(-1, per_edge)], 1)
    across = torch.cat([half_w.expand(-1, per_edge), -half_w.expand(-1, per_edge), t * half_w, t * half_w], 1)
    cos, sin = torch.cos(ry)[:, None], torch.sin(ry)[:, None]
    x = centre[:, 0:1] + cos * along + sin * across
    z = centre[:, 2:3] - sin * along + cos * across
    return torch.stack([x, centre[:, 1:2].expand_as(x), z], dim=-1)


def test_alignment_loss_is_zero_on_the_edges_and_grows_when_the_box_moves() -> None:
    centre, dims, ry = scene_boxes()
    points = footprint_edge_points(centre, dims, ry)
    valid = torch.ones(points.shape[:2], dtype=torch.bool)
    centre_var = centre.clone().requires_grad_(True)
    dims_var = dims.clone().requires_grad_(True)
    ry_var = ry.clone().requires_grad_(True)
    loss = point_box_alignment_loss(centre_var, dims_var, ry_var, points, valid)
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    loss.backward()
    for tensor in (centre_var, dims_var, ry_var):
        assert torch.isfinite(tensor.grad).all()  # points exactly on the edges: no NaN from the sqrt

    shifted = centre.clone()
    shifted[:, 0] += 0.5
    shifted.requires_grad_(True)
    moved = point_box_alignment_loss(shifted, dims, ry, points, valid)
    assert moved.item() > 0.05
    moved.backward()
    assert (shifted.grad[:, 0] > 0).all()  # the gradient moves the boxes back
    assert shifted.grad[:, 1].abs().max() == 0  # the height coordinate gets no signal
    turned = point_box_alignment_loss(centre, dims, ry + 0.3, points, valid)
    assert turned.item() > 0.01


def test_alignment_distance_is_the_rectangle_boundary_distance_and_masks_points() -> None:
    centre = torch.tensor([[0.0, 1.0, 10.0]], dtype=DTYPE)
    dims = torch.tensor([[1.5, 1.6, 4.0]], dtype=DTYPE)  # half length 2 (along x), half width 0.8 (along z)
    ry = torch.zeros(1, dtype=DTYPE)
    inside = torch.tensor([[[0.0, 1.0, 10.0]]], dtype=DTYPE)  # at the centre: 0.8 m to the nearest edge
    corner = torch.tensor([[[2.3, 1.0, 10.0 + 0.8 + 0.4]]], dtype=DTYPE)  # 0.5 m from the corner
    beta = 0.1
    for points, distance in ((inside, 0.8), (corner, 0.5)):
        value = point_box_alignment_loss(centre, dims, ry, points, torch.ones(1, 1, dtype=torch.bool), beta=beta)
        assert value.item() == pytest.approx(distance - beta / 2, rel=1e-12)
    both = torch.cat([inside, corner], dim=1)
    masked = point_box_alignment_loss(centre, dims, ry, both, torch.tensor([[False, True]]), beta=beta)
    assert masked.item() == pytest.approx(0.5 - beta / 2, rel=1e-12)
    none_valid = point_box_alignment_loss(centre, dims, ry, both, torch.zeros(1, 2, dtype=torch.bool))
    assert none_valid.item() == 0.0


# ----------------------------------------------------------------------------------------------------------
# Focal, Laplacian, prior, distillation
# ----------------------------------------------------------------------------------------------------------


def test_focal_loss_matches_a_hand_computation() -> None:
    logits = torch.tensor([[[[0.5, -1.0], [2.0, 0.0]]]], dtype=DTYPE)
    targets = torch.tensor([[[[1.0, 0.5], [0.2, 0.0]]]], dtype=DTYPE)
    p = [1 / (1 + math.exp(-x)) for x in (0.5, -1.0, 2.0, 0.0)]
    positive = -((1 - p[0]) ** 2) * math.log(p[0])
    negative = -sum((1 - y) ** 4 * q**2 * math.log(1 - q) for y, q in zip((0.5, 0.2, 0.0), p[1:], strict=True))
    loss = focal_heatmap_loss(logits, targets)
    assert loss.item() == pytest.approx(positive + negative, rel=1e-12)
    no_object = focal_heatmap_loss(logits, torch.zeros_like(targets))  # no positive: not divided
    expected = -sum(q**2 * math.log(1 - q) for q in p)
    assert no_object.item() == pytest.approx(expected, rel=1e-12)
    saturated = focal_heatmap_loss(torch.tensor([[[[-200.0, 200.0]]]]), torch.tensor([[[[1.0, 0.0]]]]))
    assert torch.isfinite(saturated)


def test_laplacian_l1_value_and_gradients() -> None:
    pred = torch.tensor([10.0, 20.0], dtype=DTYPE, requires_grad=True)
    target = torch.tensor([11.0, 20.0], dtype=DTYPE)
    log_sigma = torch.tensor([0.5, -0.2], dtype=DTYPE, requires_grad=True)
    loss = laplacian_l1(pred, target, log_sigma)
    expected = (math.sqrt(2) * 1.0 * math.exp(-0.5) + 0.5 + 0.0 - 0.2) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()
    assert pred.grad[0].item() == pytest.approx(-math.sqrt(2) * math.exp(-0.5) / 2, rel=1e-12)
    assert log_sigma.grad[0].item() == pytest.approx((1 - math.sqrt(2) * math.exp(-0.5)) / 2, rel=1e-12)
    assert laplacian_l1(pred, target, log_sigma, reduction="none").shape == (2,)


def test_dimension_prior_loss_is_l1_to_the_class_mean() -> None:
    log_ratio = torch.tensor([[0.1, -0.2, 0.0], [0.0, 0.3, -0.1]], requires_grad=True)
    loss = dimension_prior_loss(log_ratio)
    assert loss.item() == pytest.approx(0.7 / 6)
    loss.backward()
    assert torch.allclose(log_ratio.grad, torch.sign(log_ratio.detach()) / 6)


def test_uncertainty_distillation_teacher_gets_no_gradient_and_margin_is_soft() -> None:
    student = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=DTYPE, requires_grad=True)
    teacher = torch.tensor([[1.05, 3.0], [3.0, 2.0]], dtype=DTYPE, requires_grad=True)
    log_sigma = torch.tensor([[0.0, 0.5], [0.0, -0.5]], dtype=DTYPE, requires_grad=True)
    loss = uncertainty_distillation_loss(student, teacher, log_sigma, margin=0.1)
    excess = [0.0, 0.9, 0.0, 1.9]
    sigma = [0.0, 0.5, 0.0, -0.5]
    expected = sum(math.sqrt(2) * e * math.exp(-s) + s for e, s in zip(excess, sigma, strict=True)) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()
    assert teacher.grad is None and log_sigma.grad is None
    assert student.grad[0, 0].item() == 0.0  # within the margin
    assert student.grad[0, 1].item() < 0 and student.grad[1, 1].item() > 0  # pulled towards the teacher
    plain = uncertainty_distillation_loss(student, teacher, None, margin=0.1)
    assert plain.item() == pytest.approx(sum(excess) / 4, rel=1e-12)


# ----------------------------------------------------------------------------------------------------------
# Transfer modulation
# ----------------------------------------------------------------------------------------------------------


def test_modulation_slows_the_faster_branch_and_leaves_equal_paces_alone() -> None:
    alpha = 0.8
    k_teacher, k_student = transfer_modulation_coefficients(torch.tensor(2.0), torch.tensor(1.0), alpha)
    assert k_teacher.item() == pytest.approx(1 - math.tanh(alpha * 1.0), rel=1e-5)  # ρ = 2: the DSN is ahead
    assert k_student.item() == 1.0
    k_teacher, k_student = transfer_modulation_coefficients(1.0, 4.0, alpha)  # ρ = 1/4: the MDN is ahead
    assert k_teacher.item() == 1.0
    assert k_student.item() == pytest.approx(1 - math.tanh(alpha * 3.0), rel=1e-5)
    k_teacher, k_student = transfer_modulation_coefficients(torch.tensor(0.7), torch.tensor(0.7), alpha)
    assert k_teacher.item() == 1.0 and k_student.item() == 1.0
    for student, teacher in ((1e6, 1e-6), (1e-6, 1e6), (0.0, 0.0), (float("nan"), 1.0), (3.0, float("inf"))):
        coefficients = transfer_modulation_coefficients(student, teacher, 5.0)
        assert all(0.0 <= k.item() <= 1.0 for k in coefficients)
    k_teacher, _ = transfer_modulation_coefficients(torch.tensor(2.0, dtype=DTYPE), 1.0, alpha)
    assert k_teacher.dtype == DTYPE and k_teacher.requires_grad is False


def test_scale_gradients_scales_in_place() -> None:
    model = torch.nn.Linear(3, 2)
    model(torch.ones(4, 3)).sum().backward()
    before = [p.grad.clone() for p in model.parameters()]
    scale_gradients(model, torch.tensor(0.25))
    for parameter, old in zip(model.parameters(), before, strict=True):
        assert torch.allclose(parameter.grad, 0.25 * old)
    scale_gradients(list(model.parameters()), 2.0)
    for parameter, old in zip(model.parameters(), before, strict=True):
        assert torch.allclose(parameter.grad, 0.5 * old)
    frozen = torch.nn.Parameter(torch.ones(2))
    scale_gradients([frozen], 0.5)  # no gradient: left alone
    assert frozen.grad is None


# ----------------------------------------------------------------------------------------------------------
# Empty inputs and devices
# ----------------------------------------------------------------------------------------------------------


def test_every_loss_is_an_exact_finite_zero_without_objects() -> None:
    _, P = camera()
    centre = torch.zeros(0, 3, dtype=DTYPE, requires_grad=True)
    dims = torch.zeros(0, 3, dtype=DTYPE)
    ry = torch.zeros(0, dtype=DTYPE)
    empty_boxes = torch.zeros(0, 4, dtype=DTYPE)
    losses = [
        projection_consistency_loss(centre, dims, ry, P.expand(0, 3, 4), empty_boxes, IMAGE_SIZE),
        projection_consistency_loss(centre, dims, ry, P, empty_boxes, IMAGE_SIZE, mode="giou"),
        point_box_alignment_loss(centre, dims, ry, torch.zeros(0, 64, 3, dtype=DTYPE), torch.zeros(0, 64, dtype=bool)),
        laplacian_l1(centre[:, 0], centre[:, 1], centre[:, 2]),
        dimension_prior_loss(centre),
        uncertainty_distillation_loss(centre, centre, centre, margin=0.1),
        uncertainty_distillation_loss(centre, centre),
        focal_heatmap_loss(torch.zeros(0, 3, 24, 80, dtype=DTYPE), torch.zeros(0, 3, 24, 80, dtype=DTYPE)),
    ]
    for loss in losses:
        assert loss.shape == () and loss.item() == 0.0
    total = sum(losses[:-1])
    total.backward()  # still part of the graph
    assert centre.grad.shape == (0, 3)

    depth = torch.full((2, 24, 80), 5.0, dtype=DTYPE)
    no_index = torch.zeros(0, dtype=torch.long)
    assert box_depth_target(depth, empty_boxes, no_index).shape == (0,)
    points, valid = surface_points(depth, empty_boxes, no_index, camera()[0].expand(2, 3, 3), grid=4)
    assert points.shape == (0, 16, 3) and valid.shape == (0, 16)


def test_losses_follow_the_inputs_device_and_dtype() -> None:
    meta = torch.device("meta")
    centre = torch.zeros(5, 3, device=meta)
    dims = torch.ones(5, 3, device=meta)
    ry = torch.zeros(5, device=meta)
    P = torch.zeros(5, 3, 4, device=meta)
    boxes2d = torch.zeros(5, 4, device=meta)
    for mode in ("l1", "giou"):
        loss = projection_consistency_loss(centre, dims, ry, P, boxes2d, IMAGE_SIZE, mode=mode)
        assert loss.device == meta and loss.shape == ()
    alignment = point_box_alignment_loss(centre, dims, ry, torch.zeros(5, 7, 3, device=meta),
                                         torch.ones(5, 7, dtype=torch.bool, device=meta))
    assert alignment.device == meta
    assert laplacian_l1(ry, ry, ry).device == meta
    assert uncertainty_distillation_loss(centre, centre, centre).device == meta
    assert focal_heatmap_loss(torch.zeros(1, 3, 4, 4, device=meta), torch.zeros(1, 3, 4, 4, device=meta)).device == meta

    single = projection_consistency_loss(*(t.to(torch.float32) for t in scene_boxes()), camera()[1].float(),
                                       torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3), IMAGE_SIZE)
    assert single.dtype == torch.float32


def test_alignment_to_visible_edges_measures_to_the_camera_facing_faces() -> None:
    """A car straight ahead, length along z (ry = π/2): only its rear face (nearer the camera) is visible."""
    height, width, length = 1.5, 1.6, 4.0
    centre = torch.tensor([[0.0, 1.0, 20.0]], dtype=DTYPE)
    dims = torch.tensor([[height, width, length]], dtype=DTYPE)
    ry = torch.tensor([math.pi / 2], dtype=DTYPE)

    def per_point(x: float, z: float, visible: bool) -> float:
        points = torch.tensor([[[x, 1.0, z]]], dtype=DTYPE)
        return point_box_alignment_loss(centre, dims, ry, points, torch.ones(1, 1, dtype=torch.bool), beta=1e-6,
                                        reduction="none", visible_edges_only=visible).item()

    rear = 20.0 - length / 2
    assert per_point(0.3, rear, True) == pytest.approx(0.0, abs=1e-5)  # on the visible rear face
    front = 20.0 + length / 2  # the hidden front face is not a target
    assert per_point(0.0, front, True) == pytest.approx(length, abs=1e-5)
    assert per_point(0.0, front, False) == pytest.approx(0.0, abs=1e-5)
    inside = (0.7, rear + 0.5)  # 0.1 m from a hidden side edge, 0.5 m behind the rear face
    assert per_point(*inside, False) == pytest.approx(0.1, abs=1e-5)
    assert per_point(*inside, True) == pytest.approx(0.5, abs=1e-5)
    # seen obliquely (camera off to the side), a side face is visible too
    oblique = torch.tensor([[6.0, 1.0, 20.0]], dtype=DTYPE)
    points = torch.tensor([[[6.0 - width / 2, 1.0, 20.5]]], dtype=DTYPE)  # on the side facing the camera (x < centre)
    loss = point_box_alignment_loss(oblique, dims, ry, points, torch.ones(1, 1, dtype=torch.bool), beta=1e-6,
                                    reduction="none", visible_edges_only=True)
    assert loss.item() == pytest.approx(0.0, abs=1e-5)
    centre.requires_grad_(True)
    points = torch.tensor([[[0.3, 1.0, rear + 0.2], [0.0, 1.0, rear - 0.3]]], dtype=DTYPE)
    point_box_alignment_loss(centre, dims, ry, points, torch.ones(1, 2, dtype=torch.bool),
                             visible_edges_only=True).backward()
    assert torch.isfinite(centre.grad).all() and centre.grad.abs().sum() > 0


def test_heatmap_distillation_is_the_binary_kl_per_object() -> None:
    """0 when the maps agree; otherwise Σ KL(sg(p_t) ‖ p_s) / N_obj, with gradient to the student only."""
    generator = torch.Generator().manual_seed(0)
    teacher = torch.randn(2, 3, 4, 5, generator=generator, requires_grad=True)
    student = torch.randn(2, 3, 4, 5, generator=generator, requires_grad=True)
    assert float(heatmap_distillation_loss(teacher, teacher, 3)) == pytest.approx(0.0, abs=1e-6)
    loss = heatmap_distillation_loss(student, teacher, 4)
    p, q = torch.sigmoid(teacher.detach()).double(), torch.sigmoid(student.detach()).double()
    expected = (p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()).sum() / 4
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    loss.backward()
    assert teacher.grad is None and bool(student.grad.abs().sum() > 0)
    assert float(heatmap_distillation_loss(student, teacher, 0)) == pytest.approx(4 * float(loss), rel=1e-5)
    with pytest.raises(ShapeError):
        heatmap_distillation_loss(student, teacher[:, :2], 1)
