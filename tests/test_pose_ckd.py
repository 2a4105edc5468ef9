"""Pose CKD: bin encoding, task loss, label-consistent augmentation, shape/label algebra, tiny end-to-end runs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from distill3d.data.augment import flip_images_and_viewpoints, rotate_images_and_viewpoints
from distill3d.data.worlds.shapes import build_object, render_viewpoints
from distill3d.engine.config import TrainConfig
from distill3d.engine.trainer import Trainer
from distill3d.geometry.rotations import geodesic_distance, rotation_z, viewpoint_to_matrix
from distill3d.geometry.viewpoint_bins import ViewpointBins, flip_viewpoint
from distill3d.losses.viewpoint import viewpoint_task_loss
from distill3d.methods.pose_ckd import Options, build_task, rotate_shapes_in_azimuth


def random_viewpoints(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    azimuth = torch.rand(n, generator=gen, dtype=torch.float64) * 2 * math.pi
    elevation = (torch.rand(n, generator=gen, dtype=torch.float64) - 0.5) * math.radians(170)
    inplane = (torch.rand(n, generator=gen, dtype=torch.float64) - 0.5) * 2 * math.pi * 0.999
    return torch.stack([azimuth, elevation, inplane], dim=1)


def ideal_logits(viewpoint: torch.Tensor, bins: ViewpointBins) -> dict[str, torch.Tensor]:
    """Head outputs that put all mass on the true bins and encode the true offsets exactly."""
    index, offset = bins.encode(viewpoint)
    logits = {}
    for i, (name, count) in enumerate(zip(("azimuth", "elevation", "inplane"), bins.counts, strict=True)):
        cls = torch.full((len(viewpoint), count), -30.0, dtype=viewpoint.dtype)
        cls.scatter_(1, index[:, i : i + 1], 30.0)
        reg = torch.zeros((len(viewpoint), count), dtype=viewpoint.dtype)
        reg.scatter_(1, index[:, i : i + 1], torch.atanh(2 * offset[:, i : i + 1]))
        logits[f"{name}_cls"], logits[f"{name}_reg"] = cls, reg
    return logits


def test_bins_have_posefromshape_layout() -> None:
    assert ViewpointBins().counts == (24, 12, 24)


def test_encode_decode_round_trip() -> None:
    bins = ViewpointBins()
    viewpoint = random_viewpoints(500)
    decoded = bins.decode(ideal_logits(viewpoint, bins))
    error = geodesic_distance(viewpoint_to_matrix(*viewpoint.unbind(1)), viewpoint_to_matrix(*decoded.unbind(1)))
    assert error.max().item() < 1e-6


def test_label_space_matches_posefromshape() -> None:
    bins = ViewpointBins()
    deg = torch.tensor([[30.0, 10.0, -5.0], [0.0, -20.0, 170.0]], dtype=torch.float64)
    label = bins.to_label_space(torch.deg2rad(deg))
    expected = torch.tensor([[330.0, 100.0, 175.0], [0.0, 70.0, 350.0]], dtype=torch.float64)
    assert torch.allclose(label, expected, atol=1e-9)
    index, offset = bins.encode(torch.deg2rad(deg))
    assert index.tolist() == [[22, 6, 11], [0, 4, 23]]
    assert torch.allclose(offset, (expected % 15) / 15 - 0.5, atol=1e-9)


def test_task_loss_is_small_for_ideal_logits_and_large_otherwise() -> None:
    viewpoint = random_viewpoints(64).float()
    ideal = ideal_logits(viewpoint, ViewpointBins())
    assert viewpoint_task_loss(ideal, viewpoint).item() < 1e-6
    shuffled = {k: v.roll(1, dims=0) for k, v in ideal.items()}
    assert viewpoint_task_loss(shuffled, viewpoint).item() > 10


def test_azimuth_jitter_of_shape_and_label_describe_the_same_camera() -> None:
    gen = torch.Generator().manual_seed(3)
    points = torch.randn(4, 50, 3, generator=gen, dtype=torch.float64)
    viewpoint = random_viewpoints(4, seed=3)
    delta = torch.tensor([0.3, -0.7, 1.5, 0.0], dtype=torch.float64)
    rotated, shifted = rotate_shapes_in_azimuth(points, viewpoint, delta)
    before = points @ viewpoint_to_matrix(*viewpoint.unbind(1)).transpose(1, 2)
    after = rotated @ viewpoint_to_matrix(*shifted.unbind(1)).transpose(1, 2)
    assert torch.allclose(before, after, atol=1e-10)
    assert torch.allclose(rotated, points @ rotation_z(delta).transpose(1, 2))


def test_flip_label_is_the_mirror_image_rotation() -> None:
    viewpoint = random_viewpoints(16, seed=4)
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    mirrored = mirror @ viewpoint_to_matrix(*viewpoint.unbind(1)) @ mirror
    assert torch.allclose(mirrored, viewpoint_to_matrix(*flip_viewpoint(viewpoint).unbind(1)), atol=1e-10)


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a & b).sum() / (a | b).sum()).item()


@pytest.mark.parametrize("category", ["table", "chair", "bench"])
def test_flip_and_rotation_keep_labels_consistent_with_renders(category: str) -> None:
    """Augmenting a render gives (almost) the render at the augmented label (mirror-symmetric objects)."""
    obj = build_object(category, np.random.default_rng(7))
    viewpoint = torch.tensor([[math.radians(40), math.radians(20), math.radians(5)]], dtype=torch.float32)
    image = render_viewpoints([obj], viewpoint)[0].mask[:, None].float()
    flipped, flipped_label = flip_images_and_viewpoints(image, viewpoint)
    expected = render_viewpoints([obj], flipped_label)[0].mask
    assert mask_iou(flipped[:, 0] > 0.5, expected) > 0.9
    angle = torch.tensor([math.radians(25)])
    rotated, rotated_label = rotate_images_and_viewpoints(image, viewpoint, angle)
    expected = render_viewpoints([obj], rotated_label)[0].mask
    assert mask_iou(rotated[:, 0] > 0.5, expected) > 0.85
    wrong = render_viewpoints([obj], rotate_images_and_viewpoints(image, viewpoint, -angle)[1])[0].mask
    assert mask_iou(rotated[:, 0] > 0.5, wrong) < mask_iou(rotated[:, 0] > 0.5, expected)


def tiny_options(**changes) -> Options:
    base = dict(train_size=64, val_size=32, test_size=32, image_size=32, num_points=64, backbone_width=8,
                cache=False, generate_workers=0, crd_negatives=16)
    base.update(changes)
    return Options(**base)


def fit(options: Options, run_dir: Path) -> dict[str, float]:
    cfg = TrainConfig(epochs=1, batch_size=16, monitor="val/acc_pi6", log_every=1)
    task = build_task(options, seed=0)
    result = Trainer(cfg, run_dir, seed=0, progress=False,
                     config_dump={"method": "pose_ckd", "options": options.model_dump(mode="json")}).fit(task)
    assert all(math.isfinite(v) for v in result.step_losses)
    return result.last_metrics


def test_teacher_then_students_end_to_end(tmp_path: Path) -> None:
    metrics = fit(tiny_options(stage="teacher"), tmp_path / "teacher")
    assert 0 <= metrics["acc_pi6"] <= 100 and 0 <= metrics["med_err"] <= 180
    for representation in ("none", "kl", "infonce", "pose_infonce", "multipose_infonce", "crd"):
        options = tiny_options(stage="student", teacher_checkpoint=tmp_path / "teacher",
                               representation=representation)
        metrics = fit(options, tmp_path / f"student_{representation}")
        assert "acc_pi6" in metrics
    baseline = tiny_options(stage="student", task_weight=1.0, logit_weight=0.0, representation="none")
    assert "acc_pi6" in fit(baseline, tmp_path / "baseline")
    # a distilled student's run is self-contained: moved elsewhere, with its teacher gone, it still evaluates
    import shutil

    from distill3d.cli.main import evaluate_checkpoint

    moved = tmp_path / "elsewhere" / "student"
    shutil.copytree(tmp_path / "student_kl", moved)
    shutil.rmtree(tmp_path / "teacher")
    results = evaluate_checkpoint(moved)
    assert set(results) == {"test_seen", "test_unseen"}


def test_distilled_student_needs_a_teacher() -> None:
    with pytest.raises(ValueError, match="teacher_checkpoint is required"):
        Options(stage="student")


@pytest.fixture(scope="module")
def trained_student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny baseline student run (no teacher needed)."""
    run = tmp_path_factory.mktemp("student")
    fit(tiny_options(stage="student", task_weight=1.0, logit_weight=0.0, representation="none"), run)
    return run


