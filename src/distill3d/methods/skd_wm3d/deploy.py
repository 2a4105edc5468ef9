"""SKD-WM3D at inference: ``distill3d predict`` and ``distill3d export`` of the MDN (the image-only branch).

Only the MDN is deployed (the DSN needs a depth map and exists to teach it). Its input is an RGB image resized to
the run's ``options.image_size`` (H, W); its outputs are CenterNet-style head maps at stride 4
(:mod:`distill3d.geometry.mono3d`). Turning the maps into 3D boxes needs the camera of the input image, so the
decoding stays in Python (:func:`~distill3d.geometry.mono3d.decode_detections`), outside the exported graph:

* :class:`ExportableMDN` — images (B, 3, H, W) RGB in [0, 1] (the task's ImageNet normalisation is inside) →
  a tuple of the raw maps in the order :data:`EXPORT_OUTPUT_NAMES`;
* :func:`exported_outputs_to_dict` — that tuple (tensors or onnxruntime's arrays) → the dict ``decode_detections``
  takes; :func:`input_projection` gives the camera ``P2`` of the resized input from a KITTI ``P2``;
* :func:`export` writes the module as TorchScript or ONNX with the facts decoding needs (classes, class-mean sizes,
  stride, input size, output order) stored inside the file (:func:`read_export_metadata`).

Camera for ``predict``: an image ``…/image_2/<id>.png`` with a KITTI calibration ``…/calib/<id>.txt`` uses that
file's ``P2`` rescaled to the network input; any other image is assumed to be seen by the road world's camera
(KITTI's ``P2`` of frame 000000 for a 1242×375 image, rescaled to the input), which the printed line says.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

from distill3d.data.kitti_io import read_calib_file
from distill3d.data.worlds.road import image_projection
from distill3d.errors import DataFormatError, Distill3dError
from distill3d.geometry.boxes3d import BOX3D_EDGES, box3d_corners, project_box3d_to_image
from distill3d.geometry.camera import resize_intrinsics
from distill3d.geometry.mono3d import decode_detections
from distill3d.methods.skd_wm3d.options import Options
from distill3d.methods.skd_wm3d.task import IMAGENET_MEAN, IMAGENET_STD, SKDWM3DTask, normalise
from distill3d.models.mono3d import HEAD_OUTPUT_NAMES, Mono3DNet
from distill3d.viz import CLASS_COLORS, save_image

__all__ = [
    "BEV_DEPTH_RANGE_M",
    "DISPLAY_SCORE_THRESHOLD",
    "EXPORT_OUTPUT_NAMES",
    "METADATA_FILE",
    "ExportableMDN",
    "detect",
    "export",
    "export_metadata",
    "exported_outputs_to_dict",
    "input_projection",
    "kitti_calib_for",
    "load_mdn",
    "predict",
    "read_export_metadata",
    "read_input_image",
    "render_detections",
]

EXPORT_OUTPUT_NAMES: tuple[str, ...] = HEAD_OUTPUT_NAMES
"""Order of the exported model's outputs, each (B, C_k, H/4, W/4): ``heatmap`` (C classes, logits), ``size2d`` (2),
``offset2d`` (2), ``offset3d`` (2), ``depth`` (1, raw: metres = exp(−raw)), ``depth_log_sigma`` (1),
``dimensions`` (3, log-ratio to the class mean), ``orientation`` (2·bins: logits, then residuals)."""
METADATA_FILE = "distill3d.json"
"""Name of the JSON metadata inside a TorchScript export (``_extra_files``); ONNX: a ``metadata_props`` key."""
DISPLAY_SCORE_THRESHOLD = 0.3
"""``predict`` draws and lists detections scoring at least this (the evaluation keeps ``options.score_threshold``,
0.05 by default, which floods a picture with weak boxes)."""
BEV_DEPTH_RANGE_M = 60.0
"""The bird's-eye view shows depths 0 … 60 m (and lateral −30 … 30 m)."""
_MIN_PANEL_HEIGHT = 320
_BEV_GRID_M = 10.0
_BACKGROUND = (24, 24, 28)
_GRID = (70, 70, 78)
_TEXT = (230, 230, 230)


# ----------------------------------------------------------------------------------------------------------
# Loading the MDN of a checkpoint
# ----------------------------------------------------------------------------------------------------------


