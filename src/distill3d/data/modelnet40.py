"""ModelNet40 shape classification (Wu et al., CVPR 2015) from a local copy, in both common layouts, and a writer.

Layouts
-------
* ``"off"`` — the original Princeton release (``ModelNet40.zip``)::

      ModelNet40/<class>/{train,test}/<class>_<nnnn>.off        one triangle / polygon mesh per shape

  Meshes are read with :func:`distill3d.data.mesh_io.read_off`, which also accepts the release's malformed
  header lines (``OFF490 518 0``: the vertex count glued to the keyword). ``num_points`` points are sampled on
  the surface, area-weighted (:func:`~distill3d.data.mesh_io.sample_mesh_surface`), with a random stream that
  is a pure function of ``(seed, class, shape name)``: the same shape gives the same points in every split and
  every run. Normals are the unit normals of the sampled faces (oriented by their winding). The classes are the
  sub-folders that hold a ``train`` or ``test`` folder, in sorted order (the 40 classes of the release sort into
  the order of ``modelnet40_shape_names.txt``, so both layouts give the same class ids).
* ``"resampled"`` — PointNet++'s ``modelnet40_normal_resampled`` (10,000 points per shape sampled from the
  meshes, with normals)::

      modelnet40_shape_names.txt                 one class per line; a class id is its line's position
      modelnet40_{train,test}.txt                one shape name (``<class>_<nnnn>``) per line
      <class>/<class>_<nnnn>.txt                 one point per line: "x,y,z,nx,ny,nz"

  As in PointNet++'s loader, a sample is the file's first ``num_points`` rows (no random choice); only those rows
  are parsed. A file with fewer rows is an error.

``layout="auto"`` detects the layout at ``root``, or in ``root/ModelNet40`` or ``root/modelnet40_normal_resampled``
(when both of these exist, pass ``layout=``).

Samples
-------
The keys and dtypes of :class:`distill3d.data.worlds.shapes.ShapesPointCloudDataset` that apply to ModelNet:
points, normals (N, 3) float32; category () int64 (index in ``dataset.category_names``); symmetry_order () int64,
always 1 (unknown). There are no part labels.

* **Normalisation** (``normalize=True``, the official PointNet / PointNet++ / DGCNN preprocessing): the N points
  of the sample are centred on their centroid and scaled so that the farthest point lies on the unit sphere.
  Normals are unchanged (a translation and a uniform scale do not change them).
* **Splits**: ``test`` is the official test set. The official code selects models on ``test``; this library must
  not, so ``val`` is carved out of the official training set and ``train`` excludes it: within each class the
  training shape names are sorted, permuted with a generator seeded by ``(split_seed, class name)``, and the first
  ``⌊val_fraction · n_class + ½⌋`` go to ``val`` (``val_fraction=0.1`` by default; ``0`` disables ``val`` and
  ``train`` is then the whole official training set). The split depends only on the names, so both layouts of the
  same data, and any ``categories`` selection, give the same validation shapes. ``trainval`` is the whole official
  training set, in listing order. A shape listed twice is used once.
* **Caching**: parsed and normalised samples are kept in memory (lazily, per index) when ``cache=True``.

Malformed files raise :class:`distill3d.errors.DataFormatError`: one line naming the file and, for text rows and
list files, the line.
"""

from __future__ import annotations

import io
import os
import re
import warnings
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from distill3d.data.mesh_io import read_off, read_text_file, sample_mesh_surface
from distill3d.errors import DataFormatError, Distill3dError
from distill3d.files import atomic_directory

__all__ = [
    "MODELNET40_CLASSES",
    "ModelNet40Dataset",
    "ModelNet40Entry",
    "detect_modelnet40_layout",
    "normalize_unit_sphere",
    "read_modelnet40_resampled",
    "write_modelnet40",
]

MODELNET40_CLASSES: tuple[str, ...] = (
    "airplane", "bathtub", "bed", "bench", "bookshelf", "bottle", "bowl", "car", "chair", "cone", "cup", "curtain",
    "desk", "door", "dresser", "flower_pot", "glass_box", "guitar", "keyboard", "lamp", "laptop", "mantel",
    "monitor", "night_stand", "person", "piano", "plant", "radio", "range_hood", "sink", "sofa", "stairs", "stool",
    "table", "tent", "toilet", "tv_stand", "vase", "wardrobe", "xbox",
)  # fmt: skip
"""The 40 classes in the order of ``modelnet40_shape_names.txt`` (alphabetical); a class id is the position."""

