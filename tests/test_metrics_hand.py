"""FreiHAND hand keypoint metrics against the official evaluation's golden numbers, and visibility."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import shared_path
from distill3d.errors import ShapeError
from distill3d.metrics.hand import (
    PckSummary,
    hand_pose_metrics,
    keypoint_errors,
    mpjpe,
    pa_align,
    pa_mpjpe,
    pck_summary,
)

REL = 1e-9


def load_golden() -> tuple[dict[str, np.ndarray], dict, dict[str, np.ndarray]]:
    folder = shared_path("golden", "freihand_eval")
    inputs = dict(np.load(folder / "inputs.npz"))
    aligned = dict(np.load(folder / "reference_aligned_predictions.npz"))
    return inputs, json.loads((folder / "expected.json").read_text()), aligned


def check_summary(ours: PckSummary, reference: dict) -> None:
    assert ours.epe_mean == pytest.approx(reference["epe_mean_m"], rel=REL)
    assert ours.epe_median == pytest.approx(reference["epe_median_m"], rel=REL)
    assert ours.auc == pytest.approx(reference["auc_0_50mm_100steps"], rel=REL)
    np.testing.assert_allclose(ours.pck_curve.numpy(), reference["pck_curve"], rtol=REL, atol=1e-15)
    np.testing.assert_allclose(ours.thresholds.numpy(), reference["thresholds_m"], rtol=0, atol=0)


def check_extra(ours: PckSummary | None, reference: dict) -> None:
    assert ours is not None
    assert ours.auc == pytest.approx(reference["extra_auc_20_50mm_7steps"], rel=REL)
    np.testing.assert_allclose(
        ours.pck_curve.numpy(), reference["extra_pck_20_50mm_7steps"], rtol=REL, atol=1e-15
    )


@pytest.mark.parametrize("subset", ["main_set", "mirrored_set"])
def test_hand_pose_metrics_reproduce_freihand_eval(subset: str) -> None:
    inputs, expected, aligned_reference = load_golden()
    suffix = "" if subset == "main_set" else "_mirrored_set"
    result = hand_pose_metrics(inputs[f"pred_xyz{suffix}"], inputs[f"gt_xyz{suffix}"])
    reference = expected[subset]
    check_summary(result.unaligned, reference["unaligned"])
    check_summary(result.aligned, reference["procrustes_aligned"])
    check_extra(result.extra_unaligned, reference["unaligned"])
    check_extra(result.extra_aligned, reference["procrustes_aligned"])
    np.testing.assert_allclose(
        result.per_sample_pa_error.numpy(), reference["per_sample_mean_pa_error_m"], rtol=REL
    )
    np.testing.assert_allclose(
        result.per_sample_error.numpy(), reference["per_sample_mean_raw_error_m"], rtol=REL
    )
    np.testing.assert_allclose(
        result.aligned_pred_xyz.numpy(), aligned_reference[f"pred_aligned{suffix}"], rtol=1e-12, atol=1e-14
    )


def test_scores_txt_equivalents() -> None:
    inputs, expected, _ = load_golden()
    result = hand_pose_metrics(inputs["pred_xyz"], inputs["gt_xyz"], extra_range=None)
    scores = expected["main_set"]["scores_txt_equivalent"]
    assert 100 * result.epe_mean == pytest.approx(scores["xyz_mean3d_cm"], rel=REL)
    assert result.auc == pytest.approx(scores["xyz_auc3d"], rel=REL)
    assert 100 * result.pa_epe_mean == pytest.approx(scores["xyz_al_mean3d_cm"], rel=REL)
    assert result.pa_auc == pytest.approx(scores["xyz_al_auc3d"], rel=REL)
    assert result.extra_aligned is None
    # With every joint visible, the FreiHAND mean EPE equals plain (PA-)MPJPE.
    assert mpjpe(inputs["pred_xyz"], inputs["gt_xyz"]) == pytest.approx(result.epe_mean, rel=REL)
    assert pa_mpjpe(inputs["pred_xyz"], inputs["gt_xyz"]) == pytest.approx(result.pa_epe_mean, rel=REL)


def test_forcing_proper_rotations_gives_larger_errors_on_the_mirrored_set() -> None:
    inputs, expected, _ = load_golden()
    gt, pred = inputs["gt_xyz_mirrored_set"], inputs["pred_xyz_mirrored_set"]
    reference = hand_pose_metrics(pred, gt)
    proper = hand_pose_metrics(pred, gt, allow_reflection=False)
    assert reference.pa_epe_mean == pytest.approx(
        expected["mirrored_set"]["procrustes_aligned"]["epe_mean_m"], rel=REL
    )
    assert proper.pa_epe_mean > 2 * reference.pa_epe_mean
    assert bool((proper.per_sample_pa_error > reference.per_sample_pa_error).all())
    # On the main set every Procrustes R is proper, so both conventions agree.
    main_reference = hand_pose_metrics(inputs["pred_xyz"], inputs["gt_xyz"])
    main_proper = hand_pose_metrics(inputs["pred_xyz"], inputs["gt_xyz"], allow_reflection=False)
    assert main_proper.pa_epe_mean == pytest.approx(main_reference.pa_epe_mean, rel=1e-12)


def reference_eval_util(errors: np.ndarray, visible: np.ndarray, lo: float, hi: float, steps: int) -> tuple:
    """Straight re-statement of FreiHAND's EvalUtil with Python loops (test oracle only)."""
    thresholds = np.linspace(lo, hi, steps)
    means, medians, aucs, curves = [], [], [], []
    for keypoint in range(errors.shape[1]):
        data = errors[visible[:, keypoint], keypoint]
        if data.size == 0:
            continue
        means.append(np.mean(data))
        medians.append(np.median(data))
        curve = np.array([np.mean(data <= t) for t in thresholds])
        curves.append(curve)
        aucs.append(np.trapezoid(curve, thresholds) / np.trapezoid(np.ones_like(thresholds), thresholds))
    return np.mean(means), np.mean(medians), np.mean(aucs), np.mean(curves, axis=0)


