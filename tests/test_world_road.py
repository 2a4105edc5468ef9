"""The road world (KITTI stand-in): determinism, label geometry, occlusion / truncation, KITTI export, depth."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from distill3d.data.kitti_io import FrameAnnotations, evaluate_kitti_dirs, read_label_file, write_label_file
from distill3d.data.worlds.road import (
    CAMERA_HEIGHT,
    GROUND_INSTANCE,
    KITTI_IMAGE_SIZE,
    KITTI_P2,
    RoadConfig,
    RoadDataset,
    RoadObject,
    estimated_depth,
    export_kitti,
    image_intrinsics,
    make_road_scene,
    render_road_scenes,
    road_config,
    road_frames,
)
from distill3d.geometry.boxes3d import project_box3d_to_image
from distill3d.geometry.camera import depth_to_points

SIZE = (96, 320)
CONFIG = RoadConfig(image_size=SIZE)
T2 = np.linalg.solve(KITTI_P2[:, :3], KITTI_P2[:, 3])


@pytest.fixture(scope="module")
def frames():
    return road_frames("train", list(range(12)), seed=5, config=CONFIG)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    return export_kitti(tmp_path_factory.mktemp("kitti") / "road", n_frames=32, seed=3, image_size=SIZE)


def _car(x: float, z: float, ry: float = 0.0, h: float = 1.5, w: float = 1.6, length: float = 3.9) -> RoadObject:
    return RoadObject("Car", np.array([x, CAMERA_HEIGHT, z, h, w, length, ry]))


def test_samples_are_a_pure_function_of_split_index_and_seed() -> None:
    dataset = RoadDataset("train", size=8, seed=0, image_size=SIZE)
    a, b = dataset[3], dataset.__getitems__([5, 3])[1]
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for other in (dataset[4], RoadDataset("train", 8, seed=1, image_size=SIZE)[3], RoadDataset("val", 8, 0, SIZE)[3]):
        assert not torch.equal(a["image"], other["image"])
    assert a["image"].shape == (3, *SIZE) and a["depth"].shape == SIZE and a["depth_estimate"].shape == SIZE
    assert a["image"].min() >= 0 and a["image"].max() <= 1
    batch = RoadDataset.collate(dataset.__getitems__([0, 1, 2]))
    assert batch["image"].shape == (3, 3, *SIZE) and len(batch["boxes3d"]) == 3
    assert all(boxes.shape[1] == 7 for boxes in batch["boxes3d"])


def test_difficulty_presets_set_range_and_clutter() -> None:
    """``standard`` (benchmarks) keeps every object kind within 25 m; ``easy`` is cars within 20 m on bare ground;
    ``hard`` is RoadConfig's defaults (60 m); an unknown preset is one clear error naming the presets."""
    assert road_config("hard") == RoadConfig()
    assert road_config("standard", image_size=SIZE) == RoadConfig(image_size=SIZE, distance_range=(4.0, 25.0))
    standard = road_frames("train", list(range(16)), seed=2, config=road_config("standard", image_size=SIZE))
    easy = road_frames("train", list(range(16)), seed=2, config=road_config("easy", image_size=SIZE))
    depths = {name: np.concatenate([f.objects.location[:, 2] for f in frames])
              for name, frames in (("standard", standard), ("easy", easy))}
    assert depths["standard"].max() <= 25.0 + 1e-6 and depths["easy"].max() <= 20.0 + 1e-6
    assert {n for f in standard for n in f.objects.name} >= {"Car", "Pedestrian"}
    assert {n for f in easy for n in f.objects.name} == {"Car"}
    assert all(len(f.objects.name) <= 4 for f in easy)
    assert RoadDataset("train", 2, 0, SIZE, difficulty="easy").config.scenery is False
    with pytest.raises(ValueError, match="easy"):
        road_config("medium")


def test_labels_follow_kitti_conventions(frames) -> None:
    for frame in frames:
        a = frame.objects
        assert np.allclose(a.boxes3d()[:, 1], CAMERA_HEIGHT)  # every object stands on the ground
        expected_alpha = np.mod(a.boxes3d()[:, 6] - np.arctan2(a.boxes3d()[:, 0], a.boxes3d()[:, 2]) + np.pi, 2 * np.pi)
        assert np.allclose(a.alpha, expected_alpha - np.pi)
        assert np.all(a.bbox[:, :2] >= 0) and np.all(a.bbox[:, 2] <= KITTI_IMAGE_SIZE[1] - 1)
        assert np.all(a.bbox[:, 3] <= KITTI_IMAGE_SIZE[0] - 1)
        assert np.all((a.truncated >= 0) & (a.truncated <= 1)) and set(a.occluded) <= {0, 1, 2, 3}
    assert sum(len(f.objects) for f in frames) >= 24


