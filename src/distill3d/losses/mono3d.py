"""Losses of weakly supervised monocular 3D detection (SKD-WM3D, Jiang et al. CVPR 2024; METHODS.md §3).

Plain functions on plain tensors; device and dtype come from the inputs; everything is vectorised over objects,
points and pixels. Conventions (KITTI rectified camera frame, metres, radians; :mod:`distill3d.geometry.boxes3d`):

* A 3D box is described here by its GEOMETRIC centre ``centre = (x, y − h/2, z)`` (N, 3), its dimensions
  ``dims = (h, w, l)`` (N, 3) and its yaw ``ry`` (N,): the head predicts the projected centre and lifts it, so the
  bottom-centre ``(x, y, z)`` of the KITTI label is ``centre + (0, h/2, 0)``. At ``ry = 0`` the length runs along
  +x and the width along +z.
* 2D boxes are ``(x1, y1, x2, y2)`` in INPUT-IMAGE pixels; pixel centres sit at integer coordinates (pixel (row i,
  column j) covers ``u ∈ [j − ½, j + ½)``; :mod:`distill3d.geometry.camera`).
* Depth maps (B, H, W) hold z in metres; a pixel is valid when its depth is finite and > 0 (and below
  ``max_depth`` where given: the road world's estimator writes its ``max_depth`` into the sky).
* Every loss returns a 0-dim tensor (``reduction="none"`` gives per-element values instead); with no objects
  (N = 0) it returns an exact 0 that is still connected to the inputs' graph, never NaN.

What the paper does not specify — the weak-supervision losses' exact form, the soft margin, where the uncertainty
comes from, the modulation rule — is reconstructed after METHODS.md §3.2 and marked "[reconstruction, METHODS.md
§3.2]" in the docstrings. Switching losses on and off is the method's job, not this module's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F

from distill3d.errors import ShapeError, check_shape
from distill3d.geometry.boxes3d import box3d_corners
from distill3d.geometry.camera import backproject

__all__ = [
    "box_depth_target",
    "covered_by_nearer_boxes",
    "dimension_prior_loss",
    "focal_heatmap_loss",
    "heatmap_distillation_loss",
    "laplacian_l1",
    "point_box_alignment_loss",
    "projection_consistency_loss",
    "reduce_loss",
    "scale_gradients",
    "surface_points",
    "transfer_modulation_coefficients",
    "uncertainty_distillation_loss",
]

_SQRT2 = math.sqrt(2.0)


def reduce_loss(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """``mean`` (0 when empty, not NaN), ``sum`` or ``none`` of ``values``."""
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    if reduction == "mean":
        return values.sum() / max(values.numel(), 1)
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_boxes(centre: torch.Tensor, dims: torch.Tensor, ry: torch.Tensor) -> int:
    """Number of objects N after checking centre (N, 3), dims (N, 3), ry (N,)."""
    check_shape("centre", centre, (None, 3))
    count = centre.shape[0]
    check_shape("dims", dims, (count, 3))
    check_shape("ry", ry, (count,))
    return count


# ----------------------------------------------------------------------------------------------------------
# Heat map and regression losses
# ----------------------------------------------------------------------------------------------------------


def focal_heatmap_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 2.0,
                       beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced pixel-wise focal loss (Zhou et al. 2019, eq. 1) on heat-map LOGITS.

    With ``p = sigmoid(logits)`` and the Gaussian-splatted target ``y`` (1 exactly at an object's centre cell):
    ``L = −(1/N_obj) Σ [ y = 1 ] (1 − p)^α log p + [ y < 1 ] (1 − y)^β p^α log(1 − p)``, N_obj = number of cells
    with ``y = 1`` (the number of objects; the sum is not divided when there is none). ``log p`` and
    ``log(1 − p)`` are computed as log-sigmoids, so saturated logits stay finite.

    Args:
        logits: (B, C, h, w) heat-map logits (any shape works; the target must match).
        targets: (B, C, h, w) targets in [0, 1].
        alpha, beta: focusing and penalty-reduction exponents (2 and 4 in CenterNet / monodle).

    Returns:
        0-dim loss in the logits' dtype.
    """
    if logits.shape != targets.shape:
        raise ShapeError(f"logits and targets must have the same shape, got {tuple(logits.shape)} and "
                         f"{tuple(targets.shape)}")
    targets = targets.to(logits.dtype)
    probability = torch.sigmoid(logits)
    positive = targets >= 1.0
    positive_term = (1.0 - probability).pow(alpha) * F.logsigmoid(logits)
    negative_term = (1.0 - targets).pow(beta) * probability.pow(alpha) * F.logsigmoid(-logits)
    total = torch.where(positive, positive_term, negative_term).sum()
    return -total / positive.sum().clamp(min=1).to(logits.dtype)


