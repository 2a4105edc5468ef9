"""Viewpoint metrics against the PoseFromShape / StarMap golden vectors, plus median conventions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import shared_path
from distill3d.errors import ShapeError
from distill3d.metrics.viewpoint import (
    ViewpointResult,
    acc_at_pi_over_6,
    median_error,
    summarize_viewpoint_errors,
    viewpoint_error_deg,
    viewpoint_error_deg_from_degrees,
    viewpoint_metrics,
)


def load_golden() -> tuple[dict[str, np.ndarray], dict]:
    folder: Path = shared_path("golden", "viewpoint_eval")
    inputs = dict(np.load(folder / "inputs.npz"))
    return inputs, json.loads((folder / "expected.json").read_text())


def test_per_sample_errors_match_starmap_logm_float64() -> None:
    inputs, expected = load_golden()
    errors = viewpoint_error_deg_from_degrees(
        inputs["pred_azi_ele_theta_deg"], inputs["gt_azi_ele_theta_deg"]
    )
    reference = np.asarray(expected["per_sample_err_deg_starmap_logm_float64"])
    np.testing.assert_allclose(errors.numpy(), reference, atol=1e-6, rtol=0)
    # The float32 PoseFromShape route agrees within its own precision.
    np.testing.assert_allclose(
        errors.numpy(), expected["per_sample_err_deg_posefromshape_float32"], atol=5e-4
    )
    # Radian entry point gives the same numbers.
    radians = viewpoint_error_deg(
        np.deg2rad(inputs["pred_azi_ele_theta_deg"]), np.deg2rad(inputs["gt_azi_ele_theta_deg"])
    )
    torch.testing.assert_close(radians, errors, atol=1e-12, rtol=0)


def check_against(result: ViewpointResult, reference: dict, med_tolerance: float) -> None:
    assert set(result.per_category) == set(reference["per_category"])
    for name, values in reference["per_category"].items():
        ours = result.per_category[name]
        assert ours.n == values["n"]
        assert ours.acc_pi_6_percent == pytest.approx(values["acc_pi_6_percent"], abs=1e-9)
        assert ours.med_err_deg == pytest.approx(values["med_err_deg"], abs=med_tolerance)
    assert result.mean_acc_pi_6_percent == pytest.approx(
        reference["mean_over_categories"]["acc_pi_6_percent"], abs=1e-9
    )
    assert result.mean_med_err_deg == pytest.approx(
        reference["mean_over_categories"]["med_err_deg"], abs=med_tolerance
    )
    assert result.all_acc_pi_6_percent == pytest.approx(
        reference["all_samples"]["acc_pi_6_percent"], abs=1e-9
    )
    assert result.all_med_err_deg == pytest.approx(reference["all_samples"]["med_err_deg"], abs=med_tolerance)


def test_viewpoint_metrics_match_posefromshape_np_median() -> None:
    inputs, expected = load_golden()
    result = viewpoint_metrics(
        np.deg2rad(inputs["pred_azi_ele_theta_deg"]),
        np.deg2rad(inputs["gt_azi_ele_theta_deg"]),
        inputs["category"],
    )
    check_against(result, expected["posefromshape"], med_tolerance=1e-3)
    check_against(result, expected["starmap_errors_with_np_median"], med_tolerance=1e-6)
    assert result.mean_med_err_deg == pytest.approx(16.1186, abs=1e-4)


def test_viewpoint_metrics_match_starmap_upper_median() -> None:
    inputs, expected = load_golden()
    result = viewpoint_metrics(
        np.deg2rad(inputs["pred_azi_ele_theta_deg"]),
        np.deg2rad(inputs["gt_azi_ele_theta_deg"]),
        list(inputs["category"]),
        median="upper",
    )
    check_against(result, expected["starmap_upper_median"], med_tolerance=1e-6)
    assert result.all_med_err_deg == pytest.approx(12.9745, abs=1e-4)


def test_median_conventions_and_accuracy_threshold() -> None:
    errors = torch.tensor([40.0, 10.0, 30.0, 20.0], dtype=torch.float64)
    assert median_error(errors) == 25.0 == float(np.median(errors.numpy()))
    assert median_error(errors, median="upper") == 30.0
    assert median_error(errors[:3], median="upper") == median_error(errors[:3]) == 30.0
    assert acc_at_pi_over_6(errors) == 75.0  # 30° itself counts as correct
    with pytest.raises(ValueError):
        median_error(errors, median="lower")  # type: ignore[arg-type]


def test_mean_over_categories_differs_from_pooled() -> None:
    errors = torch.tensor([1.0, 2.0, 3.0, 50.0, 60.0, 70.0, 80.0, 90.0], dtype=torch.float64)
    result = summarize_viewpoint_errors(errors, ["a"] * 3 + ["b"] * 5)
    assert (
        result.per_category["a"].acc_pi_6_percent == 100.0
        and result.per_category["b"].acc_pi_6_percent == 0.0
    )
    assert result.mean_acc_pi_6_percent == 50.0
    assert result.all_acc_pi_6_percent == 37.5
    assert result.mean_med_err_deg == (2.0 + 70.0) / 2
    assert result.all_med_err_deg == (50.0 + 60.0) / 2


def test_identity_and_half_turn_errors() -> None:
    gt = torch.tensor([[0.3, 0.2, 0.1], [1.0, -0.4, 0.2]], dtype=torch.float64)
    pred = gt.clone()
    pred[1, 0] += math.pi  # azimuth flip at non-zero elevation is not a full 180° rotation
    errors = viewpoint_error_deg(pred, gt)
    assert float(errors[0]) == pytest.approx(0.0, abs=1e-6)
    assert 0.0 < float(errors[1]) <= 180.0


def test_shape_errors() -> None:
    with pytest.raises(ShapeError):
        viewpoint_error_deg(torch.zeros(4, 2), torch.zeros(4, 2))
    with pytest.raises(ShapeError):
        viewpoint_error_deg(torch.zeros(4, 3), torch.zeros(5, 3))
    with pytest.raises(ShapeError):
        summarize_viewpoint_errors(torch.zeros(3), ["a", "b"])
    with pytest.raises(ShapeError):
        acc_at_pi_over_6(torch.zeros(0))


def test_tensor_categories_are_named_by_their_values() -> None:
    from distill3d.metrics.viewpoint import summarize_viewpoint_errors

    result = summarize_viewpoint_errors(torch.tensor([10.0, 50.0, 5.0]), torch.tensor([3, 3, 12]))
    assert set(result.per_category) == {"3", "12"}
    assert result.per_category["3"].acc_pi_6_percent == 50.0
