"""ModelNet40 reader and writer: both layouts round trip, the release's malformed OFF headers, normalisation,
determinism, the validation split carved from train, and one-line errors naming the file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from distill3d.data.modelnet40 import (
    MODELNET40_CLASSES,
    ModelNet40Dataset,
    detect_modelnet40_layout,
    normalize_unit_sphere,
    read_modelnet40_resampled,
    write_modelnet40,
)
from distill3d.errors import DataFormatError, Distill3dError

CLASSES = ("bowl", "flower_pot", "xbox")  # sorted, one with an underscore in its name
TRAIN_PER_CLASS, TEST_PER_CLASS = 5, 2
BOX_FACES = np.array([[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]])


def _box(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The 8 corners of an axis-aligned box (corner k has bit 2/1/0 of k selecting high x/y/z)."""
    bits = (np.arange(8)[:, None] >> np.array([2, 1, 0])) & 1
    return np.where(bits == 1, high, low).astype(np.float64)


def _mesh_samples(glued: bool = False) -> list[dict]:
    """Boxes of varied extent and position (quad faces), TRAIN_PER_CLASS + TEST_PER_CLASS per class."""
    rng = np.random.default_rng(0)
    samples = []
    for category in range(len(CLASSES)):
        for k in range(TRAIN_PER_CLASS + TEST_PER_CLASS):
            low = rng.uniform(-3, 1, 3)
            samples.append({"split": "train" if k < TRAIN_PER_CLASS else "test", "category": category,
                            "vertices": _box(low, low + rng.uniform(0.5, 2.0, 3)), "faces": BOX_FACES,
                            "glued_header": glued and k % 2 == 0})  # fmt: skip
    return samples


def _cloud_samples(rows: int = 40) -> list[dict]:
    rng = np.random.default_rng(1)
    samples = []
    for category in range(len(CLASSES)):
        for k in range(TRAIN_PER_CLASS + TEST_PER_CLASS):
            normals = rng.standard_normal((rows, 3))
            samples.append({"split": "train" if k < TRAIN_PER_CLASS else "test", "category": category,
                            "points": rng.uniform(-2, 3, (rows, 3)).astype(np.float32),
                            "normals": (normals / np.linalg.norm(normals, axis=1, keepdims=True)).astype(np.float32)})
    return samples


@pytest.fixture
def off_tree(tmp_path: Path) -> Path:
    return write_modelnet40(tmp_path / "ModelNet40", _mesh_samples(), CLASSES, layout="off")


@pytest.fixture
def resampled_tree(tmp_path: Path) -> tuple[Path, list[dict]]:
    samples = _cloud_samples()
    return write_modelnet40(tmp_path / "modelnet40_normal_resampled", samples, CLASSES, layout="resampled"), samples


def _names(dataset: ModelNet40Dataset) -> list[str]:
    return [entry.name for entry in dataset.entries]


def test_off_layout_round_trip(off_tree: Path) -> None:
    assert sorted(p.name for p in off_tree.iterdir()) == list(CLASSES)
    assert (off_tree / "flower_pot" / "test" / "flower_pot_0006.off").is_file()
    test = ModelNet40Dataset(off_tree, split="test", num_points=64, normalize=False)
    assert test.layout == "off" and test.category_names == CLASSES and test.num_classes == 3
    assert _names(test) == ["bowl_0006", "bowl_0007", "flower_pot_0006", "flower_pot_0007", "xbox_0006", "xbox_0007"]
    sample = test[2]
    assert set(sample) == {"points", "normals", "category", "symmetry_order"}
    assert sample["points"].shape == (64, 3) and sample["points"].dtype == torch.float32
    assert sample["normals"].shape == (64, 3) and sample["normals"].dtype == torch.float32
    assert sample["category"].dtype == torch.int64 and int(sample["category"]) == 1 and sample["category"].ndim == 0
    # Unnormalised surface samples of a box: every point lies on one of its faces, with that face's unit normal.
    box = _mesh_samples()[TRAIN_PER_CLASS + TEST_PER_CLASS + TRAIN_PER_CLASS]["vertices"]
    low, high = box.min(axis=0), box.max(axis=0)
    points, normals = sample["points"].numpy().astype(np.float64), sample["normals"].numpy()
    assert np.all(points >= low - 1e-5) and np.all(points <= high + 1e-5)
    gap = np.minimum(np.abs(points - low), np.abs(points - high)).min(axis=1)
    assert gap.max() < 1e-5
    assert np.allclose(np.abs(normals).max(axis=1), 1.0, atol=1e-6) and np.allclose(np.abs(normals).sum(axis=1), 1.0)
    batch = test.batch([0, 1, 5])
    assert batch["points"].shape == (3, 64, 3) and batch["category"].tolist() == [0, 0, 2]