def heatmap_distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                              num_objects: int | torch.Tensor) -> torch.Tensor:
    """Dense transfer of a teacher's heat map: the binary KL divergence ``KL(sg(p_t) ‖ p_s)`` of the per-cell
    object probabilities ``p = sigmoid(logits)``, summed over every cell and class and divided by the number of
    objects (as :func:`focal_heatmap_loss`, so the two have comparable scales). It is 0 when the maps agree.
    [ours: the paper transfers "3D-like" knowledge without a stated form; a dense heat-map transfer is the
    detection-level counterpart of the box-attribute transfer.]

    Args:
        student_logits: (B, C, h, w) heat-map logits of the student (MDN).
        teacher_logits: (B, C, h, w) logits of the teacher (DSN); detached here.
        num_objects: objects in the batch (the divisor; at least 1).

    Returns:
        0-dim loss in the student's dtype.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ShapeError(f"student and teacher heat maps must have the same shape, got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")
    teacher_logits = teacher_logits.detach().to(student_logits.dtype)
    p_teacher = torch.sigmoid(teacher_logits)
    kl = (p_teacher * (F.logsigmoid(teacher_logits) - F.logsigmoid(student_logits))
          + (1 - p_teacher) * (F.logsigmoid(-teacher_logits) - F.logsigmoid(-student_logits)))
    count = torch.as_tensor(num_objects, dtype=student_logits.dtype, device=student_logits.device).clamp(min=1)
    return kl.sum() / count


def laplacian_l1(pred: torch.Tensor, target: torch.Tensor, log_sigma: torch.Tensor,
                 reduction: str = "mean") -> torch.Tensor:
    """Laplacian aleatoric-uncertainty L1 (Kendall & Gal 2017; GUPNet / MonoFlex depth loss).

    ``L = √2 · |pred − target| · exp(−log σ) + log σ`` per element — the negative log-likelihood of a Laplace
    distribution with scale ``σ/√2`` up to a constant. The prediction and ``log σ`` both receive gradients; the
    target is used as given (detach it first if it is itself a prediction).

    Args:
        pred, target, log_sigma: tensors of one shape (e.g. (N,) object depths in metres and their log σ).
        reduction: ``mean`` (over elements; 0 when empty), ``sum`` or ``none``.
    """
    if not (pred.shape == target.shape == log_sigma.shape):
        raise ShapeError(f"pred, target and log_sigma must have one shape, got {tuple(pred.shape)}, "
                         f"{tuple(target.shape)} and {tuple(log_sigma.shape)}")
    values = _SQRT2 * (pred - target).abs() * torch.exp(-log_sigma) + log_sigma
    return reduce_loss(values, reduction)


def dimension_prior_loss(log_ratio: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Class size prior: L1 of the predicted log-ratio to the class mean dimensions, ``|log(dims / mean)|``.

    The weak setting has no 3D sizes, so the sizes are pulled towards the class means (car ≈ 1.53 × 1.63 × 3.88 m);
    the projection and alignment losses move them away where the image supports it.
    [reconstruction, METHODS.md §3.2: "dimension priors per class are common regularisers"; the form is ours.]

    Args:
        log_ratio: (N, 3) predicted ``log((h, w, l) / class mean)``.
        reduction: ``mean`` (over the N·3 values; 0 when N = 0), ``sum`` or ``none``.
    """
    check_shape("log_ratio", log_ratio, (None, 3))
    return reduce_loss(log_ratio.abs(), reduction)


# ----------------------------------------------------------------------------------------------------------
# Projection consistency
# ----------------------------------------------------------------------------------------------------------


