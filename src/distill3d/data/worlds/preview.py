"""Look at the procedural worlds and write them out in the real datasets' formats.

* :func:`contact_sheet` draws a PNG grid of samples with their labels: pose axes (shapes: object x red,
  y green, z blue), the hand skeleton (hands: bones coloured per finger), projected 3D box wireframes
  (road: Car red, Pedestrian green, Cyclist blue).
* :func:`export_world` writes a dataset folder: ``road`` → the KITTI object layout
  (:func:`distill3d.data.worlds.road.export_kitti`); ``hands`` → the FreiHAND layout (below);
  ``shapes`` → the ShapeNetPart layout (:mod:`distill3d.data.shapenetpart`) plus the objects' renders for
  viewpoint estimation (below).

Every file is written atomically and a dataset folder is assembled in a temporary sibling folder and renamed
into place, so an error never leaves a half-written dataset behind.

Hands export
------------
The FreiHAND download's layout (:mod:`distill3d.data.freihand`), so that ``FreiHANDDataset`` and PeCLR with
``options.dataset: freihand`` read it as they read the real dataset:

* ``training/rgb/%08d.jpg``, ``training_xyz.json``, ``training_K.json``, ``training_scale.json``: frames
  0 … n−1 of the hands world's ``labelled`` split (one background version, where the release has 4: the loader
  serves the versions present, with a warning);
* ``evaluation/rgb/%08d.jpg``, ``evaluation_xyz.json``, ``evaluation_K.json``, ``evaluation_scale.json``:
  frames 0 … m−1 of the ``test`` split, m = ⌈n · 3960 / 32560⌉ by default (FreiHAND's evaluation / training
  ratio). ``evaluation_xyz.json`` is what the release published with its evaluation annotations; with it,
  PeCLR's test split is the evaluation split.

K is in pixels of the written images (image_size × image_size, default 224), as FreiHAND's; the difficulty
preset is the world's (``standard`` by default).

Shapes export
-------------
``n`` objects are split about 70 / 10 / 20 % into ``train`` / ``val`` / ``test`` (ShapeNetPart's proportions);
object ``k`` of a split is sample ``k`` of the shapes world's split of that name (the same object as
``ShapesPointCloudDataset(split, seed=seed)[k]`` and ``ShapesViewpointDataset(split, seed=seed)[k]``), with
object id ``<split>_<k:06d>``.

* Point clouds: :data:`SHAPES_EXPORT_POINTS` surface points with normals and global part ids (the shapes world's
  51-part table, :data:`distill3d.data.worlds.shapes.PART_NAMES`), written by
  :func:`distill3d.data.shapenetpart.write_shapenetpart` in the canonical frame (z up, front −y, inside the
  unit sphere).  Categories get the synthetic synset ids :data:`SHAPES_SYNSETS` ("9001" + the 4-digit category
  index, "90010000" airplane ... "90010015" table: WordNet noun offsets stay below 16 million, so they never
  clash with a real synset), and ``distill3d.json`` carries the part table and the symmetry orders, so
  :class:`distill3d.data.shapenetpart.ShapeNetPartDataset` reads the folder back with the world's own
  category and part ids.
* Renders: ``images/<object id>.png``, the object's ``ShapesViewpointDataset`` image (``image_size``, default
  64×64: random viewpoint, background and distractors), and ``annotations.json`` =
  ``{"convention": ..., "images": [record, ...]}`` with one record per image: ``image`` (path relative to the
  folder), ``shape`` (the point-cloud entry ``shape_data/<synset>/<object id>``), ``split``, ``category``
  (name), ``category_id`` (index in :data:`distill3d.data.worlds.shapes.CATEGORIES`), ``symmetry_order``,
  the Pascal3D+ viewpoint in **degrees** ``azimuth`` [0, 360), ``elevation``, ``theta`` (in-plane), ``distance``
  (object units; the object's half-diagonal is 1), ``K`` (3×3 pixel intrinsics) and ``bbox`` (x1, y1, x2, y2:
  inclusive pixel bounds of the object's visible pixels).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from distill3d.data.shapenetpart import write_shapenetpart
from distill3d.data.worlds.difficulty import Difficulty
from distill3d.data.worlds.hands import hand_batch
from distill3d.data.worlds.road import KITTI_IMAGE_SIZE, export_kitti, image_projection, road_config, road_frames
from distill3d.data.worlds.shapes import CATEGORIES, ShapesWorld, category_part_ids
from distill3d.files import atomic_directory, atomic_write_text
from distill3d.geometry.boxes3d import BOX3D_EDGES, project_box3d_to_image
from distill3d.geometry.hand_skeleton import FINGERS, PARENTS
from distill3d.viz import CLASS_COLORS, draw_hand_skeleton, draw_pose_axes, save_image, to_pil, zoom_points

__all__ = [
    "FREIHAND_EVALUATION_RATIO", "SHAPES_EXPORT_POINTS", "SHAPES_SYNSETS", "WORLDS", "contact_sheet", "export_world",
]

WORLDS = ("shapes", "hands", "road")
_PAD = 4
SHAPES_SYNSETS: dict[str, str] = {name: f"9001{index:04d}" for index, name in enumerate(CATEGORIES)}
"""Synthetic synset id of each shapes-world category in the ShapeNetPart export ("90010000" ... "90010015")."""
SHAPES_EXPORT_POINTS = 2048
"""Points per object in the shapes world's ShapeNetPart export."""
_SHAPES_SPLIT_FRACTIONS = {"val": 0.1, "test": 0.2}
_VIEWPOINT_CONVENTION = (
    "Pascal3D+ viewpoint in degrees: azimuth [0, 360) about the up axis (z), 0 = looking at the object's front "
    "(-y side), 90 = its +x side; elevation above the horizontal; theta = in-plane rotation; distance from the "
    "object centre in object units (half-diagonal 1). K: pixel intrinsics (pixel centres at integers); bbox: "
    "inclusive pixel bounds (x1, y1, x2, y2) of the visible object."
)


