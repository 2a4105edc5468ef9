"""Losses: contrastive (InfoNCE, NT-Xent, CRD), knowledge distillation, the viewpoint task loss, the weakly supervised
monocular 3D detection losses (SKD-WM3D)."""

from distill3d.losses.contrastive import (
    CRDLoss,
    InfoNCELoss,
    NTXentLoss,
    info_nce_loss,
    logit_kd_loss,
    nce_contrast_loss,
    nt_xent_loss,
)
from distill3d.losses.mono3d import (
    box_depth_target,
    dimension_prior_loss,
    focal_heatmap_loss,
    heatmap_distillation_loss,
    laplacian_l1,
    point_box_alignment_loss,
    projection_consistency_loss,
    scale_gradients,
    surface_points,
    transfer_modulation_coefficients,
    uncertainty_distillation_loss,
)
from distill3d.losses.viewpoint import viewpoint_task_loss

__all__ = [
    "CRDLoss",
    "InfoNCELoss",
    "NTXentLoss",
    "box_depth_target",
    "dimension_prior_loss",
    "focal_heatmap_loss",
    "heatmap_distillation_loss",
    "info_nce_loss",
    "laplacian_l1",
    "logit_kd_loss",
    "nce_contrast_loss",
    "nt_xent_loss",
    "point_box_alignment_loss",
    "projection_consistency_loss",
    "scale_gradients",
    "surface_points",
    "transfer_modulation_coefficients",
    "uncertainty_distillation_loss",
    "viewpoint_task_loss",
]
