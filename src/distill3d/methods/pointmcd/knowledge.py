"""The teacher's knowledge, exported once per (teacher, training data) and cached on disk.

As in the paper (METHODS.md §4.1: "teacher knowledge is exported offline once for all training shapes and the
teacher is not used afterwards"), the student never runs the teacher: before its first step the frozen teacher
(read with ``weights_only``, its zip checksums verified) encodes the rig renders of every training shape into
per-view descriptors t (N_shapes, V, D), and the visibility matrices M (N_shapes, N_points, V) of the same shapes
in the same views are computed (vectorised over a chunk of shapes, :func:`~distill3d.methods.pointmcd.data.
rig_visibility`). Both go into one file ``pointmcd-knowledge-<key>.pt`` of the cache folder, ``<key>`` being a
hash of everything that determines them:

* the SHA-256 of the teacher checkpoint file (another teacher, or the same run trained further → another file);
* the description of the training split (dataset, split, size, seed, categories, number of points) and the
  SHA-256 of its point clouds (a changed dataset → another file, even when its description is the same);
* the rig (read from the teacher's options), the visibility settings and :data:`KNOWLEDGE_VERSION`.

The file also records that description and the SHA-256 of its tensors; a file that cannot be read, describes
other inputs, has the wrong shapes or fails its checksum is reported in one line and computed again (and
rewritten atomically). Descriptors are stored as float16 (served as float32), visibility as bool.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from distill3d.engine.checkpoint import load_checkpoint, resolve_checkpoint
from distill3d.errors import Distill3dError
from distill3d.files import atomic_write_bytes
from distill3d.methods.pointmcd.data import ViewRig, rig_of, rig_visibility
from distill3d.methods.pointmcd.options import Options
from distill3d.methods.pointmcd.teacher import MultiViewTeacher, build_teacher

KNOWLEDGE_VERSION = 1
METHOD_NAME = "pointmcd"
#: A render function of the student's training split: shape indices (B,) and the rig → views (B, V, 3, S, S) in
#: [0, 1] and the rendered surface depth (B, V, S, S) (None for point renders: visibility by point z-buffer).
RenderViews = Callable[[torch.Tensor, ViewRig], tuple[torch.Tensor, torch.Tensor | None]]


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tensor_sha256(tensors: Iterable[torch.Tensor]) -> str:
    """SHA-256 of tensors' shapes, dtypes and bytes (CPU, contiguous)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{tuple(tensor.shape)}|{flat.dtype}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass
class LoadedTeacher:
    """A frozen teacher (eval mode, no gradients), its run options, checkpoint file and that file's SHA-256."""

    model: MultiViewTeacher
    options: Options
    checkpoint: Path
    sha256: str


def load_teacher(run_or_checkpoint: str | Path) -> LoadedTeacher:
    """The stage-1 teacher of a pointmcd run folder (``best.pt``) or checkpoint file; one-line errors otherwise."""
    checkpoint = resolve_checkpoint(run_or_checkpoint)
    state = load_checkpoint(checkpoint)  # weights_only, zip checksums verified
    config = state.get("config")
    options = config.get("options") if isinstance(config, dict) else None
    if not isinstance(options, dict) or config.get("method") != METHOD_NAME or options.get("stage") != "teacher":
        raise Distill3dError(f"{checkpoint}: not a pointmcd teacher checkpoint (method pointmcd, stage teacher)")
    try:
        teacher_options = Options.model_validate(options)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "options"
        raise Distill3dError(f"{checkpoint}: the teacher's options.{key} is invalid ({first['msg']})") from None
    weights = state.get("model")
    if not isinstance(weights, dict) or "classifier.weight" not in weights:
        raise Distill3dError(f"{checkpoint}: holds no teacher weights")
    model = build_teacher(teacher_options, int(weights["classifier.weight"].shape[0]))
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise Distill3dError(f"{checkpoint}: weights do not fit the teacher of its config ({first_line})") from None
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return LoadedTeacher(model, teacher_options, checkpoint, file_sha256(checkpoint))


@dataclass
class TeacherKnowledge:
    """Per-view teacher descriptors (N, V, D) float16 and visibility (N, P, V) bool of the training split, the
    cache file (None without disk cache), whether this call computed them (False: read from the cache), the
    cache key and the teacher checkpoint's SHA-256."""

    descriptors: torch.Tensor
    visibility: torch.Tensor
    path: Path | None
    computed: bool
    key: str
    teacher_sha256: str


def knowledge_description(teacher: LoadedTeacher, data_description: dict[str, Any], points: torch.Tensor,
                          visibility_tolerance: float, splat_radius: int) -> dict[str, Any]:
    """Everything that determines the knowledge (hashed into the cache key, recorded in the file)."""
    return {"version": KNOWLEDGE_VERSION, "teacher_sha256": teacher.sha256, "data": data_description,
            "points_sha256": tensor_sha256([points]), "rig": rig_of(teacher.options).description,
            "descriptor_dim": teacher.options.descriptor_dim,
            "visibility": {"tolerance": visibility_tolerance, "splat_radius": splat_radius}}