def _hand_tiles(n: int, seed: int, difficulty: Difficulty, zoom: int = 3) -> list[Image.Image]:
    batch = hand_batch("labelled", list(range(n)), seed, image_size=64, difficulty=difficulty)
    fingers = list(FINGERS.values())
    return [draw_hand_skeleton(to_pil(image, zoom), uv, PARENTS, fingers, zoom)
            for image, uv in zip(batch["image"], batch["joints_uv"].numpy(), strict=True)]


def _road_tiles(n: int, seed: int, difficulty: Difficulty, zoom: int = 2) -> list[Image.Image]:
    config = road_config(difficulty)
    projection = image_projection(config.image_size)
    tiles = []
    for frame in road_frames("train", list(range(n)), seed, config):
        tile = to_pil(frame.image, zoom)
        draw = ImageDraw.Draw(tile)
        if len(frame.objects):
            corners, _ = project_box3d_to_image(frame.objects.boxes3d(), projection)
            for box_corners, label in zip(zoom_points(corners, zoom), frame.labels, strict=True):
                for i, j in BOX3D_EDGES:
                    if np.isfinite(box_corners[[i, j]]).all():
                        draw.line([*box_corners[i], *box_corners[j]], fill=CLASS_COLORS[int(label)], width=1)
        tiles.append(tile)
    return tiles


def _shape_tiles(n: int, seed: int, difficulty: Difficulty, zoom: int = 3) -> list[Image.Image]:
    from distill3d.data.worlds.shapes import ShapesViewpointDataset

    dataset = ShapesViewpointDataset("train", length=max(n, 1), seed=seed, with_points=False, difficulty=difficulty)
    batch = dataset.batch(list(range(n)))
    return [draw_pose_axes(to_pil(image, zoom), K.double().numpy(), R.double().numpy(), t.double().numpy(), zoom)
            for image, K, R, t in zip(batch["image"], batch["K"], batch["R"], batch["t"], strict=True)]