def test_2d_boxes_agree_with_the_projected_3d_boxes(frames) -> None:
    pixel = KITTI_IMAGE_SIZE[1] / SIZE[1]  # one rendered pixel in original-frame pixels
    ious = []
    for frame in frames:
        a = frame.objects
        untruncated = a.truncated == 0
        corners, projected = project_box3d_to_image(a.boxes3d()[untruncated], KITTI_P2)
        boxes = a.bbox[untruncated]
        # The amodal silhouette lies inside the projected 3D box (up to a rendered pixel) ...
        assert np.all(boxes[:, :2] >= projected[:, :2] - pixel) and np.all(boxes[:, 2:] <= projected[:, 2:] + pixel)
        # ... and fills most of it: the 3D box is tight around the object.
        inter = np.prod(
            np.clip(np.minimum(boxes[:, 2:], projected[:, 2:]) - np.maximum(boxes[:, :2], projected[:, :2]), 0, None), 1
        )
        union = np.prod(boxes[:, 2:] - boxes[:, :2], 1) + np.prod(projected[:, 2:] - projected[:, :2], 1) - inter
        ious.append(inter / union)
    assert np.median(np.concatenate(ious)) > 0.75

    # With box2d_source="projection" the 3D box corners project inside (or on) the 2D box.
    scene_frames = road_frames(
        "train", [0, 1, 2], seed=5, config=RoadConfig(image_size=SIZE, box2d_source="projection")
    )
    for frame in scene_frames:
        a = frame.objects
        untruncated = a.truncated == 0
        corners, _ = project_box3d_to_image(a.boxes3d()[untruncated], KITTI_P2)
        boxes = a.bbox[untruncated][:, None]
        assert np.all((corners >= boxes[..., :2] - 1e-6) & (corners <= boxes[..., 2:] + 1e-6))


def test_rendered_depth_back_projects_onto_the_ground_and_the_objects(frames) -> None:
    K = torch.from_numpy(image_intrinsics(SIZE)).float()
    for frame in frames[:6]:
        points = depth_to_points(frame.depth[None], K[None])[0].double().numpy() - T2  # label frame
        ground = (frame.instance == GROUND_INSTANCE).numpy()
        assert ground.sum() > 1000
        assert np.abs(points[ground][:, 1] - CAMERA_HEIGHT).max() < 1e-3
    # Object pixels lie inside their own 3D box.
    scene = make_road_scene([_car(-2.0, 12.0, 0.4), _car(2.5, 20.0, -1.5)])
    frame = render_road_scenes([scene], CONFIG)[0]
    points = depth_to_points(frame.depth[None], K[None])[0].double().numpy() - T2
    for i, obj in enumerate(scene.objects):
        x, y, z, h, w, length, ry = obj.box3d
        local = points[(frame.instance == i).numpy()] - [x, y, z]
        c, s = math.cos(ry), math.sin(ry)
        along, across = c * local[:, 0] - s * local[:, 2], s * local[:, 0] + c * local[:, 2]
        tolerance = 0.02
        assert np.all(np.abs(along) <= length / 2 + tolerance) and np.all(np.abs(across) <= w / 2 + tolerance)
        assert np.all((local[:, 1] <= tolerance) & (local[:, 1] >= -h - tolerance))


def test_occlusion_levels_on_constructed_scenes() -> None:
    lone = make_road_scene([_car(0.5, 15.0, 0.3)])
    hidden = make_road_scene([_car(0.0, 8.0, 0.0, length=4.2), _car(0.0, 25.0, math.pi / 2, h=1.45)])
    pedestrian = RoadObject("Pedestrian", np.array([0.0, CAMERA_HEIGHT, 14.0, 1.0, 0.5, 0.5, 0.0]))
    buried = make_road_scene([_car(0.0, 8.0, 0.0, length=4.2), pedestrian])
    side_by_side = make_road_scene([_car(-3.0, 10.0, 0.0), _car(1.2, 18.0, 0.0)])
    lone_f, hidden_f, buried_f, side_f = render_road_scenes([lone, hidden, buried, side_by_side], CONFIG)
    assert lone_f.all_occlusion.tolist() == [0] and lone_f.all_visible_fraction[0] == 1.0
    assert lone_f.all_truncation[0] == 0.0
    assert hidden_f.all_occlusion[0] == 0 and hidden_f.all_occlusion[1] >= 2
    assert hidden_f.all_visible_fraction[1] < 0.5
    assert buried_f.all_visible_fraction[1] == 0.0 and len(buried_f.objects) == 1  # fully hidden: dropped
    assert side_f.all_occlusion.tolist() == [0, 0]


