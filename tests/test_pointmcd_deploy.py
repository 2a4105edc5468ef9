"""PointMCD deployment: ``predict`` on point-cloud files (.txt / .npy / .off) with a classification and a segmentation
student (top-3 classes, parts, two-view picture), one-line errors for bad inputs, the CLI's ``--option``, and the
demo at tiny sizes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import cli
from distill3d.cli.demos import train_recipe
from distill3d.data.worlds.shapes import CATEGORIES, PART_NAMES, ShapesPointCloudDataset, category_part_ids
from distill3d.engine.checkpoint import load_checkpoint, resolve_checkpoint
from distill3d.errors import ConfigError, DataFormatError, Distill3dError
from distill3d.methods.pointmcd import Options
from distill3d.methods.pointmcd import predict as package_predict
from distill3d.methods.pointmcd.deploy import normalise_like_training, predict, read_point_cloud

TWO_CATEGORIES = ["chair", "table"]
#: Tiny sizes of both recipes (benchmarks/pointmcd.py --quick, smaller networks, 4 views, no disk cache).
TINY = ("options.train_size=32", "options.val_size=16", "options.test_size=16", "options.image_size=32",
        "options.num_points=256", "options.views=4", "options.backbone_width=8", "options.pretrained_backbone=null",
        "options.descriptor_dim=64", f"options.categories=[{', '.join(TWO_CATEGORIES)}]", "options.cache=false",
        "train.epochs=1", "train.batch_size=16", "train.precision=fp32", "train.channels_last=false",
        "train.threads=1")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run folders of a tiny teacher, a distilled classification student and a scratch segmentation student."""
    root = tmp_path_factory.mktemp("pointmcd-runs")
    teacher, _, _ = train_recipe("pointmcd_teacher", list(TINY), root, "teacher")
    classifier, _, _ = train_recipe("pointmcd_student", [*TINY, f"options.teacher_checkpoint={teacher}"], root,
                                    "classifier")
    segmentation = ["options.task=segmentation", "options.distillation_weight=0", "train.monitor=val/instance_miou"]
    segmenter, _, _ = train_recipe("pointmcd_student", [*TINY, *segmentation], root, "segmenter")
    return {"teacher": teacher, "classifier": classifier, "segmenter": segmenter}


def state_of(run: Path) -> dict:
    return load_checkpoint(resolve_checkpoint(run))


def shapes_objects(count: int = 2, points: int = 300) -> dict:
    """Shapes-world chairs/tables with normals and global part ids (the test split, seed 3)."""
    return ShapesPointCloudDataset("test", count, TWO_CATEGORIES, n_points=points, seed=3).batch(list(range(count)))


def assert_picture(path: Path, min_colours: int = 8) -> None:
    """A valid PNG of reasonable size whose pixels are not one flat colour."""
    assert path.is_file()
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as picture:
        picture.verify()
    with Image.open(path) as picture:
        pixels = np.asarray(picture.convert("RGB"))
    assert pixels.shape[0] >= 200 and pixels.shape[1] >= 400
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) >= min_colours
    assert (pixels.reshape(-1, 3) < 200).any(axis=1).mean() > 0.01  # some non-white (drawn) pixels


# ---------------------------------------------------------------------------------------------- reading
def test_text_files_read_with_commas_or_spaces_and_3_6_or_7_columns(tmp_path: Path) -> None:
    xyz = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    commas = tmp_path / "cloud.txt"
    commas.write_text("0,1,2,0,0,1\n\n3,4,5,0,1,0\n")
    spaces = tmp_path / "cloud.pts"
    spaces.write_text("0 1 2\n  \n3 4 5\n")
    parts = tmp_path / "object.txt"
    parts.write_text("0 1 2 0 0 1 4.000000\n3 4 5 0 1 0 5.000000\n")
    for path in (commas, spaces, parts):
        np.testing.assert_array_equal(read_point_cloud(path, 64).points, xyz)
    assert read_point_cloud(parts, 64).part_labels.tolist() == [4, 5]
    assert read_point_cloud(spaces, 64).part_labels is None


