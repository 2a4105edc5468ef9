"""The official KITTI 3D object evaluation: AP for 2D boxes, BEV and 3D boxes, and AOS (R11 and R40).

Numerically identical to the Python port of the KITTI devkit used by mmdetection3d, OpenPCDet and
traveller59/kitti-object-eval-python, including its quirks:

* Difficulty filter (Easy / Moderate / Hard): a GT box is *valid* when its 2D height exceeds
  ``MIN_HEIGHT`` (40 / 25 / 25 px), occlusion <= ``MAX_OCCLUSION`` (0 / 1 / 2) and truncation <=
  ``MAX_TRUNCATION`` (0.15 / 0.3 / 0.5). A GT box of the evaluated class that fails the filter is *ignored*,
  not removed, and so is a GT box of the neighbouring class (Van for Car, Person_sitting for Pedestrian):
  a detection matched to an ignored GT is neither a true nor a false positive. A detection lower than
  ``MIN_HEIGHT`` is ignored too.
* For 2D AP only, an unmatched detection whose box lies inside a DontCare region (intersection / detection
  area above the IoU threshold) is not a false positive.
* Score thresholds: the scores of the true positives are sub-sampled to at most 41 thresholds at recall steps
  of 1/40 (``get_thresholds``); precision at each threshold is made monotone (max over lower thresholds);
  AP11 is the mean of the 41-slot precision array at slots 0, 4, ..., 40, AP40 the mean of slots 1..40. The
  slots are threshold numbers, not recall values: with few valid GT boxes the array is mostly zeros and AP
  stays low even for perfect detections (e.g. 2 GT, both found: AP11 = 1/11, AP40 = 1/40). This matches the
  C++ devkit.
* AOS accumulates ``(1 + cos Δα) / 2`` over the 2D true positives, sampled the same way.

This module is pure math: inputs are :class:`FrameAnnotations` (numpy arrays, one per image). Reading KITTI
files is :mod:`distill3d.data.kitti_io`'s job.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from distill3d.errors import ShapeError
from distill3d.geometry.boxes3d import bev_iou, box2d_ioa, box2d_iou, box3d_iou, rotation_y_to_alpha

__all__ = [
    "DIFFICULTIES",
    "KITTI_CLASSES",
    "METRICS",
    "FrameAnnotations",
    "KittiEvalResult",
    "default_min_overlaps",
    "evaluate_kitti",
    "sample_score_thresholds",
]

DIFFICULTIES = ("easy", "moderate", "hard")
METRICS = ("bbox", "bev", "3d")
OVERLAP_SETTINGS = ("strict", "loose")
MIN_HEIGHT = (40.0, 25.0, 25.0)
MAX_OCCLUSION = (0, 1, 2)
MAX_TRUNCATION = (0.15, 0.3, 0.5)
NUM_SAMPLE_POINTS = 41
#: Alpha that marks "no observation angle" in KITTI files (DontCare rows, detectors without orientation).
INVALID_ALPHA = -10.0

#: Minimum IoU per class for (bbox, bev, 3d), strict (official) and loose setting.
KITTI_CLASSES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "Car": ((0.7, 0.7, 0.7), (0.7, 0.5, 0.5)),
    "Pedestrian": ((0.5, 0.5, 0.5), (0.5, 0.25, 0.25)),
    "Cyclist": ((0.5, 0.5, 0.5), (0.5, 0.25, 0.25)),
    "Van": ((0.7, 0.7, 0.7), (0.7, 0.5, 0.5)),
    "Person_sitting": ((0.5, 0.5, 0.5), (0.5, 0.25, 0.25)),
}
#: GT classes that are ignored (not missed) when evaluating the key class.
NEIGHBOUR_CLASS = {"car": "van", "pedestrian": "person_sitting"}
DONTCARE = "DontCare"

_NO_MATCH = -1


# ----------------------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------------------


ANNOTATION_ARRAYS: tuple[tuple[str, int | None, type], ...] = (
    ("truncated", None, np.float64),
    ("occluded", None, np.int64),
    ("alpha", None, np.float64),
    ("bbox", 4, np.float64),
    ("dimensions", 3, np.float64),
    ("location", 3, np.float64),
    ("rotation_y", None, np.float64),
    ("score", None, np.float64),
)
#: The fields of :class:`FrameAnnotations`, in KITTI file column order.
FIELDS: tuple[str, ...] = ("name", *(attribute for attribute, _, _ in ANNOTATION_ARRAYS))


def coerce_annotation_arrays(annotations: object, n: int) -> None:
    """Convert the per-object array attributes of ``annotations`` in place to (n,) / (n, k) float/int arrays.

    Used by :class:`FrameAnnotations`; raises ShapeError naming the class and attribute when a shape is wrong.
    """
    for attribute, columns, dtype in ANNOTATION_ARRAYS:
        value = np.asarray(getattr(annotations, attribute), dtype=dtype)
        expected = (n,) if columns is None else (n, columns)
        if value.size == 0 and n == 0:
            value = value.reshape(expected)
        if value.shape != expected:
            raise ShapeError(f"{type(annotations).__name__}.{attribute} must have shape {expected}, got {value.shape}")
        setattr(annotations, attribute, value)


@dataclass
class FrameAnnotations:
    """The objects of one image — ground-truth labels or detections — as numpy arrays (N = number of objects).

    The library's one per-frame record for KITTI-style boxes: :mod:`distill3d.data.kitti_io` reads and writes label
    and result files as it, the evaluation takes it, the road world exports it.

    Attributes:
        name: (N,) class names (str), e.g. "Car", "DontCare" (KITTI's "type" column).
        truncated: (N,) truncation in [0, 1] (-1 in DontCare rows and result files).
        occluded: (N,) occlusion level 0 = fully visible .. 3 = unknown (int; -1 in DontCare rows / results).
        alpha: (N,) observation angle in radians; ``-10`` means "unknown".
        bbox: (N, 4) 2D box ``(x1, y1, x2, y2)`` in pixels.
        dimensions: (N, 3) ``(h, w, l)`` in metres (KITTI file order, also the size order of
            :mod:`distill3d.geometry.boxes3d`; mmdetection3d / OpenPCDet readers reorder to l, h, w).
        location: (N, 3) bottom centre ``(x, y, z)`` in rectified camera coordinates, metres.
        rotation_y: (N,) yaw about the camera Y axis, radians.
        score: (N,) detection confidence; NaN for label files (no score column).
    """

    name: np.ndarray
    truncated: np.ndarray
    occluded: np.ndarray
    alpha: np.ndarray
    bbox: np.ndarray
    dimensions: np.ndarray
    location: np.ndarray
    rotation_y: np.ndarray
    score: np.ndarray

    def __post_init__(self) -> None:
        self.name = np.asarray(self.name, dtype=str).reshape(-1)
        coerce_annotation_arrays(self, self.name.shape[0])

    def __len__(self) -> int:
        return int(self.name.shape[0])

    def __getitem__(self, index: np.ndarray | slice | Sequence[int] | Sequence[bool] | int) -> FrameAnnotations:
        """Select objects by boolean mask (N,), integer indices or slice; always returns FrameAnnotations."""
        if isinstance(index, int | np.integer):
            index = [int(index)]
        return FrameAnnotations(**{field: getattr(self, field)[index] for field in FIELDS})

    def select(self, mask: np.ndarray) -> FrameAnnotations:
        """Objects where ``mask`` (N,) bool is true."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(self),):
            raise ShapeError(f"mask must have shape ({len(self)},), got {mask.shape}")
        return self[mask]

    @property
    def has_scores(self) -> bool:
        """True when every object has a finite score (a result file); False for labels (NaN scores)."""
        return len(self) > 0 and bool(np.all(np.isfinite(self.score)))

    @classmethod
    def empty(cls) -> FrameAnnotations:
        """A frame without objects."""
        zeros = np.zeros(0)
        return cls(np.zeros(0, dtype=str), zeros, np.zeros(0, np.int64), zeros, np.zeros((0, 4)), np.zeros((0, 3)),
                   np.zeros((0, 3)), zeros, zeros)

    @classmethod
    def dont_care(cls, bbox: np.ndarray) -> FrameAnnotations:
        """DontCare regions (M, 4) ``(x1, y1, x2, y2)`` pixels, with the devkit's filler values elsewhere."""
        bbox = np.asarray(bbox, dtype=np.float64).reshape(-1, 4)
        m = len(bbox)
        return cls(name=np.full(m, "DontCare"), truncated=np.full(m, -1.0), occluded=np.full(m, -1),
                   alpha=np.full(m, -10.0), bbox=bbox, dimensions=np.full((m, 3), -1.0),
                   location=np.full((m, 3), -1000.0), rotation_y=np.full(m, -10.0), score=np.full(m, np.nan))

    @classmethod
    def concatenate(cls, frames: Sequence[FrameAnnotations]) -> FrameAnnotations:
        """The objects of several records, in order, as one record (e.g. objects + DontCare rows)."""
        if not frames:
            return cls.empty()
        return cls(*(np.concatenate([getattr(frame, field) for frame in frames]) for field in FIELDS))

    @classmethod
    def from_boxes3d(cls, name: Sequence[str] | np.ndarray, boxes3d: np.ndarray, bbox: np.ndarray,
                     score: np.ndarray | None = None, alpha: np.ndarray | None = None) -> FrameAnnotations:
        """Objects (e.g. detections) from geometry arrays: names (N,), boxes3d (N, 7) ``(x, y, z, h, w, l, ry)``,
        bbox (N, 4) pixels, score (N,) or None for labels (NaN), alpha (N,) or None for ``ry − atan2(x, z)``.

        Truncation and occlusion are set to -1 (unknown), as in KITTI result files.
        """
        boxes3d = np.asarray(boxes3d, dtype=np.float64).reshape(-1, 7)
        n = boxes3d.shape[0]
        if alpha is None:
            alpha = rotation_y_to_alpha(boxes3d[:, 6], boxes3d[:, 0:3])
        return cls(name=np.asarray(name, dtype=str), truncated=np.full(n, -1.0), occluded=np.full(n, -1),
                   alpha=alpha, bbox=np.asarray(bbox, dtype=np.float64).reshape(-1, 4), dimensions=boxes3d[:, 3:6],
                   location=boxes3d[:, 0:3], rotation_y=boxes3d[:, 6],
                   score=np.full(n, np.nan) if score is None else score)

    def boxes3d(self) -> np.ndarray:
        """(N, 7) boxes ``(x, y, z, h, w, l, ry)`` in the :mod:`distill3d.geometry.boxes3d` convention."""
        return np.concatenate([self.location, self.dimensions, self.rotation_y[:, None]], axis=1)


# ----------------------------------------------------------------------------------------------------------
# Result
# ----------------------------------------------------------------------------------------------------------


@dataclass
class KittiEvalResult:
    """AP values of a KITTI evaluation, in percent.

    Every AP array is indexed ``[class, difficulty, overlap_setting]`` with shape (C, 3, S): classes as in
    :attr:`classes`, difficulties easy / moderate / hard, overlap settings 0 = strict (official), 1 = loose.
    A metric that was not evaluated (e.g. AOS when alphas are invalid) is absent from the dicts.

    Attributes:
        classes: evaluated class names.
        min_overlaps: (S, 3, C) IoU thresholds per setting, metric (bbox, bev, 3d) and class.
        ap11: metric name ("bbox", "bev", "3d", "aos") -> (C, 3, S) AP with 11 recall positions.
        ap40: metric name -> (C, 3, S) AP with 40 recall positions.
        precision: metric name -> (C, 3, S, 41) monotone precision (AOS: similarity) per threshold slot.
        num_valid_gt: (C, 3) valid GT boxes per class and difficulty.
        num_ignored_gt: (C, 3) ignored GT boxes (wrong difficulty or neighbouring class).
        num_valid_dt: (C, 3) detections that take part (right class, tall enough).
    """

    classes: tuple[str, ...]
    min_overlaps: np.ndarray
    ap11: dict[str, np.ndarray]
    ap40: dict[str, np.ndarray]
    precision: dict[str, np.ndarray] = field(repr=False)
    num_valid_gt: np.ndarray
    num_ignored_gt: np.ndarray
    num_valid_dt: np.ndarray

    def to_dict(self, include_aos: bool = True) -> dict[str, float]:
        """Flat ``{name: AP}`` dict named like mmdetection3d's KITTI metric.

        Keys: ``KITTI/{Class}_{3D|BEV|2D}_AP{11|40}_{difficulty}_{strict|loose}`` and, with several classes,
        ``KITTI/Overall_{3D|BEV|2D}_AP{11|40}_{difficulty}`` (class mean of the strict setting), in
        mmdetection3d's order. With ``include_aos`` (and AOS evaluated), ``..._AOS_AP..`` keys are added for
        the classes and the overall mean, which mmdetection3d computes but leaves out of its dict.
        """
        labels = {"3d": "3D", "bev": "BEV", "bbox": "2D"}
        if include_aos:
            labels["aos"] = "AOS"
        result: dict[str, float] = {}
        for recall_points, table in (("AP11", self.ap11), ("AP40", self.ap40)):
            present = [metric for metric in labels if metric in table]
            for class_index, class_name in enumerate(self.classes):
                for setting in range(self.min_overlaps.shape[0]):
                    suffix = (
                        OVERLAP_SETTINGS[setting] if setting < len(OVERLAP_SETTINGS) else f"setting{setting}"
                    )
                    for difficulty_index, difficulty in enumerate(DIFFICULTIES):
                        for metric in present:
                            key = f"KITTI/{class_name}_{labels[metric]}_{recall_points}_{difficulty}_{suffix}"
                            result[key] = float(table[metric][class_index, difficulty_index, setting])
            if len(self.classes) > 1:
                for difficulty_index, difficulty in enumerate(DIFFICULTIES):
                    for metric in present:
                        key = f"KITTI/Overall_{labels[metric]}_{recall_points}_{difficulty}"
                        result[key] = float(table[metric][:, difficulty_index, 0].mean())
        return result

    def table(self) -> str:
        """The devkit-style text report, formatted exactly like mmdetection3d's ``kitti_eval`` printout."""
        lines: list[str] = []
        row_labels = (("bbox", "bbox"), ("bev", "bev "), ("3d", "3d  "), ("aos", "aos "))
        for recall_points, table in (("AP11", self.ap11), ("AP40", self.ap40)):
            lines += ["", f"----------- {recall_points} Results ------------", ""]
            for class_index, class_name in enumerate(self.classes):
                for setting in range(self.min_overlaps.shape[0]):
                    thresholds = ", ".join(f"{v:.2f}" for v in self.min_overlaps[setting, :, class_index])
                    lines.append(f"{class_name} {recall_points}@{thresholds}:")
                    for metric, label in row_labels:
                        if metric in table:
                            lines.append(
                                _table_row(
                                    label,
                                    recall_points,
                                    table[metric][class_index, :, setting],
                                    decimals=2 if metric == "aos" else 4,
                                )
                            )
            if len(self.classes) > 1:
                lines += ["", f"Overall {recall_points}@{', '.join(DIFFICULTIES)}:"]
                for metric, label in row_labels:
                    if metric in table:
                        values = table[metric][:, :, 0].mean(axis=0)
                        lines.append(
                            _table_row(label, recall_points, values, decimals=2 if metric == "aos" else 4)
                        )
        return "\n".join(lines) + "\n"


def _table_row(label: str, recall_points: str, values: np.ndarray, decimals: int) -> str:
    return f"{label} {recall_points}:" + ", ".join(f"{v:.{decimals}f}" for v in values)


# ----------------------------------------------------------------------------------------------------------
# Score thresholds and per-frame matching (numba)
# ----------------------------------------------------------------------------------------------------------


@njit(cache=True)
def _sample_score_thresholds(tp_scores: np.ndarray, num_valid_gt: int, num_points: int) -> np.ndarray:

    scores = np.sort(tp_scores)[::-1]
    count = scores.shape[0]
    chosen = np.empty(count)
    num_chosen = 0
    target_recall = 0.0
    for i in range(count):
        recall_here = (i + 1) / num_valid_gt
        recall_next = (i + 2) / num_valid_gt if i < count - 1 else recall_here
        # Skip this score when the next one lands closer to the recall step we are looking for.
        if i < count - 1 and (recall_next - target_recall) < (target_recall - recall_here):
            continue
        chosen[num_chosen] = scores[i]
        num_chosen += 1
        target_recall += 1.0 / (num_points - 1.0)
    return chosen[:num_chosen]


def sample_score_thresholds(
    tp_scores: np.ndarray, num_valid_gt: int, num_points: int = NUM_SAMPLE_POINTS
) -> np.ndarray:
    """The devkit's score thresholds: TP scores (descending) at recall steps of ``1 / (num_points - 1)``.

    Args:
        tp_scores: (T,) scores of the true positives (all frames).
        num_valid_gt: number of valid GT boxes (recall denominator); > 0 when ``tp_scores`` is non-empty.
        num_points: number of recall sample points (41 in KITTI).

    Returns:
        (K,) descending thresholds, K <= T.
    """
    scores = np.ascontiguousarray(tp_scores, dtype=np.float64)
    if scores.size == 0:
        return scores
    return _sample_score_thresholds(scores, int(num_valid_gt), int(num_points))


@njit(cache=True)
def _match_frame(
    overlaps: np.ndarray,
    ignored_gt: np.ndarray,
    ignored_dt: np.ndarray,
    dt_scores: np.ndarray,
    gt_alpha: np.ndarray,
    dt_alpha: np.ndarray,
    dontcare_ioa: np.ndarray,
    min_overlap: float,
    score_threshold: float,
    count_false_positives: bool,
    tp_scores_out: np.ndarray,
) -> tuple[int, int, int, float]:
    """Greedy GT-by-GT matching of one frame, the devkit's ``computeStatistics``.

    ``overlaps``: (D, G) IoU; ``ignored_gt`` (G,) / ``ignored_dt`` (D,): 0 = valid, 1 = ignored, -1 = other
    class; ``dontcare_ioa``: (D, K) detection-in-DontCare ratio (K = 0 disables the DontCare rule).

    Without ``count_false_positives`` each GT takes the highest-scoring overlapping detection and the TP
    scores are written to ``tp_scores_out``. With it, detections below ``score_threshold`` are dropped, a GT
    prefers the valid detection with the largest overlap over an ignored one, and false positives / AOS are
    counted.

    Returns (tp, fp, fn, aos_similarity_sum).
    """
    num_dt, num_gt = overlaps.shape
    taken = np.zeros(num_dt, dtype=np.bool_)
    below_threshold = np.zeros(num_dt, dtype=np.bool_)
    if count_false_positives:
        for j in range(num_dt):
            below_threshold[j] = dt_scores[j] < score_threshold
    tp = 0
    fp = 0
    fn = 0
    similarity = 0.0
    for g in range(num_gt):
        if ignored_gt[g] == -1:
            continue
        best = _NO_MATCH
        best_score = -np.inf
        best_overlap = 0.0
        best_is_ignored = False
        for j in range(num_dt):
            if ignored_dt[j] == -1 or taken[j] or below_threshold[j]:
                continue
            overlap = overlaps[j, g]
            if overlap <= min_overlap:
                continue
            if not count_false_positives:
                if dt_scores[j] > best_score:
                    best, best_score = j, dt_scores[j]
            elif ignored_dt[j] == 0:
                if overlap > best_overlap or best_is_ignored:
                    best, best_overlap, best_is_ignored = j, overlap, False
            elif best == _NO_MATCH:  # an ignored detection, only while nothing else matched
                best, best_is_ignored = j, True
        if best == _NO_MATCH:
            if ignored_gt[g] == 0:
                fn += 1
        elif ignored_gt[g] == 1 or ignored_dt[best] == 1:
            taken[best] = True
        else:
            if not count_false_positives:
                tp_scores_out[tp] = dt_scores[best]
            else:
                similarity += (1.0 + np.cos(gt_alpha[g] - dt_alpha[best])) / 2.0
            tp += 1
            taken[best] = True
    if count_false_positives:
        for j in range(num_dt):
            if not (taken[j] or ignored_dt[j] != 0 or below_threshold[j]):
                fp += 1
        for k in range(dontcare_ioa.shape[1]):
            for j in range(num_dt):
                if taken[j] or ignored_dt[j] != 0 or below_threshold[j]:
                    continue
                if dontcare_ioa[j, k] > min_overlap:
                    taken[j] = True
                    fp -= 1
    return tp, fp, fn, similarity


@njit(cache=True)
def _collect_tp_scores(
    overlaps: np.ndarray,
    overlap_offsets: np.ndarray,
    gt_offsets: np.ndarray,
    dt_offsets: np.ndarray,
    ignored_gt: np.ndarray,
    ignored_dt: np.ndarray,
    dt_scores: np.ndarray,
    gt_alpha: np.ndarray,
    dt_alpha: np.ndarray,
    min_overlap: float,
) -> np.ndarray:
    """Scores of all true positives over all frames (first matching pass, no score threshold)."""
    num_frames = gt_offsets.shape[0] - 1
    out = np.empty(gt_offsets[num_frames])
    count = 0
    no_dontcare = np.zeros((0, 0))
    for f in range(num_frames):
        g0, g1 = gt_offsets[f], gt_offsets[f + 1]
        d0, d1 = dt_offsets[f], dt_offsets[f + 1]
        frame_overlaps = overlaps[overlap_offsets[f] : overlap_offsets[f + 1]].reshape((d1 - d0, g1 - g0))
        tp, _, _, _ = _match_frame(
            frame_overlaps,
            ignored_gt[g0:g1],
            ignored_dt[d0:d1],
            dt_scores[d0:d1],
            gt_alpha[g0:g1],
            dt_alpha[d0:d1],
            no_dontcare,
            min_overlap,
            0.0,
            False,
            out[count:],
        )
        count += tp
    return out[:count]


@njit(cache=True)
def _accumulate_statistics(
    overlaps: np.ndarray,
    overlap_offsets: np.ndarray,
    gt_offsets: np.ndarray,
    dt_offsets: np.ndarray,
    ignored_gt: np.ndarray,
    ignored_dt: np.ndarray,
    dt_scores: np.ndarray,
    gt_alpha: np.ndarray,
    dt_alpha: np.ndarray,
    dontcare_ioa: np.ndarray,
    dontcare_ioa_offsets: np.ndarray,
    dontcare_offsets: np.ndarray,
    use_dontcare: bool,
    min_overlap: float,
    thresholds: np.ndarray,
) -> np.ndarray:
    """(K, 4) summed (tp, fp, fn, aos similarity) over all frames at each score threshold."""
    num_frames = gt_offsets.shape[0] - 1
    totals = np.zeros((thresholds.shape[0], 4))
    unused = np.empty(0)
    for f in range(num_frames):
        g0, g1 = gt_offsets[f], gt_offsets[f + 1]
        d0, d1 = dt_offsets[f], dt_offsets[f + 1]
        frame_overlaps = overlaps[overlap_offsets[f] : overlap_offsets[f + 1]].reshape((d1 - d0, g1 - g0))
        num_dontcare = dontcare_offsets[f + 1] - dontcare_offsets[f] if use_dontcare else 0
        frame_dontcare = dontcare_ioa[
            dontcare_ioa_offsets[f] : dontcare_ioa_offsets[f] + (d1 - d0) * num_dontcare
        ]
        frame_dontcare = frame_dontcare.reshape((d1 - d0, num_dontcare))
        for t in range(thresholds.shape[0]):
            tp, fp, fn, similarity = _match_frame(
                frame_overlaps,
                ignored_gt[g0:g1],
                ignored_dt[d0:d1],
                dt_scores[d0:d1],
                gt_alpha[g0:g1],
                dt_alpha[d0:d1],
                frame_dontcare,
                min_overlap,
                thresholds[t],
                True,
                unused,
            )
            totals[t, 0] += tp
            totals[t, 1] += fp
            totals[t, 2] += fn
            totals[t, 3] += similarity
    return totals


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
            for s in range(num_settings):
                min_overlap = float(thresholds_table[s, metric_index, c])
                tp_scores = _collect_tp_scores(
                    overlaps,
                    overlap_offsets,
                    data.gt_offsets,
                    data.dt_offsets,
                    ignored_gt,
                    ignored_dt,
                    data.dt_score,
                    data.gt_alpha,
                    data.dt_alpha,
                    min_overlap,
                )
                thresholds = sample_score_thresholds(tp_scores, num_valid)[:NUM_SAMPLE_POINTS]
                totals = _accumulate_statistics(
                    overlaps,
                    overlap_offsets,
                    data.gt_offsets,
                    data.dt_offsets,
                    ignored_gt,
                    ignored_dt,
                    data.dt_score,
                    data.gt_alpha,
                    data.dt_alpha,
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
