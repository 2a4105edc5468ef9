"""DGCNN (models/dgcnn.py): the fast EdgeConv equals a plain EdgeConv, exact kNN, shapes, gradients, devices."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from distill3d.errors import Distill3dError, ShapeError
from distill3d.models.dgcnn import (
    DGCNNClassifier,
    DGCNNEncoder,
    DGCNNPartSegmenter,
    EdgeConv,
    gather_max,
    knn_indices,
    max_mean_pool,
)

K = 8


def reference_edge_conv(conv: nn.Conv2d, norm: nn.BatchNorm2d, x: torch.Tensor, neighbours: torch.Tensor
                        ) -> torch.Tensor:
    """The textbook EdgeConv: build every edge feature [x_j − x_i, x_i] as a (B, 2C, N, k) tensor, Conv2d 1×1,
    BatchNorm2d, LeakyReLU(0.2), max over the k neighbours. x (B, N, C), neighbours (B, N, k) → (B, N, C_out)."""
    b = neighbours.shape[0]
    gathered = x[torch.arange(b).view(b, 1, 1), neighbours]  # (B, N, k, C)
    centre = x.unsqueeze(2).expand_as(gathered)
    edges = torch.cat([gathered - centre, centre], dim=-1).permute(0, 3, 1, 2)  # (B, 2C, N, k)
    return F.leaky_relu(norm(conv(edges)), 0.2).amax(dim=-1).transpose(1, 2)


def paired_layers(c_in: int, c_out: int, dtype: torch.dtype) -> tuple[EdgeConv, nn.Conv2d, nn.BatchNorm2d]:
    """A fast EdgeConv and a Conv2d + BatchNorm2d with the same (random, partly negative-γ) parameters."""
    torch.manual_seed(1)
    fast = EdgeConv(c_in, c_out).to(dtype)
    with torch.no_grad():
        fast.norm.weight.uniform_(-1.5, 1.5)  # negative scales too: the max must become a min of a·W there
        fast.norm.bias.uniform_(-1, 1)
    conv = nn.Conv2d(2 * c_in, c_out, 1, bias=False).to(dtype)
    norm = nn.BatchNorm2d(c_out).to(dtype)
    with torch.no_grad():
        conv.weight.copy_(fast.linear.weight[:, :, None, None])
    norm.load_state_dict(fast.norm.state_dict())
    return fast, conv, norm


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-10), (torch.float32, 2e-4)])
def test_fast_edge_conv_equals_reference(dtype: torch.dtype, tolerance: float) -> None:
    fast, conv, norm = paired_layers(5, 16, dtype)
    torch.manual_seed(2)
    x = (torch.randn(2, 64, 5, dtype=dtype) * 2 + 3).requires_grad_()  # off-centre features
    neighbours = knn_indices(x.detach(), K)
    for training in (True, False):
        fast.train(training)
        conv.train(training)
        norm.train(training)
        fast_out, reference_out = fast(x, neighbours), reference_edge_conv(conv, norm, x, neighbours)
        torch.testing.assert_close(fast_out, reference_out, atol=tolerance, rtol=tolerance)
        upstream = torch.randn_like(fast_out)
        fast_grads = torch.autograd.grad(fast_out, [x, fast.linear.weight, fast.norm.weight, fast.norm.bias],
                                         upstream)
        reference_grads = torch.autograd.grad(reference_out, [x, conv.weight, norm.weight, norm.bias], upstream)
        for fast_grad, reference_grad in zip(fast_grads, reference_grads, strict=True):
            torch.testing.assert_close(fast_grad.reshape(reference_grad.shape), reference_grad,
                                       atol=10 * tolerance, rtol=10 * tolerance)
    torch.testing.assert_close(fast.norm.running_mean, norm.running_mean, atol=tolerance, rtol=tolerance)
    torch.testing.assert_close(fast.norm.running_var, norm.running_var, atol=tolerance, rtol=tolerance)
    assert int(fast.norm.num_batches_tracked) == int(norm.num_batches_tracked) == 1


@pytest.mark.parametrize(("num_points", "block"), [(64, 8), (256, 8), (256, 4), (256, 0)])
def test_knn_matches_brute_force(num_points: int, block: int) -> None:
    torch.manual_seed(3)
    features = torch.randn(2, num_points, 6)  # continuous random: no ties
    found = knn_indices(features, K, block=block)
    expected = torch.cdist(features, features).topk(K, dim=-1, largest=False).indices
    assert found.shape == (2, num_points, K) and found.dtype == torch.int64
    assert torch.equal(found.sort(dim=-1).values, expected.sort(dim=-1).values)
    assert (found == torch.arange(num_points).view(1, -1, 1)).any(dim=-1).all()  # each point is its own neighbour


def test_knn_ignores_autocast_and_rejects_large_k() -> None:
    torch.manual_seed(4)
    features = torch.randn(1, 256, 16)
    with torch.autocast("cpu", torch.bfloat16):
        found = knn_indices(features, K)
    expected = torch.cdist(features, features).topk(K, dim=-1, largest=False).indices
    assert torch.equal(found.sort(dim=-1).values, expected.sort(dim=-1).values)
    with pytest.raises(ShapeError, match="k must lie"):
        knn_indices(features, 257)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("group", [None, 32])
def test_gather_max_values_and_gradient(dtype: torch.dtype, group: int | None) -> None:
    torch.manual_seed(5)
    # Distinct values within each channel, both signs, exact in every dtype (the choice among ties is free).
    values = torch.stack([torch.randperm(64) - 32 for _ in range(9)], dim=1).to(dtype) / 4
    table = values.clone().requires_grad_()
    neighbours = torch.randint(0, 32, (64, 6))
    neighbours[32:] += 32  # rows 32.. only name rows of their own group of 32
    out = gather_max(table, neighbours, group)
    reference = table[neighbours].max(dim=1).values
    assert torch.equal(out, reference)
    upstream = torch.randn(64, 9, dtype=torch.float64).to(dtype)
    (grad,) = torch.autograd.grad(out, table, upstream)
    (reference_grad,) = torch.autograd.grad(reference, table, upstream)
    torch.testing.assert_close(grad.double(), reference_grad.double(), atol=0.05, rtol=0.02)


def test_max_mean_pool_matches_torch() -> None:
    torch.manual_seed(6)
    for block in (32, 1):
        x = torch.randn(3, 128, 10, dtype=torch.float64, requires_grad=True)
        top, mean = max_mean_pool(x, block)
        upstream_top, upstream_mean = torch.randn_like(top), torch.randn_like(mean)
        (grad,) = torch.autograd.grad((top * upstream_top).sum() + (mean * upstream_mean).sum(), x)
        reference_top, reference_mean = x.max(dim=1).values, x.mean(dim=1)
        (reference_grad,) = torch.autograd.grad(
            (reference_top * upstream_top).sum() + (reference_mean * upstream_mean).sum(), x)
        assert torch.equal(top, reference_top)
        torch.testing.assert_close(mean, reference_mean)
        torch.testing.assert_close(grad, reference_grad)


def test_classifier_shapes_and_point_features() -> None:
    torch.manual_seed(7)
    model = DGCNNClassifier(10, k=K)
    points = torch.randn(3, 64, 3)
    logits, point_features = model(points, return_point_features=True)
    assert logits.shape == (3, 10) and point_features.shape == (3, 64, 1024)
    assert model(points).shape == (3, 10)
    encoder = DGCNNEncoder(k=K, emb_dims=32)
    point_features, edge_features = encoder(points)
    assert point_features.shape == (3, 64, 32) and edge_features.shape == (3, 64, 64 + 64 + 128 + 256)


def test_part_segmenter_with_category_one_hot() -> None:
    torch.manual_seed(8)
    model = DGCNNPartSegmenter(num_parts=7, num_categories=4, k=K, emb_dims=64).eval()
    points, labels = torch.randn(2, 64, 3), torch.tensor([0, 3])
    logits, point_features = model(points, labels, return_point_features=True)
    assert logits.shape == (2, 64, 7) and point_features.shape == (2, 64, 64)
    torch.testing.assert_close(model(points, F.one_hot(labels, 4).float()), logits)
    assert not torch.allclose(model(points, torch.tensor([1, 2])), logits)  # the category is used
    with pytest.raises(Distill3dError, match="category labels"):
        model(points, torch.tensor([0, 4]))
    with pytest.raises(ShapeError, match="category"):
        model(points, torch.zeros(2, 5))


@pytest.mark.parametrize("build", [
    lambda: DGCNNClassifier(5, k=K, emb_dims=32),
    lambda: DGCNNPartSegmenter(num_parts=6, num_categories=3, k=K, emb_dims=32),
])
def test_gradients_reach_every_parameter(build) -> None:
    torch.manual_seed(9)
    model = build().train()
    points = torch.randn(4, 64, 3)
    if isinstance(model, DGCNNPartSegmenter):
        loss = F.cross_entropy(model(points, torch.tensor([0, 1, 2, 1])).transpose(1, 2), torch.randint(0, 6, (4, 64)))
    else:
        loss = F.cross_entropy(model(points), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_device_and_dtype_follow_the_input() -> None:
    with torch.device("meta"):
        model = DGCNNClassifier(5, k=K, emb_dims=32)
        logits, point_features = model(torch.empty(2, 64, 3), return_point_features=True)
    assert logits.device.type == "meta" and logits.shape == (2, 5) and point_features.shape == (2, 64, 32)
    model = DGCNNPartSegmenter(num_parts=4, num_categories=2, k=K, emb_dims=32).double()
    out = model(torch.randn(2, 64, 3, dtype=torch.float64), torch.tensor([0, 1]))
    assert out.dtype == torch.float64 and out.shape == (2, 64, 4)
    with torch.autocast("cpu", torch.bfloat16):
        assert DGCNNClassifier(5, k=K, emb_dims=32)(torch.randn(2, 64, 3)).dtype == torch.bfloat16


def test_eval_mode_is_deterministic_and_uses_running_statistics() -> None:
    torch.manual_seed(10)
    model = DGCNNClassifier(5, k=K, emb_dims=32)
    points = torch.randn(2, 64, 3)
    model.train()(points)  # one step of running statistics
    model.eval()
    first, second = model(points), model(points)
    assert torch.equal(first, second)
    torch.testing.assert_close(model(points[:1]), first[:1])  # running statistics: independent of the batch


def test_too_few_points_is_a_clear_error() -> None:
    with pytest.raises(ShapeError, match="at least k = 8 points"):
        DGCNNClassifier(5, k=K, emb_dims=32)(torch.randn(2, 5, 3))
    with pytest.raises(ShapeError, match="points must have shape"):
        DGCNNClassifier(5, k=K, emb_dims=32)(torch.randn(2, 64, 4))


def test_speed_benchmark_quick_run(tmp_path) -> None:
    from benchmarks.dgcnn_speed import main

    main(["--quick", "--threads", str(torch.get_num_threads()), "--num-points", "64", "--out", str(tmp_path)])
    report = (tmp_path / "dgcnn_speed.md").read_text()
    assert "Smoke run" in report and "| bf16 | 4 |" in report
    arms = json.loads((tmp_path / "dgcnn_speed.json").read_text())["arms"]
    assert set(arms) == {"distill3d", "plain"}
    assert arms["distill3d"]["fp32_batch4_samples_per_s"]["mean"] > 0


def test_whole_network_equals_the_plain_benchmark_network() -> None:
    """The benchmark's plain DGCNN (edge tensors, Conv2d) with the same weights computes the same logits and
    gradients as DGCNNClassifier (float64, training mode, no dropout)."""
    from benchmarks.dgcnn_speed import PlainDGCNN

    torch.manual_seed(11)
    plain = PlainDGCNN(5, k=K, emb_dims=32, dropout=0.0).double()
    fast = DGCNNClassifier(5, k=K, emb_dims=32, dropout=0.0).double()
    with torch.no_grad():
        for plain_block, edge_conv in zip(plain.edge_convs, fast.encoder.edge_convs, strict=True):
            edge_conv.linear.weight.copy_(plain_block[0].weight[:, :, 0, 0])
            edge_conv.norm.load_state_dict(plain_block[1].state_dict())
        fast.encoder.embed.weight.copy_(plain.embed[0].weight[:, :, 0])
        fast.encoder.embed_norm.load_state_dict(plain.embed[1].state_dict())
        fast.head.load_state_dict(plain.head.state_dict())
    points = torch.rand(3, 64, 3, dtype=torch.float64) * 2 - 1
    labels = torch.tensor([0, 3, 4])
    plain_loss = F.cross_entropy(plain(points), labels)
    fast_loss = F.cross_entropy(fast(points), labels)
    torch.testing.assert_close(fast_loss, plain_loss, atol=1e-10, rtol=1e-10)
    plain_loss.backward()
    fast_loss.backward()
    for plain_block, edge_conv in zip(plain.edge_convs, fast.encoder.edge_convs, strict=True):
        torch.testing.assert_close(edge_conv.linear.weight.grad, plain_block[0].weight.grad[:, :, 0, 0],
                                   atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(fast.encoder.embed.weight.grad, plain.embed[0].weight.grad[:, :, 0],
                               atol=1e-9, rtol=1e-7)
