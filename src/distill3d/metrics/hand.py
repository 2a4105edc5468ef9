"""3D hand keypoint metrics as in FreiHAND's official evaluation (EPE, PA-EPE, PCK curve and its AUC).

Inputs are keypoints (B, J, 3) in metres (FreiHAND: J = 21), optionally with a per-joint visibility
(B, J). Everything is computed in float64 and follows ``utils/eval_util.py::EvalUtil`` of
``lmb-freiburg/freihand``:

* error ``e_bj = ‖pred_bj − gt_bj‖₂`` (metres), kept only where the joint is visible;
* ``epe_mean`` = mean over keypoints of the per-keypoint mean error; ``epe_median`` = mean over
  keypoints of the per-keypoint median (``np.median``), **not** the median of all errors;
* PCK: for each keypoint the fraction of its samples with ``e ≤ τ``, for ``τ = linspace(lo, hi, steps)``;
  ``pck_curve`` is its mean over keypoints;
* ``auc`` = mean over keypoints of ``trapezoid(pck_j, τ) / trapezoid(1, τ)``.

Keypoints with no visible sample are left out of every average, as in the reference. FreiHAND reports
``0–50 mm, 100 steps``; ``20–50 mm, 7 steps`` is the STB/RHD AUC. Procrustes-aligned ("PA") values
align each predicted hand to its GT with a similarity transform that, like FreiHAND's
``align_w_scale``, does not correct reflections by default (see :mod:`distill3d.geometry.procrustes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from distill3d.errors import ShapeError
from distill3d.geometry.procrustes import FREIHAND_NORM_EPSILON, align_similarity

__all__ = [
    "FREIHAND_PCK_RANGE",
    "STB_RHD_PCK_RANGE",
    "HandPoseResult",
    "PckSummary",
    "hand_pose_metrics",
    "keypoint_errors",
    "mpjpe",
    "pa_align",
    "pa_mpjpe",
    "pck_summary",
]

FREIHAND_PCK_RANGE = (0.0, 0.05, 100)
"""FreiHAND thresholds: 0 to 50 mm (metres), 100 values, both ends included."""
STB_RHD_PCK_RANGE = (0.02, 0.05, 7)
"""20 to 50 mm in 7 values: the AUC usually quoted on STB/RHD."""


def _keypoints_float64(name: str, keypoints: torch.Tensor | np.ndarray) -> torch.Tensor:
    tensor = torch.as_tensor(keypoints).to(torch.float64)
    if tensor.dim() != 3 or tensor.shape[-1] != 3:
        raise ShapeError(f"{name} must have shape (B, J, 3), got {tuple(tensor.shape)}")
    return tensor


def _pair(
    pred: torch.Tensor | np.ndarray, gt: torch.Tensor | np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    pred_t, gt_t = _keypoints_float64("pred_xyz", pred), _keypoints_float64("gt_xyz", gt)
    if pred_t.shape != gt_t.shape:
        raise ShapeError(f"pred_xyz {tuple(pred_t.shape)} and gt_xyz {tuple(gt_t.shape)} differ")
    return pred_t, gt_t


def _visibility_mask(visibility: torch.Tensor | np.ndarray | None, shape: torch.Size) -> torch.Tensor:
    if visibility is None:
        return torch.ones(shape, dtype=torch.bool)
    mask = torch.as_tensor(visibility).to(torch.bool)
    if mask.shape != shape:
        raise ShapeError(f"visibility must have shape {tuple(shape)}, got {tuple(mask.shape)}")
    return mask


def keypoint_errors(pred_xyz: torch.Tensor | np.ndarray, gt_xyz: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Euclidean error per joint ``‖pred − gt‖₂``: (B, J, 3) each → (B, J), same unit as the input."""
    pred, gt = _pair(pred_xyz, gt_xyz)
    return torch.sqrt(((gt - pred) ** 2).sum(-1))


