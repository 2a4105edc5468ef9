"""2.5D ↔ 3D (Iqbal et al. 2018): ground-truth 2.5D lifts back to the ground-truth joints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import shared_path
from distill3d.data.worlds.hands import forward_kinematics, sample_hand_poses
from distill3d.errors import ShapeError
from distill3d.geometry.hand25d import (
    hand25d_to_xyz,
    root_depth_from_bone,
    root_depth_from_bones,
    xyz_to_hand25d,
)


def _random_hands(batch: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Camera-frame hands (B, 21, 3) m at 0.3-1.0 m, random rotation; K (B, 3, 3); reference bone (B,) m."""
    rngs = [np.random.default_rng([seed, i]) for i in range(batch)]
    lengths, angles = sample_hand_poses(rngs)
    local = torch.from_numpy(forward_kinematics(lengths, angles))
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, 4, generator=generator, dtype=torch.float64)
    w, x, y, z = (q / q.norm(dim=1, keepdim=True)).unbind(1)
    rotation = torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], 1).view(batch, 3, 3)
    depth = 0.3 + 0.7 * torch.rand(batch, 1, generator=generator, dtype=torch.float64)
    offset = torch.cat([0.05 * torch.randn(batch, 2, generator=generator, dtype=torch.float64), depth], 1)
    xyz = (local - local.mean(1, keepdim=True)) @ rotation.transpose(1, 2) + offset[:, None]
    focal = 300 + 800 * torch.rand(batch, generator=generator, dtype=torch.float64)
    K = torch.zeros(batch, 3, 3, dtype=torch.float64)
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = focal, focal * 1.01, 111.5, 112.0, 1.0
    return xyz, K, (xyz[:, 10] - xyz[:, 9]).norm(dim=1)


@pytest.mark.parametrize("root_joint", [9, 0])
def test_ground_truth_25d_lifts_back_to_ground_truth(root_joint: int) -> None:
    xyz, K, scale = _random_hands()
    uv, z_rel = xyz_to_hand25d(xyz, K, scale, root_joint=root_joint)
    lifted = hand25d_to_xyz(uv, z_rel, K, scale)
    assert (lifted - xyz).norm(dim=-1).max().item() < 1e-5
    # the scale-normalised root depth is the true root depth / s
    root = root_depth_from_bone(uv, z_rel, K)
    torch.testing.assert_close(root, xyz[:, root_joint, 2] / scale)


def test_lift_with_an_in_plane_rotated_camera() -> None:
    """Augmented crops use K' = M·K (rotation + zoom + shift of the image): the lift still recovers the joints."""
    xyz, K, scale = _random_hands(seed=1)
    angle = torch.deg2rad(torch.tensor(30.0, dtype=torch.float64))
    M = torch.tensor([[1.2 * torch.cos(angle), 1.2 * torch.sin(angle), 5.0],
                      [-1.2 * torch.sin(angle), 1.2 * torch.cos(angle), -3.0], [0, 0, 1]], dtype=torch.float64)
    K_aug = M @ K
    uv, z_rel = xyz_to_hand25d(xyz, K_aug, scale)
    assert (hand25d_to_xyz(uv, z_rel, K_aug, scale) - xyz).norm(dim=-1).max().item() < 1e-5


def test_freihand_golden_hands_lift_back() -> None:
    inputs = np.load(shared_path("golden", "freihand_eval") / "inputs.npz")
    xyz = torch.from_numpy(inputs["gt_xyz"])
    K = torch.tensor([[480.0, 0, 112.0], [0, 480.0, 112.0], [0, 0, 1]], dtype=torch.float64).expand(len(xyz), 3, 3)
    scale = (xyz[:, 10] - xyz[:, 9]).norm(dim=1)
    uv, z_rel = xyz_to_hand25d(xyz, K, scale)
    error = (hand25d_to_xyz(uv, z_rel, K, scale) - xyz).norm(dim=-1).amax(1)
    # The quadratic has two positive roots when the reference bone points almost along the viewing ray; the
    # larger one (Iqbal et al.) is then wrong. One golden hand has its bone 99.3 % along the depth axis.
    bone = xyz[:, 10] - xyz[:, 9]
    along_depth = bone[:, 2].abs() / bone.norm(dim=1)
    assert error[along_depth < 0.95].max().item() < 1e-5
    assert (error > 1e-5).sum().item() == 1 and along_depth[error > 1e-5].item() > 0.99


