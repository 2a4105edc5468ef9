"""KittiDetectionDataset on the real KITTI frames in ../shared/data/kitti (6 training frames)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_path
from distill3d.data.kitti_detection import (
    NEIGHBOUR_CLASS_NAMES,
    KittiDetectionDataset,
    evaluation_frames,
    resize_depth_min,
    write_kitti_results,
)
from distill3d.data.kitti_io import read_calib_file, read_label_dir, read_label_file
from distill3d.data.worlds.road import CLASS_NAMES, RoadDataset
from distill3d.errors import DataFormatError
from distill3d.geometry.boxes3d import project_box3d_to_image
from distill3d.metrics.kitti import FrameAnnotations, evaluate_kitti

pytestmark = pytest.mark.shared

IDS = [f"{i:06d}" for i in range(6)]
SIZE = (96, 320)


@pytest.fixture(scope="module")
def root() -> Path:
    return shared_path("data", "kitti")


def lidar_depth_points(root: Path, frame_id: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Velodyne points projected into image 2: integer pixels (P, 2) (col, row), camera-2 depth (P,) m, (H, W)."""
    points = np.fromfile(root / "training" / "velodyne" / f"{frame_id}.bin", dtype=np.float32).reshape(-1, 4)
    calib = read_calib_file(root / "training" / "calib" / f"{frame_id}.txt")
    with Image.open(root / "training" / "image_2" / f"{frame_id}.png") as image:
        width, height = image.size
    uv, depth = calib.rect_to_image(calib.lidar_to_rect(points[:, :3]))
    pixels = np.round(uv).astype(np.int64)
    keep = (depth > 0.5) & (depth < 250) & (pixels[:, 0] >= 0) & (pixels[:, 0] < width) & (pixels[:, 1] >= 0) \
        & (pixels[:, 1] < height)
    return pixels[keep], depth[keep], (height, width)


def write_sparse_depth(root: Path, frame_id: str, out_dir: Path) -> np.ndarray:
    """A sparse 16-bit depth PNG of the frame's LiDAR points (nearest point per pixel); returns it in metres."""
    pixels, depth, (height, width) = lidar_depth_points(root, frame_id)
    nearest = np.full((height, width), np.inf)
    np.minimum.at(nearest, (pixels[:, 1], pixels[:, 0]), depth)
    encoded = np.where(np.isfinite(nearest), np.round(nearest * 256), 0).astype(np.uint16)
    out_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(encoded).save(out_dir / f"{frame_id}.png")
    return encoded.astype(np.float64) / 256


