"""SKD-WM3D deployment: ``predict`` draws 3D boxes and a bird's-eye view (KITTI calib or the road camera), the
TorchScript / ONNX exports reproduce the PyTorch MDN, and the demo runs (at tiny sizes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from distill3d.data.kitti_io import KittiCalib, write_calib_file
from distill3d.data.worlds.road import KITTI_IMAGE_SIZE, KITTI_P2, RoadDataset, image_projection
from distill3d.engine.checkpoint import load_checkpoint, save_checkpoint
from distill3d.errors import DataFormatError, Distill3dError
from distill3d.geometry.mono3d import decode_detections
from distill3d.methods.skd_wm3d import Options, build_task
from distill3d.methods.skd_wm3d.deploy import (
    EXPORT_OUTPUT_NAMES,
    ExportableMDN,
    detect,
    export,
    exported_outputs_to_dict,
    input_projection,
    load_mdn,
    predict,
    read_export_metadata,
)

pytestmark = pytest.mark.filterwarnings("ignore:fewer than 41 valid GT boxes")  # tiny splits, by design
IMAGE_SIZE = (64, 128)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained skd_wm3d checkpoint written like the engine's (config dump + model state), with the DSN."""
    options = Options(image_size=IMAGE_SIZE, backbone_width=8, pretrained_backbone=None, cache=False, top_k=5,
                      head_channels=16)
    torch.manual_seed(0)
    model = build_task(options, 0).build_model()
    path = tmp_path_factory.mktemp("run") / "best.pt"
    config = {"method": "skd_wm3d", "seed": 0, "options": options.model_dump(mode="json")}
    save_checkpoint(path, {"model": model.state_dict(), "config": config, "epoch": 1})
    return path


def _write_image(path: Path, size_hw: tuple[int, int]) -> Path:
    """A road-world frame resized to ``size_hw`` as a PNG."""
    image = RoadDataset("test", 1, 0, (96, 320))[0]["image"]
    pixels = (image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).resize((size_hw[1], size_hw[0]), Image.BILINEAR).save(path)
    return path


def _kitti_folder(root: Path) -> Path:
    """A tiny KITTI object folder: training/image_2/000001.png (half size) and its calib (KITTI's P2, halved)."""
    image = _write_image(root / "training" / "image_2" / "000001.png", (188, 621))
    P2 = np.diag([0.5, 0.5, 1.0]) @ KITTI_P2
    calib = KittiCalib(P0=P2, P1=P2, P2=P2, P3=P2, R0_rect=np.eye(3), Tr_velo_to_cam=np.eye(4)[:3])
    write_calib_file(root / "training" / "calib" / "000001.txt", calib)
    return image


def test_predict_draws_one_png_per_image_with_the_calib_or_the_road_camera(checkpoint: Path, tmp_path: Path,
                                                                           capsys, monkeypatch) -> None:
    from distill3d.cli.main import main
    from distill3d.methods.skd_wm3d import deploy

    monkeypatch.setattr(deploy, "DISPLAY_SCORE_THRESHOLD", 0.0)  # the untrained heat maps score ≈ 0.1

    kitti_image = _kitti_folder(tmp_path / "kitti")
    plain = _write_image(tmp_path / "street.png", (96, 320))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as finished:  # click exits when done
        main(["predict", str(checkpoint), str(kitti_image), str(plain), "--out-dir", str(out)])
    assert finished.value.code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 2
    assert lines[0].startswith(str(kitti_image)) and "calib/000001.txt" in lines[0]
    assert lines[1].startswith(str(plain)) and "assumed road-world camera" in lines[1]
    for line in lines:
        assert "detection" in line and " m" in line  # class, score and depth of each detection
    for stem, image in (("000001", kitti_image), ("street", plain)):
        with Image.open(out / f"{stem}_3d.png") as drawn, Image.open(image) as original:
            assert drawn.format == "PNG"
            # image panel (enlarged to ≥ 320 px high) + a square bird's-eye view of the same height
            scale = max(1.0, 320 / original.height)
            assert drawn.height == round(original.height * scale)
            assert drawn.width == round(original.width * scale) + 4 + drawn.height


def test_predict_lines_list_each_detection_and_repeated_stems_do_not_overwrite(checkpoint: Path,
                                                                                tmp_path: Path, monkeypatch) -> None:
    from distill3d.methods.skd_wm3d import deploy

    state = load_checkpoint(checkpoint)
    first = _write_image(tmp_path / "a" / "x.png", (64, 128))
    second = _write_image(tmp_path / "b" / "x.png", (64, 128))
    shown_by_default = predict(state, [first], tmp_path / "default")[0]
    assert "0 detections with score ≥ 0.3" in shown_by_default and "weaker not shown" in shown_by_default
    monkeypatch.setattr(deploy, "DISPLAY_SCORE_THRESHOLD", 0.0)
    lines = predict(state, [first, second], tmp_path / "out")
    assert (tmp_path / "out" / "x_3d.png").is_file() and (tmp_path / "out" / "x_2_3d.png").is_file()
    count = int(lines[0].split(": ", 1)[1].split(" ")[0])
    assert 1 <= count <= 5  # untrained heat maps sit at the prior (≈ 0.1 > threshold): top_k = 5 detections
    assert lines[0].count(" z=") == count
    assert any(name in lines[0] for name in ("Car", "Pedestrian", "Cyclist"))


