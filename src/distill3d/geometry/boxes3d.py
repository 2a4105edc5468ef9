"""3D boxes in the KITTI camera convention, their projection, and 2D / BEV / 3D overlaps.

Conventions (the KITTI object benchmark's):

* Camera coordinates: x right, y down, z forward, in metres.
* A 3D box is ``(x, y, z, h, w, l, ry)``: ``(x, y, z)`` is the centre of the box's BOTTOM face, ``h, w, l``
  are height (along y), width and length in metres, ``ry`` is the yaw about the camera Y axis in radians.
  At ``ry = 0`` the length runs along +x and the width along z; a point ``(u, v, w)`` of the box frame maps to
  camera coordinates by ``R_y(ry) = [[cos, 0, sin], [0, 1, 0], [-sin, 0, cos]]``.
* A bird's-eye-view (BEV) box is ``(x, z, l, w, ry)``: the footprint of the 3D box on the ground plane, a
  rectangle with extent ``l`` along the rotated x axis and ``w`` along the rotated z axis. This is the layout
  and sign convention the official evaluation code (mmdetection3d / OpenPCDet ``rotate_iou``) uses.
* 2D image boxes are ``(x1, y1, x2, y2)`` in pixels.

The IoU functions accept numpy arrays or torch tensors and return the kind of their first argument; they
compute in float64 with numba kernels (exact convex-polygon clipping) and are not differentiable.
:func:`box3d_corners`, :func:`project_box3d_to_image` and :func:`box2d_iou` are differentiable on tensors.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import torch
from numba import njit

from distill3d.errors import ShapeError, check_shape

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)

__all__ = [
    "BOX3D_EDGES",
    "alpha_to_rotation_y",
    "bev_intersection",
    "bev_iou",
    "box2d_ioa",
    "box2d_iou",
    "box3d_corners",
    "box3d_iou",
    "boxes3d_to_bev",
    "project_box3d_to_image",
    "rotation_y_to_alpha",
]

# Corner offsets in the box frame, as fractions of (l, h, w): bottom face (y = 0) first, then the top face
# (y = -h, since y points down). Corner k + 4 is straight above corner k.
_CORNER_SIGNS_X = (0.5, 0.5, -0.5, -0.5, 0.5, 0.5, -0.5, -0.5)
_CORNER_SIGNS_Y = (0.0, 0.0, 0.0, 0.0, -1.0, -1.0, -1.0, -1.0)
_CORNER_SIGNS_Z = (0.5, -0.5, -0.5, 0.5, 0.5, -0.5, -0.5, 0.5)

#: The 12 edges of a box as pairs of corner indices of :func:`box3d_corners` (bottom ring, top ring, pillars).
BOX3D_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 0),
    (4, 5), (5, 6), (6, 7), (7, 4),
    (0, 4), (1, 5), (2, 6), (3, 7),
)  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# Input / output conversion
# ----------------------------------------------------------------------------------------------------------


def _to_float64_numpy(name: str, boxes: np.ndarray | torch.Tensor, columns: int) -> np.ndarray:
    """A C-contiguous float64 (N, columns) copy-or-view of ``boxes`` (tensor or array); raises ShapeError."""
    if isinstance(boxes, torch.Tensor):
        array = boxes.detach().to("cpu", torch.float64).numpy()
    else:
        array = np.asarray(boxes, dtype=np.float64)
    check_shape(name, array, (None, columns))
    return np.ascontiguousarray(array)


def _like(result: np.ndarray, reference: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """``result`` as the kind of ``reference``: a tensor (same device, its float dtype) or a numpy array."""
    if isinstance(reference, torch.Tensor):
        dtype = reference.dtype if reference.is_floating_point() else torch.float64
        return torch.from_numpy(result).to(device=reference.device, dtype=dtype)
    return result


# ----------------------------------------------------------------------------------------------------------
# Corners, projection, angles
# ----------------------------------------------------------------------------------------------------------


def box3d_corners(boxes: ArrayOrTensor) -> ArrayOrTensor:
    """The 8 corners of each 3D box, in camera coordinates (metres).

    Args:
        boxes: (N, 7) boxes ``(x, y, z, h, w, l, ry)``, bottom-centre convention (module docstring).

    Returns:
        (N, 8, 3) corners. Order: corners 0-3 are the bottom face, 4-7 the top face, corner ``k + 4`` above
        corner ``k``. In the box frame (before the yaw) corner 0 is at ``(+l/2, 0, +w/2)``,
        1 at ``(+l/2, 0, -w/2)``, 2 at ``(-l/2, 0, -w/2)``, 3 at ``(-l/2, 0, +w/2)`` (the KITTI devkit's
        ``computeBox3D`` order).
        Differentiable for tensors; a numpy input gives a float64 numpy output.
    """
    if not isinstance(boxes, torch.Tensor):
        return box3d_corners(torch.from_numpy(_to_float64_numpy("boxes", boxes, 7))).numpy()
    check_shape("boxes", boxes, (None, 7))
    signs = torch.tensor(
        [_CORNER_SIGNS_X, _CORNER_SIGNS_Y, _CORNER_SIGNS_Z], dtype=boxes.dtype, device=boxes.device
    ).T  # (8, 3) in (length, height, width) units
    sizes = boxes[:, [5, 3, 4]]  # (N, 3): l, h, w
    local = signs[None] * sizes[:, None, :]  # (N, 8, 3) in the box frame
    cos, sin = torch.cos(boxes[:, 6])[:, None], torch.sin(boxes[:, 6])[:, None]
    x = cos * local[..., 0] + sin * local[..., 2]
    z = -sin * local[..., 0] + cos * local[..., 2]
    rotated = torch.stack([x, local[..., 1], z], dim=-1)
    return rotated + boxes[:, None, 0:3]


def project_box3d_to_image(
    boxes: ArrayOrTensor,
    projection: ArrayOrTensor,
    min_depth: float = 0.1,
    image_size: tuple[int, int] | None = None,
) -> tuple[ArrayOrTensor, ArrayOrTensor]:
    """Project 3D boxes into the image and return their corners and enclosing 2D boxes.

    Args:
        boxes: (N, 7) boxes ``(x, y, z, h, w, l, ry)`` in rectified camera coordinates (metres).
        projection: (3, 4) projection matrix (e.g. KITTI ``P2``) or (3, 3) intrinsics ``K`` (used as
            ``[K | 0]``).
        min_depth: near plane in metres; a point is in front of the camera when its projective depth (third
            row of ``P @ [X; 1]``) exceeds it.
        image_size: optional ``(width, height)`` in pixels; the 2D boxes are then clipped to
            ``[0, width - 1] x [0, height - 1]`` (KITTI label convention).

    Returns:
        ``corners_uv``: (N, 8, 2) pixel coordinates of the corners (order of :func:`box3d_corners`); a corner
        at or behind the near plane is NaN (its perspective projection would be mirrored and meaningless).
        ``boxes2d``: (N, 4) ``(x1, y1, x2, y2)`` enclosing the part of the box in front of the near plane: the
        visible corners plus the points where the box edges cross the near plane. A box wholly behind the near
        plane gives a NaN row. Same kind (tensor / array) as ``boxes``; differentiable for tensors.
    """
    if not isinstance(boxes, torch.Tensor):
        matrix = torch.from_numpy(np.asarray(projection, dtype=np.float64))
        corners_uv, boxes2d = project_box3d_to_image(
            torch.from_numpy(_to_float64_numpy("boxes", boxes, 7)), matrix, min_depth, image_size
        )
        return corners_uv.numpy(), boxes2d.numpy()
    matrix = torch.as_tensor(projection, dtype=boxes.dtype, device=boxes.device)
    if matrix.shape == (3, 3):
        matrix = torch.cat([matrix, matrix.new_zeros(3, 1)], dim=1)
    if matrix.shape != (3, 4):
        raise ShapeError(f"projection must have shape (3, 4) or (3, 3), got {tuple(matrix.shape)}")

    corners = box3d_corners(boxes)  # (N, 8, 3)
    homogeneous = corners @ matrix[:, :3].T + matrix[:, 3]  # (N, 8, 3): (u*d, v*d, d)
    depth = homogeneous[..., 2]
    in_front = depth > min_depth
    safe_depth = torch.where(in_front, depth, torch.ones_like(depth))
    uv = homogeneous[..., :2] / safe_depth[..., None]
    nan = torch.full_like(uv, float("nan"))
    corners_uv = torch.where(in_front[..., None], uv, nan)

    # Points where an edge crosses the near plane (depth is affine along an edge, so interpolate linearly).
    start = torch.tensor([e[0] for e in BOX3D_EDGES], device=boxes.device)
    end = torch.tensor([e[1] for e in BOX3D_EDGES], device=boxes.device)
    depth_start, depth_end = depth[:, start], depth[:, end]
    crosses = (depth_start - min_depth) * (depth_end - min_depth) < 0
    denominator = torch.where(crosses, depth_end - depth_start, torch.ones_like(depth_start))
    fraction = (min_depth - depth_start) / denominator
    crossing = homogeneous[:, start] + fraction[..., None] * (homogeneous[:, end] - homogeneous[:, start])
    crossing_uv = crossing[..., :2] / min_depth

    points = torch.cat([uv, crossing_uv], dim=1)  # (N, 20, 2)
    valid = torch.cat([in_front, crosses], dim=1)[..., None]  # (N, 20, 1)
    inf = torch.full_like(points, float("inf"))
    lower = torch.where(valid, points, inf).amin(dim=1)
    upper = torch.where(valid, points, -inf).amax(dim=1)
    boxes2d = torch.cat([lower, upper], dim=1)
    if image_size is not None:
        width, height = image_size
        limits_max = boxes2d.new_tensor([width - 1, height - 1, width - 1, height - 1])
        boxes2d = torch.minimum(torch.clamp(boxes2d, min=0.0), limits_max)
    any_visible = valid.any(dim=1)  # (N, 1)
    boxes2d = torch.where(any_visible, boxes2d, torch.full_like(boxes2d, float("nan")))
    return corners_uv, boxes2d


def rotation_y_to_alpha(rotation_y: ArrayOrTensor, location: ArrayOrTensor) -> ArrayOrTensor:
    """KITTI observation angle ``alpha = ry - atan2(x, z)``, wrapped to [-pi, pi).

    Args:
        rotation_y: (N,) yaw about the camera Y axis (radians).
        location: (N, 3) box positions ``(x, y, z)`` in camera coordinates (metres).
    """
    if isinstance(rotation_y, torch.Tensor):
        alpha = rotation_y - torch.atan2(location[:, 0], location[:, 2])
        return torch.remainder(alpha + math.pi, 2 * math.pi) - math.pi
    rotation_y, location = np.asarray(rotation_y, np.float64), np.asarray(location, np.float64)
    alpha = rotation_y - np.arctan2(location[:, 0], location[:, 2])
    return np.mod(alpha + np.pi, 2 * np.pi) - np.pi


def alpha_to_rotation_y(alpha: ArrayOrTensor, location: ArrayOrTensor) -> ArrayOrTensor:
    """Inverse of :func:`rotation_y_to_alpha`: ``ry = alpha + atan2(x, z)``, wrapped to [-pi, pi)."""
    if isinstance(alpha, torch.Tensor):
        rotation_y = alpha + torch.atan2(location[:, 0], location[:, 2])
        return torch.remainder(rotation_y + math.pi, 2 * math.pi) - math.pi
    alpha, location = np.asarray(alpha, np.float64), np.asarray(location, np.float64)
    rotation_y = alpha + np.arctan2(location[:, 0], location[:, 2])
    return np.mod(rotation_y + np.pi, 2 * np.pi) - np.pi


def boxes3d_to_bev(boxes: ArrayOrTensor) -> ArrayOrTensor:
    """(N, 7) 3D boxes ``(x, y, z, h, w, l, ry)`` -> (N, 5) BEV boxes ``(x, z, l, w, ry)``."""
    check_shape("boxes", boxes, (None, 7))
    return boxes[:, [0, 2, 5, 4, 6]]


# ----------------------------------------------------------------------------------------------------------
# 2D axis-aligned overlaps
# ----------------------------------------------------------------------------------------------------------


def _box2d_intersection_and_areas(a: ArrayOrTensor, b: ArrayOrTensor):
    minimum, maximum = (
        (torch.minimum, torch.maximum) if isinstance(a, torch.Tensor) else (np.minimum, np.maximum)
    )
    width = minimum(a[:, None, 2], b[None, :, 2]) - maximum(a[:, None, 0], b[None, :, 0])
    height = minimum(a[:, None, 3], b[None, :, 3]) - maximum(a[:, None, 1], b[None, :, 1])
    intersection = width.clip(min=0) * height.clip(min=0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return intersection, area_a, area_b


def _prepare_2d(a: ArrayOrTensor, b: ArrayOrTensor) -> tuple[ArrayOrTensor, ArrayOrTensor]:
    if isinstance(a, torch.Tensor):
        b = torch.as_tensor(b, dtype=a.dtype if a.is_floating_point() else torch.float64, device=a.device)
        if not a.is_floating_point():
            a = a.to(torch.float64)
    else:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    check_shape("a", a, (None, 4))
    check_shape("b", b, (None, 4))
    return a, b


def _safe_divide(numerator: ArrayOrTensor, denominator: ArrayOrTensor) -> ArrayOrTensor:
    """numerator / denominator where the denominator is positive, else 0."""
    if isinstance(numerator, torch.Tensor):
        positive = denominator > 0
        return torch.where(positive, numerator / torch.where(positive, denominator, 1.0), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), 0.0)


def box2d_iou(a: ArrayOrTensor, b: ArrayOrTensor) -> ArrayOrTensor:
    """IoU of axis-aligned image boxes.

    Args:
        a: (N, 4) boxes ``(x1, y1, x2, y2)`` in pixels (continuous coordinates: area = (x2-x1)(y2-y1), no +1).
        b: (M, 4) boxes, same layout.

    Returns:
        (N, M) IoU in [0, 1], the kind of ``a`` (0 where the union is empty).
    """
    a, b = _prepare_2d(a, b)
    intersection, area_a, area_b = _box2d_intersection_and_areas(a, b)
    union = area_a[:, None] + area_b[None, :] - intersection
    return _safe_divide(intersection, union)


def box2d_ioa(a: ArrayOrTensor, b: ArrayOrTensor) -> ArrayOrTensor:
    """Intersection of axis-aligned image boxes over the area of the boxes in ``a``.

    This is how KITTI decides that a detection ``a`` lies inside a DontCare region ``b``.

    Args:
        a: (N, 4) boxes ``(x1, y1, x2, y2)`` in pixels.
        b: (M, 4) boxes, same layout.

    Returns:
        (N, M) ``|a ∩ b| / |a|``, the kind of ``a`` (0 where ``a`` has no area).
    """
    a, b = _prepare_2d(a, b)
    intersection, area_a, _ = _box2d_intersection_and_areas(a, b)
    return _safe_divide(intersection, area_a[:, None])


# ----------------------------------------------------------------------------------------------------------
# Rotated rectangle clipping (numba)
# ----------------------------------------------------------------------------------------------------------


@njit(cache=True)
def _rectangle_corners(box: np.ndarray, out: np.ndarray) -> None:
    """Write the corners of BEV box ``(x, z, l, w, ry)`` into ``out`` (4, 2), counter-clockwise in (x, z)."""
    cos, sin = math.cos(box[4]), math.sin(box[4])
    half_l, half_w = 0.5 * abs(box[2]), 0.5 * abs(box[3])
    along = (half_l, -half_l, -half_l, half_l)
    across = (half_w, half_w, -half_w, -half_w)
    for k in range(4):
        out[k, 0] = box[0] + cos * along[k] + sin * across[k]
        out[k, 1] = box[1] - sin * along[k] + cos * across[k]


@njit(cache=True)
def _clipped_polygon_area(
    subject: np.ndarray, clip: np.ndarray, work_a: np.ndarray, work_b: np.ndarray
) -> float:
    """Area of convex quadrilateral ``subject`` (4, 2) ∩ convex quadrilateral ``clip`` (4, 2), both CCW.

    Sutherland-Hodgman: the subject polygon is cut by the half-plane left of each clip edge in turn.
    ``work_a`` / ``work_b`` are (>= 8, 2) scratch buffers.
    """
    polygon, spare = work_a, work_b
    count = 4
    for k in range(4):
        polygon[k, 0] = subject[k, 0]
        polygon[k, 1] = subject[k, 1]
    for edge in range(4):
        ex0, ez0 = clip[edge, 0], clip[edge, 1]
        edge_x = clip[(edge + 1) % 4, 0] - ex0
        edge_z = clip[(edge + 1) % 4, 1] - ez0
        kept = 0
        prev_x, prev_z = polygon[count - 1, 0], polygon[count - 1, 1]
        prev_side = edge_x * (prev_z - ez0) - edge_z * (prev_x - ex0)
        for k in range(count):
            cur_x, cur_z = polygon[k, 0], polygon[k, 1]
            cur_side = edge_x * (cur_z - ez0) - edge_z * (cur_x - ex0)
            if (cur_side >= 0.0) != (prev_side >= 0.0):
                fraction = prev_side / (prev_side - cur_side)
                spare[kept, 0] = prev_x + fraction * (cur_x - prev_x)
                spare[kept, 1] = prev_z + fraction * (cur_z - prev_z)
                kept += 1
            if cur_side >= 0.0:
                spare[kept, 0] = cur_x
                spare[kept, 1] = cur_z
                kept += 1
            prev_x, prev_z, prev_side = cur_x, cur_z, cur_side
        polygon, spare = spare, polygon
        count = kept
        if count < 3:
            return 0.0
    twice_area = 0.0
    for k in range(count):
        nxt = (k + 1) % count
        twice_area += polygon[k, 0] * polygon[nxt, 1] - polygon[nxt, 0] * polygon[k, 1]
    return 0.5 * abs(twice_area)


@njit(cache=True)
def _bev_intersection_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection areas (m²) of BEV boxes a (N, 5) and b (M, 5), float64."""
    n, m = a.shape[0], b.shape[0]
    out = np.zeros((n, m))
    corners_a = np.empty((n, 4, 2))
    corners_b = np.empty((m, 4, 2))
    radius_a = np.empty(n)
    radius_b = np.empty(m)
    for i in range(n):
        _rectangle_corners(a[i], corners_a[i])
        radius_a[i] = 0.5 * math.hypot(a[i, 2], a[i, 3])
    for j in range(m):
        _rectangle_corners(b[j], corners_b[j])
        radius_b[j] = 0.5 * math.hypot(b[j, 2], b[j, 3])
    work_a = np.empty((16, 2))
    work_b = np.empty((16, 2))
    for i in range(n):
        for j in range(m):
            dx = a[i, 0] - b[j, 0]
            dz = a[i, 1] - b[j, 1]
            reach = radius_a[i] + radius_b[j]
            if dx * dx + dz * dz >= reach * reach:
                continue  # bounding circles apart: no overlap
            out[i, j] = _clipped_polygon_area(corners_a[i], corners_b[j], work_a, work_b)
    return out


