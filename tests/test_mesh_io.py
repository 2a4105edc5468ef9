"""CAD readers: OFF meshes, PLY point clouds (ASCII / binary), area-weighted surface sampling, real PLY files."""

from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import shared_path
from distill3d.data.mesh_io import read_off, read_ply_points, sample_mesh_surface
from distill3d.errors import DataFormatError

# ----------------------------------------------------------------------------------------------------------
# OFF
# ----------------------------------------------------------------------------------------------------------

TETRAHEDRON_OFF = """OFF
# a unit tetrahedron
4 4 6
0 0 0
1 0 0
0 1 0

0 0 1
3 0 2 1
3 0 1 3
3 0 3 2
3 1 2 3
"""


def test_read_off_tetrahedron_with_comments_and_blank_lines(tmp_path):
    path = tmp_path / "tet.off"
    path.write_text(TETRAHEDRON_OFF)
    vertices, faces = read_off(path)
    assert vertices.shape == (4, 3) and vertices.dtype == np.float64
    assert faces.shape == (4, 3) and faces.dtype == np.int64
    np.testing.assert_array_equal(vertices[3], [0, 0, 1])
    np.testing.assert_array_equal(faces[0], [0, 2, 1])


def test_read_off_polygons_are_fan_triangulated_and_colours_ignored(tmp_path):
    path = tmp_path / "quad.off"
    path.write_text("OFF\n5 2 0\n0 0 0 255 0 0\n1 0 0 255 0 0\n1 1 0 9 9 9\n0 1 0 1 1 1\n0 0 1 1 1 1\n"
                    "4 0 1 2 3 128 128 128\n3 0 1 4\n")  # fmt: skip
    vertices, faces = read_off(path)
    np.testing.assert_array_equal(vertices[2], [1, 1, 0])
    np.testing.assert_array_equal(faces, [[0, 1, 2], [0, 2, 3], [0, 1, 4]])


def test_read_off_accepts_counts_glued_to_the_keyword(tmp_path):
    """ModelNet's 'OFF4 4 6' typo and counts on the keyword line."""
    for header in ("OFF4 4 6\n", "OFF 4 4 6\n"):
        path = tmp_path / "glued.off"
        path.write_text(header + TETRAHEDRON_OFF.split("4 4 6\n", 1)[1])
        vertices, faces = read_off(path)
        assert vertices.shape == (4, 3) and faces.shape == (4, 3)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("PLY\n1 0 0\n0 0 0\n", 1, "not an OFF file"),
        ("OFF\n3 1\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", 2, "three integers"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n", 4, "expected 3 vertex and 1 face lines"),
        ("OFF\n3 1 0\n0 0 0\n1 zero 0\n0 1 0\n3 0 1 2\n", 4, "'zero' is not a number"),
        ("OFF\n3 1 0\n0 0 0\n1 0\n0 1 0\n3 0 1 2\n", 4, "vertex line needs x y z"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", 6, "outside 0…2"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n2 0 1\n", 6, "k ≥ 3"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n4 0 1 2\n", 6, "k ≥ 3"),  # a corner missing
        ("OFF\n3 1 0\n0 0 nan\n1 0 0\n0 1 0\n3 0 1 2\n", 3, "vertex 0 has a non-finite coordinate"),
        ("OFF\n3 1 0\n0 0 1\n1 0 1e999\n0 1 0\n3 0 1 2\n", 4, "vertex 1 has a non-finite coordinate"),
        ("OFF\n900000000 1 0\n0 0 0\n", 2, "more than the file holds"),
        ("OFF\n3 1 0\n" + "1" * 1_000_000 + " 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", 3, "1000000-character word"),
    ],
)
def test_read_off_errors_name_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.off"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=message) as info:
        read_off(path)
    assert info.value.path == path and info.value.line == line
    assert f"bad.off:{line}" in str(info.value)


def test_read_off_pentagons_are_fanned(tmp_path):
    path = tmp_path / "penta.off"
    path.write_text("OFF\n5 1 0\n0 0 0\n1 0 0\n1 1 0\n0.5 2 0\n0 1 0\n5 0 1 2 3 4\n")
    np.testing.assert_array_equal(read_off(path)[1], [[0, 1, 2], [0, 2, 3], [0, 3, 4]])


def test_read_off_missing_file(tmp_path):
    with pytest.raises(DataFormatError, match="file not found"):
        read_off(tmp_path / "absent.off")


# ----------------------------------------------------------------------------------------------------------
# PLY
# ----------------------------------------------------------------------------------------------------------

POINTS = np.array([[0.5, -1.0, 2.0], [3.0, 4.0, -5.25], [1e-3, 0.0, 7.0]])


