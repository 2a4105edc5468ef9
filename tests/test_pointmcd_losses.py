"""PointMCD's visibility-aware feature projection and losses against brute-force and hand computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from distill3d.errors import ShapeError
from distill3d.losses.pointmcd import (
    VisibilityAwareProjection,
    multi_view_distillation_loss,
    smooth_cross_entropy,
    visibility_masked_max,
)


def _inputs(batch: int = 2, points: int = 9, channels: int = 6, views: int = 4, seed: int = 0):
    """Signed features (B, N, C) and a {0,1} float visibility (B, N, V) whose view 1 of shape 0 sees nothing."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, points, channels, generator=generator)
    visibility = (torch.rand(batch, points, views, generator=generator) < 0.5).float()
    visibility[0, :, 1] = 0
    visibility[1, 3, 2] = 1  # at least one visible point in the other views
    return features, visibility


def _brute_force(features: torch.Tensor, visibility: torch.Tensor, masking: str) -> torch.Tensor:
    batch, _, channels = features.shape
    out = torch.zeros(batch, visibility.shape[2], channels, dtype=features.dtype)
    for b in range(batch):
        for v in range(visibility.shape[2]):
            seen = visibility[b, :, v] != 0
            if masking == "multiply":
                out[b, v] = (features[b] * visibility[b, :, v, None]).max(dim=0).values
            elif seen.any():
                out[b, v] = features[b][seen].max(dim=0).values
    return out


@pytest.mark.parametrize("masking", ["exclude", "multiply"])
def test_masked_max_equals_brute_force(masking: str) -> None:
    features, visibility = _inputs()
    expected = _brute_force(features, visibility, masking)
    assert torch.equal(visibility_masked_max(features, visibility, masking), expected)
    assert torch.equal(visibility_masked_max(features, visibility.bool(), masking, chunk_elements=1), expected)
    assert torch.equal(visibility_masked_max(features, visibility, masking)[0, 1], torch.zeros(6))  # empty view


def test_exclude_and_multiply_agree_on_non_negative_features() -> None:
    features, visibility = _inputs(seed=1)
    features = features.relu()
    assert torch.equal(visibility_masked_max(features, visibility, "exclude"),
                       visibility_masked_max(features, visibility, "multiply"))  # fmt: skip


def test_invisible_points_never_contribute() -> None:
    features, visibility = _inputs(seed=2)
    # Any value at a point invisible in every view (large or very negative) changes nothing ...
    hidden = visibility.sum(dim=2) == 0
    hidden[0, 0] = True
    visibility[0, 0] = 0
    pooled = visibility_masked_max(features, visibility)
    for value in (1e6, -1e6):
        changed = features.clone()
        changed[hidden] = value
        assert torch.equal(visibility_masked_max(changed, visibility), pooled)
    # ... and no gradient reaches a point from a view that does not see it.
    for view in range(visibility.shape[2]):
        leaf = features.clone().requires_grad_(True)
        visibility_masked_max(leaf, visibility)[:, view].sum().backward()
        assert torch.all(leaf.grad[visibility[:, :, view] == 0] == 0)
        assert leaf.grad.sum() == (visibility[:, :, view].sum(dim=1) > 0).sum() * features.shape[2]


def test_projection_layers_and_gradients() -> None:
    torch.manual_seed(0)
    features, visibility = _inputs(channels=16, views=3)
    features = features.relu().requires_grad_(True)
    projection = VisibilityAwareProjection(in_channels=16, out_channels=8)
    assert projection.linear.bias is None and isinstance(projection.norm, torch.nn.BatchNorm1d)
    descriptors = projection(features, visibility)
    assert descriptors.shape == (2, 3, 8) and torch.all(descriptors >= 0)
    pooled = visibility_masked_max(features, visibility).reshape(6, 16)
    by_hand = F.relu(F.batch_norm(pooled @ projection.linear.weight.T, None, None, projection.norm.weight,
                                  projection.norm.bias, training=True))  # fmt: skip
    assert torch.allclose(descriptors.reshape(6, 8), by_hand, atol=1e-6)
    loss = multi_view_distillation_loss(descriptors, torch.rand(2, 3, 8))
    loss.backward()
    assert features.grad is not None and features.grad.abs().sum() > 0
    assert projection.linear.weight.grad is not None and projection.linear.weight.grad.abs().sum() > 0
    assert projection.norm.weight.grad is not None and projection.norm.weight.grad.abs().sum() > 0
    with pytest.raises(ShapeError, match="features"):
        projection(features[..., :8], visibility)
    with pytest.raises(ShapeError, match="visibility"):
        projection(features, visibility[:, :5])


