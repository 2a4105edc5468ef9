"""Readers for CAD shapes (PLY point clouds, OFF meshes) on top of trimesh, and area-weighted surface sampling.

Formats
-------
* **PLY** (``read_ply_points``): ASCII, binary little- or big-endian (any scalar property types, any other
  elements such as ``face``). Only the ``vertex`` element's ``x``, ``y``, ``z`` are returned. PoseFromShape's
  ``pointcloud/<class>/<nn>/compressed.ply`` files are binary little-endian with 5000 ``double`` vertices and an
  empty ``face`` element.
* **OFF** (``read_off``): ``OFF`` (or ``COFF``, or the ModelNet typo ``OFF<nv> <nf> <ne>`` on one line), then
  ``n_vertices n_faces n_edges``, ``n_vertices`` lines starting with ``x y z`` (extra columns such as colours
  are ignored), then ``n_faces`` lines ``k i_1 … i_k [colour]`` with 0-based vertex indices. Polygons with
  ``k > 3`` are triangulated. ``#`` starts a comment; blank lines are skipped.

Parsing is trimesh's (``trimesh.exchange.ply.load_ply`` / ``trimesh.exchange.off.load_off``: vectorised,
bounded memory: a 1 MB token costs megabytes, not gigabytes). This module wraps it so that every failure is a
:class:`distill3d.errors.DataFormatError` naming the file, and checks what trimesh accepts silently: declared
counts (a file that ends early), non-finite coordinates, faces with fewer than 3 corners or outside the
vertices, and files larger than :data:`MAX_MESH_BYTES`.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np

from distill3d.errors import DataFormatError

__all__ = ["MAX_MESH_BYTES", "read_off", "read_ply_points", "sample_mesh_surface"]

PathLike = str | os.PathLike

#: Largest CAD file read (ShapeNet/ModelNet meshes are a few MB; PoseFromShape clouds 120 kB).
MAX_MESH_BYTES = 512 << 20


def _read_bytes(path: PathLike) -> bytes:
    try:
        size = Path(path).stat().st_size
        if size > MAX_MESH_BYTES:
            raise DataFormatError(path, f"{size} bytes is larger than a CAD file may be ({MAX_MESH_BYTES})")
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except IsADirectoryError:
        raise DataFormatError(path, "is a folder, expected a file") from None
    except OSError as error:
        raise DataFormatError(path, f"cannot read file: {error.strerror or error}") from None


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _finite_xyz(path: PathLike, vertices: object, what: str) -> np.ndarray:
    try:
        array = np.asarray(vertices, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataFormatError(path, f"{what} are not numbers") from None
    if array.ndim != 2 or array.shape[1] != 3:
        raise DataFormatError(path, f"{what} must be x y z triples, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        row = int(np.flatnonzero(~np.all(np.isfinite(array), axis=1))[0])
        raise DataFormatError(path, f"{what} {row} has a non-finite coordinate {array[row].tolist()}")
    return array


# ----------------------------------------------------------------------------------------------------------
# PLY
# ----------------------------------------------------------------------------------------------------------


def read_ply_points(path: PathLike) -> np.ndarray:
    """Vertex positions of a PLY file → (N, 3) float64 (``x``, ``y``, ``z``; faces and other data ignored)."""
    from trimesh.exchange.ply import load_ply

    raw = _read_bytes(path)
    if not raw.startswith(b"ply") or re.search(rb"end_header\r?\n", raw[:1 << 16]) is None:
        raise DataFormatError(path, "not a PLY file (expected 'ply' … 'end_header')", line=1)
    header = raw[: raw.index(b"end_header")].decode("ascii", errors="replace")
    if not re.search(r"^format[ \t]+(ascii|binary_little_endian|binary_big_endian)[ \t]+1\.0[ \t]*\r?$", header, re.M):
        raise DataFormatError(path, "unsupported PLY format line (expected 'format ascii|binary_…_endian 1.0')")
    properties = re.findall(r"^property\s+(?!list)\S+\s+(\S+)\s*$", header.split("element vertex", 1)[-1].split(
        "\nelement", 1)[0], flags=re.M) if "element vertex" in header else []
    if "element vertex" not in header:
        raise DataFormatError(path, "PLY file has no vertex element")
    duplicated = sorted({p for p in properties if properties.count(p) > 1})
    if duplicated:
        raise DataFormatError(path, f"vertex property {duplicated[0]!r} is declared twice")
    missing = [axis for axis in "xyz" if axis not in properties]
    if missing:
        raise DataFormatError(path, f"vertex element lacks properties {missing}")
    try:
        loaded = load_ply(io.BytesIO(raw), skip_materials=True, fix_texture=False)
    except Exception as error:  # trimesh raises ValueError, KeyError, IndexError, UnicodeDecodeError…
        raise DataFormatError(path, _ply_problem(error)) from None
    vertices = loaded.get("vertices")
    if vertices is None:
        raise DataFormatError(path, "PLY file has no vertex positions")
    if isinstance(vertices, np.ndarray) and vertices.dtype == object:
        raise DataFormatError(path, "vertex lines must each hold the vertex properties of the header")
    return _finite_xyz(path, vertices, "vertex")


def _ply_problem(error: BaseException) -> str:
    """trimesh's PLY failures in the words of the format."""
    text = str(error)
    if "unexpected length" in text:
        return "binary data truncated, or longer than the header declares"
    if "unmatched data" in text or "could not convert" in text:
        return "the ASCII body holds a value that is not a number, or too few values"
    if isinstance(error, KeyError):
        return f"unknown property type or name {text}"
    return f"not a readable PLY file ({_reason(error)})"