Layout = Literal["off", "resampled"]
OFF_FOLDER = "ModelNet40"
RESAMPLED_FOLDER = "modelnet40_normal_resampled"
SHAPE_NAMES_FILE = "modelnet40_shape_names.txt"
SPLIT_LIST_FILES = {"train": "modelnet40_train.txt", "test": "modelnet40_test.txt"}
"""Official split → its list file in the resampled layout."""
SPLITS = ("train", "val", "test", "trainval")
_COLUMNS = 6  # x y z nx ny nz
_SAMPLE_TAG = 40  # separates this module's random streams from the other datasets'
_VAL_TAG = 41
_WORD = re.compile(r"[A-Za-z0-9_.\-]+")
_SPACE_LINE = re.compile(r"(?m)^[ \t\r\f\v]+$")
_ROW_FORMAT = "%.9g"  # 9 significant digits: float32 values read back exactly


# ----------------------------------------------------------------------------------------------------------
# Reading files
# ----------------------------------------------------------------------------------------------------------


def _locate_bad_row(path: Path, text: str, max_rows: int | None) -> None:
    """Raise DataFormatError at the first of the first ``max_rows`` rows that is not 6 comma-separated numbers.

    Only runs after the vectorised parser has failed, to name the line.
    """
    rows = 0
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != _COLUMNS:
            raise DataFormatError(path, f"expected {_COLUMNS} comma-separated numbers (x,y,z,nx,ny,nz), "
                                  f"found {len(fields)} fields", line=number)  # fmt: skip
        try:
            [float(field) for field in fields]
        except ValueError:
            raise DataFormatError(path, f"not a number in {line.strip()[:80]!r}", line=number) from None
        rows += 1
        if max_rows is not None and rows >= max_rows:
            break
    raise DataFormatError(path, "cannot be read as rows 'x,y,z,nx,ny,nz'")


def _line_of_row(text: str, row: int) -> int:
    """1-based line of the ``row``-th non-blank line (error path only)."""
    non_blank = np.flatnonzero(np.fromiter((bool(line.strip()) for line in text.split("\n")), dtype=bool))
    return int(non_blank[row]) + 1


def _parse_rows(text: str, max_rows: int | None) -> np.ndarray | None:
    """Comma-separated rows → (R, columns) float64 with numpy's C parser (empty lines skipped); None if it fails."""
    try:
        with warnings.catch_warnings():  # empty lines do not count towards max_rows, which numpy warns about
            warnings.simplefilter("ignore", UserWarning)
            return np.loadtxt(io.StringIO(text), dtype=np.float64, delimiter=",", comments=None, ndmin=2,
                              max_rows=max_rows)  # fmt: skip
    except ValueError:
        return None