def test_dtype_and_device_follow_the_inputs() -> None:
    features, visibility = _inputs(channels=4)
    features = features.double()
    projection = VisibilityAwareProjection(in_channels=4, out_channels=3).double()
    descriptors = projection(features, visibility.bool())
    assert descriptors.dtype == torch.float64 and descriptors.device == features.device
    loss = multi_view_distillation_loss(descriptors, torch.zeros(2, 4, 3, dtype=torch.float16))
    assert loss.dtype == torch.float64
    labels = torch.tensor([0, 2])
    assert smooth_cross_entropy(torch.zeros(2, 3, dtype=torch.float64), labels).dtype == torch.float64


def test_l1_distillation_loss_by_hand() -> None:
    student = torch.tensor([[[1.0, -2.0], [0.5, 0.0]]], requires_grad=True)  # (B=1, V=2, D=2)
    teacher = torch.tensor([[[0.0, 1.0], [0.5, 2.0]]], requires_grad=True)
    loss = multi_view_distillation_loss(student, teacher)
    assert math.isclose(float(loss.detach()), (1.0 + 3.0 + 0.0 + 2.0) / 4)
    loss.backward()
    assert torch.equal(student.grad, torch.tensor([[[0.25, -0.25], [0.0, -0.25]]]))
    assert teacher.grad is None  # the teacher's knowledge is fixed
    with pytest.raises(ShapeError, match="teacher"):
        multi_view_distillation_loss(student, teacher[:, :1])


def test_smooth_cross_entropy_by_hand() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    labels = torch.tensor([0, 1])
    eps = 0.2
    expected = 0.0
    for row, label in zip(logits.tolist(), labels.tolist(), strict=True):
        log_norm = math.log(sum(math.exp(z) for z in row))
        log_probs = [z - log_norm for z in row]
        targets = [1 - eps if k == label else eps / 2 for k in range(3)]
        expected -= sum(t * lp for t, lp in zip(targets, log_probs, strict=True)) / 2
    assert math.isclose(float(smooth_cross_entropy(logits, labels)), expected, rel_tol=1e-6)
    assert torch.allclose(smooth_cross_entropy(logits, labels, eps=0.0), F.cross_entropy(logits, labels))
    # Per-point logits (B, N, K): the mean over all points.
    per_point = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(0))
    part_labels = torch.tensor([[0, 1, 2, 3, 0], [3, 3, 2, 1, 0]])
    assert torch.allclose(smooth_cross_entropy(per_point, part_labels, 0.05),
                          smooth_cross_entropy(per_point.reshape(10, 4), part_labels.reshape(10), 0.05))  # fmt: skip
    with pytest.raises(ValueError, match="labels must lie in"):
        smooth_cross_entropy(logits, torch.tensor([0, 3]))
    with pytest.raises(ShapeError, match="labels must have shape"):
        smooth_cross_entropy(logits, torch.tensor([0]))
    with pytest.raises(ValueError, match="eps"):
        smooth_cross_entropy(logits, labels, eps=1.0)



@pytest.mark.parametrize("masking", ["exclude", "multiply"])
def test_masked_max_on_spatially_correlated_features(masking: str) -> None:
    """A view sees the half of the cloud facing it and features grow along a direction, as a network's do: the
    largest points of many channels are hidden from some views."""
    generator = torch.Generator().manual_seed(3)
    points = torch.randn(3, 64, 3, generator=generator)
    visibility = (points @ torch.randn(5, 3, generator=generator).T > 0.3).float()  # (B, N, V)
    visibility[1, :, 2] = 0  # an empty view
    features = points @ torch.randn(3, 24, generator=generator) + 0.1 * torch.randn(3, 64, 24, generator=generator)
    from_channels_first = features.transpose(1, 2).contiguous().transpose(1, 2)  # a (B, C, N) output's view
    expected = _brute_force(features, visibility, masking)
    assert torch.equal(visibility_masked_max(features, visibility, masking), expected)
    assert torch.equal(visibility_masked_max(from_channels_first, visibility, masking, chunk_elements=1), expected)
