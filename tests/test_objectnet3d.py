"""ObjectNet3D loader on a small fixture in the real formats, and on PoseFromShape's real CAD point clouds."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import shared_path
from distill3d.data.objectnet3d import (
    OBJECTNET3D_CATEGORIES,
    OBJECTNET3D_NOVEL20,
    OBJECTNET3D_SYMMETRIC,
    OBJECTNET3D_TRAIN80,
    ObjectNet3DDataset,
)
from distill3d.errors import DataFormatError
from test_pascal3d import annotated_object, box_mesh, write_image, write_off, write_record

KEYS = ("image", "viewpoint", "category", "symmetry_order", "cad_index", "distance", "K", "R", "t", "points")


def make_objectnet_root(root: Path, with_cad: bool = True) -> Path:
    """Train ids n001, n002; val ids v001, v002 and v_missing (listed, no annotation)."""
    ann = root / "Annotations"
    write_record(
        ann / "n001.mat",
        [
            annotated_object("bed", (5, 5, 60, 50), azimuth=-30.0, elevation=15.0, theta=200.0),
            annotated_object("car", (5, 5, 40, 30)),
            annotated_object("guitar", (5, 5, 40, 30), elevation=90.0),
            annotated_object("chair", (5, 5, 40, 30), difficult=1),
        ],
        "n001.JPEG",
    )
    write_record(
        ann / "n002.mat",
        [
            annotated_object("knife", (5, 5, 40, 30), truncated=1),
            annotated_object("bottle", (5, 5, 40, 30)),
            annotated_object("sofa", (5, 5, 40, 30), occluded=1),
        ],
        None,
    )  # no filename: the loader uses <id>.JPEG
    write_record(
        ann / "v001.mat",
        [
            annotated_object("bed", (10, 10, 70, 40)),
            annotated_object("guitar", (5, 5, 40, 30), keypoints=False),
            annotated_object("toilet", (5, 5, 40, 30), truncated=1),
            annotated_object("car", (5, 5, 40, 30)),
        ],
        "v001.JPEG",
    )
    write_record(
        ann / "v002.mat",
        [
            annotated_object("tub", (5, 5, 40, 30), occluded=1),
            annotated_object("pen", (20, 5, 30, 55), azimuth=359.9),
        ],
        "v002.JPEG",
    )
    for image_id in ("n001", "n002", "v001", "v002"):
        write_image(root / "Images" / f"{image_id}.JPEG")
    sets = root / "Image_sets"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("n001\nn002\n")
    (sets / "val.txt").write_text("v001\nv002\nv_missing\n")
    if with_cad:
        for category in ("bed", "car", "guitar", "chair", "knife", "bottle", "sofa", "toilet", "tub", "pen"):
            write_off(root / "CAD/off" / category / "01.off", *box_mesh((-1, -0.5, 0), (1, 0.5, 0.8)))
    return root


@pytest.fixture
def objectnet_root(tmp_path) -> Path:
    return make_objectnet_root(tmp_path / "ObjectNet3D")


def test_category_lists():
    assert len(OBJECTNET3D_CATEGORIES) == len(set(OBJECTNET3D_CATEGORIES)) == 100
    assert len(OBJECTNET3D_NOVEL20) == 20 and set(OBJECTNET3D_NOVEL20) <= set(OBJECTNET3D_CATEGORIES)
    assert len(OBJECTNET3D_TRAIN80) == 80 and not set(OBJECTNET3D_TRAIN80) & set(OBJECTNET3D_NOVEL20)
    assert len(OBJECTNET3D_SYMMETRIC) == 22 and set(OBJECTNET3D_SYMMETRIC) <= set(OBJECTNET3D_CATEGORIES)


def test_train_split_filters(objectnet_root):
    train = ObjectNet3DDataset(objectnet_root, "train", with_points=False)  # default: all 100 classes
    assert [OBJECTNET3D_CATEGORIES[i] for i in train.category_ids] == ["bed", "car", "knife", "bottle", "sofa"]
    assert train.dropped == {"elevation_90": 1, "difficult": 1}  # truncated / occluded kept for training
    seen = ObjectNet3DDataset(objectnet_root, "train", "train80", with_points=False)
    assert [OBJECTNET3D_CATEGORIES[i] for i in seen.category_ids] == ["car", "bottle", "sofa"]
    assert seen.dropped == {"other_category": 3, "difficult": 1}


def test_val_split_filters_keypoints_truncation_occlusion(objectnet_root):
    with pytest.warns(UserWarning, match="1 listed images have no annotation"):
        val = ObjectNet3DDataset(objectnet_root, "val", with_points=False)  # default: novel20
    assert [OBJECTNET3D_CATEGORIES[i] for i in val.category_ids] == ["bed", "pen"]
    assert val.dropped == {"other_category": 1, "truncated": 1, "occluded": 1, "no_keypoints": 1}
    assert len(ObjectNet3DDataset(objectnet_root, "val", require_keypoints=False, with_points=False)) == 3
    assert len(ObjectNet3DDataset(objectnet_root, "val", include_truncated=True, with_points=False)) == 3
    assert len(ObjectNet3DDataset(objectnet_root, "val", "all", include_occluded=True, with_points=False)) == 4


def test_samples_angles_and_symmetry(objectnet_root):
    train = ObjectNet3DDataset(objectnet_root, "train", image_size=40, n_points=32)
    bed = train[0]
    for key in KEYS:
        assert key in bed, key
    assert bed["image"].shape == (3, 40, 40) and bed["image"].dtype == torch.float32
    assert bed["points"].shape == bed["normals"].shape == (32, 3)
    assert bed["viewpoint"].dtype == torch.float32 and bed["category"].dtype == torch.int64
    # a = −30° → 330°, θ = 200° → −160°, as PoseFromShape's (360 + a) % 360.
    np.testing.assert_allclose(bed["viewpoint"].double().numpy(), np.radians([330.0, 15.0, -160.0]), atol=1e-6)
    assert int(bed["category"]) == OBJECTNET3D_CATEGORIES.index("bed")
    orders = {OBJECTNET3D_CATEGORIES[int(s["category"])]: int(s["symmetry_order"]) for s in train}
    assert orders == {"bed": 1, "car": 1, "knife": 1, "bottle": 0, "sofa": 1}
    with pytest.warns(UserWarning):
        pen = ObjectNet3DDataset(objectnet_root, "val", image_size=40, with_points=False)[1]
    assert int(pen["symmetry_order"]) == 0
    assert 0 <= float(pen["viewpoint"][0]) < 2 * math.pi
    # The pen's box is 10 × 50: tall, so it spans all rows and is centred horizontally.
    columns = pen["image"].abs().sum(dim=(0, 1)) > 0
    assert columns.sum() == 8 and columns[16:24].all()


def test_real_posefromshape_point_clouds_as_the_shape_source(tmp_path):
    """The shared ObjectNet3D clouds (5000 points each) through the loader: normalised, subsampled, no normals."""
    clouds = shared_path("data", "objectnet3d", "pointcloud")
    classes = sorted(p.parent.parent.name for p in clouds.glob("*/01/compressed.ply"))
    assert classes, f"no */01/compressed.ply under {clouds}"
    root = make_objectnet_root(tmp_path / "ObjectNet3D", with_cad=False)
    (root / "pointcloud").symlink_to(clouds, target_is_directory=True)  # linked, never copied
    write_record(root / "Annotations/n003.mat", [annotated_object(c, (5, 5, 40, 30)) for c in classes], None)
    write_image(root / "Images/n003.JPEG")
    (root / "Image_sets/train.txt").write_text("n003\n")
    data = ObjectNet3DDataset(root, "train", classes, n_points=1024, seed=1)
    assert data.cad.kind == "pointcloud" and len(data) == len(classes)
    for index, category in enumerate(classes):
        sample = data[index]
        assert "normals" not in sample
        points = sample["points"].numpy()
        assert points.shape == (1024, 3) and points.dtype == np.float32
        assert np.linalg.norm(points, axis=1).max() <= 1 + 1e-5
        assert len(np.unique(points, axis=0)) == 1024  # drawn without replacement from 5000
        cloud = data.cad.shape(category, 1).points
        np.testing.assert_allclose((cloud.max(0) + cloud.min(0)) / 2, 0, atol=1e-6)
        assert np.linalg.norm(cloud.max(0) - cloud.min(0)) / 2 == pytest.approx(1, abs=1e-5)
        assert int(sample["symmetry_order"]) == (0 if category in OBJECTNET3D_SYMMETRIC else 1)
    again = ObjectNet3DDataset(root, "train", classes, n_points=1024, seed=1)
    assert torch.equal(data[0]["points"], again[0]["points"])


def test_bad_inputs(tmp_path, objectnet_root):
    with pytest.raises(ValueError, match="unknown ObjectNet3D categories"):
        ObjectNet3DDataset(objectnet_root, "train", ["unicorn"])
    with pytest.raises(DataFormatError, match=re.escape("test.txt: split list not found")):
        ObjectNet3DDataset(objectnet_root, "test")
    with pytest.raises(DataFormatError, match="no Annotations"):
        ObjectNet3DDataset(tmp_path, "train")
    bare = make_objectnet_root(tmp_path / "bare", with_cad=False)
    with pytest.raises(DataFormatError, match="no CAD shapes found"):
        ObjectNet3DDataset(bare, "train")
    (objectnet_root / "Annotations/n002.mat").write_bytes(b"\x00" * 200)
    with pytest.raises(DataFormatError, match=re.escape("n002.mat")):
        ObjectNet3DDataset(objectnet_root, "train")