def test_export_torchscript_and_onnx_reproduce_the_student(trained_student: Path, tmp_path: Path) -> None:
    from distill3d.engine.checkpoint import load_checkpoint
    from distill3d.methods.pose_ckd import ViewpointPredictor, export, load_student

    state = load_checkpoint(trained_student / "best.pt")
    student, options = load_student(state)
    images = torch.rand(3, 3, options.image_size, options.image_size)
    with torch.no_grad():
        expected = ViewpointPredictor(student)(images)
    scripted = torch.jit.load(str(export(state, tmp_path / "m.pt", "torchscript")))
    assert torch.allclose(scripted(images), expected, atol=1e-6)
    onnxruntime = pytest.importorskip("onnxruntime")
    session = onnxruntime.InferenceSession(str(export(state, tmp_path / "m.onnx", "onnx")))
    (output,) = session.run(None, {"images": images.numpy()})
    assert np.allclose(output, expected.numpy(), atol=1e-4)


def test_predict_writes_annotated_images_and_refuses_teachers(trained_student: Path, tmp_path: Path) -> None:
    from PIL import Image

    from distill3d.cli.main import main
    from distill3d.data.worlds.shapes import ShapesViewpointDataset

    image = ShapesViewpointDataset("test", 1, image_size=32, with_points=False)[0]["image"]
    Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(tmp_path / "chair.png")
    with pytest.raises(SystemExit) as finished:  # click exits when done
        main(["predict", str(trained_student), str(tmp_path / "chair.png"), "--out-dir", str(tmp_path / "out")])
    assert finished.value.code == 0
    assert (tmp_path / "out" / "chair_viewpoint.png").read_bytes()[:4] == b"\x89PNG"


