"""Pascal3D+ (12 rigid PASCAL VOC classes, ImageNet and VOC images) for viewpoint estimation, from a local copy.

Layout read under ``root`` (the Pascal3D+ release folder, e.g. ``PASCAL3D+_release1.1``)::

    Annotations/<class>_{imagenet,pascal}/<id>.mat     one ``record`` per image (see viewpoint_common.annotations)
    Images/<class>_{imagenet,pascal}/<record.filename>  ImageNet ``.JPEG`` / VOC ``.jpg``
    PASCAL/VOCdevkit/VOC2012/ImageSets/Main/<class>_val.txt   VOC 2012 val list (decides the split)
    pointcloud/<class>/<nn>/compressed.ply              PoseFromShape's sampled CAD clouds (optional), or
    CAD/<class>/<nn>.off  or  CAD/<class>.mat           the release's CAD meshes

Split (PoseFromShape ``data/Pascal3D/create_annotation.py``): **train** = every object of the ImageNet folders
plus the VOC objects whose image is *not* in ``<class>_val.txt``; **val** = the VOC objects whose image is in
that list (the standard test set; ImageNet's own ``Image_sets/<class>_imagenet_{train,val}.txt`` are not used).
In each ``<class>_*`` folder only objects of that class are kept (a bus inside a car image belongs to the bus
folder), and objects without a pose or with an all-zero (a, e, θ) are dropped. As in PoseFromShape's
``dataset.py`` both splits drop ``difficult`` objects and elevation = 90°, and val also drops truncated and
occluded objects (``include_truncated`` / ``include_occluded`` override; ``None`` keeps the protocol). Objects
with an empty box or no ``cad_index`` are dropped too; ``dataset.dropped`` counts every reason.

Category-agnostic ("novel") setting: train on ``"seen"`` (10 classes), test on ``"unseen"`` = bus, motorbike.
``category`` is the index in :data:`PASCAL3D_CATEGORIES` whatever subset is chosen. ``symmetry_order`` is 0
for bottle (PoseFromShape lists it among the rotation-symmetric "bad" categories), 1 otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from distill3d.data.viewpoint_common.annotations import ObjectTable, read_annotation_files, read_split_list
from distill3d.data.viewpoint_common.cad import CadLibrary, ShapeSource, choose_shape_source
from distill3d.data.viewpoint_common.dataset import RealViewpointDataset, resolve_categories
from distill3d.errors import DataFormatError

__all__ = [
    "PASCAL3D_CATEGORIES",
    "PASCAL3D_SEEN",
    "PASCAL3D_SYMMETRY",
    "PASCAL3D_UNSEEN",
    "Pascal3DDataset",
]

PASCAL3D_CATEGORIES: tuple[str, ...] = (
    "aeroplane", "bicycle", "boat", "bottle", "bus", "car",
    "chair", "diningtable", "motorbike", "sofa", "train", "tvmonitor",
)  # fmt: skip
#: Held out in the category-agnostic setting (PoseFromShape / 3DAug "novel" Pascal3D+ experiments).
PASCAL3D_UNSEEN: tuple[str, ...] = ("bus", "motorbike")
PASCAL3D_SEEN: tuple[str, ...] = tuple(c for c in PASCAL3D_CATEGORIES if c not in PASCAL3D_UNSEEN)
#: symmetry_order per class (0 = continuous about up); classes not listed are 1 (no symmetry).
PASCAL3D_SYMMETRY: dict[str, int] = {"bottle": 0}
_NAMED = {"all": PASCAL3D_CATEGORIES, "seen": PASCAL3D_SEEN, "unseen": PASCAL3D_UNSEEN, "novel": PASCAL3D_UNSEEN}
_DATABASES = ("imagenet", "pascal")
_DEFAULT_SUFFIX = {"imagenet": ".JPEG", "pascal": ".jpg"}


class Pascal3DDataset(RealViewpointDataset):
    """Pascal3D+ objects as viewpoint samples with the keys of the shapes world (see
    :meth:`RealViewpointDataset.__getitem__`).

    ``Pascal3DDataset(root, split="train"|"val", categories="all"|"seen"|"unseen"|[names], image_size=64,
    n_points=1024, seed=0)``. ``shape_source``: ``"auto"`` (``pointcloud/`` if present, else ``CAD/<class>/*.off``,
    else ``CAD/<class>.mat``), or one of ``"pointcloud"``, ``"off"``, ``"mat"``. ``voc_image_sets`` overrides the
    folder holding ``<class>_val.txt``.
    """

    dataset_id = 11
    class_names = PASCAL3D_CATEGORIES
    symmetry_orders: ClassVar[dict[str, int]] = PASCAL3D_SYMMETRY

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        categories: Sequence[str] | str = "all",
        image_size: int = 64,
        n_points: int = 1024,
        seed: int = 0,
        include_occluded: bool | None = None,
        include_truncated: bool | None = None,
        shape_source: ShapeSource = "auto",
        with_points: bool = True,
        voc_image_sets: str | os.PathLike | None = None,
    ) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"Pascal3D+ split must be 'train' or 'val', got {split!r}")
        self.root, self.split = Path(root), split
        self.categories = resolve_categories(categories, PASCAL3D_CATEGORIES, _NAMED, "Pascal3D+")
        self.image_size, self.n_points, self.seed = int(image_size), int(n_points), int(seed)
        self.with_points = bool(with_points)
        if not (self.root / "Annotations").is_dir():
            raise DataFormatError(self.root, "not a Pascal3D+ folder (no Annotations/)")
        voc_lists = Path(voc_image_sets) if voc_image_sets else self.root / "PASCAL/VOCdevkit/VOC2012/ImageSets/Main"
        kind = choose_shape_source(self.root, shape_source, "CAD", allow_mat=True)
        self.cad = CadLibrary(self.root, kind, "CAD")  # type: ignore[arg-type]

        keep_truncated = split == "train" if include_truncated is None else include_truncated
        keep_occluded = split == "train" if include_occluded is None else include_occluded
        self.dropped: dict[str, int] = {}
        tables, image_paths = [], []
        for category in self.categories:
            val_ids = np.array(read_split_list(voc_lists / f"{category}_val.txt"), dtype=str)
            for database in _DATABASES:
                if split == "val" and database == "imagenet":
                    continue
                folder = self.root / "Annotations" / f"{category}_{database}"
                if not folder.is_dir():
                    raise DataFormatError(folder, "annotation folder not found")
                table = read_annotation_files(folder, sorted(p.stem for p in folder.glob("*.mat")))
                reasons: dict[str, np.ndarray] = {}
                if database == "pascal":
                    in_val = np.isin(table.image_id, val_ids)
                    reasons["split"] = in_val if split == "train" else ~in_val
                reasons["folder_class"] = table.class_name != category
                reasons.update(self.common_reasons(table))
                angles = np.stack([table["azimuth_deg"], table["elevation_deg"], np.nan_to_num(table["theta_deg"])])
                reasons["zero_viewpoint"] = np.all(angles == 0, axis=0)
                if not keep_truncated:
                    reasons["truncated"] = table["truncated"] != 0
                if not keep_occluded:
                    reasons["occluded"] = table["occluded"] != 0
                kept = self._filter(table, reasons)
                tables.append(kept)
                image_paths.append(_image_paths(self.root / "Images" / f"{category}_{database}", kept, database))
        self._finish(ObjectTable.concatenate(tables), np.concatenate(image_paths) if image_paths else np.zeros(0, str))


def _image_paths(folder: Path, table: ObjectTable, database: str) -> np.ndarray:
    """``folder/record.filename``, or ``folder/<id><default suffix>`` where the record has no file name."""
    names = np.where(table.image_file != "", table.image_file, np.char.add(table.image_id, _DEFAULT_SUFFIX[database]))
    return np.char.add(str(folder) + os.sep, names.astype(str)) if len(names) else np.zeros(0, str)