def _as_text(description: dict[str, Any]) -> str:
    return json.dumps(description, sort_keys=True, default=str)


def _read_cached(path: Path, description: str, expected: dict[str, tuple[int, ...]]
                 ) -> tuple[dict[str, torch.Tensor] | None, str]:
    """The cached tensors, or None and what is wrong with the file."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for damaged files
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        return None, f"unreadable knowledge cache ({first})"
    if not isinstance(payload, dict) or not {"description", "descriptors", "visibility", "content_sha256"} <= set(
            payload):
        return None, "not a pointmcd knowledge cache file"
    if payload["description"] != description:
        return None, "the cache file describes another teacher or dataset"
    for name, shape in expected.items():
        value = payload[name]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
            return None, f"{name} has shape {tuple(getattr(value, 'shape', ()))}, expected {shape}"
    if payload["visibility"].dtype != torch.bool or payload["descriptors"].dtype != torch.float16:
        return None, "unexpected tensor types"
    if tensor_sha256([payload["descriptors"], payload["visibility"]]) != payload["content_sha256"]:
        return None, "content checksum mismatch (corrupt file)"
    return {"descriptors": payload["descriptors"], "visibility": payload["visibility"]}, ""


@torch.no_grad()
def compute_knowledge(teacher: MultiViewTeacher, rig: ViewRig, points: torch.Tensor, render: RenderViews,
                      device: torch.device, visibility_tolerance: float, splat_radius: int, chunk_size: int = 32
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher descriptors (N, V, D) float16 and visibility (N, P, V) bool of the clouds ``points`` (N, P, 3),
    rendered ``chunk_size`` shapes at a time."""
    teacher = teacher.to(device).eval()
    descriptors, visibility = [], []
    for start in range(0, len(points), chunk_size):
        index = torch.arange(start, min(len(points), start + chunk_size))
        images, surface_depth = render(index, rig)
        descriptors.append(teacher.view_descriptors(images.to(device)).float().cpu().half())
        visibility.append(rig_visibility(points[index], rig, visibility_tolerance, surface_depth, splat_radius))
    out = torch.cat(descriptors), torch.cat(visibility)
    if not bool(torch.isfinite(out[0]).all()):
        raise Distill3dError("the teacher gives non-finite descriptors (or beyond float16) on the training split")
    return out


def prepare_knowledge(teacher_checkpoint: str | Path, data_description: dict[str, Any], points: torch.Tensor,
                      render: RenderViews, device: torch.device, cache_dir: Path | None,
                      visibility_tolerance: float, splat_radius: int, chunk_size: int = 32) -> TeacherKnowledge:
    """Read the knowledge of (teacher, training split) from the cache, or compute and cache it (module docstring).

    Args:
        teacher_checkpoint: the teacher run folder or checkpoint.
        data_description: what determines the training split (JSON-able).
        points: its clouds (N, P, 3), in dataset order (the order of the knowledge rows).
        render: renders shapes of the split from the teacher's rig (:data:`RenderViews`).
        device: where the teacher runs.
        cache_dir: folder of the cache file; None = compute without caching.
    """
    teacher = load_teacher(teacher_checkpoint)
    rig = rig_of(teacher.options)
    description = _as_text(knowledge_description(teacher, data_description, points, visibility_tolerance,
                                                 splat_radius))
    key = hashlib.sha256(description.encode()).hexdigest()[:16]
    path = None if cache_dir is None else Path(cache_dir) / f"pointmcd-knowledge-{key}.pt"
    expected = {"descriptors": (len(points), rig.views, teacher.options.descriptor_dim),
                "visibility": (len(points), points.shape[1], rig.views)}
    if path is not None and path.is_file():
        cached, problem = _read_cached(path, description, expected)
        if cached is not None:
            return TeacherKnowledge(cached["descriptors"], cached["visibility"], path, False, key, teacher.sha256)
        warnings.warn(f"{path}: {problem}; computing the teacher knowledge again", stacklevel=2)
    descriptors, visibility = compute_knowledge(teacher.model, rig, points, render, device, visibility_tolerance,
                                                splat_radius, chunk_size)
    if path is not None:
        buffer = io.BytesIO()
        torch.save({"description": description, "descriptors": descriptors, "visibility": visibility,
                    "content_sha256": tensor_sha256([descriptors, visibility])}, buffer)
        atomic_write_bytes(path, buffer.getvalue())
    return TeacherKnowledge(descriptors, visibility, path, True, key, teacher.sha256)
