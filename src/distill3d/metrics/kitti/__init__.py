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

This package is pure math: inputs are :class:`FrameAnnotations` (numpy arrays, one per image). Reading KITTI
files is :mod:`distill3d.data.kitti_io`'s job.

Modules: :mod:`.annotations` (constants, :class:`FrameAnnotations`), :mod:`.matching` (numba kernels),
:mod:`.evaluate` (:func:`evaluate_kitti`), :mod:`.result` (:class:`KittiEvalResult`).
"""

from __future__ import annotations

from distill3d.metrics.kitti.annotations import DIFFICULTIES, DONTCARE, KITTI_CLASSES, METRICS, FrameAnnotations
from distill3d.metrics.kitti.evaluate import default_min_overlaps, evaluate_kitti
from distill3d.metrics.kitti.matching import sample_score_thresholds
from distill3d.metrics.kitti.result import KittiEvalResult

__all__ = [
    "DIFFICULTIES",
    "DONTCARE",
    "KITTI_CLASSES",
    "METRICS",
    "FrameAnnotations",
    "KittiEvalResult",
    "default_min_overlaps",
    "evaluate_kitti",
    "sample_score_thresholds",
]
