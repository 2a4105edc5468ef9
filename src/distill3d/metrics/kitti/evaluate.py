"""The KITTI evaluation driver: ignore flags, overlaps, accumulation over frames, AP."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from distill3d.errors import ShapeError
from distill3d.geometry.boxes3d import bev_iou, box2d_ioa, box2d_iou, box3d_iou
from distill3d.metrics.kitti.annotations import (
    DIFFICULTIES,
    DONTCARE,
    INVALID_ALPHA,
    KITTI_CLASSES,
    MAX_OCCLUSION,
    MAX_TRUNCATION,
    METRICS,
    MIN_HEIGHT,
    NEIGHBOUR_CLASS,
    NUM_SAMPLE_POINTS,
    FrameAnnotations,
)
from distill3d.metrics.kitti.matching import accumulate_statistics, collect_tp_scores, sample_score_thresholds
from distill3d.metrics.kitti.result import KittiEvalResult

# ----------------------------------------------------------------------------------------------------------
# Evaluation driver
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _Concatenated:
    """All frames' arrays stacked, with per-frame offsets (F + 1,)."""

    gt_offsets: np.ndarray
    dt_offsets: np.ndarray
    dontcare_offsets: np.ndarray
    gt_name: np.ndarray  # lower-case
    dt_name: np.ndarray  # lower-case
    gt_height: np.ndarray
    dt_height: np.ndarray
    gt_occluded: np.ndarray
    gt_truncated: np.ndarray
    gt_alpha: np.ndarray
    dt_alpha: np.ndarray
    dt_score: np.ndarray


def _offsets(counts: Sequence[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.asarray(counts, dtype=np.int64))]).astype(np.int64)


def _concatenate(gt: Sequence[FrameAnnotations], dt: Sequence[FrameAnnotations]) -> _Concatenated:
    def stack(frames: Sequence[FrameAnnotations], attribute: str) -> np.ndarray:
        return np.concatenate([getattr(frame, attribute) for frame in frames])

    gt_bbox, dt_bbox = stack(gt, "bbox").reshape(-1, 4), stack(dt, "bbox").reshape(-1, 4)
    return _Concatenated(
        gt_offsets=_offsets([len(frame) for frame in gt]),
        dt_offsets=_offsets([len(frame) for frame in dt]),
        dontcare_offsets=_offsets([int(np.sum(frame.name == DONTCARE)) for frame in gt]),
        gt_name=np.char.lower(stack(gt, "name").astype(str)),
        dt_name=np.char.lower(stack(dt, "name").astype(str)),
        gt_height=gt_bbox[:, 3] - gt_bbox[:, 1],
        dt_height=np.abs(dt_bbox[:, 3] - dt_bbox[:, 1]),
        gt_occluded=stack(gt, "occluded").astype(np.int64),
        gt_truncated=stack(gt, "truncated").astype(np.float64),
        gt_alpha=stack(gt, "alpha").astype(np.float64),
        dt_alpha=stack(dt, "alpha").astype(np.float64),
        dt_score=stack(dt, "score").astype(np.float64),
    )


