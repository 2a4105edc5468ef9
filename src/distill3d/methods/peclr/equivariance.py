"""PeCLR's equivariant treatment of the projection: the 128-d embedding read as 64 points in the plane.

Each view's geometric image transform (rotation θ, crop jitter j, see :mod:`distill3d.data.hand_augment`) is
undone on the L2-normalised projection before the contrastive loss (official ``Hybrid2Model
.get_transformed_projections``):

1. ``P = normalize(z)`` viewed as (64, 2) points;
2. translation: ``P[:, a] += −(j_a / S) · (max_k P[k, a] − min_k P[k, a])`` for a ∈ {x, y} — the image-space shift
   as a fraction of the crop, re-expressed in latent units by the point set's extent (detached);
3. rotation by −θ about the points' (detached) centroid c with OpenCV's matrix
   ``[[cos, sin, (1 − cos)c_x − sin c_y], [−sin, cos, sin c_x + (1 − cos)c_y]]`` at angle −θ;
4. re-normalise the 128-vector.

The latent plane behaves like the image plane turned by 180° (the crop jitter is subtracted, as in the official
code, while the rotation follows the image); this is consistent because a point reflection commutes with
rotations. Scale is not undone (the normalisation absorbs it; official code and its issue #3).

:func:`transform_latent_points` is the forward transform with the same conventions: undoing it with
:func:`undo_latent_transform` gives back the input exactly (up to rounding).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from distill3d.errors import ShapeError

__all__ = ["canonicalise_projections", "rotate_about_centroid", "transform_latent_points", "translate_by_extent",
           "undo_latent_transform"]


def _as_points(projections: torch.Tensor) -> torch.Tensor:
    if projections.dim() != 2 or projections.shape[1] % 2:
        raise ShapeError(f"projections must have shape (B, 2·P), got {tuple(projections.shape)}")
    return projections.view(projections.shape[0], -1, 2)


def rotate_about_centroid(points: torch.Tensor, angle_deg: torch.Tensor) -> torch.Tensor:
    """Rotate point sets (B, P, 2) by ``angle_deg`` (B,) (OpenCV sign, degrees) about their detached centroids."""
    center = points.detach().mean(dim=1, keepdim=True)  # (B, 1, 2)
    radians = angle_deg.to(points.dtype) * (math.pi / 180.0)
    cos, sin = torch.cos(radians)[:, None, None], torch.sin(radians)[:, None, None]
    offset = points - center
    x = cos * offset[..., :1] + sin * offset[..., 1:]
    y = -sin * offset[..., :1] + cos * offset[..., 1:]
    return torch.cat([x, y], dim=-1) + center


def translate_by_extent(points: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Move point sets (B, P, 2) by ``shift`` (B, 2) times their per-axis extent ``max − min`` (detached)."""
    detached = points.detach()
    extent = detached.amax(dim=1) - detached.amin(dim=1)  # (B, 2)
    return points + (shift.to(points.dtype) * extent)[:, None, :]


def undo_latent_transform(points: torch.Tensor, angle_deg: torch.Tensor | None,
                          jitter_normalised: torch.Tensor | None) -> torch.Tensor:
    """PeCLR's inverse on point sets (B, P, 2): translate by ``−jitter·extent``, then rotate by −θ."""
    if jitter_normalised is not None:
        points = translate_by_extent(points, -jitter_normalised)
    if angle_deg is not None:
        points = rotate_about_centroid(points, -angle_deg)
    return points


def transform_latent_points(points: torch.Tensor, angle_deg: torch.Tensor | None,
                            jitter_normalised: torch.Tensor | None) -> torch.Tensor:
    """The forward transform that :func:`undo_latent_transform` inverts: rotate by θ, then translate by
    ``+jitter·extent`` (rotation about the centroid keeps the centroid; translation keeps the extent)."""
    if angle_deg is not None:
        points = rotate_about_centroid(points, angle_deg)
    if jitter_normalised is not None:
        points = translate_by_extent(points, jitter_normalised)
    return points


def canonicalise_projections(projections: torch.Tensor, angle_deg: torch.Tensor | None = None,
                             jitter_normalised: torch.Tensor | None = None) -> torch.Tensor:
    """PeCLR steps 1-4: projections (B, 2·P) → L2-normalised, geometry-undone projections (B, 2·P).

    angle_deg (B,) degrees; jitter_normalised (B, 2) crop jitter / image size. ``None`` skips that transform
    (with both ``None`` this is plain normalisation, i.e. SimCLR).
    """
    points = _as_points(F.normalize(projections, dim=1))
    points = undo_latent_transform(points, angle_deg, jitter_normalised)
    return F.normalize(points.reshape(projections.shape[0], -1), dim=1)
