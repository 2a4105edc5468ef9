"""SKD-WM3D: the weak data path holds no 3D labels, the flip is consistent, and tiny runs of every arm train,
evaluate with the KITTI evaluation and reload."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import torchrun
from distill3d.cli.demos import train_recipe
from distill3d.data.worlds.road import RoadDataset
from distill3d.errors import Distill3dError
from distill3d.geometry.boxes3d import project_box3d_to_image
from distill3d.methods.skd_wm3d import Options, build_task
from distill3d.methods.skd_wm3d.data import (
    WEAK_TRAIN_KEYS,
    crop_batch,
    flatten_objects,
    flip_batch,
    kitti_to_input_pixels,
)

pytestmark = pytest.mark.filterwarnings("ignore:fewer than 41 valid GT boxes")  # tiny splits, by design
TINY = ["options.image_size=[64, 192]", "options.train_size=6", "options.val_size=4", "options.test_size=4",
        "options.backbone_width=8", "options.pretrained_backbone=null", "options.cache=false",
        "train.batch_size=3", "train.epochs=1", "train.precision=fp32", "train.channels_last=false",
        "train.threads=1"]


def _batch(size: int = 3, image_size: tuple[int, int] = (64, 192)) -> dict:
    data = RoadDataset("train", size, 0, image_size)
    return data.collate(data.__getitems__(list(range(size))))


def test_weak_training_split_has_no_3d_labels_or_true_depth() -> None:
    task = build_task(Options(image_size=(64, 192), train_size=4, cache=False, pretrained_backbone=None), 0)
    sample = task.train_set()[0]
    assert set(sample) == {*WEAK_TRAIN_KEYS, "index"}
    for forbidden in ("boxes3d", "depth", "alpha", "truncated", "occluded"):
        assert forbidden not in sample
    full = build_task(Options(image_size=(64, 192), train_size=4, cache=False, supervision="full",
                              pretrained_backbone=None), 0)
    assert "boxes3d" in full.train_set()[0]


def test_flip_keeps_projection_consistent() -> None:
    """After the flip, the flipped 3D boxes project with the flipped P onto the flipped 2D boxes' image."""
    batch = _batch()
    flipped = flip_batch(batch, torch.ones(3, dtype=torch.bool))
    torch.testing.assert_close(flipped["image"], batch["image"].flip(-1))
    for i in range(3):
        if len(batch["boxes3d"][i]) == 0:
            continue
        _, before = project_box3d_to_image(batch["boxes3d"][i].double(), batch["P2_image"][i].double())
        _, after = project_box3d_to_image(flipped["boxes3d"][i].double(), flipped["P2_image"][i].double())
        width = batch["image"].shape[-1]
        mirrored = torch.stack([width - 1 - before[:, 2], before[:, 1], width - 1 - before[:, 0], before[:, 3]], 1)
        torch.testing.assert_close(after, mirrored, rtol=0, atol=1e-3)
        ry = flipped["boxes3d"][i][:, 6]
        assert bool(((ry >= -math.pi) & (ry < math.pi)).all())
    objects = flatten_objects(flipped, (64, 192), ("Car", "Pedestrian", "Cyclist"))
    original = flatten_objects(batch, (64, 192), ("Car", "Pedestrian", "Cyclist"))
    torch.testing.assert_close(objects.boxes2d[:, 0], 191 - original.boxes2d[:, 2], rtol=0, atol=1e-3)