# ----------------------------------------------------------------------------------------------------------
# BEV and 3D IoU
# ----------------------------------------------------------------------------------------------------------


def bev_intersection(a: ArrayOrTensor, b: ArrayOrTensor) -> ArrayOrTensor:
    """Intersection area (m²) of rotated BEV rectangles.

    Args:
        a: (N, 5) BEV boxes ``(x, z, l, w, ry)`` (metres, radians).
        b: (M, 5) BEV boxes.

    Returns:
        (N, M) areas, the kind of ``a``; exact polygon clipping in float64.
    """
    return _like(_bev_intersection_kernel(_to_float64_numpy("a", a, 5), _to_float64_numpy("b", b, 5)), a)


def bev_iou(a: ArrayOrTensor, b: ArrayOrTensor) -> ArrayOrTensor:
    """Rotated IoU in bird's-eye view.

    Args:
        a: (N, 5) BEV boxes ``(x, z, l, w, ry)`` (metres, radians).
        b: (M, 5) BEV boxes.

    Returns:
        (N, M) IoU in [0, 1] (0 for degenerate boxes), the kind of ``a``.
    """
    boxes_a, boxes_b = _to_float64_numpy("a", a, 5), _to_float64_numpy("b", b, 5)
    intersection = _bev_intersection_kernel(boxes_a, boxes_b)
    area_a = np.abs(boxes_a[:, 2] * boxes_a[:, 3])
    area_b = np.abs(boxes_b[:, 2] * boxes_b[:, 3])
    union = area_a[:, None] + area_b[None, :] - intersection
    return _like(_safe_divide(intersection, union), a)