def test_teacher_checkpoint_cannot_be_exported(tmp_path: Path) -> None:
    from distill3d.engine.checkpoint import load_checkpoint
    from distill3d.errors import Distill3dError
    from distill3d.methods.pose_ckd import export

    fit(tiny_options(stage="teacher", train_size=32), tmp_path / "teacher")
    with pytest.raises(Distill3dError, match="teacher checkpoint"):
        export(load_checkpoint(tmp_path / "teacher" / "last.pt"), tmp_path / "x.pt", "torchscript")


def test_runs_on_a_real_format_pascal3d_tree(tmp_path: Path) -> None:
    """The same task trains and evaluates on Pascal3D+ files (fixture tree in the real format)."""
    from distill3d.data.pascal3d import PASCAL3D_CATEGORIES
    from test_pascal3d import make_pascal_root

    root = make_pascal_root(tmp_path / "PASCAL3D+_release1.1")
    for name in PASCAL3D_CATEGORIES:  # the fixture annotates car and bus; the other classes are empty
        for suffix in ("pascal", "imagenet"):
            (root / "Annotations" / f"{name}_{suffix}").mkdir(parents=True, exist_ok=True)
        split_list = root / "PASCAL/VOCdevkit/VOC2012/ImageSets/Main" / f"{name}_val.txt"
        if not split_list.exists():
            split_list.write_text("")
    options = tiny_options(stage="teacher", dataset="pascal3d", data_root=root, validation_fraction=0.3)
    task = build_task(options, seed=0)
    assert len(task.train_set()) >= 2 and len(task.val_set()) >= 1
    sample = task.train_set()[0]
    assert sample["image"].shape == (3, 32, 32) and sample["points"].shape == (64, 3)
    cfg = TrainConfig(epochs=1, batch_size=2, monitor="val/acc_pi6")
    result = Trainer(cfg, tmp_path / "run", seed=0, progress=False).fit(task)
    assert "acc_pi6" in result.last_metrics
    with pytest.raises(ValueError, match="data_root is required"):
        Options(dataset="objectnet3d")


def test_geometric_augmentation_is_one_warp_of_crop_flip_and_rotation() -> None:
    """With the crop jitter off, the composed warp equals the flip followed by the rotation, labels included."""
    from distill3d.data.augment import geometric_viewpoint_augmentation

    torch.manual_seed(3)
    images = torch.rand(6, 3, 32, 32)
    viewpoint = torch.tensor([[0.5, 0.2, 0.1]] * 6)
    out, label, flipped = geometric_viewpoint_augmentation(images, viewpoint, None, flip_p=1.0, rotate_p=1.0,
                                                           crop_jitter=0.0)
    assert flipped.all()
    angle = label[:, 2] + viewpoint[:, 2]  # θ → −θ then + r
    expected_images, expected_label = rotate_images_and_viewpoints(*flip_images_and_viewpoints(images, viewpoint),
                                                                    angle)
    torch.testing.assert_close(label, expected_label)
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))  # borders differ by the zero padding only
    torch.testing.assert_close(out[inner], expected_images[inner], atol=1e-4, rtol=0)


@pytest.mark.parametrize("category", ["chair", "table"])
def test_geometric_augmentation_labels_match_renders(category: str) -> None:
    """The augmented image is (almost) the render at the augmented label, symmetric objects' labels canonical."""
    from distill3d.data.augment import geometric_viewpoint_augmentation

    obj = build_object(category, np.random.default_rng(11), readable=True)
    viewpoint = torch.tensor([[math.radians(40), math.radians(20), math.radians(5)]], dtype=torch.float32)
    image = render_viewpoints([obj], viewpoint)[0].mask[:, None].float()
    order = torch.tensor([obj.symmetry_order])
    torch.manual_seed(0)
    for _ in range(4):
        out, label, _ = geometric_viewpoint_augmentation(image, viewpoint, order, crop_jitter=0.0)
        assert 0 <= label[0, 0] < 2 * math.pi / max(obj.symmetry_order, 1) + 1e-6
        expected = render_viewpoints([obj], label)[0].mask
        assert mask_iou(out[:, 0] > 0.5, expected) > 0.85


