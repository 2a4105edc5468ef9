"""ShapeNetPart reader and writer: real-format fixtures, the real sample files, malformed files, the shapes export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_path
from distill3d.data.shapenetpart import (
    SHAPENETPART_CATEGORIES,
    SHAPENETPART_NUM_PARTS,
    SHAPENETPART_PART_TABLE,
    SHAPENETPART_SYNSETS,
    ShapeNetPartDataset,
    read_shapenetpart_points,
    write_shapenetpart,
)
from distill3d.errors import DataFormatError, Distill3dError

AIRPLANE, MUG = "02691156", "03797390"
OBJECTS = {  # (synset, object id) → number of points; parts: Airplane 0-3, Mug 36-37
    (AIRPLANE, "1a04e3eab45ca15dd86060f189eb133"): 40,
    (AIRPLANE, "1a6ad7a24bb89733f412783097373bdc"): 25,
    (MUG, "10f6e09036350e92b3f21f1137c3c347"): 30,
}
SPLITS = {
    "train": [(AIRPLANE, "1a04e3eab45ca15dd86060f189eb133"), (MUG, "10f6e09036350e92b3f21f1137c3c347"),
              (AIRPLANE, "1a04e3eab45ca15dd86060f189eb133")],  # listed twice: used once
    "val": [(AIRPLANE, "1a6ad7a24bb89733f412783097373bdc")],
    "test": [(MUG, "10f6e09036350e92b3f21f1137c3c347"), (MUG, "ffffffffffffffffffffffffffffffff")],  # 2nd: no file
}  # fmt: skip
SHARED_RELEASE = ("data", "shapenetpart", "shapenetcore_partanno_segmentation_benchmark_v0_normal")


def _rows(count: int, parts: tuple[int, ...], seed: int) -> np.ndarray:
    """(count, 7) rows like the release's: coordinates, unit normals, part labels (6 decimals)."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(-0.4, 0.6, (count, 3)) * [1.0, 0.5, 2.0]
    normals = rng.standard_normal((count, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    labels = np.asarray(parts)[np.arange(count) % len(parts)]
    return np.round(np.column_stack([points, normals, labels]), 6)


def _write_rows(path: Path, rows: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(" ".join(f"{value:.6f}" for value in row) + "\n" for row in rows))


@pytest.fixture
def release(tmp_path: Path) -> tuple[Path, dict[tuple[str, str], np.ndarray]]:
    """A small ShapeNetPart folder in the release's format and the rows of each object file."""
    root = tmp_path / "shapenetcore_partanno_segmentation_benchmark_v0_normal"
    (root / "train_test_split").mkdir(parents=True)
    (root / "synsetoffset2category.txt").write_text(f"Airplane\t{AIRPLANE}\nMug\t{MUG}\n")
    contents = {}
    for k, ((synset, object_id), count) in enumerate(OBJECTS.items()):
        parts = SHAPENETPART_PART_TABLE["Airplane" if synset == AIRPLANE else "Mug"]
        contents[synset, object_id] = _rows(count, parts, k)
        _write_rows(root / synset / f"{object_id}.txt", contents[synset, object_id])
    for split, entries in SPLITS.items():
        listed = [f"shape_data/{synset}/{object_id}" for synset, object_id in entries]
        (root / "train_test_split" / f"shuffled_{split}_file_list.json").write_text(json.dumps(listed))
    return root, contents


def test_standard_part_table_is_the_published_one() -> None:
    assert SHAPENETPART_CATEGORIES[0] == "Airplane" and SHAPENETPART_CATEGORIES[-1] == "Table"
    assert tuple(sorted(SHAPENETPART_CATEGORIES)) == SHAPENETPART_CATEGORIES and len(SHAPENETPART_CATEGORIES) == 16
    assert [i for ids in SHAPENETPART_PART_TABLE.values() for i in ids] == list(range(SHAPENETPART_NUM_PARTS))
    assert SHAPENETPART_PART_TABLE["Earphone"] == (16, 17, 18) and SHAPENETPART_PART_TABLE["Lamp"] == (24, 25, 26, 27)
    assert SHAPENETPART_PART_TABLE["Motorbike"] == tuple(range(30, 36))
    assert SHAPENETPART_PART_TABLE["Table"] == (47, 48, 49)
    assert set(SHAPENETPART_SYNSETS) == set(SHAPENETPART_CATEGORIES)
    assert SHAPENETPART_SYNSETS["Chair"] == "03001627" and SHAPENETPART_SYNSETS["Table"] == "04379243"


def test_samples_have_the_point_cloud_keys_and_global_part_ids(release) -> None:
    root, contents = release
    dataset = ShapeNetPartDataset(root, "train", n_points=16, seed=0, normalize=False)
    assert len(dataset) == 2 and [e.category for e in dataset.entries] == ["Airplane", "Mug"]
    for index, (category_id, parts) in enumerate(((0, (0, 1, 2, 3)), (11, (36, 37)))):
        sample = dataset[index]
        assert sample["points"].shape == sample["normals"].shape == (16, 3)
        assert sample["points"].dtype == sample["normals"].dtype == torch.float32
        assert sample["part_labels"].shape == (16,) and sample["part_labels"].dtype == torch.int64
        assert sample["category"].dtype == sample["symmetry_order"].dtype == torch.int64
        assert int(sample["category"]) == category_id and int(sample["symmetry_order"]) == 1
        assert set(sample["part_labels"].tolist()) <= set(parts)
        rows = contents[dataset.entries[index].synset, dataset.entries[index].object_id].astype(np.float32)
        # every sampled point is a row of the file, with its own normal and label
        sampled = torch.cat([sample["points"], sample["normals"], sample["part_labels"][:, None].float()], 1)
        assert all((torch.from_numpy(rows) == row).all(1).any() for row in sampled)
    assert dataset.category_to_parts[11] == (36, 37)
    batch = dataset.batch([0, 1])
    assert batch["points"].shape == (2, 16, 3) and batch["category"].tolist() == [0, 11]


def test_point_sampling_is_deterministic_in_seed_and_index(release) -> None:
    root, contents = release
    a, b = ShapeNetPartDataset(root, "train", 16, seed=4), ShapeNetPartDataset(root, "train", 16, seed=4)
    assert torch.equal(a[0]["points"], b[0]["points"]) and torch.equal(a[1]["part_labels"], b[1]["part_labels"])
    assert not torch.equal(a[0]["points"], ShapeNetPartDataset(root, "train", 16, seed=5)[0]["points"])
    # fewer points in the file than asked: each point once, then repeats
    big = ShapeNetPartDataset(root, "val", n_points=100, normalize=False)[0]["points"]
    assert big.shape == (100, 3) and len(torch.unique(big, dim=0)) == 25
    # n_points=None: the whole file in file order
    whole = ShapeNetPartDataset(root, "val", n_points=None, normalize=False)[0]
    expected = contents[AIRPLANE, "1a6ad7a24bb89733f412783097373bdc"].astype(np.float32)
    assert np.array_equal(whole["points"].numpy(), expected[:, :3])
    assert np.array_equal(whole["part_labels"].numpy(), expected[:, 6].astype(np.int64))


def test_normalisation_uses_the_bounding_box_of_the_whole_file(release) -> None:
    root, _ = release
    raw = ShapeNetPartDataset(root, "train", None, normalize=False)[0]["points"].double()
    normalised = ShapeNetPartDataset(root, "train", None)[0]["points"].double()
    low, high = raw.min(0).values, raw.max(0).values
    assert torch.allclose(normalised, (raw - (low + high) / 2) / ((high - low).norm() / 2), atol=1e-6)
    assert torch.allclose(normalised.max(0).values + normalised.min(0).values, torch.zeros(3).double(), atol=1e-6)
    sampled = ShapeNetPartDataset(root, "train", 8, seed=1)[0]
    assert all((normalised.float() == point).all(1).any() for point in sampled["points"])


def test_splits_categories_and_missing_files(release) -> None:
    root, _ = release
    with pytest.warns(UserWarning, match="1 listed test objects have no file"):
        test = ShapeNetPartDataset(root, "test")
    assert len(test) == 1 and test.skipped == [f"{MUG}/ffffffffffffffffffffffffffffffff"]
    assert len(ShapeNetPartDataset(root, "test", missing="skip")) == 1
    with pytest.raises(DataFormatError, match=r"shuffled_test_file_list\.json: lists 03797390/ffff"):
        ShapeNetPartDataset(root, "test", missing="error")
    trainval = ShapeNetPartDataset(root, "trainval")
    assert [e.object_id[:6] for e in trainval.entries] == ["1a04e3", "10f6e0", "1a6ad7"]
    mugs = ShapeNetPartDataset(root, "train", categories=["mug"])
    assert len(mugs) == 1 and int(mugs[0]["category"]) == 11
    assert len(ShapeNetPartDataset(root, "train", categories="Chair")) == 0  # known but absent
    with pytest.raises(ValueError, match="unknown ShapeNetPart categories"):
        ShapeNetPartDataset(root, "train", categories=["Sofa"])
    with pytest.raises(ValueError, match="split must be one of"):
        ShapeNetPartDataset(root, "training")


@pytest.mark.parametrize(
    ("line", "replacement", "message"),
    [
        (3, "0.1 0.2 0.3 0 0 1", "expected 7 numbers"),
        (2, "0.1 0.2 zero 0 0 1 1", "not a number"),
        (4, "0.1 nan 0.3 0 0 1 1", "non-finite value"),
        (5, "0.1 0.2 0.3 0 0 1 1.5", "is not an integer in"),
        (6, "0.1 0.2 0.3 0 0 1 36", "is not one of the parts"),
    ],
)
def test_malformed_object_file_names_the_file_and_line(release, line: int, replacement: str, message: str) -> None:
    root, _ = release
    path = root / AIRPLANE / "1a04e3eab45ca15dd86060f189eb133.txt"
    lines = path.read_text().splitlines()
    lines[line - 1] = replacement
    path.write_text("\n".join(lines) + "\n")
    dataset = ShapeNetPartDataset(root, "train")
    with pytest.raises(DataFormatError, match=message) as error:
        dataset[0]
    assert error.value.line == line and f"{path}:{line}:" in str(error.value)


def test_malformed_index_files_raise_data_format_errors(release, tmp_path: Path) -> None:
    root, _ = release
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(DataFormatError, match="holds no point"):
        read_shapenetpart_points(empty)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"0 0 0 0 0 1 0\n\xff\xfe\n")
    with pytest.raises(DataFormatError, match="not a UTF-8 text file") as error:
        read_shapenetpart_points(binary)
    assert error.value.line == 2

    split = root / "train_test_split" / "shuffled_train_file_list.json"
    split.write_text('[\n"shape_data/02691156/1a04e3eab45ca15dd86060f189eb133",\n]')
    with pytest.raises(DataFormatError, match="malformed JSON") as error:
        ShapeNetPartDataset(root, "train")
    assert error.value.line == 3
    split.write_text('["shape_data/02691156"]')
    with pytest.raises(DataFormatError, match="expected 'shape_data/<synset>/<object id>'"):
        ShapeNetPartDataset(root, "train")
    split.write_text('["shape_data/99999999/abc"]')
    with pytest.raises(DataFormatError, match=r"synset 99999999 is not in synsetoffset2category\.txt"):
        ShapeNetPartDataset(root, "train")

    synsets = root / "synsetoffset2category.txt"
    synsets.write_text(f"Airplane\t{AIRPLANE}\nMug\n")
    with pytest.raises(DataFormatError, match="expected '<category> <synset offset>'") as error:
        ShapeNetPartDataset(root, "val")
    assert f"{synsets}:2:" in str(error.value)
    synsets.write_text(f"Airplane\t{AIRPLANE}\nBicycle\t02834778\n")
    with pytest.raises(DataFormatError, match=r"categories \['Bicycle'\] are not in the part table"):
        ShapeNetPartDataset(root, "val")
    assert len(ShapeNetPartDataset(root, "val", categories="Airplane")) == 1
    custom = ShapeNetPartDataset(root, "val", part_table={"Airplane": [0, 1, 2, 3], "Bicycle": [4, 5]})
    assert custom.category_names == ("Airplane", "Bicycle") and custom.category_to_parts[1] == (4, 5)
    with pytest.raises(ValueError, match="must be distinct non-negative integers"):
        ShapeNetPartDataset(root, "val", part_table={"Airplane": [0, 1, 1], "Bicycle": [4]})
    (root / "distill3d.json").write_text('{"part_table": {"Airplane": [0, -1]}}')
    with pytest.raises(DataFormatError, match=r"distill3d\.json: part ids of 'Airplane'"):
        ShapeNetPartDataset(root, "val")


def test_writer_round_trips_samples_exactly_and_writes_the_release_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    names = {"Chair": SHAPENETPART_SYNSETS["Chair"], "Mug": SHAPENETPART_SYNSETS["Mug"]}
    table = {name: SHAPENETPART_PART_TABLE[name] for name in names}
    samples = []
    for k, (split, category) in enumerate([("train", 0), ("train", 1), ("val", 0), ("test", 1)]):
        parts = np.asarray(table[list(names)[category]])
        samples.append({
            "split": split, "category": category, "object_id": f"object{k}", "symmetry_order": 3 if k == 1 else 1,
            "points": torch.from_numpy(rng.standard_normal((50 + k, 3)).astype(np.float32) * 0.3),
            "normals": rng.standard_normal((50 + k, 3)).astype(np.float32),
            "part_labels": torch.from_numpy(parts[rng.integers(0, len(parts), 50 + k)]),
        })  # fmt: skip
    out = write_shapenetpart(tmp_path / "release", samples, names, table)
    assert (out / "synsetoffset2category.txt").read_text() == "Chair\t03001627\nMug\t03797390\n"
    train_list = json.loads((out / "train_test_split" / "shuffled_train_file_list.json").read_text())
    assert train_list == ["shape_data/03001627/object0", "shape_data/03797390/object1"]
    assert len((out / "03001627" / "object0.txt").read_text().splitlines()) == 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"]  # no staging folder left behind
    # The standard part table applies; distill3d.json keeps the symmetry order.
    for split, expected in (("train", samples[:2]), ("val", samples[2:3]), ("test", samples[3:])):
        dataset = ShapeNetPartDataset(out, split, n_points=None, normalize=False)
        for index, sample in enumerate(expected):
            read = dataset[index]
            assert torch.equal(read["points"], torch.as_tensor(sample["points"]))
            assert torch.equal(read["normals"], torch.as_tensor(sample["normals"]))
            assert torch.equal(read["part_labels"], torch.as_tensor(sample["part_labels"]))
            assert int(read["category"]) == SHAPENETPART_CATEGORIES.index(list(names)[sample["category"]])
            assert int(read["symmetry_order"]) == sample["symmetry_order"]

    with pytest.raises(Distill3dError, match="already exists"):
        write_shapenetpart(out, samples, names, table)
    bad = [*samples[:2], {**samples[2], "part_labels": torch.full((52,), 47)}]
    with pytest.raises(ValueError, match="part labels outside Chair's parts"):
        write_shapenetpart(tmp_path / "bad", bad, names, table)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"]  # the failed write left nothing


@pytest.mark.shared
def test_reads_the_real_release_samples() -> None:
    root = shared_path(*SHARED_RELEASE)
    with pytest.warns(UserWarning, match="have no file"):  # the sample lists one object it does not ship
        dataset = ShapeNetPartDataset(root, "train", n_points=1024, seed=0)
    assert len(dataset) == 2
    assert [dataset.category_names[e.category_id] for e in dataset.entries] == ["Skateboard", "Table"]
    for index in range(len(dataset)):
        sample = dataset[index]
        category = SHAPENETPART_CATEGORIES[int(sample["category"])]
        assert sample["points"].shape == (1024, 3) and sample["part_labels"].dtype == torch.int64
        assert set(sample["part_labels"].tolist()) <= set(SHAPENETPART_PART_TABLE[category])
        low, high = sample["points"].min(0).values, sample["points"].max(0).values
        assert float((high - low).norm() / 2) <= 1.0 + 1e-5
        assert torch.allclose(sample["normals"].norm(dim=1), torch.ones(1024), atol=2e-3)
    for path in sorted(root.glob("*/*.txt")):  # every shipped object file parses, labels in its category's parts
        category = {v: k for k, v in SHAPENETPART_SYNSETS.items()}[path.parent.name]
        points, normals, labels = read_shapenetpart_points(path, SHAPENETPART_PART_TABLE[category])
        assert len(points) == len(normals) == len(labels) == len(path.read_text().splitlines()) > 1000


def test_shapes_world_export_reads_back_unchanged(tmp_path: Path) -> None:
    from distill3d.data.worlds.preview import SHAPES_EXPORT_POINTS, SHAPES_SYNSETS, export_world
    from distill3d.data.worlds.shapes import CATEGORIES, PART_NAMES, ShapesPointCloudDataset, ShapesViewpointDataset

    out = export_world("shapes", tmp_path / "shapes", n=10, seed=3, image_size=32)
    assert (out / "synsetoffset2category.txt").read_text().splitlines()[0] == f"airplane\t{SHAPES_SYNSETS['airplane']}"
    sizes = {}
    for split in ("train", "val", "test"):
        dataset = ShapeNetPartDataset(out, split, n_points=None, normalize=False)
        sizes[split] = len(dataset)
        assert dataset.category_names == CATEGORIES
        assert max(i for ids in dataset.part_table.values() for i in ids) == len(PART_NAMES) - 1
        world = ShapesPointCloudDataset(split, length=len(dataset), n_points=SHAPES_EXPORT_POINTS, seed=3)
        for index in range(len(dataset)):
            read, generated = dataset[index], world[index]
            assert read.keys() == generated.keys()
            for key in generated:
                assert torch.equal(read[key], generated[key]), (split, index, key)
    assert sizes == {"train": 7, "val": 1, "test": 2}
    assert any(int(ShapeNetPartDataset(out, "train", None)[i]["symmetry_order"]) != 1 for i in range(7))

    annotations = json.loads((out / "annotations.json").read_text())
    assert "degrees" in annotations["convention"] and len(annotations["images"]) == 10
    renders = ShapesViewpointDataset("train", length=7, image_size=32, seed=3, with_points=False).batch(range(7))
    for index, record in enumerate(annotations["images"][:7]):
        assert record["split"] == "train" and record["category"] == CATEGORIES[int(renders["category"][index])]
        assert record["shape"] == f"shape_data/{SHAPES_SYNSETS[record['category']]}/train_{index:06d}"
        viewpoint = np.radians([record["azimuth"], record["elevation"], record["theta"]])
        assert np.allclose(viewpoint, renders["viewpoint"][index].double().numpy(), atol=1e-6)
        assert np.allclose(record["K"], renders["K"][index].numpy(), atol=1e-3)
        image = np.asarray(Image.open(out / record["image"]), np.float32) / 255
        assert np.abs(image - renders["image"][index].permute(1, 2, 0).numpy()).max() <= 0.5 / 255 + 1e-6
        x1, y1, x2, y2 = record["bbox"]
        rows, columns = np.nonzero(renders["mask"][index].numpy())
        assert (x1, y1, x2, y2) == (columns.min(), rows.min(), columns.max(), rows.max())
    with pytest.raises(FileExistsError):
        export_world("shapes", out, n=2)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\xff\xfe[]", "not a UTF-8 text file"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),
        (b"[" + b"7" * 5000 + b"]", "malformed JSON value"),
    ],
)
def test_hostile_split_lists_give_one_error(tmp_path, content, needle):
    from distill3d.data.shapenetpart import read_split_file

    path = tmp_path / "shuffled_train_file_list.json"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=needle):
        read_split_file(path)


def test_huge_or_negative_part_labels_are_refused(tmp_path):
    path = tmp_path / "x.txt"
    for label in ("1e30", "-1"):
        path.write_text(f"0 0 0 0 0 1 0\n0.1 0.2 0.3 0 0 1 {label}\n")
        with pytest.raises(DataFormatError, match=r"x\.txt:2: part label .* is not an integer in"):
            read_shapenetpart_points(path)
    path.write_text("0 0 0 0 0 1 0\n0.1 inf 0.3 0 0 1 1\n")
    with pytest.raises(DataFormatError, match=r"x\.txt:2: non-finite value"):
        read_shapenetpart_points(path)