def _binary_ply(points: np.ndarray, order: str = "<", xyz_type: str = "double") -> bytes:
    fmt = {"<": "binary_little_endian", ">": "binary_big_endian"}[order]
    header = (
        f"ply\nformat {fmt} 1.0\ncomment made by a test\nelement vertex {len(points)}\n"
        f"property {xyz_type} x\nproperty {xyz_type} y\nproperty {xyz_type} z\nproperty uchar red\n"
        "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
    )
    code = {"double": "f8", "float": "f4"}[xyz_type]
    dtype = np.dtype([("x", order + code), ("y", order + code), ("z", order + code), ("red", "u1")])
    body = np.zeros(len(points), dtype)
    body["x"], body["y"], body["z"], body["red"] = points[:, 0], points[:, 1], points[:, 2], 200
    face = np.array([3], "u1").tobytes() + np.array([0, 1, 2], order + "i4").tobytes()
    return header.encode() + body.tobytes() + face


@pytest.mark.parametrize(("order", "xyz_type"), [("<", "double"), ("<", "float"), (">", "double")])
def test_read_binary_ply(tmp_path, order, xyz_type):
    path = tmp_path / "cloud.ply"
    path.write_bytes(_binary_ply(POINTS, order, xyz_type))
    points = read_ply_points(path)
    assert points.shape == (3, 3) and points.dtype == np.float64
    np.testing.assert_allclose(points, POINTS, rtol=1e-6)


def test_read_ascii_ply_with_extra_properties_and_faces(tmp_path):
    path = tmp_path / "cloud.ply"
    rows = "\n".join(f"{p[1]} {p[0]} 9 {p[2]}" for p in POINTS)  # property order: y x nx z
    path.write_text(
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float y\nproperty float x\nproperty float nx\n"
        f"property float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n{rows}\n3 0 1 2\n"
    )
    np.testing.assert_allclose(read_ply_points(path), POINTS)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n", "end_header"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nend_header\n0 0\n",
         r"lacks properties \['z'\]"),
        (b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
         b"end_header\n0 0 0\n1 oops 0\n", "not a number"),
        (b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
         b"end_header\n0 0 0\n1 0\n", "vertex properties of the header"),
        (b"ply\nformat binary_little_endian 1.0\nelement vertex 4\nproperty double x\nproperty double y\n"
         b"property double z\nend_header\n" + bytes(24), "truncated"),
        (b"ply\nformat pdf 1.0\nelement vertex 1\nproperty float x\nend_header\n", "unsupported PLY format"),
        (b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nproperty float x\n"
         b"property float y\nproperty float z\nend_header\n" + bytes(16), "'x' is declared twice"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\n"
         b"end_header\ninf 0 0\n", "non-finite coordinate"),
        (b"\x00\xff" * 40, "not a PLY file"),
    ],
)
def test_read_ply_errors(tmp_path, content, message):
    path = tmp_path / "bad.ply"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=message) as info:
        read_ply_points(path)
    assert info.value.path == path


def test_real_posefromshape_point_clouds():
    """PoseFromShape's ObjectNet3D clouds: binary little-endian, 5000 double vertices, empty face element."""
    folder = shared_path("data", "objectnet3d", "pointcloud")
    files = sorted(folder.glob("*/01/compressed.ply"))
    assert files, f"no */01/compressed.ply under {folder}"
    for path in files:
        points = read_ply_points(path)
        assert points.shape == (5000, 3), path
        assert np.all(np.isfinite(points))
        extent = points.max(0) - points.min(0)
        assert np.all(extent > 0) and np.linalg.norm(extent) < 10, path


# ----------------------------------------------------------------------------------------------------------
# Surface sampling
# ----------------------------------------------------------------------------------------------------------

# Two separate right triangles in the planes z = 0 (area 0.5) and z = 2 (area 1.5).
TWO_TRIANGLES = (
    np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 2], [3, 0, 2], [0, 1, 2]], np.float64),
    np.array([[0, 1, 2], [3, 5, 4]]),
)


