"""PeCLR: equivariance algebra (identity, golden projections and losses), LARS, 2-process global negatives, and a
tiny pre-train → fine-tune → eval → predict run through the engine."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import shared_path, torchrun
from distill3d.cli.demos import train_recipe
from distill3d.data.hand_augment import sample_geometric_params, transform_points
from distill3d.errors import Distill3dError
from distill3d.losses.contrastive import NTXentLoss
from distill3d.methods.peclr import Options, build_task, canonicalise_projections, predict_hand
from distill3d.methods.peclr.equivariance import (
    rotate_about_centroid,
    transform_latent_points,
    undo_latent_transform,
)
from distill3d.methods.peclr.lars import lars_scale_gradients
from distill3d.methods.peclr.task import PretrainTask

HELPERS = Path(__file__).resolve().parent / "helpers"
AUGMENTATIONS = ("rotate", "crop", "rotate+crop", "color_jitter")


# ----------------------------------------------------------------------------------------- equivariance
def test_latent_transform_then_undo_is_identity() -> None:
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(6, 64, 2, generator=generator, dtype=torch.float64)
    angle = torch.tensor([0.0, 45.0, -45.0, 17.0, -3.0, 90.0], dtype=torch.float64)
    jitter = torch.randn(6, 2, generator=generator, dtype=torch.float64) * 0.1
    moved = transform_latent_points(points, angle, jitter)
    assert not torch.allclose(moved[1:], points[1:])
    torch.testing.assert_close(undo_latent_transform(moved, angle, jitter), points, rtol=0, atol=1e-12)


def test_latent_rotation_matches_image_rotation_convention() -> None:
    """The latent rotation uses the same (OpenCV/kornia) matrix as the image: a point set rotated like keypoints
    under an image transform of angle θ (no jitter, unit scale) equals ``rotate_about_centroid(·, θ)``."""
    keypoints = torch.rand(4, 21, 2, dtype=torch.float64) * 60
    params = sample_geometric_params(4, 64, crop=False, scale_range=(1.0, 1.0))
    image_moved = transform_points(keypoints, params.matrix.double())
    latent_moved = rotate_about_centroid(keypoints, params.angle_deg.double())
    # the image rotates about the crop centre, the latent about the centroid: equal up to a translation
    offset = image_moved - latent_moved
    torch.testing.assert_close(offset, offset[:, :1].expand_as(offset), rtol=0, atol=1e-5)  # float32 matrix


def _golden() -> tuple[dict, dict]:
    folder = shared_path("golden", "ntxent_loss")
    arrays = dict(np.load(folder / "arrays.npz"))
    return arrays, json.loads((folder / "expected.json").read_text())["peclr_hybrid2"]


@pytest.mark.parametrize("augmentation", AUGMENTATIONS)
def test_golden_peclr_projections_and_loss(augmentation: str) -> None:
    """Official ``Hybrid2Model.get_transformed_projections`` + ``vanila_contrastive_loss`` (T = 0.5, 128 px)."""
    arrays, expected = _golden()
    size = expected["image_hw"][1]
    projections = torch.from_numpy(arrays["peclr_input_projections"])
    batch = expected["batch_size"]
    outputs = []
    for view in (1, 2):
        angle = torch.from_numpy(arrays[f"peclr_angle_{view}"]) if "rotate" in augmentation else None
        jitter = (torch.from_numpy(np.stack([arrays[f"peclr_jitter_x_{view}"], arrays[f"peclr_jitter_y_{view}"]], 1))
                  / size) if "crop" in augmentation else None
        rows = projections[(view - 1) * batch : view * batch]
        out = canonicalise_projections(rows, angle, jitter)
        np.testing.assert_allclose(out.numpy(), arrays[f"peclr_{augmentation}_projection{view}"], rtol=0, atol=1e-12)
        outputs.append(out)
    loss = NTXentLoss(0.5)(*outputs).item()
    assert loss == pytest.approx(expected["results"][augmentation]["loss_temperature_0.5"], rel=1e-12)


def test_simclr_objective_skips_the_undo() -> None:
    task = build_task(Options(objective="simclr"), 0)
    z1, z2 = torch.randn(4, 128, dtype=torch.float64), torch.randn(4, 128, dtype=torch.float64)
    views = ((None, torch.full((4,), 30.0), torch.full((4, 2), 0.1)),) * 2
    assert task.contrastive_loss(z1, z2, views).item() == pytest.approx(NTXentLoss(0.5)(z1, z2).item(), rel=1e-12)


# ------------------------------------------------------------------------------------------------- LARS
def test_lars_scaling_formula_and_exclusions() -> None:
    weight = torch.nn.Parameter(torch.randn(4, 3))
    bias = torch.nn.Parameter(torch.randn(4))
    weight.grad, bias.grad = torch.randn(4, 3), torch.randn(4)
    w0, g0, b0 = weight.detach().clone(), weight.grad.clone(), bias.grad.clone()
    lr, eta, wd = 1e-3, 0.02, 1e-6
    lars_scale_gradients([{"params": [weight, bias], "lr": lr}], eta, wd, clip=True)
    ratio = min(eta * w0.norm() / (g0.norm() + wd * w0.norm() + 1e-8) / lr, 1.0)
    torch.testing.assert_close(weight.grad, (g0 + wd * w0) * ratio)
    torch.testing.assert_close(bias.grad, b0)  # 1-D parameters are excluded


def test_lars_runs_in_the_task_hook_with_the_inner_weight_decay_off() -> None:
    task = PretrainTask(Options(lars=True, lars_eta=1e-9, lars_weight_decay=0.0), 0)
    model = torch.nn.Linear(3, 3)
    groups = task.parameter_groups(model)
    assert all(group["weight_decay"] == 0.0 for group in groups)
    optimizer = torch.optim.SGD(groups, lr=1.0, weight_decay=0.1)
    before = model.weight.detach().clone()
    model(torch.ones(2, 3)).sum().backward()
    task.before_optimizer_step(model, optimizer, 0)
    optimizer.step()
    assert (model.weight - before).abs().max().item() < 1e-6  # tiny trust ratio: the weight barely moves
    plain = PretrainTask(Options(lars=False), 0)
    assert plain.parameter_groups(model)[0].get("weight_decay") is None


# ------------------------------------------------------------------------------------------ multi-process
def test_two_process_global_negatives_match_single_process(tmp_path: Path) -> None:
    """2 gloo processes: the mean of the ranks' losses equals the 1-process loss on the global batch, and each
    slice's gradient / world size equals the 1-process gradient (DDP averages gradients)."""
    sys.path.insert(0, str(HELPERS))
    from peclr_ddp_worker import global_batch

    out = tmp_path / "peclr_ddp.json"
    torchrun(HELPERS / "peclr_ddp_worker.py", out, timeout=240)
    result = json.loads(out.read_text())
    assert result["world_size"] == 2
    z1, z2, angles, jitters = global_batch()
    a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    task = build_task(Options(objective="peclr"), 0)
    loss = task.contrastive_loss(a, b, ((None, angles[0], jitters[0]), (None, angles[1], jitters[1])))
    loss.backward()
    payloads = torch.tensor(result["payloads"], dtype=torch.float64)  # (2, 1 + 2·(B/2)·D)
    assert payloads[:, 0].mean().item() == pytest.approx(loss.item(), rel=1e-12)
    half, dim = z1.shape[0] // 2, z1.shape[1]
    for rank in range(2):
        grads = payloads[rank, 1:].view(2, half, dim) / 2
        rows = slice(rank * half, (rank + 1) * half)
        torch.testing.assert_close(grads[0], a.grad[rows], rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(grads[1], b.grad[rows], rtol=1e-10, atol=1e-14)


# -------------------------------------------------------------------------------------------- end to end
TINY = ["options.image_size=32", "options.backbone_width=8", "train.precision=fp32", "train.threads=1"]


def test_tiny_pretrain_finetune_eval_predict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILL3D_CACHE", str(tmp_path / "cache"))
    pre_dir, _, pre_model = train_recipe("demo_peclr_pretrain", [*TINY, "options.unlabelled_size=64", "train.epochs=1",
                                                              "train.batch_size=32"], tmp_path, "pre")
    assert (pre_dir / "last.pt").is_file()
    common = [*TINY, "options.labelled_size=64", "options.val_size=32", "options.test_size=32", "train.epochs=1",
              "train.batch_size=32"]
    run_dir, task, model = train_recipe("demo_peclr_finetune", [*common, f"options.pretrained_checkpoint={pre_dir}",
                                                             "options.freeze_encoder=true"], tmp_path, "ft")
    # frozen encoder: the fine-tuned encoder still holds the pre-trained weights
    for key, value in pre_model.encoder.state_dict().items():
        torch.testing.assert_close(model.encoder.state_dict()[key], value)
    from distill3d.engine.config import TrainConfig
    from distill3d.engine.trainer import Trainer

    metrics = Trainer(TrainConfig(batch_size=32), run_dir, progress=False).evaluate(task, model,
                                                                                     task.test_sets()["test"])
    assert set(metrics) == {"pa_epe_mm", "epe_mm", "auc", "pa_auc", "uv_px"}
    assert all(np.isfinite(v) for v in metrics.values()) and 0 <= metrics["pa_auc"] <= 1
    # a pre-training checkpoint is required for pretrained_checkpoint
    with pytest.raises(Distill3dError, match="not a peclr pre-training checkpoint"):
        train_recipe("demo_peclr_finetune", [*common, f"options.pretrained_checkpoint={run_dir}"], tmp_path, "bad")
    # predict on a rendered image, and on FreiHAND demo crops with their K when ../shared is present
    from PIL import Image

    image_path = tmp_path / "hand.png"
    array = (task.test_sets()["test"][0]["image"].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    Image.fromarray(array).resize((96, 96)).save(image_path)
    results = predict_hand(run_dir, [image_path], tmp_path / "pred")
    assert Path(results[0]["png"]).is_file() and results[0]["assumed_K"]
    assert np.asarray(results[0]["joints_xyz"]).shape == (21, 3)
    from distill3d.engine.checkpoint import load_checkpoint, resolve_checkpoint
    from distill3d.methods.peclr import predict

    lines = predict(load_checkpoint(resolve_checkpoint(run_dir)), [image_path], tmp_path / "cli")
    assert "joints_xyz_mm" in lines[0] and (tmp_path / "cli" / "hand_skeleton.png").is_file()
    demo = shared_path("data", "freihand", "handmesh_demo")
    real = predict_hand(run_dir, [demo / "119_img.jpg"], tmp_path / "pred")
    assert not real[0]["assumed_K"]
    np.testing.assert_allclose(real[0]["K"], np.load(demo / "119_K.npy"))
    assert Image.open(real[0]["png"]).size == (224, 224)


@pytest.mark.parametrize(("head", "from_stem"), [("heatmap", True), ("heatmap", False), ("linear", True)])
def test_finetune_heads_train_and_lift_with_either_root(head: str, from_stem: bool) -> None:
    from distill3d.data.worlds.hands import hand_batch
    from distill3d.methods.peclr import predict_xyz
    from distill3d.models.hand_pose import Hand25DHeatmapNet, Hand25DNet

    torch.manual_seed(0)
    task = build_task(Options(stage="finetune", head=head, image_size=32, backbone_width=8,
                              heatmap_from_stem=from_stem), 0)
    model = task.build_model()
    assert isinstance(model, Hand25DHeatmapNet if head == "heatmap" else Hand25DNet)
    if head == "heatmap":
        assert model.heatmap_geometry()[0] == (2.0 if from_stem else 4.0)
    batch = hand_batch("labelled", list(range(4)), image_size=32)
    out = task.training_step(model, batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and (float(out["heatmap_ce"]) > 0) == (head == "heatmap")
    model.eval()
    for root in ("bones", "closed_form"):
        xyz, uv = predict_xyz(model, batch, root)
        assert xyz.shape == (4, 21, 3) and uv.shape == (4, 21, 2) and torch.isfinite(xyz).all()
        depth = xyz[:, 9, 2] / batch["scale"].double()
        assert float(depth.min()) >= 3.9 and float(depth.max()) <= 50.1  # the clamp (+ the root joint's own z_rel)


def test_pretrained_backbone_warm_starts_the_encoder() -> None:
    from safetensors.torch import load_file

    from distill3d.weights import builtin_encoder_weights

    shipped = load_file(str(builtin_encoder_weights("resnet18", 32)))
    for stage in ("pretrain", "finetune"):
        task = build_task(Options(stage=stage, pretrained_backbone="builtin"), 0)
        model = task.build_model()  # the architecture alone: nothing loaded
        assert not torch.allclose(model.encoder.layer1[0].conv1.weight, shipped["layer1.0.conv1.weight"].float())
        task.warm_start(model)
        assert torch.allclose(model.encoder.layer1[0].conv1.weight, shipped["layer1.0.conv1.weight"].float())


@pytest.mark.parametrize("content", [b"garbage", b"\x93NUMPY\x01\x00garbage"])
def test_a_corrupt_intrinsics_file_gets_one_error_naming_it(tmp_path: Path, content: bytes) -> None:
    from distill3d.errors import DataFormatError
    from distill3d.methods.peclr.demo import _intrinsics_for

    image = tmp_path / "7_img.jpg"
    (tmp_path / "7_K.npy").write_bytes(content)
    with pytest.raises(DataFormatError, match=r"7_K\.npy"):
        _intrinsics_for(image, 64, 64)
    np.save(tmp_path / "7_K.npy", np.array([[100.0, 0, 31.5], [0, 100.0, 31.5], [0, 0, 1]]))
    K, found = _intrinsics_for(image, 64, 64)
    assert found and K[0, 0] == 100.0
    np.save(tmp_path / "7_K.npy", np.full((3, 3), np.nan))
    with pytest.raises(DataFormatError, match="not a camera matrix"):
        _intrinsics_for(image, 64, 64)
