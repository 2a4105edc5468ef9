"""The quick demo (pre-train → fine-tune → evaluate vs. supervised only) and single-image prediction."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from distill3d.data.worlds.hands import FINGERS, PARENTS
from distill3d.errors import Distill3dError
from distill3d.geometry.hand25d import hand25d_to_xyz, root_depth_from_bones
from distill3d.methods.peclr.task import (
    MEAN_BONE_UNITS,
    ROOT_DEPTH_RANGE,
    FinetuneTask,
    Options,
    build_task,
    evaluate_hand_pose,
    normalise_images,
)
from distill3d.viz import draw_hand_skeleton, save_image

__all__ = ["predict_hand", "run_demo", "train_run"]

DEFAULT_REFERENCE_BONE_M = 0.042
"""Reference bone (middle MCP → PIP) length assumed by :func:`predict_hand` when none is given (adult mean)."""


def _recipe(name: str) -> Path:
    return Path(__file__).resolve().parents[2] / "recipes" / f"{name}.yaml"


def train_run(recipe: str | Path, overrides: Sequence[str], out_dir: Path, name: str,
              progress: bool = False) -> tuple[Path, Any, torch.nn.Module]:
    """Train one peclr run through the engine's :class:`~distill3d.engine.trainer.Trainer`.

    ``recipe``: a YAML path or a built-in recipe name; ``overrides``: dotted ``key=value`` strings.
    Returns (run folder, task, trained model).
    """
    from distill3d.engine.config import config_to_yaml, load_run_config, validate_section
    from distill3d.engine.trainer import Trainer

    path = Path(recipe) if Path(recipe).suffix == ".yaml" else _recipe(str(recipe))
    config = load_run_config(path, [*overrides, f"name={name}", f"out_dir={out_dir}"])
    options = validate_section(Options, config.options, "options")
    task = build_task(options, config.seed)
    run_dir = config.out_dir / name
    trainer = Trainer(config.train, run_dir, seed=config.seed, config_yaml=config_to_yaml(config),
                      config_dump=config.model_dump(mode="json"), progress=progress)
    trainer.fit(task)
    from distill3d.engine.checkpoint import load_checkpoint, resolve_checkpoint

    model = task.build_model()
    model.load_state_dict(load_checkpoint(resolve_checkpoint(run_dir))["model"])
    model.eval()
    return run_dir, task, model


def run_demo(out_dir: Path, progress: bool = True) -> str:
    """``distill3d demo peclr``: brief PeCLR pre-training on unlabelled hands, fine-tuning on 500 labelled ones,
    and the supervised-only baseline with the same fine-tuning budget; returns a markdown comparison table of
    test-split metrics (about 2-3 minutes on 2 CPU cores)."""
    out_dir = Path(out_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    started = time.perf_counter()
    pretrain_dir, _, _ = train_run("demo_peclr_pretrain", [], out_dir, f"demo-peclr-pretrain-{stamp}", progress)
    rows = []
    for label, extra in (("supervised only", []),
                         ("PeCLR pre-train + fine-tune", [f"options.pretrained_checkpoint={pretrain_dir}"])):
        name = f"demo-peclr-finetune-{'peclr' if extra else 'supervised'}-{stamp}"
        run_dir, task, model = train_run("demo_peclr_finetune", extra, out_dir, name, progress)
        assert isinstance(task, FinetuneTask)
        test = task.test_sets()["test"]
        result, uv_px = evaluate_hand_pose(model, _batches(test))
        rows.append(f"| {label} | {1000 * result.pa_epe_mean:.2f} | {1000 * result.epe_mean:.2f} | "
                    f"{result.pa_auc:.3f} | {result.auc:.3f} | {uv_px:.2f} | `{run_dir}` |")
    minutes = (time.perf_counter() - started) / 60
    return ("## PeCLR demo: hands world, 500 labelled images, test split (500)\n\n"
            "| model | PA-EPE (mm) | EPE (mm) | AUC aligned | AUC unaligned | 2D error (px) | run |\n"
            "|---|---|---|---|---|---|---|\n" + "\n".join(rows) +
            f"\n\nPre-training: `{pretrain_dir}`. One seed and a tiny budget ({minutes:.1f} min): differences "
            "here are not significant; `python -m benchmarks.peclr` compares 3 seeds and two label budgets.\n")


def _batches(dataset: Any, batch_size: int = 128):
    from torch.utils.data import DataLoader

    return iter(DataLoader(dataset, batch_size=batch_size, shuffle=False))


def _load_finetuned(checkpoint: str | Path | dict[str, Any]) -> tuple[torch.nn.Module, Options]:
    """The fine-tuned model of a checkpoint path/run folder or of an already loaded checkpoint state."""
    from distill3d.engine.checkpoint import load_checkpoint, resolve_checkpoint
    from distill3d.engine.config import validate_section

    if isinstance(checkpoint, dict):
        path, state = "checkpoint", checkpoint
    else:
        path = resolve_checkpoint(checkpoint)
        state = load_checkpoint(path)
    config = state.get("config", {})
    if config.get("method") != "peclr" or config.get("options", {}).get("stage") != "finetune":
        raise Distill3dError(f"{path}: not a peclr fine-tuning checkpoint (method: peclr, stage: finetune)")
    head_weight = state["model"].get("head.weight")
    head = "linear" if head_weight is not None and head_weight.dim() == 2 else "heatmap"  # older runs: linear
    options = validate_section(Options, {**config["options"], "head": head, "pretrained_checkpoint": None,
                                         "imagenet_checkpoint": None, "pretrained_backbone": None}, "options")
    model = FinetuneTask(options, int(config.get("seed", 0))).build_model()
    model.load_state_dict(state["model"])
    return model.eval(), options


def _intrinsics_for(image_path: Path, width: int, height: int) -> tuple[np.ndarray, bool]:
    """K of ``image_path`` from ``<stem>_K.npy`` (FreiHAND demo layout ``N_img.jpg`` + ``N_K.npy``) or a default
    (focal 1.6·width px, centred principal point: FreiHAND's median camera). Returns (K, found)."""
    stem = image_path.stem.removesuffix("_img")
    for candidate in (image_path.with_name(f"{stem}_K.npy"), image_path.with_name(f"{image_path.stem}_K.npy")):
        if candidate.is_file():
            K = np.load(candidate).astype(np.float64)
            if K.shape != (3, 3):
                raise Distill3dError(f"{candidate}: expected a (3, 3) intrinsics matrix, got {K.shape}")
            return K, True
    focal = 1.6 * width
    return np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1]]), False