def contact_sheet(world: str, n: int = 16, seed: int = 0, path: str | os.PathLike = "contact_sheet.png",
                  difficulty: Difficulty = "standard") -> Path:
    """Write a PNG grid of ``n`` samples of ``world`` ("shapes", "hands" or "road") with their labels drawn
    (``difficulty``: the world's preset)."""
    if world not in WORLDS:
        raise ValueError(f"world must be one of {WORLDS}, got {world!r}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    tiles = {"hands": _hand_tiles, "road": _road_tiles, "shapes": _shape_tiles}[world](n, seed, difficulty)
    columns = 2 if world == "road" else math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    width, height = tiles[0].size
    sheet = Image.new("RGB", (columns * (width + _PAD) + _PAD, rows * (height + _PAD) + _PAD), (30, 30, 30))
    for k, tile in enumerate(tiles):
        sheet.paste(tile, (_PAD + (k % columns) * (width + _PAD), _PAD + (k // columns) * (height + _PAD)))
    path = Path(path)
    save_image(sheet, path)
    return path


def _write_json(path: Path, value: object) -> None:
    atomic_write_text(path, json.dumps(value))


#: FreiHAND's evaluation frames per training frame (3,960 / 32,560): the default size of a hands export's
#: evaluation split.
FREIHAND_EVALUATION_RATIO = 3960 / 32560


def _write_hands_split(staging: Path, folder: str, world_split: str, n: int, seed: int, image_size: int,
                       difficulty: Difficulty, batch_size: int) -> None:
    """One FreiHAND split: ``<folder>/rgb/%08d.jpg`` and ``<folder>_{xyz,K,scale}.json`` from samples 0 … n−1 of
    the hands world's ``world_split``."""
    rgb = staging / folder / "rgb"
    rgb.mkdir(parents=True)
    xyz, K, scale = [], [], []
    for begin in range(0, n, batch_size):
        indices = list(range(begin, min(begin + batch_size, n)))
        batch = hand_batch(world_split, indices, seed, image_size=image_size, difficulty=difficulty)
        for i, index in enumerate(indices):
            save_image(to_pil(batch["image"][i]), rgb / f"{index:08d}.jpg", format="JPEG", quality=95)
        xyz += batch["joints_xyz"].double().numpy().tolist()
        K += batch["K"].double().numpy().tolist()
        scale += batch["scale"].double().numpy().tolist()
    _write_json(staging / f"{folder}_xyz.json", xyz)
    _write_json(staging / f"{folder}_K.json", K)
    _write_json(staging / f"{folder}_scale.json", scale)


def _export_hands(out_dir: Path, n: int, seed: int, image_size: int, n_evaluation: int | None = None,
                  difficulty: Difficulty = "standard", batch_size: int = 64) -> Path:
    """The hands world as a FreiHAND folder (module docstring): ``labelled`` → training, ``test`` → evaluation."""
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists")
    if n_evaluation is None:
        n_evaluation = max(1, math.ceil(n * FREIHAND_EVALUATION_RATIO))
    if n_evaluation < 1:
        raise ValueError(f"n_evaluation must be at least 1, got {n_evaluation}")
    with atomic_directory(out_dir) as staging:
        _write_hands_split(staging, "training", "labelled", n, seed, image_size, difficulty, batch_size)
        _write_hands_split(staging, "evaluation", "test", n_evaluation, seed, image_size, difficulty, batch_size)
    return out_dir


def _shapes_split_sizes(n: int) -> dict[str, int]:
    """Objects per split of an ``n``-object export (about 70 / 10 / 20 %)."""
    sizes = {split: round(fraction * n) for split, fraction in _SHAPES_SPLIT_FRACTIONS.items()}
    return {"train": n - sum(sizes.values()), **sizes}


def _shapes_batches(sizes: dict[str, int], batch_size: int) -> list[tuple[str, list[int]]]:
    return [
        (split, list(range(begin, min(begin + batch_size, count))))
        for split, count in sizes.items()
        for begin in range(0, count, batch_size)
    ]


def _shape_point_samples(
    world: ShapesWorld, sizes: dict[str, int], batch_size: int
) -> Iterator[dict[str, str | torch.Tensor]]:
    """The export's point-cloud samples, one dict per object, in the layout write_shapenetpart takes."""
    for split, indices in _shapes_batches(sizes, batch_size):
        batch = world.point_cloud_batch(split, indices)
        for row, index in enumerate(indices):
            yield {"split": split, "object_id": f"{split}_{index:06d}",
                   **{key: batch[key][row] for key in ("points", "normals", "part_labels", "category",
                                                       "symmetry_order")}}  # fmt: skip


def _viewpoint_record(batch: dict[str, torch.Tensor], row: int, split: str, index: int) -> dict[str, object]:
    """annotations.json record of one render (see the module docstring)."""
    object_id = f"{split}_{index:06d}"
    category = CATEGORIES[int(batch["category"][row])]
    azimuth, elevation, theta = np.degrees(batch["viewpoint"][row].double().numpy())
    rows, columns = np.nonzero(batch["mask"][row].numpy())
    bbox = [int(columns.min()), int(rows.min()), int(columns.max()), int(rows.max())] if len(rows) else None
    return {
        "image": f"images/{object_id}.png",
        "shape": f"shape_data/{SHAPES_SYNSETS[category]}/{object_id}",
        "split": split,
        "category": category,
        "category_id": int(batch["category"][row]),
        "symmetry_order": int(batch["symmetry_order"][row]),
        "azimuth": round(float(azimuth) % 360.0, 6),
        "elevation": round(float(elevation), 6),
        "theta": round(float(theta), 6),
        "distance": round(float(batch["distance"][row]), 6),
        "K": np.round(batch["K"][row].double().numpy(), 4).tolist(),
        "bbox": bbox,
    }


def _export_shapes(
    out_dir: Path, n: int, seed: int, image_size: int, n_points: int = SHAPES_EXPORT_POINTS, batch_size: int = 64,
    difficulty: Difficulty = "standard",
) -> Path:
    """The shapes world as a ShapeNetPart folder plus renders and annotations.json (module docstring)."""
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists")
    world = ShapesWorld(image_size=image_size, n_points=n_points, seed=seed, difficulty=difficulty)
    sizes = _shapes_split_sizes(n)
    part_table = {name: category_part_ids(name) for name in CATEGORIES}
    with atomic_directory(out_dir) as staging:
        write_shapenetpart(staging, _shape_point_samples(world, sizes, batch_size), SHAPES_SYNSETS, part_table)
        (staging / "images").mkdir()
        records = []
        for split, indices in _shapes_batches(sizes, batch_size):
            batch = world.viewpoint_batch(split, indices, with_points=False)
            for row, index in enumerate(indices):
                record = _viewpoint_record(batch, row, split, index)
                save_image(to_pil(batch["image"][row], 1), staging / str(record["image"]))
                records.append(record)
        _write_json(staging / "annotations.json", {"convention": _VIEWPOINT_CONVENTION, "images": records})
    return out_dir


def export_world(
    world: str, out_dir: str | os.PathLike, n: int, seed: int = 0, image_size: int | tuple[int, int] | None = None,
    difficulty: Difficulty = "standard", n_evaluation: int | None = None,
) -> Path:
    """Write ``n`` samples of ``world`` as a dataset folder in the real dataset's format; returns ``out_dir``.

    road → KITTI object layout (default full 375×1242 images); hands → FreiHAND layout (default 224×224
    images): ``n`` training frames (the ``labelled`` split) and ``n_evaluation`` evaluation frames (the ``test``
    split; default ⌈n · 3960 / 32560⌉) with their annotations; shapes → ShapeNetPart layout with
    :data:`SHAPES_EXPORT_POINTS` points per object, plus ``images/`` (default 64×64) and ``annotations.json``
    (module docstring).  ``difficulty``: the world's preset.  ``out_dir`` must not exist yet;
    the folder appears complete or not at all.
    """
    out_dir = Path(out_dir)
    if world == "road":
        size = KITTI_IMAGE_SIZE if image_size is None else tuple(image_size)  # type: ignore[arg-type]
        return export_kitti(out_dir, n, seed, image_size=size, config=road_config(difficulty))
    if world == "hands":
        size = 224 if image_size is None else int(image_size)  # type: ignore[arg-type]
        return _export_hands(out_dir, n, seed, size, n_evaluation, difficulty)
    if world == "shapes":
        size = 64 if image_size is None else int(image_size)  # type: ignore[arg-type]
        return _export_shapes(out_dir, n, seed, size, difficulty=difficulty)
    raise ValueError(f"world must be one of {WORLDS}, got {world!r}")
