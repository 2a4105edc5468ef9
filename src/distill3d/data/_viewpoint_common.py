"""Shared machinery of the real viewpoint datasets (Pascal3D+, ObjectNet3D): annotation records, the object
index, crops that keep the intrinsics in sync, CAD shapes and the sample dictionary.

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

Reading: ``.mat`` files are parsed by ``scipy.io.loadmat`` inside one forked child process per batch of files
(:func:`run_isolated`), because scipy's native reader segfaults on some corrupt files (33 of 2,000 single-byte
mutations of a record file, measured): a crash, a hang (60 s without progress) or a memory blow-up (4 GiB cap)
becomes a :class:`DataFormatError` naming the file. One fork costs ≈10 ms, so a folder of any size pays it once.
Impossible values (infinite angles or boxes, non-positive distance/focal/viewport, non-integer cad_index) are
refused with the file named.

Angle conversion: ``azimuth = radians(a mod 360)`` ∈ [0, 2π) (PoseFromShape applies ``(360 + a) % 360`` to
ObjectNet3D; Pascal3D+ is already in [0, 360)), ``elevation = radians(e)``, ``inplane = radians(θ)`` wrapped to
[−π, π) (PoseFromShape's label ``(θ + 180) % 360`` covers the same turn). These are the Pascal3D+ angles of
:func:`distill3d.geometry.rotations.viewpoint_to_matrix`, ``R = Rz(θ)·Rx(e − π/2)·Rz(−a)``.

Camera: the toolbox projects ``u = M·f·x/(−z) + px``, ``v = −M·f·y/(−z) + py`` (after the in-plane turn) with
M = viewport, 1-based pixels; in our OpenCV convention (0-based pixel centres) that is
``K = [[M·f, 0, px − 1], [0, M·f, py − 1], [0, 0, 1]]``, ``R = diag(1, −1, −1)·R_pascal`` and
``t = (0, 0, distance)`` for CAD coordinates. Samples express t and distance for the **normalised** point
cloud ``p = (X − c)/s`` instead: ``t = (R·c + (0, 0, d))/s``, ``distance = d/s`` (a uniform scale of the camera
frame leaves the projection unchanged), so ``project(R·points + t, K)`` overlays the image crop.

Crop (PoseFromShape ``dataset.py`` at test time): the box ``int(bbox)`` is cut out of the image as the PIL box
``(left, upper, right, lower)`` (pixels ``[left, right) × [upper, lower)``; parts outside the image are
black), resized so its longer side is ``image_size`` (aspect kept, bilinear) and zero-padded to a square with
``ceil`` of the slack on the left/top. K follows every step.

CAD shape: normalised like the shapes world (centred on its bounding box, half-diagonal 1, so inside the
unit sphere) and sampled to ``n_points`` with ``numpy.random.default_rng([dataset id, seed, split id,
index])``: a PLY point cloud is subsampled without replacement (with replacement when it has fewer points);
a mesh is sampled area-weighted and also gives ``normals``.
"""

from __future__ import annotations

import faulthandler
import math
import mmap
import os
import pickle
import select
import signal
import struct
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
import scipy.io
import torch
from PIL import Image
from torch.utils.data import Dataset

from distill3d.data.mesh_io import read_off, read_ply_points, sample_mesh_surface
from distill3d.errors import DataFormatError, Distill3dError
from distill3d.geometry.camera import crop_and_resize_intrinsics
from distill3d.geometry.rotations import viewpoint_to_opencv_rotation

PathLike = str | os.PathLike
ShapeSource = Literal["auto", "pointcloud", "off", "mat"]
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}

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


def _field(struct: Any, name: str) -> Any:
    """A struct field, or None when the struct lacks it."""
    return getattr(struct, name) if name in getattr(struct, "_fieldnames", ()) else None


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


#: A crop box may exceed its image (PoseFromShape pads with black) by at most this factor of the image side.
_MAX_CROP_FACTOR = 4

#: Largest pixel coordinate accepted in a box (anything larger is a corrupt value, not an image).
_MAX_PIXEL = 1e7