def test_photometric_jitter_composes_to_the_stepwise_operations() -> None:
    from distill3d.data.augment import gaussian_blur_per_sample, photometric_jitter

    images = torch.rand(4, 3, 16, 16) * 0.5 + 0.25
    assert torch.equal(photometric_jitter(images, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0), images)
    grey = (images * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(1, keepdim=True).expand_as(images)
    torch.testing.assert_close(photometric_jitter(images, jitter_p=0.0, grayscale_p=1.0, blur_p=0.0), grey)
    # brightness, contrast and saturation at fixed factors (strength 0 → factor 1 → identity)
    torch.testing.assert_close(photometric_jitter(images, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0), images)
    import kornia.filters as KF

    sigma = torch.tensor([0.3, 0.6, 0.9, 1.0])
    for radius in (1, 2):
        torch.testing.assert_close(gaussian_blur_per_sample(images, sigma, radius),
                                   KF.gaussian_blur2d(images, (2 * radius + 1,) * 2, sigma[:, None].expand(4, 2)),
                                   atol=1e-6, rtol=0)


def test_pretrained_backbone_loads_the_shipped_weights_and_names_bad_files(tmp_path: Path) -> None:
    from distill3d.errors import Distill3dError
    from distill3d.methods.pose_ckd import build_image_encoder
    from distill3d.models.resnet import ResNet, load_encoder_weights, save_encoder_weights
    from distill3d.weights import builtin_encoder_weights

    shipped = builtin_encoder_weights("resnet18", 32)
    for stage in ("teacher", "student"):
        options = Options(stage=stage, pretrained_backbone="builtin", task_weight=1.0, logit_weight=0.0,
                          representation="none")
        task = build_task(options, 0)
        model = task.build_model()
        encoder = model.image_encoder if stage == "teacher" else model.student.image_encoder
        random_init = encoder.conv1.weight.clone()
        task.warm_start(model)
        reference = ResNet("resnet18", 0, 32)
        load_encoder_weights(reference, shipped)
        for (name, a), b in zip(encoder.state_dict().items(), reference.state_dict().values(), strict=True):
            assert torch.equal(a, b), name
        assert not torch.equal(build_image_encoder(options).conv1.weight, encoder.conv1.weight)
        assert not torch.equal(random_init, encoder.conv1.weight)  # building alone loads nothing
    narrow = tmp_path / "narrow.safetensors"
    save_encoder_weights(ResNet("resnet18", 0, 8), narrow)
    with pytest.raises(Distill3dError, match=r"narrow\.safetensors"):
        load_encoder_weights(ResNet("resnet18", 0, 32), narrow)
    (tmp_path / "garbage.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(Distill3dError, match=r"garbage\.safetensors"):
        load_encoder_weights(reference, tmp_path / "garbage.safetensors")
    with pytest.raises(Distill3dError, match="no built-in pretrained weights"):
        builtin_encoder_weights("resnet18", 16)


def test_chance_level_is_what_guessing_scores() -> None:
    from distill3d.methods.pose_ckd import viewpoint_chance_level

    task = build_task(tiny_options(stage="student", task_weight=1.0, logit_weight=0.0, representation="none",
                                   train_size=128), seed=0)
    chance = viewpoint_chance_level(task)
    assert set(chance) == {"test_seen", "test_unseen"}
    for split in chance.values():
        assert 0 <= split["acc_pi6"] < 40 and split["med_err"] > 40


def test_frozen_teacher_and_random_draws_follow_the_batch_device() -> None:
    """The teacher lives on the task (not in the trained model), so the task moves it to the batches' device;
    the meta device stands in for CUDA here."""
    from distill3d.methods.pose_ckd import build_teacher

    options = tiny_options(stage="student", task_weight=1.0, logit_weight=0.0, representation="none")
    task = build_task(options, seed=0)
    task.teacher = build_teacher(options)
    task.setup(torch.device("meta"), None)
    assert all(p.device.type == "meta" for p in task.teacher.parameters())
    images = torch.rand(4, 3, 16, 16, device="meta")
    from distill3d.data.augment import geometric_viewpoint_augmentation

    out, label, flip = geometric_viewpoint_augmentation(images, torch.rand(4, 3, device="meta"))
    assert out.device.type == label.device.type == flip.device.type == "meta"


def test_paths_to_other_runs_are_stored_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    options = Options(stage="student", teacher_checkpoint="runs/teacher")
    assert options.teacher_checkpoint == tmp_path / "runs" / "teacher"
    assert Options.model_validate(options.model_dump(mode="json")).teacher_checkpoint == options.teacher_checkpoint