def test_visibility_matches_the_eval_util_rule() -> None:
    rng = np.random.default_rng(1)
    errors = rng.uniform(0.0, 0.06, size=(9, 21))
    visible = rng.random((9, 21)) > 0.3
    visible[:, 4] = False  # a keypoint never visible is skipped entirely
    visible[0, 5:] = True
    ours = pck_summary(torch.from_numpy(errors), torch.from_numpy(visible))
    mean, median, auc, curve = reference_eval_util(errors, visible, 0.0, 0.05, 100)
    assert ours.epe_mean == pytest.approx(mean, rel=1e-12)
    assert ours.epe_median == pytest.approx(median, rel=1e-12)
    assert ours.auc == pytest.approx(auc, rel=1e-12)
    np.testing.assert_allclose(ours.pck_curve.numpy(), curve, rtol=1e-12)
    extra = pck_summary(torch.from_numpy(errors), torch.from_numpy(visible), 0.02, 0.05, 7)
    assert extra.auc == pytest.approx(reference_eval_util(errors, visible, 0.02, 0.05, 7)[2], rel=1e-12)


def test_visibility_in_hand_pose_metrics_and_alignment() -> None:
    rng = np.random.default_rng(2)
    gt = rng.normal(size=(3, 21, 3)) * 0.05
    pred = gt * 1.1 + 0.02
    pred[:, 0] += 1.0  # a wildly wrong wrist, marked invisible
    visible = np.ones((3, 21), dtype=bool)
    visible[:, 0] = False
    result = hand_pose_metrics(pred, gt, visibility=visible)
    # The visible joints are an exact similarity; FreiHAND's +1e-8 norm regulariser leaves ~1e-9 m.
    assert result.pa_epe_mean == pytest.approx(0.0, abs=1e-8)
    assert result.unaligned.epe_mean == pytest.approx(mpjpe(pred, gt, visible), rel=1e-12)
    aligned = pa_align(pred, gt, visibility=visible)
    np.testing.assert_allclose(aligned[:, 1:].numpy(), gt[:, 1:], atol=1e-8)


def test_keypoint_errors_and_shapes() -> None:
    errors = keypoint_errors(torch.zeros(2, 21, 3), torch.full((2, 21, 3), 2.0))
    torch.testing.assert_close(errors, torch.full((2, 21), 12.0**0.5, dtype=torch.float64))
    with pytest.raises(ShapeError):
        keypoint_errors(torch.zeros(2, 21, 3), torch.zeros(2, 20, 3))
    with pytest.raises(ShapeError):
        hand_pose_metrics(torch.zeros(2, 21, 3), torch.zeros(2, 21, 3), visibility=torch.ones(2, 20))
    with pytest.raises(ShapeError):
        pck_summary(torch.zeros(21))
