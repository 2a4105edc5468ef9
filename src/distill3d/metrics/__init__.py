"""Evaluation metrics that reproduce the reference implementations of each benchmark.

The KITTI detection metric lives in :mod:`distill3d.metrics.kitti` (import it from there).
"""

from distill3d.metrics.hand import (
    FREIHAND_PCK_RANGE,
    STB_RHD_PCK_RANGE,
    HandPoseResult,
    PckSummary,
    hand_pose_metrics,
    keypoint_errors,
    mpjpe,
    pa_align,
    pa_mpjpe,
    pck_summary,
)
from distill3d.metrics.shapes import (
    PartSegmentationResult,
    mean_class_accuracy,
    overall_accuracy,
    part_segmentation_miou,
    predict_parts_within_category,
)
from distill3d.metrics.viewpoint import (
    CategoryViewpointResult,
    ViewpointResult,
    acc_at_pi_over_6,
    median_error,
    summarize_viewpoint_errors,
    viewpoint_error_deg,
    viewpoint_error_deg_from_degrees,
    viewpoint_metrics,
)

__all__ = [
    "FREIHAND_PCK_RANGE",
    "STB_RHD_PCK_RANGE",
    "CategoryViewpointResult",
    "HandPoseResult",
    "PartSegmentationResult",
    "PckSummary",
    "ViewpointResult",
    "acc_at_pi_over_6",
    "hand_pose_metrics",
    "keypoint_errors",
    "mean_class_accuracy",
    "median_error",
    "mpjpe",
    "overall_accuracy",
    "pa_align",
    "pa_mpjpe",
    "part_segmentation_miou",
    "pck_summary",
    "predict_parts_within_category",
    "summarize_viewpoint_errors",
    "viewpoint_error_deg",
    "viewpoint_error_deg_from_degrees",
    "viewpoint_metrics",
]