def load_mdn(state: dict[str, Any]) -> tuple[Mono3DNet, SKDWM3DTask]:
    """The MDN of an skd_wm3d checkpoint state (as read by ``load_checkpoint``), in eval mode, and the task built
    from the checkpoint's options (its ``options``, ``class_means`` …). No data is read, no warm start is loaded."""
    from distill3d.engine.checkpoint import load_weights
    from distill3d.engine.config import validate_section

    config = state.get("config", {})
    if config.get("method") != "skd_wm3d" or "model" not in state:
        raise Distill3dError(f"not an skd_wm3d checkpoint (method {config.get('method')!r})")
    options = validate_section(Options, config.get("options", {}), "options")
    task = SKDWM3DTask(options, int(config.get("seed", 0)))
    model = load_weights(task.build_model(), state["model"], "skd_wm3d checkpoint")
    return model.mdn.eval(), task


# ----------------------------------------------------------------------------------------------------------
# Images and cameras
# ----------------------------------------------------------------------------------------------------------


def read_input_image(path: str | Path, image_size: tuple[int, int]) -> tuple[Image.Image, torch.Tensor]:
    """An image file → (the original RGB picture, its (3, H, W) float tensor in [0, 1] at ``image_size`` (H, W)),
    resized like the KITTI reader does (anti-aliased bilinear, half-pixel centres)."""
    path = Path(path)
    try:
        with Image.open(path) as handle:
            picture = handle.convert("RGB")
    except FileNotFoundError:
        raise DataFormatError(path, "image not found") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataFormatError(path, f"not a readable image ({err})") from None
    pixels = torch.from_numpy(np.asarray(picture, dtype=np.uint8).copy()).permute(2, 0, 1)
    resized = F.interpolate(pixels[None].float() / 255.0, size=tuple(image_size), mode="bilinear",
                            align_corners=False, antialias=True)[0].clamp_(0.0, 1.0)
    return picture, resized


def kitti_calib_for(image_path: str | Path) -> Path | None:
    """KITTI's calibration of an image in the object layout: ``…/image_2/<id>.<ext>`` → ``…/calib/<id>.txt`` when
    that file exists, else None."""
    path = Path(image_path)
    if path.parent.name != "image_2":
        return None
    calib = path.parent.parent / "calib" / f"{path.stem}.txt"
    return calib if calib.is_file() else None


def input_projection(P2: np.ndarray | torch.Tensor, original_size: tuple[int, int],
                     image_size: tuple[int, int]) -> torch.Tensor:
    """``P2 = K·[I | t]`` (3, 4) of the original image (H₀, W₀) → (3, 4) float64 projection of the network input
    (H, W): ``K' = resize_intrinsics(K)`` (half-pixel convention), ``P' = K'·[I | t]`` (as the KITTI reader)."""
    P2 = torch.as_tensor(np.asarray(P2, dtype=np.float64))
    K = resize_intrinsics(P2[:, :3], image_size[1] / original_size[1], image_size[0] / original_size[0])
    return torch.cat([K, K @ torch.linalg.solve(P2[:, :3], P2[:, 3:])], dim=1)


def _camera_of(image_path: Path, original_size: tuple[int, int],
               image_size: tuple[int, int]) -> tuple[torch.Tensor, str]:
    """(P2 of the network input (3, 4) float64, a phrase saying where it came from)."""
    calib = kitti_calib_for(image_path)
    if calib is not None:
        return input_projection(read_calib_file(calib).P2, original_size, image_size), f"P2 of {calib}"
    return (torch.from_numpy(image_projection(tuple(image_size))),
            "assumed road-world camera (KITTI P2 of a 1242×375 frame; no calib/<id>.txt beside image_2/)")


# ----------------------------------------------------------------------------------------------------------
# Detection and drawing
# ----------------------------------------------------------------------------------------------------------


