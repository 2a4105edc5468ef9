"""Look at the procedural worlds and write them out in the real datasets' formats.

* :func:`contact_sheet` draws a PNG grid of samples with their labels: pose axes (shapes: object x red,
  y green, z blue), the hand skeleton (hands: bones coloured per finger), projected 3D box wireframes
  (road: Car red, Pedestrian green, Cyclist blue).
* :func:`export_world` writes a dataset folder: ``road`` → the KITTI object layout
  (:func:`distill3d.data.worlds.road.export_kitti`); ``hands`` → the FreiHAND layout
  (``training/rgb/%08d.jpg``, ``training_xyz.json``, ``training_K.json``, ``training_scale.json``, from the
  ``labelled`` split); ``shapes`` has no exporter yet.

Every file is written atomically and a dataset folder is assembled in a temporary sibling folder and renamed
into place, so an error never leaves a half-written dataset behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from distill3d.data.worlds.hands import FINGERS, PARENTS, hand_batch
from distill3d.data.worlds.road import KITTI_IMAGE_SIZE, RoadConfig, export_kitti, image_projection, road_frames
from distill3d.geometry.boxes3d import BOX3D_EDGES, project_box3d_to_image

__all__ = ["WORLDS", "contact_sheet", "export_world"]

WORLDS = ("shapes", "hands", "road")
_FINGER_COLORS = ((230, 60, 60), (240, 200, 40), (60, 200, 80), (60, 140, 240), (200, 80, 220))
_CLASS_COLORS = ((255, 60, 60), (60, 230, 60), (80, 160, 255))
_AXIS_COLORS = ((255, 50, 50), (50, 220, 50), (60, 120, 255))
_PAD = 4


def _to_pil(image: torch.Tensor, zoom: int) -> Image.Image:
    array = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    picture = Image.fromarray(array)
    return picture.resize((picture.width * zoom, picture.height * zoom), Image.NEAREST)


def _zoomed(points: np.ndarray, zoom: int) -> np.ndarray:
    """Pixel coordinates (pixel centres at integers) of the original image → of the zoomed image."""
    return (np.asarray(points, np.float64) + 0.5) * zoom - 0.5


def _hand_tiles(n: int, seed: int, zoom: int = 3) -> list[Image.Image]:
    batch = hand_batch("labelled", list(range(n)), seed, image_size=64)
    tiles = []
    finger_of = {joint: f for f, chain in enumerate(FINGERS.values()) for joint in chain}
    for image, uv in zip(batch["image"], batch["joints_uv"].numpy(), strict=True):
        tile = _to_pil(image, zoom)
        draw = ImageDraw.Draw(tile)
        points = _zoomed(uv, zoom)
        for joint in range(1, len(PARENTS)):
            a, b = points[PARENTS[joint]], points[joint]
            draw.line([*a, *b], fill=_FINGER_COLORS[finger_of[joint]], width=2)
        for joint, (u, v) in enumerate(points):
            color = (255, 255, 255) if joint == 0 else _FINGER_COLORS[finger_of[joint]]
            draw.ellipse([u - 2, v - 2, u + 2, v + 2], fill=color)
        tiles.append(tile)
    return tiles


def _road_tiles(n: int, seed: int, zoom: int = 2) -> list[Image.Image]:
    config = RoadConfig()
    projection = image_projection(config.image_size)
    tiles = []
    for frame in road_frames("train", list(range(n)), seed, config):
        tile = _to_pil(frame.image, zoom)
        draw = ImageDraw.Draw(tile)
        a = frame.annotations
        if len(a):
            corners, _ = project_box3d_to_image(a.boxes3d, projection)
            for box_corners, label in zip(_zoomed(corners, zoom), a.labels, strict=True):
                for i, j in BOX3D_EDGES:
                    if np.isfinite(box_corners[[i, j]]).all():
                        draw.line([*box_corners[i], *box_corners[j]], fill=_CLASS_COLORS[int(label)], width=1)
        tiles.append(tile)
    return tiles


def _shape_tiles(n: int, seed: int, zoom: int = 3) -> list[Image.Image]:
    from distill3d.data.worlds.shapes import ShapesViewpointDataset

    dataset = ShapesViewpointDataset("train", length=max(n, 1), seed=seed, with_points=False)
    batch = dataset.batch(list(range(n)))
    axes = np.array([[0.0, 0.0, 0.0], [0.7, 0.0, 0.0], [0.0, 0.7, 0.0], [0.0, 0.0, 0.7]])
    tiles = []
    for image, K, R, t in zip(batch["image"], batch["K"], batch["R"], batch["t"], strict=True):
        tile = _to_pil(image, zoom)
        draw = ImageDraw.Draw(tile)
        camera = axes @ R.double().numpy().T + t.double().numpy()
        uv = camera @ K.double().numpy().T
        points = _zoomed(uv[:, :2] / uv[:, 2:3], zoom)
        for axis in range(3):
            draw.line([*points[0], *points[axis + 1]], fill=_AXIS_COLORS[axis], width=2)
        tiles.append(tile)
    return tiles


def _atomic_save(image: Image.Image, path: Path, **options) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        image.save(temporary, format=options.pop("format", "PNG"), **options)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def contact_sheet(world: str, n: int = 16, seed: int = 0, path: str | os.PathLike = "contact_sheet.png") -> Path:
    """Write a PNG grid of ``n`` samples of ``world`` ("shapes", "hands" or "road") with their labels drawn."""
    if world not in WORLDS:
        raise ValueError(f"world must be one of {WORLDS}, got {world!r}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    tiles = {"hands": _hand_tiles, "road": _road_tiles, "shapes": _shape_tiles}[world](n, seed)
    columns = 2 if world == "road" else math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    width, height = tiles[0].size
    sheet = Image.new("RGB", (columns * (width + _PAD) + _PAD, rows * (height + _PAD) + _PAD), (30, 30, 30))
    for k, tile in enumerate(tiles):
        sheet.paste(tile, (_PAD + (k % columns) * (width + _PAD), _PAD + (k // columns) * (height + _PAD)))
    path = Path(path)
    _atomic_save(sheet, path)
    return path


def _write_json(path: Path, value: object) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(value, stream)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _export_hands(out_dir: Path, n: int, seed: int, image_size: int, batch_size: int = 64) -> Path:
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        rgb = staging / "training" / "rgb"
        rgb.mkdir(parents=True)
        xyz, K, scale = [], [], []
        for begin in range(0, n, batch_size):
            indices = list(range(begin, min(begin + batch_size, n)))
            batch = hand_batch("labelled", indices, seed, image_size=image_size)
            for i, index in enumerate(indices):
                array = (batch["image"][i].permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
                _atomic_save(Image.fromarray(array), rgb / f"{index:08d}.jpg", format="JPEG", quality=95)
            xyz += batch["joints_xyz"].double().numpy().tolist()
            K += batch["K"].double().numpy().tolist()
            scale += batch["scale"].double().numpy().tolist()
        _write_json(staging / "training_xyz.json", xyz)
        _write_json(staging / "training_K.json", K)
        _write_json(staging / "training_scale.json", scale)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def export_world(
    world: str, out_dir: str | os.PathLike, n: int, seed: int = 0, image_size: int | tuple[int, int] | None = None
) -> Path:
    """Write ``n`` samples of ``world`` as a dataset folder in the real dataset's format; returns ``out_dir``.

    road → KITTI object layout (default full 375×1242 images); hands → FreiHAND layout (default 224×224
    images, the ``labelled`` split).  ``out_dir`` must not exist yet.
    """
    out_dir = Path(out_dir)
    if world == "road":
        size = KITTI_IMAGE_SIZE if image_size is None else tuple(image_size)  # type: ignore[arg-type]
        return export_kitti(out_dir, n, seed, image_size=size)
    if world == "hands":
        return _export_hands(out_dir, n, seed, 224 if image_size is None else int(image_size))  # type: ignore[arg-type]
    if world == "shapes":
        # TODO(shapes engineer): a Pascal3D+/ModelNet-style exporter belongs in distill3d.data.worlds.shapes.
        raise NotImplementedError("the shapes world has no dataset exporter yet")
    raise ValueError(f"world must be one of {WORLDS}, got {world!r}")
