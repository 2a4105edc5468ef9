"""The hands world (FreiHAND stand-in): determinism, kinematics, joint order, projection onto the render."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distill3d.data.worlds.hands import (
    ANGLE_LIMITS,
    BONE_LENGTH_RANGE,
    FINGERS,
    MEAN_BONE_LENGTHS,
    NUM_JOINTS,
    PARENTS,
    PRESETS,
    HandsDataset,
    forward_kinematics,
    hand_batch,
    sample_hand_poses,
)
from distill3d.geometry.camera import project_points

SIZE = 64


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    return hand_batch("labelled", list(range(48)), seed=0, image_size=SIZE)


def test_samples_are_a_pure_function_of_split_index_and_seed() -> None:
    dataset = HandsDataset("labelled", size=10, seed=0, image_size=SIZE)
    a, b = dataset[4], dataset.__getitems__([7, 4])[1]
    assert set(a) == {"image", "K", "joints_xyz", "joints_uv", "scale", "index"}
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for other in (dataset[5], HandsDataset("labelled", 10, seed=1, image_size=SIZE)[4], HandsDataset("val", 10)[4]):
        assert not torch.equal(a["joints_xyz"], other["joints_xyz"])
        assert not torch.equal(a["image"], other["image"])
    assert a["image"].shape == (3, SIZE, SIZE) and a["image"].dtype == torch.float32
    assert float(a["image"].min()) >= 0.0 and float(a["image"].max()) <= 1.0
    unlabelled = HandsDataset("unlabelled", size=5, image_size=SIZE)[2]
    assert set(unlabelled) == {"image", "index"}
    with pytest.raises(IndexError):
        dataset[10]


def test_joint_order_follows_freihand() -> None:
    assert PARENTS[0] == -1 and [PARENTS[j] for j in (1, 5, 9, 13, 17)] == [0] * 5
    assert FINGERS["thumb"] == (1, 2, 3, 4) and FINGERS["little"] == (17, 18, 19, 20)
    # An open, flat hand: the thumb tip is nearer the index than the little finger; the middle finger is longest.
    lengths = MEAN_BONE_LENGTHS[None]
    flat = {key: np.zeros((1, 4)) if key.startswith("finger") else np.zeros(1) for key in ANGLE_LIMITS}
    rest = forward_kinematics(lengths, flat)[0]
    assert np.linalg.norm(rest[4] - rest[5]) < np.linalg.norm(rest[4] - rest[17])
    tip_distances = np.linalg.norm(rest[[8, 12, 16, 20]], axis=1)
    for chain in FINGERS.values():  # straight fingers: each joint is farther from the wrist than the previous
        assert np.all(np.diff(np.linalg.norm(rest[list(chain)], axis=1)) > 0)
    assert tip_distances.argmax() == 1 and tip_distances.argmin() == 3
    # A right hand: the frame (x radial, y distal, z palmar) is right-handed, so with the palm facing the viewer
    # (z towards the eye, fingers up) the thumb is on the viewer's right, as for a real right hand.
    palmar = np.cross(rest[5] - rest[0], rest[17] - rest[0])
    assert palmar[2] > 0 and rest[1, 0] > 0 and rest[4, 2] > 0  # the thumb also sits on the palmar side


def test_bone_lengths_and_angles_stay_within_limits(batch) -> None:
    rngs = [np.random.default_rng(i) for i in range(200)]
    lengths, angles = sample_hand_poses(rngs)
    for key, (low, high) in ANGLE_LIMITS.items():
        assert np.all((angles[key] >= low) & (angles[key] <= high)), key
    joints = forward_kinematics(lengths, angles)
    bones = np.linalg.norm(joints[:, 1:] - joints[:, list(PARENTS[1:])], axis=-1)  # (B, 20)
    assert np.allclose(bones, lengths[:, 1:])
    assert np.all(bones >= BONE_LENGTH_RANGE[1:, 0] - 1e-9) and np.all(bones <= BONE_LENGTH_RANGE[1:, 1] + 1e-9)
    xyz = batch["joints_xyz"].double().numpy()
    camera_bones = np.linalg.norm(xyz[:, 1:] - xyz[:, list(PARENTS[1:])], axis=-1)
    assert np.all(camera_bones >= BONE_LENGTH_RANGE[1:, 0] - 1e-5) and np.all(
        camera_bones <= BONE_LENGTH_RANGE[1:, 1] + 1e-5
    )
    # Fingers get shorter towards the tip (proximal > middle > distal phalanx), metacarpals longest.
    for mcp in (5, 9, 13, 17):
        assert (
            MEAN_BONE_LENGTHS[mcp]
            > MEAN_BONE_LENGTHS[mcp + 1]
            > MEAN_BONE_LENGTHS[mcp + 2]
            >= MEAN_BONE_LENGTHS[mcp + 3]
        )


def test_scale_is_the_middle_mcp_to_pip_bone(batch) -> None:
    xyz = batch["joints_xyz"]
    assert torch.allclose(batch["scale"], torch.linalg.vector_norm(xyz[:, 10] - xyz[:, 9], dim=-1))
    assert float(batch["scale"].min()) > 0.03 and float(batch["scale"].max()) < 0.055


def test_camera_placement_is_freihand_like(batch) -> None:
    xyz, K, uv = batch["joints_xyz"], batch["K"], batch["joints_uv"]
    depth = xyz[..., 2].mean(1)
    assert float(depth.min()) > 0.3 and float(depth.max()) < 1.0
    focal_224 = K[:, 0, 0] * 224 / SIZE
    assert float(focal_224.min()) >= 360 - 1e-3 and float(focal_224.max()) <= 1130 + 1e-3
    assert torch.allclose(K[:, 0, 2], torch.full((len(K),), (SIZE - 1) / 2))
    projected, _ = project_points(xyz, K)
    assert torch.allclose(projected, uv, atol=1e-3)
    assert float(uv.min()) >= 0 and float(uv.max()) <= SIZE - 1  # every joint inside the image
    extent = (uv.amax(1) - uv.amin(1)).amax(1) / SIZE
    assert float(extent.median()) > 0.4


def test_projected_joints_fall_on_the_rendered_hand(batch) -> None:
    pixels = batch["joints_uv"].round().long().clamp(0, SIZE - 1)
    rows = torch.arange(len(pixels))[:, None]
    on_hand = batch["mask"][rows, pixels[..., 1], pixels[..., 0]]
    assert float(on_hand.float().mean()) >= 0.95
    # ... and the hand covers a sensible share of the image, with the background visible around it.
    coverage = batch["mask"].float().mean((1, 2))
    assert 0.03 < float(coverage.median()) < 0.6


def test_joint_count_and_dtypes(batch) -> None:
    assert batch["joints_xyz"].shape == (48, NUM_JOINTS, 3) and batch["joints_uv"].shape == (48, NUM_JOINTS, 2)
    assert batch["K"].dtype == torch.float32 and batch["index"].dtype == torch.int64


def test_freihand_export_and_contact_sheet(tmp_path) -> None:
    import json

    from PIL import Image

    from distill3d.data.worlds.preview import contact_sheet, export_world

    out = export_world("hands", tmp_path / "freihand", n=5, seed=0, image_size=SIZE)
    xyz = np.array(json.loads((out / "training_xyz.json").read_text()))
    K = np.array(json.loads((out / "training_K.json").read_text()))
    scale = np.array(json.loads((out / "training_scale.json").read_text()))
    assert xyz.shape == (5, 21, 3) and K.shape == (5, 3, 3) and scale.shape == (5,)
    expected = hand_batch("labelled", list(range(5)), seed=0, image_size=SIZE)
    assert np.allclose(xyz, expected["joints_xyz"].numpy(), atol=1e-6)
    assert np.allclose(scale, np.linalg.norm(xyz[:, 10] - xyz[:, 9], axis=1), atol=1e-6)
    assert Image.open(out / "training" / "rgb" / "00000004.jpg").size == (SIZE, SIZE)
    with pytest.raises(FileExistsError):
        export_world("hands", out, n=1, seed=0, image_size=SIZE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["freihand"]  # no temporary folder left behind
    sheet = contact_sheet("hands", 4, 0, tmp_path / "sheet.png")
    assert Image.open(sheet).size[0] > 2 * SIZE


# ------------------------------------------------------------------------------------------ difficulty presets
@pytest.fixture(scope="module")
def presets() -> dict[str, dict[str, torch.Tensor]]:
    return {d: hand_batch("val", list(range(24)), seed=3, image_size=SIZE, difficulty=d) for d in PRESETS}


def test_hard_is_the_original_world() -> None:
    # Checksums of the world before presets existed (labelled split, seed 0, indices 0, 3, 17 at 64 px).
    batch = hand_batch("labelled", [0, 3, 17], seed=0, image_size=SIZE, difficulty="hard")
    assert float(batch["image"].double().sum()) == pytest.approx(14800.222238471382, rel=1e-9)
    assert float(batch["joints_uv"].double().sum()) == pytest.approx(4072.785943031311, rel=1e-9)
    assert HandsDataset("val", 4).difficulty == "standard"
    with pytest.raises(ValueError, match="difficulty"):
        hand_batch("val", [0], difficulty="medium")  # type: ignore[arg-type]


@pytest.mark.parametrize("difficulty", list(PRESETS))
def test_labels_are_consistent_under_every_preset(presets, difficulty: str) -> None:
    batch = presets[difficulty]
    projected, _ = project_points(batch["joints_xyz"], batch["K"])
    assert torch.allclose(projected, batch["joints_uv"], atol=1e-3)
    assert float(batch["joints_uv"].min()) >= 0 and float(batch["joints_uv"].max()) <= SIZE - 1
    pixels = batch["joints_uv"].round().long().clamp(0, SIZE - 1)
    on_hand = batch["mask"][torch.arange(len(pixels))[:, None], pixels[..., 1], pixels[..., 0]]
    assert float(on_hand.float().mean()) >= 0.95
    assert torch.allclose(batch["scale"], (batch["joints_xyz"][:, 10] - batch["joints_xyz"][:, 9]).norm(dim=-1))


def test_presets_share_poses_but_not_images(presets) -> None:
    def bones(xyz: torch.Tensor) -> torch.Tensor:
        return (xyz[:, 1:] - xyz[:, list(PARENTS[1:])]).norm(dim=-1)

    hard = presets["hard"]
    for difficulty in ("standard", "easy"):
        other = presets[difficulty]
        # The same hand (bone lengths, so the same kinematic draw) seen differently.
        assert torch.allclose(bones(other["joints_xyz"]), bones(hard["joints_xyz"]), atol=1e-5)
        assert not torch.allclose(other["image"], hard["image"])
    extent = {d: float((b["joints_uv"].amax(1) - b["joints_uv"].amin(1)).amax(1).mean()) for d, b in presets.items()}
    assert extent["hard"] < extent["standard"] <= extent["easy"] + 1.0
    # Palm normal within the preset's tilt of the viewing axis (standard, easy); anything goes under hard.
    for difficulty in ("standard", "easy"):
        xyz = presets[difficulty]["joints_xyz"]
        normal = torch.linalg.cross(xyz[:, 5] - xyz[:, 0], xyz[:, 17] - xyz[:, 0])
        tilt = torch.rad2deg(torch.acos((normal[:, 2].abs() / normal.norm(dim=-1)).clamp(max=1)))
        assert float(tilt.max()) < PRESETS[difficulty].max_tilt_deg + 15  # palm plane ≈ the hand frame's


def test_easy_background_is_plain_and_standard_separates_hand_from_background(presets) -> None:
    easy = presets["easy"]
    background = ~easy["mask"]
    for b in range(len(background)):
        pixels = easy["image"][b][:, background[b]]
        assert float(pixels.std(dim=1).max()) < 1e-4  # one flat colour, no noise
    for difficulty in ("standard", "easy"):
        batch = presets[difficulty]
        luma = batch["image"].mean(1)
        mask = batch["mask"]
        hand = (luma * mask).sum((1, 2)) / mask.sum((1, 2))
        rest = (luma * ~mask).sum((1, 2)) / (~mask).sum((1, 2))
        assert float((hand - rest).abs().median()) > 0.12


def test_standard_and_easy_limit_the_in_plane_roll(presets) -> None:
    for difficulty, batch in presets.items():
        up = batch["joints_uv"][:, 9] - batch["joints_uv"][:, 0]
        roll = torch.rad2deg(torch.atan2(up[:, 0], -up[:, 1])).abs()
        limit = PRESETS[difficulty].max_roll_deg
        if limit is None:
            assert float(roll.max()) > 90  # hard: any roll (24 samples)
        else:
            assert float(roll.max()) <= limit + 5  # limited in 3D; perspective bends the image direction a little