def test_crop_zooms_the_image_and_keeps_projection_consistent() -> None:
    """The zoom-in crop moves every projection by the same affine map as the image: the 3D boxes (unchanged) project
    with the new P where the old projections land after the map; 2D boxes are mapped and clipped, objects mostly
    outside are dropped with all their rows; the depth estimate is resampled without new values; scale 1 is the
    identity."""
    batch = _batch()
    height, width = batch["image"].shape[-2:]
    same = crop_batch(batch, torch.ones(3), torch.zeros(3, 2))
    torch.testing.assert_close(same["image"], batch["image"], rtol=0, atol=1e-5)
    torch.testing.assert_close(same["P2_image"], batch["P2_image"])
    scale = torch.tensor([0.5, 0.75, 0.6])
    origin = torch.tensor([[40.0, 10.0], [0.0, 16.0], [70.0, 20.0]])
    cropped = crop_batch(batch, scale, origin)
    assert cropped["image"].shape == batch["image"].shape
    window = batch["image"][:1, :, 10:42, 40:136]  # image 0's window: 96 × 32 px from (40, 10)
    resized = torch.nn.functional.interpolate(window, size=(height, width), mode="bilinear", align_corners=False)
    torch.testing.assert_close(cropped["image"][:1, :, 2:-2, 2:-2], resized[..., 2:-2, 2:-2], rtol=0, atol=1e-5)
    assert bool(torch.isin(cropped["depth_estimate"], batch["depth_estimate"]).all())
    before = flatten_objects(batch, (height, width), ("Car", "Pedestrian", "Cyclist"))
    after = flatten_objects(cropped, (height, width), ("Car", "Pedestrian", "Cyclist"))
    dropped = 0
    for i in range(3):
        assert len(cropped["bbox"][i]) == len(cropped["labels"][i]) == len(cropped["boxes3d"][i])
        dropped += len(batch["bbox"][i]) - len(cropped["bbox"][i])
        if len(batch["boxes3d"][i]):
            _, old = project_box3d_to_image(batch["boxes3d"][i].double(), batch["P2_image"][i].double())
            _, new = project_box3d_to_image(batch["boxes3d"][i].double(), cropped["P2_image"][i].double())
            corner = origin[i].double().repeat(2)
            torch.testing.assert_close(new, (old + 0.5 - corner) / float(scale[i]) - 0.5, rtol=0, atol=1e-4)
            point = torch.tensor([1.0, 1.5, 12.0], dtype=torch.float64)
            uv = batch["K"][i].double() @ point
            uv_new = cropped["K"][i].double() @ point
            torch.testing.assert_close(uv_new[:2] / uv_new[2],
                                       (uv[:2] / uv[2] + 0.5 - origin[i].double()) / float(scale[i]) - 0.5,
                                       rtol=0, atol=1e-4)
        rows = after.batch_index == i
        kept = before.boxes2d[before.batch_index == i]
        mapped = (kept + 0.5 - origin[i].repeat(2)) / float(scale[i]) - 0.5
        mapped = torch.minimum(mapped.clamp(min=0), torch.tensor([width - 1.0, height - 1.0] * 2))
        assert bool((torch.cdist(after.boxes2d[rows], mapped).min(1).values < 1e-3).all())
    assert dropped > 0  # a 0.5 zoom leaves some objects out of view


def test_a_training_step_with_the_crop_and_focal_normalised_depth() -> None:
    """With ``focal_normalised_depth`` the head's depth is read at the un-zoomed input's focal length (the road
    world's f_y at the input size, so un-cropped frames decode unchanged) and a training step with crops runs."""
    options = Options(image_size=(64, 192), backbone_width=8, pretrained_backbone=None, cache=False,
                      crop_scale=0.6, crop_probability=1.0, focal_normalised_depth=True)
    task = build_task(options, 0)
    batch = _batch(3)
    assert build_task(options.model_copy(update={"focal_normalised_depth": False}), 0).depth_focal is None
    torch.testing.assert_close(batch["P2_image"][:, 1, 1], torch.full((3,), task.depth_focal), rtol=1e-6, atol=0)
    weak_batch = {key: value for key, value in batch.items() if key in WEAK_TRAIN_KEYS}
    logged = task.training_step(task.build_model(), weak_batch)
    assert torch.isfinite(logged["loss"]) and "mdn_projection" in logged


def test_flatten_objects_maps_pixels_and_classes() -> None:
    batch = _batch()
    objects = flatten_objects(batch, (64, 192), ("Car",))
    labels = torch.cat(batch["labels"])
    assert len(objects.classes) == int((labels == 0).sum())
    assert bool((objects.classes == 0).all())
    expected = kitti_to_input_pixels(torch.cat(batch["bbox"])[labels == 0].float(), (64, 192))
    torch.testing.assert_close(objects.boxes2d, expected)