def _flat_pairwise(
    gt: Sequence[FrameAnnotations], dt: Sequence[FrameAnnotations], metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (D, G) overlap matrices of ``metric``, flattened row-major into one array, with offsets."""
    blocks = []
    for frame_gt, frame_dt in zip(gt, dt, strict=True):
        if len(frame_gt) == 0 or len(frame_dt) == 0:
            blocks.append(np.zeros(0))
        elif metric == "bbox":
            blocks.append(box2d_iou(frame_dt.bbox, frame_gt.bbox).ravel())
        elif metric == "bev":
            blocks.append(bev_iou(_bev_boxes(frame_dt), _bev_boxes(frame_gt)).ravel())
        else:
            blocks.append(box3d_iou(frame_dt.boxes3d(), frame_gt.boxes3d()).ravel())
    return np.concatenate([np.zeros(0), *blocks]), _offsets([block.size for block in blocks])


def _bev_boxes(frame: FrameAnnotations) -> np.ndarray:
    """(N, 5) ``(x, z, l, w, ry)`` from file-order dimensions ``(h, w, l)``."""
    return np.stack(
        [
            frame.location[:, 0],
            frame.location[:, 2],
            frame.dimensions[:, 2],
            frame.dimensions[:, 1],
            frame.rotation_y,
        ],
        axis=1,
    )


def _dontcare_ratios(
    gt: Sequence[FrameAnnotations], dt: Sequence[FrameAnnotations]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (D, K) ``|det ∩ DontCare| / |det|`` flattened, with offsets."""
    blocks = []
    for frame_gt, frame_dt in zip(gt, dt, strict=True):
        regions = frame_gt.bbox[frame_gt.name == DONTCARE]
        if len(regions) == 0 or len(frame_dt) == 0:
            blocks.append(np.zeros(0))
        else:
            blocks.append(box2d_ioa(frame_dt.bbox, regions).ravel())
    return np.concatenate([np.zeros(0), *blocks]), _offsets([block.size for block in blocks])


def _ignore_flags(
    data: _Concatenated, class_name: str, difficulty: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """The devkit's ``clean_data`` for all frames at once.

    Returns ``ignored_gt`` (G,), ``ignored_dt`` (D,) (0 = valid, 1 = ignored, -1 = not this class) and the
    number of valid GT boxes.
    """
    target = class_name.lower()
    neighbour = NEIGHBOUR_CLASS.get(target)
    is_target = data.gt_name == target
    is_neighbour = (data.gt_name == neighbour) if neighbour is not None else np.zeros_like(is_target)
    too_hard = (
        (data.gt_occluded > MAX_OCCLUSION[difficulty])
        | (data.gt_truncated > MAX_TRUNCATION[difficulty])
        | (data.gt_height <= MIN_HEIGHT[difficulty])
    )
    ignored_gt = np.full(is_target.shape, -1, dtype=np.int64)
    ignored_gt[is_neighbour | (is_target & too_hard)] = 1
    ignored_gt[is_target & ~too_hard] = 0

    ignored_dt = np.where(data.dt_name == target, 0, -1).astype(np.int64)
    ignored_dt[data.dt_height < MIN_HEIGHT[difficulty]] = 1
    return ignored_gt, ignored_dt, int(np.sum(ignored_gt == 0))


def default_min_overlaps(classes: Sequence[str]) -> np.ndarray:
    """(2, 3, C) official IoU thresholds: [strict | loose, bbox | bev | 3d, class]."""
    unknown = [name for name in classes if name not in KITTI_CLASSES]
    if unknown:
        raise ValueError(f"no default IoU thresholds for classes {unknown}; known: {sorted(KITTI_CLASSES)}")
    # Nested as [setting][class][metric]; the result is indexed [setting, metric, class].
    per_setting = [[KITTI_CLASSES[name][setting] for name in classes] for setting in range(2)]
    return np.array(per_setting).transpose(0, 2, 1)


def _alphas_are_valid(gt: Sequence[FrameAnnotations], dt: Sequence[FrameAnnotations]) -> bool:
    """mmdetection3d's rule: some detection has alpha != -10 and some frame's first GT alpha != -10."""
    detections_have_alpha = any(bool(np.any(frame.alpha != INVALID_ALPHA)) for frame in dt)
    labels_have_alpha = any(len(frame) > 0 and frame.alpha[0] != INVALID_ALPHA for frame in gt)
    return detections_have_alpha and labels_have_alpha


def _r11(precision: np.ndarray) -> np.ndarray:
    return precision[..., 0::4].sum(axis=-1) / 11 * 100


def _r40(precision: np.ndarray) -> np.ndarray:
    return precision[..., 1:].sum(axis=-1) / 40 * 100


def _warn_few_gt(classes: Sequence[str], num_valid: np.ndarray) -> None:
    """Say when a class has 1…40 valid GT boxes: the devkit's 41-point recall sampling then caps AP below 100
    even for perfect detections (reproduced here on purpose), which surprises on small sets."""
    few = [
        f"{name} ({', '.join(f'{d} {n}' for d, n in zip(DIFFICULTIES, num_valid[c], strict=True))})"
        for c, name in enumerate(classes)
        if np.any((num_valid[c] > 0) & (num_valid[c] < NUM_SAMPLE_POINTS))
    ]
    if few:
        warnings.warn(
            f"fewer than {NUM_SAMPLE_POINTS} valid GT boxes for {'; '.join(few)}: as in the official devkit, AP "
            f"then stays below 100 even for perfect detections (recall is sampled at {NUM_SAMPLE_POINTS} points)",
            stacklevel=3,
        )


def evaluate_kitti(
    gt_annotations: Sequence[FrameAnnotations],
    dt_annotations: Sequence[FrameAnnotations],
    classes: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
    metrics: Sequence[str] = METRICS,
    min_overlaps: np.ndarray | None = None,
    compute_aos: bool | None = None,
) -> KittiEvalResult:
    """The official KITTI object evaluation (mmdetection3d ``kitti_eval``, OpenPCDet ``do_eval``).

    Runs the matching for every metric, class, difficulty and overlap setting; numba compiles the kernels on
    first use (cached on disk afterwards).

    Args:
        gt_annotations: one :class:`FrameAnnotations` per image with the labels (including DontCare rows).
        dt_annotations: detections of the same images, in the same order (empty frames allowed).
        classes: classes to evaluate (keys of :data:`KITTI_CLASSES` unless ``min_overlaps`` is given).
        metrics: subset of ("bbox", "bev", "3d"); AOS needs "bbox".
        min_overlaps: (S, 3, C) IoU thresholds [setting, metric, class]; default: official strict and loose.
        compute_aos: evaluate AOS; ``None`` = when alphas are valid (mmdetection3d's rule).

    Returns:
        A :class:`KittiEvalResult` (AP in percent).
    """
    if len(gt_annotations) != len(dt_annotations):
        raise ValueError(f"{len(gt_annotations)} GT frames but {len(dt_annotations)} detection frames")
    if len(gt_annotations) == 0:
        raise ValueError("nothing to evaluate: no frames")
    unknown_metrics = set(metrics) - set(METRICS)
    if unknown_metrics or not metrics:
        raise ValueError(f"metrics must be a non-empty subset of {METRICS}, got {tuple(metrics)}")
    classes = tuple(classes)
    thresholds_table = (
        default_min_overlaps(classes) if min_overlaps is None else np.asarray(min_overlaps, float)
    )
    if thresholds_table.ndim != 3 or thresholds_table.shape[1:] != (3, len(classes)):
        raise ShapeError(f"min_overlaps must have shape (S, 3, {len(classes)}), got {thresholds_table.shape}")
    for frame in dt_annotations:
        if not np.all(np.isfinite(frame.score)):
            raise ValueError("detection scores must be finite")
    if compute_aos is None:
        compute_aos = _alphas_are_valid(gt_annotations, dt_annotations)
    compute_aos = compute_aos and "bbox" in metrics

    data = _concatenate(gt_annotations, dt_annotations)
    dontcare_ioa, dontcare_ioa_offsets = _dontcare_ratios(gt_annotations, dt_annotations)
    num_classes, num_settings = len(classes), thresholds_table.shape[0]
    shape = (num_classes, len(DIFFICULTIES), num_settings, NUM_SAMPLE_POINTS)
    evaluated = [m for m in METRICS if m in metrics] + (["aos"] if compute_aos else [])
    precision = {metric: np.zeros(shape) for metric in evaluated}
    counts = np.zeros((3, num_classes, len(DIFFICULTIES)), dtype=np.int64)

    flags = {}
    for c, class_name in enumerate(classes):
        for d in range(len(DIFFICULTIES)):
            ignored_gt, ignored_dt, num_valid = _ignore_flags(data, class_name, d)
            flags[c, d] = (ignored_gt, ignored_dt, num_valid)
            counts[:, c, d] = (num_valid, np.sum(ignored_gt == 1), np.sum(ignored_dt == 0))
    _warn_few_gt(classes, counts[0])

    for metric_index, metric in enumerate(METRICS):
        if metric not in metrics:
            continue
        overlaps, overlap_offsets = _flat_pairwise(gt_annotations, dt_annotations, metric)
        for (c, d), (ignored_gt, ignored_dt, num_valid) in flags.items():
            frames = (overlaps, overlap_offsets, data.gt_offsets, data.dt_offsets, ignored_gt, ignored_dt,
                      data.dt_score, data.gt_alpha, data.dt_alpha)  # the kernels' shared per-frame inputs
            for s in range(num_settings):
                min_overlap = float(thresholds_table[s, metric_index, c])
                tp_scores = collect_tp_scores(*frames, min_overlap)
                thresholds = sample_score_thresholds(tp_scores, num_valid)[:NUM_SAMPLE_POINTS]
                totals = accumulate_statistics(
                    *frames,
                    dontcare_ioa,
                    dontcare_ioa_offsets,
                    data.dontcare_offsets,
                    metric == "bbox",
                    min_overlap,
                    thresholds,
                )
                num_thresholds = thresholds.shape[0]
                with np.errstate(divide="ignore", invalid="ignore"):
                    detections = totals[:, 0] + totals[:, 1]
                    precision[metric][c, d, s, :num_thresholds] = totals[:, 0] / detections
                    if metric == "bbox" and compute_aos:
                        precision["aos"][c, d, s, :num_thresholds] = totals[:, 3] / detections

    for metric in evaluated:  # precision at a threshold slot = best precision at that or any later slot
        precision[metric] = np.flip(np.maximum.accumulate(np.flip(precision[metric], -1), axis=-1), -1)
    return KittiEvalResult(
        classes=classes,
        min_overlaps=thresholds_table,
        ap11={metric: _r11(precision[metric]) for metric in evaluated},
        ap40={metric: _r40(precision[metric]) for metric in evaluated},
        precision=precision,
        num_valid_gt=counts[0],
        num_ignored_gt=counts[1],
        num_valid_dt=counts[2],
    )
