"""PointMCD at inference: ``distill3d predict`` of a trained point-cloud student on point-cloud files.

Only the student is deployed (the teacher classifies rendered views and exists to teach it; an unsupervised
student's head is not trained, it is read out by a linear SVM). For every input file:

1. **Read** (:func:`read_point_cloud`): ``.txt`` / ``.pts`` / ``.xyz`` — one point per line, 3 (``x y z``), 6
   (``x y z nx ny nz``, ModelNet40's ``normal_resampled``, comma-separated) or 7 numbers (ShapeNetPart's
   ``x y z nx ny nz part``), separated by commas or white space; ``.npy`` — an array (N, 3) or (N, 6); ``.off`` —
   a mesh, ``num_points`` points sampled on its surface (area-weighted,
   :func:`~distill3d.data.mesh_io.sample_mesh_surface`); ``.ply`` — its vertices. Normals are not used (the
   students see coordinates only); ShapeNetPart's part column, when present, is compared with the prediction.
2. **Resample** to the run's ``options.num_points``: a draw without replacement when the file has enough points,
   else every point once plus random repeats (ShapeNetPart's sampling), from a fixed seed (:data:`PREDICT_SEED`).
3. **Normalise** as the training data of the run's dataset (:func:`normalise_like_training`): shapes world and
   ShapeNetPart — centred on the axis-aligned bounding box, half-diagonal scaled to 1 (on all the file's points);
   ModelNet40 — centred on the centroid, farthest point at distance 1 (on the sampled points, PointNet++'s
   ``pc_normalize``). No rotation: the cloud must be in the frame the student was trained in (z up for the shapes
   world and ModelNet40, y up for the ShapeNetPart release, ``options.up_axis``).
4. **Predict**: a classification student prints its 3 most probable classes (softmax; for the shapes world only
   among the categories it was trained on); a segmentation student needs the object's category (the category
   one-hot is an input), given by ``--option category=NAME`` or, failing that, by the file's folder name (a
   category name, or a ShapeNet / shapes-world-export synset id as in ShapeNetPart's ``<synset>/<id>.txt``),
   and labels every point with a part of that category (:func:`~distill3d.metrics.shapes.
   predict_parts_within_category`).
5. **Draw** ``<out_dir>/<stem>_pointmcd.png``: the normalised cloud seen orthographically from the front and from
   above, side by side, titled with the prediction; points coloured by depth (classification) or by predicted part
   with a legend (segmentation).

A missing or malformed file (wrong number of columns, not a number, no point, non-finite value, unknown type) is one
:class:`~distill3d.errors.DataFormatError` line naming the file (and line).
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill3d.data.mesh_io import MAX_MESH_BYTES, read_off, read_ply_points, read_text_file, sample_mesh_surface
from distill3d.data.modelnet40 import MODELNET40_CLASSES, normalize_unit_sphere
from distill3d.data.shapenetpart import (
    SHAPENETPART_CATEGORIES,
    SHAPENETPART_PART_TABLE,
    SHAPENETPART_SYNSETS,
    normalize_bounding_box,
    sample_point_indices,
)
from distill3d.data.worlds.shapes import CATEGORIES, PART_NAMES
from distill3d.errors import ConfigError, DataFormatError, Distill3dError
from distill3d.files import atomic_write_bytes
from distill3d.methods.pointmcd.data import Y_UP_TO_Z_UP, DataSpec, data_spec, shapes_categories
from distill3d.methods.pointmcd.options import Options
from distill3d.methods.pointmcd.task import PointMCDStudent, build_student
from distill3d.metrics.shapes import predict_parts_within_category

__all__ = [
    "POINT_FILE_TYPES",
    "PREDICT_OPTIONS",
    "PREDICT_SEED",
    "PointCloudFile",
    "draw_point_cloud",
    "load_student",
    "normalise_like_training",
    "predict",
    "read_point_cloud",
]

POINT_FILE_TYPES = (".txt", ".pts", ".xyz", ".npy", ".off", ".ply")
"""File name endings ``predict`` reads (module docstring)."""
PREDICT_OPTIONS = {"category": "the object's category for a segmentation student (a name or a synset id)"}
"""The ``--option KEY=VALUE`` keys ``predict`` understands."""
PREDICT_SEED = 0
"""Seed of the resampling and of the surface sampling of meshes (the same file always gives the same points)."""
TOP_K = 3
_TEXT_COLUMNS = {3: "x y z", 6: "x y z nx ny nz", 7: "x y z nx ny nz part"}
_BLANK_LINE = re.compile(r"(?m)^[ \t\r\f\v]+$")
_FIGURE_SIZE_IN = (8.0, 4.4)
_FIGURE_DPI = 100
_AXIS_LIMIT = 1.08
_POINT_AREA = 7.0


# ----------------------------------------------------------------------------------------------------------
# Loading the student of a checkpoint
# ----------------------------------------------------------------------------------------------------------


def _label_space(options: Options) -> DataSpec:
    """The run's label spaces; for real data whose folder is not readable here, the standard tables (the weights
    then tell whether they fit)."""
    if options.dataset == "shapes":
        return data_spec(options)
    try:
        return data_spec(options)
    except (Distill3dError, OSError):
        if options.dataset == "modelnet40":
            return DataSpec(len(MODELNET40_CLASSES), 0, {}, MODELNET40_CLASSES)
        table = {i: SHAPENETPART_PART_TABLE[name] for i, name in enumerate(SHAPENETPART_CATEGORIES)}
        return DataSpec(len(SHAPENETPART_CATEGORIES), 1 + max(max(p) for p in table.values()), table,
                        SHAPENETPART_CATEGORIES)


def load_student(state: dict[str, Any]) -> tuple[PointMCDStudent, Options, DataSpec]:
    """The student of a pointmcd checkpoint state (as read by ``load_checkpoint``) in eval mode, its options and
    label spaces. A teacher or an unsupervised student is refused in one line (they do not label point clouds)."""
    from distill3d.engine.checkpoint import load_weights
    from distill3d.engine.config import validate_section

    config = state.get("config", {})
    if config.get("method") != "pointmcd" or "model" not in state:
        raise Distill3dError(f"not a pointmcd checkpoint (method {config.get('method')!r})")
    options = validate_section(Options, config.get("options", {}), "options")
    if options.stage != "student":
        raise Distill3dError("this is a PointMCD teacher checkpoint (options.stage: teacher): it classifies rendered "
                             "views; predict takes a point-cloud student (options.stage: student)")
    if options.task == "unsupervised":
        raise Distill3dError("this is an unsupervised PointMCD student: its classifier head is not trained (it is "
                             "read out by a linear SVM); predict takes a classification or segmentation student")
    spec = _label_space(options)
    model = load_weights(build_student(options, spec), state["model"], "pointmcd checkpoint")
    return model.eval(), options, spec


# ----------------------------------------------------------------------------------------------------------
# Reading point-cloud files
# ----------------------------------------------------------------------------------------------------------


@dataclass
class PointCloudFile:
    """One input: points (N, 3) float64 as read (file frame and units), part labels (N,) int64 from a ShapeNetPart
    7th column (else None), and how the points were obtained (for the printed line)."""

    points: np.ndarray
    part_labels: np.ndarray | None
    source: str


def _locate_bad_line(path: Path, text: str, delimiter: str | None) -> None:
    """Raise a DataFormatError at the first line that is not a row of 3, 6 or 7 numbers like the first row (only
    runs after the vectorised parser has failed, to name the line)."""
    first_count: int | None = None
    for number, line in enumerate(text.split("\n"), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        fields = [field.strip() for field in content.split(delimiter)] if delimiter else content.split()
        if len(fields) not in _TEXT_COLUMNS:
            raise DataFormatError(path, f"expected 3 (x y z), 6 (x y z nx ny nz) or 7 (x y z nx ny nz part) numbers "
                                  f"per line, found {len(fields)}", line=number)
        if first_count is not None and len(fields) != first_count:
            raise DataFormatError(path, f"has {len(fields)} numbers, the first point line has {first_count}",
                                  line=number)
        first_count = len(fields)
        try:
            [float(field) for field in fields]
        except ValueError:
            raise DataFormatError(path, f"not a number in {content[:80]!r}", line=number) from None
    if first_count is None:
        raise DataFormatError(path, "holds no point")
    raise DataFormatError(path, "cannot be read as rows of numbers (x y z [nx ny nz [part]])")


def _read_text_rows(path: Path) -> np.ndarray:
    """A text point file → (R, C) float64, C ∈ {3, 6, 7}; comma- or white-space-separated, ``#`` comments."""
    text = _BLANK_LINE.sub("", read_text_file(path))  # lines of spaces are blank (line numbers kept)
    delimiter = "," if "," in text else None
    try:
        with warnings.catch_warnings():  # an empty file warns
            warnings.simplefilter("ignore", UserWarning)
            values = np.loadtxt(io.StringIO(text), dtype=np.float64, delimiter=delimiter, comments="#", ndmin=2)
    except ValueError:
        values = None
    if values is None or values.shape[1] not in _TEXT_COLUMNS or not len(values):
        _locate_bad_line(path, text, delimiter)
    assert values is not None
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        rows = [number for number, line in enumerate(text.split("\n"), start=1) if line.split("#", 1)[0].strip()]
        raise DataFormatError(path, "non-finite value", line=rows[int(np.argmin(finite))])
    return values


