"""Encodings of a CenterNet-style monocular 3D detector (SMOKE / monodle / GUPNet family) and their inverses.

A detector predicts dense maps at output stride ``s`` (4 by default; map cell ``(x, y)`` covers input pixels
``[s·x, s·x + s) × [s·y, s·y + s)`` in the CenterNet convention ``cell = floor(uv / s)``):

* ``heatmap`` (B, C, h, w) logits of the 2D box centre of each class (CenterNet, Zhou et al. 2019);
* ``size2d`` (B, 2, h, w) 2D box (width, height) in input pixels; ``offset2d`` (B, 2, h, w) the sub-cell
  position of the 2D box centre, ``uv_2d / s − cell``; ``offset3d`` (B, 2, h, w) the projected 3D box centre
  minus the same integer cell, ``uv_3d / s − cell`` (monodle's ``offset_3d``), in cells;
* ``depth`` (B, 1, h, w) raw, metres ``z = 1/σ(raw) − 1 = exp(−raw)`` (:func:`depth_from_raw`);
  ``depth_log_sigma`` (B, 1, h, w) log of its Laplacian scale;
* ``dimensions`` (B, 3, h, w) log-ratio to the class mean ``(h, w, l)``: ``dims = mean[class]·exp(value)``;
* ``orientation`` (B, 2·n, h, w): n bin logits, then n residuals (radians) of the observation angle ``alpha``
  (Mousavian et al. 2017's MultiBin as in monodle: bin k is centred on ``k·2π/n``).

Geometry (the KITTI camera convention of :mod:`distill3d.geometry.boxes3d`): a box is ``(x, y, z, h, w, l, ry)``
with ``(x, y, z)`` its BOTTOM centre; its geometric centre is ``(x, y − h/2, z)``. The heat map and ``offset2d``
mark the 2D box centre; ``offset3d`` and ``depth`` describe the geometric centre (``depth`` is its z, metres),
read at the 2D centre's cell. ``ry = alpha + atan2(x, z)``.

Cameras: every function that lifts or projects takes either intrinsics ``K`` (…, 3, 3) or a projection
``P = K·[I | t]`` (…, 3, 4) (KITTI's ``P2``: label frame → image, with the stereo offset ``t``); with ``P`` a
point ``X`` of the label frame projects as ``P·[X; 1]`` and the predicted depth is still its label-frame z.

All functions are pure, vectorised tensor functions; device and dtype follow the inputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from distill3d.errors import ShapeError, check_shape
from distill3d.geometry.boxes3d import alpha_to_rotation_y
from distill3d.geometry.camera import backproject

__all__ = [
    "alpha_to_bins",
    "bins_to_alpha",
    "bottom_centre",
    "box_centre",
    "centre_behind_surface",
    "decode_detections",
    "depth_from_raw",
    "dimensions_from_log_ratio",
    "gather_at",
    "gaussian_radius",
    "heatmap_targets",
    "l_shape_heading",
    "lift_centre",
    "log_ratio_from_dimensions",
    "metric_depth",
    "offset3d_targets",
    "project_centre",
    "raw_from_depth",
    "soft_bins_to_alpha",
]


# ----------------------------------------------------------------------------------------------------------
# Depth, dimensions, orientation
# ----------------------------------------------------------------------------------------------------------


def depth_from_raw(raw: torch.Tensor) -> torch.Tensor:
    """Depth in metres from the raw head output (any shape): ``z = 1/σ(raw) − 1`` (CenterNet / monodle).

    Since ``1/σ(r) − 1 = e^{−r}`` exactly, it is computed as ``exp(−raw)`` (no cancellation for small depths).
    """
    return torch.exp(-raw)


def metric_depth(raw: torch.Tensor, focal_y: torch.Tensor | None = None,
                 depth_focal: float | None = None) -> torch.Tensor:
    """Metres from the raw depth output (:func:`depth_from_raw`); with ``depth_focal`` the output is a
    focal-normalised ("virtual") depth, the depth seen by a camera of that vertical focal length (px; Cube R-CNN,
    Brazil et al. 2023), scaled to each image's own ``focal_y`` (same shape as ``raw``, px): ``z · f_y / depth_focal``,
    so a zoomed (cropped and resized) image, whose objects look nearer, decodes to the same metres."""
    depth = depth_from_raw(raw)
    if depth_focal is None:
        return depth
    if focal_y is None:
        raise ValueError("metric_depth: depth_focal needs each image's focal_y")
    return depth * focal_y.to(depth.dtype) / depth_focal


def centre_behind_surface(alpha: torch.Tensor, dims: torch.Tensor) -> torch.Tensor:
    """How far (m) a box's centre lies behind its visible surface along the viewing ray: half the footprint's
    extent along the ray, ``0.25·(l·|sin α| + w·|cos α|)`` for observation angle α (N,) and dims ``(h, w, l)``
    (N, 3) — the footprint's extent along the ray is ``l·|sin α| + w·|cos α|``, the surface is its near half's
    middle on average. [reconstruction, METHODS.md §3.2: the weak depth target of SKD-WM3D.]"""
    return 0.25 * (dims[:, 2] * alpha.sin().abs() + dims[:, 1] * alpha.cos().abs())


def raw_from_depth(depth: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`depth_from_raw`: ``raw = logit(1/(1 + z)) = −log z`` for depth z > 0 metres."""
    return -torch.log(depth)


