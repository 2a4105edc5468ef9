"""Property tests of every file reader (short budget; ``benchmarks/fuzz_readers.py`` is the long run): a valid
file mutated by byte flips, cuts, insertions and hostile tokens ("nan", "1e999", a 100 kB number, invalid
UTF-8, NUL) gives either the library's own DataFormatError naming the file, or a result whose values are
finite and valid. Nothing else may come out."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill3d.data import kitti_io, shapenetpart
from distill3d.data.freihand import read_freihand_predictions
from distill3d.data.mesh_io import read_off, read_ply_points
from distill3d.data.viewpoint_common.annotations import read_split_list
from distill3d.engine.logging import read_metrics
from distill3d.errors import DataFormatError

#: Examples per reader: small in `make test`; raise it (DISTILL3D_FUZZ_EXAMPLES=2000) for a longer local run.
EXAMPLES = int(os.environ.get("DISTILL3D_FUZZ_EXAMPLES", "50"))
HOSTILE = [b"nan", b"inf", b"-inf", b"1e999", b"-1", b"1e20", b"\xff\xfe", b"\x00", b"/", b"..", b"\n", b" ",
           b"9" * 100_000, b"[" * 2000, b"0x10", b"-0", b"1" * 30]


def _ply_binary() -> bytes:
    header = (b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty double x\nproperty double y\n"
              b"property double z\nelement face 0\nproperty list uchar int vertex_indices\nend_header\n")
    return header + np.arange(9, dtype="<f8").tobytes()


CALIB = "\n".join(
    [*(f"P{i}: 721.5 0 609.6 44.9 0 721.5 172.9 0.2 0 0 1 0.003" for i in range(4)),
     "R0_rect: 0.9999 0.0098 -0.0074 -0.0099 0.9999 -0.0043 0.0074 0.0044 1.0",
     "Tr_velo_to_cam: 0.0075 -0.9999 -0.0006 -0.0041 0.0148 0.0007 -0.9999 -0.0763 0.9999 0.0075 0.0148 -0.2718",
     "Tr_imu_to_velo: 1 0 0 -0.8 0 1 0 0.3 0 0 1 -0.8"]) + "\n"

SEEDS: dict[str, tuple[str, bytes]] = {
    "off": ("m.off", b"OFF\n# tet\n4 4 6\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n3 0 3 2\n4 1 2 3 0\n"),
    "ply_ascii": ("p.ply", b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\n"
                           b"property float z\nend_header\n0.5 1 2\n3 4 5\n"),
    "ply_binary": ("b.ply", _ply_binary()),
    "kitti_label": ("000001.txt",
                    b"Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59\n"
                    b"DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10\n"),
    "kitti_calib": ("000001c.txt", CALIB.encode()),
    "kitti_split": ("val.txt", b"000001\n000002\n000010\n"),
    "shapenet_points": ("obj.txt", b"0.1 0.2 0.3 0 0 1 0\n0.2 0.1 0.3 0 1 0 1\n-0.1 0.0 0.4 1 0 0 1\n"),
    "shapenet_split": ("list.json", b'["shape_data/02691156/1a04e3eab45ca15dd86060f189eb133"]'),
    "shapenet_synsets": ("synsetoffset2category.txt", b"Airplane\t02691156\nBag\t02773838\n"),
    "pred_json": ("pred.json", json.dumps([[[[0.01, 0.0, 0.5]] * 21], [[[0.0, 0.0, 0.5]] * 778]]).encode()),
    "metrics_csv": ("metrics.csv", b"epoch,step,metric,value\n1,2,train/loss,0.5\n1,2,val/acc,0.25\n"),
    "viewpoint_split": ("car_val.txt", b"2008_000002  1\n2008_000003 -1\n"),
}


def _finite(array: Any) -> bool:
    return bool(np.all(np.isfinite(np.asarray(array, dtype=np.float64))))


def check_off(path: Path) -> None:
    vertices, faces = read_off(path)
    assert _finite(vertices) and vertices.shape[1] == 3
    assert faces.shape[1] == 3 and (len(faces) == 0 or (faces.min() >= 0 and faces.max() < len(vertices)))


def check_ply(path: Path) -> None:
    points = read_ply_points(path)
    assert _finite(points) and points.shape[1] == 3


def check_label(path: Path) -> None:
    objects = kitti_io.read_label_file(path)
    for name in ("truncated", "alpha", "bbox", "dimensions", "location", "rotation_y"):
        assert _finite(getattr(objects, name))
    assert np.all(np.isin(objects.occluded, [-1, 0, 1, 2, 3]))
    assert np.all(objects.bbox[:, 2] >= objects.bbox[:, 0]) and np.all(objects.bbox[:, 3] >= objects.bbox[:, 1])
    real = objects.name != "DontCare"
    assert np.all(objects.dimensions[real] >= 0)


def check_calib(path: Path) -> None:
    calib = kitti_io.read_calib_file(path)
    assert np.allclose(calib.R0_rect @ calib.R0_rect.T, np.eye(3), atol=1e-3)
    assert all(_finite(getattr(calib, f"P{i}")) and calib.intrinsics(i)[0, 0] != 0 for i in range(4))


def check_split(path: Path) -> None:
    for frame in kitti_io.read_split_file(path):
        assert frame and "/" not in frame and "\x00" not in frame and frame not in (".", "..")


def check_points(path: Path) -> None:
    points, normals, labels = shapenetpart.read_shapenetpart_points(path)
    assert _finite(points) and _finite(normals) and np.all(labels >= 0)


def check_shapenet_split(path: Path) -> None:
    for synset, object_id in shapenetpart.read_split_file(path):
        assert "/" not in synset and "/" not in object_id


def check_synsets(path: Path) -> None:
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in shapenetpart.read_synset_file(path).items())


def check_pred(path: Path) -> None:
    xyz, verts = read_freihand_predictions(path)
    assert _finite(xyz) and _finite(verts) and xyz.shape[1:] == (21, 3)


def check_metrics(path: Path) -> None:
    for epoch, step, metric, _ in read_metrics(path):
        assert epoch >= 0 and step >= 0 and metric


def check_viewpoint_split(path: Path) -> None:
    for image_id in read_split_list(path):
        assert "/" not in image_id and "\x00" not in image_id


CHECKS: dict[str, Callable[[Path], None]] = {
    "off": check_off, "ply_ascii": check_ply, "ply_binary": check_ply, "kitti_label": check_label,
    "kitti_calib": check_calib, "kitti_split": check_split, "shapenet_points": check_points,
    "shapenet_split": check_shapenet_split, "shapenet_synsets": check_synsets, "pred_json": check_pred,
    "metrics_csv": check_metrics, "viewpoint_split": check_viewpoint_split,
}


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "cut", "insert", "hostile", "delete"]))
        if action == "flip" and position < len(data):
            data[position] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[position:]
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=6))
        elif action == "hostile":
            data[position:position] = draw(st.sampled_from(HOSTILE))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 8))]
    return bytes(data)


@pytest.mark.parametrize("reader", sorted(SEEDS))
def test_seed_files_are_valid(tmp_path: Path, reader: str) -> None:
    name, content = SEEDS[reader]
    (tmp_path / name).write_bytes(content)
    CHECKS[reader](tmp_path / name)


@pytest.mark.parametrize("reader", sorted(SEEDS))
def test_mutated_files_give_data_format_errors_or_valid_values(tmp_path_factory, reader: str) -> None:
    name, seed = SEEDS[reader]
    folder = tmp_path_factory.mktemp(reader)

    @settings(max_examples=EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(content=mutated(seed))
    def run(content: bytes) -> None:
        path = folder / name
        path.write_bytes(content)
        try:
            CHECKS[reader](path)
        except DataFormatError as error:
            assert str(path) in str(error) and "\n" not in str(error).strip()

    run()
