"""ShapeNetPart part segmentation (Yi et al., SIGGRAPH Asia 2016) from a local copy, and a writer of its layout.

The layout is that of the ``shapenetcore_partanno_segmentation_benchmark_v0_normal`` release, the one PointNet++,
DGCNN and most part-segmentation code read::

    synsetoffset2category.txt                      one "<Category><tab><synset offset>" per line
    <synset>/<object id>.txt                       one point per line: "x y z nx ny nz part"
    train_test_split/shuffled_{train,val,test}_file_list.json    ["shape_data/<synset>/<object id>", ...]
    distill3d.json                                 optional, written by :func:`write_shapenetpart` (see below)

``part`` is the global part id, written as a float ("12.000000"); the standard table
(:data:`SHAPENETPART_PART_TABLE`) numbers the 50 parts of the 16 categories 0..49 in alphabetical category order.
Object ids are ShapeNet model hashes (31 or 32 hex digits) in the real release; any word without "/" works.

Samples have the keys and dtypes of :class:`distill3d.data.worlds.shapes.ShapesPointCloudDataset`: points,
normals (N, 3) float32; part_labels (N,) int64 global part ids; category () int64, the index of the category
in the part table (standard: Airplane 0 ... Table 15); symmetry_order () int64 (0 = continuous, n = n-fold about
the up axis, 1 = none or unknown: always 1 for the real release).

* **Points**: ``n_points`` are drawn from the file as a pure function of ``(seed, split, index)``: without
  replacement (in random order) when the file has enough, otherwise every point once plus random repeats.
  ``n_points=None`` keeps every point, in file order.
* **Normalisation** (``normalize=True``): the object is centred on its axis-aligned bounding box and scaled so
  that the box's half-diagonal is 1 (the shapes world's convention), computed on all points of the file before
  sampling, so it does not depend on the sample; normals are unchanged.  No rotation is applied: the real
  release is in ShapeNet's frame (y up), the shapes world's export in the world's (z up).
* **Splits**: ``train``, ``val``, ``test`` and ``trainval`` (train then val, what PointNet++ / DGCNN train on).
  An entry listed twice is used once.  A listed object without a file is skipped with a warning (as
  ObjectNet3D's missing annotations are; ``missing="error"`` raises :class:`DataFormatError`,
  ``missing="skip"`` is silent); ``dataset.skipped`` lists them.
* **distill3d.json** (optional; other readers ignore it): ``{"part_table": {category: [part ids]},
  "symmetry_order": {"<synset>/<object id>": n}}``.  It lets a dataset with its own categories and parts (the
  shapes world's export, :func:`distill3d.data.worlds.preview.export_world`) be read back with its own ids.
  Without it the standard table applies and every symmetry order is 1.

Malformed files raise :class:`distill3d.errors.DataFormatError` naming the file and, for text files, the line.
"""

from __future__ import annotations

import io
import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from distill3d.data.mesh_io import read_text_file
from distill3d.errors import DataFormatError, Distill3dError
from distill3d.files import atomic_directory, read_json

__all__ = [
    "SHAPENETPART_CATEGORIES",
    "SHAPENETPART_NUM_PARTS",
    "SHAPENETPART_PART_TABLE",
    "SHAPENETPART_SYNSETS",
    "SPLIT_FILES",
    "ShapeNetPartDataset",
    "ShapeNetPartEntry",
    "normalize_bounding_box",
    "read_shapenetpart_points",
    "read_split_file",
    "read_synset_file",
    "sample_point_indices",
    "write_shapenetpart",
]

