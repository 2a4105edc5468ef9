"""ObjectNet3D (100 classes, ImageNet images) for viewpoint estimation, from a local copy.

Layout read under ``root``::

    Annotations/<id>.mat                       one ``record`` per image (see viewpoint_common.annotations)
    Images/<id>.JPEG                           (``record.filename`` when present)
    Image_sets/{train,val,test}.txt            image ids of each split
    pointcloud/<class>/<nn>/compressed.ply     PoseFromShape's CAD point clouds (5000 points), or
    CAD/off/<class>/<nn>.off                   the release's CAD meshes

Protocol (PoseFromShape ``data/ObjectNet3D/create_dataset.py`` + ``auxiliary/dataset.py``, as used by StarMap
and 3DAug-Pose): every split drops ``difficult`` objects and elevation = 90°; **train** keeps truncated and
occluded objects; **val**/**test** keep only non-truncated, non-occluded objects with keypoints
(``has_keypoints`` = a non-empty ``anchors`` field); ``include_truncated``, ``include_occluded`` and
``require_keypoints`` override (``None`` keeps the protocol). Objects without a pose, with an empty box or no
``cad_index`` are dropped too; ``dataset.dropped`` counts every reason. Listed ids without an annotation file
are skipped with a warning (PoseFromShape prints "MISS DATA").

Categories: ``"all"`` (100), ``"novel20"`` (the 20 test classes of StarMap/PoseFromShape), ``"train80"`` (the
other 80, the novel setting's training set), or a list; ``None`` picks ``"all"`` for train and ``"novel20"`` for
val/test. ``category`` is the index in :data:`OBJECTNET3D_CATEGORIES`. ``symmetry_order`` is 0 for the 22
classes PoseFromShape/3DAug list as rotation-symmetric ("bad_cats", whose azimuth they never randomise) and 1
otherwise; the list is theirs, not a geometric analysis (a pen's axis, for one, is not always vertical).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from distill3d.data.viewpoint_common.annotations import read_annotation_files, read_split_list
from distill3d.data.viewpoint_common.cad import CadLibrary, ShapeSource, choose_shape_source
from distill3d.data.viewpoint_common.dataset import RealViewpointDataset, resolve_categories
from distill3d.errors import DataFormatError

__all__ = [
    "OBJECTNET3D_CATEGORIES",
    "OBJECTNET3D_NOVEL20",
    "OBJECTNET3D_SYMMETRIC",
    "OBJECTNET3D_TRAIN80",
    "ObjectNet3DDataset",
]

OBJECTNET3D_CATEGORIES: tuple[str, ...] = (
    "aeroplane", "ashtray", "backpack", "basket", "bed", "bench", "bicycle", "blackboard", "boat", "bookshelf",
    "bottle", "bucket", "bus", "cabinet", "calculator", "camera", "can", "cap", "car", "cellphone",
    "chair", "clock", "coffee_maker", "comb", "computer", "cup", "desk_lamp", "diningtable", "dishwasher", "door",
    "eraser", "eyeglasses", "fan", "faucet", "filing_cabinet", "fire_extinguisher", "fish_tank", "flashlight",
    "fork", "guitar", "hair_dryer", "hammer", "headphone", "helmet", "iron", "jar", "kettle", "key", "keyboard",
    "knife", "laptop", "lighter", "mailbox", "microphone", "microwave", "motorbike", "mouse", "paintbrush", "pan",
    "pen", "pencil", "piano", "pillow", "plate", "pot", "printer", "racket", "refrigerator", "remote_control",
    "rifle", "road_pole", "satellite_dish", "scissors", "screwdriver", "shoe", "shovel", "sign", "skate",
    "skateboard", "slipper", "sofa", "speaker", "spoon", "stapler", "stove", "suitcase", "teapot", "telephone",
    "toaster", "toilet", "toothbrush", "train", "trash_bin", "trophy", "tub", "tvmonitor", "vending_machine",
    "washing_machine", "watch", "wheelchair",
)  # fmt: skip
#: The 20 novel test categories of StarMap / PoseFromShape / 3DAug-Pose.
OBJECTNET3D_NOVEL20: tuple[str, ...] = (
    "bed", "bookshelf", "calculator", "cellphone", "computer", "door", "filing_cabinet", "guitar", "iron", "knife",
    "microwave", "pen", "pot", "rifle", "shoe", "slipper", "stove", "toilet", "tub", "wheelchair",
)  # fmt: skip
OBJECTNET3D_TRAIN80: tuple[str, ...] = tuple(c for c in OBJECTNET3D_CATEGORIES if c not in OBJECTNET3D_NOVEL20)
#: PoseFromShape's ``bad_cats`` (auxiliary/dataset.py), kept verbatim in 3DAug-Pose: symmetry_order 0.
OBJECTNET3D_SYMMETRIC: tuple[str, ...] = (
    "ashtray", "basket", "bottle", "bucket", "can", "cap", "cup", "fire_extinguisher", "fish_tank", "flashlight",
    "helmet", "jar", "paintbrush", "pen", "pencil", "plate", "pot", "road_pole", "screwdriver", "toothbrush",
    "trash_bin", "trophy",
)  # fmt: skip
_NAMED = {
    "all": OBJECTNET3D_CATEGORIES, "novel20": OBJECTNET3D_NOVEL20, "train80": OBJECTNET3D_TRAIN80,
    "unseen": OBJECTNET3D_NOVEL20, "seen": OBJECTNET3D_TRAIN80,
}  # fmt: skip


class ObjectNet3DDataset(RealViewpointDataset):
    """ObjectNet3D objects as viewpoint samples with the keys of the shapes world (see
    :meth:`RealViewpointDataset.__getitem__`).

    ``ObjectNet3DDataset(root, split="train"|"val"|"test", categories=None|"all"|"novel20"|"train80"|[names],
    image_size=64, n_points=1024, seed=0)``; ``shape_source``: ``"auto"`` (``pointcloud/`` if present, else
    ``CAD/off``), ``"pointcloud"`` or ``"off"``.
    """

    dataset_id = 12
    class_names = OBJECTNET3D_CATEGORIES
    symmetry_orders: ClassVar[dict[str, int]] = dict.fromkeys(OBJECTNET3D_SYMMETRIC, 0)

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        categories: Sequence[str] | str | None = None,
        image_size: int = 64,
        n_points: int = 1024,
        seed: int = 0,
        include_occluded: bool | None = None,
        include_truncated: bool | None = None,
        require_keypoints: bool | None = None,
        shape_source: ShapeSource = "auto",
        with_points: bool = True,
    ) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"ObjectNet3D split must be 'train', 'val' or 'test', got {split!r}")
        self.root, self.split = Path(root), split
        if categories is None:
            categories = "all" if split == "train" else "novel20"
        self.categories = resolve_categories(categories, OBJECTNET3D_CATEGORIES, _NAMED, "ObjectNet3D")
        self.image_size, self.n_points, self.seed = int(image_size), int(n_points), int(seed)
        self.with_points = bool(with_points)
        if not (self.root / "Annotations").is_dir():
            raise DataFormatError(self.root, "not an ObjectNet3D folder (no Annotations/)")
        kind = choose_shape_source(self.root, shape_source, "CAD/off", allow_mat=False)
        self.cad = CadLibrary(self.root, kind, "CAD/off")  # type: ignore[arg-type]

        evaluating = split != "train"
        keep_truncated = not evaluating if include_truncated is None else include_truncated
        keep_occluded = not evaluating if include_occluded is None else include_occluded
        need_keypoints = evaluating if require_keypoints is None else require_keypoints

        ids = read_split_list(self.root / "Image_sets" / f"{split}.txt")
        table = read_annotation_files(self.root / "Annotations", ids, missing="skip")
        self.dropped: dict[str, int] = {}
        reasons = self.common_reasons(table)
        if not keep_truncated:
            reasons["truncated"] = table["truncated"] != 0
        if not keep_occluded:
            reasons["occluded"] = table["occluded"] != 0
        if need_keypoints:
            reasons["no_keypoints"] = table["has_keypoints"] == 0
        kept = self._filter(table, reasons)
        names = np.where(kept.image_file != "", kept.image_file, np.char.add(kept.image_id, ".JPEG"))
        folder = str(self.root / "Images") + os.sep
        self._finish(kept, np.char.add(folder, names.astype(str)) if len(kept) else np.zeros(0, str))
