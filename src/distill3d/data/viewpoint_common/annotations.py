"""Annotation records of Pascal3D+ and ObjectNet3D → a columnar object table; the split lists.

Annotation record (``Annotations/…/<id>.mat``, the same MATLAB layout in both datasets)
------------------------------------------------------------------------------------
``record`` (1×1 struct) with ``filename`` (image file name) and ``objects`` (1×n struct array); per object:

* ``class`` (char), ``bbox`` (1×4 ``x1 y1 x2 y2``, MATLAB pixels), ``truncated``, ``occluded``, ``difficult``
  (0/1; empty reads as 0), ``cad_index`` (1-based CAD model of the class), ``anchors`` (keypoint struct;
  ``has_keypoints`` = the field exists and is not empty, as PoseFromShape's ``create_annotation.py``);
* ``viewpoint`` (1×1 struct, empty when the object has no pose): ``azimuth``/``elevation`` in degrees, each
  falling back to ``azimuth_coarse``/``elevation_coarse`` when missing or empty (ObjectNet3D toolbox and
  PoseFromShape); ``theta`` (in-plane, degrees); ``distance`` (CAD units); ``focal``, ``viewport``, ``px``,
  ``py`` (camera). Empty camera fields take the ObjectNet3D toolbox's defaults (``show_pose_annotations.m``):
  θ = 0, distance = 5, focal = 1, viewport = 2000, principal point = box centre.

Angle conversion: ``azimuth = radians(a mod 360)`` ∈ [0, 2π) (PoseFromShape applies ``(360 + a) % 360`` to
ObjectNet3D; Pascal3D+ is already in [0, 360)), ``elevation = radians(e)``, ``inplane = radians(θ)`` wrapped to
[−π, π) (PoseFromShape's label ``(θ + 180) % 360`` covers the same turn). These are the Pascal3D+ angles of
:func:`distill3d.geometry.rotations.viewpoint_to_matrix`, ``R = Rz(θ)·Rx(e − π/2)·Rz(−a)``.

Files are parsed in a child process (:mod:`distill3d.data.viewpoint_common.isolation`). Impossible values (infinite
angles or boxes, non-positive distance/focal/viewport, non-integer cad_index) are refused with the file named.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from distill3d.data.viewpoint_common.isolation import PathLike, loadmat_or_raise, mat_field, run_isolated
from distill3d.errors import DataFormatError

#: Toolbox defaults for empty camera fields (ObjectNet3D ``show_pose_annotations.m``).
DEFAULT_THETA_DEG, DEFAULT_DISTANCE, DEFAULT_FOCAL, DEFAULT_VIEWPORT = 0.0, 5.0, 1.0, 2000.0

# ----------------------------------------------------------------------------------------------------------
# Angles
# ----------------------------------------------------------------------------------------------------------


def viewpoint_degrees_to_radians(azimuth: Any, elevation: Any, theta: Any) -> np.ndarray:
    """Annotation degrees (broadcast (...)) → (..., 3) radians: azimuth [0, 2π), elevation, inplane [−π, π)."""
    azimuth, elevation, theta = np.broadcast_arrays(*(np.asarray(x, np.float64) for x in (azimuth, elevation, theta)))
    azimuth_rad = np.radians(np.mod(azimuth, 360.0))
    azimuth_rad = np.where(azimuth_rad >= 2 * math.pi, azimuth_rad - 2 * math.pi, azimuth_rad)
    inplane_rad = np.radians(np.mod(theta + 180.0, 360.0) - 180.0)
    return np.stack([azimuth_rad, np.radians(elevation), inplane_rad], axis=-1)


# ----------------------------------------------------------------------------------------------------------
# Annotation records → a columnar object table
# ----------------------------------------------------------------------------------------------------------

#: Numeric columns of :class:`ObjectTable` (float64 unless listed in ``_INT_COLUMNS``).
_COLUMNS = (
    "object_index", "cad_index", "truncated", "occluded", "difficult", "has_keypoints", "has_viewpoint",
    "azimuth_deg", "elevation_deg", "theta_deg", "distance", "focal", "viewport", "px", "py",
)  # fmt: skip
_INT_COLUMNS = {"object_index", "cad_index", "truncated", "occluded", "difficult", "has_keypoints", "has_viewpoint"}


@dataclass
class ObjectTable:
    """Every object of a set of annotation files, one row each (N rows).

    ``image_id`` (N,) str (annotation file stem), ``image_file`` (N,) str (``record.filename`` or ``""``),
    ``class_name`` (N,) str, ``bbox`` (N, 4) float64 ``x1 y1 x2 y2`` as stored, and the numeric columns in
    ``values`` (see ``_COLUMNS``; angles in degrees as stored; NaN where a camera field is empty).
    """

    image_id: np.ndarray
    image_file: np.ndarray
    class_name: np.ndarray
    bbox: np.ndarray
    values: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.image_id)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[name]

    def select(self, keep: np.ndarray) -> ObjectTable:
        """The rows where ``keep`` (N,) bool is true, or the rows listed in an index array."""
        return ObjectTable(
            self.image_id[keep], self.image_file[keep], self.class_name[keep], self.bbox[keep],
            {k: v[keep] for k, v in self.values.items()},
        )  # fmt: skip

    @staticmethod
    def concatenate(tables: Sequence[ObjectTable]) -> ObjectTable:
        """Rows of all ``tables`` in order."""
        if not tables:
            return _empty_table()
        return ObjectTable(
            np.concatenate([t.image_id for t in tables]),
            np.concatenate([t.image_file for t in tables]),
            np.concatenate([t.class_name for t in tables]),
            np.concatenate([t.bbox for t in tables]),
            {k: np.concatenate([t.values[k] for t in tables]) for k in _COLUMNS},
        )


def _empty_table() -> ObjectTable:
    values = {k: np.zeros(0, np.int64 if k in _INT_COLUMNS else np.float64) for k in _COLUMNS}
    return ObjectTable(np.zeros(0, str), np.zeros(0, str), np.zeros(0, str), np.zeros((0, 4)), values)


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, np.ndarray) and value.size == 0)


def _number(path: PathLike, value: Any, what: str) -> float:
    """A scalar field → float (NaN when missing or empty)."""
    if _is_empty(value):
        return math.nan
    try:
        array = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise DataFormatError(path, f"{what} must be a number, got {value!r}") from None
    if array.size != 1:
        raise DataFormatError(path, f"{what} must be a scalar, got shape {array.shape}")
    return float(array.reshape(()))


def _text(path: PathLike, value: Any, what: str) -> str:
    if _is_empty(value):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind == "U" and value.size == 1:
        return str(value.reshape(()))
    raise DataFormatError(path, f"{what} must be a string, got {value!r}")


#: Largest pixel coordinate accepted in a box (anything larger is a corrupt value, not an image).
_MAX_PIXEL = 1e7


def _viewpoint_row(path: PathLike, viewpoint: Any, where: str) -> dict[str, float]:
    if _is_empty(viewpoint) or not hasattr(viewpoint, "_fieldnames"):
        return {"has_viewpoint": 0, **{k: math.nan for k in _COLUMNS if k.endswith("_deg")}}
    row = {"has_viewpoint": 1}
    for angle in ("azimuth", "elevation"):
        value = mat_field(viewpoint, angle)
        if _is_empty(value):
            value = mat_field(viewpoint, f"{angle}_coarse")
        row[f"{angle}_deg"] = _number(path, value, f"{where}.viewpoint.{angle}")
    row["theta_deg"] = _number(path, mat_field(viewpoint, "theta"), f"{where}.viewpoint.theta")
    for name in ("distance", "focal", "viewport", "px", "py"):
        row[name] = _number(path, mat_field(viewpoint, name), f"{where}.viewpoint.{name}")
    for name, value in row.items():
        if name != "has_viewpoint" and math.isinf(value):
            raise DataFormatError(path, f"{where}.viewpoint.{name.removesuffix('_deg')} is infinite")
    for name in ("distance", "focal", "viewport"):  # NaN = empty = the toolbox default
        if row[name] <= 0:
            raise DataFormatError(path, f"{where}.viewpoint.{name} must be positive, got {row[name]:g}")
    if math.isnan(row["azimuth_deg"]) or math.isnan(row["elevation_deg"]):
        row["has_viewpoint"] = 0
    return row


def read_annotation_file(path: PathLike) -> ObjectTable:
    """Parse one ``record`` MAT file (see the module docstring) into an :class:`ObjectTable`.

    The file is read in a child process (:func:`run_isolated`): a corrupt file raises DataFormatError.
    """
    return run_isolated(_parse_annotation_file, [Path(path)])[0]


def _parse_annotation_file(path: Path) -> ObjectTable:
    """:func:`read_annotation_file` in this process (the reading child's work)."""
    mat = loadmat_or_raise(path, "MATLAB annotation")
    record = mat.get("record")
    if record is None or not hasattr(record, "_fieldnames"):
        raise DataFormatError(path, "no 'record' struct in the annotation file")
    objects = mat_field(record, "objects")
    if objects is None:
        raise DataFormatError(path, "record has no 'objects' field")
    objects = [objects] if hasattr(objects, "_fieldnames") else list(np.asarray(objects, dtype=object).reshape(-1))
    image_file = _text(path, mat_field(record, "filename"), "record.filename")
    rows: list[dict[str, float]] = []
    classes, boxes = [], []
    for number, obj in enumerate(objects):
        where = f"record.objects({number + 1})"
        if not hasattr(obj, "_fieldnames"):
            raise DataFormatError(path, f"{where} is not a struct")
        for required in ("class", "bbox"):
            if required not in obj._fieldnames:
                raise DataFormatError(path, f"{where} has no '{required}' field")
        bbox = np.asarray(obj.bbox, np.float64).reshape(-1) if not _is_empty(obj.bbox) else np.full(4, np.nan)
        if bbox.size != 4:
            raise DataFormatError(path, f"{where}.bbox must have 4 values, got {bbox.size}")
        row = _viewpoint_row(path, mat_field(obj, "viewpoint"), where)
        if not np.all(np.isfinite(bbox) | np.isnan(bbox)) or np.any(np.abs(bbox) > _MAX_PIXEL):
            raise DataFormatError(path, f"{where}.bbox must hold finite pixel coordinates, got {bbox.tolist()}")
        row["object_index"] = number
        cad = _number(path, mat_field(obj, "cad_index"), f"{where}.cad_index")
        if not math.isnan(cad) and (not 0 <= cad < 2**31 or cad != round(cad)):
            raise DataFormatError(path, f"{where}.cad_index must be a positive integer, got {cad:g}")
        row["cad_index"] = 0 if math.isnan(cad) else int(cad)
        for flag in ("truncated", "occluded", "difficult"):
            value = _number(path, mat_field(obj, flag), f"{where}.{flag}")
            row[flag] = 0 if math.isnan(value) else int(value != 0)
        row["has_keypoints"] = int(not _is_empty(mat_field(obj, "anchors")))
        classes.append(_text(path, mat_field(obj, "class"), f"{where}.class"))
        boxes.append(bbox)
        rows.append(row)
    n = len(rows)
    values = {
        k: np.array([r.get(k, math.nan) for r in rows], np.int64 if k in _INT_COLUMNS else np.float64) for k in _COLUMNS
    }
    return ObjectTable(
        np.full(n, path.stem, dtype=object).astype(str) if n else np.zeros(0, str),
        np.full(n, image_file, dtype=object).astype(str) if n else np.zeros(0, str),
        np.array(classes, dtype=str) if n else np.zeros(0, str),
        np.stack(boxes) if n else np.zeros((0, 4)),
        values,
    )


_TABLE_CACHE: dict[tuple[str, tuple[str, ...], int], ObjectTable] = {}


def read_annotation_files(
    folder: Path, stems: Iterable[str], missing: Literal["raise", "skip"] = "raise"
) -> ObjectTable:
    """All objects of ``folder/<stem>.mat`` for ``stems``, cached in memory (per folder, stem list and mtime).

    ``missing="skip"`` leaves out (with one warning) stems without an annotation file.
    """
    stems = tuple(stems)
    try:
        stamp = folder.stat().st_mtime_ns
    except FileNotFoundError:
        raise DataFormatError(folder, "annotation folder not found") from None
    key = (str(folder.resolve()), stems, stamp)
    if key not in _TABLE_CACHE:
        paths, absent = [], []
        for stem in stems:
            path = folder / f"{stem}.mat"
            if missing == "skip" and not path.exists():
                absent.append(stem)
                continue
            paths.append(path)
        tables = run_isolated(_parse_annotation_file, paths)  # one child process reads them all
        if absent:
            warnings.warn(
                f"{folder}: {len(absent)} listed images have no annotation (e.g. {absent[0]}); skipped", stacklevel=3
            )
        _TABLE_CACHE[key] = ObjectTable.concatenate(tables)
    return _TABLE_CACHE[key]


def read_split_list(path: Path) -> list[str]:
    """Image ids of a split list: the first word of each non-empty line (VOC lists carry a ±1 label after it)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DataFormatError(path, "split list not found") from None
    except OSError as error:
        raise DataFormatError(path, f"cannot read split list: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise DataFormatError(path, f"not a UTF-8 text file ({error.reason} at byte {error.start})") from None
    ids = [line.split()[0] for line in text.splitlines() if line.strip()]
    bad = next((i for i in ids if "/" in i or "\\" in i or "\x00" in i or i in (".", "..")), None)
    if bad is not None:
        raise DataFormatError(path, f"image id {bad[:40]!r} is not a file stem")
    return ids