def _projected_box2d(centre: torch.Tensor, dims: torch.Tensor, ry: torch.Tensor, projection: torch.Tensor,
                     min_depth: float) -> torch.Tensor:
    """(N, 4) box enclosing the projected 8 corners; projective depths are clamped to ``min_depth`` (metres)."""
    bottom = centre + torch.stack([torch.zeros_like(dims[:, 0]), dims[:, 0] / 2, torch.zeros_like(dims[:, 0])], 1)
    corners = box3d_corners(torch.cat([bottom, dims, ry[:, None]], dim=1))  # (N, 8, 3), differentiable
    homogeneous = corners @ projection[:, :, :3].transpose(1, 2) + projection[:, None, :, 3]  # (N, 8, 3)
    uv = homogeneous[..., :2] / homogeneous[..., 2:].clamp(min=min_depth)
    return torch.cat([uv.amin(dim=1), uv.amax(dim=1)], dim=1)


def _giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N,) ``1 − GIoU`` of paired boxes (N, 4) ``(x1, y1, x2, y2)`` (Rezatofighi et al. 2019)."""
    tiny = torch.finfo(pred.dtype).eps
    width = (torch.minimum(pred[:, 2], target[:, 2]) - torch.maximum(pred[:, 0], target[:, 0])).clamp(min=0)
    height = (torch.minimum(pred[:, 3], target[:, 3]) - torch.maximum(pred[:, 1], target[:, 1])).clamp(min=0)
    intersection = width * height
    area_pred = (pred[:, 2] - pred[:, 0]).clamp(min=0) * (pred[:, 3] - pred[:, 1]).clamp(min=0)
    area_target = (target[:, 2] - target[:, 0]).clamp(min=0) * (target[:, 3] - target[:, 1]).clamp(min=0)
    union = area_pred + area_target - intersection
    hull = ((torch.maximum(pred[:, 2], target[:, 2]) - torch.minimum(pred[:, 0], target[:, 0]))
            * (torch.maximum(pred[:, 3], target[:, 3]) - torch.minimum(pred[:, 1], target[:, 1])))
    iou = intersection / union.clamp(min=tiny)
    return 1.0 - iou + (hull - union) / hull.clamp(min=tiny)


def projection_consistency_loss(centre: torch.Tensor, dims: torch.Tensor, ry: torch.Tensor, P: torch.Tensor,
                                boxes2d: torch.Tensor, image_size: tuple[int, int] | None = None,
                                mode: str = "l1", min_depth: float = 0.1, reduction: str = "mean") -> torch.Tensor:
    """2D-3D projection consistency: the projected 3D box must fill the annotated 2D box.

    The 8 corners of each predicted box are projected with ``P`` (differentiably), their enclosing box
    ``b̂ = [min u, min v, max u, max v]`` is clipped to the image and compared with the 2D box ``b``:

    * ``mode="l1"``: ``(|x̂1 − x1| + |x̂2 − x2|)/(4·w) + (|ŷ1 − y1| + |ŷ2 − y2|)/(4·h)`` with the target's width
      and height ``w, h`` (at least 1 px): the mean coordinate error as a fraction of the box size, so near and
      far objects weigh alike;
    * ``mode="giou"``: ``1 − GIoU(b̂, b)``.

    Corners at or behind the camera have their projective depth clamped to ``min_depth`` (a near-plane
    stand-in: they land far outside the image and are clipped), so the loss stays finite for any box.
    This alone leaves depth and size ambiguous (a larger, farther box projects alike); the depth target and the
    size prior resolve it. [reconstruction, METHODS.md §3.2: "L_proj = L1/GIoU(b̂_2D, b_2D^gt)" — the
    normalisation and the near-plane clamp are ours.]

    Args:
        centre: (N, 3) geometric box centres ``(x, y − h/2, z)`` in metres.
        dims: (N, 3) ``(h, w, l)`` in metres.
        ry: (N,) yaw in radians.
        P: (N, 3, 4) projection of each object's image (input pixels), or one (3, 4) / (3, 3) matrix for all.
        boxes2d: (N, 4) annotated 2D boxes in input pixels.
        image_size: ``(width, height)`` of the input image; the projected box is clipped to
            ``[0, width − 1] × [0, height − 1]`` (the KITTI label convention). ``None`` disables clipping.
        mode: ``"l1"`` or ``"giou"``.
        min_depth: near plane in metres.
        reduction: ``mean`` over objects (0 when N = 0), ``sum`` or ``none`` ((N,) per object).
    """
    count = _check_boxes(centre, dims, ry)
    check_shape("boxes2d", boxes2d, (count, 4))
    if mode not in ("l1", "giou"):
        raise ValueError(f"mode must be 'l1' or 'giou', got {mode!r}")
    projection = P.to(centre.dtype)
    if projection.shape in ((3, 3), (3, 4)):
        projection = projection.expand(count, *projection.shape)
    if projection.dim() != 3 or projection.shape[:2] != (count, 3) or projection.shape[2] not in (3, 4):
        raise ShapeError(f"P must be (N, 3, 4), (3, 4) or (3, 3) with N = {count}, got {tuple(P.shape)}")
    if projection.shape[2] == 3:
        projection = torch.cat([projection, projection.new_zeros(count, 3, 1)], dim=2)
    target = boxes2d.to(centre.dtype)
    predicted = _projected_box2d(centre, dims, ry, projection, min_depth)
    if image_size is not None:
        width, height = image_size
        upper = predicted.new_tensor([width - 1, height - 1, width - 1, height - 1])
        predicted = torch.minimum(predicted.clamp(min=0.0), upper)
    if mode == "giou":
        values = _giou_loss(predicted, target)
    else:
        size = (target[:, 2:] - target[:, :2]).clamp(min=1.0).repeat(1, 2)  # (N, 4): w, h, w, h
        values = ((predicted - target).abs() / size).mean(dim=1)
    return reduce_loss(values, reduction)


# ----------------------------------------------------------------------------------------------------------
# Depth-map cues: object depth targets and surface points
# ----------------------------------------------------------------------------------------------------------


def covered_by_nearer_boxes(uv: torch.Tensor, boxes2d: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
    """(N, P) bool: sample ``uv[n, p]`` (input px) of box n lies inside another box of the same image whose bottom
    edge is lower (``y2`` larger) — on a ground plane seen from above, a nearer object that may hide box n there.

    The depth estimate at such a sample is probably the occluder's, not the object's (measured on the road world's
    validation frames: the median-depth target of partly occluded cars is 17 % too near with these samples and
    5 % with them dropped). Uses only the 2D boxes, so it is allowed in the weak setting. Cost: N² · P booleans.
    [reconstruction, ours: METHODS.md §3.2 asks for "a robust statistic" of the depth inside the box.]

    Args:
        uv: (N, P, 2) sample positions of each box.
        boxes2d: (N, 4) boxes ``(x1, y1, x2, y2)``.
        batch_index: (N,) image of each box.
    """
    boxes = boxes2d.to(uv.dtype)
    same_image = batch_index[:, None] == batch_index[None, :]
    occluder = same_image & (boxes[None, :, 3] > boxes[:, None, 3])  # (N, M): box m is nearer than box n
    u, v = uv[:, None, :, 0], uv[:, None, :, 1]  # (N, 1, P)
    inside = ((u >= boxes[None, :, None, 0]) & (u <= boxes[None, :, None, 2])
              & (v >= boxes[None, :, None, 1]) & (v <= boxes[None, :, None, 3]))  # (N, M, P)
    return (inside & occluder[:, :, None]).any(dim=1)


def _sample_in_boxes(depth_map: torch.Tensor, boxes2d: torch.Tensor, batch_index: torch.Tensor, grid: int,
                     shrink: float, max_depth: float | None,
                     exclude_nearer_boxes: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest-pixel depth on a ``grid × grid`` lattice of cell centres inside each box shrunk by ``shrink`` per side.

    Returns ``uv`` (N, g², 2) sample positions (input pixels), ``depth`` (N, g²) metres and ``valid`` (N, g²).
    A nearest-pixel read (an index gather, like ``grid_sample(mode="nearest")`` without copying the map per box)
    never blends an object's depth with the background's across a depth edge, as bilinear sampling would. With
    ``exclude_nearer_boxes`` the samples inside nearer objects' boxes are invalid (:func:`covered_by_nearer_boxes`).
    """
    check_shape("depth_map", depth_map, (None, None, None))
    check_shape("boxes2d", boxes2d, (None, 4))
    count = boxes2d.shape[0]
    check_shape("batch_index", batch_index, (count,))
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    if not 0.0 <= shrink < 0.5:
        raise ValueError(f"shrink must be in [0, 0.5), got {shrink}")
    _, height, width = depth_map.shape
    dtype = depth_map.dtype if depth_map.is_floating_point() else torch.float32
    boxes = boxes2d.to(dtype)
    size = boxes[:, 2:] - boxes[:, :2]  # (N, 2)
    low = boxes[:, :2] + shrink * size
    steps = (torch.arange(grid, dtype=dtype, device=depth_map.device) + 0.5) / grid  # cell centres in (0, 1)
    fraction = torch.stack(torch.meshgrid(steps, steps, indexing="xy"), dim=-1).reshape(-1, 2)  # (g², 2): (u, v)
    uv = low[:, None, :] + fraction[None] * ((1.0 - 2.0 * shrink) * size)[:, None, :]  # (N, g², 2)
    pixel = torch.floor(uv + 0.5)  # nearest pixel centre
    inside = (pixel[..., 0] >= 0) & (pixel[..., 0] <= width - 1) & (pixel[..., 1] >= 0) & (pixel[..., 1] <= height - 1)
    column = pixel[..., 0].clamp(0, width - 1).long()
    row = pixel[..., 1].clamp(0, height - 1).long()
    depth = depth_map.to(dtype)[batch_index.long()[:, None], row, column]  # (N, g²)
    valid = inside & torch.isfinite(depth) & (depth > 0)
    if max_depth is not None:
        valid = valid & (depth < max_depth)
    if exclude_nearer_boxes and count:
        valid = valid & ~covered_by_nearer_boxes(uv, boxes2d, batch_index)
    return uv, depth, valid