def test_off_layout_reads_the_malformed_release_headers(tmp_path: Path) -> None:
    plain = write_modelnet40(tmp_path / "plain", _mesh_samples(), CLASSES)
    glued = write_modelnet40(tmp_path / "glued", _mesh_samples(glued=True), CLASSES)
    first_line = (glued / "bowl" / "train" / "bowl_0001.off").read_text().split("\n", 1)[0]
    assert first_line == "OFF8 6 0"
    a, b = (ModelNet40Dataset(root, split="trainval", num_points=32) for root in (plain, glued))
    for i in range(len(a)):
        assert torch.equal(a[i]["points"], b[i]["points"]) and torch.equal(a[i]["normals"], b[i]["normals"])


def test_resampled_layout_round_trip_takes_the_first_rows(resampled_tree: tuple[Path, list[dict]]) -> None:
    root, samples = resampled_tree
    assert (root / "modelnet40_shape_names.txt").read_text().split() == list(CLASSES)
    assert (root / "modelnet40_test.txt").read_text().split()[:2] == ["bowl_0006", "bowl_0007"]
    assert "," in (root / "xbox" / "xbox_0001.txt").read_text().split("\n")[0]
    test = ModelNet40Dataset(root, split="test", num_points=16)
    assert test.layout == "resampled" and test.category_names == CLASSES
    for index, written in zip(range(len(test)), [s for s in samples if s["split"] == "test"], strict=True):
        sample = test[index]
        assert torch.equal(sample["normals"], torch.from_numpy(written["normals"][:16]))
        assert np.allclose(sample["points"].numpy(), normalize_unit_sphere(written["points"][:16]), atol=1e-6)
        assert int(sample["category"]) == written["category"]
    raw = ModelNet40Dataset(root, split="test", num_points=40, normalize=False)
    assert torch.equal(raw[0]["points"], torch.from_numpy(samples[TRAIN_PER_CLASS]["points"]))
    points, normals = read_modelnet40_resampled(root / "bowl" / "bowl_0001.txt")
    assert points.shape == normals.shape == (40, 3) and points.dtype == np.float32


def test_layout_detection_from_the_parent_folder(tmp_path: Path) -> None:
    write_modelnet40(tmp_path / "ModelNet40", _mesh_samples(), CLASSES)
    assert detect_modelnet40_layout(tmp_path) == (tmp_path / "ModelNet40", "off")
    write_modelnet40(tmp_path / "modelnet40_normal_resampled", _cloud_samples(), CLASSES, layout="resampled")
    with pytest.raises(Distill3dError, match="pass layout="):
        detect_modelnet40_layout(tmp_path)
    assert detect_modelnet40_layout(tmp_path, "resampled")[1] == "resampled"
    assert ModelNet40Dataset(tmp_path, split="test", num_points=8, layout="off").layout == "off"
    (tmp_path / "empty").mkdir()
    with pytest.raises(Distill3dError, match="no ModelNet40 copy"):
        ModelNet40Dataset(tmp_path / "empty")


