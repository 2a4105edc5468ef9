"""Hand augmentations: recorded matrices move keypoints exactly where the image content moves."""

from __future__ import annotations

import torch

from distill3d.data.hand_augment import (
    ColourJitter,
    geometric_matrix,
    sample_geometric_params,
    transform_points,
    warp_images,
    warp_images_kornia,
)


def test_warp_moves_a_pixel_to_its_transformed_position() -> None:
    size = 33
    angle = torch.tensor([30.0, -45.0, 0.0])
    jitter = torch.tensor([[2.0, -3.0], [0.0, 4.0], [-5.0, 1.0]])
    scale = torch.tensor([1.0, 1.1, 0.9])
    matrix = geometric_matrix(angle, jitter, scale, size)
    source = torch.tensor([[20.0, 12.0]]).expand(3, 1, 2)
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    blob = torch.exp(-((xs - 20) ** 2 + (ys - 12) ** 2) / (2 * 1.5**2))  # centred on x = 20, y = 12
    warped = warp_images(blob.expand(3, 1, size, size).contiguous(), matrix)
    weight = warped[:, 0]
    centroid = torch.stack([(weight * xs).sum((1, 2)), (weight * ys).sum((1, 2))], 1) / weight.sum((1, 2))[:, None]
    # 0.05 px: bilinear resampling bias
    torch.testing.assert_close(centroid, transform_points(source, matrix)[:, 0], atol=0.05, rtol=0)


def test_warp_matches_kornia_and_sampled_params_are_recorded() -> None:
    params = sample_geometric_params(4, 32)
    assert params.angle_deg.eq(params.angle_deg.round()).all() and params.angle_deg.abs().max() <= 45
    assert params.jitter_px.abs().max() <= round(0.1 * 32)
    torch.testing.assert_close(params.matrix, geometric_matrix(params.angle_deg, params.jitter_px, params.scale, 32))
    torch.testing.assert_close(params.jitter_normalised, params.jitter_px / 32)
    images = torch.rand(4, 3, 32, 32)
    torch.testing.assert_close(warp_images(images, params.matrix), warp_images_kornia(images, params.matrix),
                               atol=1e-4, rtol=0)


def test_intrinsics_follow_the_image_transform() -> None:
    """uv' = M·uv equals the projection of the unchanged 3D points with K' = M·K."""
    params = sample_geometric_params(2, 64)
    K = torch.tensor([[200.0, 0, 31.5], [0, 200.0, 31.5], [0, 0, 1]]).expand(2, 3, 3)
    xyz = torch.rand(2, 21, 3) * 0.1 + torch.tensor([0, 0, 0.5])
    uv = (xyz @ K.transpose(1, 2))[..., :2] / (xyz @ K.transpose(1, 2))[..., 2:]
    projected = xyz @ (params.matrix @ K).transpose(1, 2)
    torch.testing.assert_close(transform_points(uv, params.matrix), projected[..., :2] / projected[..., 2:],
                               atol=1e-3, rtol=0)


def test_colour_jitter_range_identity_and_grayscale() -> None:
    images = torch.rand(8, 3, 16, 16)
    torch.testing.assert_close(ColourJitter(p=0.0, grayscale_p=0.0)(images), images)
    out = ColourJitter()(images)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    gray = ColourJitter(0, 0, 0, 0, p=1.0, grayscale_p=1.0)(images)
    torch.testing.assert_close(gray[:, 0], gray[:, 1], atol=1e-5, rtol=0)