def box_depth_target(depth_map: torch.Tensor, boxes2d: torch.Tensor, batch_index: torch.Tensor,
                     quantile: float = 0.3, shrink: float = 0.2, grid: int = 16,
                     max_depth: float | None = None, exclude_nearer_boxes: bool = False) -> torch.Tensor:
    """Robust object depth from a depth ESTIMATE: a low quantile of the valid depths inside the shrunk 2D box.

    The box is shrunk by ``shrink`` of its width / height on every side (so mostly the object, little background
    remains), sampled on a ``grid × grid`` lattice of cell centres (nearest pixel), invalid samples (depth ≤ 0,
    non-finite, ≥ ``max_depth``, outside the image) dropped, and ``torch.nanquantile`` taken. A low quantile
    prefers the object's visible front over the background seen past its edges; it estimates the depth of the
    visible surface, which is nearer than the box centre by up to half the object's extent.
    [reconstruction, METHODS.md §3.2: "a robust statistic (e.g. median / lower percentile) of the pseudo-depth
    inside the 2D box"; the shrink, the lattice and the default quantile are ours.]

    Args:
        depth_map: (B, H, W) estimated depth in metres.
        boxes2d: (N, 4) boxes ``(x1, y1, x2, y2)`` in the depth map's pixels.
        batch_index: (N,) image of each box.
        quantile: in [0, 1].
        shrink: fraction of the box size removed on each side, in [0, 0.5).
        grid: lattice side (``grid²`` samples per box).
        max_depth: samples at or beyond it are invalid (the road world's estimator fills the sky with 80 m).
        exclude_nearer_boxes: drop samples inside the boxes of nearer objects (:func:`covered_by_nearer_boxes`).

    Returns:
        (N,) depths in metres in the depth map's floating dtype; NaN for a box without a valid sample. Not a
        differentiable quantity of any prediction: use it as a target.
    """
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    _, depth, valid = _sample_in_boxes(depth_map, boxes2d, batch_index, grid, shrink, max_depth, exclude_nearer_boxes)
    if depth.shape[0] == 0:
        return depth.new_zeros(0)
    masked = torch.where(valid, depth, torch.full_like(depth, float("nan")))
    return torch.nanquantile(masked, quantile, dim=1)


