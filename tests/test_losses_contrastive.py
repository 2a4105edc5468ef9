"""Contrastive losses against the reference implementations (lightly/PeCLR/solo-learn NT-Xent, RepDistiller CRD)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import shared_path
from distill3d.errors import ShapeError
from distill3d.geometry.rotations import geodesic_distance, viewpoint_to_matrix
from distill3d.losses.contrastive import (
    CRDLoss,
    InfoNCELoss,
    NTXentLoss,
    logit_kd_loss,
    nce_contrast_loss,
    nt_xent_loss,
    pose_info_nce_loss,
)


def ntxent_golden():
    folder = shared_path("golden", "ntxent_loss")
    return np.load(folder / "arrays.npz"), json.loads((folder / "expected.json").read_text())


@pytest.mark.parametrize("case", range(5))
def test_ntxent_matches_lightly_float64_and_gradients(case: int) -> None:
    arrays, expected = ntxent_golden()
    info = expected["ntxent_cases"][case]
    z_a = torch.tensor(arrays[f"case{case}_out0"], dtype=torch.float64, requires_grad=True)
    z_b = torch.tensor(arrays[f"case{case}_out1"], dtype=torch.float64, requires_grad=True)
    temperature = info.get("temperature", info.get("T"))
    loss = NTXentLoss(temperature)(z_a, z_b)
    assert loss.item() == pytest.approx(info["lightly_NTXentLoss"], rel=1e-12)
    assert loss.item() == pytest.approx(info["solo_simclr_loss_func"], rel=1e-12)
    loss.backward()
    np.testing.assert_allclose(z_a.grad.numpy(), arrays[f"case{case}_grad_out0_lightly"], rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(z_b.grad.numpy(), arrays[f"case{case}_grad_out1_lightly"], rtol=1e-9, atol=1e-14)
    loss32 = NTXentLoss(temperature)(z_a.detach().float(), z_b.detach().float())
    # float32 rounding of a small loss: 1e-6 relative or 1e-8 absolute, whichever is looser
    assert loss32.item() == pytest.approx(info["lightly_NTXentLoss_float32"], rel=1e-6, abs=1e-8)


def test_ntxent_with_identity_gather_equals_plain() -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 8, generator=gen), torch.randn(6, 8, generator=gen)
    assert torch.allclose(NTXentLoss(0.5)(a, b), nt_xent_loss(a, b, 0.5, gather=lambda x: x, rank=0))
    assert torch.allclose(NTXentLoss(0.5, gather_distributed=True)(a, b), NTXentLoss(0.5)(a, b))  # one process


def test_ntxent_gathered_rows_equal_the_global_batch_rows() -> None:
    """Rank r's loss over a 2-process global batch equals the mean of its rows in the 1-process loss."""
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(8, 5, generator=gen, dtype=torch.float64), torch.randn(8, 5, generator=gen, dtype=torch.float64)
    full = NTXentLoss(0.3)(a, b)
    halves = [(a[:4], b[:4]), (a[4:], b[4:])]

    def gather(_local: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.cat([F.normalize(x, dim=1), F.normalize(y, dim=1)]) for x, y in halves])

    per_rank = [nt_xent_loss(x, y, 0.3, gather=gather, rank=r) for r, (x, y) in enumerate(halves)]
    assert torch.allclose(torch.stack(per_rank).mean(), full, rtol=1e-12)


def test_infonce_textbook_and_official_denominator() -> None:
    gen = torch.Generator().manual_seed(2)
    u, v = torch.randn(5, 7, generator=gen, dtype=torch.float64), torch.randn(5, 7, generator=gen, dtype=torch.float64)
    un, vn = F.normalize(u, dim=1), F.normalize(v, dim=1)
    sims = torch.exp(un @ vn.t() / 0.1)
    textbook = -(torch.log(sims.diagonal() / sims.sum(1))).mean()
    official = -(torch.log(sims.diagonal() / (sims.diagonal() + sims.sum(1)))).mean()
    assert InfoNCELoss(0.1)(u, v).item() == pytest.approx(textbook.item(), rel=1e-12)
    assert InfoNCELoss(0.1, duplicate_positive=True)(u, v).item() == pytest.approx(official.item(), rel=1e-12)
    with pytest.raises(ShapeError):
        InfoNCELoss()(u, v[:3])


