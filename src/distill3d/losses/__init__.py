"""Losses: contrastive (InfoNCE, NT-Xent, CRD), knowledge distillation, the viewpoint task loss."""

from distill3d.losses.contrastive import (
    CRDLoss,
    InfoNCELoss,
    NTXentLoss,
    info_nce_loss,
    logit_kd_loss,
    nce_contrast_loss,
    nt_xent_loss,
)
from distill3d.losses.viewpoint import viewpoint_task_loss

__all__ = [
    "CRDLoss",
    "InfoNCELoss",
    "NTXentLoss",
    "info_nce_loss",
    "logit_kd_loss",
    "nce_contrast_loss",
    "nt_xent_loss",
    "viewpoint_task_loss",
]