def test_normalisation_to_the_unit_sphere(off_tree: Path) -> None:
    dataset = ModelNet40Dataset(off_tree, split="trainval", num_points=128)
    for i in range(len(dataset)):
        points = dataset[i]["points"].double()
        assert torch.allclose(points.mean(dim=0), torch.zeros(3, dtype=torch.float64), atol=1e-6)
        assert abs(float(points.norm(dim=1).max()) - 1.0) < 1e-6
    cloud = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 3.0]])
    assert np.array_equal(normalize_unit_sphere(cloud), [[-1, 0, 0], [1, 0, 0]])
    assert np.array_equal(normalize_unit_sphere(np.ones((3, 3))), np.zeros((3, 3)))


def test_sampling_is_deterministic_per_shape(off_tree: Path) -> None:
    a = ModelNet40Dataset(off_tree, split="trainval", num_points=32, val_fraction=0.4)
    b = ModelNet40Dataset(off_tree, split="trainval", num_points=32, cache=False)
    other_seed = ModelNet40Dataset(off_tree, split="trainval", num_points=32, seed=1)
    assert torch.equal(a[3]["points"], b[3]["points"]) and torch.equal(a[3]["points"], a[3]["points"])
    assert not torch.equal(a[3]["points"], other_seed[3]["points"])
    # The same shape gives the same points whichever split it is read from.
    val = ModelNet40Dataset(off_tree, split="val", num_points=32, val_fraction=0.4)
    position = _names(a).index(val.entries[0].name)
    assert torch.equal(val[0]["points"], a[position]["points"])


@pytest.mark.parametrize("layout", ["off", "resampled"])
def test_validation_split_is_carved_from_train(tmp_path: Path, layout: str) -> None:
    samples = _mesh_samples() if layout == "off" else _cloud_samples()
    root = write_modelnet40(tmp_path / layout, samples, CLASSES, layout=layout)  # type: ignore[arg-type]
    splits = {s: _names(ModelNet40Dataset(root, split=s, num_points=8, val_fraction=0.4)) for s in
              ("train", "val", "trainval", "test")}  # fmt: skip
    official_train = [f"{c}_{k:04d}" for c in CLASSES for k in range(1, TRAIN_PER_CLASS + 1)]
    assert sorted(splits["trainval"]) == sorted(official_train)
    assert not set(splits["train"]) & set(splits["val"])
    assert sorted(splits["train"] + splits["val"]) == sorted(official_train)
    assert len(splits["val"]) == 3 * 2  # round(0.4 · 5) per class
    assert not set(splits["test"]) & set(splits["trainval"])
    # Deterministic, stable under a category selection, seeded by split_seed.
    again = ModelNet40Dataset(root, split="val", num_points=8, val_fraction=0.4)
    assert _names(again) == splits["val"]
    only_xbox = _names(ModelNet40Dataset(root, split="val", num_points=8, val_fraction=0.4, categories=["xbox"]))
    assert only_xbox == [name for name in splits["val"] if name.startswith("xbox")]
    reseeded = {tuple(_names(ModelNet40Dataset(root, split="val", num_points=8, val_fraction=0.4, split_seed=s)))
                for s in range(6)}  # fmt: skip
    assert len(reseeded) > 1
    # val_fraction=0: train is the whole official train set and there is no val split.
    assert sorted(_names(ModelNet40Dataset(root, split="train", num_points=8, val_fraction=0))) == sorted(
        official_train)
    with pytest.raises(ValueError, match="val_fraction"):
        ModelNet40Dataset(root, split="val", num_points=8, val_fraction=0)


def test_both_layouts_give_the_same_validation_shapes(tmp_path: Path) -> None:
    off = write_modelnet40(tmp_path / "off", _mesh_samples(), CLASSES)
    resampled = write_modelnet40(tmp_path / "txt", _cloud_samples(), CLASSES, layout="resampled")
    assert _names(ModelNet40Dataset(off, split="val", num_points=8, val_fraction=0.4)) == _names(
        ModelNet40Dataset(resampled, split="val", num_points=8, val_fraction=0.4))


def test_categories_keep_their_ids(resampled_tree: tuple[Path, list[dict]]) -> None:
    root, _ = resampled_tree
    dataset = ModelNet40Dataset(root, split="test", num_points=8, categories=["xbox"])
    assert len(dataset) == TEST_PER_CLASS and {int(dataset[i]["category"]) for i in range(len(dataset))} == {2}
    with pytest.raises(ValueError, match="unknown ModelNet40 classes"):
        ModelNet40Dataset(root, split="test", categories=["chair"])