def official_pose_nce(u: torch.Tensor, v: torch.Tensor, viewpoints: torch.Tensor, tau: float,
                      threshold: float | None) -> torch.Tensor:
    """The 3DAug-Pose official ``poseNCE_KD`` / ``multiposeNCE_KD`` transcribed with explicit loops (test only)."""
    un, vn = F.normalize(u, dim=1), F.normalize(v, dim=1)
    rotations = viewpoint_to_matrix(*viewpoints.unbind(-1))
    losses = []
    for i in range(len(u)):
        sims = [torch.exp(un[i] @ vn[j] / tau) for j in range(len(u))]
        degrees = [torch.rad2deg(geodesic_distance(rotations[i], rotations[j])) for j in range(len(u))]
        if threshold is None:
            positive = sims[i]
            negatives = sum(s * d / 180 for s, d in zip(sims, degrees, strict=True))
        else:
            positive = sum(s for j, (s, d) in enumerate(zip(sims, degrees, strict=True)) if j == i or d <= threshold)
            negatives = sum(sims)
        losses.append(-torch.log(positive / (positive + negatives)))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("threshold", [None, 30.0])
def test_pose_infonce_matches_the_official_pose_nce_kd_forms(threshold: float | None) -> None:
    gen = torch.Generator().manual_seed(3)
    u, v = torch.randn(9, 6, generator=gen, dtype=torch.float64), torch.randn(9, 6, generator=gen, dtype=torch.float64)
    viewpoints = torch.stack([torch.rand(9, generator=gen) * 2 * torch.pi, torch.rand(9, generator=gen) * 0.6,
                              torch.randn(9, generator=gen) * 0.1], dim=1).double()
    viewpoints[4] = viewpoints[3] + viewpoints.new_tensor([0.2, 0.0, 0.0])  # ≈ 11° apart: a positive at 30°
    viewpoints[7] = viewpoints[6]  # identical viewpoints: weight 0 as a negative
    got = pose_info_nce_loss(u, v, viewpoints, 0.1, threshold)
    assert got.item() == pytest.approx(official_pose_nce(u, v, viewpoints, 0.1, threshold).item(), rel=1e-10)
    u.requires_grad_(True)
    pose_info_nce_loss(u, v, viewpoints, 0.1, threshold).backward()
    assert torch.isfinite(u.grad).all()


def test_multipose_infonce_rewards_features_grouped_by_viewpoint() -> None:
    """Two viewpoints, four samples each: features that agree within a viewpoint score lower than features that
    separate every sample (what plain InfoNCE asks for), in both forms."""
    viewpoints = torch.tensor([[0.0, 0.3, 0.0]] * 4 + [[2.0, 0.3, 0.0]] * 4)
    grouped = torch.tensor([[1.0, 0.0]] * 4 + [[-1.0, 0.0]] * 4)
    separated = torch.eye(8)
    for threshold in (None, 30.0):
        assert pose_info_nce_loss(grouped, grouped, viewpoints, 0.5, threshold) + 0.1 < pose_info_nce_loss(
            separated, separated, viewpoints, 0.5, threshold)
    with pytest.raises(ShapeError):
        pose_info_nce_loss(grouped, grouped, viewpoints[:3])


def test_logit_kd_is_zero_for_equal_logits_and_positive_otherwise() -> None:
    logits = torch.randn(4, 10)
    assert logit_kd_loss(logits, logits).abs().item() < 1e-6
    assert logit_kd_loss(logits, logits.flip(1), temperature=2.0).item() > 0