_PART_COUNTS = {
    "Airplane": 4, "Bag": 2, "Cap": 2, "Car": 4, "Chair": 4, "Earphone": 3, "Guitar": 3, "Knife": 2,
    "Lamp": 4, "Laptop": 2, "Motorbike": 6, "Mug": 2, "Pistol": 3, "Rocket": 3, "Skateboard": 3, "Table": 3,
}  # fmt: skip
_PART_STARTS = np.cumsum([0, *_PART_COUNTS.values()])
SHAPENETPART_PART_TABLE: dict[str, tuple[int, ...]] = {
    name: tuple(range(int(start), int(start) + count))
    for (name, count), start in zip(_PART_COUNTS.items(), _PART_STARTS, strict=False)
}
"""Standard category → global part ids table (Airplane 0-3, Bag 4-5, ..., Table 47-49), as in PointNet++/DGCNN."""
SHAPENETPART_CATEGORIES: tuple[str, ...] = tuple(SHAPENETPART_PART_TABLE)
"""The 16 categories; a sample's ``category`` is the index in this tuple."""
SHAPENETPART_NUM_PARTS = 50
SHAPENETPART_SYNSETS: dict[str, str] = {
    "Airplane": "02691156", "Bag": "02773838", "Cap": "02954340", "Car": "02958343", "Chair": "03001627",
    "Earphone": "03261776", "Guitar": "03467517", "Knife": "03624134", "Lamp": "03636649", "Laptop": "03642806",
    "Motorbike": "03790512", "Mug": "03797390", "Pistol": "03948459", "Rocket": "04099429",
    "Skateboard": "04225987", "Table": "04379243",
}  # fmt: skip
"""Category → WordNet synset offset (the folder names of the release, ``synsetoffset2category.txt``)."""

SYNSET_FILE = "synsetoffset2category.txt"
SPLIT_FOLDER = "train_test_split"
SPLIT_FILES = {split: f"shuffled_{split}_file_list.json" for split in ("train", "val", "test")}
"""Split → its list file under ``train_test_split/``."""
METADATA_FILE = "distill3d.json"
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2, "trainval": 3}
_STREAM_TAG = 50  # distinguishes this dataset's random streams from the worlds'
_WORD = re.compile(r"[A-Za-z0-9_.\-]+")
_COLUMNS = 7  # x y z nx ny nz part


# ----------------------------------------------------------------------------------------------------------
# Reading the files
# ----------------------------------------------------------------------------------------------------------


#: Largest rotational symmetry order accepted in distill3d.json (0 = continuous).
_MAX_SYMMETRY = 360


def read_synset_file(path: str | os.PathLike) -> dict[str, str]:
    """``synsetoffset2category.txt`` → {synset offset: category name}, in file order (blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "missing: a ShapeNetPart folder has a synsetoffset2category.txt")
    synsets: dict[str, str] = {}
    for number, line in enumerate(read_text_file(path).splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        if len(words) < 2 or not _WORD.fullmatch(words[-1]):
            raise DataFormatError(path, f"expected '<category> <synset offset>', got {line.strip()!r}", line=number)
        name, synset = " ".join(words[:-1]), words[-1]
        if synset in synsets:
            raise DataFormatError(path, f"synset {synset} is listed twice", line=number)
        synsets[synset] = name
    if not synsets:
        raise DataFormatError(path, "lists no category")
    return synsets


def read_split_file(path: str | os.PathLike) -> list[tuple[str, str]]:
    """A ``shuffled_*_file_list.json`` → [(synset, object id)] in list order (entries ``shape_data/<synset>/<id>``)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "split list not found")
    entries = read_json(path)
    if not isinstance(entries, list):
        raise DataFormatError(path, f"expected a JSON list of 'shape_data/<synset>/<id>', got {type(entries).__name__}")
    pairs = []
    for position, entry in enumerate(entries):
        words = entry.split("/") if isinstance(entry, str) else []
        if len(words) != 3 or not all(_WORD.fullmatch(word) for word in words):
            raise DataFormatError(path, f"entry {position} is {entry!r}, expected 'shape_data/<synset>/<object id>'")
        pairs.append((words[-2], words[-1]))
    return pairs