def _viewpoint_row(path: PathLike, viewpoint: Any, where: str) -> dict[str, float]:
    if _is_empty(viewpoint) or not hasattr(viewpoint, "_fieldnames"):
        return {"has_viewpoint": 0, **{k: math.nan for k in _COLUMNS if k.endswith("_deg")}}
    row = {"has_viewpoint": 1}
    for angle in ("azimuth", "elevation"):
        value = _field(viewpoint, angle)
        if _is_empty(value):
            value = _field(viewpoint, f"{angle}_coarse")
        row[f"{angle}_deg"] = _number(path, value, f"{where}.viewpoint.{angle}")
    row["theta_deg"] = _number(path, _field(viewpoint, "theta"), f"{where}.viewpoint.theta")
    for name in ("distance", "focal", "viewport", "px", "py"):
        row[name] = _number(path, _field(viewpoint, name), f"{where}.viewpoint.{name}")
    for name, value in row.items():
        if name != "has_viewpoint" and math.isinf(value):
            raise DataFormatError(path, f"{where}.viewpoint.{name.removesuffix('_deg')} is infinite")
    for name in ("distance", "focal", "viewport"):  # NaN = empty = the toolbox default
        if row[name] <= 0:
            raise DataFormatError(path, f"{where}.viewpoint.{name} must be positive, got {row[name]:g}")
    if math.isnan(row["azimuth_deg"]) or math.isnan(row["elevation_deg"]):
        row["has_viewpoint"] = 0
    return row


# ----------------------------------------------------------------------------------------------------------
# MATLAB files in a child process: a corrupt file must never kill the caller
# ----------------------------------------------------------------------------------------------------------

#: Seconds one ``.mat`` file may take in the reading child before it is declared hung.
MAT_TIMEOUT_S = 60.0
#: Extra address space (bytes) the reading child may map beyond what the parent already has.
MAT_MEMORY_BYTES = 4 << 30

ResultT = TypeVar("ResultT")


def _loadmat(path: Path, what: str) -> dict[str, Any]:
    """``scipy.io.loadmat`` with every Python-level failure turned into a DataFormatError naming ``path``."""
    try:
        return scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except FileNotFoundError:
        raise DataFormatError(path, f"{what} not found") from None
    except MemoryError:
        raise DataFormatError(path, f"cannot read {what}: it asks for too much memory (corrupt file?)") from None
    except RecursionError:
        raise DataFormatError(path, f"cannot read {what}: nested too deeply (corrupt file?)") from None
    except Exception as error:  # scipy raises ValueError, TypeError, MatReadError, zlib.error… for corrupt files
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise DataFormatError(path, f"cannot read {what}: {first}") from None


def _child_limits() -> None:
    """In the reading child: cap its address space so a corrupt size field cannot exhaust the machine."""
    try:
        import resource

        with open("/proc/self/statm") as handle:
            mapped = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (mapped + MAT_MEMORY_BYTES, resource.RLIM_INFINITY))
    except (OSError, ValueError, ImportError):
        pass


