"""Point visibility in several views with a z-buffer, fully vectorised.

Conventions follow :mod:`distill3d.geometry`: OpenCV camera coordinates (x right, y down, z forward,
metres), world→camera extrinsics ``X_cam = R·X_world + t``, pixel centres at integer ``(u, v)`` with u
the column and v the row. A projected point belongs to pixel ``(round(u), round(v))`` with
``round(x) = floor(x + ½)``.

The z-buffer is one flat (B·V·H·W) tensor filled with ``scatter_reduce(..., "amin")``: every point in
front of a camera and inside its image writes its depth to its pixel (or to the square of
``(2·splat_radius + 1)²`` pixels around it), and a point is visible when its depth is within the
tolerance of the minimum depth stored at its own pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from distill3d.errors import ShapeError, check_shape
from distill3d.geometry.camera import project_points

__all__ = ["point_visibility"]


def point_visibility(
    points: torch.Tensor,
    R: torch.Tensor,
    t: torch.Tensor,
    K: torch.Tensor,
    image_size: Sequence[int],
    depth_tolerance: float,
    tolerance_mode: Literal["absolute", "relative"] = "absolute",
    splat_radius: int = 0,
    min_depth: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which of N world points each of V cameras sees: → (visible (B, V, N) bool, pixels (B, V, N, 2) long).

    Args:
        points: (B, N, 3) world points.
        R, t: (B, V, 3, 3) and (B, V, 3) world→camera extrinsics.
        K: (B, V, 3, 3) per-view or (3, 3) shared intrinsics.
        image_size: (H, W) in pixels.
        depth_tolerance: slack on the depth test. ``"absolute"``: visible iff
            ``z ≤ z_min + depth_tolerance`` (metres); ``"relative"``: iff ``z ≤ z_min·(1 + depth_tolerance)``.
            ``z_min`` is the smallest depth splatted on the point's pixel.
        splat_radius: each point also occludes the pixels within this Chebyshev radius (0 = own pixel),
            which closes holes between sparse points.
        min_depth: points with ``z ≤ min_depth`` (metres) are behind the camera.

    A point is visible iff its depth is finite and ``> min_depth``, its pixel lies in
    ``[0, W) × [0, H)``, and it passes the depth test. ``pixels`` holds ``(u, v)`` = (column, row) of
    that pixel, and ``(−1, −1)`` for points outside the image or behind the camera.
    """
    check_shape("points", points, (None, None, 3))
    batch = points.shape[0]
    check_shape("R", R, (batch, None, 3, 3))
    num_views = R.shape[1]
    check_shape("t", t, (batch, num_views, 3))
    if K.shape != (3, 3):
        check_shape("K", K, (batch, num_views, 3, 3))
    if len(image_size) != 2:
        raise ShapeError(f"image_size must be (H, W), got {image_size}")
    if tolerance_mode not in ("absolute", "relative"):
        raise ValueError(f"tolerance_mode must be 'absolute' or 'relative', got {tolerance_mode!r}")
    if splat_radius < 0:
        raise ValueError(f"splat_radius must be >= 0, got {splat_radius}")
    height, width = (int(size) for size in image_size)

    with torch.no_grad():
        camera_points = points.unsqueeze(1) @ R.transpose(-1, -2) + t.unsqueeze(-2)  # (B, V, N, 3)
        uv, depth = project_points(camera_points, K.to(camera_points.dtype))
        pixel = torch.floor(uv + 0.5)
        in_front = torch.isfinite(depth) & (depth > min_depth) & torch.isfinite(pixel).all(-1)
        inside = (
            (pixel[..., 0] >= 0) & (pixel[..., 0] < width) & (pixel[..., 1] >= 0) & (pixel[..., 1] < height)
        )
        valid = in_front & inside
        pixel = torch.where(valid.unsqueeze(-1), pixel, -1.0).long()  # (B, V, N, 2)

        view_index = torch.arange(batch * num_views, device=points.device).view(batch, num_views, 1)
        image_offset = view_index * (height * width)  # (B, V, 1)
        own_index = image_offset + pixel[..., 1] * width + pixel[..., 0]  # (B, V, N), garbage where invalid

        offsets = torch.arange(-splat_radius, splat_radius + 1, device=points.device)
        delta_v, delta_u = torch.meshgrid(offsets, offsets, indexing="ij")
        splat_u = pixel[..., 0:1] + delta_u.reshape(-1)  # (B, V, N, S)
        splat_v = pixel[..., 1:2] + delta_v.reshape(-1)
        splat_ok = (
            valid.unsqueeze(-1) & (splat_u >= 0) & (splat_u < width) & (splat_v >= 0) & (splat_v < height)
        )
        splat_index = image_offset.unsqueeze(-1) + splat_v * width + splat_u
        splat_depth = depth.unsqueeze(-1).expand_as(splat_index)

        zbuffer = torch.full(
            (batch * num_views * height * width,), torch.inf, dtype=depth.dtype, device=depth.device
        )
        zbuffer.scatter_reduce_(0, splat_index[splat_ok], splat_depth[splat_ok], reduce="amin")

        nearest = zbuffer[torch.where(valid, own_index, 0)]
        if tolerance_mode == "absolute":
            passes_depth_test = depth <= nearest + depth_tolerance
        else:
            passes_depth_test = depth <= nearest * (1 + depth_tolerance)
        visible = valid & passes_depth_test
    return visible, pixel