def test_normalisation_follows_the_training_data_of_the_run() -> None:
    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(500, 3)) * [3.0, 1.0, 0.5] + [10.0, -4.0, 2.0]
    shapes, _ = normalise_like_training(cloud, None, Options(num_points=256))
    assert shapes.shape == (256, 3) and shapes.dtype == np.float32
    box = (shapes.max(0) - shapes.min(0))
    assert np.linalg.norm(box) / 2 <= 1 + 1e-5 and np.abs(shapes.max(0) + shapes.min(0)).max() < 0.2
    modelnet, _ = normalise_like_training(cloud, None, Options(num_points=600, dataset="modelnet40", data_root="/x"))
    assert modelnet.shape == (600, 3)  # more points than the file: every point once plus repeats
    np.testing.assert_allclose(modelnet.mean(0), 0, atol=1e-5)
    assert np.linalg.norm(modelnet, axis=1).max() == pytest.approx(1, abs=1e-5)


# ------------------------------------------------------------------------------------------------ predict
def test_classification_student_prints_top_classes_and_draws_the_cloud(runs: dict[str, Path], tmp_path: Path) -> None:
    objects = shapes_objects()
    text = tmp_path / "in" / "chair_cloud.txt"
    text.parent.mkdir()
    rows = np.concatenate([objects["points"][0].numpy(), objects["normals"][0].numpy()], axis=1)
    np.savetxt(text, rows, fmt="%.6f", delimiter=",")  # ModelNet40 normal_resampled style
    array = tmp_path / "in" / "table_cloud.npy"
    np.save(array, objects["points"][1].numpy() * 5.0 + 2.0)  # another scale and centre: normalised away
    assert package_predict is predict
    lines = predict(state_of(runs["classifier"]), [text, array], tmp_path / "out")
    assert len(lines) == 2
    for line, path in zip(lines, (text, array), strict=True):
        assert line.startswith(f"{path}: class ")
        assert re.search(r"class (chair|table) \(top 2: (chair|table) [01]\.\d\d, (chair|table) [01]\.\d\d\)", line)
        assert "300 points read → 256" in line
        picture = tmp_path / "out" / f"{path.stem}_pointmcd.png"
        assert line.endswith(f"→ {picture}")
        assert_picture(picture)


def test_mesh_input_is_sampled_on_its_surface(runs: dict[str, Path], tmp_path: Path) -> None:
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-0.5, 0.5)], dtype=float)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    mesh = tmp_path / "box.off"
    mesh.write_text("OFF\n8 6 0\n" + "".join(f"{x} {y} {z}\n" for x, y, z in corners)
                    + "".join(f"4 {a} {b} {c} {d}\n" for a, b, c, d in quads))
    [line] = predict(state_of(runs["classifier"]), [mesh], tmp_path / "out")
    assert line.startswith(f"{mesh}: class ") and "256 points sampled on the mesh → 256" in line
    assert_picture(tmp_path / "out" / "box_pointmcd.png")


