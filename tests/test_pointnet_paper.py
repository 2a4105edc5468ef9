"""PointNet at the paper's widths (models/pointnet.py): encoder, classifier and part-segmentation networks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from distill3d.errors import Distill3dError, ShapeError
from distill3d.models.pointnet import (
    PAPER_WIDTHS,
    PointNetClassifier,
    PointNetEncoder,
    PointNetPaperClassifier,
    PointNetPaperEncoder,
    PointNetPartSegmenter,
)


def test_encoder_has_the_paper_widths_and_nonnegative_point_features() -> None:
    torch.manual_seed(0)
    encoder = PointNetPaperEncoder()
    linears = [m for m in encoder.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3, 64), (64, 64), (64, 64), (64, 128),
                                                                   (128, 1024)]
    points = torch.randn(2, 50, 3)
    global_feature, point_features = encoder(points)
    assert global_feature.shape == (2, 1024) and point_features.shape == (2, 50, 1024)
    assert (point_features >= 0).all()  # post-ReLU, as PointMCD's masked max projection assumes
    torch.testing.assert_close(global_feature, point_features.amax(dim=1))
    assert [f.shape[-1] for f in encoder.layer_features(points)] == list(PAPER_WIDTHS)


def test_classifier_head_and_point_features() -> None:
    torch.manual_seed(1)
    model = PointNetPaperClassifier(40)
    linears = [m for m in model.head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(1024, 512), (512, 256), (256, 40)]
    assert [m.p for m in model.head if isinstance(m, nn.Dropout)] == [0.3, 0.3]
    logits, point_features = model(torch.randn(4, 64, 3), return_point_features=True)
    assert logits.shape == (4, 40) and point_features.shape == (4, 64, 1024)
    assert model(torch.randn(4, 64, 3)).shape == (4, 40)


def test_part_segmenter_uses_every_layer_the_global_feature_and_the_category() -> None:
    torch.manual_seed(2)
    model = PointNetPartSegmenter(num_parts=50, num_categories=16).eval()
    first = next(m for m in model.head if isinstance(m, nn.Linear))
    assert first.in_features == sum(PAPER_WIDTHS) + 1024 + 16  # 1344 per-point + 1024 global + one-hot
    assert [m.out_features for m in model.head if isinstance(m, nn.Linear)] == [256, 256, 128, 50]
    points, labels = torch.randn(2, 64, 3), torch.tensor([3, 15])
    logits, point_features = model(points, labels, return_point_features=True)
    assert logits.shape == (2, 64, 50) and point_features.shape == (2, 64, 1024)
    torch.testing.assert_close(model(points, F.one_hot(labels, 16).float()), logits)
    assert not torch.allclose(model(points, torch.tensor([0, 1])), logits)
    with pytest.raises(Distill3dError, match="category labels"):
        model(points, torch.tensor([0, 16]))
    with pytest.raises(ShapeError, match="points must have shape"):
        model(torch.randn(2, 64, 6), labels)


@pytest.mark.parametrize("build", [lambda: PointNetPaperClassifier(5),
                                   lambda: PointNetPartSegmenter(num_parts=4, num_categories=3)])
def test_gradients_reach_every_parameter(build) -> None:
    torch.manual_seed(3)
    model = build().train()
    points = torch.randn(4, 32, 3)
    if isinstance(model, PointNetPartSegmenter):
        out = model(points, torch.tensor([0, 1, 2, 0]))
        loss = F.cross_entropy(out.transpose(1, 2), torch.randint(0, 4, (4, 32)))
    else:
        loss = F.cross_entropy(model(points), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_device_dtype_and_eval_determinism() -> None:
    with torch.device("meta"):
        logits = PointNetPartSegmenter(num_parts=4, num_categories=3)(torch.empty(2, 32, 3), torch.zeros(2, 3))
    assert logits.device.type == "meta" and logits.shape == (2, 32, 4)
    model = PointNetPaperClassifier(5).double()
    model.train()(torch.randn(4, 32, 3, dtype=torch.float64))
    model.eval()
    points = torch.randn(2, 32, 3, dtype=torch.float64)
    first = model(points)
    assert first.dtype == torch.float64 and torch.equal(first, model(points))


def test_small_pointnet_still_works() -> None:
    global_feature, point_features = PointNetEncoder(3, (16, 32), 48)(torch.randn(2, 20, 3))
    assert global_feature.shape == (2, 48) and point_features.shape == (2, 20, 32)
    assert PointNetClassifier(7, widths=(16, 32), feature_dim=48)(torch.randn(2, 20, 3)).shape == (2, 7)
