"""PointMCD's teacher: a multi-view image encoder giving per-view descriptors and a shape descriptor.

After the official ``Teacher_Cls`` (METHODS.md §4.1), with the library's ResNet in place of the ImageNet
MobileNetV2: every one of the V views goes through the shared image encoder and global average pooling
(C channels), then a shared projection Linear (no bias) → BatchNorm → ReLU to the D-dimensional view descriptor
t_v (512 in the paper); the shape descriptor is Linear → BatchNorm → ReLU of ``max_v t_v``; one linear classifier
(no bias) scores the shape descriptor and, for the auxiliary per-view loss, each view descriptor. Training:
``SmoothCE(shape logits) + w_view · SmoothCE(view logits)`` (ε = 0.2). The per-view descriptors t_v are what the
student distils (exported once for the training split, :mod:`distill3d.methods.pointmcd.knowledge`).
"""

from __future__ import annotations

import torch
from torch import nn

from distill3d.errors import check_shape
from distill3d.methods.pointmcd.options import Options
from distill3d.models.resnet import ResNet


class MultiViewTeacher(nn.Module):
    """Views (B, V, 3, S, S) in [0, 1] → dict of ``logits`` (B, K), ``view_logits`` (B, V, K),
    ``view_descriptors`` (B, V, D) (post-ReLU) and ``shape_descriptor`` (B, D).

    Args:
        encoder: image encoder with ``features(images (B, 3, S, S)) → (B, C)`` and ``feature_dim`` C.
        num_classes: K.
        descriptor_dim: D.
    """

    def __init__(self, encoder: ResNet, num_classes: int, descriptor_dim: int = 512) -> None:
        super().__init__()
        self.encoder = encoder
        self.descriptor_dim = descriptor_dim
        self.view_projection = nn.Sequential(nn.Linear(encoder.feature_dim, descriptor_dim, bias=False),
                                             nn.BatchNorm1d(descriptor_dim), nn.ReLU(inplace=True))
        self.shape_projection = nn.Sequential(nn.Linear(descriptor_dim, descriptor_dim, bias=False),
                                              nn.BatchNorm1d(descriptor_dim), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(descriptor_dim, num_classes, bias=False)

    def view_descriptors(self, views: torch.Tensor) -> torch.Tensor:
        """(B, V, 3, S, S) → per-view descriptors t (B, V, D)."""
        check_shape("views", views, (None, None, 3, None, None))
        batch, num_views = views.shape[:2]
        features = self.encoder.features(views.flatten(0, 1))  # (B·V, C)
        return self.view_projection(features).view(batch, num_views, self.descriptor_dim)

    def forward(self, views: torch.Tensor) -> dict[str, torch.Tensor]:
        view_descriptors = self.view_descriptors(views)
        shape_descriptor = self.shape_projection(view_descriptors.amax(dim=1))
        return {"logits": self.classifier(shape_descriptor), "view_logits": self.classifier(view_descriptors),
                "view_descriptors": view_descriptors, "shape_descriptor": shape_descriptor}


def build_teacher(options: Options, num_classes: int) -> MultiViewTeacher:
    """The teacher's architecture (no weights loaded; ``warm_start`` of the task loads the pre-trained encoder)."""
    encoder = ResNet(options.backbone, 0, options.backbone_width, options.small_input_stem)
    return MultiViewTeacher(encoder, num_classes, options.descriptor_dim)