def _one_line_error(error: pytest.ExceptionInfo[DataFormatError], path: Path, line: int | None) -> str:
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: " if line is not None else f"{path}: ")
    return message


def test_bad_rows_name_the_file_and_line(resampled_tree: tuple[Path, list[dict]]) -> None:
    root, _ = resampled_tree
    path = root / "bowl" / "bowl_0006.txt"
    lines = path.read_text().split("\n")
    original = read_modelnet40_resampled(path, 16)
    cases = {
        "not a number": (lambda ls: [*ls[:2], "0.1,0.2,abc,0,0,1", *ls[3:]], 3),
        "found 5 fields": (lambda ls: [*ls[:4], "0.1,0.2,0.3,0,0", *ls[5:]], 5),
        "non-finite": (lambda ls: ["", *ls[:1], "0.1,nan,0.3,0,0,1", *ls[2:]], 3),  # a blank first line is skipped
    }
    for expected, (edit, line) in cases.items():
        path.write_text("\n".join(edit(lines)))
        with pytest.raises(DataFormatError) as error:
            ModelNet40Dataset(root, split="test", num_points=16)[0]
        assert expected in _one_line_error(error, path, line)
    path.write_text("\n".join(lines[:10]))
    with pytest.raises(DataFormatError, match="holds 10 points, fewer than the 16 requested"):
        read_modelnet40_resampled(path, 16)
    path.write_text(" \n")
    with pytest.raises(DataFormatError, match="holds no point"):
        read_modelnet40_resampled(path)
    # Rows beyond the first num_points are not read (PointNet++'s sample).
    path.write_text("\n".join([*lines[:16], "garbage"]))
    assert read_modelnet40_resampled(path, 16)[0].shape == (16, 3)
    # Lines of spaces and CRLF endings are blank lines, not rows.
    path.write_text("\r\n".join([lines[0], "  \t", *lines[1:16]]))
    assert all(np.array_equal(a, b) for a, b in zip(read_modelnet40_resampled(path), original, strict=True))


def test_bad_list_and_mesh_files_name_the_file(resampled_tree: tuple[Path, list[dict]], off_tree: Path) -> None:
    root, _ = resampled_tree
    listing = root / "modelnet40_test.txt"
    listing.write_text("bowl_0006\n\nchair_0001\n")
    with pytest.raises(DataFormatError) as error:
        ModelNet40Dataset(root, split="test")
    assert "class 'chair' is not in" in _one_line_error(error, listing, 3)
    listing.write_text("bowl_0099\n")
    with pytest.raises(DataFormatError) as error:
        ModelNet40Dataset(root, split="test")
    assert "does not exist" in _one_line_error(error, listing, 1)

    mesh = off_tree / "bowl" / "test" / "bowl_0006.off"
    mesh.write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n")
    with pytest.raises(DataFormatError) as error:
        ModelNet40Dataset(off_tree, split="test", num_points=8)[0]
    assert "outside" in _one_line_error(error, mesh, 6)
    mesh.write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n2 0 0\n3 0 1 2\n")  # a degenerate triangle
    with pytest.raises(DataFormatError) as error:
        ModelNet40Dataset(off_tree, split="test", num_points=8)[0]
    assert "no surface" in _one_line_error(error, mesh, None)


def test_writer_refuses_bad_samples(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="written twice"):
        write_modelnet40(tmp_path / "a", [{**s, "number": 1} for s in _mesh_samples()[:2]], CLASSES)
    with pytest.raises(ValueError, match="split"):
        write_modelnet40(tmp_path / "b", [{**_mesh_samples()[0], "split": "val"}], CLASSES)
    with pytest.raises(ValueError, match="points"):
        write_modelnet40(tmp_path / "c", _mesh_samples()[:1], CLASSES, layout="resampled")
    assert not (tmp_path / "a").exists() and len(MODELNET40_CLASSES) == 40