def pa_align(
    pred_xyz: torch.Tensor | np.ndarray,
    gt_xyz: torch.Tensor | np.ndarray,
    allow_reflection: bool = True,
    visibility: torch.Tensor | np.ndarray | None = None,
) -> torch.Tensor:
    """Procrustes-align each predicted hand to its GT (similarity transform): (B, J, 3) → (B, J, 3) float64.

    Defaults reproduce FreiHAND's ``align_w_scale`` (reflections allowed, ``‖·‖_F + 1e-8`` normalisation).
    With ``visibility`` (B, J) only visible joints determine the transform.
    """
    pred, gt = _pair(pred_xyz, gt_xyz)
    weights = None if visibility is None else _visibility_mask(visibility, pred.shape[:2]).to(pred.dtype)
    return align_similarity(pred, gt, allow_reflection, weights=weights, norm_epsilon=FREIHAND_NORM_EPSILON)


def mpjpe(
    pred_xyz: torch.Tensor | np.ndarray,
    gt_xyz: torch.Tensor | np.ndarray,
    visibility: torch.Tensor | np.ndarray | None = None,
) -> float:
    """Mean per-joint position error over all visible joints of all samples (input unit)."""
    errors = keypoint_errors(pred_xyz, gt_xyz)
    mask = _visibility_mask(visibility, errors.shape)
    return float(errors[mask].mean())


def pa_mpjpe(
    pred_xyz: torch.Tensor | np.ndarray,
    gt_xyz: torch.Tensor | np.ndarray,
    visibility: torch.Tensor | np.ndarray | None = None,
    allow_reflection: bool = True,
) -> float:
    """MPJPE after :func:`pa_align` (PA-MPJPE, a.k.a. PA-EPE), input unit."""
    aligned = pa_align(pred_xyz, gt_xyz, allow_reflection, visibility)
    return mpjpe(aligned, gt_xyz, visibility)


@dataclass(frozen=True)
class PckSummary:
    """FreiHAND ``EvalUtil.get_measures``: EPE mean/median (m), AUC, PCK curve (T,), thresholds (T,) (m)."""

    epe_mean: float
    epe_median: float
    auc: float
    pck_curve: torch.Tensor
    thresholds: torch.Tensor


