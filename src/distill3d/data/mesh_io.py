"""Readers for CAD shapes (PLY point clouds on top of trimesh, OFF meshes), and area-weighted surface sampling.

Formats
-------
* **PLY** (``read_ply_points``): ASCII, binary little- or big-endian (any scalar property types, any other
  elements such as ``face``). Only the ``vertex`` element's ``x``, ``y``, ``z`` are returned. PoseFromShape's
  ``pointcloud/<class>/<nn>/compressed.ply`` files are binary little-endian with 5000 ``double`` vertices and an
  empty ``face`` element. ASCII bodies hold one element instance per line: blank lines are skipped, and a vertex
  line must hold exactly the header's vertex properties (an extra or missing value is an error naming the line).
* **OFF** (``read_off``): ``OFF`` (or ``COFF``/``NOFF``/…, or the ModelNet typo ``OFF<nv> <nf> <ne>`` on one
  line), then ``n_vertices n_faces n_edges``, ``n_vertices`` lines starting with ``x y z`` (extra columns such
  as colours are ignored), then ``n_faces`` lines ``k i_1 … i_k [colour]`` with 0-based vertex indices.
  Polygons with ``k > 3`` are split into a triangle fan. ``#`` starts a comment; blank lines are skipped.

PLY parsing is trimesh's (``trimesh.exchange.ply.load_ply``), wrapped so that every failure is a
:class:`distill3d.errors.DataFormatError` naming the file, with the checks trimesh leaves out (format line,
duplicated or missing ``x y z`` properties, the ASCII body's line structure, non-finite coordinates). OFF is
parsed here, vectorised over the token stream, because trimesh 5.2's OFF reader fails on polygons with more
than 4 corners under numpy 2 (its fan triangulation multiplies strings) and silently drops the missing indices
of a short face line; this parser checks every count and index and names the line. Memory stays bounded (a
1 MB token is refused before numpy would give every token its width). Files larger than :data:`MAX_MESH_BYTES`
are refused.
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
#: Longest word that can be a number in a text mesh ("-1.2345678901234567e-308" has 24 characters).
_MAX_TOKEN = 64


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


def read_text_file(path: PathLike) -> str:
    """A UTF-8 text file of at most :data:`MAX_MESH_BYTES`; a missing, unreadable, oversized or non-UTF-8 file is a
    one-line :class:`DataFormatError` (the undecodable byte's line named)."""
    data = _read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataFormatError(path, "not a UTF-8 text file", line=data[: error.start].count(b"\n") + 1) from None


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
    end_header = re.search(rb"end_header\r?\n", raw[:1 << 16]) if raw.startswith(b"ply") else None
    if end_header is None:
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
    if re.search(r"^format[ \t]+ascii[ \t]", header, re.M):
        raw = raw[: end_header.end()] + _checked_ascii_body(path, header, raw[end_header.end():],
                                                           raw.count(b"\n", 0, end_header.end()))
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


def _ply_elements(header: str) -> list[tuple[str, int, int, bool]]:
    """(name, count, scalar properties, has a list property) of each element of a PLY header, in file order;
    empty when a count is not a non-negative integer (trimesh then reports the header)."""
    elements: list[tuple[str, int, int, bool]] = []
    for words in (line.split() for line in header.splitlines()):
        if words[:1] == ["element"]:
            if len(words) != 3 or not re.fullmatch(r"[0-9]{1,18}", words[2]):
                return []
            elements.append((words[1], int(words[2]), 0, False))
        elif words[:1] == ["property"] and elements:
            name, count, scalars, has_list = elements[-1]
            is_list = words[1:2] == ["list"]
            elements[-1] = (name, count, scalars + (not is_list), has_list or is_list)
    return elements


def _checked_ascii_body(path: PathLike, header: str, body: bytes, header_lines: int) -> bytes:
    """The body of an ASCII PLY with its blank lines removed, after checking its vertex lines.

    ASCII PLY holds one element instance per line. Blank lines carry nothing and are dropped (trimesh would count
    them as instances and garble the vertices). A vertex line with more or fewer values than the header's vertex
    properties, or fewer vertex lines than the header declares, is refused naming the line (trimesh drops extra
    values and missing vertices silently). Vectorised over the body's tokens (:func:`_tokenise`);
    ``header_lines``: lines before the body, for the line numbers.
    """
    elements = _ply_elements(header)
    names = [name for name, *_ in elements]
    if "vertex" in names:
        position = names.index("vertex")
        first = sum(count for _, count, _, _ in elements[:position])
        _, n_vertices, n_properties, has_list = elements[position]
        _, token_lines = _tokenise(body)
        line_ids, widths = np.unique(token_lines, return_counts=True)
        if len(line_ids) < first + n_vertices:
            found = max(0, len(line_ids) - first)
            last = header_lines + (int(line_ids[-1]) if len(line_ids) else 1)
            raise DataFormatError(path, f"the header declares {n_vertices} vertices, the body holds {found} vertex "
                                  "lines", line=last)
        vertex_widths = widths[first : first + n_vertices]
        bad = np.flatnonzero(vertex_widths != n_properties)
        if len(bad) and not has_list:
            width = int(vertex_widths[bad[0]])
            raise DataFormatError(path, f"a vertex line holds {width} values; it must hold the {n_properties} vertex "
                                  "properties of the header", line=header_lines + int(line_ids[first + bad[0]]))
    return re.sub(rb"(?m)^[ \t\r\f\v]*(?:\n|\Z)", b"", body)


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
    """Tokens → float64 array; a token that is not a number raises DataFormatError at its line.

    Memory stays bounded: numpy's fixed-width byte array would give every token the width of the longest one
    (one 1 MB token × a million tokens = a terabyte), so tokens longer than any number are refused first.
    """
    if tokens:
        widths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        if widths.max() > _MAX_TOKEN:
            at = int(np.argmax(widths > _MAX_TOKEN))
            raise DataFormatError(path, f"{what}: a {widths[at]}-character word is not a number", line=int(lines[at]))
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


def read_off(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an OFF mesh → vertices (V, 3) float64, faces (F, 3) int64 (0-based; polygons fan-triangulated)."""
    raw = _read_bytes(path)
    if b"\x00" in raw:
        raise DataFormatError(path, "contains NUL bytes: not a text OFF file")
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
    if n_vertices + n_faces > len(tokens):
        raise DataFormatError(
            path, f"declares {n_vertices} vertices and {n_faces} faces, more than the file holds", line=counts_line
        )

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
    if not np.all(np.isfinite(vertices)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(vertices), axis=1))[0])
        raise DataFormatError(path, f"vertex {bad} has a non-finite coordinate", line=int(v_lines[bad]))

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
