"""Losses: contrastive (InfoNCE, NT-Xent, CRD), knowledge distillation, the viewpoint task loss."""

from distill3d.losses.contrastive import CRDLoss, InfoNCELoss, NTXentLoss, logit_kd_loss, nce_contrast_loss
from distill3d.losses.viewpoint import viewpoint_task_loss

__all__ = [
    "CRDLoss",
    "InfoNCELoss",
    "NTXentLoss",
    "logit_kd_loss",
    "nce_contrast_loss",
    "viewpoint_task_loss",
]