# ----------------------------------------------------------------------------------------------------------
# OFF
# ----------------------------------------------------------------------------------------------------------

def _declared_counts(path: PathLike, raw: bytes) -> tuple[int, int]:
    """(n_vertices, n_faces) of an OFF header: the keyword line, then (on it or the next line) three integers;
    comments and blank lines skipped."""
    lines = (line.split("#", 1)[0].strip() for line in raw[: 1 << 16].decode("ascii", "replace").splitlines())
    meaningful = [line for line in lines if line][:2]
    head = re.fullmatch(r"(C?N?OFF)\s*(.*)", meaningful[0]) if meaningful else None
    if head is None:
        first = meaningful[0].split()[0][:20] if meaningful else ""
        raise DataFormatError(path, f"not an OFF file (first word {first!r}, expected 'OFF')", line=1)
    counts = (head.group(2) or (meaningful[1] if len(meaningful) > 1 else "")).split()
    if len(counts) != 3 or not all(c.isdigit() for c in counts):
        raise DataFormatError(path, "the counts line must hold three integers 'n_vertices n_faces n_edges' (≥ 0)")
    n_vertices, n_faces = int(counts[0]), int(counts[1])
    if n_vertices > len(raw) // 6 or n_faces > len(raw) // 6:  # every vertex/face line takes ≥ 6 bytes
        raise DataFormatError(path, f"declares {n_vertices} vertices and {n_faces} faces, more than the file holds")
    return n_vertices, n_faces


def _off_problem(error: BaseException, n_vertices: int) -> str:
    """trimesh's OFF failures in the words of the format."""
    text = str(error)
    number = re.search(r"could not convert string to float: '(.*)'", text)
    if number:
        return f"{number.group(1)[:40]!r} is not a number"
    if "cannot reshape" in text or "inhomogeneous" in text:
        return f"expected {n_vertices} vertex lines starting with x y z"
    if "outside the range" in text:
        return f"face refers to a vertex outside 0…{n_vertices - 1}"
    return f"not a readable OFF mesh ({_reason(error)})"


def read_off(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an OFF mesh → vertices (V, 3) float64, faces (F, 3) int64 (0-based; polygons triangulated)."""
    from trimesh.exchange.off import load_off

    raw = _read_bytes(path)
    n_vertices, n_faces = _declared_counts(path, raw)
    if b"\x00" in raw:
        raise DataFormatError(path, "contains NUL bytes: not a text OFF file")
    try:
        loaded = load_off(io.BytesIO(raw))
    except Exception as error:  # trimesh raises ValueError, IndexError, NameError…
        raise DataFormatError(path, _off_problem(error, n_vertices)) from None
    vertices = _finite_xyz(path, loaded.get("vertices"), "vertex")
    try:
        faces = np.asarray(loaded.get("faces") if n_faces else np.zeros((0, 3)), dtype=np.int64).reshape(-1, 3)
    except (TypeError, ValueError):
        raise DataFormatError(path, "a face line must be 'k i_1 … i_k' with k ≥ 3") from None
    if len(vertices) != n_vertices:
        raise DataFormatError(path, f"expected {n_vertices} vertex lines, found {len(vertices)}")
    if len(faces) < n_faces:
        raise DataFormatError(path, f"expected {n_faces} face lines (k ≥ 3 corners each), the file ends early")
    if len(faces) and (faces.min() < 0 or faces.max() >= n_vertices):
        raise DataFormatError(path, f"face refers to a vertex outside 0…{n_vertices - 1}")
    return vertices, faces


# ----------------------------------------------------------------------------------------------------------
# Surface sampling
# ----------------------------------------------------------------------------------------------------------


def sample_mesh_surface(
    vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``n`` points uniformly on a triangle mesh's surface (faces picked with probability ∝ area).

    vertices (V, 3), faces (F, 3) 0-based → points (n, 3) float32 and unit face normals (n, 3) float32
    (oriented by the faces' winding, ``(b − a) × (c − a)``). Inside a triangle the barycentric weights are
    ``(1 − √r₁, √r₁(1 − r₂), √r₁·r₂)``, uniform in area. Raises ``ValueError`` for a mesh of zero area.
    """
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3) and faces (F, 3), got {vertices.shape} and {faces.shape}")
    corners = vertices[faces]  # (F, 3, 3)
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    double_area = np.linalg.norm(cross, axis=1)
    total = double_area.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError("the mesh has zero surface area (no non-degenerate triangle)")
    cumulative = np.cumsum(double_area / total)
    chosen = np.minimum(np.searchsorted(cumulative, rng.random(n) * cumulative[-1], side="right"), len(faces) - 1)
    r1, r2 = np.sqrt(rng.random(n)), rng.random(n)
    weights = np.stack([1 - r1, r1 * (1 - r2), r1 * r2], axis=1)
    points = np.einsum("nk,nkd->nd", weights, corners[chosen])
    normals = cross[chosen] / double_area[chosen, None]
    return points.astype(np.float32), normals.astype(np.float32)