def _read_npy(path: Path) -> np.ndarray:
    """A ``.npy`` array (N, 3) or (N, 6) of numbers → (N, C) float64."""
    try:
        size = path.stat().st_size
        if size > MAX_MESH_BYTES:
            raise DataFormatError(path, f"{size} bytes is larger than a point-cloud file may be ({MAX_MESH_BYTES})")
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except IsADirectoryError:
        raise DataFormatError(path, "is a folder, expected a file") from None
    except (OSError, ValueError, EOFError) as error:
        raise DataFormatError(path, f"not a readable .npy array ({str(error).splitlines()[0][:120]})") from None
    if not isinstance(array, np.ndarray) or array.ndim != 2 or array.shape[1] not in (3, 6):
        raise DataFormatError(path, f"expected an array of shape (N, 3) or (N, 6), got {getattr(array, 'shape', ())}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise DataFormatError(path, f"expected numbers, got an array of {array.dtype}")
    values = array.astype(np.float64)
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        raise DataFormatError(path, f"row {int(np.argmin(finite))} has a non-finite value")
    return values


def read_point_cloud(path: str | Path, mesh_points: int) -> PointCloudFile:
    """Read one input file (the formats of the module docstring); ``mesh_points``: points sampled on an ``.off``
    mesh. Any problem is one :class:`DataFormatError` naming the file (and line)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in POINT_FILE_TYPES:
        raise DataFormatError(path, f"unsupported point-cloud file type {suffix or '(none)'!r} "
                              f"(expected {', '.join(POINT_FILE_TYPES)})")
    if suffix == ".off":
        vertices, faces = read_off(path)
        try:
            points, _ = sample_mesh_surface(vertices, faces, mesh_points, np.random.default_rng(PREDICT_SEED))
        except ValueError:
            raise DataFormatError(path, "the mesh has no surface (no face of non-zero area)") from None
        return PointCloudFile(points.astype(np.float64), None, f"{mesh_points} points sampled on the mesh")
    if suffix == ".ply":
        points = read_ply_points(path)
        labels = None
    else:
        values = _read_npy(path) if suffix == ".npy" else _read_text_rows(path)
        if not len(values):
            raise DataFormatError(path, "holds no point")
        points = values[:, :3]
        labels = None
        if values.shape[1] == 7:
            column = values[:, 6]
            if not np.all((column == np.round(column)) & (column >= 0)):
                raise DataFormatError(path, "the 7th column (ShapeNetPart's part label) holds a value that is not a "
                                      "non-negative integer")
            labels = column.astype(np.int64)
    if not len(points):
        raise DataFormatError(path, "holds no point")
    return PointCloudFile(points, labels, f"{len(points)} points read")


# ----------------------------------------------------------------------------------------------------------
# Preparing the student's input
# ----------------------------------------------------------------------------------------------------------


def normalise_like_training(points: np.ndarray, part_labels: np.ndarray | None, options: Options
                            ) -> tuple[np.ndarray, np.ndarray | None]:
    """Resample a cloud (N, 3) (and its part labels (N,)) to ``options.num_points`` and normalise it as the
    training data of ``options.dataset`` (module docstring, step 3) → (num_points, 3) float32, labels or None."""
    rng = np.random.default_rng(PREDICT_SEED)
    chosen = sample_point_indices(len(points), options.num_points, rng)
    labels = None if part_labels is None else part_labels[chosen]
    if options.dataset == "modelnet40":  # PointNet++'s pc_normalize of the sample
        return normalize_unit_sphere(points[chosen]), labels
    return normalize_bounding_box(points)[chosen].astype(np.float32), labels  # ShapeNetPart: on the whole file


# ----------------------------------------------------------------------------------------------------------
# Categories and names
# ----------------------------------------------------------------------------------------------------------


def _category_of(path: Path, given: str | None, spec: DataSpec) -> tuple[int, str]:
    """(category id, where it came from) of a segmentation input: ``--option category=…`` or the folder name
    (category name or synset id, case-insensitive); one error line when neither names a trained category."""
    from distill3d.data.worlds.preview import SHAPES_SYNSETS

    by_name = {name.lower(): index for index, name in enumerate(spec.category_names)}
    synsets = {synset: name for name, synset in (*SHAPENETPART_SYNSETS.items(), *SHAPES_SYNSETS.items())}
    trained = [spec.category_names[i] for i in sorted(spec.category_to_parts)]

    def lookup(word: str) -> int | None:
        word = synsets.get(word, word).lower()
        return by_name.get(word)

    if given is not None:
        index, where = lookup(given.strip()), "--option category"
        if index is None:
            raise ConfigError(f"--option category={given}: not a category of this student (trained: "
                              f"{', '.join(trained)}; a ShapeNet synset id also works)")
    else:
        index, where = lookup(path.parent.name), f"folder name {path.parent.name!r}"
        if index is None:
            raise DataFormatError(path, "a segmentation student needs the object's category: pass --option "
                                  f"category=NAME (one of {', '.join(trained)}) or put the file in a folder named "
                                  "after the category or its synset id")
    if index not in spec.category_to_parts:
        raise ConfigError(f"{path}: category {spec.category_names[index]} ({where}) was not trained "
                          f"(trained: {', '.join(trained)})")
    return index, where


def _part_name(part: int, category: str, options: Options, spec: DataSpec) -> str:
    """Readable name of global part id ``part``: the shapes world's part names, else "<category> part k"."""
    if options.dataset == "shapes":
        return PART_NAMES[part].split("/", 1)[-1]
    parts = next(p for c, p in spec.category_to_parts.items() if spec.category_names[c] == category)
    return f"{category} part {parts.index(part)}" if part in parts else f"part {part}"


def _class_mask(options: Options, spec: DataSpec) -> torch.Tensor:
    """(K,) bool: the classes a classification student may predict (shapes world: its trained categories)."""
    allowed = torch.ones(spec.num_classes, dtype=torch.bool)
    if options.dataset == "shapes":
        allowed[:] = False
        allowed[[CATEGORIES.index(name) for name in shapes_categories(options)]] = True
    return allowed


# ----------------------------------------------------------------------------------------------------------
# Picture
# ----------------------------------------------------------------------------------------------------------


def draw_point_cloud(points: np.ndarray, colours: np.ndarray | None, title: str, up_axis: str = "z",
                     legend: Sequence[tuple[str, Sequence[float]]] = ()) -> bytes:
    """PNG bytes of a normalised cloud (N, 3) seen orthographically from the front (looking along +y, x right, z
    up) and from above (looking down, x right, y up), nearer points drawn over farther ones.

    ``colours`` (N, 3) RGB in [0, 1], or None for a grey shading by depth; ``up_axis="y"`` turns y-up data to z up
    first; ``legend`` = (label, RGB) entries drawn below the panels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    z_up = np.asarray(points, np.float64)
    if up_axis == "y":
        z_up = z_up @ Y_UP_TO_Z_UP.double().numpy().T
    figure = Figure(figsize=_FIGURE_SIZE_IN, dpi=_FIGURE_DPI)
    FigureCanvasAgg(figure)
    # (panel title, horizontal axis, vertical axis, depth towards the viewer)
    views = (("front", z_up[:, 0], z_up[:, 2], -z_up[:, 1]), ("top", z_up[:, 0], z_up[:, 1], z_up[:, 2]))
    for column, (name, horizontal, vertical, nearness) in enumerate(views):
        axes = figure.add_subplot(1, 2, column + 1)
        order = np.argsort(nearness, kind="stable")  # far first, near last (drawn on top)
        if colours is None:
            shade = 0.25 + 0.6 * (nearness - nearness.min()) / max(float(np.ptp(nearness)), 1e-9)
            shown = np.stack([0.15 + 0.5 * shade, 0.3 + 0.5 * shade, 0.45 + 0.5 * shade], axis=1)
        else:
            shown = np.asarray(colours, np.float64)
        axes.scatter(horizontal[order], vertical[order], c=shown[order], s=_POINT_AREA, linewidths=0)
        axes.set_xlim(-_AXIS_LIMIT, _AXIS_LIMIT)
        axes.set_ylim(-_AXIS_LIMIT, _AXIS_LIMIT)
        axes.set_aspect("equal")
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_title(name, fontsize=9)
    if legend:
        handles = [Line2D([], [], marker="o", linestyle="", color=tuple(colour), label=label)
                   for label, colour in legend]
        figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0, 0.08 if legend else 0, 1, 1))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _part_colours(count: int) -> np.ndarray:
    """``count`` distinct RGB colours (count, 3) from matplotlib's ``tab10`` (then ``tab20``)."""
    from matplotlib import colormaps

    table = colormaps["tab10" if count <= 10 else "tab20"]
    return np.asarray([table(i % table.N)[:3] for i in range(count)])


# ----------------------------------------------------------------------------------------------------------
# predict
# ----------------------------------------------------------------------------------------------------------


def _output_name(stem: str, used: set[str]) -> str:
    name, copy = f"{stem}_pointmcd.png", 1
    while name in used:
        copy += 1
        name = f"{stem}_{copy}_pointmcd.png"
    used.add(name)
    return name


def predict(state: dict[str, Any], paths: Sequence[str | Path], out_dir: str | Path,
            options: Mapping[str, str] | None = None) -> list[str]:
    """``distill3d predict`` for a pointmcd student checkpoint: classify (top 3) or part-segment each point-cloud
    file, write ``<out_dir>/<stem>_pointmcd.png`` (a repeated stem gets ``_2``, ``_3`` …) and return one line per
    file. ``options``: ``--option`` pairs (:data:`PREDICT_OPTIONS`: ``category`` for a segmentation student)."""
    given = dict(options or {})
    unknown = sorted(set(given) - set(PREDICT_OPTIONS))
    if unknown:
        raise ConfigError(f"--option {unknown[0]}: pointmcd predict knows only "
                          + ", ".join(f"{key} ({what})" for key, what in PREDICT_OPTIONS.items()))
    model, run_options, spec = load_student(state)
    # Every file is read (and a segmentation input's category found) before any picture is written: a bad input
    # is one error line and leaves nothing half-written.
    inputs = []
    for raw in paths:
        path = Path(raw)
        cloud = read_point_cloud(path, run_options.num_points)
        points, file_labels = normalise_like_training(cloud.points, cloud.part_labels, run_options)
        category = _category_of(path, given.get("category"), spec) if model.segmentation else None
        inputs.append((path, cloud.source, points, file_labels, category))
    out_dir = Path(out_dir)
    lines: list[str] = []
    used: set[str] = set()
    for path, source, points, file_labels, category in inputs:
        tensor = torch.from_numpy(np.ascontiguousarray(points, np.float32))[None]
        if category is not None:
            line, picture = _segment(model, tensor, path, category, file_labels, run_options, spec)
        else:
            line, picture = _classify(model, tensor, path, run_options, spec)
        written = out_dir / _output_name(path.stem, used)
        atomic_write_bytes(written, picture)
        lines.append(f"{path}: {line} ({source} → {run_options.num_points}) → {written}")
    return lines


def _classify(model: PointMCDStudent, points: torch.Tensor, path: Path, options: Options, spec: DataSpec
              ) -> tuple[str, bytes]:
    """(printed line, PNG) of a classification student on one cloud (1, N, 3)."""
    with torch.no_grad():
        logits = model(points)[0][0].float()
    allowed = _class_mask(options, spec)
    probabilities = logits.masked_fill(~allowed, -torch.inf).softmax(-1)
    top = probabilities.topk(min(TOP_K, int(allowed.sum())))
    ranked = [(spec.category_names[int(i)], float(p)) for p, i in zip(top.values, top.indices, strict=True)]
    title = f"{path.name}: {ranked[0][0]} ({ranked[0][1]:.0%})"
    listed = ", ".join(f"{name} {p:.2f}" for name, p in ranked)
    return f"class {ranked[0][0]} (top {len(ranked)}: {listed})", draw_point_cloud(
        points[0].numpy(), None, title, options.up_axis)


def _segment(model: PointMCDStudent, points: torch.Tensor, path: Path, category_and_source: tuple[int, str],
             file_labels: np.ndarray | None, options: Options, spec: DataSpec) -> tuple[str, bytes]:
    """(printed line, PNG) of a segmentation student on one cloud (1, N, 3) of category (id, where it came from)."""
    category, where = category_and_source
    name = spec.category_names[category]
    category_tensor = torch.tensor([category])
    with torch.no_grad():
        logits = model(points, category_tensor)[0].float()
    labels = predict_parts_within_category(logits, category_tensor, spec.category_to_parts)[0].numpy()
    parts = list(spec.category_to_parts[category])
    palette = _part_colours(len(parts))
    slot = (labels[:, None] == np.asarray(parts)[None]).argmax(1)  # (N,) position of each point's part in parts
    shares = np.bincount(slot, minlength=len(parts)) / len(labels)
    names = [_part_name(part, name, options, spec) for part in parts]
    listed = ", ".join(f"{part} {share:.0%}" for part, share in zip(names, shares, strict=True) if share > 0)
    line = f"category {name} (from the {where}); parts: {listed}"
    if file_labels is not None:
        if np.isin(file_labels, parts).all():
            line += f"; agreement with the file's part labels {float((file_labels == labels).mean()):.1%}"
        else:
            line += "; the file's part labels are not this category's part ids (not compared)"
    legend = [(f"{part} ({share:.0%})", palette[i]) for i, (part, share) in enumerate(zip(names, shares, strict=True))]
    picture = draw_point_cloud(points[0].numpy(), palette[slot], f"{path.name}: {name}, predicted parts",
                               options.up_axis, legend)
    return line, picture
