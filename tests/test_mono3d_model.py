"""SKD-WM3D networks (distill3d.models.mono3d): output layout and shapes, initialisation, gradients, shared encoder,
the MDN without depth, and device-agnostic construction (meta device)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from distill3d.errors import Distill3dError
from distill3d.geometry.mono3d import decode_detections, depth_from_raw
from distill3d.models.mono3d import (
    HEAD_OUTPUT_NAMES,
    DepthFusedMono3DNet,
    Mono3DHead,
    Mono3DNet,
    SelfDistilledMono3D,
    build_self_distilled_mono3d,
    encode_depth,
    head_output_channels,
)
from distill3d.models.resnet import ResNet

BATCH, HEIGHT, WIDTH = 2, 96, 320


def _inputs(device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(BATCH, 3, HEIGHT, WIDTH, generator=generator)
    depth = torch.rand(BATCH, 1, HEIGHT, WIDTH, generator=generator) * 60
    depth[:, :, :20] = 0  # invalid (sky)
    return images.to(device), depth.to(device)


def _assert_maps(outputs: dict[str, torch.Tensor], num_classes: int = 3, num_bins: int = 12) -> None:
    assert tuple(outputs) == HEAD_OUTPUT_NAMES
    for name, channels in head_output_channels(num_classes, num_bins).items():
        assert outputs[name].shape == (BATCH, channels, HEIGHT // 4, WIDTH // 4), name


def test_head_layout_and_initialisation():
    head = Mono3DHead(16, num_classes=3, num_bins=12, head_channels=8, initial_depth=20.0)
    for name, branch in head.branches.items():
        assert [type(layer).__name__ for layer in branch] == ["Conv2d", "ReLU", "Conv2d"]
        assert branch[0].kernel_size == (3, 3) and branch[-1].kernel_size == (1, 1), name
    np.testing.assert_allclose(head.branches["heatmap"][-1].bias.detach(), -2.19)
    np.testing.assert_allclose(depth_from_raw(head.branches["depth"][-1].bias.detach()), 20.0, rtol=1e-6)
    np.testing.assert_allclose(head.branches["dimensions"][-1].bias.detach(), 0.0)
    assert float(head.branches["size2d"][0].weight.detach().std()) < 1e-2
    outputs = head(torch.zeros(2, 16, 5, 7))
    assert outputs["orientation"].shape == (2, 24, 5, 7) and outputs["heatmap"].shape == (2, 3, 5, 7)


def test_shared_trunk_head_is_lighter_with_the_same_outputs():
    full, light = Mono3DHead(64), Mono3DHead(64, shared_trunk=True)
    assert all(len(branch) == 1 for branch in light.branches.values())
    assert sum(p.numel() for p in light.parameters()) * 5 < sum(p.numel() for p in full.parameters())
    np.testing.assert_allclose(light.branches["heatmap"][-1].bias.detach(), -2.19)
    features = torch.randn(2, 64, 6, 10, requires_grad=True)
    outputs = light(features)
    assert {name: tuple(value.shape[1:]) for name, value in outputs.items()} == {
        name: (channels, 6, 10) for name, channels in head_output_channels().items()}
    outputs["depth"].sum().backward()
    assert float(features.grad.abs().sum()) > 0
    model = build_self_distilled_mono3d(base_width=8, shared_trunk=True)
    images, depth = _inputs()
    _assert_maps(model(images, depth)["dsn"])


def test_mdn_output_shapes_and_no_depth_needed():
    model = Mono3DNet(ResNet("resnet18", base_width=32))
    assert model.output_stride == 4
    images, _ = _inputs()
    outputs = model(images)
    _assert_maps(outputs)
    with_features = model(images, return_features=True)
    assert with_features["features"].shape == (BATCH, 64, HEIGHT // 4, WIDTH // 4)


def test_dsn_output_shapes_and_depth_changes_the_output():
    torch.manual_seed(0)
    model = DepthFusedMono3DNet(ResNet("resnet18", base_width=32), num_bins=8).eval()
    images, depth = _inputs()
    outputs = model(images, depth)
    _assert_maps(outputs, num_bins=8)
    assert model(images, depth[:, 0]).keys() == outputs.keys()  # (B, H, W) depth is accepted too
    # The residual fusion starts at zero: the DSN first sees exactly the image features ...
    assert torch.equal(model(images, depth.flip(-1))["heatmap"], outputs["heatmap"])
    # ... and depth changes the output as soon as the fusion's scale has moved.
    for fusion in model.fusions:
        torch.nn.init.ones_(fusion[1].weight)
    other = model(images, depth.flip(-1))
    assert not torch.allclose(other["heatmap"], model(images, depth)["heatmap"])


def test_encode_depth_marks_invalid_pixels():
    depth = torch.tensor([[[[0.0, 1.0], [float("nan"), 9.0]]]])
    encoded = encode_depth(depth)
    np.testing.assert_allclose(encoded[0, 0], [[0.0, 0.5], [0.0, 0.1]])
    np.testing.assert_allclose(encoded[0, 1], [[0.0, 1.0], [0.0, 1.0]])


def test_gradients_reach_the_encoders():
    model = build_self_distilled_mono3d(base_width=16, shared_encoder=False)
    images, depth = _inputs()
    outputs = model(images, depth)
    loss = sum(value.square().mean() for branch in outputs.values() for value in branch.values())
    loss.backward()
    for name, module in (("mdn encoder", model.mdn.encoder), ("dsn image encoder", model.dsn.encoder),
                         ("mdn head", model.mdn.head)):
        gradient = module.conv1.weight.grad if hasattr(module, "conv1") else next(module.parameters()).grad
        assert gradient is not None and float(gradient.abs().sum()) > 0, name
    # The zero-initialised fusion scale takes gradient at once; the depth encoder as soon as that scale moved.
    assert all(float(fusion[1].weight.grad.abs().sum()) > 0 for fusion in model.dsn.fusions)
    for fusion in model.dsn.fusions:
        torch.nn.init.ones_(fusion[1].weight)
    model.zero_grad()
    outputs = model(images, depth)
    sum(value.square().mean() for value in outputs["dsn"].values()).backward()
    assert float(model.dsn.depth_encoder.stem[0][0].weight.grad.abs().sum()) > 0


def test_shared_encoder_runs_once_and_takes_gradients_from_both_branches():
    model = build_self_distilled_mono3d(base_width=16, shared_encoder=True).eval()
    assert model.dsn.encoder is model.mdn.encoder
    images, depth = _inputs()
    calls = []
    handle = model.mdn.encoder.layer1.register_forward_hook(lambda *_: calls.append(1))
    outputs = model(images, depth)
    handle.remove()
    assert len(calls) == 1 and set(outputs) == {"mdn", "dsn"}
    _assert_maps(outputs["mdn"])
    _assert_maps(outputs["dsn"])
    torch.testing.assert_close(outputs["mdn"]["depth"], model.mdn(images)["depth"])
    # the DSN's loss alone reaches the shared encoder
    model.zero_grad()
    model(images, depth)["dsn"]["depth"].mean().backward()
    assert float(model.mdn.encoder.conv1.weight.grad.abs().sum()) > 0
    assert all(p.grad is None for p in model.mdn.head.parameters())
    shared_count = sum(p.numel() for p in model.parameters())
    separate_count = sum(p.numel() for p in build_self_distilled_mono3d(base_width=16, shared_encoder=False)
                         .parameters())
    assert separate_count - shared_count == sum(p.numel() for p in model.mdn.encoder.parameters())


def test_inference_without_depth_runs_only_the_mdn():
    model = build_self_distilled_mono3d(base_width=16).eval()
    images, _ = _inputs()
    outputs = model(images)
    assert set(outputs) == {"mdn"}
    _assert_maps(outputs["mdn"])


def test_shared_encoder_flag_wires_the_modules():
    encoder = ResNet("resnet18", base_width=8)
    mdn = Mono3DNet(encoder)
    shared = SelfDistilledMono3D(mdn, DepthFusedMono3DNet(ResNet("resnet18", base_width=8)), shared_encoder=True)
    assert shared.dsn.encoder is encoder
    dsn_ids = {id(p) for p in shared.dsn_parameters()}
    assert not dsn_ids & {id(p) for p in encoder.parameters()}
    assert dsn_ids | {id(p) for p in shared.mdn_parameters()} == {id(p) for p in shared.parameters()}
    with pytest.raises(Distill3dError, match="encoder"):
        SelfDistilledMono3D(mdn, DepthFusedMono3DNet(ResNet("resnet18", base_width=16)), shared_encoder=True)
    with pytest.raises(Distill3dError, match="encoder"):
        SelfDistilledMono3D(mdn, DepthFusedMono3DNet(encoder), shared_encoder=False)
    separate = SelfDistilledMono3D(Mono3DNet(ResNet("resnet18", base_width=8)),
                                   DepthFusedMono3DNet(ResNet("resnet18", base_width=8)), shared_encoder=False)
    assert {id(p) for p in separate.dsn_parameters()} == {id(p) for p in separate.dsn.parameters()}


def test_mdn_alone_without_dsn():
    model = SelfDistilledMono3D(Mono3DNet(ResNet("resnet18", base_width=8)), None).eval()
    images, depth = _inputs()
    assert set(model(images, depth)) == {"mdn"} and model.dsn_parameters() == []


def test_models_build_and_run_on_meta_device():
    with torch.device("meta"):
        model = build_self_distilled_mono3d(base_width=32, shared_encoder=True)
        images = torch.empty(BATCH, 3, HEIGHT, WIDTH)
        depth = torch.empty(BATCH, 1, HEIGHT, WIDTH)
    outputs = model(images, depth)
    for branch in ("mdn", "dsn"):
        _assert_maps(outputs[branch])
        assert all(value.device.type == "meta" for value in outputs[branch].values())


def test_decode_runs_on_network_outputs():
    model = Mono3DNet(ResNet("resnet18", base_width=16), initial_depth=20.0).eval()
    images, _ = _inputs()
    with torch.no_grad():
        outputs = model(images)
    K = torch.tensor([[185.9, 0.0, 157.0], [0.0, 184.7, 43.9], [0.0, 0.0, 1.0]]).expand(BATCH, 3, 3)
    means = torch.tensor([[1.53, 1.63, 3.88], [1.76, 0.66, 0.84], [1.74, 0.60, 1.76]])
    detections = decode_detections(outputs, K, means, top_k=10, stride=model.output_stride)
    assert len(detections) == BATCH
    for image in detections:
        assert image["boxes3d"].shape == (10, 7) and bool(torch.isfinite(image["boxes3d"]).all())
        assert float(image["score"].max()) < 1 and float(image["boxes3d"][:, 2].min()) > 0
        assert float(image["alpha"].abs().max()) <= math.pi


def test_dimension_bound_keeps_log_ratios_inside_and_is_identity_near_zero():
    head = Mono3DHead(8, head_channels=8, dimension_bound=0.3)
    with torch.no_grad():
        head.branches["dimensions"][-1].bias.copy_(torch.tensor([5.0, -5.0, 0.001]))
    values = head(torch.zeros(1, 8, 3, 4))["dimensions"]
    assert values.abs().max() <= 0.3
    np.testing.assert_allclose(values[0, :2, 0, 0].detach(), [0.3, -0.3], atol=1e-6)
    np.testing.assert_allclose(values[0, 2].detach(), 0.001, rtol=1e-5)  # b·tanh(x/b) ≈ x for small x
    with pytest.raises(ValueError, match="dimension_bound"):
        Mono3DHead(8, dimension_bound=0.0)