def pck_summary(
    errors: torch.Tensor | np.ndarray,
    visibility: torch.Tensor | np.ndarray | None = None,
    threshold_min: float = FREIHAND_PCK_RANGE[0],
    threshold_max: float = FREIHAND_PCK_RANGE[1],
    num_thresholds: int = FREIHAND_PCK_RANGE[2],
) -> PckSummary:
    """EPE mean/median, PCK curve and AUC from per-joint errors (B, J) in metres (see the module docstring).

    Thresholds are ``linspace(threshold_min, threshold_max, num_thresholds)``. Vectorised: errors are
    sorted per keypoint (invisible ones pushed to +inf), counts come from ``searchsorted``.
    """
    errors_t = torch.as_tensor(errors).to(torch.float64)
    if errors_t.dim() != 2:
        raise ShapeError(f"errors must have shape (B, J), got {tuple(errors_t.shape)}")
    mask = _visibility_mask(visibility, errors_t.shape)
    thresholds = torch.from_numpy(np.linspace(threshold_min, threshold_max, num_thresholds))

    counts = mask.sum(0)  # (J,) visible samples per keypoint
    used = counts > 0  # keypoints with no visible sample are skipped, as in EvalUtil
    sorted_errors = (
        torch.where(mask, errors_t, torch.inf).transpose(0, 1).sort(dim=-1).values[used]
    )  # (J', B)
    counts = counts[used].to(torch.float64)
    if sorted_errors.numel() == 0:
        raise ValueError("no visible keypoint: cannot compute hand pose metrics")

    finite = torch.where(torch.isinf(sorted_errors), 0.0, sorted_errors)
    epe_mean_per_keypoint = finite.sum(-1) / counts
    count_long = counts.long().unsqueeze(-1)
    lower_middle = sorted_errors.gather(-1, (count_long - 1) // 2)
    upper_middle = sorted_errors.gather(-1, count_long // 2)
    epe_median_per_keypoint = ((lower_middle + upper_middle) / 2).squeeze(-1)

    query = thresholds.unsqueeze(0).expand(sorted_errors.shape[0], -1).contiguous()
    at_or_below = torch.searchsorted(sorted_errors, query, right=True)  # (J', T): #errors ≤ τ
    pck_per_keypoint = at_or_below.to(torch.float64) / counts.unsqueeze(-1)
    if num_thresholds > 1:
        norm_factor = torch.trapezoid(torch.ones_like(thresholds), thresholds)
        auc_per_keypoint = torch.trapezoid(pck_per_keypoint, thresholds, dim=-1) / norm_factor
    else:  # a single threshold has no area: report the PCK there
        auc_per_keypoint = pck_per_keypoint[:, 0]
    return PckSummary(
        epe_mean=float(epe_mean_per_keypoint.mean()),
        epe_median=float(epe_median_per_keypoint.mean()),
        auc=float(auc_per_keypoint.mean()),
        pck_curve=pck_per_keypoint.mean(0),
        thresholds=thresholds,
    )


@dataclass(frozen=True)
class HandPoseResult:
    """Hand pose metrics without (``unaligned``) and with (``aligned``) Procrustes alignment.

    ``extra_unaligned`` / ``extra_aligned``: the same summaries over ``extra_range`` (default 20–50 mm,
    7 steps), ``None`` if not requested. ``per_sample_error`` / ``per_sample_pa_error`` (B,): mean error over
    the visible joints of each sample (metres); ``aligned_pred_xyz`` (B, J, 3): the aligned prediction.
    """

    unaligned: PckSummary
    aligned: PckSummary
    extra_unaligned: PckSummary | None
    extra_aligned: PckSummary | None
    per_sample_error: torch.Tensor
    per_sample_pa_error: torch.Tensor
    aligned_pred_xyz: torch.Tensor

    @property
    def epe_mean(self) -> float:
        """Unaligned mean EPE (metres); FreiHAND's ``xyz_mean3d`` is this × 100 (cm)."""
        return self.unaligned.epe_mean

    @property
    def pa_epe_mean(self) -> float:
        """Procrustes-aligned mean EPE (PA-MPJPE, metres); FreiHAND's ``xyz_al_mean3d`` is this × 100."""
        return self.aligned.epe_mean

    @property
    def auc(self) -> float:
        """Unaligned AUC over the main range (FreiHAND ``xyz_auc3d``)."""
        return self.unaligned.auc

    @property
    def pa_auc(self) -> float:
        """Aligned AUC over the main range (FreiHAND ``xyz_al_auc3d``)."""
        return self.aligned.auc


def hand_pose_metrics(
    pred_xyz: torch.Tensor | np.ndarray,
    gt_xyz: torch.Tensor | np.ndarray,
    visibility: torch.Tensor | np.ndarray | None = None,
    allow_reflection: bool = True,
    pck_range: tuple[float, float, int] = FREIHAND_PCK_RANGE,
    extra_range: tuple[float, float, int] | None = STB_RHD_PCK_RANGE,
) -> HandPoseResult:
    """FreiHAND keypoint evaluation of predictions (B, J, 3) against GT (B, J, 3), metres.

    ``pck_range`` / ``extra_range`` are ``(min_m, max_m, steps)``. ``allow_reflection=True`` reproduces the
    official ``align_w_scale``; ``False`` forces proper rotations (HMR/METRO style).
    """
    pred, gt = _pair(pred_xyz, gt_xyz)
    mask = _visibility_mask(visibility, pred.shape[:2])
    aligned_pred = pa_align(pred, gt, allow_reflection, visibility)
    errors = keypoint_errors(pred, gt)
    pa_errors = keypoint_errors(aligned_pred, gt)

    def per_sample(values: torch.Tensor) -> torch.Tensor:
        return torch.where(mask, values, 0.0).sum(-1) / mask.sum(-1)

    extra = (
        (None, None)
        if extra_range is None
        else (
            pck_summary(errors, mask, *extra_range),
            pck_summary(pa_errors, mask, *extra_range),
        )
    )
    return HandPoseResult(
        unaligned=pck_summary(errors, mask, *pck_range),
        aligned=pck_summary(pa_errors, mask, *pck_range),
        extra_unaligned=extra[0],
        extra_aligned=extra[1],
        per_sample_error=per_sample(errors),
        per_sample_pa_error=per_sample(pa_errors),
        aligned_pred_xyz=aligned_pred,
    )
