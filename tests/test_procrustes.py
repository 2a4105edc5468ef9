"""Similarity Procrustes: exact recovery, reflections, weights, and FreiHAND's align_w_scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_path
from distill3d.errors import ShapeError
from distill3d.geometry.procrustes import FREIHAND_NORM_EPSILON, align_similarity, similarity_procrustes
from distill3d.geometry.rotations import axis_angle_to_rotation_matrix

FAST = settings(max_examples=30, deadline=None)
MIRROR_X = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))


def random_similarity(
    seed: int, batch: int = 4
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    source = torch.randn(batch, 12, 3, generator=generator, dtype=torch.float64)
    scale = 0.2 + 3 * torch.rand(batch, generator=generator, dtype=torch.float64)
    rotation = axis_angle_to_rotation_matrix(torch.randn(batch, 3, generator=generator, dtype=torch.float64))
    translation = 5 * torch.randn(batch, 3, generator=generator, dtype=torch.float64)
    return source, scale, rotation, translation


def apply(
    source: torch.Tensor, scale: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor
) -> torch.Tensor:
    return scale[:, None, None] * source @ rotation.transpose(1, 2) + translation[:, None]


@FAST
@given(seed=st.integers(0, 2**31 - 1), allow_reflection=st.booleans())
def test_recovers_a_known_similarity_exactly(seed: int, allow_reflection: bool) -> None:
    source, scale, rotation, translation = random_similarity(seed)
    target = apply(source, scale, rotation, translation)
    s, R, t = similarity_procrustes(source, target, allow_reflection)
    torch.testing.assert_close(s, scale, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(R, rotation, atol=1e-10, rtol=0)
    torch.testing.assert_close(t, translation, atol=1e-9, rtol=0)
    torch.testing.assert_close(align_similarity(source, target, allow_reflection), target, atol=1e-9, rtol=0)


@FAST
@given(seed=st.integers(0, 2**31 - 1))
def test_reflection_is_recovered_only_when_allowed(seed: int) -> None:
    source, scale, rotation, translation = random_similarity(seed)
    improper = rotation @ MIRROR_X
    target = apply(source, scale, improper, translation)
    _, R_free, _ = similarity_procrustes(source, target, allow_reflection=True)
    torch.testing.assert_close(R_free, improper, atol=1e-10, rtol=0)
    _, R_proper, _ = similarity_procrustes(source, target, allow_reflection=False)
    torch.testing.assert_close(torch.linalg.det(R_proper), torch.ones(4, dtype=torch.float64))
    residual_free = (align_similarity(source, target, True) - target).norm(dim=-1).mean()
    residual_proper = (align_similarity(source, target, False) - target).norm(dim=-1).mean()
    assert float(residual_free) < 1e-9 < float(residual_proper)


def test_alignment_is_optimal_against_perturbations() -> None:
    source, scale, rotation, translation = random_similarity(7, batch=1)
    target = apply(source, scale, rotation, translation) + 0.05 * torch.randn(1, 12, 3, dtype=torch.float64)
    s, R, t = similarity_procrustes(source, target)
    best = float(((apply(source, s, R, t) - target) ** 2).sum())
    small_turn = axis_angle_to_rotation_matrix(torch.tensor([[0.0, 1e-3, 0.0]], dtype=torch.float64))
    for candidate in (
        (s * 1.001, R, t),
        (s, small_turn @ R, t),
        (s, R, t + 1e-3),
    ):
        assert float(((apply(source, *candidate) - target) ** 2).sum()) > best


def test_weights_ignore_outliers_and_unit_weights_change_nothing() -> None:
    source, scale, rotation, translation = random_similarity(11, batch=2)
    target = apply(source, scale, rotation, translation)
    corrupted = target.clone()
    corrupted[:, :3] += 10.0
    weights = torch.ones(2, 12, dtype=torch.float64)
    weights[:, :3] = 0.0
    s, R, t = similarity_procrustes(source, corrupted, weights=weights)
    torch.testing.assert_close(s, scale)
    torch.testing.assert_close(R, rotation)
    torch.testing.assert_close(t, translation)
    unweighted = similarity_procrustes(source, target)
    weighted = similarity_procrustes(source, target, weights=torch.ones(2, 12, dtype=torch.float64))
    for a, b in zip(unweighted, weighted, strict=True):
        torch.testing.assert_close(a, b)


def test_float32_and_degenerate_inputs_stay_finite() -> None:
    source, scale, rotation, translation = random_similarity(3)
    s, R, t = similarity_procrustes(source.float(), apply(source, scale, rotation, translation).float())
    torch.testing.assert_close(s, scale.float(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(R, rotation.float(), atol=1e-4, rtol=0)
    torch.testing.assert_close(t, translation.float(), atol=1e-3, rtol=0)
    collapsed = torch.zeros(1, 5, 3, dtype=torch.float64)
    s0, R0, t0 = similarity_procrustes(collapsed, torch.randn(1, 5, 3, dtype=torch.float64))
    assert float(s0) == 0.0 and torch.isfinite(R0).all() and torch.isfinite(t0).all()


def test_reproduces_freihand_align_w_scale() -> None:
    folder = shared_path("golden", "freihand_eval")
    inputs = np.load(folder / "inputs.npz")
    reference = np.load(folder / "reference_aligned_predictions.npz")
    for suffix in ("", "_mirrored_set"):
        gt = torch.from_numpy(inputs[f"gt_xyz{suffix}"])
        pred = torch.from_numpy(inputs[f"pred_xyz{suffix}"])
        aligned = align_similarity(pred, gt, allow_reflection=True, norm_epsilon=FREIHAND_NORM_EPSILON)
        expected = torch.from_numpy(reference[f"pred_aligned{suffix}"])
        torch.testing.assert_close(aligned, expected, atol=1e-14, rtol=1e-12)
    _, R, _ = similarity_procrustes(pred, gt, allow_reflection=True)
    assert bool((torch.linalg.det(R) < 0).all())  # the mirrored set is aligned by a reflection


def test_shape_errors() -> None:
    with pytest.raises(ShapeError):
        similarity_procrustes(torch.zeros(2, 5, 3), torch.zeros(2, 4, 3))
    with pytest.raises(ShapeError):
        similarity_procrustes(torch.zeros(5, 3), torch.zeros(5, 3))
    with pytest.raises(ShapeError):
        similarity_procrustes(torch.zeros(2, 5, 3), torch.zeros(2, 5, 3), weights=torch.ones(2, 4))