def crd_golden():
    folder = shared_path("golden", "crd_loss")
    return np.load(folder / "arrays.npz"), json.loads((folder / "expected.json").read_text())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_crd_matches_repdistiller_over_three_steps(dtype: str) -> None:
    arrays, expected = crd_golden()
    hp = expected["hyper_parameters"]
    torch_dtype = torch.float64 if dtype == "float64" else torch.float32
    # The reference keeps τ in a float32 buffer (params[1]), so its τ is float32(0.07); take it from its state.
    temperature = float(arrays["init_contrast.params"][1])
    loss_fn = CRDLoss(hp["s_dim"], hp["t_dim"], hp["n_data"], hp["feat_dim"], hp["nce_k"], temperature, hp["nce_m"])
    with torch.no_grad():
        loss_fn.embed_student.weight.copy_(torch.tensor(arrays["init_embed_s.linear.weight"]))
        loss_fn.embed_student.bias.copy_(torch.tensor(arrays["init_embed_s.linear.bias"]))
        loss_fn.embed_teacher.weight.copy_(torch.tensor(arrays["init_embed_t.linear.weight"]))
        loss_fn.embed_teacher.bias.copy_(torch.tensor(arrays["init_embed_t.linear.bias"]))
        loss_fn.memory.memory_student.copy_(torch.tensor(arrays["init_contrast.memory_v1"]))
        loss_fn.memory.memory_teacher.copy_(torch.tensor(arrays["init_contrast.memory_v2"]))
    loss_fn = loss_fn.to(torch_dtype)
    rtol, atol = (1e-10, 1e-12) if dtype == "float64" else (1e-5, 1e-7)
    for step in range(3):
        f_s = torch.tensor(arrays[f"step{step}_f_s"], dtype=torch_dtype, requires_grad=True)
        f_t = torch.tensor(arrays[f"step{step}_f_t"], dtype=torch_dtype, requires_grad=True)
        idx = torch.tensor(arrays[f"step{step}_idx"])
        loss_fn.embed_student.zero_grad()
        loss = loss_fn(f_s, f_t, idx, torch.tensor(arrays[f"step{step}_contrast_idx"]))
        assert loss.item() == pytest.approx(expected[dtype]["loss"][step], rel=rtol)
        assert loss_fn.memory.z_student.item() == pytest.approx(expected[dtype]["Z_v1"][step], rel=rtol)
        assert loss_fn.memory.z_teacher.item() == pytest.approx(expected[dtype]["Z_v2"][step], rel=rtol)
        loss.backward()
        prefix = f"{dtype}_step{step}_"
        np.testing.assert_allclose(f_s.grad.numpy(), arrays[prefix + "grad_f_s"], rtol=rtol * 100, atol=atol)
        np.testing.assert_allclose(f_t.grad.numpy(), arrays[prefix + "grad_f_t"], rtol=rtol * 100, atol=atol)
        np.testing.assert_allclose(loss_fn.embed_student.weight.grad.numpy(), arrays[prefix + "grad_embed_s_weight"],
                                   rtol=rtol * 100, atol=atol)
        np.testing.assert_allclose(loss_fn.memory.memory_student[idx].numpy(), arrays[prefix + "memory_v1_rows_after"],
                                   rtol=rtol * 10, atol=atol)
        np.testing.assert_allclose(loss_fn.memory.memory_teacher[idx].numpy(), arrays[prefix + "memory_v2_rows_after"],
                                   rtol=rtol * 10, atol=atol)


def test_nce_contrast_loss_isolated() -> None:
    arrays, expected = crd_golden()
    x = torch.tensor(arrays["contrastloss_x"])
    assert nce_contrast_loss(x, 500).item() == pytest.approx(expected["contrastloss_isolated"]["loss"], rel=1e-12)
    assert nce_contrast_loss(x, 5000).item() == pytest.approx(
        expected["contrastloss_isolated"]["loss_n_data_5000"], rel=1e-12)
