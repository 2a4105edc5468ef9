"""KITTI file IO: labels / results / calib / split files, round trips and error reporting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import shared_path
from distill3d.data.kitti_io import (
    KittiCalib,
    evaluate_kitti_dirs,
    read_calib_file,
    read_label_dir,
    read_label_file,
    read_split_file,
    write_calib_file,
    write_label_file,
)
from distill3d.errors import DataFormatError
from distill3d.metrics.kitti import FrameAnnotations, evaluate_kitti

LABEL = "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59\n"
RESULT = (
    "Car -1 -1 -1.5800 587.0100 173.3300 614.1200 200.1200 "
    "1.6500 1.6700 3.6400 -0.6500 1.7100 46.7000 -1.5900 0.8700\n"
)


def random_objects(rng: np.random.Generator, n: int, decimals: int, scores: bool) -> FrameAnnotations:
    """Objects whose values are already at the file precision (so a round trip must be exact)."""

    def values(low: float, high: float, *shape: int) -> np.ndarray:
        return np.round(rng.uniform(low, high, size=(n, *shape)), decimals)

    corners = values(0, 1200, 4)
    bbox = np.concatenate([np.minimum(corners[:, :2], corners[:, 2:]), np.maximum(corners[:, :2], corners[:, 2:])], 1)

    return FrameAnnotations(
        name=rng.choice(["Car", "Pedestrian", "Cyclist", "DontCare"], size=n),
        truncated=np.round(rng.uniform(0, 1, n), 2),
        occluded=rng.integers(0, 4, n),
        alpha=values(-3, 3),
        bbox=bbox,
        dimensions=values(0.5, 4, 3),
        location=values(-20, 60, 3),
        rotation_y=values(-3, 3),
        score=values(0, 1) if scores else np.full(n, np.nan),
    )


def assert_objects_equal(a: FrameAnnotations, b: FrameAnnotations) -> None:
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.name, b.name)
    for name in ("truncated", "occluded", "alpha", "bbox", "dimensions", "location", "rotation_y", "score"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


# ---------------------------------------------------------------------------------------------- labels


def test_read_label_line_into_fields(tmp_path: Path) -> None:
    path = tmp_path / "000001.txt"
    path.write_text(LABEL + "\n")
    objects = read_label_file(path)
    assert len(objects) == 1 and objects.name[0] == "Car" and objects.occluded.dtype == np.int64
    np.testing.assert_array_equal(objects.bbox, [[587.01, 173.33, 614.12, 200.12]])
    np.testing.assert_array_equal(objects.dimensions, [[1.65, 1.67, 3.64]])  # h, w, l as in the file
    np.testing.assert_array_equal(objects.boxes3d(), [[-0.65, 1.71, 46.70, 1.65, 1.67, 3.64, -1.59]])
    assert np.isnan(objects.score).all() and not objects.has_scores
    annotations = objects
    assert isinstance(annotations, FrameAnnotations) and annotations.name[0] == "Car"


def test_read_result_line_with_score(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    path.write_text(RESULT)
    objects = read_label_file(path, with_score=True)
    assert objects.has_scores and objects.score[0] == 0.87 and objects.truncated[0] == -1.0
    assert read_label_file(path).score[0] == 0.87  # auto-detected


def test_empty_file_has_zero_objects(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("")
    objects = read_label_file(path)
    assert len(objects) == 0 and objects.bbox.shape == (0, 4) and objects.boxes3d().shape == (0, 7)
    path.write_text("\n  \n")
    assert len(read_label_file(path, with_score=True)) == 0


@pytest.mark.parametrize("scores", [False, True])
def test_write_read_round_trip_is_exact_at_file_precision(tmp_path: Path, scores: bool) -> None:
    objects = random_objects(np.random.default_rng(0), 25, decimals=4 if scores else 2, scores=scores)
    path = tmp_path / "sub" / "000007.txt"
    write_label_file(path, objects)
    assert_objects_equal(read_label_file(path, with_score=scores), objects)
    columns = {len(line.split()) for line in path.read_text().splitlines()}
    assert columns == {16 if scores else 15}
    assert [p.name for p in path.parent.iterdir()] == ["000007.txt"]  # no temporary file left behind


def test_write_formats_like_kitti(tmp_path: Path) -> None:
    label = tmp_path / "label.txt"
    label.write_text(LABEL)
    write_label_file(tmp_path / "copy.txt", read_label_file(label))
    assert (tmp_path / "copy.txt").read_text() == LABEL
    result = read_label_file(label)
    result.score[:] = 0.87
    write_label_file(tmp_path / "result.txt", result)
    assert (tmp_path / "result.txt").read_text().split()[3:] == RESULT.split()[3:]


def test_write_rejects_ambiguous_or_unwritable_objects(tmp_path: Path) -> None:
    objects = random_objects(np.random.default_rng(1), 3, decimals=2, scores=True)
    path = tmp_path / "x.txt"
    path.write_text("keep me")
    objects.score[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_label_file(path, objects)
    objects.score[0] = 0.5
    objects.name = np.array(["Car", "Big Car", "Van"])
    with pytest.raises(ValueError, match="whitespace"):
        write_label_file(path, objects)
    assert path.read_text() == "keep me"


@pytest.mark.shared
def test_round_trip_of_golden_files_keeps_values(tmp_path: Path) -> None:
    root = shared_path("golden", "kitti_eval_realgt")
    for kind, with_score in (("gt", False), ("det", True)):
        for frame_id, objects in read_label_dir(root / kind, with_score=with_score).items():
            write_label_file(tmp_path / kind / f"{frame_id}.txt", objects)
            assert_objects_equal(read_label_file(tmp_path / kind / f"{frame_id}.txt"), objects)


@pytest.mark.shared
def test_real_kitti_labels() -> None:
    labels = read_label_dir(shared_path("data", "kitti", "training", "label_2"))
    assert list(labels) == [f"{i:06d}" for i in range(6)]
    first = labels["000000"]
    assert len(first) == 1 and first.name[0] == "Pedestrian"
    np.testing.assert_array_equal(first.location, [[1.84, 1.47, 8.41]])
    np.testing.assert_array_equal(first.bbox, [[712.40, 143.00, 810.73, 307.92]])
    assert sum(int(np.sum(o.name == "DontCare")) for o in labels.values()) > 5
    cars = labels["000001"].select(labels["000001"].name == "Car")
    assert len(cars) == 1 and cars.occluded[0] == 0


def test_selection_and_construction() -> None:
    objects = random_objects(np.random.default_rng(2), 6, decimals=2, scores=False)
    mask = objects.name != "DontCare"
    chosen = objects.select(mask)
    assert len(chosen) == int(mask.sum())
    assert len(objects[1:3]) == 2 and len(objects[[0, 5]]) == 2 and len(objects[4]) == 1
    built = FrameAnnotations.from_boxes3d(
        ["Car"], [[1.0, 1.5, 10.0, 1.5, 1.6, 4.0, 0.2]], [[0, 0, 10, 10]], [0.9]
    )
    assert built.occluded[0] == -1 and built.alpha[0] == pytest.approx(0.2 - np.arctan2(1.0, 10.0))
    np.testing.assert_array_equal(built.boxes3d(), [[1.0, 1.5, 10.0, 1.5, 1.6, 4.0, 0.2]])


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        (LABEL + LABEL + "Car 0.00 0 1.0 2.0\n", 3, "expected 15 columns"),
        (LABEL + LABEL.replace("46.70", "4x.70"), 2, "column 'z' is not a number: '4x.70'"),
        (LABEL.replace("-1.58", "nan"), 1, "column 'alpha' is not finite"),
        (LABEL.replace(" 0 -1.58", " 0.5 -1.58"), 1, "column 'occluded' is not an integer"),
        (LABEL + RESULT, 2, "expected 15 columns"),
    ],
)
def test_bad_label_files_name_file_and_line(tmp_path: Path, content: str, line: int, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(DataFormatError) as info:
        read_label_file(path)
    assert info.value.line == line and message in str(info.value)
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_column_count_is_checked_against_with_score(tmp_path: Path) -> None:
    path = tmp_path / "label.txt"
    path.write_text(LABEL)
    with pytest.raises(DataFormatError, match=r"label.txt:1: expected 16 columns, got 15"):
        read_label_file(path, with_score=True)
    with pytest.raises(DataFormatError, match="file not found"):
        read_label_file(tmp_path / "missing.txt")


def test_label_dir_missing_files(tmp_path: Path) -> None:
    (tmp_path / "000001.txt").write_text(LABEL)
    assert list(read_label_dir(tmp_path)) == ["000001"]
    with pytest.raises(DataFormatError, match=r"000002.txt: file not found"):
        read_label_dir(tmp_path, ids=["000001", "000002"])
    objects = read_label_dir(tmp_path, ids=["000002", "000001"], missing_ok=True)
    assert list(objects) == ["000002", "000001"] and len(objects["000002"]) == 0
    with pytest.raises(DataFormatError, match="directory not found"):
        read_label_dir(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------------- split / calib


@pytest.mark.shared
def test_split_file(tmp_path: Path) -> None:
    assert read_split_file(shared_path("data", "kitti", "ImageSets", "val.txt"))[:2] == ["000000", "000001"]
    path = tmp_path / "split.txt"
    path.write_text("000003\n\n000007\n000008 000009\n")
    with pytest.raises(DataFormatError) as info:
        read_split_file(path)
    assert info.value.line == 4


@pytest.mark.shared
def test_real_calib_file_and_round_trip(tmp_path: Path) -> None:
    calib = read_calib_file(shared_path("data", "kitti", "training", "calib", "000000.txt"))
    assert calib.P2.shape == (3, 4) and calib.R0_rect.shape == (3, 3) and calib.Tr_imu_to_velo is not None
    np.testing.assert_array_equal(calib.K, [[707.0493, 0, 604.0814], [0, 707.0493, 180.5066], [0, 0, 1]])
    assert calib.P2[0, 3] == 45.75831
    write_calib_file(tmp_path / "calib.txt", calib)
    again = read_calib_file(tmp_path / "calib.txt")
    for key in ("P0", "P1", "P2", "P3", "R0_rect", "Tr_velo_to_cam", "Tr_imu_to_velo"):
        np.testing.assert_array_equal(getattr(again, key), getattr(calib, key), err_msg=key)


@pytest.mark.shared
def test_calib_helpers() -> None:
    calib = read_calib_file(shared_path("data", "kitti", "training", "calib", "000000.txt"))
    half = calib.resized((1242, 375), (621, 187.5))
    np.testing.assert_allclose(half.K[:2], calib.K[:2] / 2)
    np.testing.assert_array_equal(half.K[2], calib.K[2])
    points = np.array([[10.0, 2.0, -1.0], [30.0, -5.0, 0.5]])
    np.testing.assert_allclose(calib.rect_to_lidar(calib.lidar_to_rect(points)), points, atol=1e-9)
    rect = calib.lidar_to_rect(points)
    assert np.all(rect[:, 2] > 5)  # LiDAR x (forward) becomes camera z
    uv, depth = calib.rect_to_image(rect)
    assert uv.shape == (2, 2) and np.all(depth > 0)


def test_calib_variants_and_errors(tmp_path: Path) -> None:
    twelve = " ".join(["1"] * 12)
    nine = "1 0 0 0 1 0 0 0 1"
    lines = [f"P{i}: {twelve}" for i in range(4)]
    path = tmp_path / "tracking.txt"
    path.write_text("\n".join([*lines, f"R_rect {nine}", f"Tr_velo_cam {twelve}", f"Tr_imu_velo {twelve}"]))
    calib = read_calib_file(path)
    assert (
        isinstance(calib, KittiCalib) and calib.R0_rect.shape == (3, 3) and calib.Tr_imu_to_velo is not None
    )
    path.write_text("\n".join([*lines, f"R0_rect: {nine}"]))
    with pytest.raises(DataFormatError, match="missing calibration entries: Tr_velo_to_cam"):
        read_calib_file(path)
    path.write_text("\n".join([*lines, "R0_rect: 1 2 3", f"Tr_velo_to_cam: {twelve}"]))
    with pytest.raises(DataFormatError, match=r"tracking.txt:5: R0_rect needs 9 values, got 3"):
        read_calib_file(path)
    path.write_text("P0: 1 2 abc\n")
    with pytest.raises(DataFormatError, match=r":1: column 'P0' is not a number"):
        read_calib_file(path)


# ---------------------------------------------------------------------------------------------- folders


@pytest.mark.shared
def test_evaluate_dirs_missing_result_file_means_no_detections(tmp_path: Path) -> None:
    root = shared_path("golden", "kitti_eval_realgt")
    results = tmp_path / "results"
    results.mkdir()
    for frame_id, objects in read_label_dir(root / "det", with_score=True).items():
        if frame_id != "000002":
            write_label_file(results / f"{frame_id}.txt", objects)
    split = tmp_path / "split.txt"
    split.write_text("000000\n000001\n000002\n000004\n")
    from_dirs = evaluate_kitti_dirs(root / "gt", results, split_file=split)
    ids = ["000000", "000001", "000002", "000004"]
    gt = read_label_dir(root / "gt", ids)
    dt = read_label_dir(root / "det", ids, with_score=True)
    dt["000002"] = FrameAnnotations.empty()
    direct = evaluate_kitti(
        [gt[i] for i in ids], [dt[i] for i in ids]
    )
    assert from_dirs.to_dict() == direct.to_dict()
    np.testing.assert_array_equal(from_dirs.num_valid_gt, direct.num_valid_gt)


@pytest.mark.shared
def test_evaluate_dirs_rejects_empty_result_folder(tmp_path: Path) -> None:
    root = shared_path("golden", "kitti_eval_realgt")
    (tmp_path / "results").mkdir()
    with pytest.raises(DataFormatError, match=r"no result files"):
        evaluate_kitti_dirs(root / "gt", tmp_path / "results")
    with pytest.raises(DataFormatError, match="directory not found"):
        evaluate_kitti_dirs(root / "gt", tmp_path / "absent")
    (tmp_path / "results" / "000000.txt").write_text(LABEL)  # a label file is not a result file
    with pytest.raises(DataFormatError, match=r"000000.txt:1: expected 16 columns"):
        evaluate_kitti_dirs(root / "gt", tmp_path / "results")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Car 0.00 1e20 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59", "occluded"),
        ("Car 0.00 7 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59", "'occluded' must be"),
        ("Car 3.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59", "'truncated' must lie"),
        ("Car 0.00 0 -1.58 614.12 173.33 587.01 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59", "x2 < x1"),
        ("Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 4e9 -1.59", "beyond any plausible"),
        ("Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 -1.65 1.67 3.64 -0.65 1.71 46.70 -1.59", "must not be negative"),
        ("Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 nan -1.59", "not finite"),
    ],
)
def test_impossible_label_values_are_refused(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "000001.txt"
    path.write_text("DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10\n" + line + "\n")
    with pytest.raises(DataFormatError, match=f"000001.txt:2: .*{message}"):
        read_label_file(path)


@pytest.mark.parametrize(("text", "message"), [("R0_rect: 1 0 0 0 2 0 0 0 1", "not a rotation"),
                                               ("R0_rect: 1 0 0 0 -1 0 0 0 1", "not a rotation")])
def test_calib_with_an_impossible_rectification_is_refused(tmp_path: Path, text: str, message: str) -> None:
    twelve = "700 0 600 0 0 700 180 0 0 0 1 0"
    path = tmp_path / "calib.txt"
    path.write_text("\n".join([*(f"P{i}: {twelve}" for i in range(4)), text, f"Tr_velo_to_cam: {twelve}"]))
    with pytest.raises(DataFormatError, match=message):
        read_calib_file(path)
    path.write_text("\n".join([*(f"P{i}: {twelve}" for i in range(3)), "P3: 0 0 600 0 0 0 180 0 0 0 1 0",
                               "R0_rect: 1 0 0 0 1 0 0 0 1", f"Tr_velo_to_cam: {twelve}"]))
    with pytest.raises(DataFormatError, match="P3 has a zero focal length"):
        read_calib_file(path)


@pytest.mark.parametrize("bad_id", ["../etc/passwd", "a/b", "x\x00y", "..", "a\\b"])
def test_split_ids_must_be_file_stems(tmp_path: Path, bad_id: str) -> None:
    path = tmp_path / "val.txt"
    path.write_text(f"000001\n{bad_id}\n")
    with pytest.raises(DataFormatError, match=r"val.txt:2: frame id .* is not a file stem"):
        read_split_file(path)


def test_kitti_eval_says_when_results_match_no_frame_and_when_gt_is_scarce(tmp_path: Path) -> None:
    from distill3d.data.kitti_io import evaluate_kitti_dirs

    car = "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59"
    (tmp_path / "gt").mkdir()
    (tmp_path / "res").mkdir()
    (tmp_path / "gt" / "000001.txt").write_text(car + "\n")
    (tmp_path / "res" / "000009.txt").write_text(car + " 0.9\n")
    with pytest.warns(UserWarning, match=r"no result file matches an evaluated frame id .*every AP is 0"):
        evaluate_kitti_dirs(tmp_path / "gt", tmp_path / "res", metrics=("bbox",))
    (tmp_path / "res" / "000001.txt").write_text(car + " 0.9\n")
    with pytest.warns(UserWarning) as caught:
        result = evaluate_kitti_dirs(tmp_path / "gt", tmp_path / "res", metrics=("bbox",))
    messages = [str(w.message) for w in caught]
    assert any("1 result files match no evaluated frame" in m for m in messages)
    assert any("fewer than 41 valid GT boxes for Car (easy 0, moderate 1" in m and "below 100" in m for m in messages)
    values = result.to_dict()  # one perfect detection of the one GT box: the devkit's quirk, not 100
    assert values["KITTI/Car_2D_AP40_moderate_strict"] == 0.0
    assert values["KITTI/Car_2D_AP11_moderate_strict"] == pytest.approx(100 / 11)