def surface_points(depth_map: torch.Tensor, boxes2d: torch.Tensor, batch_index: torch.Tensor, K: torch.Tensor,
                   grid: int = 8, shrink: float = 0.1, depth_tolerance: float | None = 2.5,
                   max_depth: float | None = None,
                   exclude_nearer_boxes: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-frame points of the depth estimate inside each 2D box: the "3D-like" cue of SKD-WM3D.

    Each box (shrunk by ``shrink`` per side) is sampled on a ``grid × grid`` lattice (nearest pixel) and the
    valid samples are lifted with ``X = z·K⁻¹(u, v, 1)`` (:func:`distill3d.geometry.camera.backproject`). With
    ``depth_tolerance`` a sample is also dropped when its depth is farther than that many metres from the box's
    median valid depth: background seen past the object (road, far buildings) would otherwise pull the
    point-to-box alignment. WeakM3D lifts LiDAR points of the RoI instead; here the only 3D cue is the depth
    estimate. [reconstruction, METHODS.md §3.2; the sampling and the filter are ours.]

    Args:
        depth_map: (B, H, W) estimated depth in metres.
        boxes2d: (N, 4) boxes in the depth map's pixels.
        batch_index: (N,) image of each box.
        K: (B, 3, 3) intrinsics of the depth map's images.
        grid, shrink, max_depth, exclude_nearer_boxes: as in :func:`box_depth_target`.
        depth_tolerance: metres around the box median depth that a point may lie; ``None`` keeps every valid one.

    Returns:
        ``points`` (N, grid², 3) in metres (0 where invalid) and ``valid`` (N, grid²) bool.
    """
    check_shape("K", K, (depth_map.shape[0], 3, 3))
    uv, depth, valid = _sample_in_boxes(depth_map, boxes2d, batch_index, grid, shrink, max_depth,
                                        exclude_nearer_boxes)
    if depth_tolerance is not None and depth.shape[0] > 0:
        median = torch.nanquantile(torch.where(valid, depth, torch.full_like(depth, float("nan"))), 0.5, dim=1)
        valid = valid & ((depth - median[:, None]).abs() <= depth_tolerance)
    depth = torch.where(valid, depth, torch.zeros_like(depth))
    points = backproject(uv, depth, K.to(uv.dtype)[batch_index.long()])
    return points, valid


# ----------------------------------------------------------------------------------------------------------
# Point-to-box alignment
# ----------------------------------------------------------------------------------------------------------


def _visible_edge_distance(along: torch.Tensor, across: torch.Tensor, dims: torch.Tensor,
                           camera_along: torch.Tensor, camera_across: torch.Tensor) -> torch.Tensor:
    """(N, P) distance of box-frame points (N, P) to the footprint edges that face the camera (box-frame camera
    position (N, 1)); all four edges when the camera is inside the footprint."""
    half_length, half_width = dims[:, None, 2] / 2, dims[:, None, 1] / 2
    beyond_width = (across.abs() - half_width).clamp(min=0).square()
    beyond_length = (along.abs() - half_length).clamp(min=0).square()
    distances = torch.stack([(along - half_length).square() + beyond_width,  # edge a = +l/2
                             (along + half_length).square() + beyond_width,  # edge a = −l/2
                             (across - half_width).square() + beyond_length,  # edge b = +w/2
                             (across + half_width).square() + beyond_length], dim=-1)  # edge b = −w/2
    faces = torch.stack([camera_along > half_length, camera_along < -half_length,
                         camera_across > half_width, camera_across < -half_width], dim=-1)  # (N, 1, 4)
    faces = faces | ~faces.any(dim=-1, keepdim=True)
    nearest = torch.where(faces, distances, torch.full_like(distances, float("inf"))).amin(dim=-1)
    return torch.sqrt(nearest + 1e-12)  # finite gradient at 0


def point_box_alignment_loss(centre: torch.Tensor, dims: torch.Tensor, ry: torch.Tensor, points: torch.Tensor,
                             valid: torch.Tensor, beta: float = 0.1, reduction: str = "mean",
                             visible_edges_only: bool = False) -> torch.Tensor:
    """Bird's-eye-view alignment of a predicted box with the object's surface points (WeakM3D-style).

    Every valid point ``(x, z)`` is moved into the frame of the box footprint (``a = cos·dx − sin·dz``,
    ``b = sin·dx + cos·dz`` with ``d`` the offset from the box centre; the footprint is ``|a| ≤ l/2``,
    ``|b| ≤ w/2``) and its distance to the footprint's BOUNDARY is taken — the exact rectangle distance, so a
    point inside the box counts by its distance to the nearest edge and one outside by its distance to the
    rectangle. The loss is the smooth L1 (``beta`` metres) of these distances, averaged over each box's valid
    points and then over the boxes that have any. Visible surface points lie on the footprint's edges, so it
    gives x, z, w, l and yaw a weak signal (y and h get none). WeakM3D (Peng et al. ICLR 2022) aligns LiDAR
    points by ray tracing to the box; here the points come from the depth estimate (:func:`surface_points`).
    With ``visible_edges_only`` the distance is to the nearest footprint edge that FACES THE CAMERA (the camera at
    the origin), closer to WeakM3D's ray-traced surface: a point behind the visible faces no longer pulls a hidden
    side edge inwards, which with noisy depth points made boxes narrow and long.
    [reconstruction, METHODS.md §3.2; the distance-to-edge form is ours.]

    Args:
        centre: (N, 3) geometric box centres in metres (only x and z are used).
        dims: (N, 3) ``(h, w, l)`` in metres.
        ry: (N,) yaw in radians.
        points: (N, P, 3) camera-frame points in metres.
        valid: (N, P) bool mask of the points to use.
        beta: smooth-L1 transition in metres.
        reduction: ``mean`` over boxes with a valid point (0 when none), ``sum`` or ``none`` ((N,) per box, 0
            for a box without valid points).
        visible_edges_only: measure to the camera-facing edges only (see above).
    """
    count = _check_boxes(centre, dims, ry)
    check_shape("points", points, (count, None, 3))
    check_shape("valid", valid, (count, points.shape[1]))
    valid = valid.bool()
    offset_x = points[..., 0].to(centre.dtype) - centre[:, None, 0]
    offset_z = points[..., 2].to(centre.dtype) - centre[:, None, 2]
    cos, sin = torch.cos(ry)[:, None], torch.sin(ry)[:, None]
    along = (cos * offset_x - sin * offset_z).abs() - dims[:, None, 2] / 2  # beyond the length edge (>0 outside)
    across = (sin * offset_x + cos * offset_z).abs() - dims[:, None, 1] / 2  # beyond the width edge
    outside_squared = along.clamp(min=0).square() + across.clamp(min=0).square()
    is_outside = outside_squared > 0
    # sqrt with a zero gradient (not NaN) at 0: the argument is replaced by 1 where it is 0.
    outside = torch.where(is_outside, torch.sqrt(torch.where(is_outside, outside_squared, 1.0)), 0.0)
    inside = torch.maximum(along, across).clamp(max=0).neg()
    distance = outside + inside
    if visible_edges_only:
        signed_along = cos * offset_x - sin * offset_z
        signed_across = sin * offset_x + cos * offset_z
        camera_along = cos * -centre[:, None, 0] - sin * -centre[:, None, 2]
        camera_across = sin * -centre[:, None, 0] + cos * -centre[:, None, 2]
        distance = _visible_edge_distance(signed_along, signed_across, dims, camera_along, camera_across)
    per_point = F.smooth_l1_loss(distance, torch.zeros_like(distance), beta=beta, reduction="none")
    per_point = torch.where(valid, per_point, torch.zeros_like(per_point))
    points_per_box = valid.sum(dim=1)
    per_box = per_point.sum(dim=1) / points_per_box.clamp(min=1).to(per_point.dtype)
    if reduction == "none":
        return per_box
    if reduction == "sum":
        return per_box.sum()
    if reduction == "mean":
        return per_box.sum() / (points_per_box > 0).sum().clamp(min=1).to(per_box.dtype)
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


# ----------------------------------------------------------------------------------------------------------
# Self-distillation: uncertainty-aware loss and gradient-targeted transfer modulation
# ----------------------------------------------------------------------------------------------------------


def uncertainty_distillation_loss(student: torch.Tensor, teacher: torch.Tensor,
                                  teacher_log_sigma: torch.Tensor | None = None, margin: float = 0.0,
                                  reduction: str = "mean") -> torch.Tensor:
    """Uncertainty-aware distillation from the DSN (teacher) to the MDN (student) at matched objects.

    ``L = √2 · max(0, |s − sg(t)| − m) · exp(−sg(log σ)) + sg(log σ)`` per element, with ``sg`` the stop-gradient:
    the student is pulled towards the teacher only beyond a soft margin ``m`` and less where the teacher is
    uncertain. With ``teacher_log_sigma=None`` it is the plain margin L1 ``max(0, |s − sg(t)| − m)``. The
    teacher and its σ are detached: the DSN learns σ from its own Laplacian task loss, and the constant
    ``log σ`` term only keeps the value a Laplacian negative log-likelihood.
    [reconstruction, METHODS.md §3.2: the paper names an uncertainty-aware loss with a "soft margin" (its
    Eq. 4) but not its form; this is the Laplacian-uncertainty form proposed there.]

    Args:
        student: (N, K) MDN attributes at the matched objects (depth, offsets, dimensions, orientation, …).
        teacher: (N, K) DSN attributes at the same objects.
        teacher_log_sigma: (N, K) log σ of the teacher's attributes (or broadcastable to (N, K)), or ``None``.
        margin: soft margin m ≥ 0, in the attributes' units.
        reduction: ``mean`` over the N·K elements (0 when N = 0), ``sum`` or ``none``.
    """
    if student.shape != teacher.shape:
        raise ShapeError(f"student and teacher must have the same shape, got {tuple(student.shape)} and "
                         f"{tuple(teacher.shape)}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    excess = ((student - teacher.detach().to(student.dtype)).abs() - margin).clamp(min=0)
    if teacher_log_sigma is None:
        return reduce_loss(excess, reduction)
    log_sigma = teacher_log_sigma.detach().to(student.dtype).expand_as(student)
    return reduce_loss(_SQRT2 * excess * torch.exp(-log_sigma) + log_sigma, reduction)


def transfer_modulation_coefficients(loss_student: torch.Tensor | float, loss_teacher: torch.Tensor | float,
                                     alpha: float = 1.0, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient-targeted transfer modulation: gradient scales that keep the DSN and the MDN learning in step.

    ``ρ = L_MDN / L_DSN`` (task losses of the student MDN and the teacher DSN). The branch whose loss is lower
    learns faster and has its gradients scaled down, the other keeps them (OGM-GE, Peng et al. CVPR 2022):

    * ``ρ > 1`` (the DSN is ahead): ``k_DSN = 1 − tanh(α·(ρ − 1))``, ``k_MDN = 1``;
    * ``ρ < 1`` (the MDN is ahead): ``k_MDN = 1 − tanh(α·(1/ρ − 1))``, ``k_DSN = 1``;
    * ``ρ = 1``: both 1.

    Both coefficients lie in [0, 1]. Non-finite losses give (1, 1) (no modulation). OGM-GE's extra Gaussian
    gradient noise is not included. [reconstruction, METHODS.md §3.2: the paper says only that the modulation
    "synchronises the learning paces of DSN and MDN"; the rule and its symmetric form are ours.]

    Args:
        loss_student: L_MDN (a 0-dim tensor or a float; detached).
        loss_teacher: L_DSN.
        alpha: modulation strength α ≥ 0.
        eps: added to both losses before the ratio.

    Returns:
        ``(k_teacher, k_student)``: 0-dim tensors on the losses' device (float dtype of ``loss_student``).
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    reference = loss_student if isinstance(loss_student, torch.Tensor) else loss_teacher
    if isinstance(reference, torch.Tensor):
        dtype = reference.dtype if reference.is_floating_point() else torch.get_default_dtype()
        device = reference.device
    else:
        dtype, device = torch.get_default_dtype(), None
    student = torch.as_tensor(loss_student, dtype=dtype, device=device).detach().reshape(())
    teacher = torch.as_tensor(loss_teacher, dtype=dtype, device=device).detach().reshape(())
    ratio = (student.clamp(min=0) + eps) / (teacher.clamp(min=0) + eps)
    finite = torch.isfinite(ratio)
    ratio = torch.where(finite, ratio, torch.ones_like(ratio))
    slowdown_teacher = 1.0 - torch.tanh(alpha * (ratio - 1.0).clamp(min=0))
    slowdown_student = 1.0 - torch.tanh(alpha * (1.0 / ratio - 1.0).clamp(min=0))
    return slowdown_teacher.clamp(0.0, 1.0), slowdown_student.clamp(0.0, 1.0)


@torch.no_grad()
def scale_gradients(parameters: Iterable[torch.nn.Parameter] | torch.nn.Module,
                    k: torch.Tensor | float) -> None:
    """Multiply the ``.grad`` of every parameter (that has one) by ``k`` in place.

    Call it between ``backward()`` and the optimiser step, with a coefficient of
    :func:`transfer_modulation_coefficients` and one branch's parameters (a module is read as its parameters).
    """
    if isinstance(parameters, torch.nn.Module):
        parameters = parameters.parameters()
    if not isinstance(k, torch.Tensor) and k == 1.0:
        return
    for parameter in parameters:
        if parameter.grad is not None:
            parameter.grad.mul_(k.to(parameter.grad.device) if isinstance(k, torch.Tensor) else k)
