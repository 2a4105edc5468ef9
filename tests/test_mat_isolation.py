"""MATLAB files are read in a child process: a crash, hang or memory blow-up of the reader becomes one
DataFormatError naming the file, and the calling process (a training run) lives on."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill3d.data.viewpoint_common.annotations import read_annotation_file, read_annotation_files
from distill3d.data.viewpoint_common.isolation import run_isolated
from distill3d.errors import DataFormatError
from test_pascal3d import annotated_object, write_record


def _segfault(path: Path) -> int:
    if path.name == "bad.mat":
        os.kill(os.getpid(), signal.SIGSEGV)
    return len(path.name)


def _hang(path: Path) -> int:
    time.sleep(30)
    return 0


def _allocate(path: Path) -> int:
    return int(np.ones(1 << 40, np.uint8).sum())  # 1 TiB: refused by the child's address-space cap


def test_a_crash_of_the_reader_names_the_file_and_the_caller_survives(tmp_path):
    paths = [tmp_path / "a.mat", tmp_path / "bad.mat", tmp_path / "c.mat"]
    with pytest.raises(DataFormatError, match=re.escape(f"{paths[1]}: corrupt file: the MATLAB reader crashed")):
        run_isolated(_segfault, paths)
    assert run_isolated(_segfault, [paths[0], paths[2]]) == [5, 5]  # the results come back in order


def test_a_hang_is_stopped_after_the_timeout(tmp_path):
    started = time.monotonic()
    with pytest.raises(DataFormatError, match=r"x\.mat: reading took more than 1 s"):
        run_isolated(_hang, [tmp_path / "x.mat"], timeout_s=1.0)
    assert time.monotonic() - started < 10


def test_a_memory_blow_up_is_refused(tmp_path):
    with pytest.raises(DataFormatError, match=r"x\.mat: needs more memory"):
        run_isolated(_allocate, [tmp_path / "x.mat"])


def _record_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "record.mat"
    write_record(path, [annotated_object("car", (10, 10, 40, 30)), annotated_object("bus", (5, 5, 20, 20))], "a.jpg")
    return path.read_bytes()


@settings(max_examples=int(os.environ.get("DISTILL3D_FUZZ_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_annotation_files_give_only_data_format_errors(tmp_path, data):
    """Byte flips, truncations and insertions: the result is a valid table or a DataFormatError, nothing else."""
    raw = bytearray(_record_bytes(tmp_path))
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            raw[position] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del raw[position:]
            if not raw:
                raw = bytearray(b"\0")
        else:
            raw[position:position] = data.draw(st.binary(min_size=1, max_size=8))
    path = tmp_path / "mutated.mat"
    path.write_bytes(bytes(raw))
    try:
        table = read_annotation_file(path)
    except DataFormatError as error:
        assert str(path) in str(error)
        return
    for name in ("distance", "focal", "viewport"):
        column = table[name]
        assert np.all(np.isnan(column) | (column > 0))
    assert np.all(np.isfinite(table.bbox) | np.isnan(table.bbox))
    assert np.all(table["cad_index"] >= 0)


def test_many_files_are_read_by_one_child(tmp_path):
    folder = tmp_path / "Annotations"
    for index in range(20):
        write_record(folder / f"{index:04d}.mat", [annotated_object("car", (10, 10, 40, 30), azimuth=index)], "a.jpg")
    table = read_annotation_files(folder, [f"{i:04d}" for i in range(20)])
    assert table["azimuth_deg"].tolist() == list(range(20))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cad_index": float("inf")}, r"cad_index must be a positive integer"),
        ({"bbox": np.array([[1.0, 2.0, np.inf, 4.0]])}, r"bbox must hold finite pixel coordinates"),
        ({"viewpoint": {"azimuth": 10.0, "elevation": 5.0, "distance": -2.0}}, r"viewpoint\.distance must be positive"),
        ({"viewpoint": {"azimuth": 10.0, "elevation": 5.0, "focal": 0.0}}, r"viewpoint\.focal must be positive"),
        ({"viewpoint": {"azimuth": np.inf, "elevation": 5.0}}, r"viewpoint\.azimuth is infinite"),
    ],
)
def test_impossible_annotation_values_are_refused(tmp_path, change, message):
    obj = {**annotated_object("car", (10, 10, 40, 30)), **change}
    write_record(tmp_path / "r.mat", [obj], "a.jpg")
    with pytest.raises(DataFormatError, match=re.escape(str(tmp_path / "r.mat")) + ": .*" + message):
        read_annotation_file(tmp_path / "r.mat")