def box3d_iou(a: ArrayOrTensor, b: ArrayOrTensor) -> ArrayOrTensor:
    """3D IoU of yaw-rotated boxes: BEV intersection × vertical overlap / union of volumes.

    Args:
        a: (N, 7) boxes ``(x, y, z, h, w, l, ry)``, bottom-centre convention; box k spans ``y ∈ [y - h, y]``.
        b: (M, 7) boxes.

    Returns:
        (N, M) IoU in [0, 1] (0 for degenerate boxes), the kind of ``a``.
    """
    boxes_a, boxes_b = _to_float64_numpy("a", a, 7), _to_float64_numpy("b", b, 7)
    bev_a = np.ascontiguousarray(boxes3d_to_bev(boxes_a))
    bev_b = np.ascontiguousarray(boxes3d_to_bev(boxes_b))
    ground_area = _bev_intersection_kernel(bev_a, bev_b)
    bottom_a, top_a = boxes_a[:, 1], boxes_a[:, 1] - boxes_a[:, 3]
    bottom_b, top_b = boxes_b[:, 1], boxes_b[:, 1] - boxes_b[:, 3]
    vertical = np.minimum(bottom_a[:, None], bottom_b[None, :]) - np.maximum(top_a[:, None], top_b[None, :])
    intersection = ground_area * np.clip(vertical, 0.0, None)
    volume_a = np.abs(boxes_a[:, 3] * boxes_a[:, 4] * boxes_a[:, 5])
    volume_b = np.abs(boxes_b[:, 3] * boxes_b[:, 4] * boxes_b[:, 5])
    union = volume_a[:, None] + volume_b[None, :] - intersection
    return _like(_safe_divide(intersection, union), a)
