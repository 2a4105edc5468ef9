"""Score thresholds and per-frame matching of the KITTI evaluation (numba kernels)."""

from __future__ import annotations

import numpy as np
from numba import njit

from distill3d.metrics.kitti.annotations import (
    NO_MATCH,
    NUM_SAMPLE_POINTS,
)

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
        best = NO_MATCH
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
            elif best == NO_MATCH:  # an ignored detection, only while nothing else matched
                best, best_is_ignored = j, True
        if best == NO_MATCH:
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
def _frame_slices(overlaps: np.ndarray, overlap_offsets: np.ndarray, gt_offsets: np.ndarray, dt_offsets: np.ndarray,
                  f: int) -> tuple[int, int, int, int, np.ndarray]:
    """GT range (g0, g1), detection range (d0, d1) and the (D, G) overlaps of frame ``f`` in the flat arrays."""
    g0, g1 = gt_offsets[f], gt_offsets[f + 1]
    d0, d1 = dt_offsets[f], dt_offsets[f + 1]
    return g0, g1, d0, d1, overlaps[overlap_offsets[f] : overlap_offsets[f + 1]].reshape((d1 - d0, g1 - g0))


@njit(cache=True)
def collect_tp_scores(
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
        g0, g1, d0, d1, frame_overlaps = _frame_slices(overlaps, overlap_offsets, gt_offsets, dt_offsets, f)
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
def accumulate_statistics(
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
        g0, g1, d0, d1, frame_overlaps = _frame_slices(overlaps, overlap_offsets, gt_offsets, dt_offsets, f)
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