def dimensions_from_log_ratio(values: torch.Tensor, class_means: torch.Tensor) -> torch.Tensor:
    """Box dimensions (…, 3) ``(h, w, l)`` metres from log-ratios (…, 3): ``dims = mean·exp(values)``.

    ``class_means`` (…, 3) are the means of each object's class (e.g. ``means[classes]``); broadcasts.
    """
    return class_means.to(values) * torch.exp(values)


def log_ratio_from_dimensions(dimensions: torch.Tensor, class_means: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dimensions_from_log_ratio`: ``log(dims / mean)`` (…, 3)."""
    return torch.log(dimensions / class_means.to(dimensions))


def alpha_to_bins(alpha: torch.Tensor, num_bins: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """MultiBin encoding of angles (…,) radians → (bin (…,) long in [0, n), residual (…,) radians).

    Bin k is centred on ``k·2π/n`` and covers ``[k·2π/n − π/n, k·2π/n + π/n)`` (monodle's ``angle2class``);
    the residual ``alpha − centre`` (mod 2π) lies in ``[−π/n, π/n)``. Any real alpha is accepted (wraps).
    """
    bin_width = 2 * math.pi / num_bins
    shifted = torch.remainder(alpha + bin_width / 2, 2 * math.pi)  # [0, 2π): bin k starts at k·bin_width
    bins = torch.clamp(torch.floor(shifted / bin_width), 0, num_bins - 1).long()
    residual = shifted - bins.to(alpha.dtype) * bin_width - bin_width / 2
    return bins, residual


def bins_to_alpha(logits: torch.Tensor, residuals: torch.Tensor) -> torch.Tensor:
    """MultiBin decoding: logits (…, n) and residuals (…, n) → alpha (…,) in [−π, π).

    ``alpha = k·2π/n + residual_k`` with ``k = argmax logits`` (the residual of the winning bin), wrapped.
    """
    if logits.shape != residuals.shape:
        raise ShapeError(f"logits and residuals must have the same shape, got {tuple(logits.shape)} and "
                         f"{tuple(residuals.shape)}")
    num_bins = logits.shape[-1]
    bins = logits.argmax(dim=-1, keepdim=True)
    residual = torch.gather(residuals, -1, bins).squeeze(-1)
    alpha = bins.squeeze(-1).to(residuals.dtype) * (2 * math.pi / num_bins) + residual
    return torch.remainder(alpha + math.pi, 2 * math.pi) - math.pi


def soft_bins_to_alpha(logits: torch.Tensor, residuals: torch.Tensor) -> torch.Tensor:
    """Differentiable MultiBin decoding: logits (…, n), residuals (…, n) → alpha (…,) in (−π, π].

    The direction of the softmax-weighted mean of every bin's unit vector at ``k·2π/n + residual_k``:
    ``alpha = atan2(Σ p_k sin θ_k, Σ p_k cos θ_k)``. Equals :func:`bins_to_alpha` when one bin dominates;
    gradients reach both the logits and the residuals (for losses on the decoded box).
    """
    if logits.shape != residuals.shape:
        raise ShapeError(f"logits and residuals must have the same shape, got {tuple(logits.shape)} and "
                         f"{tuple(residuals.shape)}")
    num_bins = logits.shape[-1]
    centres = torch.arange(num_bins, device=residuals.device, dtype=residuals.dtype) * (2 * math.pi / num_bins)
    angles = centres + residuals
    probabilities = torch.softmax(logits.to(residuals.dtype), dim=-1)
    return torch.atan2((probabilities * torch.sin(angles)).sum(-1), (probabilities * torch.cos(angles)).sum(-1))


# ----------------------------------------------------------------------------------------------------------
# Centres: projection and lifting
# ----------------------------------------------------------------------------------------------------------


def _split_camera(camera: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
    """K (…, 3, 3) and the translation column p (…, 3) of ``P = [K·R | p]`` (None for plain intrinsics)."""
    if camera.shape[-2:] == (3, 3):
        return camera.to(dtype), None
    if camera.shape[-2:] == (3, 4):
        camera = camera.to(dtype)
        return camera[..., :3], camera[..., 3]
    raise ShapeError(f"camera must be intrinsics (..., 3, 3) or a projection (..., 3, 4), got {tuple(camera.shape)}")


def box_centre(boxes3d: torch.Tensor) -> torch.Tensor:
    """Geometric centre (N, 3) ``(x, y − h/2, z)`` metres of boxes (N, 7) in the bottom-centre convention."""
    check_shape("boxes3d", boxes3d, (None, 7))
    return torch.stack([boxes3d[:, 0], boxes3d[:, 1] - boxes3d[:, 3] / 2, boxes3d[:, 2]], dim=-1)


def bottom_centre(centre: torch.Tensor, height: torch.Tensor) -> torch.Tensor:
    """Bottom centre (N, 3) ``(x, y + h/2, z)`` of boxes with geometric centre (N, 3) and height h (N,) metres
    (y points down, so the bottom face is below the centre at larger y)."""
    check_shape("centre", centre, (None, 3))
    return centre + torch.stack([torch.zeros_like(height), height / 2, torch.zeros_like(height)], dim=-1)


def project_centre(centre: torch.Tensor, camera: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Project points (N, 3) (label-frame metres) → (uv (N, 2) pixels, depth (N,) = their z, metres).

    ``camera``: K (N, 3, 3) / (3, 3) or P (N, 3, 4) / (3, 4); ``uv`` is the perspective division of
    ``P·[X; 1]`` (``K·X`` for K). Points must lie in front of the camera.
    """
    check_shape("centre", centre, (None, 3))
    K, translation = _split_camera(camera, centre.dtype)
    homogeneous = (K @ centre.unsqueeze(-1)).squeeze(-1)
    if translation is not None:
        homogeneous = homogeneous + translation
    return homogeneous[:, :2] / homogeneous[:, 2:], centre[:, 2]


def lift_centre(uv: torch.Tensor, depth: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`project_centre`: pixels uv (N, 2) at depth z (N,) metres → points (N, 3), metres.

    With K: ``X = z·K⁻¹·(u, v, 1)`` (:func:`distill3d.geometry.camera.backproject`). With ``P = [K | p]``
    (K upper triangular, ``P = K·[I | t]``, ``t = K⁻¹p``): the projective depth is ``s = z + p₃`` and
    ``X = s·K⁻¹·(u, v, 1) − t``. ``camera`` is (N, 3, 3) / (N, 3, 4) or a single (3, 3) / (3, 4).
    """
    check_shape("uv", uv, (None, 2))
    check_shape("depth", depth, (uv.shape[0],))
    K, translation = _split_camera(camera, uv.dtype)
    K = K.expand(uv.shape[0], 3, 3)
    projective_depth = depth if translation is None else depth + translation[..., 2]
    points = backproject(uv.unsqueeze(1), projective_depth.unsqueeze(1), K).squeeze(1)
    if translation is None:
        return points
    offset = torch.linalg.solve_triangular(K, translation.expand(uv.shape[0], 3).unsqueeze(-1), upper=True)
    return points - offset.squeeze(-1)


def l_shape_heading(points_xz: torch.Tensor, valid: torch.Tensor, steps: int = 90,
                    min_distance: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Rectangle fit of bird's-eye-view points: the edge direction of each object's footprint, modulo π/2.

    The L-shape fit of Zhang et al. 2017 ("Efficient L-Shape Fitting for Vehicle Detection Using Laser Scanners",
    closeness criterion), vectorised over objects and candidate angles: for each angle ``θ`` of a grid of
    ``steps`` over ``[0, π/2)`` the points are expressed along ``e₁ = (cos θ, sin θ)`` and ``e₂ = (−sin θ, cos θ)``
    of the (x, z) plane; each point's distance ``d`` to the nearest of the four edges of the enclosing rectangle
    scores ``1 / max(d, min_distance)``, and the angle with the largest sum wins. A rectangle's edges are only
    defined modulo π/2: which of the two directions is the object's length is left to the caller.

    Args:
        points_xz: (N, P, 2) (x, z) coordinates in metres (camera frame; any values where invalid).
        valid: (N, P) bool.
        steps: candidate angles (resolution ``90° / steps``).
        min_distance: metres; floor of the distance (the measurement noise: points closer to an edge count alike).

    Returns:
        ``theta`` (N,) radians in ``[0, π/2)``, the direction ``(cos θ, sin θ)`` of one edge in (x, z), and
        ``extent`` (N, 2) metres, the enclosing rectangle's sides along ``e₁`` and ``e₂`` (0 with no valid point).
    """
    check_shape("points_xz", points_xz, (None, None, 2))
    check_shape("valid", valid, points_xz.shape[:2])
    theta = torch.arange(steps, dtype=points_xz.dtype, device=points_xz.device) * (math.pi / 2 / steps)
    cos, sin = theta.cos()[None, :, None], theta.sin()[None, :, None]
    x, z = points_xz[:, None, :, 0], points_xz[:, None, :, 1]  # (N, 1, P)
    mask = valid[:, None, :]
    distances, extents = [], []
    for along in (x * cos + z * sin, z * cos - x * sin):  # (N, T, P) along e₁, then e₂
        high = torch.where(mask, along, torch.full_like(along, -math.inf)).amax(-1, keepdim=True)
        low = torch.where(mask, along, torch.full_like(along, math.inf)).amin(-1, keepdim=True)
        distances.append(torch.minimum(high - along, along - low))
        extents.append((high - low)[..., 0])
    closeness = torch.where(mask, 1.0 / torch.minimum(*distances).clamp(min=min_distance), 0.0).sum(-1)  # (N, T)
    best = closeness.argmax(dim=1)
    extent = torch.stack([e.gather(1, best[:, None])[:, 0] for e in extents], dim=1)
    extent = torch.where(valid.any(1, keepdim=True), extent, torch.zeros_like(extent))
    return theta[best], extent


# ----------------------------------------------------------------------------------------------------------
# Map read-out and training targets
# ----------------------------------------------------------------------------------------------------------


def gather_at(maps: torch.Tensor, batch_index: torch.Tensor, cell_index: torch.Tensor) -> torch.Tensor:
    """Read maps (B, C, h, w) at N cells: batch_index (N,) and flat cell_index (N,) ``= y·w + x`` → (N, C)."""
    check_shape("maps", maps, (None, None, None, None))
    return maps.flatten(2)[batch_index, :, cell_index]


def gaussian_radius(height: torch.Tensor, width: torch.Tensor, min_overlap: float = 0.7) -> torch.Tensor:
    """CenterNet's Gaussian radius (…,) for boxes of size (height, width) (…,), in the same units.

    The smallest of the three radii at which a box with corners displaced by r still has IoU ``min_overlap``
    with the true one (CornerNet, Law & Deng 2018), in the exact form of the reference ``gaussian_radius``
    (including its ``(b + √Δ)/2`` that CenterNet, monodle and GUPNet all share).
    """
    total = height + width
    area = height * width
    c1 = area * (1 - min_overlap) / (1 + min_overlap)
    r1 = (total + torch.sqrt(total**2 - 4 * c1)) / 2
    c2 = (1 - min_overlap) * area
    r2 = (2 * total + torch.sqrt((2 * total) ** 2 - 16 * c2)) / 2
    b3 = -2 * min_overlap * total
    c3 = (min_overlap - 1) * area
    r3 = (b3 + torch.sqrt(b3**2 - 16 * min_overlap * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def heatmap_targets(boxes2d: torch.Tensor, classes: torch.Tensor, batch_index: torch.Tensor, batch: int,
                    num_classes: int, map_size: tuple[int, int], stride: int = 4,
                    min_overlap: float = 0.7) -> dict[str, torch.Tensor]:
    """CenterNet heat-map targets of N objects, vectorised over objects and cells.

    Args:
        boxes2d: (N, 4) ``(x1, y1, x2, y2)`` 2D boxes in input-image pixels.
        classes: (N,) long class ids in ``[0, num_classes)``.
        batch_index: (N,) long image of each object in ``[0, batch)``.
        batch, num_classes: B and C of the heat map.
        map_size: (h, w) of the output maps (input size / stride).
        stride: output stride (input pixels per cell).
        min_overlap: IoU of :func:`gaussian_radius`.

    Returns:
        ``heatmap`` (B, C, h, w) Gaussian splats in [0, 1] (exactly 1 at each object's cell); per object, in the
        input order: ``cell_index`` (N,) long flat cell ``y·w + x`` of the 2D box centre (clamped into the map),
        ``offset2d`` (N, 2) ``centre / stride − cell`` in cells (in [0, 1) unless clamped), ``size2d`` (N, 2) box
        (width, height) in input pixels, ``radius`` (N,) long Gaussian radius in cells.

    Each object splats ``exp(−(dx² + dy²)/(2σ²))``, ``σ = (2r + 1)/6``, on the cells within ``|dx|, |dy| ≤ r``
    of its cell ``floor(centre / stride)``, with ``r = max(0, int(gaussian_radius(box h/stride, w/stride)))``
    (CenterNet's ``draw_umich_gaussian``); overlapping splats of one class combine by maximum.
    """
    check_shape("boxes2d", boxes2d, (None, 4))
    check_shape("classes", classes, (boxes2d.shape[0],))
    check_shape("batch_index", batch_index, (boxes2d.shape[0],))
    height, width = map_size
    dtype, device = boxes2d.dtype, boxes2d.device
    size2d = boxes2d[:, 2:] - boxes2d[:, :2]  # (N, 2): width, height in pixels
    centre_cells = (boxes2d[:, :2] + boxes2d[:, 2:]) / (2 * stride)  # (N, 2) in cells
    limits = torch.tensor([width - 1, height - 1], device=device)
    cell_xy = torch.minimum(torch.floor(centre_cells).long().clamp_min(0), limits)  # (N, 2)
    offset2d = centre_cells - cell_xy.to(dtype)
    radius = torch.clamp(gaussian_radius(size2d[:, 1] / stride, size2d[:, 0] / stride, min_overlap), min=0).long()

    sigma = (2 * radius + 1).to(dtype) / 6  # (N,)
    dx = torch.arange(width, device=device)[None, :] - cell_xy[:, :1]  # (N, w)
    dy = torch.arange(height, device=device)[None, :] - cell_xy[:, 1:]  # (N, h)
    gauss_x = torch.exp(-dx.to(dtype).square() / (2 * sigma[:, None] ** 2)) * (dx.abs() <= radius[:, None])
    gauss_y = torch.exp(-dy.to(dtype).square() / (2 * sigma[:, None] ** 2)) * (dy.abs() <= radius[:, None])
    splats = (gauss_y[:, :, None] * gauss_x[:, None, :]).flatten(1)  # (N, h·w)
    heatmap = torch.zeros(batch * num_classes, height * width, dtype=dtype, device=device)
    group = (batch_index * num_classes + classes)[:, None].expand_as(splats)
    heatmap.scatter_reduce_(0, group, splats, "amax", include_self=True)
    return {"heatmap": heatmap.view(batch, num_classes, height, width),
            "cell_index": cell_xy[:, 1] * width + cell_xy[:, 0], "offset2d": offset2d, "size2d": size2d,
            "radius": radius}


def offset3d_targets(centres_uv: torch.Tensor, cell_index: torch.Tensor, map_width: int,
                     stride: int = 4) -> torch.Tensor:
    """``offset3d`` targets (N, 2) in cells: projected 3D centres (N, 2) input px ``/ stride`` minus the
    integer cell (x, y) of the flat ``cell_index`` (N,) (that of the 2D box centre) of a map ``map_width`` wide."""
    check_shape("centres_uv", centres_uv, (None, 2))
    cell_xy = torch.stack([cell_index % map_width, torch.div(cell_index, map_width, rounding_mode="floor")], -1)
    return centres_uv / stride - cell_xy.to(centres_uv.dtype)


# ----------------------------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------------------------


def decode_detections(outputs: dict[str, torch.Tensor], K: torch.Tensor, class_means: torch.Tensor,
                      top_k: int = 50, stride: int = 4,
                      score_threshold: float | None = None,
                      depth_confidence: bool = False,
                      depth_focal: float | None = None) -> list[dict[str, torch.Tensor]]:
    """Detections of every image from the head maps (module docstring; CenterNet / monodle decoding).

    Args:
        outputs: the head's dict (``heatmap`` logits (B, C, h, w), ``size2d``, ``offset2d``, ``offset3d``,
            ``depth``, ``dimensions``, ``orientation``; ``depth_log_sigma`` is read when present).
        K: (B, 3, 3) intrinsics or (B, 3, 4) projections ``P = K·[I | t]`` of the INPUT images (a single
            (3, 3) / (3, 4) is broadcast).
        class_means: (C, 3) mean ``(h, w, l)`` of each class, metres.
        top_k: peaks kept per image (over all classes) after 3×3 max-pool NMS on ``sigmoid(heatmap)``.
        stride: output stride (input px per cell).
        score_threshold: optionally drop detections scoring below it (changes the count per image).
        depth_confidence: multiply the score by the depth confidence ``exp(−σ)`` (GUPNet; needs
            ``depth_log_sigma``); the ranking by heat-map score is kept.
        depth_focal: when given, the ``depth`` map is a focal-normalised depth at this vertical focal length (px),
            decoded with each image's own ``f_y`` (:func:`metric_depth`).

    Returns:
        B dicts with n = ``min(top_k, C·h·w)`` (or fewer, thresholded) rows, best first: ``class`` (n,) long,
        ``score`` (n,) in (0, 1), ``box2d`` (n, 4) ``(x1, y1, x2, y2)`` input px, ``boxes3d`` (n, 7)
        ``(x, y, z, h, w, l, ry)`` bottom centre (metres, radians), ``alpha`` (n,) radians and, when the
        outputs have it, ``depth_sigma`` (n,) ``exp(depth_log_sigma)``, the Laplacian scale of the depth (metres
        when the depth loss compares metres).
    """
    heatmap = outputs["heatmap"]
    batch, num_classes, height, width = heatmap.shape
    check_shape("class_means", class_means, (num_classes, 3))
    dtype = outputs["depth"].dtype
    scores = torch.sigmoid(heatmap)
    peaks = scores * (F.max_pool2d(scores, 3, stride=1, padding=1) == scores)
    top_scores, top_index = peaks.flatten(1).topk(min(top_k, num_classes * height * width), dim=1)  # (B, k)
    count = top_index.shape[1]
    classes = torch.div(top_index, height * width, rounding_mode="floor").flatten()
    cells = (top_index % (height * width)).flatten()
    batch_index = torch.arange(batch, device=heatmap.device).repeat_interleave(count)
    cell_xy = torch.stack([cells % width, torch.div(cells, width, rounding_mode="floor")], -1).to(dtype)

    def read(name: str) -> torch.Tensor:
        return gather_at(outputs[name], batch_index, cells)

    centre2d = (cell_xy + read("offset2d")) * stride
    size2d = read("size2d")
    box2d = torch.cat([centre2d - size2d / 2, centre2d + size2d / 2], dim=-1)
    centre3d_uv = (cell_xy + read("offset3d")) * stride
    camera = K if K.dim() == 2 else K[batch_index]
    depth = metric_depth(read("depth").squeeze(-1), camera[..., 1, 1].expand(len(cells)), depth_focal)
    dimensions = dimensions_from_log_ratio(read("dimensions"), class_means.to(dtype)[classes])
    orientation = read("orientation")
    num_bins = orientation.shape[-1] // 2
    alpha = bins_to_alpha(orientation[:, :num_bins], orientation[:, num_bins:])
    centre = lift_centre(centre3d_uv, depth, camera)
    bottom = bottom_centre(centre, dimensions[:, 0])
    rotation_y = alpha_to_rotation_y(alpha, bottom)
    boxes3d = torch.cat([bottom, dimensions, rotation_y[:, None]], dim=-1)

    fields = {"class": classes, "score": top_scores.flatten(), "box2d": box2d, "boxes3d": boxes3d, "alpha": alpha}
    if "depth_log_sigma" in outputs:
        fields["depth_sigma"] = torch.exp(read("depth_log_sigma")).squeeze(-1)
        if depth_confidence:
            fields["score"] = fields["score"] * torch.exp(-fields["depth_sigma"])
    elif depth_confidence:
        raise KeyError("decode_detections(depth_confidence=True) needs the 'depth_log_sigma' map")
    per_image = [{name: value.view(batch, count, *value.shape[1:])[b] for name, value in fields.items()}
                 for b in range(batch)]
    if score_threshold is not None:
        per_image = [{name: value[image["score"] >= score_threshold] for name, value in image.items()}
                     for image in per_image]
    return per_image