@torch.no_grad()
def detect(mdn: Mono3DNet, task: SKDWM3DTask, images: torch.Tensor,
           P2_image: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """MDN detections of images (B, 3, H, W) in [0, 1] seen by cameras ``P2_image`` (B, 3, 4) of the input:
    ``decode_detections`` with the run's ``top_k`` and ``score_threshold``; boxes3d in metres (label frame)."""
    o = task.options
    images = images.to(next(mdn.parameters()).device)
    outputs = {name: value.float() for name, value in mdn(normalise(images)).items()}
    return decode_detections(outputs, P2_image.to(images.device, torch.float32), task.class_means.to(images.device),
                             top_k=o.top_k, stride=mdn.output_stride, score_threshold=o.score_threshold,
                             depth_focal=task.depth_focal)


def _draw_boxes_on_image(picture: Image.Image, boxes3d: torch.Tensor, classes: torch.Tensor, labels: list[str],
                         P2_image: torch.Tensor, image_size: tuple[int, int]) -> Image.Image:
    """Wireframes of boxes (N, 7) projected with the input camera, drawn on ``picture`` (any size: input pixels
    map to it with the half-pixel convention)."""
    draw = ImageDraw.Draw(picture)
    if len(boxes3d) == 0:
        return picture
    corners, _ = project_box3d_to_image(boxes3d.double(), P2_image.double())  # (N, 8, 2) input px, NaN behind
    scale = corners.new_tensor([picture.width / image_size[1], picture.height / image_size[0]])
    corners = ((corners + 0.5) * scale - 0.5).numpy()
    width = max(1, round(picture.height / 200))
    for box_corners, class_index, label in zip(corners, classes.tolist(), labels, strict=True):
        colour = CLASS_COLORS[class_index % len(CLASS_COLORS)]
        for i, j in BOX3D_EDGES:
            if np.isfinite(box_corners[[i, j]]).all():
                draw.line([*box_corners[i], *box_corners[j]], fill=colour, width=width)
        visible = box_corners[np.isfinite(box_corners).all(axis=1)]
        if len(visible):
            draw.text((float(visible[:, 0].min()), float(visible[:, 1].min()) - 11), label, fill=colour)
    return picture


def _bird_eye_view(side: int, boxes3d: torch.Tensor, classes: torch.Tensor, labels: list[str],
                   P2_image: torch.Tensor, image_size: tuple[int, int]) -> Image.Image:
    """Top-down view (side × side px): x right (−30 … 30 m), depth z up (0 … 60 m), the camera at the bottom
    centre; a 10 m grid, the camera's field of view, each box's footprint as a rotated rectangle with its front
    edge (the +l/2 side, corners 0-1) thicker."""
    panel = Image.new("RGB", (side, side), _BACKGROUND)
    draw = ImageDraw.Draw(panel)
    pixels_per_m = side / BEV_DEPTH_RANGE_M

    def to_pixels(x: np.ndarray, z: np.ndarray) -> np.ndarray:
        return np.stack([(x + BEV_DEPTH_RANGE_M / 2) * pixels_per_m, side - z * pixels_per_m], axis=-1)

    for metres in np.arange(_BEV_GRID_M, BEV_DEPTH_RANGE_M, _BEV_GRID_M):
        (u0, v), (u1, _) = to_pixels(np.array([-BEV_DEPTH_RANGE_M, BEV_DEPTH_RANGE_M]), np.array([metres] * 2))
        draw.line([u0, v, u1, v], fill=_GRID)
        draw.text((3, v - 11), f"{metres:.0f} m", fill=_GRID)
        u, _ = to_pixels(np.array(metres - BEV_DEPTH_RANGE_M / 2), np.array(0.0))
        draw.line([u, 0, u, side], fill=_GRID)
    K = P2_image[:, :3].double()
    edges_u = torch.tensor([-0.5, image_size[1] - 0.5], dtype=K.dtype)
    slopes = ((edges_u - K[0, 2]) / K[0, 0]).numpy()  # x / z of the rays through the image's left and right edge
    ego = to_pixels(np.array(0.0), np.array(0.0))
    for end in to_pixels(slopes * BEV_DEPTH_RANGE_M, np.full(2, BEV_DEPTH_RANGE_M)):
        draw.line([*ego, *end], fill=(120, 120, 60))
    draw.polygon([(ego[0], ego[1] - 8), (ego[0] - 5, ego[1]), (ego[0] + 5, ego[1])], fill=_TEXT)
    if len(boxes3d):
        footprints = box3d_corners(boxes3d.double())[:, :4].numpy()  # (N, 4, 3) bottom face
        outlines = to_pixels(footprints[..., 0], footprints[..., 2])  # (N, 4, 2)
        for outline, class_index, label in zip(outlines, classes.tolist(), labels, strict=True):
            colour = CLASS_COLORS[class_index % len(CLASS_COLORS)]
            draw.polygon([tuple(point) for point in outline], outline=colour)
            draw.line([*outline[0], *outline[1]], fill=colour, width=3)
            draw.text((float(outline[:, 0].max()) + 2, float(outline[:, 1].min())), label.split(" ")[0], fill=colour)
    return panel


def render_detections(picture: Image.Image, found: dict[str, torch.Tensor], class_names: Sequence[str],
                      P2_image: torch.Tensor, image_size: tuple[int, int]) -> Image.Image:
    """One PNG-ready picture: the image with the detections' 3D wireframes (colour per class: Car red, Pedestrian
    green, Cyclist blue) and, to its right, their bird's-eye view. ``found``: one image's ``decode_detections``
    dict; ``P2_image``: the camera of the network input (H, W) = ``image_size``."""
    scale = max(1.0, _MIN_PANEL_HEIGHT / picture.height)
    shown = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.BILINEAR)
    boxes3d, classes = found["boxes3d"].detach().cpu(), found["class"].detach().cpu()
    labels = [f"{class_names[c]} {s:.2f}" for c, s in zip(classes.tolist(), found["score"].tolist(), strict=True)]
    shown = _draw_boxes_on_image(shown, boxes3d, classes, labels, P2_image.cpu(), image_size)
    bev = _bird_eye_view(shown.height, boxes3d, classes, labels, P2_image.cpu(), image_size)
    canvas = Image.new("RGB", (shown.width + 4 + bev.width, shown.height), _BACKGROUND)
    canvas.paste(shown, (0, 0))
    canvas.paste(bev, (shown.width + 4, 0))
    return canvas