def test_sampling_is_area_weighted_and_on_the_surface():
    vertices, faces = TWO_TRIANGLES
    points, normals = sample_mesh_surface(vertices, faces, 20000, np.random.default_rng(0))
    assert points.shape == normals.shape == (20000, 3) and points.dtype == normals.dtype == np.float32
    upper = points[:, 2] > 1
    assert abs(upper.mean() - 0.75) < 0.015  # areas 0.5 : 1.5
    np.testing.assert_allclose(points[~upper, 2], 0, atol=1e-6)
    np.testing.assert_allclose(points[upper, 2], 2, atol=1e-6)
    # Inside the triangles: x, y ≥ 0 and x/width + y ≤ 1.
    width = np.where(upper, 3.0, 1.0)
    assert np.all(points[:, :2] >= -1e-6) and np.all(points[:, 0] / width + points[:, 1] <= 1 + 1e-5)
    # Uniform inside a triangle: the mean is the centroid.
    np.testing.assert_allclose(points[upper, :2].mean(0), [1.0, 1 / 3], atol=0.02)
    # Normals follow the winding: +z for the first face, −z for the reversed second one.
    np.testing.assert_allclose(normals[~upper], np.tile([0, 0, 1], ((~upper).sum(), 1)), atol=1e-6)
    np.testing.assert_allclose(normals[upper], np.tile([0, 0, -1], (upper.sum(), 1)), atol=1e-6)


def test_sampling_is_deterministic_and_skips_degenerate_faces():
    vertices, faces = TWO_TRIANGLES
    faces = np.vstack([faces, [[0, 1, 1]]])  # a zero-area face is never chosen
    a = sample_mesh_surface(vertices, faces, 500, np.random.default_rng(7))
    b = sample_mesh_surface(vertices, faces, 500, np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    assert np.all(np.isfinite(a[1])) and np.allclose(np.linalg.norm(a[1], axis=1), 1, atol=1e-5)
    c = sample_mesh_surface(vertices, faces, 500, np.random.default_rng(8))
    assert not np.allclose(a[0], c[0])


def test_sampling_rejects_zero_area_and_bad_shapes():
    with pytest.raises(ValueError, match="zero surface area"):
        sample_mesh_surface(np.zeros((3, 3)), np.array([[0, 1, 2]]), 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\(V, 3\)"):
        sample_mesh_surface(np.zeros((3, 2)), np.array([[0, 1, 2]]), 10, np.random.default_rng(0))


def test_sampling_and_parsing_are_vectorised(tmp_path):
    """A 40k-face mesh parses and samples 100k points quickly (no Python loop per point)."""
    rng = np.random.default_rng(0)
    vertices = rng.normal(size=(20000, 3))
    faces = rng.integers(0, 20000, size=(40000, 3))
    path = tmp_path / "big.off"
    lines = ["OFF", f"{len(vertices)} {len(faces)} 0"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in vertices]
    lines += ["3 " + " ".join(str(i) for i in row) for row in faces]
    path.write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    read_vertices, read_faces = read_off(path)
    sample_mesh_surface(read_vertices, read_faces, 100_000, rng)
    assert time.perf_counter() - start < 3.0
    np.testing.assert_array_equal(read_faces, faces)
    np.testing.assert_allclose(read_vertices, vertices, atol=1e-6)


# ASCII PLY line structure: one element instance per line ----------------------------------------------------
_ASCII_HEADER = ("ply\nformat ascii 1.0\nelement camera 1\nproperty float f\nelement vertex 3\nproperty float x\n"
                 "property float y\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\n"
                 "end_header\n")  # 11 header lines: the body starts on line 12
_ROWS = [" ".join(str(v) for v in p) for p in POINTS]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_blank_lines_in_an_ascii_ply_body_are_skipped(tmp_path, newline):
    body = ["", "500", "   ", _ROWS[0], "", "", _ROWS[1], "\t", _ROWS[2], "", "3 0 1 2", "", ""]
    path = tmp_path / "blank.ply"
    path.write_bytes((_ASCII_HEADER + "\n".join(body)).replace("\n", newline).encode())
    np.testing.assert_allclose(read_ply_points(path), POINTS)


@pytest.mark.parametrize(
    ("rows", "line", "message"),
    [
        ([_ROWS[0], _ROWS[1] + " 7", _ROWS[2]], 14, "a vertex line holds 4 values; it must hold the 3 vertex prop"),
        ([r + " 7" for r in _ROWS], 13, "a vertex line holds 4 values"),  # every line: trimesh would read x y z
        ([_ROWS[0], "", _ROWS[1], "1 2"], 16, "a vertex line holds 2 values"),  # the line counts blank lines
        ([_ROWS[0]], 13, "the header declares 3 vertices, the body holds 1 vertex lines"),
    ],
)
def test_a_vertex_line_with_a_wrong_number_of_values_is_one_error_naming_the_line(tmp_path, rows, line, message):
    path = tmp_path / "bad.ply"
    path.write_text(_ASCII_HEADER + "\n".join(["500", *rows]) + "\n")
    with pytest.raises(DataFormatError, match=rf"bad\.ply:{line}: {message}") as info:
        read_ply_points(path)
    assert info.value.path == path and info.value.line == line and "\n" not in str(info.value)
