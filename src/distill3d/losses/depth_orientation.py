"""An orientation cue from the depth estimate, and the loss that reads it (SKD-WM3D's depth-aware head).

2D boxes fix a car's yaw only through its projected extent, which a box and its mirror image (observation angle
``α`` and ``−α``) share; the depth estimate shows which end is nearer. :func:`depth_orientation_cue` fits a
rectangle to the bird's-eye view of each box's depth points (:func:`distill3d.geometry.mono3d.l_shape_heading`)
and picks, of its two edge directions, the one whose class-mean box projects closest to the 2D box.
[reconstruction, METHODS.md §3.2: the paper's DSN has a "depth-aware 3D head" that it does not describe; this cue
is ours.] Conventions as in :mod:`distill3d.losses.mono3d`.
"""

from __future__ import annotations

import math

import torch

from distill3d.errors import check_shape
from distill3d.geometry.mono3d import centre_behind_surface, l_shape_heading, lift_centre
from distill3d.losses.mono3d import projection_consistency_loss, reduce_loss, surface_points

__all__ = ["axial_angle_loss", "depth_orientation_cue"]


def depth_orientation_cue(depth_map: torch.Tensor, boxes2d: torch.Tensor, batch_index: torch.Tensor,
                          K: torch.Tensor, P: torch.Tensor, class_dims: torch.Tensor, surface_depth: torch.Tensor,
                          image_size: tuple[int, int], grid: int = 16, shrink: float = 0.1,
                          depth_tolerance: float = 2.5, max_depth: float | None = None,
                          exclude_nearer_boxes: bool = False, min_points: int = 8
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Observation angle of each object from the depth estimate inside its 2D box, modulo π.

    1. The box's depth samples are lifted to camera-frame points (:func:`~distill3d.losses.mono3d.surface_points`)
       and a rectangle is fitted to their (x, z): edge direction ``θ`` modulo π/2.
    2. Candidate yaws ``ry = −θ`` and ``ry = −θ − π/2`` (the length along either edge): a box of the class-mean
       size, centred on the 2D box centre's ray at the surface depth plus half its footprint's extent along the
       ray, ``0.25·(l·|sin α| + w·|cos α|)``, is projected for each; the one whose projection fits the 2D box
       better (:func:`~distill3d.losses.mono3d.projection_consistency_loss`) is kept.
    3. ``α = ry − atan2(x, z)`` of that box's centre.

    Args:
        depth_map: (B, H, W) estimated depth, metres.
        boxes2d: (N, 4) 2D boxes in the depth map's (= input image's) pixels.
        batch_index: (N,) image of each box.
        K: (B, 3, 3) intrinsics of the images (the depth points' camera frame).
        P: (N, 3, 4) projection (label frame → input pixels) of each object's image.
        class_dims: (N, 3) class-mean ``(h, w, l)`` in metres.
        surface_depth: (N,) robust depth of the visible surface in each box (metres; NaN where unknown).
        image_size: ``(width, height)`` of the input image.
        grid, shrink, depth_tolerance, max_depth, exclude_nearer_boxes: the depth sampling of
            :func:`~distill3d.losses.mono3d.surface_points`.
        min_points: fewer valid depth points than this make the cue invalid.

    Returns:
        ``alpha`` (N,) radians in ``(−π, π]`` (defined modulo π: a box and its 180° turn share a footprint) and
        ``valid`` (N,) bool. No gradient flows (a target).
    """
    count = boxes2d.shape[0]
    check_shape("P", P, (count, 3, 4))
    check_shape("class_dims", class_dims, (count, 3))
    check_shape("surface_depth", surface_depth, (count,))
    with torch.no_grad():
        points, point_valid = surface_points(depth_map, boxes2d, batch_index, K, grid, shrink, depth_tolerance,
                                             max_depth, exclude_nearer_boxes)
        theta, _ = l_shape_heading(points[..., [0, 2]], point_valid)
        valid = (point_valid.sum(1) >= min_points) & torch.isfinite(surface_depth)
        depth = torch.where(valid, surface_depth, torch.full_like(surface_depth, 10.0))
        uv = 0.5 * (boxes2d[:, :2] + boxes2d[:, 2:]).to(depth.dtype)
        ray = lift_centre(uv, depth, P)
        ray_angle = torch.atan2(ray[:, 0], ray[:, 2])
        alphas, costs = [], []
        for turn in (0.0, math.pi / 2):
            alpha = -theta - turn - ray_angle
            centre = lift_centre(uv, depth + centre_behind_surface(alpha, class_dims), P)
            alpha = -theta - turn - torch.atan2(centre[:, 0], centre[:, 2])
            costs.append(projection_consistency_loss(centre, class_dims, -theta - turn, P, boxes2d, image_size,
                                                     reduction="none"))
            alphas.append(torch.atan2(alpha.sin(), alpha.cos()))
        alpha = torch.where(costs[0] <= costs[1], alphas[0], alphas[1])
    return alpha, valid


def axial_angle_loss(prediction: torch.Tensor, target: torch.Tensor, period: float = math.pi,
                     reduction: str = "mean") -> torch.Tensor:
    """``(1 − cos(2π·(prediction − target)/period)) / 2``: 0 when the angles agree modulo ``period``, 1 at half a
    period apart; smooth, so a soft-binned angle gets a gradient everywhere but exactly at the worst point.

    Args:
        prediction, target: (N,) radians.
        period: radians (π: a footprint and its 180° turn are the same).
        reduction: ``mean`` (0 when N = 0), ``sum`` or ``none``.
    """
    check_shape("prediction", prediction, (None,))
    check_shape("target", target, prediction.shape)
    return reduce_loss(0.5 * (1.0 - torch.cos((2.0 * math.pi / period) * (prediction - target))), reduction)
