"""The hands learnability benchmark's pieces: camera-roll reuse keeps labels exact; metrics and factors run."""

from __future__ import annotations

import torch
from benchmarks.learnability_hands import difficulty_factors, error_by_factor, one_cycle, roll_camera

from distill3d.data.worlds.hands import hand_batch
from distill3d.geometry.camera import project_points


def test_camera_roll_keeps_every_label_exact() -> None:
    batch = hand_batch("val", list(range(16)), seed=0, image_size=64, difficulty="hard")
    angle = torch.linspace(-180, 180, 16)
    rolled = roll_camera(batch, angle)
    projected, _ = project_points(rolled["joints_xyz"], rolled["K"])
    assert torch.allclose(projected, rolled["joints_uv"], atol=1e-3)  # 3D and 2D agree under the same K
    bones = (rolled["joints_xyz"][:, 10] - rolled["joints_xyz"][:, 9]).norm(dim=-1)
    assert torch.allclose(bones, batch["scale"], atol=1e-6)  # a rigid motion
    assert torch.allclose(rolled["joints_xyz"][..., 2], batch["joints_xyz"][..., 2], atol=1e-6)  # about z
    moved = (rolled["joints_uv"] - batch["joints_uv"]).norm(dim=-1).amax(1) > 1
    assert int(moved.sum()) >= 8  # most samples turned; those whose joints would leave the image did not
    assert float(rolled["joints_uv"].min()) >= 1 and float(rolled["joints_uv"].max()) <= 62
    # Samples kept at angle 0 keep their image (up to the resampling's rounding).
    unchanged = ~moved
    assert torch.allclose(rolled["image"][unchanged], batch["image"][unchanged], atol=1e-5)


def test_schedule_and_factor_table() -> None:
    assert one_cycle(0.0, 1.0) == 1.0 / 25 and one_cycle(0.15, 1.0) == 1.0
    assert abs(one_cycle(1.0, 1.0) - 1e-3) < 1e-12
    batch = hand_batch("val", list(range(12)), seed=0, image_size=64)
    factors = difficulty_factors(batch, batch["mask"])
    assert set(factors) >= {"palm tilt (deg)", "2D extent (px)", "luma gap"}
    assert all(v.shape == (12,) for v in factors.values())
    table = error_by_factor(torch.arange(12.0), factors)
    assert table.count("\n") == len(factors) + 1


def test_warm_start_loads_the_shipped_encoder() -> None:
    from benchmarks.learnability_hands import build_model
    from safetensors.torch import load_file

    from distill3d.weights import builtin_encoder_weights

    model = build_model(pretrained_backbone="builtin")
    shipped = load_file(str(builtin_encoder_weights("resnet18", 32)))
    assert torch.allclose(model.encoder.conv1.weight, shipped["conv1.weight"].float())
    assert not torch.allclose(build_model().encoder.conv1.weight, shipped["conv1.weight"].float())