def _rows_slowly(path: Path, text: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse line by line: the (R, 7) values and the 1-based line of each row, or the first malformed line."""
    lines = text.splitlines()
    tokens = [line.split() for line in lines]
    counts = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    wrong = np.flatnonzero((counts != _COLUMNS) & (counts != 0))
    if len(wrong):
        first = int(wrong[0])
        raise DataFormatError(
            path, f"expected {_COLUMNS} numbers (x y z nx ny nz part), found {counts[first]}", line=first + 1
        )
    line_of_row = np.flatnonzero(counts == _COLUMNS) + 1
    if not len(line_of_row):
        raise DataFormatError(path, "holds no point")
    for number in line_of_row:
        try:
            np.array(tokens[number - 1], dtype=np.float64)
        except ValueError:
            message = f"not a number in {lines[number - 1].strip()!r}"
            raise DataFormatError(path, message, line=int(number)) from None
    values = np.array([word for row in tokens for word in row], dtype=np.float64).reshape(-1, _COLUMNS)
    return values, line_of_row


def read_shapenetpart_points(
    path: str | os.PathLike, part_ids: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One object file → points (N, 3) float32, normals (N, 3) float32, part labels (N,) int64.

    Every non-blank line must hold 7 finite numbers ``x y z nx ny nz part`` with an integral ``part`` (one of
    ``part_ids`` when given); anything else raises :class:`DataFormatError` with the file and line.
    """
    path = Path(path)
    text = read_text_file(path)
    values = None
    if text.strip():
        try:  # fast C parser; the line-by-line one only runs to locate an error
            values = np.loadtxt(io.StringIO(text), dtype=np.float64, comments=None, ndmin=2)
        except ValueError:
            values = None
    if values is None or values.shape[1] != _COLUMNS:
        values, _ = _rows_slowly(path, text)
    with np.errstate(over="ignore"):  # values beyond float32 (returned as float32) count as non-finite
        finite = np.isfinite(values).all(axis=1) & np.isfinite(values[:, :6].astype(np.float32)).all(axis=1)
    labels = values[:, 6]
    integral = (labels == np.round(labels)) & (labels >= 0) & (labels < 2**31)
    allowed = integral if part_ids is None else integral & np.isin(labels, np.asarray(part_ids, np.float64))
    if not (finite.all() and allowed.all()):
        _, line_of_row = _rows_slowly(path, text)
        if not finite.all():
            raise DataFormatError(path, "non-finite value", line=int(line_of_row[np.argmin(finite)]))
        row = int(np.argmin(allowed))
        problem = "is not an integer in 0…2³¹" if not integral[row] else f"is not one of the parts {list(part_ids)}"
        raise DataFormatError(path, f"part label {labels[row]:g} {problem}", line=int(line_of_row[row]))
    return values[:, :3].astype(np.float32), values[:, 3:6].astype(np.float32), labels.astype(np.int64)


def _check_part_table(table: Mapping[str, Sequence[int]], path: Path | None) -> dict[str, tuple[int, ...]]:
    """Validated copy of a category → part ids table (ids non-negative integers, no id in two categories).

    A bad table read from ``path`` raises DataFormatError, a bad argument (``path=None``) ValueError.
    """

    def fail(message: str) -> Exception:
        return ValueError(f"part_table: {message}") if path is None else DataFormatError(path, message)

    checked: dict[str, tuple[int, ...]] = {}
    seen: set[int] = set()
    for name, ids in table.items():
        if not isinstance(name, str) or not isinstance(ids, Sequence) or isinstance(ids, str) or not ids:
            raise fail(f"part table entry {name!r}: expected a category name and a list of part ids")
        integral = all(isinstance(i, int | np.integer) and not isinstance(i, bool) for i in ids)
        parts = tuple(int(i) for i in ids) if integral else ()
        if not integral or min(parts) < 0 or len(set(parts)) < len(parts) or seen & set(parts):
            raise fail(f"part ids of {name!r} must be distinct non-negative integers, got {ids}")
        seen |= set(parts)
        checked[name] = parts
    if not checked:
        raise fail("the part table is empty")
    return checked


def _read_metadata(root: Path) -> tuple[dict[str, tuple[int, ...]] | None, dict[str, int]]:
    """(part table or None, {"synset/id": symmetry order}) from the optional ``distill3d.json``."""
    path = root / METADATA_FILE
    if not path.is_file():
        return None, {}
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise DataFormatError(path, "expected a JSON object")
    table = meta.get("part_table")
    if table is not None and not isinstance(table, dict):
        raise DataFormatError(path, "'part_table' must map category names to lists of part ids")
    symmetry = meta.get("symmetry_order", {})
    if not isinstance(symmetry, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _MAX_SYMMETRY for v in symmetry.values()
    ):
        raise DataFormatError(path, "'symmetry_order' must map 'synset/id' to a non-negative integer")
    return (None if table is None else _check_part_table(table, path)), symmetry


# ----------------------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShapeNetPartEntry:
    """One object of a split: its synset folder, object id, category (name and id) and file."""

    synset: str
    object_id: str
    category: str
    category_id: int
    path: Path

    @property
    def key(self) -> str:
        """``"<synset>/<object id>"``, the object's name in ``distill3d.json``."""
        return f"{self.synset}/{self.object_id}"


def _match_categories(requested: Sequence[str] | str, known: Sequence[str]) -> list[str]:
    """Requested category names (case-insensitive) → the table's spelling; unknown names raise ValueError."""
    if isinstance(requested, str):
        if requested == "all":
            return list(known)
        requested = [requested]
    by_lower = {name.lower(): name for name in known}
    unknown = [name for name in requested if name.lower() not in by_lower]
    if unknown:
        raise ValueError(f"unknown ShapeNetPart categories {unknown}; known: {list(known)}")
    return [by_lower[name.lower()] for name in requested]


def normalize_bounding_box(points: np.ndarray) -> np.ndarray:
    """Centre (N, 3) points on their axis-aligned bounding box and scale the box's half-diagonal to 1 (the shapes
    world's convention; a single point is only centred)."""
    low, high = points.min(axis=0), points.max(axis=0)
    half_diagonal = 0.5 * float(np.linalg.norm(high - low))
    return (points - 0.5 * (low + high)) / (half_diagonal if half_diagonal > 0 else 1.0)


def sample_point_indices(count: int, num_points: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``num_points`` of ``count`` points: without replacement when ``count ≥ num_points``, else every
    point once (shuffled) plus random repeats (the official ShapeNetPart sampling) → (num_points,) int64."""
    if count >= num_points:
        return rng.choice(count, num_points, replace=False)
    return np.concatenate([rng.permutation(count), rng.integers(0, count, num_points - count)])


class ShapeNetPartDataset(Dataset):
    """ShapeNetPart objects as point clouds with per-point part labels (the module docstring has the details).

    ``ShapeNetPartDataset(root, split="train", n_points=2048, seed=0, categories="all", normalize=True)``;
    ``root`` is the ``shapenetcore_partanno_segmentation_benchmark_v0_normal`` folder.

    Args:
        categories: "all" or category names (case-insensitive) of the part table.
        part_table: category → global part ids; default ``distill3d.json``'s table, else the standard one.
        missing: what to do with listed objects that have no file: "warn" (skip), "skip" or "error".

    Attributes: ``entries`` (one :class:`ShapeNetPartEntry` per sample), ``category_names`` (the part table's
    categories; ``category`` indexes it), ``part_table``, ``category_to_parts`` ({category id: part ids}, the
    mapping :func:`distill3d.metrics.shapes.part_segmentation_miou` takes), ``skipped`` (missing entries).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        n_points: int | None = 2048,
        seed: int = 0,
        categories: Sequence[str] | str = "all",
        normalize: bool = True,
        part_table: Mapping[str, Sequence[int]] | None = None,
        missing: Literal["warn", "skip", "error"] = "warn",
    ) -> None:
        if split not in _SPLIT_IDS:
            raise ValueError(f"split must be one of {tuple(_SPLIT_IDS)}, got {split!r}")
        if n_points is not None and n_points < 1:
            raise ValueError(f"n_points must be positive or None, got {n_points}")
        if missing not in ("warn", "skip", "error"):
            raise ValueError(f"missing must be 'warn', 'skip' or 'error', got {missing!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise Distill3dError(f"{self.root} is not a folder (expected a ShapeNetPart release folder)")
        self.split, self.n_points, self.seed, self.normalize = split, n_points, int(seed), bool(normalize)
        synset_path = self.root / SYNSET_FILE
        synsets = read_synset_file(synset_path)
        meta_table, self.symmetry_orders = _read_metadata(self.root)
        table = part_table if part_table is not None else meta_table or SHAPENETPART_PART_TABLE
        self.part_table = _check_part_table(table, None if part_table is not None else self.root / METADATA_FILE)
        self.category_names: tuple[str, ...] = tuple(self.part_table)
        self.category_to_parts = {i: self.part_table[name] for i, name in enumerate(self.category_names)}
        selected = set(_match_categories(categories, self.category_names))
        by_lower = {name.lower(): name for name in self.category_names}
        synset_category = {synset: by_lower.get(name.lower()) for synset, name in synsets.items()}
        if categories == "all":
            unknown = [name for synset, name in synsets.items() if synset_category[synset] is None]
            if unknown:
                known = list(self.category_names)
                raise DataFormatError(synset_path, f"categories {unknown} are not in the part table {known} "
                                      "(pass part_table= or choose categories=)")  # fmt: skip
        self.entries: list[ShapeNetPartEntry] = []
        self.skipped: list[str] = []
        seen: set[tuple[str, str]] = set()
        for part in ("train", "val") if split == "trainval" else (split,):
            list_path = self.root / SPLIT_FOLDER / SPLIT_FILES[part]
            for synset, object_id in read_split_file(list_path):
                if (synset, object_id) in seen:
                    continue
                seen.add((synset, object_id))
                if synset not in synsets:
                    raise DataFormatError(list_path, f"lists {synset}/{object_id}, but synset {synset} is not in "
                                          f"{SYNSET_FILE}")  # fmt: skip
                category = synset_category[synset]
                if category not in selected:
                    continue
                path = self.root / synset / f"{object_id}.txt"
                if not path.is_file():
                    if missing == "error":
                        raise DataFormatError(list_path, f"lists {synset}/{object_id}, but {path} does not exist "
                                              "(missing='warn' or 'skip' uses the files present)")  # fmt: skip
                    self.skipped.append(f"{synset}/{object_id}")
                    continue
                self.entries.append(
                    ShapeNetPartEntry(synset, object_id, category, self.category_names.index(category), path)
                )
        if self.skipped and missing == "warn":
            warnings.warn(f"{self.root}: {len(self.skipped)} listed {split} objects have no file "
                          f"(e.g. {self.skipped[0]}); skipped", stacklevel=2)  # fmt: skip

    def __len__(self) -> int:
        return len(self.entries)

    def _sample_indices(self, index: int, count: int) -> np.ndarray | slice:
        """Which of the file's ``count`` points sample ``index`` uses (deterministic in seed, split, index)."""
        if self.n_points is None:
            return slice(None)
        rng = np.random.default_rng([_STREAM_TAG, self.seed, _SPLIT_IDS[self.split], index])
        return sample_point_indices(count, self.n_points, rng)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """points, normals (N, 3) float32; part_labels (N,) int64; category, symmetry_order () int64."""
        index = int(index)
        if not 0 <= index < len(self.entries):
            raise IndexError(f"index {index} out of range for a dataset of {len(self.entries)} objects")
        entry = self.entries[index]
        points, normals, labels = read_shapenetpart_points(entry.path, self.part_table[entry.category])
        if self.normalize:
            points = normalize_bounding_box(points)
        chosen = self._sample_indices(index, len(points))
        return {
            "points": torch.from_numpy(np.ascontiguousarray(points[chosen], np.float32)),
            "normals": torch.from_numpy(np.ascontiguousarray(normals[chosen], np.float32)),
            "part_labels": torch.from_numpy(np.ascontiguousarray(labels[chosen])),
            "category": torch.tensor(entry.category_id, dtype=torch.int64),
            "symmetry_order": torch.tensor(self.symmetry_orders.get(entry.key, 1), dtype=torch.int64),
        }

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Stacked samples (points (B, N, 3), ..., category (B,)); needs a fixed ``n_points``."""
        if self.n_points is None:
            raise ValueError("batch() needs a fixed n_points (files hold different numbers of points)")
        samples = [self[i] for i in indices]
        return {key: torch.stack([s[key] for s in samples]) for key in samples[0]} if samples else {}


# ----------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------

_ROW_FORMAT = "%.9g %.9g %.9g %.9g %.9g %.9g %.6f\n"  # 9 significant digits: float32 values read back exactly


def _array(sample: Mapping[str, Any], key: str, position: int, shape: tuple[int | None, ...]) -> np.ndarray:
    value = sample[key]
    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape, strict=True)):
        raise ValueError(f"sample {position}: {key} must have shape {shape}, got {array.shape}")
    return array


def write_shapenetpart(
    out_dir: str | os.PathLike,
    samples: Iterable[Mapping[str, Any]],
    category_names: Mapping[str, str],
    part_table: Mapping[str, Sequence[int]],
    overwrite: bool = False,
) -> Path:
    """Write objects as a ShapeNetPart folder (the layout in the module docstring); returns ``out_dir``.

    Args:
        samples: dicts with ``split`` ("train" / "val" / "test"), ``category`` (int, position in
            ``category_names``), ``points``, ``normals`` (N, 3), ``part_labels`` (N,) global part ids (arrays or
            tensors); optional ``object_id`` (a word without "/", default the sample's position as ``%06d``) and
            ``symmetry_order`` (int, default 1; other values go to ``distill3d.json``).
        category_names: {category name: synset offset} in category-id order (``synsetoffset2category.txt``).
        part_table: {category name: global part ids}; written to ``distill3d.json`` unless it is (part of) the
            standard table, so that standard categories keep their standard ids when read back.

    Points and normals are written with 9 significant digits, so float32 values read back exactly.  The folder
    is built beside ``out_dir`` and renamed into place when complete; an existing non-empty ``out_dir`` is an
    error unless ``overwrite``.
    """
    names = list(category_names)
    if set(names) != set(part_table):
        raise ValueError(f"category_names {names} and part_table {list(part_table)} name different categories")
    for name, synset in category_names.items():
        if name.split() != [name] or not _WORD.fullmatch(str(synset)):
            raise ValueError(f"category {name!r} → synset {synset!r}: names and synset ids must be single words")
    if len(set(category_names.values())) < len(names):
        raise ValueError(f"two categories share a synset id: {dict(category_names)}")
    table = _check_part_table({name: part_table[name] for name in names}, None)
    lists: dict[str, list[str]] = {split: [] for split in SPLIT_FILES}
    symmetry: dict[str, int] = {}
    with atomic_directory(out_dir, overwrite=overwrite) as staging:
        for synset in category_names.values():
            (staging / synset).mkdir()
        for position, sample in enumerate(samples):
            split, category = sample["split"], int(sample["category"])
            if split not in lists:
                raise ValueError(f"sample {position}: split must be one of {tuple(lists)}, got {split!r}")
            if not 0 <= category < len(names):
                raise ValueError(f"sample {position}: category {category} is not an index of category_names")
            object_id = str(sample.get("object_id", f"{position:06d}"))
            if not _WORD.fullmatch(object_id):
                raise ValueError(f"sample {position}: object_id {object_id!r} must be a word without '/'")
            points = _array(sample, "points", position, (None, 3))
            normals = _array(sample, "normals", position, (len(points), 3))
            labels = _array(sample, "part_labels", position, (len(points),))
            if not len(points) or not (np.isfinite(points).all() and np.isfinite(normals).all()):
                raise ValueError(f"sample {position}: needs at least one point and finite coordinates")
            if not np.isin(labels, table[names[category]]).all():
                raise ValueError(f"sample {position}: part labels outside {names[category]}'s parts")
            synset = category_names[names[category]]
            path = staging / synset / f"{object_id}.txt"
            if path.exists():
                raise ValueError(f"sample {position}: object {synset}/{object_id} is written twice")
            rows = np.concatenate(
                [points.astype(np.float32), normals.astype(np.float32), labels[:, None].astype(np.float32)], axis=1
            ).astype(np.float64)
            path.write_text("".join(_ROW_FORMAT % tuple(row) for row in rows))
            lists[split].append(f"shape_data/{synset}/{object_id}")
            order = int(sample.get("symmetry_order", 1))
            if order != 1:
                symmetry[f"{synset}/{object_id}"] = order
        (staging / SPLIT_FOLDER).mkdir()
        for split, entries in lists.items():
            (staging / SPLIT_FOLDER / SPLIT_FILES[split]).write_text(json.dumps(entries))
        (staging / SYNSET_FILE).write_text("".join(f"{name}\t{synset}\n" for name, synset in category_names.items()))
        meta: dict[str, object] = {"symmetry_order": symmetry}
        if any(SHAPENETPART_PART_TABLE.get(name) != ids for name, ids in table.items()):
            meta["part_table"] = {name: list(ids) for name, ids in table.items()}
        (staging / METADATA_FILE).write_text(json.dumps(meta))
    return Path(out_dir)