@pytest.mark.parametrize("arm", [
    ["options.supervision=full", "options.self_distillation=false"],
    ["options.supervision=weak", "options.self_distillation=false"],
    ["options.supervision=weak"],  # the full method: DSN, uncertainty, modulation
    ["options.supervision=weak", "train.precision=bf16"],  # evaluation decodes bf16 maps too
])
def test_tiny_run_trains_evaluates_and_reloads(tmp_path: Path, arm: list[str]) -> None:
    run_dir, task, model = train_recipe("skd_wm3d", [*TINY, *arm], tmp_path, "run")
    history = (run_dir / "metrics.csv").read_text()
    assert "train/loss" in history and "val/ap_bev_r40_moderate_05" in history
    if "options.self_distillation=false" not in arm:
        assert "train/transfer" in history and "train/dsn_projection" in history
    batch = task.collate([task.test_sets()["test"][i] for i in range(2)])
    frames = task.predict(model, batch)
    assert len(frames) == 2
    for frame in frames:
        assert frame.has_scores or len(frame) == 0
        assert (frame.dimensions > 0).all()


def test_dsn_branch_detects_from_the_depth_estimate(tmp_path: Path) -> None:
    """``predict(..., branch="dsn")`` decodes the DSN (image + the batch's depth estimate): its detections move
    with the depth map while the MDN's (image only) do not; without a depth estimate it is one clear error."""
    _, task, model = train_recipe("skd_wm3d", [*TINY, "options.supervision=weak", "options.score_threshold=0.0"],
                                  tmp_path, "run")
    batch = _batch(3)
    deeper = {**batch, "depth_estimate": batch["depth_estimate"] * 3 + 5}

    def scores(frames: list) -> np.ndarray:
        return np.concatenate([frame.score for frame in frames])

    assert np.array_equal(scores(task.predict(model, batch)), scores(task.predict(model, deeper)))
    dsn = task.predict(model, batch, branch="dsn")
    assert len(dsn) == 3 and not np.array_equal(scores(dsn), scores(task.predict(model, deeper, branch="dsn")))
    assert set(task.evaluate(model, [batch], branch="dsn")) == set(task.evaluate(model, [batch]))
    without_depth = {key: value for key, value in batch.items() if key != "depth_estimate"}
    with pytest.raises(Distill3dError, match="depth_estimate"):
        task.predict(model, without_depth, branch="dsn")


def test_kitti_run_from_a_local_folder(tmp_path: Path) -> None:
    """dataset: kitti — the six shared KITTI frames, depth PNGs made from their LiDAR scans (a stand-in for a
    depth estimator's output): trains, selects on held-out training ids, evaluates on ImageSets/val.txt."""
    from conftest import shared_path
    from test_kitti_detection import write_sparse_depth

    root = shared_path("data", "kitti")
    depth_root = tmp_path / "depth"
    for frame in ("000000", "000001", "000002", "000003", "000004", "000005"):
        write_sparse_depth(root, frame, depth_root)
    overrides = [*TINY, "options.dataset=kitti", f"options.kitti_root={root}", f"options.depth_root={depth_root}",
                 "options.kitti_val_from_train=2"]
    run_dir, task, model = train_recipe("skd_wm3d", overrides, tmp_path, "kitti")
    assert len(task.train_set()) == 4 and len(task.val_set()) == 2 and len(task.test_sets()["test"]) == 6
    sample = task.train_set()[0]
    assert "boxes3d" not in sample and "image_size_original" in sample
    batch = task.collate([task.test_sets()["test"][i] for i in range(2)])
    frames = task.predict(model, batch)
    assert len(frames) == 2
    assert "val/ap_bev_r40_moderate_05" in (run_dir / "metrics.csv").read_text()


def test_paper_scale_kitti_recipe_validates_and_names_missing_paths(tmp_path: Path) -> None:
    from distill3d.cli.methods import resolve_config_path
    from distill3d.engine.config import load_run_config, validate_section
    from distill3d.errors import ConfigError

    path = resolve_config_path("skd_wm3d_kitti")
    with pytest.raises(ConfigError, match="kitti_root"):
        validate_section(Options, load_run_config(path).options, "options")
    config = load_run_config(path, [f"options.kitti_root={tmp_path}", f"options.depth_root={tmp_path}"])
    options = validate_section(Options, config.options, "options")
    assert options.image_size == (384, 1280) and options.backbone == "resnet34" and config.train.epochs == 140


def test_two_process_ddp_training_with_the_modulation_hook(tmp_path: Path) -> None:
    """``torchrun --nproc_per_node 2 … train skd_wm3d``: MDN + DSN under DDP (gloo), the modulation scaling the
    gradients between backward and the optimiser step, and the KITTI evaluation on rank 0."""
    overrides = [*TINY, "options.train_size=12", "train.batch_size=4", f"out_dir={tmp_path}", "name=ddp"]
    torchrun("-m", "distill3d.cli.main", "train", "skd_wm3d", "--no-progress", *overrides, timeout=300)
    metrics = (tmp_path / "ddp" / "metrics.csv").read_text()
    assert "train/transfer" in metrics and "val/ap_bev_r40_moderate_05" in metrics
    assert (tmp_path / "ddp" / "best.pt").is_file()


