"""FreiHAND loader and ``pred.json`` writer on fixture files in the official layout (made here), plus the demo
crops of ../shared when present."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_path
from distill3d.data.freihand import FreiHANDDataset, read_freihand_predictions, write_freihand_predictions
from distill3d.errors import DataFormatError, Distill3dError

FRAMES = 3


def _write_split(root: Path, split: str, frames: int, versions: int, with_xyz: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0 if split == "training" else 1)
    K = np.tile(np.array([[480.0, 0, 112.0], [0, 480.0, 111.5], [0, 0, 1]]), (frames, 1, 1))
    xyz = rng.normal(0, 0.03, (frames, 21, 3)) + np.array([0, 0, 0.6])
    scale = np.linalg.norm(xyz[:, 10] - xyz[:, 9], axis=1)
    (root / f"{split}_K.json").write_text(json.dumps(K.tolist()))
    (root / f"{split}_scale.json").write_text(json.dumps(scale.tolist()))
    if with_xyz:
        (root / f"{split}_xyz.json").write_text(json.dumps(xyz.tolist()))
    folder = root / split / "rgb"
    folder.mkdir(parents=True)
    for image_id in range(frames * versions):  # image i + k·N = frame i, background k (brightness encodes k)
        pixels = np.full((224, 224, 3), 40 * (image_id // frames) + 10 * (image_id % frames), np.uint8)
        Image.fromarray(pixels).save(folder / f"{image_id:08d}.jpg", quality=100)
    return {"K": K, "xyz": xyz, "scale": scale}


@pytest.fixture
def freihand_root(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    truth = _write_split(tmp_path, "training", FRAMES, 4, with_xyz=True)
    _write_split(tmp_path, "evaluation", 2, 1, with_xyz=False)
    return tmp_path, truth


def test_training_split_versions_labels_and_resized_intrinsics(freihand_root) -> None:
    root, truth = freihand_root
    dataset = FreiHANDDataset(root, "training", background_versions=(0, 2), image_size=64)
    assert len(dataset) == 2 * FRAMES
    sample = dataset[FRAMES + 1]  # frame 1 of background version 2 → image 1 + 2·N
    assert dataset.image_path(FRAMES + 1).name == f"{1 + 2 * FRAMES:08d}.jpg"
    assert sample["image"].shape == (3, 64, 64)
    assert sample["image"].mean().item() * 255 == pytest.approx(40 * 2 + 10, abs=2)
    np.testing.assert_allclose(sample["joints_xyz"].numpy(), truth["xyz"][1], atol=1e-6)
    assert sample["scale"].item() == pytest.approx(truth["scale"][1], rel=1e-6)
    # uv at 64 px = uv at 224 px mapped through the resize (pixel centres at integers)
    projected = truth["xyz"][1] @ truth["K"][1].T
    uv_224 = projected[:, :2] / projected[:, 2:]
    np.testing.assert_allclose(sample["joints_uv"].numpy(), (uv_224 + 0.5) * 64 / 224 - 0.5, atol=1e-3)


def test_evaluation_split_without_annotations_and_frames_subset(freihand_root) -> None:
    root, _ = freihand_root
    evaluation = FreiHANDDataset(root, "evaluation", image_size=224)
    assert len(evaluation) == 2 and evaluation.xyz is None and "joints_xyz" not in evaluation[0]
    torch.testing.assert_close(evaluation[0]["K"][0, 0], torch.tensor(480.0))
    subset = FreiHANDDataset(root, "training", (0, 1, 2, 3), 32, frames=[2])
    assert len(subset) == 4 and subset.image_path(3).name == f"{2 + 3 * FRAMES:08d}.jpg"


def test_bad_files_raise_errors_naming_the_file(freihand_root) -> None:
    root, _ = freihand_root
    (root / "training_scale.json").write_text("[0.03, 0.04]")
    with pytest.raises(DataFormatError, match=r"training_scale\.json.*2 entries"):
        FreiHANDDataset(root, "training")
    (root / "training_K.json").write_text("[[1, 2,")
    with pytest.raises(DataFormatError, match=r"training_K.json:1: malformed JSON"):
        FreiHANDDataset(root, "training")
    (root / "training_K.json").write_text("[[1, 2, 3]]")
    with pytest.raises(DataFormatError, match=r"training_K\.json.*shape"):
        FreiHANDDataset(root, "training")
    with pytest.raises(Distill3dError, match="not found"):
        FreiHANDDataset(root / "missing", "training")
    with pytest.raises(Distill3dError, match="split"):
        FreiHANDDataset(root, "test")


def test_missing_image_names_the_file(freihand_root) -> None:
    root, _ = freihand_root
    (root / "training" / "rgb" / "00000000.jpg").unlink()
    with pytest.raises(DataFormatError, match=r"00000000\.jpg"):
        FreiHANDDataset(root, "training")[0]


def test_pred_json_round_trip_in_the_official_format(tmp_path: Path) -> None:
    xyz = np.random.default_rng(0).normal(size=(3, 21, 3))
    path = write_freihand_predictions(tmp_path / "pred.json", xyz)
    raw = json.loads(path.read_text())
    assert isinstance(raw, list) and len(raw) == 2 and len(raw[0]) == 3 and len(raw[1]) == 3
    assert np.asarray(raw[0][0]).shape == (21, 3) and np.asarray(raw[1][0]).shape == (778, 3)
    read_xyz, read_verts = read_freihand_predictions(path)
    np.testing.assert_allclose(read_xyz, xyz)
    assert not read_verts.any()
    with pytest.raises(Distill3dError, match=r"\(N, 21, 3\)"):
        write_freihand_predictions(tmp_path / "bad.json", xyz[:, :20])
    (tmp_path / "broken.json").write_text(json.dumps([[[[0, 0, 0]] * 21]]))
    with pytest.raises(DataFormatError, match=r"broken\.json"):
        read_freihand_predictions(tmp_path / "broken.json")


def test_shared_demo_crops_and_intrinsics_are_in_freihand_format() -> None:
    folder = shared_path("data", "freihand", "handmesh_demo")
    images = sorted(folder.glob("*_img.jpg"))
    assert images
    for image_path in images[:3]:
        K = np.load(image_path.with_name(image_path.name.replace("_img.jpg", "_K.npy")))
        assert K.shape == (3, 3) and K[2, 2] == 1 and K[0, 0] > 100
        assert Image.open(image_path).size == (224, 224)


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("training_K.json", b"\xff\xfe[]", r"training_K\.json: not a UTF-8 text file"),
        ("training_K.json", b"[" * 100_000 + b"]" * 100_000, r"training_K\.json: JSON nested too deeply"),
        ("training_scale.json", b"[" + b"9" * 5000 + b"]", r"training_scale\.json: malformed JSON value"),
        ("training_scale.json", b"[0.1, -0.2, 0.1, 0.1]", r"training_scale\.json: entry 1 is not a positive length"),
        ("training_scale.json", b"[0.1, 1e999, 0.1, 0.1]", r"training_scale\.json: contains non-finite values"),
    ],
)
def test_bad_json_gives_one_error_naming_the_file(freihand_root, name: str, content: bytes, needle: str) -> None:
    root, _ = freihand_root
    (root / name).write_bytes(content)
    with pytest.raises(DataFormatError, match=needle):
        FreiHANDDataset(root, "training")


def test_a_camera_matrix_with_zero_focal_is_refused(freihand_root) -> None:
    root, _ = freihand_root
    K = json.loads((root / "training_K.json").read_text())
    K[1][0][0] = 0.0
    (root / "training_K.json").write_text(json.dumps(K))
    with pytest.raises(DataFormatError, match=r"training_K\.json: entry 1 is not a camera matrix"):
        FreiHANDDataset(root, "training")


def test_a_copy_with_one_background_version_serves_it(freihand_root) -> None:
    root, _ = freihand_root
    frames = len(json.loads((root / "training_K.json").read_text()))
    for index in range(frames, 4 * frames):
        (root / "training" / "rgb" / f"{index:08d}.jpg").unlink()
    with pytest.warns(UserWarning, match=r"has background versions \(0,\) of the requested \(0, 1, 2, 3\)"):
        data = FreiHANDDataset(root, "training", (0, 1, 2, 3))
    assert len(data) == frames and data[frames - 1]["image"].shape[0] == 3


def test_pred_json_with_non_finite_values_is_refused(tmp_path: Path) -> None:
    xyz = np.zeros((1, 21, 3))
    path = write_freihand_predictions(tmp_path / "pred.json", xyz)
    path.write_text(path.read_text().replace("0.0", "NaN", 1))
    with pytest.raises(DataFormatError, match=r"pred\.json: holds non-finite"):
        read_freihand_predictions(path)
    path.write_bytes(b"\xff")
    with pytest.raises(DataFormatError, match=r"pred\.json: not a UTF-8"):
        read_freihand_predictions(path)
