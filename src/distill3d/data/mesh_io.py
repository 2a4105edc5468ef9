"""Small readers for CAD shapes: PLY point clouds, OFF meshes, and area-weighted surface sampling.

Formats
-------
* **PLY** (``read_ply_points``): an ASCII header (``ply``, ``format ascii|binary_little_endian|binary_big_endian
  1.0``, ``element <name> <count>``, ``property <type> <name>``, ``property list <count type> <item type>
  <name>``, ``comment …``, ``obj_info …``, ``end_header``) followed by the elements in header order. Only the
  ``vertex`` element's ``x``, ``y``, ``z`` are read (any scalar type; other vertex properties and every other
  element, e.g. ``face``, are ignored). PoseFromShape's ``pointcloud/<class>/<nn>/compressed.ply`` files are
  binary little-endian with 5000 ``double`` vertices and an empty ``face`` element.
* **OFF** (``read_off``): ``OFF`` (or ``COFF``/``NOFF``/…, or the ModelNet typo ``OFF<nv> <nf> <ne>`` on one
  line), then ``n_vertices n_faces n_edges``, ``n_vertices`` lines starting with ``x y z`` (extra columns such
  as colours are ignored), then ``n_faces`` lines ``k i_1 … i_k [colour]`` with 0-based vertex indices.
  Polygons with ``k > 3`` are split into a triangle fan. ``#`` starts a comment; blank lines are skipped.

Every parser is vectorised over vertices and faces (numpy on the token stream; no Python loop per point).
Malformed files raise :class:`distill3d.errors.DataFormatError` naming the file and, where meaningful, the
1-based line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from distill3d.errors import DataFormatError

__all__ = ["read_off", "read_ply_points", "sample_mesh_surface"]

PathLike = str | os.PathLike

_PLY_TYPES: dict[str, str] = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_PLY_FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}


def _read_bytes(path: PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except OSError as error:
        raise DataFormatError(path, f"cannot read file: {error}") from None


# ----------------------------------------------------------------------------------------------------------
# Tokenising text with line numbers (shared by the ASCII PLY body and OFF).
# ----------------------------------------------------------------------------------------------------------


def _tokenise(text: bytes, comment: bytes | None = None) -> tuple[list[bytes], np.ndarray]:
    """Whitespace tokens of ``text`` and the 1-based line of each, (T,) int64; ``comment`` starts a comment."""
    if comment is not None and comment in text:
        text = re.sub(re.escape(comment) + rb"[^\n]*", b"", text)
    tokens = text.split()
    if not tokens:
        return tokens, np.zeros(0, np.int64)
    data = np.frombuffer(text, np.uint8)
    is_space = np.isin(data, np.frombuffer(b" \t\r\n\v\f", np.uint8))
    previous_space = np.concatenate([[True], is_space[:-1]])
    starts = np.flatnonzero(~is_space & previous_space)
    line_of_byte = np.cumsum(data == ord("\n"))
    return tokens, line_of_byte[starts] + 1


def _as_numbers(path: PathLike, tokens: list[bytes], lines: np.ndarray, what: str) -> np.ndarray:
    """Tokens → float64 array; a token that is not a number raises DataFormatError at its line."""
    try:
        return np.array(tokens, dtype=np.bytes_).astype(np.float64)
    except ValueError:
        for token, line in zip(tokens, lines, strict=True):  # error path only: find the culprit
            try:
                float(token)
            except ValueError:
                raise DataFormatError(
                    path, f"{what}: {token.decode(errors='replace')!r} is not a number", line=int(line)
                ) from None
        raise


# ----------------------------------------------------------------------------------------------------------
# PLY
# ----------------------------------------------------------------------------------------------------------


def read_ply_points(path: PathLike) -> np.ndarray:
    """Vertex positions of a PLY file → (N, 3) float64 (``x``, ``y``, ``z``; faces and other data ignored).

    ASCII, binary little- and big-endian bodies are supported; a vertex element with list properties, or a
    list-valued element before the vertices of a binary file, is rejected.
    """
    raw = _read_bytes(path)
    end = re.search(rb"end_header[ \t]*\r?\n", raw)
    if not raw.startswith(b"ply") or end is None:
        raise DataFormatError(path, "not a PLY file (expected 'ply' … 'end_header')", line=1)
    header_lines = raw[: end.start()].decode("ascii", errors="replace").splitlines()
    body = raw[end.end() :]
    body_line = len(header_lines) + 1  # 1-based line number of the body's first line (ASCII)

    byte_order: str | None = None
    format_seen = False
    elements: list[tuple[str, int, list[tuple[str, str | None, str]], int]] = []  # name, count, props, line
    for number, line in enumerate(header_lines, start=1):
        words = line.split()
        if not words or words[0] in ("ply", "comment", "obj_info"):
            continue
        if words[0] == "format":
            if len(words) < 2 or words[1] not in _PLY_FORMATS:
                raise DataFormatError(path, f"unsupported PLY format line {line.strip()!r}", line=number)
            byte_order, format_seen = _PLY_FORMATS[words[1]], True
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise DataFormatError(path, f"malformed element line {line.strip()!r}", line=number)
            elements.append((words[1], int(words[2]), [], number))
        elif words[0] == "property":
            if not elements:
                raise DataFormatError(path, "property before any element", line=number)
            if len(words) == 5 and words[1] == "list" and words[2] in _PLY_TYPES and words[3] in _PLY_TYPES:
                elements[-1][2].append((_PLY_TYPES[words[3]], _PLY_TYPES[words[2]], words[4]))
            elif len(words) == 3 and words[1] in _PLY_TYPES:
                elements[-1][2].append((_PLY_TYPES[words[1]], None, words[2]))
            else:
                raise DataFormatError(path, f"malformed property line {line.strip()!r}", line=number)
        else:
            raise DataFormatError(path, f"unknown PLY header keyword {words[0]!r}", line=number)
    if not format_seen:
        raise DataFormatError(path, "PLY header has no 'format' line")
    names = [e[0] for e in elements]
    if "vertex" not in names:
        raise DataFormatError(path, "PLY file has no vertex element")
    vertex_at = names.index("vertex")
    _, count, properties, element_line = elements[vertex_at]
    property_names = [p[2] for p in properties]
    missing = [axis for axis in "xyz" if axis not in property_names]
    if missing:
        raise DataFormatError(path, f"vertex element lacks properties {missing}", line=element_line)
    if any(p[1] is not None for p in properties):
        raise DataFormatError(path, "list properties in the vertex element are not supported", line=element_line)
    columns = [property_names.index(axis) for axis in "xyz"]

    if byte_order is None:  # ASCII: elements are consecutive lines
        skip_lines = sum(e[1] for e in elements[:vertex_at])
        lines = body.split(b"\n", skip_lines + count)
        if len(lines) < skip_lines + count:
            raise DataFormatError(
                path, f"expected {count} vertex lines, the file ends early", line=body_line + len(lines) - 1
            )
        block = b"\n".join(lines[skip_lines : skip_lines + count])
        tokens, token_lines = _tokenise(block)
        token_lines += body_line + skip_lines - 1
        width = len(properties)
        if len(tokens) != count * width:
            per_line = np.bincount(token_lines - (body_line + skip_lines), minlength=count)
            bad = int(np.flatnonzero(per_line != width)[0]) if np.any(per_line != width) else count - 1
            raise DataFormatError(path, f"vertex lines must have {width} values", line=body_line + skip_lines + bad)
        values = _as_numbers(path, tokens, token_lines, "vertex").reshape(count, width)
        return values[:, columns]

    offset = 0
    for name, n_items, props, line in elements[:vertex_at]:
        if any(p[1] is not None for p in props):
            raise DataFormatError(path, f"cannot skip list-valued element {name!r} before the vertices", line=line)
        offset += n_items * sum(np.dtype(p[0]).itemsize for p in props)
    dtype = np.dtype([(p[2], byte_order + p[0]) for p in properties])
    needed = offset + count * dtype.itemsize
    if len(body) < needed:
        raise DataFormatError(path, f"binary vertex data truncated: need {needed} bytes, found {len(body)}")
    vertices = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
    return np.stack([vertices[axis].astype(np.float64) for axis in "xyz"], axis=1)


# ----------------------------------------------------------------------------------------------------------
# OFF
# ----------------------------------------------------------------------------------------------------------


def read_off(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an OFF mesh → vertices (V, 3) float64, faces (F, 3) int64 (0-based; polygons fan-triangulated)."""
    raw = _read_bytes(path)
    tokens, lines = _tokenise(raw, comment=b"#")
    if not tokens:
        raise DataFormatError(path, "empty file (expected 'OFF')", line=1)
    keyword = tokens[0].upper()
    glued = re.fullmatch(rb"([A-Z]*OFF)(\d+)", keyword)
    if glued:  # ModelNet's 'OFF490 518 0' typo: the vertex count is glued to the keyword
        tokens = [glued.group(1), glued.group(2), *tokens[1:]]
        lines = np.concatenate([lines[:1], lines])
    elif not re.fullmatch(rb"[A-Z]*OFF", keyword):
        word = tokens[0].decode(errors="replace")
        raise DataFormatError(path, f"not an OFF file (first word {word!r}, expected 'OFF')", line=int(lines[0]))
    if len(tokens) < 4:
        raise DataFormatError(path, "missing 'n_vertices n_faces n_edges' counts", line=int(lines[-1]))
    counts_line = int(lines[1])
    if not lines[1] == lines[2] == lines[3]:
        raise DataFormatError(path, "the counts line must hold three integers", line=counts_line)
    try:
        n_vertices, n_faces = int(tokens[1]), int(tokens[2])
        int(tokens[3])
    except ValueError:
        raise DataFormatError(path, "the counts line must hold three integers", line=counts_line) from None
    if n_vertices < 0 or n_faces < 0:
        raise DataFormatError(path, "negative vertex or face count", line=counts_line)

    body_tokens, body_lines = tokens[4:], lines[4:]
    # Group the body's tokens into its non-empty lines: line k holds tokens [start[k], start[k] + width[k]).
    line_ids, line_start, line_width = np.unique(body_lines, return_index=True, return_counts=True)
    if len(line_ids) < n_vertices + n_faces:
        last = int(line_ids[-1]) if len(line_ids) else counts_line
        raise DataFormatError(
            path, f"expected {n_vertices} vertex and {n_faces} face lines, found {len(line_ids)} lines", line=last
        )
    values = _as_numbers(path, body_tokens, body_lines, "mesh data")

    v_width, v_start, v_lines = line_width[:n_vertices], line_start[:n_vertices], line_ids[:n_vertices]
    if np.any(v_width < 3):
        bad = int(np.flatnonzero(v_width < 3)[0])
        raise DataFormatError(path, "a vertex line needs x y z", line=int(v_lines[bad]))
    vertices = values[v_start[:, None] + np.arange(3)]

    f_start = line_start[n_vertices : n_vertices + n_faces]
    f_width = line_width[n_vertices : n_vertices + n_faces]
    f_lines = line_ids[n_vertices : n_vertices + n_faces]
    sides = values[f_start] if n_faces else np.zeros(0)
    bad = (sides != np.round(sides)) | (sides < 3) | (f_width < sides + 1)
    if np.any(bad):
        raise DataFormatError(path, "a face line must be 'k i_1 … i_k' with k ≥ 3", line=int(f_lines[np.argmax(bad)]))
    sides = sides.astype(np.int64)
    # Triangle fan: polygon (i_1 … i_k) → (i_1, i_{j+1}, i_{j+2}) for j = 1 … k − 2.
    n_triangles = sides - 2
    face_of_triangle = np.repeat(np.arange(n_faces), n_triangles)
    corner = np.arange(len(face_of_triangle)) - np.repeat(np.cumsum(n_triangles) - n_triangles, n_triangles)
    first = f_start[face_of_triangle] + 1
    picks = np.stack([first, first + corner + 1, first + corner + 2], axis=1)
    indices = values[picks]
    if np.any(indices != np.round(indices)) or np.any(indices < 0) or np.any(indices >= n_vertices):
        bad_face = face_of_triangle[
            np.argmax(np.any((indices < 0) | (indices >= n_vertices) | (indices != np.round(indices)), axis=1))
        ]
        raise DataFormatError(path, f"face refers to a vertex outside 0…{n_vertices - 1}", line=int(f_lines[bad_face]))
    return vertices, indices.astype(np.int64).reshape(-1, 3)


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