@pytest.fixture(scope="module")
def depth_root(root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    folder = tmp_path_factory.mktemp("depth")
    return folder, {frame_id: write_sparse_depth(root, frame_id, folder) for frame_id in IDS}


@pytest.fixture(scope="module")
def samples(root: Path, depth_root) -> list[dict[str, torch.Tensor]]:
    dataset = KittiDetectionDataset(root, split_ids=IDS, image_size=SIZE, depth_root=depth_root[0])
    return dataset.__getitems__(range(len(dataset)))


def test_samples_have_the_road_datasets_layout(samples) -> None:
    road = RoadDataset("train", size=1, image_size=SIZE)[0]
    for sample in samples:
        assert set(road) - {"depth"} <= set(sample) and "depth" not in sample
        for key, reference in road.items():
            if key == "depth":
                continue
            assert sample[key].dtype == reference.dtype, key
            if key in RoadDataset.ragged_keys:
                assert sample[key].shape[1:] == reference.shape[1:], key
            else:
                assert sample[key].shape == reference.shape, key
        assert float(sample["image"].min()) >= 0 and float(sample["image"].max()) <= 1
        assert sample["image"].std() > 0.05
    assert samples[0]["image_size_original"].tolist() == [370, 1224]  # KITTI sizes vary by drive
    assert samples[1]["image_size_original"].tolist() == [375, 1242]
    batch = KittiDetectionDataset.collate(samples)
    assert batch["image"].shape == (6, 3, *SIZE) and isinstance(batch["bbox"], list)


def test_cameras_follow_the_road_worlds_convention(root: Path, samples) -> None:
    for frame_id, sample in zip(IDS, samples, strict=True):
        P2 = read_calib_file(root / "training" / "calib" / f"{frame_id}.txt").P2
        height, width = sample["image_size_original"].tolist()
        scale_x, scale_y = SIZE[1] / width, SIZE[0] / height
        np.testing.assert_allclose(sample["P2"].numpy(), P2, rtol=1e-6)
        # half-pixel map u' = (u + ½)·s − ½ applied to the projection: P2_image = A·P2
        A = np.array([[scale_x, 0, (scale_x - 1) / 2], [0, scale_y, (scale_y - 1) / 2], [0, 0, 1]])
        np.testing.assert_allclose(sample["P2_image"].numpy(), A @ P2, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(sample["K"].numpy(), (A @ P2)[:, :3], rtol=1e-5, atol=1e-4)


def test_car_boxes_project_onto_their_2d_boxes(samples) -> None:
    cars = 0
    for sample in samples:
        car = sample["labels"] == CLASS_NAMES.index("Car")
        _, projected = project_box3d_to_image(sample["boxes3d"][car].double(), sample["P2_image"].double(),
                                              image_size=(SIZE[1], SIZE[0]))
        height, width = sample["image_size_original"].tolist()
        scale = torch.tensor([SIZE[1] / width, SIZE[0] / height] * 2, dtype=torch.float64)
        boxes2d = (sample["bbox"][car].double() + 0.5) * scale - 0.5  # original → input pixels
        assert torch.allclose(projected, boxes2d, atol=1.0), (projected, boxes2d)
        cars += int(car.sum())
    assert cars == 5


def test_depth_estimate_holds_the_lidar_depths(root: Path, depth_root) -> None:
    folder, written = depth_root
    frame_id = "000001"
    pixels, _, (height, width) = lidar_depth_points(root, frame_id)
    full = KittiDetectionDataset(root, split_ids=[frame_id], image_size=(height, width), depth_root=folder)[0]
    estimate = full["depth_estimate"].numpy()
    stored = written[frame_id][pixels[:, 1], pixels[:, 0]]  # nearest point of each pixel, 1/256 m steps
    np.testing.assert_allclose(estimate[pixels[:, 1], pixels[:, 0]], np.minimum(stored, 80.0), atol=1e-4)
    assert np.all(estimate[written[frame_id] == 0] == 80.0)  # invalid → the road world's sky value

    # resized: each cell holds the nearest valid depth of its source cells, never a mix with invalid pixels
    small = KittiDetectionDataset(root, split_ids=[frame_id], image_size=SIZE, depth_root=folder)[0]
    estimate = small["depth_estimate"].numpy()
    assert estimate.shape == SIZE and estimate.dtype == np.float32
    valid = estimate < 80
    assert valid.sum() > 500
    rows, cols = np.nonzero(valid)
    for row, col in zip(rows[::37], cols[::37], strict=True):
        r0, r1 = row * height // SIZE[0], -(-(row + 1) * height // SIZE[0])
        c0, c1 = col * width // SIZE[1], -(-(col + 1) * width // SIZE[1])
        cell = written[frame_id][r0:r1, c0:c1]
        assert estimate[row, col] == pytest.approx(cell[cell > 0].min(), abs=1e-4)


def test_resize_depth_min_never_mixes_invalid_pixels() -> None:
    depth = torch.tensor([[0.0, 10.0, 0.0, 0.0], [30.0, 20.0, 0.0, 90.0]])
    out = resize_depth_min(depth, (1, 2), invalid_value=80.0, max_depth=80.0)
    assert out.tolist() == [[10.0, 80.0]]


def _with_extra_labels(root: Path, tmp_path: Path, frame_id: str, extra: list[str]) -> Path:
    """A KITTI root in tmp_path sharing root's images/calibration, with ``extra`` lines added to one label file."""
    new_root = tmp_path / "kitti"
    (new_root / "training").mkdir(parents=True)
    for folder in ("image_2", "calib"):
        (new_root / "training" / folder).symlink_to(root / "training" / folder)
    labels = new_root / "training" / "label_2"
    labels.mkdir()
    for source in (root / "training" / "label_2").glob("*.txt"):
        text = source.read_text()
        if source.stem == frame_id:
            text = text.rstrip("\n") + "\n" + "\n".join(extra) + "\n"
        (labels / source.name).write_text(text)
    return new_root


VAN = "Van 0.00 0 -1.72 700.00 165.00 790.00 225.00 2.10 1.90 4.80 3.00 1.75 22.00 -1.58"
SITTING = "Person_sitting 0.00 1 0.20 820.00 170.00 850.00 215.00 1.20 0.60 0.90 6.50 1.60 24.00 0.45"
TRAM = "Tram 0.00 0 -1.50 100.00 150.00 250.00 220.00 3.50 2.60 15.00 -12.00 1.70 30.00 -1.57"


def test_labels_round_trip_to_the_label_files(root: Path, tmp_path: Path) -> None:
    new_root = _with_extra_labels(root, tmp_path, "000004", [VAN, SITTING, TRAM])
    dataset = KittiDetectionDataset(new_root, split_ids=IDS, image_size=SIZE)
    frames = evaluation_frames(KittiDetectionDataset.collate(dataset.__getitems__(range(len(dataset)))))
    kept_order = (*CLASS_NAMES, *NEIGHBOUR_CLASS_NAMES, "DontCare")
    for frame_id, frame in zip(IDS, frames, strict=True):
        source = read_label_file(new_root / "training" / "label_2" / f"{frame_id}.txt")
        # objects first, then neighbours, then DontCare; other types (Truck, Tram, Misc) dropped
        group = np.array([0 if n in CLASS_NAMES else 1 if n in NEIGHBOUR_CLASS_NAMES else 2 for n in source.name])
        expected = source[np.concatenate([np.nonzero((group == g) & np.isin(source.name, kept_order))[0]
                                          for g in range(3)])]
        assert frame.name.tolist() == expected.name.tolist()
        for field in ("bbox", "dimensions", "location", "rotation_y"):
            np.testing.assert_allclose(getattr(frame, field), getattr(expected, field), atol=1e-3, err_msg=field)
        objects = np.isin(expected.name, CLASS_NAMES)
        for field in ("truncated", "occluded", "alpha"):
            np.testing.assert_allclose(getattr(frame, field)[objects], getattr(expected, field)[objects], atol=1e-3)
    assert "Van" in frames[4].name and "Person_sitting" in frames[4].name and "Tram" not in frames[4].name


@pytest.mark.filterwarnings("ignore:fewer than 41 valid GT boxes")
def test_evaluation_frames_score_like_the_label_files(root: Path, tmp_path: Path) -> None:
    """A Car detection on a Van is ignored (not a false positive) with the dataset's records as with the files."""
    new_root = _with_extra_labels(root, tmp_path, "000004", [VAN, SITTING])
    dataset = KittiDetectionDataset(new_root, split_ids=IDS, image_size=SIZE)
    gt = evaluation_frames(KittiDetectionDataset.collate(dataset.__getitems__(range(len(dataset)))))
    files = list(read_label_dir(new_root / "training" / "label_2", IDS).values())
    detections = []
    for frame in files:
        found = frame[np.isin(frame.name, ("Car", "Van", "Pedestrian", "Person_sitting"))]
        names = np.array(["Car" if n in ("Car", "Van") else "Pedestrian" for n in found.name])
        score = np.where(np.isin(found.name, NEIGHBOUR_CLASS_NAMES), 0.95, np.linspace(0.9, 0.5, len(found)))
        detections.append(FrameAnnotations.from_boxes3d(names, found.boxes3d(), found.bbox, score, found.alpha))
    classes = ("Car", "Pedestrian")
    ours = evaluate_kitti(gt, detections, classes=classes)
    official = evaluate_kitti(files, detections, classes=classes)
    assert ours.to_dict() == pytest.approx(official.to_dict())
    for metric in ("bbox", "bev", "3d"):
        np.testing.assert_allclose(ours.precision[metric], official.precision[metric])
    # the check has teeth: without the neighbours the Car detection on the Van is a false positive
    without_neighbours = [frame[~np.isin(frame.name, NEIGHBOUR_CLASS_NAMES)] for frame in gt]
    dropped = evaluate_kitti(without_neighbours, detections, classes=classes)
    assert dropped.precision["3d"][0].sum() < ours.precision["3d"][0].sum()


def test_write_kitti_results_round_trip(tmp_path: Path) -> None:
    boxes = np.array([[1.0, 1.6, 20.0, 1.5, 1.6, 3.9, 0.3]])
    frames = [FrameAnnotations.from_boxes3d(["Car"], boxes, [[100.0, 150.0, 180.0, 200.0]], np.array([0.75])),
              FrameAnnotations.empty()]
    paths = write_kitti_results(frames, ["000007", "000008"], tmp_path / "results")
    assert [p.name for p in paths] == ["000007.txt", "000008.txt"] and paths[1].read_text() == ""
    back = read_label_dir(tmp_path / "results", with_score=True)
    np.testing.assert_allclose(back["000007"].boxes3d(), boxes, atol=1e-4)
    assert back["000007"].score.tolist() == [0.75] and len(back["000008"]) == 0
    with pytest.raises(ValueError, match="frames for"):
        write_kitti_results(frames, ["000007"], tmp_path / "results")


def test_missing_and_malformed_files_name_the_file(root: Path, tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"999999\.png"):
        KittiDetectionDataset(root, split_ids=["000001", "999999"])
    with pytest.raises(DataFormatError, match="depth"):
        KittiDetectionDataset(root, split_ids=["000001"], depth_root=tmp_path / "depth")
    (tmp_path / "depth").mkdir()
    Image.fromarray(np.zeros((10, 20), np.uint16)).save(tmp_path / "depth" / "000001.png")
    dataset = KittiDetectionDataset(root, split_ids=["000001"], depth_root=tmp_path / "depth")
    with pytest.raises(DataFormatError, match=r"000001\.png.*must match"):
        dataset[0]
    split = tmp_path / "val.txt"
    split.write_text("000002\n000003\n")
    assert KittiDetectionDataset(root, split_file=split).ids == ["000002", "000003"]
    images_only = KittiDetectionDataset(root, split_ids=["000002"], with_labels=False)[0]
    assert "bbox" not in images_only and images_only["image"].shape == (3, *SIZE)