def test_truncation_of_a_car_half_out_of_the_image() -> None:
    z = 12.0
    x = (0.0 - KITTI_P2[0, 2]) * z / KITTI_P2[0, 0] - T2[0]  # bottom centre on the image's left edge
    frame = render_road_scenes([make_road_scene([_car(x, z, 0.0)])], CONFIG)[0]
    a = frame.objects
    assert len(a) == 1
    assert 0.4 < a.truncated[0] < 0.6
    assert a.bbox[0, 0] == 0.0 and a.occluded[0] == 0


def test_kitti_label_round_trip(exported: Path) -> None:
    frames = road_frames("train", list(range(32)), seed=3, config=CONFIG)
    for index in (0, 7, 31):
        read = read_label_file(exported / "training" / "label_2" / f"{index:06d}.txt")
        a = frames[index].objects
        objects = read.select(read.name != "DontCare")
        assert objects.name.tolist() == a.name.tolist()
        assert np.allclose(objects.boxes3d(), a.boxes3d(), atol=0.005 + 1e-9)
        assert np.allclose(objects.bbox, a.bbox, atol=0.005 + 1e-9)
        assert np.array_equal(objects.occluded, a.occluded)
        assert np.allclose(objects.truncated, a.truncated, atol=0.005 + 1e-9)
        assert np.allclose(objects.alpha, a.alpha, atol=0.005 + 1e-9)
    assert (exported / "training" / "image_2" / "000000.png").is_file()
    assert (exported / "training" / "calib" / "000031.txt").is_file()
    assert len((exported / "ImageSets" / "val.txt").read_text().split()) == 16


def test_kitti_evaluation_of_the_ground_truth_against_itself_is_perfect(exported: Path, tmp_path: Path) -> None:
    labels = exported / "training" / "label_2"
    results = tmp_path / "results"
    for path in sorted(labels.glob("*.txt")):
        gt = read_label_file(path)
        gt = gt.select(gt.name != "DontCare")
        detections = FrameAnnotations.from_boxes3d(gt.name, gt.boxes3d(), gt.bbox, np.ones(len(gt)), gt.alpha)
        write_label_file(results / path.name, detections, with_score=True)
    result = evaluate_kitti_dirs(labels, results, classes=("Car",), metrics=("bev", "3d"))
    assert result.num_valid_gt[0, 1] >= 40  # enough boxes for all 41 threshold slots
    for metric in ("bev", "3d"):
        assert result.ap40[metric][0, 1, 0] == pytest.approx(100.0, abs=0.01)
        assert result.ap11[metric][0, 1, 0] == pytest.approx(100.0, abs=0.01)


def test_export_is_atomic_and_refuses_to_overwrite(tmp_path: Path, monkeypatch) -> None:
    from distill3d.data.worlds.road import export as road

    target = tmp_path / "kitti"

    def failing(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(road, "write_calib_file", failing)
    with pytest.raises(RuntimeError):
        export_kitti(target, n_frames=2, seed=0, image_size=SIZE)
    assert list(tmp_path.iterdir()) == []
    target.mkdir()
    with pytest.raises(FileExistsError):
        export_kitti(target, n_frames=1, seed=0, image_size=SIZE)


def test_depth_estimate_has_the_intended_error_statistics(frames) -> None:
    depth = torch.stack([f.depth for f in frames])
    estimate = estimated_depth(depth, seed=1)
    assert torch.equal(estimate, estimated_depth(depth, seed=1))
    assert not torch.equal(estimate, estimated_depth(depth, seed=2))
    assert estimated_depth(depth[0], seed=1).shape == depth[0].shape
    valid = (depth > 0) & (depth < 60)
    ratio = torch.where(valid, estimate / depth.clamp(min=1e-6), torch.nan)
    frame_scale = ratio.flatten(1).nanmedian(dim=1).values  # the global scale error dominates the bias
    assert float((frame_scale - 1).abs().max()) < 0.12 and float(frame_scale.std()) > 0.01
    relative = (ratio / frame_scale[:, None, None] - 1).abs()
    median = float(relative[valid].median())
    assert 0.003 < median < 0.05
    near, far = valid & (depth < 10), valid & (depth > 30)
    assert float(relative[far].median()) > 1.5 * float(relative[near].median())
    raw = float((ratio - 1).abs()[valid].median())
    assert 0.01 < raw < 0.1  # median relative error of a few percent


def test_contact_sheet_draws_the_road_world(tmp_path: Path) -> None:
    from PIL import Image

    from distill3d.data.worlds.preview import contact_sheet

    path = contact_sheet("road", 2, 0, tmp_path / "road.png")
    assert Image.open(path).size[0] > 2 * SIZE[1]
    assert [p.name for p in tmp_path.iterdir()] == ["road.png"]