def predict(state: dict[str, Any], image_paths: Sequence[str | Path], out_dir: str | Path) -> list[str]:
    """``distill3d predict`` for an skd_wm3d checkpoint: the MDN's 3D detections in each image.

    Writes ``<out_dir>/<stem>_3d.png`` per image (the image with the projected 3D boxes, and the bird's-eye view;
    a repeated stem gets ``_2``, ``_3`` …) and returns one line per image: the number of detections scoring at least
    :data:`DISPLAY_SCORE_THRESHOLD` (at most ``options.top_k``), each one's class, score and depth z (m), how many
    weaker ones are not shown, and the camera used (module docstring)."""
    mdn, task = load_mdn(state)
    image_size = tuple(task.options.image_size)
    out_dir = Path(out_dir)
    lines, used = [], set()
    for raw in image_paths:
        path = Path(raw)
        picture, image = read_input_image(path, image_size)
        P2_image, camera = _camera_of(path, (picture.height, picture.width), image_size)
        everything = detect(mdn, task, image[None], P2_image[None])[0]
        shown = everything["score"] >= DISPLAY_SCORE_THRESHOLD
        found = {key: value[shown] for key, value in everything.items()}
        hidden = int((~shown).sum())
        name, copy = f"{path.stem}_3d.png", 1
        while name in used:
            copy += 1
            name = f"{path.stem}_{copy}_3d.png"
        used.add(name)
        written = save_image(render_detections(picture, found, task.options.classes, P2_image, image_size),
                             out_dir / name)
        listed = ", ".join(f"{task.options.classes[c]} {s:.2f} z={z:.1f} m" for c, s, z in
                           zip(found["class"].tolist(), found["score"].tolist(), found["boxes3d"][:, 2].tolist(),
                               strict=True))
        count = len(found["score"])
        lines.append(f"{path}: {count} detection{'' if count == 1 else 's'} with score ≥ {DISPLAY_SCORE_THRESHOLD}"
                     + (f" [{listed}]" if listed else "") + (f" ({hidden} weaker not shown)" if hidden else "")
                     + f"; camera: {camera} → {written}")
    return lines


# ----------------------------------------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------------------------------------


class ExportableMDN(nn.Module):
    """The deployable MDN: images (B, 3, H, W) RGB in [0, 1] → tuple of the raw head maps (B, C_k, H/4, W/4) in
    the order :data:`EXPORT_OUTPUT_NAMES` (the ImageNet normalisation of training is applied inside)."""

    def __init__(self, mdn: Mono3DNet) -> None:
        super().__init__()
        self.mdn = mdn

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        maps = self.mdn(normalise(images))
        return tuple(maps[name] for name in EXPORT_OUTPUT_NAMES)