def test_kitti_result_files_scored_by_the_official_evaluation_match_evaluate(tmp_path: Path) -> None:
    """write_kitti_predictions → label + result files; evaluate_kitti_dirs on them gives evaluate's numbers."""
    from torch.utils.data import DataLoader

    from distill3d.data.kitti_io import evaluate_kitti_dirs

    _, task, model = train_recipe("skd_wm3d", [*TINY, "options.supervision=full", "options.self_distillation=false",
                                               "options.score_threshold=0.0"], tmp_path, "run")
    label_dir, result_dir = task.write_kitti_predictions(model, "test", tmp_path / "kitti")
    assert sorted(p.name for p in result_dir.iterdir()) == [f"{i:06d}.txt" for i in range(4)]
    assert len(list(label_dir.iterdir())) == 4
    from_files = evaluate_kitti_dirs(label_dir, result_dir, metrics=("bbox", "bev", "3d")).to_dict(include_aos=False)
    in_memory = task.evaluate(model, DataLoader(task.test_sets()["test"], batch_size=2, collate_fn=task.collate))
    for key in ("Car_BEV_AP40_moderate_loose", "Car_2D_AP40_moderate_strict", "Pedestrian_3D_AP11_easy_loose"):
        assert from_files[f"KITTI/{key}"] == pytest.approx(in_memory[key], abs=1e-6), key
    # a perfect detector (the ground truth with score 1) through the same files: the label files are faithful
    from distill3d.data.kitti_detection import evaluation_frames, write_kitti_results
    from distill3d.metrics.kitti import evaluate_kitti

    gt = [f for batch in DataLoader(task.test_sets()["test"], batch_size=2, collate_fn=task.collate)
          for f in evaluation_frames(batch)]
    perfect = [f.select(np.isin(f.name, task.options.classes)) for f in gt]
    for frame in perfect:
        frame.score = np.ones(len(frame))
    write_kitti_results(perfect, [f"{i:06d}" for i in range(4)], tmp_path / "perfect")
    from_files = evaluate_kitti_dirs(label_dir, tmp_path / "perfect", metrics=("bev",)).to_dict(include_aos=False)
    expected = evaluate_kitti(gt, perfect, classes=task.options.classes, metrics=("bev",)).to_dict(include_aos=False)
    assert from_files["KITTI/Car_BEV_AP40_moderate_loose"] > 0
    assert from_files["KITTI/Car_BEV_AP40_moderate_loose"] == pytest.approx(
        expected["KITTI/Car_BEV_AP40_moderate_loose"], abs=1e-6)


@pytest.mark.parametrize("chosen", [("depth",), ("orientation",), ("offset3d", "dimensions")])
def test_transfer_reaches_only_the_chosen_attributes(chosen: tuple[str, ...]) -> None:
    """``options.transfer_attributes`` picks what the MDN learns from the DSN: the transfer's gradient reaches
    the student's chosen attributes and no other; the teacher gets none (stop-gradient)."""
    task = build_task(Options(transfer_attributes=chosen, pretrained_backbone=None, cache=False), 0)
    generator = torch.Generator().manual_seed(0)

    def decoded(requires_grad: bool) -> dict:
        def leaf(*shape: int, shift: float = 0.0) -> torch.Tensor:
            return (torch.randn(*shape, generator=generator) + shift).requires_grad_(requires_grad)

        return {"depth": leaf(5, shift=20.0), "log_sigma": leaf(5), "alpha": leaf(5),
                "at": {"offset3d": leaf(5, 2), "dimensions": leaf(5, 3)}}

    student, teacher = decoded(True), decoded(True)
    task._transfer(student, teacher).backward()
    reached = {"depth": student["depth"].grad, "orientation": student["alpha"].grad,
               "offset3d": student["at"]["offset3d"].grad, "dimensions": student["at"]["dimensions"].grad}
    for name, grad in reached.items():
        assert (grad is not None and bool(grad.abs().sum() > 0)) == (name in chosen), name
    assert teacher["depth"].grad is None and teacher["alpha"].grad is None