def run_isolated(
    function: Callable[[Path], ResultT], paths: Sequence[Path], timeout_s: float = MAT_TIMEOUT_S
) -> list[ResultT]:
    """``[function(p) for p in paths]`` computed in one forked child process, so that a crash of native code
    (scipy's MAT reader segfaults on some corrupt files) or a hang becomes a :class:`DataFormatError` naming
    the file being read, and the caller lives on.

    ``function`` must return picklable values and raise :class:`DataFormatError` for bad input; the child
    reports its progress through a shared counter, so one fork serves any number of files (a fork costs a few
    milliseconds). Without ``os.fork`` (Windows) the files are read in this process.
    """
    paths = list(paths)
    if not paths:
        return []
    if not hasattr(os, "fork"):
        return [function(p) for p in paths]
    progress = mmap.mmap(-1, 8)  # anonymous shared memory: index of the file the child is reading
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # ------------------------------------------------------------------------------ child
        status = 0
        try:
            os.close(read_fd)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            faulthandler.disable()  # a crash is reported by the parent, in one line
            _child_limits()
            results: list[Any] = []
            try:
                for index, path in enumerate(paths):
                    progress[:8] = struct.pack("<q", index)
                    results.append(function(path))
                message: tuple[str, Any] = ("ok", results)
            except DataFormatError as error:
                message = ("error", (str(error.path), str(error)))
            except MemoryError:
                message = ("error", (str(paths[index]), f"{paths[index]}: needs more memory than allowed (corrupt?)"))
            except Exception as error:  # a bug, not the file: report it with its type
                message = ("bug", f"{type(error).__name__}: {error}")
            payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(payload)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    # ---------------------------------------------------------------------------------------------- parent
    os.close(write_fd)
    chunks: list[bytes] = []
    last_index, last_change = -1, time.monotonic()
    timed_out, finished = False, False
    try:
        while True:
            ready, _, _ = select.select([read_fd], [], [], 0.5)
            if ready:
                chunk = os.read(read_fd, 1 << 20)
                if not chunk:
                    finished = True
                    break
                chunks.append(chunk)
                continue
            index = struct.unpack("<q", progress[:8])[0]
            if index != last_index:
                last_index, last_change = index, time.monotonic()
            elif time.monotonic() - last_change > timeout_s:
                timed_out = True
                break
    finally:
        os.close(read_fd)
        if not finished:  # a hang, or this process was interrupted: the child must not outlive the call
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    index = min(max(struct.unpack("<q", progress[:8])[0], 0), len(paths) - 1)
    progress.close()
    if timed_out:
        raise DataFormatError(paths[index], f"reading took more than {timeout_s:g} s (corrupt file?); gave up")
    if os.WIFSIGNALED(status) or not chunks:
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"status {os.WEXITSTATUS(status)}"
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            how += ", probably out of memory"
        raise DataFormatError(paths[index], f"corrupt file: the MATLAB reader crashed on it ({how})")
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "error":
        path, message = value
        prefix = f"{path}: "
        raise DataFormatError(path, message[len(prefix):] if message.startswith(prefix) else message)
    if kind == "bug":
        raise Distill3dError(f"{paths[index]}: unexpected error while reading: {value}")
    return value


def read_annotation_file(path: PathLike) -> ObjectTable:
    """Parse one ``record`` MAT file (see the module docstring) into an :class:`ObjectTable`.

    The file is read in a child process (:func:`run_isolated`): a corrupt file raises DataFormatError.
    """
    return run_isolated(_parse_annotation_file, [Path(path)])[0]


def _parse_annotation_file(path: Path) -> ObjectTable:
    """:func:`read_annotation_file` in this process (the reading child's work)."""
    mat = _loadmat(path, "MATLAB annotation")
    record = mat.get("record")
    if record is None or not hasattr(record, "_fieldnames"):
        raise DataFormatError(path, "no 'record' struct in the annotation file")
    objects = _field(record, "objects")
    if objects is None:
        raise DataFormatError(path, "record has no 'objects' field")
    objects = [objects] if hasattr(objects, "_fieldnames") else list(np.asarray(objects, dtype=object).reshape(-1))
    image_file = _text(path, _field(record, "filename"), "record.filename")
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
        row = _viewpoint_row(path, _field(obj, "viewpoint"), where)
        if not np.all(np.isfinite(bbox) | np.isnan(bbox)) or np.any(np.abs(bbox) > _MAX_PIXEL):
            raise DataFormatError(path, f"{where}.bbox must hold finite pixel coordinates, got {bbox.tolist()}")
        row["object_index"] = number
        cad = _number(path, _field(obj, "cad_index"), f"{where}.cad_index")
        if not math.isnan(cad) and (not 0 <= cad < 2**31 or cad != round(cad)):
            raise DataFormatError(path, f"{where}.cad_index must be a positive integer, got {cad:g}")
        row["cad_index"] = 0 if math.isnan(cad) else int(cad)
        for flag in ("truncated", "occluded", "difficult"):
            value = _number(path, _field(obj, flag), f"{where}.{flag}")
            row[flag] = 0 if math.isnan(value) else int(value != 0)
        row["has_keypoints"] = int(not _is_empty(_field(obj, "anchors")))
        classes.append(_text(path, _field(obj, "class"), f"{where}.class"))
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


