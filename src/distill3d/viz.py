"""Drawing labels and predictions on images (PIL): pose axes, hand skeletons, 3D box wireframes.

Pixel convention: (u, v) = (column, row) with pixel centres at integer coordinates. Every function draws on a
copy enlarged ``zoom`` times (nearest neighbour), so thin lines stay visible on 64-px images.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

AXIS_COLORS = ((255, 50, 50), (50, 220, 50), (60, 120, 255))
FINGER_COLORS = ((230, 60, 60), (240, 200, 40), (60, 200, 80), (60, 140, 240), (200, 80, 220))
CLASS_COLORS = ((255, 60, 60), (60, 230, 60), (80, 160, 255))


def to_pil(image: torch.Tensor | np.ndarray, zoom: int = 1) -> Image.Image:
    """(3, H, W) float in [0, 1] → RGB PIL image, enlarged ``zoom`` times."""
    array = torch.as_tensor(image).detach().float().clamp(0, 1).permute(1, 2, 0).numpy()
    picture = Image.fromarray((array * 255.0 + 0.5).astype(np.uint8))
    return picture.resize((picture.width * zoom, picture.height * zoom), Image.NEAREST) if zoom != 1 else picture


def zoom_points(points: np.ndarray, zoom: int) -> np.ndarray:
    """Pixel coordinates of the original image → of the image enlarged ``zoom`` times."""
    return (np.asarray(points, np.float64) + 0.5) * zoom - 0.5


def project(points: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Project (N, 3) points with world→camera (R, t) and intrinsics K (OpenCV) → (N, 2) pixels."""
    camera = np.asarray(points, np.float64) @ np.asarray(R, np.float64).T + np.asarray(t, np.float64)
    uv = camera @ np.asarray(K, np.float64).T
    return uv[:, :2] / uv[:, 2:3]


def draw_pose_axes(picture: Image.Image, K: np.ndarray, R: np.ndarray, t: np.ndarray, zoom: int = 1,
                   length: float = 0.7, width: int = 2) -> Image.Image:
    """Draw the object's x (red), y (green), z (blue) axes of ``length`` (object units) at its origin."""
    axes = np.array([[0.0, 0.0, 0.0], [length, 0, 0], [0, length, 0], [0, 0, length]])
    points = zoom_points(project(axes, K, R, t), zoom)
    draw = ImageDraw.Draw(picture)
    for axis in range(3):
        draw.line([*points[0], *points[axis + 1]], fill=AXIS_COLORS[axis], width=width)
    return picture


def draw_hand_skeleton(picture: Image.Image, uv: np.ndarray, parents: Sequence[int],
                       fingers: Sequence[Sequence[int]], zoom: int = 1) -> Image.Image:
    """Draw 21 joints (J, 2) pixels: bones to their ``parents`` coloured per finger, the wrist in white."""
    finger_of = {joint: f for f, chain in enumerate(fingers) for joint in chain}
    points = zoom_points(uv, zoom)
    draw = ImageDraw.Draw(picture)
    for joint in range(1, len(parents)):
        draw.line([*points[parents[joint]], *points[joint]], fill=FINGER_COLORS[finger_of[joint] % 5], width=2)
    for joint, (u, v) in enumerate(points):
        color = (255, 255, 255) if joint == 0 else FINGER_COLORS[finger_of[joint] % 5]
        draw.ellipse([u - 2, v - 2, u + 2, v + 2], fill=color)
    return picture


def save_image(picture: Image.Image, path: str | os.PathLike, **options) -> Path:
    """Save atomically (temporary file in the same folder, then rename); format from ``options`` or PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        picture.save(temporary, format=options.pop("format", "PNG"), **options)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_image(path: str | os.PathLike, size: int) -> torch.Tensor:
    """Read an image file → (3, size, size) float in [0, 1]: longer side resized to ``size``, zero padding."""
    from distill3d.errors import DataFormatError

    try:
        with Image.open(path) as handle:
            picture = handle.convert("RGB")
    except (OSError, ValueError) as err:
        raise DataFormatError(path, f"not a readable image ({err})") from None
    scale = size / max(picture.size)
    resized = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))),
                             Image.BILINEAR)
    canvas = Image.new("RGB", (size, size))
    canvas.paste(resized, ((size - resized.width) // 2, (size - resized.height) // 2))
    return torch.from_numpy(np.asarray(canvas, np.float32) / 255.0).permute(2, 0, 1).contiguous()
