"""Viewpoint estimation metrics: geodesic rotation error, Acc@π/6 and MedErr (Pascal3D+/ObjectNet3D).

A viewpoint is ``(azimuth, elevation, in-plane rotation)`` in the Pascal3D+ convention of
:func:`distill3d.geometry.rotations.viewpoint_to_matrix`, ``R = Rz(θ)·Rx(e − π/2)·Rz(−a)``. The error of a
prediction is the geodesic distance between the two rotations,
``Δ(R_pred, R_gt) = ‖logm(R_predᵀ·R_gt)‖_F / √2 = arccos((tr(R_predᵀ·R_gt) − 1)/2)``, reported in degrees.

* ``Acc@π/6``: percentage of samples with error ``≤ 30°``.
* ``MedErr``: median error in degrees. ``median="numpy"`` (default) is ``np.median`` (mean of the two
  middle values for even n), as in PoseFromShape; ``median="upper"`` is StarMap's
  ``np.sort(err)[n // 2]``.

:func:`viewpoint_metrics` reports both per category and their plain mean over categories
(PoseFromShape's "Average for all categories"), plus the values pooled over all samples (StarMap's
"accAll"). Errors are computed in float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from distill3d.errors import ShapeError
from distill3d.geometry.rotations import geodesic_distance, viewpoint_to_matrix

__all__ = [
    "CategoryViewpointResult",
    "ViewpointResult",
    "acc_at_pi_over_6",
    "median_error",
    "summarize_viewpoint_errors",
    "viewpoint_error_deg",
    "viewpoint_error_deg_from_degrees",
    "viewpoint_metrics",
]

MedianRule = Literal["numpy", "upper"]
ACC_THRESHOLD_DEG = 30.0


def _viewpoints_to_float64(name: str, viewpoints: torch.Tensor | np.ndarray) -> torch.Tensor:
    tensor = torch.as_tensor(viewpoints).to(torch.float64)
    if tensor.dim() < 1 or tensor.shape[-1] != 3:
        raise ShapeError(
            f"{name} must have shape (..., 3) (azimuth, elevation, inplane), got {tuple(tensor.shape)}"
        )
    return tensor


def viewpoint_error_deg(
    pred_viewpoint: torch.Tensor | np.ndarray, gt_viewpoint: torch.Tensor | np.ndarray
) -> torch.Tensor:
    """Geodesic rotation error (...) in degrees; viewpoints (..., 3) are (azimuth, elevation, inplane) rad."""
    pred = _viewpoints_to_float64("pred_viewpoint", pred_viewpoint)
    gt = _viewpoints_to_float64("gt_viewpoint", gt_viewpoint)
    if pred.shape != gt.shape:
        raise ShapeError(f"pred_viewpoint {tuple(pred.shape)} and gt_viewpoint {tuple(gt.shape)} differ")
    angle = geodesic_distance(viewpoint_to_matrix(*pred.unbind(-1)), viewpoint_to_matrix(*gt.unbind(-1)))
    return torch.rad2deg(angle)


def viewpoint_error_deg_from_degrees(
    pred_viewpoint_deg: torch.Tensor | np.ndarray, gt_viewpoint_deg: torch.Tensor | np.ndarray
) -> torch.Tensor:
    """As :func:`viewpoint_error_deg` for viewpoints given in degrees; (..., 3) → (...) degrees."""
    pred = torch.deg2rad(_viewpoints_to_float64("pred_viewpoint_deg", pred_viewpoint_deg))
    gt = torch.deg2rad(_viewpoints_to_float64("gt_viewpoint_deg", gt_viewpoint_deg))
    return viewpoint_error_deg(pred, gt)


def _errors_1d(errors_deg: torch.Tensor | np.ndarray) -> torch.Tensor:
    errors = torch.as_tensor(errors_deg).to(torch.float64)
    if errors.dim() != 1 or errors.numel() == 0:
        raise ShapeError(f"errors_deg must be a non-empty 1-D tensor, got shape {tuple(errors.shape)}")
    return errors


def acc_at_pi_over_6(errors_deg: torch.Tensor | np.ndarray) -> float:
    """Acc@π/6 in percent: ``100 · mean(errors_deg ≤ 30)``; errors (N,) degrees."""
    errors = _errors_1d(errors_deg)
    return 100.0 * float((errors <= ACC_THRESHOLD_DEG).sum()) / errors.numel()


def median_error(errors_deg: torch.Tensor | np.ndarray, median: MedianRule = "numpy") -> float:
    """MedErr (degrees) of errors (N,): ``"numpy"`` = ``np.median``; ``"upper"`` = ``sort(err)[N // 2]``."""
    errors = torch.sort(_errors_1d(errors_deg)).values
    count = errors.numel()
    if median == "upper":
        return float(errors[count // 2])
    if median == "numpy":
        return float((errors[(count - 1) // 2] + errors[count // 2]) / 2)
    raise ValueError(f"median must be 'numpy' or 'upper', got {median!r}")


@dataclass(frozen=True)
class CategoryViewpointResult:
    """Acc@π/6 (percent) and MedErr (degrees) over the ``n`` samples of one category."""

    n: int
    acc_pi_6_percent: float
    med_err_deg: float


@dataclass(frozen=True)
class ViewpointResult:
    """Viewpoint metrics.

    ``per_category``: per-category values (categories sorted); ``mean_acc_pi_6_percent`` /
    ``mean_med_err_deg``: unweighted mean of those over categories; ``all_acc_pi_6_percent`` /
    ``all_med_err_deg``: pooled over all samples; ``errors_deg`` (N,): per-sample errors.
    """

    per_category: dict[str, CategoryViewpointResult]
    mean_acc_pi_6_percent: float
    mean_med_err_deg: float
    all_acc_pi_6_percent: float
    all_med_err_deg: float
    errors_deg: torch.Tensor
    median_rule: MedianRule = "numpy"


def summarize_viewpoint_errors(
    errors_deg: torch.Tensor | np.ndarray,
    categories: Sequence[object] | np.ndarray,
    median: MedianRule = "numpy",
) -> ViewpointResult:
    """Per-category, mean-over-categories and pooled Acc@π/6 and MedErr of per-sample errors (N,), degrees."""
    errors = _errors_1d(errors_deg)
    if isinstance(categories, torch.Tensor | np.ndarray):
        categories = categories.tolist()  # plain values: category 3 is "3", not "tensor(3)"
    labels = np.asarray([str(category) for category in categories])
    if labels.shape != (errors.numel(),):
        raise ShapeError(f"categories must hold one label per sample ({errors.numel()}), got {labels.shape}")
    per_category: dict[str, CategoryViewpointResult] = {}
    for name in np.unique(labels):  # one iteration per category, not per sample
        members = errors[torch.from_numpy(labels == name)]
        per_category[str(name)] = CategoryViewpointResult(
            n=members.numel(),
            acc_pi_6_percent=acc_at_pi_over_6(members),
            med_err_deg=median_error(members, median),
        )
    return ViewpointResult(
        per_category=per_category,
        mean_acc_pi_6_percent=math.fsum(r.acc_pi_6_percent for r in per_category.values())
        / len(per_category),
        mean_med_err_deg=math.fsum(r.med_err_deg for r in per_category.values()) / len(per_category),
        all_acc_pi_6_percent=acc_at_pi_over_6(errors),
        all_med_err_deg=median_error(errors, median),
        errors_deg=errors,
        median_rule=median,
    )


def viewpoint_metrics(
    pred_viewpoint: torch.Tensor | np.ndarray,
    gt_viewpoint: torch.Tensor | np.ndarray,
    categories: Sequence[object] | np.ndarray,
    median: MedianRule = "numpy",
) -> ViewpointResult:
    """Viewpoint metrics from predicted and GT viewpoints (N, 3) in radians and a category label per sample.

    Use ``torch.deg2rad`` (or :func:`viewpoint_error_deg_from_degrees` + :func:`summarize_viewpoint_errors`)
    for viewpoints in degrees.
    """
    pred = _viewpoints_to_float64("pred_viewpoint", pred_viewpoint)
    if pred.dim() != 2:
        raise ShapeError(f"pred_viewpoint must have shape (N, 3), got {tuple(pred.shape)}")
    return summarize_viewpoint_errors(viewpoint_error_deg(pred, gt_viewpoint), categories, median)