def read_modelnet40_resampled(
    path: str | os.PathLike, num_points: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One ``modelnet40_normal_resampled`` file → points (n, 3) float32, normals (n, 3) float32.

    Rows are ``x,y,z,nx,ny,nz`` (blank lines skipped). ``num_points``: parse only the first ``num_points`` rows
    (PointNet++'s sample); a file with fewer is an error. ``None`` reads every row. A row that is not six finite
    numbers raises :class:`DataFormatError` naming the file and line.
    """
    path = Path(path)
    if num_points is not None and num_points < 1:
        raise ValueError(f"num_points must be positive or None, got {num_points}")
    text = read_text_file(path)
    if not text.strip():
        raise DataFormatError(path, "holds no point", line=1)
    values = _parse_rows(text, num_points)
    if values is None and _SPACE_LINE.search(text):  # numpy reads a line of spaces as a row; empty it, keep numbering
        values = _parse_rows(_SPACE_LINE.sub("", text), num_points)
    if values is None or values.shape[1] != _COLUMNS:
        _locate_bad_row(path, text, num_points)
    assert values is not None
    if num_points is not None and len(values) < num_points:
        raise DataFormatError(path, f"holds {len(values)} points, fewer than the {num_points} requested")
    with np.errstate(over="ignore"):  # values beyond float32 (returned as float32) count as non-finite
        finite = np.isfinite(values).all(axis=1) & np.isfinite(values.astype(np.float32)).all(axis=1)
    if not finite.all():
        raise DataFormatError(path, "non-finite value", line=_line_of_row(text, int(np.argmin(finite))))
    return values[:, :3].astype(np.float32), values[:, 3:].astype(np.float32)


def normalize_unit_sphere(points: np.ndarray) -> np.ndarray:
    """Centre (N, 3) points on their centroid and scale the farthest to distance 1 → (N, 3) float32.

    PointNet++'s ``pc_normalize``: ``p ← (p − mean(p)) / max_i ‖p_i − mean(p)‖``. A cloud of identical points is
    only centred. Computed in float64.
    """
    centred = np.asarray(points, np.float64) - np.asarray(points, np.float64).mean(axis=0)
    radius = float(np.sqrt((centred**2).sum(axis=1)).max()) if len(centred) else 0.0
    return (centred / (radius if radius > 0 else 1.0)).astype(np.float32)


def _read_names_file(path: Path) -> list[str]:
    """``modelnet40_shape_names.txt`` → class names in file order (blank lines skipped)."""
    names: list[str] = []
    for number, line in enumerate(read_text_file(path).split("\n"), start=1):
        name = line.strip()
        if not name:
            continue
        if not _WORD.fullmatch(name):
            raise DataFormatError(path, f"expected one class name per line, got {name[:80]!r}", line=number)
        if name in names:
            raise DataFormatError(path, f"class {name!r} is listed twice", line=number)
        names.append(name)
    if not names:
        raise DataFormatError(path, "lists no class")
    return names


# ----------------------------------------------------------------------------------------------------------
# Layout detection and listing
# ----------------------------------------------------------------------------------------------------------


def _off_classes(folder: Path) -> list[str]:
    """Sorted sub-folders of ``folder`` that hold a ``train`` or ``test`` folder (hidden folders ignored)."""
    try:
        children = [child for child in folder.iterdir() if child.is_dir() and not child.name.startswith(".")]
    except OSError:
        return []
    return sorted(child.name for child in children if (child / "train").is_dir() or (child / "test").is_dir())


def _layout_of(folder: Path) -> Layout | None:
    if (folder / SHAPE_NAMES_FILE).is_file():
        return "resampled"
    if _off_classes(folder):
        return "off"
    return None


def detect_modelnet40_layout(root: str | os.PathLike, layout: str = "auto") -> tuple[Path, Layout]:
    """(folder, layout) of the ModelNet40 copy at ``root``, ``root/ModelNet40`` or ``root/modelnet40_normal_resampled``.

    ``layout``: "auto", "off" or "resampled" (then only that layout is looked for). Raises
    :class:`Distill3dError` when no folder holds the layout, or when ``root`` holds both and ``layout="auto"``.
    """
    if layout not in ("auto", "off", "resampled"):
        raise ValueError(f"layout must be 'auto', 'off' or 'resampled', got {layout!r}")
    root = Path(root)
    if not root.is_dir():
        raise Distill3dError(f"{root} is not a folder (expected a ModelNet40 or {RESAMPLED_FOLDER} folder)")
    found: list[tuple[Path, Layout]] = []
    for folder in (root, root / OFF_FOLDER, root / RESAMPLED_FOLDER):
        detected = _layout_of(folder) if folder.is_dir() else None
        if detected is not None and (layout == "auto" or detected == layout):
            found.append((folder, detected))
            if folder == root:
                break
    if not found:
        wanted = {"auto": "either layout", "off": "the OFF layout", "resampled": "the resampled layout"}[layout]
        raise Distill3dError(
            f"{root}: no ModelNet40 copy in {wanted} (expected <class>/{{train,test}}/*.off folders, or "
            f"{SHAPE_NAMES_FILE} with {'/'.join(SPLIT_LIST_FILES.values())})"
        )
    if len(found) > 1:
        raise Distill3dError(f"{root} holds both {found[0][0].name} and {found[1][0].name}; pass layout='off' or "
                             "layout='resampled'")  # fmt: skip
    return found[0]


@dataclass(frozen=True)
class ModelNet40Entry:
    """One shape: its name (``<class>_<nnnn>``), class (name and id) and file."""

    name: str
    category: str
    category_id: int
    path: Path


def _list_off(folder: Path, classes: Sequence[str], split: str) -> list[ModelNet40Entry]:
    """The ``<class>/<split>/*.off`` files of every class, classes in order, files sorted by name."""
    entries = []
    for category_id, category in enumerate(classes):
        split_folder = folder / category / split
        if split_folder.is_dir():
            files = sorted(path for path in split_folder.glob("*.off") if path.is_file())
            entries += [ModelNet40Entry(path.stem, category, category_id, path) for path in files]
    return entries


def _list_resampled(folder: Path, classes: Sequence[str], split: str) -> list[ModelNet40Entry]:
    """The shapes listed in ``modelnet40_<split>.txt`` (duplicates once), each checked to have its file."""
    list_path = folder / SPLIT_LIST_FILES[split]
    class_ids = {name: i for i, name in enumerate(classes)}
    entries, seen = [], set()
    for number, line in enumerate(read_text_file(list_path).split("\n"), start=1):
        name = line.strip()
        if not name or name in seen:
            continue
        category = name.rsplit("_", 1)[0]
        if not _WORD.fullmatch(name) or "_" not in name:
            raise DataFormatError(list_path, f"expected a shape name '<class>_<nnnn>', got {name[:80]!r}", line=number)
        if category not in class_ids:
            raise DataFormatError(list_path, f"shape {name!r}: class {category!r} is not in {SHAPE_NAMES_FILE}",
                                  line=number)  # fmt: skip
        path = folder / category / f"{name}.txt"
        if not path.is_file():
            raise DataFormatError(list_path, f"lists {name}, but {path} does not exist", line=number)
        seen.add(name)
        entries.append(ModelNet40Entry(name, category, class_ids[category], path))
    return entries


def _validation_names(train: Sequence[ModelNet40Entry], val_fraction: float, split_seed: int) -> set[str]:
    """Names of the official training shapes held out for validation (per class, seeded by the class name)."""
    by_class: dict[str, list[str]] = {}
    for entry in train:
        by_class.setdefault(entry.category, []).append(entry.name)
    held_out: set[str] = set()
    for category, names in by_class.items():
        ordered = np.array(sorted(names))
        rng = np.random.default_rng([_VAL_TAG, split_seed, zlib.crc32(category.encode())])
        count = int(np.floor(val_fraction * len(ordered) + 0.5))
        held_out.update(ordered[rng.permutation(len(ordered))[:count]].tolist())
    return held_out


# ----------------------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------------------


class ModelNet40Dataset(Dataset):
    """ModelNet40 shapes as normalised point clouds with class labels (the module docstring has the details).

    ``ModelNet40Dataset(root, split="train", num_points=1024, layout="auto", categories="all")``.

    Args:
        root: the ``ModelNet40`` or ``modelnet40_normal_resampled`` folder, or a folder holding one of them.
        split: "train", "val" (carved from the official train set), "test" or "trainval" (the official train set).
        num_points: points per sample (N).
        layout: "auto", "off" or "resampled".
        categories: "all" or class names; ``category`` stays the index in the full ``category_names``.
        val_fraction: share of each class's official training shapes held out as ``val`` (0 ≤ f < 1; 0 disables).
        split_seed: seed of the validation carving.
        seed: seed of the surface sampling (OFF layout; the resampled layout takes the first N rows).
        normalize: centre on the centroid and scale into the unit sphere.
        cache: keep parsed samples in memory.

    Attributes: ``root`` (the detected folder), ``layout``, ``entries`` (one :class:`ModelNet40Entry` per
    sample), ``category_names``, ``num_classes``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        num_points: int = 1024,
        layout: str = "auto",
        categories: Sequence[str] | str = "all",
        val_fraction: float = 0.1,
        split_seed: int = 0,
        seed: int = 0,
        normalize: bool = True,
        cache: bool = True,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if int(num_points) < 1:
            raise ValueError(f"num_points must be positive, got {num_points}")
        if not 0.0 <= float(val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if split == "val" and float(val_fraction) == 0.0:
            raise ValueError("split='val' needs val_fraction > 0 (val_fraction=0 disables the validation split)")
        self.root, self.layout = detect_modelnet40_layout(root, layout)
        self.split, self.num_points, self.seed = split, int(num_points), int(seed)
        self.normalize, self.cache = bool(normalize), bool(cache)
        if self.layout == "resampled":
            self.category_names: tuple[str, ...] = tuple(_read_names_file(self.root / SHAPE_NAMES_FILE))
            listing = _list_resampled
        else:
            self.category_names = tuple(_off_classes(self.root))
            listing = _list_off
        self.num_classes = len(self.category_names)
        selected = self._select(categories)

        if split == "test":
            entries = listing(self.root, self.category_names, "test")
        else:
            official_train = listing(self.root, self.category_names, "train")
            held_out = _validation_names(official_train, float(val_fraction), int(split_seed))
            if split == "trainval":
                entries = official_train
            else:
                entries = [entry for entry in official_train if (entry.name in held_out) == (split == "val")]
        self.entries: list[ModelNet40Entry] = [entry for entry in entries if entry.category in selected]
        self._samples: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _select(self, categories: Sequence[str] | str) -> set[str]:
        if isinstance(categories, str):
            if categories == "all":
                return set(self.category_names)
            categories = [categories]
        unknown = [name for name in categories if name not in self.category_names]
        if unknown:
            raise ValueError(f"unknown ModelNet40 classes {unknown}; known: {list(self.category_names)}")
        return set(categories)

    def __len__(self) -> int:
        return len(self.entries)

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Points and normals (N, 3) float32 of entry ``index``, normalised when asked."""
        entry = self.entries[index]
        if self.layout == "resampled":
            points, normals = read_modelnet40_resampled(entry.path, self.num_points)
        else:
            vertices, faces = read_off(entry.path)
            rng = np.random.default_rng([_SAMPLE_TAG, self.seed, zlib.crc32(f"{entry.category}/{entry.name}".encode())])
            try:
                points, normals = sample_mesh_surface(vertices, faces, self.num_points, rng)
            except ValueError:
                raise DataFormatError(entry.path, "the mesh has no surface (no face of non-zero area)") from None
        if self.normalize:
            points = normalize_unit_sphere(points)
        return points, normals

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """points, normals (N, 3) float32; category () int64; symmetry_order () int64 (always 1)."""
        index = int(index)
        if not 0 <= index < len(self.entries):
            raise IndexError(f"index {index} out of range for a dataset of {len(self.entries)} shapes")
        if index in self._samples:
            points, normals = self._samples[index]
        else:
            points, normals = self._load(index)
            if self.cache:
                self._samples[index] = (points, normals)
        return {
            "points": torch.from_numpy(points.copy()),
            "normals": torch.from_numpy(normals.copy()),
            "category": torch.tensor(self.entries[index].category_id, dtype=torch.int64),
            "symmetry_order": torch.tensor(1, dtype=torch.int64),
        }

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Stacked samples: points, normals (B, N, 3), category (B,), symmetry_order (B,)."""
        samples = [self[i] for i in indices]
        return {key: torch.stack([s[key] for s in samples]) for key in samples[0]} if samples else {}


# ----------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------


def _array(sample: Mapping[str, Any], key: str, position: int, shape: tuple[int | None, ...]) -> np.ndarray:
    if key not in sample:
        raise ValueError(f"sample {position}: needs {key!r}")
    value = sample[key]
    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape, strict=True)):
        raise ValueError(f"sample {position}: {key} must have shape {shape}, got {array.shape}")
    return array


def _off_text(vertices: np.ndarray, faces: np.ndarray, glued_header: bool) -> str:
    """An OFF file; ``glued_header`` writes the original release's ``OFF<nv> <nf> 0`` first line."""
    out = io.StringIO()
    counts = f"{len(vertices)} {len(faces)} 0"
    out.write(f"OFF{counts}\n" if glued_header else f"OFF\n{counts}\n")
    np.savetxt(out, vertices.astype(np.float64), fmt=_ROW_FORMAT, delimiter=" ")
    if len(faces):
        np.savetxt(out, np.column_stack([np.full(len(faces), faces.shape[1]), faces]), fmt="%d", delimiter=" ")
    return out.getvalue()


def write_modelnet40(
    out_dir: str | os.PathLike,
    samples: Iterable[Mapping[str, Any]],
    class_names: Sequence[str] = MODELNET40_CLASSES,
    layout: Layout = "off",
    overwrite: bool = False,
) -> Path:
    """Write shapes as a ModelNet40 folder in either layout (the module docstring has both); returns ``out_dir``.

    Args:
        out_dir: the folder to create: the ``ModelNet40`` folder (``"off"``) or the
            ``modelnet40_normal_resampled`` folder (``"resampled"``).
        samples: dicts with ``split`` ("train" / "test") and ``category`` (int, index in ``class_names``), plus
            for ``"off"``: ``vertices`` (V, 3) and ``faces`` (F, k ≥ 3) 0-based, and optionally
            ``glued_header`` (bool: write the release's malformed ``OFF<nv> <nf> <ne>`` line); for
            ``"resampled"``: ``points`` and ``normals`` (N, 3). Optional ``number`` (int ≥ 0) names the file
            ``<class>_<number:04d>``; by default each class counts 1, 2, … over its samples, as the release does.
        class_names: classes in id order. The OFF layout lists its classes in sorted folder order, so give them
            sorted there to read the same ids back. Every class gets its folder(s), even without shapes.

    Coordinates are written with 9 significant digits (float32 values read back exactly). The folder is built
    beside ``out_dir`` and renamed into place when complete; an existing non-empty ``out_dir`` is an error unless
    ``overwrite``.
    """
    if layout not in ("off", "resampled"):
        raise ValueError(f"layout must be 'off' or 'resampled', got {layout!r}")
    names = list(class_names)
    if not names or len(set(names)) < len(names) or not all(_WORD.fullmatch(name) for name in names):
        raise ValueError(f"class_names must be distinct single words, got {names}")
    lists: dict[str, list[str]] = {split: [] for split in SPLIT_LIST_FILES}
    counters = dict.fromkeys(names, 0)
    written: set[str] = set()
    with atomic_directory(out_dir, overwrite=overwrite) as staging:
        for name in names:
            for split in SPLIT_LIST_FILES if layout == "off" else ("",):
                (staging / name / split).mkdir(parents=True, exist_ok=True)
        for position, sample in enumerate(samples):
            split, category = sample.get("split"), int(sample.get("category", -1))
            if split not in lists:
                raise ValueError(f"sample {position}: split must be 'train' or 'test', got {split!r}")
            if not 0 <= category < len(names):
                raise ValueError(f"sample {position}: category {category} is not an index of class_names")
            class_name = names[category]
            counters[class_name] += 1
            number = int(sample.get("number", counters[class_name]))
            shape_name = f"{class_name}_{number:04d}"
            if number < 0 or shape_name in written:
                raise ValueError(f"sample {position}: shape {shape_name} is negative or written twice")
            written.add(shape_name)
            if layout == "off":
                vertices = _array(sample, "vertices", position, (None, 3))
                faces = _array(sample, "faces", position, (None, None))
                if faces.shape[1] < 3 or (len(faces) and (faces.min() < 0 or faces.max() >= len(vertices))):
                    raise ValueError(f"sample {position}: faces must be (F, k ≥ 3) indices of the vertices")
                text = _off_text(vertices, faces.astype(np.int64), bool(sample.get("glued_header", False)))
                (staging / class_name / split / f"{shape_name}.off").write_text(text)
            else:
                points = _array(sample, "points", position, (None, 3))
                normals = _array(sample, "normals", position, (len(points), 3))
                rows = np.concatenate([points, normals], axis=1).astype(np.float32).astype(np.float64)
                out = io.StringIO()
                np.savetxt(out, rows, fmt=_ROW_FORMAT, delimiter=",")
                (staging / class_name / f"{shape_name}.txt").write_text(out.getvalue())
            lists[split].append(shape_name)
        if layout == "resampled":
            (staging / SHAPE_NAMES_FILE).write_text("".join(f"{name}\n" for name in names))
            for split, shape_names in lists.items():
                (staging / SPLIT_LIST_FILES[split]).write_text("".join(f"{name}\n" for name in shape_names))
    return Path(out_dir)