def predict_hand(checkpoint: str | Path | dict[str, Any], image_paths: Sequence[str | Path], out_dir: str | Path,
                 reference_bone_m: float = DEFAULT_REFERENCE_BONE_M) -> list[dict[str, Any]]:
    """``distill3d predict`` for a peclr fine-tuned checkpoint on hand-centred crops (like FreiHAND's 224×224).

    Draws the predicted 2D skeleton on each image (``<out_dir>/<stem>_skeleton.png``) and returns per image a
    dict: ``image``, ``png``, ``joints_uv`` (21, 2) px in the original image, ``joints_xyz`` (21, 3) metres
    (camera frame, from the 2.5D prediction with K from ``<stem>_K.npy`` when present, else a default, and
    the reference bone ``reference_bone_m``), ``K`` (3, 3) and ``assumed_K`` (bool).
    """
    model, options = _load_finetuned(checkpoint)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = options.image_size
    results = []
    for raw in image_paths:
        path = Path(raw)
        try:
            with Image.open(path) as opened:
                image = opened.convert("RGB")
        except (FileNotFoundError, OSError) as err:
            raise Distill3dError(f"{path}: cannot read the image ({err})") from None
        width, height = image.size
        pixels = np.asarray(image.resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0
        tensor = torch.from_numpy(pixels).permute(2, 0, 1)[None]
        with torch.no_grad():
            uv_small, z_rel = model(normalise_images(tensor))
        factor = np.array([width / size, height / size])
        uv = (uv_small[0].double().numpy() + 0.5) * factor - 0.5  # back to original pixels (centres at integers)
        K, found = _intrinsics_for(path, width, height)
        uv_t, K_t = torch.from_numpy(uv)[None], torch.from_numpy(K)[None]
        bone = torch.tensor([reference_bone_m], dtype=torch.float64)
        root = (root_depth_from_bones(uv_t, z_rel.double(), K_t, MEAN_BONE_UNITS, PARENTS, ROOT_DEPTH_RANGE)
                if options.root == "bones" else None)
        xyz = hand25d_to_xyz(uv_t, z_rel.double(), K_t, bone, root_depth=root,
                             root_depth_range=ROOT_DEPTH_RANGE)[0].numpy()
        png = out_dir / f"{path.stem}_skeleton.png"
        save_image(draw_hand_skeleton(image.copy(), uv, PARENTS, list(FINGERS.values())), png)
        results.append({"image": str(path), "png": str(png), "joints_uv": uv.tolist(), "joints_xyz": xyz.tolist(),
                        "K": K.tolist(), "assumed_K": not found})
    return results


def predict(state: dict[str, Any], image_paths: Sequence[str | Path], out_dir: str | Path) -> list[str]:
    """``distill3d predict``: one line per image with the 3D joints (mm, camera frame) and the drawn PNG."""
    lines = []
    for result in predict_hand(state, image_paths, out_dir):
        joints = np.round(np.asarray(result["joints_xyz"]) * 1000, 1).tolist()
        note = " (K assumed: no <stem>_K.npy beside the image)" if result["assumed_K"] else ""
        lines.append(f"{result['image']} → {result['png']}{note}\n  joints_xyz_mm: {joints}")
    return lines