# ----------------------------------------------------------------------------------------------------------
# Crop / resize / pad with intrinsics
# ----------------------------------------------------------------------------------------------------------


def crop_box(bbox: np.ndarray) -> tuple[int, int, int, int]:
    """PoseFromShape's crop box: the stored ``x1 y1 x2 y2`` truncated to integers (``astype(int)``)."""
    left, upper, right, lower = (int(v) for v in np.asarray(bbox, np.float64))
    return left, upper, right, lower


def crop_resize_pad(
    image: Image.Image, box: tuple[int, int, int, int], size: int, K: np.ndarray
) -> tuple[torch.Tensor, np.ndarray]:
    """Crop ``box`` (PIL ``left, upper, right, lower``), resize its longer side to ``size`` and zero-pad.

    Returns the image (3, size, size) float32 in [0, 1] and the matching K (3, 3) float64 (from the full
    image's K, pixel centres at integers).
    """
    left, upper, right, lower = box
    width, height = right - left, lower - upper
    scale = size / max(width, height)
    new_width = min(size, max(1, round(width * scale)))
    new_height = min(size, max(1, round(height * scale)))
    pad_left, pad_top = math.ceil((size - new_width) / 2), math.ceil((size - new_height) / 2)
    crop = image.crop(box).resize((new_width, new_height), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (size, size))
    canvas.paste(crop, (pad_left, pad_top))
    pixels = torch.from_numpy(np.asarray(canvas, dtype=np.uint8).copy()).permute(2, 0, 1)
    K_crop = crop_and_resize_intrinsics(
        torch.from_numpy(np.asarray(K, np.float64))[None],
        torch.tensor([box], dtype=torch.float64),
        (new_height, new_width),
    )[0].numpy()
    K_crop[0, 2] += pad_left
    K_crop[1, 2] += pad_top
    return pixels.float().div_(255.0), K_crop


def annotation_intrinsics(focal: float, viewport: float, px: float, py: float, bbox: np.ndarray) -> np.ndarray:
    """Full-image K (3, 3) from the toolbox camera (1-based principal point → 0-based; defaults for NaNs)."""
    focal = DEFAULT_FOCAL if math.isnan(focal) else focal
    viewport = DEFAULT_VIEWPORT if math.isnan(viewport) else viewport
    px = (bbox[0] + bbox[2]) / 2 if math.isnan(px) else px
    py = (bbox[1] + bbox[3]) / 2 if math.isnan(py) else py
    return np.array([[focal * viewport, 0.0, px - 1.0], [0.0, focal * viewport, py - 1.0], [0.0, 0.0, 1.0]])


def opencv_rotation(viewpoint_rad: np.ndarray) -> np.ndarray:
    """OpenCV object→camera rotation (3, 3) of a Pascal3D+ viewpoint (3,) radians: diag(1, −1, −1)·R_pascal."""
    angles = torch.from_numpy(np.asarray(viewpoint_rad, np.float64))
    return viewpoint_to_opencv_rotation(angles[0], angles[1], angles[2]).numpy()


# ----------------------------------------------------------------------------------------------------------
# CAD shapes
# ----------------------------------------------------------------------------------------------------------


@dataclass
class CadShape:
    """A CAD model normalised into the unit sphere: ``points`` (cloud) or ``vertices`` + ``faces`` (mesh).

    ``center`` (3,) and ``scale`` (half-diagonal of the bounding box) map back: ``X = p·scale + center``.
    """

    path: Path
    center: np.ndarray
    scale: float
    points: np.ndarray | None = None
    vertices: np.ndarray | None = None
    faces: np.ndarray | None = None

    @property
    def is_mesh(self) -> bool:
        return self.faces is not None


