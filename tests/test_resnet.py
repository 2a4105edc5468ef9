"""ResNet encoders: dense stage features for dense heads, pooled features consistent with them."""

from __future__ import annotations

import torch

from distill3d.models.resnet import ResNet


def test_feature_maps_have_the_documented_strides_and_pool_to_the_features() -> None:
    torch.manual_seed(0)
    model = ResNet("resnet18", 0, 8).eval()
    images = torch.rand(2, 3, 64, 96)
    maps = model.feature_maps(images)
    assert [tuple(m.shape) for m in maps] == [(2, 8, 16, 24), (2, 16, 8, 12), (2, 32, 4, 6), (2, 64, 2, 3)]
    torch.testing.assert_close(model.features(images), maps[-1].mean(dim=(2, 3)))
    small = ResNet("resnet18", 0, 8, small_input=True).eval()
    assert small.feature_maps(images)[0].shape[-2:] == (64, 96)
