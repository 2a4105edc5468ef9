"""The road world as a KITTI object dataset folder (images, calib, labels, ImageSets)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from distill3d.data.kitti_io import KittiCalib, write_calib_file, write_label_file
from distill3d.data.worlds.road.frames import road_frames
from distill3d.data.worlds.road.scene import KITTI_IMAGE_SIZE, KITTI_P2, RoadConfig
from distill3d.files import atomic_directory
from distill3d.viz import save_image, to_pil

# ----------------------------------------------------------------------------------------------------------
# KITTI export
# ----------------------------------------------------------------------------------------------------------


def _kitti_calib() -> KittiCalib:
    """A KITTI calibration whose P2 is :data:`KITTI_P2` (the other cameras follow frame 000000's layout)."""
    K = KITTI_P2[:, :3]
    P0 = np.concatenate([K, np.zeros((3, 1))], axis=1)
    P1 = P0.copy()
    P1[0, 3] = -387.5744
    P3 = P0.copy()
    P3[:, 3] = [-333.4597, 1.930130, 0.003745884]
    velo_to_cam = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, -0.08], [1.0, 0.0, 0.0, -0.27]])
    return KittiCalib(P0=P0, P1=P1, P2=KITTI_P2.copy(), P3=P3, R0_rect=np.eye(3), Tr_velo_to_cam=velo_to_cam)


def export_kitti(
    out_dir: str | os.PathLike,
    n_frames: int,
    seed: int = 0,
    split: str = "train",
    image_size: tuple[int, int] = KITTI_IMAGE_SIZE,
    val_fraction: float = 0.5,
    batch_size: int = 8,
    config: RoadConfig | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``n_frames`` frames as a KITTI object dataset and return ``out_dir``.

    Layout: ``training/image_2/%06d.png``, ``training/calib/%06d.txt``, ``training/label_2/%06d.txt`` and
    ``ImageSets/{train,val,trainval}.txt`` (the first ``1 − val_fraction`` of the frames train, the rest val).
    Labels and calibration are in the original 1242×375 frame; with the default ``image_size`` the images
    are full size.  A smaller ``image_size`` writes images as if KITTI's had been down-sampled for storage
    (labels and calib unchanged: resize an image back by (1242/W, 375/H) to overlay them).  The folder is
    built in a temporary sibling and renamed into place, so an error never leaves a half-written dataset.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} exists; pass overwrite=True to replace it")
    config = replace(config or RoadConfig(), image_size=tuple(image_size))
    with atomic_directory(out_dir, overwrite=True) as staging:
        training = staging / "training"
        for sub in ("image_2", "calib", "label_2"):
            (training / sub).mkdir(parents=True)
        calib = _kitti_calib()
        for begin in range(0, n_frames, batch_size):
            indices = list(range(begin, min(begin + batch_size, n_frames)))
            for index, frame in zip(indices, road_frames(split, indices, seed, config), strict=True):
                name = f"{index:06d}"
                save_image(to_pil(frame.image), training / "image_2" / f"{name}.png")
                write_calib_file(training / "calib" / f"{name}.txt", calib)
                write_label_file(training / "label_2" / f"{name}.txt", frame.kitti_record(), with_score=False)
        ids = [f"{i:06d}" for i in range(n_frames)]
        n_train = n_frames - round(val_fraction * n_frames)
        (staging / "ImageSets").mkdir()
        for name, subset in (("train", ids[:n_train]), ("val", ids[n_train:]), ("trainval", ids)):
            (staging / "ImageSets" / f"{name}.txt").write_text("".join(f"{i}\n" for i in subset))
    return out_dir