def normalise_shape(path: Path, coordinates: np.ndarray) -> tuple[np.ndarray, float]:
    """Bounding-box centre (3,) and half-diagonal of ``coordinates`` (N, 3); raises for empty/flat input."""
    if coordinates.shape[0] == 0 or not np.all(np.isfinite(coordinates)):
        raise DataFormatError(path, "CAD shape has no points or non-finite coordinates")
    low, high = coordinates.min(axis=0), coordinates.max(axis=0)
    scale = float(np.linalg.norm(high - low) / 2)
    if scale <= 0:
        raise DataFormatError(path, "CAD shape has zero extent")
    return (low + high) / 2, scale


def load_cad_shape(path: Path, kind: Literal["pointcloud", "off", "mat"], model: int = 0) -> CadShape:
    """Read and normalise one CAD model; ``model`` is the 0-based entry of a ``CAD/<class>.mat`` struct array."""
    if kind == "pointcloud":
        points = read_ply_points(path)
        center, scale = normalise_shape(path, points)
        return CadShape(path, center, scale, points=((points - center) / scale).astype(np.float32))
    if kind == "off":
        vertices, faces = read_off(path)
    else:
        vertices, faces = _read_cad_mat(path, model)
    if faces.shape[0] == 0:
        raise DataFormatError(path, "CAD mesh has no faces")
    center, scale = normalise_shape(path, vertices[np.unique(faces)])
    return CadShape(path, center, scale, vertices=(vertices - center) / scale, faces=faces)


_CAD_MAT_CACHE: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}


def _read_cad_mat(path: Path, model: int) -> tuple[np.ndarray, np.ndarray]:
    """Entry ``model`` of Pascal3D+'s ``CAD/<class>.mat`` (variable ``<class>``: struct array with ``vertices``
    (V×3) and 1-based ``faces`` (F×3)) → vertices, 0-based faces."""
    key = str(path)
    if key not in _CAD_MAT_CACHE:
        _CAD_MAT_CACHE[key] = run_isolated(_parse_cad_mat, [path])[0]
    meshes = _CAD_MAT_CACHE[key]
    if not 0 <= model < len(meshes):
        raise DataFormatError(path, f"cad_index {model + 1} outside 1…{len(meshes)}")
    return meshes[model]