def test_alignment_trains_only_the_listed_branches() -> None:
    """``options.alignment_branches: [dsn]`` gives the point-to-box alignment to the DSN only."""
    options = Options(image_size=(64, 192), backbone_width=8, pretrained_backbone=None, cache=False, flip=False,
                      weights={"alignment": 1.0}, alignment_branches=("dsn",))
    task = build_task(options, 0)
    model = task.build_model()
    weak_batch = {key: value for key, value in _batch(3).items() if key in WEAK_TRAIN_KEYS}
    logged = task.training_step(model, weak_batch)
    assert "dsn_alignment" in logged and "mdn_alignment" not in logged
    both = build_task(options.model_copy(update={"alignment_branches": ("mdn", "dsn")}), 0)
    assert {"dsn_alignment", "mdn_alignment"} <= set(both.training_step(model, weak_batch))


def test_depth_orientation_cue_trains_only_the_listed_branches() -> None:
    """``weights.orientation_cue`` with ``orientation_cue_branches: [dsn]`` (the default) adds the depth
    orientation term to the DSN only and leaves the MDN-only arm without it; ``[mdn]`` gives it to the MDN."""
    options = Options(image_size=(64, 192), backbone_width=8, pretrained_backbone=None, cache=False, flip=False)
    assert options.weights.orientation_cue > 0
    assert options.orientation_cue_branches == ("dsn",)
    weak_batch = {key: value for key, value in _batch(3).items() if key in WEAK_TRAIN_KEYS}
    task = build_task(options, 0)
    model = task.build_model()
    logged = task.training_step(model, weak_batch)
    assert "dsn_orientation_cue" in logged and "mdn_orientation_cue" not in logged
    assert 0 <= float(logged["dsn_orientation_cue"]) <= 1
    alone = build_task(options.model_copy(update={"self_distillation": False}), 0)
    assert "mdn_orientation_cue" not in alone.training_step(alone.build_model(), weak_batch)
    direct = build_task(options.model_copy(update={"self_distillation": False, "orientation_cue_branches": ("mdn",)}),
                        0)
    assert "mdn_orientation_cue" in direct.training_step(direct.build_model(), weak_batch)


def test_footprint_depth_offset_changes_only_the_depth_target() -> None:
    """``options.depth_offset: footprint`` moves the weak depth target behind the visible surface by the
    predicted footprint's half extent along the ray instead of half the class-mean width: the depth term changes,
    no other term does."""
    options = Options(image_size=(64, 192), backbone_width=8, pretrained_backbone=None, cache=False, flip=False,
                      self_distillation=False)
    weak_batch = {key: value for key, value in _batch(3).items() if key in WEAK_TRAIN_KEYS}
    model = build_task(options, 0).build_model()
    logged = {offset: build_task(options.model_copy(update={"depth_offset": offset}), 0).training_step(model,
                                                                                                       weak_batch)
              for offset in ("half_width", "footprint")}
    assert float(logged["half_width"]["mdn_depth"]) != pytest.approx(float(logged["footprint"]["mdn_depth"]))
    for term in ("mdn_heatmap", "mdn_projection", "mdn_dimension_prior"):
        assert float(logged["half_width"][term]) == pytest.approx(float(logged["footprint"][term]))


def test_heatmap_transfer_is_part_of_the_transfer_term() -> None:
    """``transfer_attributes: [heatmap]``: the transfer is the dense heat-map KL alone (positive while the two
    branches' heat maps differ); with the box attributes it adds to their transfer."""
    options = Options(image_size=(64, 192), backbone_width=8, pretrained_backbone=None, cache=False, flip=False,
                      transfer_attributes=("heatmap",))
    weak_batch = {key: value for key, value in _batch(3).items() if key in WEAK_TRAIN_KEYS}
    model = build_task(options, 0).build_model()
    heatmap_only = float(build_task(options, 0).training_step(model, weak_batch)["transfer"])
    depth_only = float(build_task(options.model_copy(update={"transfer_attributes": ("depth",)}), 0)
                       .training_step(model, weak_batch)["transfer"])
    both = float(build_task(options.model_copy(update={"transfer_attributes": ("depth", "heatmap")}), 0)
                 .training_step(model, weak_batch)["transfer"])
    assert heatmap_only > 0 and both == pytest.approx(heatmap_only + depth_only, rel=1e-4)
