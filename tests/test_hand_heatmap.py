"""Integral (soft-argmax) 2.5D heat-map head: pixel geometry, targets, shapes and gradients."""

from __future__ import annotations

import pytest
import torch

from distill3d.models.hand_pose import Hand25DHeatmapNet, gaussian_heatmap_targets, soft_argmax_2d
from distill3d.models.resnet import ResNet


@pytest.mark.parametrize(("stride", "size"), [(1.0, 32), (2.0, 16)])
def test_soft_argmax_of_gaussian_targets_returns_their_centres(stride: float, size: int) -> None:
    offset = (stride - 1) / 2  # cell x covers input pixels [stride·x, stride·x + stride − 1]
    generator = torch.Generator().manual_seed(0)
    uv = 6 + (stride * size - 13) * torch.rand(4, 21, 2, generator=generator, dtype=torch.float64)
    targets = gaussian_heatmap_targets(uv, (size, size), stride, offset, sigma_cells=1.0)
    assert torch.allclose(targets.sum((-2, -1)), torch.ones(4, 21, dtype=torch.float64))
    recovered, probabilities = soft_argmax_2d(targets.clamp_min(1e-30).log(), stride, offset)
    assert torch.allclose(probabilities, targets.float(), atol=1e-6)  # computed in fp32
    assert (recovered - uv).abs().max() < 0.02  # sub-pixel: the integral is exact away from the borders


def test_a_peaked_heat_map_points_at_its_cell_in_input_pixels() -> None:
    logits = torch.full((1, 1, 32, 32), -1e4)
    logits[0, 0, 5, 20] = 0.0  # row 5, column 20 of a stride-2 map of a 64 px image
    uv, _ = soft_argmax_2d(logits, 2.0, 0.5)
    assert torch.allclose(uv, torch.tensor([[[40.5, 10.5]]]))


@pytest.mark.parametrize(("small_input", "from_stem", "expected_stride"),
                         [(False, True, 2.0), (True, True, 1.0), (False, False, 4.0), (True, False, 1.0)])
def test_heatmap_net_shapes_initial_centre_and_gradients(small_input: bool, from_stem: bool,
                                                         expected_stride: float) -> None:
    """Stride of the heat maps: the stem's (2, or 1 for the small-input stem) or, without the stem level, layer1's
    (4 with the standard stem and its max-pool; still 1 for the small-input stem, which has no max-pool)."""
    torch.manual_seed(0)
    net = Hand25DHeatmapNet(ResNet("resnet18", 0, 8, small_input=small_input), image_size=32, decoder_width=16,
                            from_stem=from_stem)
    images = torch.rand(2, 3, 32, 32)
    uv, z_rel, probabilities = net(images, return_heatmaps=True)
    stride, _ = net.heatmap_geometry()
    assert stride == expected_stride and len(net.laterals) == (4 if from_stem else 3)
    assert uv.shape == (2, 21, 2) and z_rel.shape == (2, 21)
    assert probabilities.shape == (2, 21, int(32 / stride), int(32 / stride))
    assert (uv - 15.5).abs().max() < 0.5  # near-uniform heat maps at initialisation: the image centre
    (uv.sum() + z_rel.sum()).backward()
    assert net.encoder.conv1.weight.grad is not None and net.encoder.conv1.weight.grad.abs().sum() > 0
    frozen = Hand25DHeatmapNet(ResNet("resnet18", 0, 8), 32, decoder_width=16, freeze_encoder=True).train()
    assert not frozen.encoder.training and not any(p.requires_grad for p in frozen.encoder.parameters())
