"""Readers and writers for KITTI object files (labels, results, calibration, split lists).

Formats (KITTI object development kit):

* Label file, one object per line, 15 whitespace-separated columns:
  ``type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y``. ``x1..y2`` is the 2D box in
  pixels, ``h w l`` the 3D size in metres, ``x y z`` the bottom centre of the 3D box in rectified camera
  coordinates and ``rotation_y`` the yaw in radians. DontCare rows use -1 / -10 / -1000 placeholders.
* Result file: the same 15 columns plus a 16th, the detection score.
* Calibration file: ``KEY: v1 v2 ...`` lines with ``P0..P3`` (3x4), ``R0_rect`` (3x3), ``Tr_velo_to_cam`` and
  ``Tr_imu_to_velo`` (3x4), row-major. The tracking-benchmark spellings ``R_rect``, ``Tr_velo_cam`` and
  ``Tr_imu_velo`` (with or without the colon) are accepted too.
* Split file (``ImageSets/val.txt``): one frame id per line.

Malformed input raises :class:`distill3d.errors.DataFormatError` naming the file and line.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from distill3d.errors import DataFormatError, ShapeError
from distill3d.files import atomic_write_text
from distill3d.metrics.kitti import METRICS, FrameAnnotations, KittiEvalResult, evaluate_kitti

__all__ = [
    "FrameAnnotations",
    "KittiCalib",
    "evaluate_kitti_dirs",
    "read_calib_file",
    "read_label_dir",
    "read_label_file",
    "read_split_file",
    "write_calib_file",
    "write_label_file",
]

PathLike = str | os.PathLike

LABEL_COLUMNS = (
    "type", "truncated", "occluded", "alpha", "x1", "y1", "x2", "y2",
    "h", "w", "l", "x", "y", "z", "rotation_y",
)  # fmt: skip
RESULT_COLUMNS = (*LABEL_COLUMNS, "score")


# ----------------------------------------------------------------------------------------------------------
# Objects
# ----------------------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------------------
# Label / result files
# ----------------------------------------------------------------------------------------------------------


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except IsADirectoryError:
        raise DataFormatError(path, "is a directory, expected a file") from None
    except UnicodeDecodeError as error:
        raise DataFormatError(path, f"not a UTF-8 text file ({error.reason})") from None


def _parse_float(path: Path, line: int, column: str, token: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise DataFormatError(path, f"column '{column}' is not a number: {token!r}", line=line) from None
    if not np.isfinite(value):
        raise DataFormatError(path, f"column '{column}' is not finite: {token!r}", line=line)
    return value


def _parse_int(path: Path, line: int, column: str, token: str) -> int:
    value = _parse_float(path, line, column, token)
    if value != int(value):
        raise DataFormatError(path, f"column '{column}' is not an integer: {token!r}", line=line)
    return int(value)


#: Largest absolute value of any label/result number (pixels, metres, radians): larger is a corrupt file.
_MAX_ABS_VALUE = 1e6


def _check_object(path: Path, line: int, name: str, occluded: int, row: list[float]) -> None:
    """Refuse impossible values (row = truncated, alpha, x1 y1 x2 y2, h w l, x y z, ry[, score])."""
    truncated, box, dims = row[0], row[2:6], row[6:9]
    big = next((v for v in row if abs(v) > _MAX_ABS_VALUE), None)
    if big is not None:
        raise DataFormatError(path, f"value {big:g} is beyond any plausible range (±{_MAX_ABS_VALUE:g})", line=line)
    if occluded not in (-1, 0, 1, 2, 3):
        raise DataFormatError(path, f"column 'occluded' must be -1, 0, 1, 2 or 3, got {occluded}", line=line)
    if not (-1.0 <= truncated <= 1.0):
        raise DataFormatError(path, f"column 'truncated' must lie in [0, 1] (or -1), got {truncated:g}", line=line)
    if box[2] < box[0] or box[3] < box[1]:
        raise DataFormatError(path, f"2D box has x2 < x1 or y2 < y1: {box}", line=line)
    if name != "DontCare" and any(d < 0 for d in dims):
        raise DataFormatError(path, f"3D box dimensions (h, w, l) must not be negative, got {dims}", line=line)


def read_label_file(path: PathLike, with_score: bool | None = None) -> FrameAnnotations:
    """Read a KITTI label (15 columns) or result (16 columns, last = score) file.

    Args:
        path: the ``.txt`` file. An empty file (or one with only blank lines) has zero objects.
        with_score: True requires 16 columns, False requires 15, None accepts either (the same for all lines).

    Returns:
        :class:`FrameAnnotations`; ``score`` is NaN for label files.

    Raises:
        DataFormatError: missing file, wrong column count, non-numeric or non-finite value (naming the
            line).
    """
    path = Path(path)
    names: list[str] = []
    rows: list[list[float]] = []
    occluded: list[int] = []
    expected = None if with_score is None else (16 if with_score else 15)
    for line_number, line in enumerate(_read_lines(path), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if expected is None and len(tokens) in (15, 16):
            expected = len(tokens)
        if len(tokens) != expected:
            wanted = "15 (label) or 16 (result)" if expected is None else str(expected)
            message = f"expected {wanted} columns, got {len(tokens)}"
            if with_score is None and expected is not None:
                message += " (all lines of a file must have the same number of columns)"
            raise DataFormatError(path, message, line=line_number)
        names.append(tokens[0])
        occluded.append(_parse_int(path, line_number, "occluded", tokens[2]))
        rows.append(
            [
                _parse_float(path, line_number, RESULT_COLUMNS[k], tokens[k])
                for k in range(1, len(tokens))
                if k != 2
            ]
        )
        _check_object(path, line_number, tokens[0], occluded[-1], rows[-1])
    if not rows:
        return FrameAnnotations.empty()
    values = np.array(rows, dtype=np.float64)  # columns: truncated, alpha, bbox(4), h w l, x y z, ry[, score]
    n = len(rows)
    return FrameAnnotations(
        name=np.array(names, dtype=str),
        truncated=values[:, 0],
        occluded=np.array(occluded, dtype=np.int64),
        alpha=values[:, 1],
        bbox=values[:, 2:6],
        dimensions=values[:, 6:9],
        location=values[:, 9:12],
        rotation_y=values[:, 12],
        score=values[:, 13] if values.shape[1] == 14 else np.full(n, np.nan),
    )


def _format_object(objects: FrameAnnotations, i: int, with_score: bool) -> str:
    decimals = 4 if with_score else 2
    numbers = [
        objects.alpha[i],
        *objects.bbox[i],
        *objects.dimensions[i],
        *objects.location[i],
        objects.rotation_y[i],
    ]
    if with_score:
        numbers.append(objects.score[i])
    body = " ".join(f"{value:.{decimals}f}" for value in numbers)
    return f"{objects.name[i]} {objects.truncated[i]:.2f} {int(objects.occluded[i])} {body}"


def write_label_file(path: PathLike, objects: FrameAnnotations, with_score: bool | None = None) -> None:
    """Write objects as a KITTI label or result file, atomically (temporary file + ``os.replace``).

    Args:
        path: destination ``.txt``; parent folders are created.
        objects: the objects to write.
        with_score: True writes a result file (16 columns, 4 decimals, like the devkit's /
            mmdetection3d's output), False a label file (15 columns, 2 decimals as in the KITTI labels).
            None: result file when all scores are finite, label file when all are NaN.

    Truncation always gets 2 decimals and occlusion is an integer.
    """
    finite = np.isfinite(objects.score)
    if with_score is None:
        if finite.any() and not finite.all():
            raise ValueError("some scores are NaN and some are not: pass with_score explicitly")
        with_score = bool(finite.any())
    if with_score and not finite.all():
        raise ValueError("cannot write a result file: some scores are NaN")
    bad_names = [name for name in objects.name if not name or any(ch.isspace() for ch in name)]
    if bad_names:
        raise ValueError(f"class names must be non-empty without whitespace, got {bad_names[:3]}")
    lines = [_format_object(objects, i, with_score) + "\n" for i in range(len(objects))]
    atomic_write_text(Path(path), "".join(lines))


def _frame_ids(directory: Path) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.txt") if p.is_file())


def _require_directory(directory: Path) -> None:
    if not directory.is_dir():
        raise DataFormatError(directory, "directory not found")


def read_label_dir(
    directory: PathLike,
    ids: Iterable[str] | None = None,
    with_score: bool | None = None,
    missing_ok: bool = False,
) -> dict[str, FrameAnnotations]:
    """Read ``{id}.txt`` label or result files of a folder.

    Args:
        directory: folder such as ``training/label_2``.
        ids: frame ids (file stems, e.g. "000042") in the wanted order; None = every ``*.txt``, sorted.
        with_score: as in :func:`read_label_file`.
        missing_ok: a missing file gives zero objects instead of an error (result folders).

    Returns:
        ``{id: FrameAnnotations}`` in the order of ``ids``.
    """
    directory = Path(directory)
    _require_directory(directory)
    frame_ids = _frame_ids(directory) if ids is None else list(ids)
    objects = {}
    for frame_id in frame_ids:
        path = directory / f"{frame_id}.txt"
        if missing_ok and not path.exists():
            objects[frame_id] = FrameAnnotations.empty()
        else:
            objects[frame_id] = read_label_file(path, with_score=with_score)
    return objects


_FRAME_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def read_split_file(path: PathLike) -> list[str]:
    """Frame ids of a split file (``ImageSets/val.txt``): one id per line, blank lines skipped.

    An id is a file stem: letters, digits, ``_ . -`` (no path separators, NUL or other control characters).
    """
    path = Path(path)
    ids = []
    for line_number, line in enumerate(_read_lines(path), start=1):
        tokens = line.split()
        if len(tokens) > 1:
            raise DataFormatError(
                path, f"expected one frame id per line, got {len(tokens)} tokens", line=line_number
            )
        if tokens and (not _FRAME_ID.fullmatch(tokens[0]) or tokens[0] in (".", "..")):
            raise DataFormatError(
                path, f"frame id {tokens[0][:40]!r} is not a file stem (letters, digits, _ . -)", line=line_number
            )
        ids.extend(tokens)
    return ids


# ----------------------------------------------------------------------------------------------------------
# Calibration
# ----------------------------------------------------------------------------------------------------------

_CALIB_SHAPES = {
    "P0": (3, 4), "P1": (3, 4), "P2": (3, 4), "P3": (3, 4),
    "R0_rect": (3, 3), "Tr_velo_to_cam": (3, 4), "Tr_imu_to_velo": (3, 4),
}  # fmt: skip
_CALIB_ALIASES = {"R_rect": "R0_rect", "Tr_velo_cam": "Tr_velo_to_cam", "Tr_imu_velo": "Tr_imu_to_velo"}
_CALIB_OPTIONAL = ("Tr_imu_to_velo",)


def _homogeneous(matrix: np.ndarray) -> np.ndarray:
    """(3, 3) or (3, 4) -> (4, 4) with a [0, 0, 0, 1] last row."""
    out = np.eye(4)
    out[: matrix.shape[0], : matrix.shape[1]] = matrix
    return out


@dataclass
class KittiCalib:
    """Calibration of one KITTI frame.

    Attributes:
        P0, P1, P2, P3: (3, 4) projection matrices of the 4 cameras (rectified camera 0 coordinates ->
            pixels); P2 is the left colour camera of the object benchmark.
        R0_rect: (3, 3) rectifying rotation (camera 0 -> rectified camera 0).
        Tr_velo_to_cam: (3, 4) LiDAR -> camera 0 rigid transform.
        Tr_imu_to_velo: (3, 4) IMU -> LiDAR rigid transform, or None when the file has none.
        extra: any other ``KEY: numbers`` lines, as flat arrays.
    """

    P0: np.ndarray
    P1: np.ndarray
    P2: np.ndarray
    P3: np.ndarray
    R0_rect: np.ndarray
    Tr_velo_to_cam: np.ndarray
    Tr_imu_to_velo: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, shape in _CALIB_SHAPES.items():
            value = getattr(self, key)
            if value is None and key in _CALIB_OPTIONAL:
                continue
            value = np.asarray(value, dtype=np.float64)
            if value.shape != shape:
                raise ShapeError(f"KittiCalib.{key} must have shape {shape}, got {value.shape}")
            setattr(self, key, value)

    def projection(self, camera: int = 2) -> np.ndarray:
        """(3, 4) projection matrix ``P{camera}``."""
        if camera not in (0, 1, 2, 3):
            raise ValueError(f"camera must be 0..3, got {camera}")
        return getattr(self, f"P{camera}")

    def intrinsics(self, camera: int = 2) -> np.ndarray:
        """(3, 3) intrinsics ``K`` of a camera: the left 3x3 block of its projection matrix (pixels)."""
        return self.projection(camera)[:, :3].copy()

    @property
    def K(self) -> np.ndarray:
        """(3, 3) intrinsics of camera 2 (the object benchmark's image_2)."""
        return self.intrinsics(2)

    def scaled(self, scale_x: float, scale_y: float | None = None) -> KittiCalib:
        """Calibration for the images resized by ``(scale_x, scale_y)``: rows 0 and 1 of every P are scaled.

        Uses the ``u' = s * u`` pixel convention (the one of most monocular 3D detectors).
        """
        scale_y = scale_x if scale_y is None else scale_y
        scaling = np.diag([scale_x, scale_y, 1.0])
        return KittiCalib(
            P0=scaling @ self.P0,
            P1=scaling @ self.P1,
            P2=scaling @ self.P2,
            P3=scaling @ self.P3,
            R0_rect=self.R0_rect.copy(),
            Tr_velo_to_cam=self.Tr_velo_to_cam.copy(),
            Tr_imu_to_velo=None if self.Tr_imu_to_velo is None else self.Tr_imu_to_velo.copy(),
            extra=dict(self.extra),
        )

    def resized(self, original_size: tuple[int, int], new_size: tuple[int, int]) -> KittiCalib:
        """Calibration for images resized from ``original_size`` to ``new_size``, both ``(width, height)``."""
        return self.scaled(new_size[0] / original_size[0], new_size[1] / original_size[1])

    def lidar_to_rect(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) LiDAR points -> (N, 3) rectified camera coordinates (metres)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        transform = _homogeneous(self.R0_rect) @ _homogeneous(self.Tr_velo_to_cam)
        return points @ transform[:3, :3].T + transform[:3, 3]

    def rect_to_lidar(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) rectified camera coordinates -> (N, 3) LiDAR points (metres)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        transform = np.linalg.inv(_homogeneous(self.R0_rect) @ _homogeneous(self.Tr_velo_to_cam))
        return points @ transform[:3, :3].T + transform[:3, 3]

    def rect_to_image(self, points: np.ndarray, camera: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """Project (N, 3) rectified camera points: returns (N, 2) pixels and (N,) projective depth."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        matrix = self.projection(camera)
        homogeneous = points @ matrix[:, :3].T + matrix[:, 3]
        depth = homogeneous[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            return homogeneous[:, :2] / depth[:, None], depth


def read_calib_file(path: PathLike) -> KittiCalib:
    """Read a KITTI object calibration file (``training/calib/000000.txt``).

    Raises:
        DataFormatError: missing file, non-numeric values, wrong number of values for a known key, or a
            required key (P0-P3, R0_rect, Tr_velo_to_cam) absent.
    """
    path = Path(path)
    matrices: dict[str, np.ndarray] = {}
    extra: dict[str, np.ndarray] = {}
    for line_number, line in enumerate(_read_lines(path), start=1):
        tokens = line.split()
        if not tokens:
            continue
        key = tokens[0].rstrip(":")
        key = _CALIB_ALIASES.get(key, key)
        values = np.array([_parse_float(path, line_number, key, token) for token in tokens[1:]])
        if key in _CALIB_SHAPES:
            shape = _CALIB_SHAPES[key]
            if values.size != shape[0] * shape[1]:
                message = f"{key} needs {shape[0] * shape[1]} values, got {values.size}"
                raise DataFormatError(path, message, line=line_number)
            matrices[key] = values.reshape(shape)
        else:
            extra[key] = values
    missing = [key for key in _CALIB_SHAPES if key not in matrices and key not in _CALIB_OPTIONAL]
    if missing:
        raise DataFormatError(path, f"missing calibration entries: {', '.join(missing)}")
    rotation = matrices["R0_rect"]
    with np.errstate(over="ignore", invalid="ignore"):  # huge entries: refused below, without numpy's warning
        not_rotation = (not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-3)
                        or not abs(np.linalg.det(rotation) - 1) <= 1e-3)
    if not_rotation:
        raise DataFormatError(path, "R0_rect is not a rotation matrix (R·Rᵀ ≠ I or det ≠ 1)")
    for key in ("P0", "P1", "P2", "P3"):
        focal = matrices[key][[0, 1], [0, 1]]
        if np.any(np.abs(focal) < 1e-6) or matrices[key][2, 2] == 0:
            message = f"{key} has a zero focal length (fx={focal[0]:g}, fy={focal[1]:g}) or P[2,2] = 0"
            raise DataFormatError(path, message)
    return KittiCalib(**matrices, extra=extra)


def write_calib_file(path: PathLike, calib: KittiCalib) -> None:
    """Write a calibration file in KITTI's layout (``KEY: `` + row-major values as ``%.12e``), atomically."""
    lines = []
    for key in _CALIB_SHAPES:
        value = getattr(calib, key)
        if value is not None:
            lines.append(f"{key}: " + " ".join(f"{v:.12e}" for v in np.asarray(value).ravel()))
    for key, value in calib.extra.items():
        lines.append(f"{key}: " + " ".join(f"{v:.12e}" for v in np.asarray(value).ravel()))
    atomic_write_text(Path(path), "\n".join(lines) + "\n")


# ----------------------------------------------------------------------------------------------------------
# Evaluation of folders
# ----------------------------------------------------------------------------------------------------------


def evaluate_kitti_dirs(
    gt_dir: PathLike,
    result_dir: PathLike,
    split_file: PathLike | None = None,
    classes: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
    metrics: Sequence[str] = METRICS,
) -> KittiEvalResult:
    """Official KITTI evaluation of a folder of result files against a folder of label files.

    Args:
        gt_dir: label folder (``training/label_2``).
        result_dir: folder with one 16-column result file per frame. A missing file means no detections for
            that frame (as in the devkit); a folder without any ``*.txt`` is an error.
        split_file: frame ids to evaluate (``ImageSets/val.txt``); default: every label file in ``gt_dir``.
        classes: classes to evaluate.
        metrics: subset of ("bbox", "bev", "3d").

    Returns:
        :class:`distill3d.metrics.kitti.KittiEvalResult` (``.table()``, ``.to_dict()``).
    """
    gt_dir, result_dir = Path(gt_dir), Path(result_dir)
    _require_directory(gt_dir)
    _require_directory(result_dir)
    ids = read_split_file(split_file) if split_file is not None else _frame_ids(gt_dir)
    if not ids:
        where = split_file if split_file is not None else gt_dir
        raise DataFormatError(where, "no frames to evaluate")
    if not _frame_ids(result_dir):
        raise DataFormatError(result_dir, "no result files (*.txt) in this folder")
    labels = read_label_dir(gt_dir, ids)
    result_ids = set(_frame_ids(result_dir))
    matched = result_ids.intersection(ids)
    if not matched:
        warnings.warn(f"{result_dir}: no result file matches an evaluated frame id (e.g. {ids[0]}.txt): every AP is 0",
                      stacklevel=2)
    elif len(matched) < len(result_ids):
        stray = sorted(result_ids - matched)
        warnings.warn(f"{result_dir}: {len(stray)} result files match no evaluated frame and are ignored "
                      f"(e.g. {stray[0]}.txt)", stacklevel=2)
    results = read_label_dir(result_dir, ids, with_score=True, missing_ok=True)
    return evaluate_kitti(
        [labels[i] for i in ids],
        [results[i] for i in ids],
        classes=classes,
        metrics=metrics,
    )