def test_lift_is_differentiable_and_checks_shapes() -> None:
    xyz, K, scale = _random_hands(batch=2)
    uv, z_rel = xyz_to_hand25d(xyz, K, scale)
    uv.requires_grad_(True)
    z_rel.requires_grad_(True)
    hand25d_to_xyz(uv, z_rel, K, scale).sum().backward()
    assert torch.isfinite(uv.grad).all() and torch.isfinite(z_rel.grad).all()
    with pytest.raises(ShapeError):
        hand25d_to_xyz(uv[..., :1], z_rel, K, scale)
    with pytest.raises(ShapeError):
        hand25d_to_xyz(uv, z_rel[:, :5], K, scale)


def test_root_depth_clamp_bounds_degenerate_predictions() -> None:
    xyz, K, scale = _random_hands(batch=2)
    uv, z_rel = xyz_to_hand25d(xyz, K, scale)
    uv[:, 10] = uv[:, 9] + 1e-6  # the bone's ends coincide in the image: unclamped root depth explodes
    z_rel = z_rel.clone()
    z_rel[:, 10] = z_rel[:, 9]
    free = hand25d_to_xyz(uv, z_rel, K, scale)
    clamped = hand25d_to_xyz(uv, z_rel, K, scale, root_depth_range=(4.0, 50.0))
    assert free[..., 2].max() > 100 and clamped[:, 9, 2].max() <= 50 * scale.max() + 1e-9


def _bone_ratios(xyz: torch.Tensor) -> torch.Tensor:
    """(B, 21) true bone lengths in reference-bone units (index j = bone PARENTS[j] → j; 0 at the wrist)."""
    from distill3d.data.worlds.hands import PARENTS

    parents = torch.tensor([max(p, 0) for p in PARENTS])
    lengths = (xyz - xyz[:, parents]).norm(dim=-1)
    return lengths / lengths[:, 10:11]


def test_all_bones_root_depth_recovers_the_root() -> None:
    from distill3d.data.worlds.hands import MEAN_BONE_LENGTHS, PARENTS

    xyz, K, scale = _random_hands(batch=32, seed=2)
    uv, z_rel = xyz_to_hand25d(xyz, K, scale)
    truth = xyz[:, 9, 2] / scale
    exact = root_depth_from_bones(uv, z_rel, K, _bone_ratios(xyz), PARENTS, (1.0, 200.0))
    torch.testing.assert_close(exact, truth, rtol=1e-4, atol=0)  # the true proportions: the true depth
    prior = torch.from_numpy(MEAN_BONE_LENGTHS / MEAN_BONE_LENGTHS[10])
    approximate = root_depth_from_bones(uv, z_rel, K, prior, PARENTS, (1.0, 200.0))
    assert float(((approximate - truth).abs() / truth).median()) < 0.05  # the mean hand's proportions


def test_all_bones_root_depth_is_robust_to_coarse_2d() -> None:
    """With ≈ 2 px of 2D noise the one-bone closed form misplaces hands by decimetres; all bones do not."""
    from distill3d.data.worlds.hands import MEAN_BONE_LENGTHS, PARENTS

    xyz, K, scale = _random_hands(batch=64, seed=3)
    uv, z_rel = xyz_to_hand25d(xyz, K, scale)
    generator = torch.Generator().manual_seed(0)
    noisy = uv + 2.0 * torch.randn(uv.shape, generator=generator, dtype=uv.dtype) * K[:, :1, :1] / 480
    prior = torch.from_numpy(MEAN_BONE_LENGTHS / MEAN_BONE_LENGTHS[10])
    robust = hand25d_to_xyz(noisy, z_rel, K, scale,
                            root_depth=root_depth_from_bones(noisy, z_rel, K, prior, PARENTS, (4.0, 50.0)))
    closed = hand25d_to_xyz(noisy, z_rel, K, scale, root_depth_range=(4.0, 50.0))
    robust_error = (robust - xyz).norm(dim=-1).mean(1)
    closed_error = (closed - xyz).norm(dim=-1).mean(1)
    assert float(robust_error.mean()) < 0.5 * float(closed_error.mean())
    assert float(robust_error.median()) < 0.03  # metres