def test_the_calib_camera_of_a_kitti_frame_matches_the_road_camera() -> None:
    """KITTI's P2 at 1242×375 rescaled to the input is the road world's image_projection (same conventions)."""
    for size in ((96, 320), IMAGE_SIZE):
        np.testing.assert_allclose(input_projection(KITTI_P2, KITTI_IMAGE_SIZE, size).numpy(),
                                   image_projection(size), rtol=1e-12, atol=1e-9)


def test_predict_errors_name_the_file(checkpoint: Path, tmp_path: Path) -> None:
    state = load_checkpoint(checkpoint)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(DataFormatError, match=r"broken\.png"):
        predict(state, [broken], tmp_path / "out")
    with pytest.raises(Distill3dError, match="not an skd_wm3d checkpoint"):
        predict({**state, "config": {**state["config"], "method": "pose_ckd"}}, [broken], tmp_path / "out")


def test_torchscript_export_reproduces_the_mdn_and_decodes_alike(checkpoint: Path, tmp_path: Path) -> None:
    state = load_checkpoint(checkpoint)
    mdn, task = load_mdn(state)
    images = torch.rand(3, 3, *IMAGE_SIZE)  # traced with batch 2: the batch is dynamic
    with torch.no_grad():
        expected = ExportableMDN(mdn)(images)
        scripted = torch.jit.load(str(export(state, tmp_path / "mdn.torchscript.pt", "torchscript")))
        outputs = scripted(images)
    assert len(outputs) == len(EXPORT_OUTPUT_NAMES)
    for name, got, want in zip(EXPORT_OUTPUT_NAMES, outputs, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=name)
    metadata = read_export_metadata(tmp_path / "mdn.torchscript.pt")
    assert metadata["outputs"] == list(EXPORT_OUTPUT_NAMES) and metadata["image_size"] == list(IMAGE_SIZE)
    P2 = torch.from_numpy(image_projection(IMAGE_SIZE)).float().expand(3, 3, 4)
    from_export = decode_detections(exported_outputs_to_dict(outputs), P2,
                                    torch.tensor(metadata["class_means_hwl_m"]), top_k=metadata["top_k"],
                                    stride=metadata["stride"], score_threshold=metadata["score_threshold"])
    for a, b in zip(from_export, detect(mdn, task, images, P2), strict=True):
        torch.testing.assert_close(a["boxes3d"], b["boxes3d"], rtol=1e-4, atol=1e-4)


def test_onnx_export_reproduces_the_mdn(checkpoint: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="ONNX export needs the 'onnx' package (pip install 'distill3d[export]')")
    onnxruntime = pytest.importorskip("onnxruntime", reason="comparing needs onnxruntime (distill3d[export])")
    state = load_checkpoint(checkpoint)
    mdn, _ = load_mdn(state)
    images = torch.rand(3, 3, *IMAGE_SIZE)
    with torch.no_grad():
        expected = ExportableMDN(mdn)(images)
    path = export(state, tmp_path / "mdn.onnx", "onnx")
    outputs = onnxruntime.InferenceSession(str(path)).run(None, {"images": images.numpy()})
    for name, got, want in zip(EXPORT_OUTPUT_NAMES, exported_outputs_to_dict(outputs).values(), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4, msg=name)
    assert read_export_metadata(path)["classes"] == ["Car", "Pedestrian", "Cyclist"]


def test_demo_is_listed_and_runs_at_tiny_sizes(tmp_path: Path) -> None:
    from distill3d.cli.demos import DEMOS, run_demo, skd_wm3d_demo

    assert "skd_wm3d" in DEMOS and "min" in DEMOS["skd_wm3d"]
    assert callable(run_demo)
    tiny = ["options.image_size=[64, 192]", "options.train_size=4", "options.val_size=4", "options.test_size=4",
            "options.backbone_width=8", "options.head_channels=16", "options.pretrained_backbone=null",
            "options.cache=false", "train.batch_size=4", "train.epochs=1", "train.precision=fp32",
            "train.channels_last=false", "train.threads=1"]
    table = skd_wm3d_demo(tmp_path, progress=False, overrides=tiny, reports=False)
    assert "3D labels (supervised ceiling)" in table and "weak labels only" in table and "chance" in table
    assert "taught by the DSN" in table
    assert len(list(tmp_path.glob("demo-skd_wm3d-*/best.pt"))) == 3