def _parse_cad_mat(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every mesh of a ``CAD/<class>.mat`` file, read in this process (the reading child's work)."""
    mat = _loadmat(path, "MATLAB CAD file")
    variable = mat.get(path.stem)
    if variable is None:
        raise DataFormatError(path, f"no variable '{path.stem}' (the class's CAD struct array)")
    models = [variable] if hasattr(variable, "_fieldnames") else list(np.asarray(variable, object).reshape(-1))
    meshes = []
    for number, entry in enumerate(models):
        where = f"{path.stem}({number + 1})"
        vertices, faces = _field(entry, "vertices"), _field(entry, "faces")
        if vertices is None or faces is None:
            raise DataFormatError(path, f"{where} lacks 'vertices' or 'faces'")
        try:
            vertices = np.asarray(vertices, np.float64).reshape(-1, 3)
            faces = np.asarray(faces, np.float64).reshape(-1, 3)
        except (TypeError, ValueError):
            raise DataFormatError(path, f"{where}: vertices and faces must be numeric N×3 arrays") from None
        if not np.all(np.isfinite(vertices)):
            raise DataFormatError(path, f"{where}.vertices hold non-finite values")
        if faces.size and (
            not np.all(np.isfinite(faces)) or np.any(faces != np.round(faces))
            or faces.min() < 1 or faces.max() > len(vertices)
        ):
            raise DataFormatError(path, f"{where}.faces must be 1-based indices of its {len(vertices)} vertices")
        meshes.append((vertices, faces.astype(np.int64) - 1))
    return meshes


@dataclass
class CadLibrary:
    """Locates (:meth:`path`) and caches a dataset's normalised CAD shapes by (class, 1-based cad index)."""

    root: Path
    kind: Literal["pointcloud", "off", "mat"]
    off_folder: str
    _cache: dict[tuple[str, int], CadShape] = field(default_factory=dict)

    def path(self, category: str, cad_index: int) -> Path:
        if self.kind == "pointcloud":
            return self.root / "pointcloud" / category / f"{cad_index:02d}" / "compressed.ply"
        if self.kind == "off":
            return self.root / self.off_folder / category / f"{cad_index:02d}.off"
        return self.root / "CAD" / f"{category}.mat"

    def shape(self, category: str, cad_index: int) -> CadShape:
        key = (category, int(cad_index))
        if key not in self._cache:
            self._cache[key] = load_cad_shape(self.path(category, cad_index), self.kind, int(cad_index) - 1)
        return self._cache[key]


def choose_shape_source(root: Path, requested: ShapeSource, off_folder: str, allow_mat: bool) -> str:
    """Resolve ``"auto"``: PoseFromShape's ``pointcloud/`` if present, else ``<off_folder>/`` meshes, else
    (Pascal3D+) ``CAD/<class>.mat``."""
    if requested != "auto":
        if requested == "mat" and not allow_mat:
            raise ValueError("shape_source='mat' is only available for Pascal3D+ (CAD/<class>.mat)")
        return requested
    if (root / "pointcloud").is_dir():
        return "pointcloud"
    off_dir = root / off_folder
    if off_dir.is_dir() and any(p.is_dir() for p in off_dir.iterdir()):
        return "off"
    if allow_mat and any((root / "CAD").glob("*.mat")):
        return "mat"
    raise DataFormatError(
        root,
        f"no CAD shapes found (looked for pointcloud/, {off_folder}/<class>/*.off"
        + (", CAD/<class>.mat" if allow_mat else "")
        + ")",
    )


# ----------------------------------------------------------------------------------------------------------
# The dataset
# ----------------------------------------------------------------------------------------------------------


def resolve_categories(
    categories: Sequence[str] | str, known: Sequence[str], named: dict[str, Sequence[str]], dataset: str
) -> tuple[str, ...]:
    """A named set or a list of class names → a tuple in the dataset's class order; unknown names raise."""
    if isinstance(categories, str):
        if categories in named:
            return tuple(named[categories])
        categories = (categories,)
    unknown = [c for c in categories if c not in known]
    if unknown:
        raise ValueError(f"unknown {dataset} categories {unknown}; use class names or one of {sorted(named)}")
    chosen = set(categories)
    return tuple(c for c in known if c in chosen)


class RealViewpointDataset(Dataset):
    """Base of :class:`Pascal3DDataset` and :class:`ObjectNet3DDataset`: index in memory, images loaded lazily.

    Subclasses set ``table`` (one row per kept object), ``image_paths`` (N,) and the class metadata, then
    call :meth:`_finish`.
    """

    dataset_id: ClassVar[int] = 0
    class_names: ClassVar[tuple[str, ...]] = ()
    symmetry_orders: ClassVar[dict[str, int]] = {}

    root: Path
    split: str
    categories: tuple[str, ...]
    image_size: int
    n_points: int
    seed: int
    with_points: bool
    table: ObjectTable
    cad: CadLibrary
    dropped: dict[str, int]

    def _finish(self, table: ObjectTable, image_paths: np.ndarray) -> None:
        self.table = table
        self.image_paths = image_paths
        class_index = {name: i for i, name in enumerate(self.class_names)}
        #: (N,) int64 category of every sample (index into ``class_names``), for per-class metrics.
        self.category_ids = np.array([class_index[c] for c in table.class_name], np.int64)
        self.viewpoints = viewpoint_degrees_to_radians(
            table["azimuth_deg"], table["elevation_deg"], np.nan_to_num(table["theta_deg"], nan=DEFAULT_THETA_DEG)
        ).astype(np.float32)

    def __len__(self) -> int:
        return len(self.table)

    def _filter(self, table: ObjectTable, reasons: dict[str, np.ndarray]) -> ObjectTable:
        """Drop the rows flagged by each named reason (in order), counting them in ``self.dropped``."""
        keep = np.ones(len(table), bool)
        for reason, flagged in reasons.items():
            newly = keep & flagged
            if newly.any():
                self.dropped[reason] = self.dropped.get(reason, 0) + int(newly.sum())
            keep &= ~flagged
        return table.select(keep)

    def common_reasons(self, table: ObjectTable) -> dict[str, np.ndarray]:
        """Filters shared by both datasets: class, pose present, difficult, elevation 90°, usable box and CAD."""
        boxes = np.nan_to_num(table.bbox, nan=0.0).astype(np.int64)
        return {
            "other_category": ~np.isin(table.class_name, self.categories),
            "no_viewpoint": table["has_viewpoint"] == 0,
            "difficult": table["difficult"] != 0,
            "elevation_90": np.abs(table["elevation_deg"] - 90.0) < 1e-9,
            "empty_box": (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]),
            "no_cad": table["cad_index"] < 1,
        }

    def _load_image(self, index: int) -> Image.Image:
        path = Path(self.image_paths[index])
        if not path.exists():
            for suffix in (".jpg", ".JPEG", ".jpeg", ".png", ".JPG"):
                if path.with_suffix(suffix).exists():
                    path = path.with_suffix(suffix)
                    break
            else:
                raise DataFormatError(path, "image file not found")
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:  # PIL's error types
            raise DataFormatError(path, f"cannot read image: {error}") from None

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """One object: image (3, S, S) float32 [0, 1]; viewpoint (3,) float32 radians; category, symmetry_order,
        cad_index () int64; distance () and t (3,) in normalised-shape units; K, R (3, 3) float32; points (N, 3)
        float32 in the unit sphere (and normals (N, 3) for mesh sources) unless ``with_points=False``."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} samples")
        index = index % len(self)
        row = {k: v[index] for k, v in self.table.values.items()}
        category = self.table.class_name[index]
        bbox = self.table.bbox[index]
        viewpoint = self.viewpoints[index].astype(np.float64)
        K_full = annotation_intrinsics(row["focal"], row["viewport"], row["px"], row["py"], bbox)
        full_image = self._load_image(index)
        box = crop_box(bbox)
        if max(box[2] - box[0], box[3] - box[1]) > _MAX_CROP_FACTOR * max(full_image.size):
            raise DataFormatError(self.image_paths[index], f"object box {list(box)} is far larger than the image "
                                                           f"{full_image.size} (corrupt annotation?)")
        image, K = crop_resize_pad(full_image, box, self.image_size, K_full)

        shape = self.cad.shape(category, int(row["cad_index"]))
        distance = DEFAULT_DISTANCE if math.isnan(row["distance"]) else float(row["distance"])
        R = opencv_rotation(viewpoint)
        t = (R @ shape.center + np.array([0.0, 0.0, distance])) / shape.scale
        sample = {
            "image": image,
            "viewpoint": torch.from_numpy(self.viewpoints[index].copy()),
            "category": torch.tensor(self.category_ids[index], dtype=torch.int64),
            "symmetry_order": torch.tensor(self.symmetry_orders.get(category, 1), dtype=torch.int64),
            "cad_index": torch.tensor(int(row["cad_index"]), dtype=torch.int64),
            "distance": torch.tensor(distance / shape.scale, dtype=torch.float32),
            "K": torch.from_numpy(K).float(),
            "R": torch.from_numpy(R).float(),
            "t": torch.from_numpy(t).float(),
        }
        if self.with_points:
            sample.update(self.sample_points(index, shape))
        return sample

    def sample_points(self, index: int, shape: CadShape) -> dict[str, torch.Tensor]:
        """points (N, 3) (and normals for meshes) of ``shape``, a pure function of (seed, split, index)."""
        rng = np.random.default_rng([self.dataset_id, self.seed, SPLIT_IDS[self.split], int(index)])
        if shape.is_mesh:
            try:
                points, normals = sample_mesh_surface(shape.vertices, shape.faces, self.n_points, rng)
            except ValueError as error:
                raise DataFormatError(shape.path, str(error)) from None
            return {"points": torch.from_numpy(points), "normals": torch.from_numpy(normals)}
        cloud = shape.points
        chosen = rng.choice(len(cloud), self.n_points, replace=len(cloud) < self.n_points)
        return {"points": torch.from_numpy(np.ascontiguousarray(cloud[chosen]))}
