"""Inputs of the KITTI evaluation: the devkit's constants (difficulty filters, class overlaps) and
:class:`FrameAnnotations`, one image's ground truth or detections.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from distill3d.errors import ShapeError
from distill3d.geometry.boxes3d import rotation_y_to_alpha

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

NO_MATCH = -1


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