def exported_outputs_to_dict(outputs: Sequence[torch.Tensor | np.ndarray]) -> dict[str, torch.Tensor]:
    """The exported model's outputs (the TorchScript tuple or onnxruntime's list of arrays) → the maps dict that
    :func:`~distill3d.geometry.mono3d.decode_detections` takes (float32 tensors), e.g.::

        maps = exported_outputs_to_dict(session.run(None, {"images": images}))
        found = decode_detections(maps, input_projection(P2, (H0, W0), (H, W))[None], class_means, top_k=50)
    """
    if len(outputs) != len(EXPORT_OUTPUT_NAMES):
        raise Distill3dError(f"expected the {len(EXPORT_OUTPUT_NAMES)} exported outputs "
                             f"({', '.join(EXPORT_OUTPUT_NAMES)}), got {len(outputs)}")
    return {name: torch.as_tensor(value).float() for name, value in zip(EXPORT_OUTPUT_NAMES, outputs, strict=True)}


def export_metadata(task: SKDWM3DTask, stride: int = 4) -> dict[str, Any]:
    """What decoding an exported MDN needs, stored in the exported file (:func:`read_export_metadata`)."""
    o = task.options
    return {"model": "distill3d skd_wm3d MDN", "input": "images (B, 3, H, W) RGB in [0, 1] (normalised inside)",
            "image_size": list(o.image_size), "outputs": list(EXPORT_OUTPUT_NAMES), "stride": stride,
            "classes": list(o.classes), "class_means_hwl_m": task.class_means.cpu().tolist(),
            "num_bins": o.num_bins, "top_k": o.top_k, "score_threshold": o.score_threshold,
            "depth_focal": task.depth_focal,
            "normalisation": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
            "decoding": "distill3d.geometry.mono3d.decode_detections(maps, P2 of the input (B, 3, 4), class_means, "
                        "depth_focal=depth_focal); "
                        "camera: KITTI P2 rescaled to the input (distill3d.methods.skd_wm3d.deploy.input_projection)"}


def read_export_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata dict (:func:`export_metadata`) stored in a TorchScript (``.pt``) or ONNX (``.onnx``) export."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        properties = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        if METADATA_FILE not in properties:
            raise DataFormatError(path, "no distill3d metadata in this ONNX file")
        return json.loads(properties[METADATA_FILE])
    extra = {METADATA_FILE: ""}
    torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    if not extra[METADATA_FILE]:
        raise DataFormatError(path, "no distill3d metadata in this TorchScript file")
    return json.loads(extra[METADATA_FILE])


def export(state: dict[str, Any], out: str | Path, export_format: str) -> Path:
    """Write the MDN as TorchScript (traced) or ONNX: input ``images`` (B, 3, H, W) RGB in [0, 1] at the run's
    ``options.image_size`` (dynamic batch), outputs the raw head maps named and ordered as
    :data:`EXPORT_OUTPUT_NAMES`. Decoding needs the camera and stays in Python (:func:`exported_outputs_to_dict`,
    then ``decode_detections``); the classes, class-mean sizes and stride are stored in the file."""
    from distill3d.files import atomic_write_bytes

    mdn, task = load_mdn(state)
    module = ExportableMDN(mdn).eval()
    example = torch.rand(2, 3, *task.options.image_size)
    metadata = json.dumps(export_metadata(task, mdn.output_stride))
    buffer = io.BytesIO()
    if export_format == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(module, example)
        torch.jit.save(traced, buffer, _extra_files={METADATA_FILE: metadata})
        data = buffer.getvalue()
    elif export_format == "onnx":
        try:
            import onnx
        except ImportError:
            raise Distill3dError("ONNX export needs the 'onnx' package: pip install 'distill3d[export]'") from None
        names = list(EXPORT_OUTPUT_NAMES)
        torch.onnx.export(module, (example,), buffer, input_names=["images"], output_names=names,
                          dynamic_axes={name: {0: "batch"} for name in ["images", *names]}, dynamo=False)
        model = onnx.load_from_string(buffer.getvalue())
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_FILE, metadata
        data = model.SerializeToString()
    else:
        raise Distill3dError(f"unknown export format '{export_format}' (torchscript or onnx)")
    atomic_write_bytes(out, data)
    return Path(out)