def test_segmentation_student_labels_parts_of_the_given_or_folder_category(runs: dict[str, Path],
                                                                          tmp_path: Path) -> None:
    from distill3d.data.worlds.preview import SHAPES_SYNSETS

    objects = shapes_objects()
    chair = int(objects["category"][0])
    name = CATEGORIES[chair]
    folder = tmp_path / SHAPES_SYNSETS[name]  # ShapeNetPart layout: <synset>/<object id>.txt
    folder.mkdir()
    text = folder / "object.txt"
    rows = np.concatenate([objects["points"][0].numpy(), objects["normals"][0].numpy(),
                           objects["part_labels"][0].numpy()[:, None]], axis=1)
    np.savetxt(text, rows, fmt="%.6f")
    other = CATEGORIES[int(objects["category"][1])]
    array = tmp_path / "loose.npy"
    np.save(array, objects["points"][1].numpy())
    state = state_of(runs["segmenter"])
    [by_folder] = predict(state, [text], tmp_path / "out")
    assert by_folder.startswith(f"{text}: category {name} (from the folder name '{SHAPES_SYNSETS[name]}'); parts: ")
    assert "agreement with the file's part labels" in by_folder
    [given] = predict(state, [array], tmp_path / "out", options={"category": other.upper()})
    assert given.startswith(f"{array}: category {other} (from the --option category); parts: ")
    assert_picture(tmp_path / "out" / "object_pointmcd.png")
    assert_picture(tmp_path / "out" / "loose_pointmcd.png")
    part_words = re.findall(r"parts: (.*?) \(", given)[0]
    names = {word.split()[0] for word in part_words.split(", ")}
    assert names and names <= {PART_NAMES[part].split("/")[1] for part in category_part_ids(other)}

    with pytest.raises(DataFormatError, match=re.escape(f"{array}: a segmentation student needs the object's "
                                                        "category: pass --option category=NAME")):
        predict(state, [array], tmp_path / "out")
    with pytest.raises(ConfigError, match=r"category lamp \(--option category\) was not trained"):
        predict(state, [array], tmp_path / "out", options={"category": "lamp"})
    with pytest.raises(ConfigError, match="--option colour: pointmcd predict knows only category"):
        predict(state, [array], tmp_path / "out", options={"colour": "red"})


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.txt", None, r"file not found"),
    ("four.txt", "0 1 2\n0 1 2 3\n", r":2: expected 3 \(x y z\), 6 .* or 7 .* numbers per line, found 4"),
    ("mixed.txt", "0 1 2\n0 1 2 0 0 1\n", r":2: has 6 numbers, the first point line has 3"),
    ("words.txt", "0 1 2\n0 one 2\n", r":2: not a number"),
    ("empty.txt", "\n  \n", r": holds no point"),
    ("nan.pts", "0 1 2\n\nnan 1 2\n", r":3: non-finite value"),
    ("flat.npy", np.zeros((5, 2)), r"expected an array of shape \(N, 3\) or \(N, 6\), got \(5, 2\)"),
    ("none.npy", np.zeros((0, 3)), r": holds no point"),
    ("garbage.npy", "not an array", r"not a readable \.npy array"),
    ("cloud.obj", "v 0 0 0\n", r"unsupported point-cloud file type '\.obj'"),
])
def test_bad_inputs_are_one_line_errors_naming_the_file(runs: dict[str, Path], tmp_path: Path, name: str,
                                                       content: object, message: str) -> None:
    path = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(path, content)
    elif content is not None:
        path.write_text(content)
    good = tmp_path / "good.txt"  # read first: its picture must not be written either (nothing half-written)
    np.savetxt(good, np.random.default_rng(0).normal(size=(40, 3)))
    with pytest.raises(DataFormatError) as caught:
        predict(state_of(runs["classifier"]), [good, path], tmp_path / "out")
    text = str(caught.value)
    assert "\n" not in text and text.startswith(str(path))
    assert re.search(message, text), text
    assert not (tmp_path / "out").exists()


def test_teacher_checkpoints_are_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(Distill3dError, match=r"teacher checkpoint .* predict takes a point-cloud student"):
        predict(state_of(runs["teacher"]), [tmp_path / "x.txt"], tmp_path / "out")


# ---------------------------------------------------------------------------------------------------- CLI


def test_cli_predict_passes_options(runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cloud = tmp_path / "cloud.npy"
    np.save(cloud, shapes_objects()["points"][0].numpy())
    code, out, err = cli(capsys, "predict", runs["segmenter"], cloud, "--out-dir", tmp_path / "out",
                         "--option", "category=table")
    assert code == 0, err
    assert out.startswith(f"{cloud}: category table (from the --option category); parts: ")
    for bad, pattern in ((["--option", "category"], "expected KEY=VALUE"),
                         (["--option", "category=table", "--option", "category=chair"], "given twice"),
                         (["--option", "size=3"], "--option size: pointmcd predict knows only category")):
        code, _, err = cli(capsys, "predict", runs["segmenter"], cloud, "--out-dir", tmp_path / "out", *bad)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and pattern in lines[0], err
    code, _, err = cli(capsys, "predict", runs["classifier"], tmp_path / "absent.txt", "--out-dir", tmp_path / "o")
    assert code == 2 and err.strip() == f"error: {tmp_path / 'absent.txt'}: input file not found"


# --------------------------------------------------------------------------------------------------- demo
def test_demo_is_listed_and_runs_at_tiny_sizes(tmp_path: Path) -> None:
    from distill3d.cli.demos import DEMOS, pointmcd_demo, run_demo

    assert "pointmcd" in DEMOS and "min" in DEMOS["pointmcd"] and callable(run_demo)
    table = pointmcd_demo(tmp_path, progress=False, overrides=TINY, reports=False)
    assert "| teacher: resnet18 over 4 rendered views (sees images) |" in table
    assert "| PointNet from scratch (λ = 0) |" in table and "| PointNet + L_MCD to the teacher (λ = 1) |" in table
    assert "| chance (1 / 2 categories) | 50.0 | 50.0 | |" in table
    assert re.search(r"Distilled − scratch test OA: [+-]\d+\.\d points ± \d+\.\d \(paired standard error over the "
                     r"16 test shapes\)", table)
    assert "of which 4 are labelled" in table  # 10 % of 16 per category, at least 1 → 2 per category
    assert len(list(tmp_path.glob("demo-pointmcd-*/best.pt"))) == 3
