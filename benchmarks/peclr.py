"""PeCLR on the hands world (``standard`` preset): supervised only vs SimCLR vs PeCLR pre-training, two label
budgets, several seeds.

(a) supervised only from scratch, (b) SimCLR pre-training + fine-tuning, (c) PeCLR pre-training + fine-tuning.
Every fine-tuning run gets the same number of optimisation steps whatever the label budget or initialisation;
(b) and (c) get the same pre-training budget. Metrics on the test split (FreiHAND protocol: K and the reference
bone given; root depth fitted to all bones): PA-EPE and EPE (mm), AUC 0-50 mm aligned and unaligned, 2D error;
PCK curves in a PNG.  The fine-tuning head is the integral heat-map 2.5D head (``options.head: heatmap``).

Run: ``python -m benchmarks.peclr --seeds 0 1 2 --out benchmarks/results`` (≤ 45 min on 2 idle CPU cores;
writes ``peclr.md``, ``peclr.json`` and ``peclr_pck.png``) or ``python -m benchmarks.peclr --quick`` (≈ 2 min,
writes ``peclr_quick.*``; a smoke test, not a result).  JSON arms ``<objective>@<label percent>``
(``supervised@10``, ``simclr@10``, ``peclr@10``, ``supervised@100``, …), metrics ``pa_epe_mm``, ``epe_mm``,
``pa_auc``, ``err_2d_px``.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from benchmarks.common import RESULTS, write_report, write_results_json
from distill3d.cli.demos import train_recipe
from distill3d.methods.peclr import evaluate_hand_pose, scaled_learning_rate


@dataclass(frozen=True)
class Preset:
    image_size: int
    width: int
    unlabelled: int
    pretrain_epochs: int
    pretrain_batch: int
    labelled: int
    fractions: tuple[float, ...]
    val: int
    test: int
    finetune_steps: int
    finetune_batch: int
    seeds: int


FULL = Preset(image_size=64, width=32, unlabelled=10_000, pretrain_epochs=3, pretrain_batch=128, labelled=2_000,
              fractions=(0.1, 1.0), val=300, test=1_000, finetune_steps=300, finetune_batch=64, seeds=3)
QUICK = Preset(image_size=64, width=16, unlabelled=768, pretrain_epochs=1, pretrain_batch=128, labelled=256,
               fractions=(0.25, 1.0), val=64, test=200, finetune_steps=12, finetune_batch=32, seeds=2)
METHODS = ("supervised only", "SimCLR + fine-tune", "PeCLR + fine-tune")
ARM_NAMES = {"supervised only": "supervised", "SimCLR + fine-tune": "simclr", "PeCLR + fine-tune": "peclr"}


WARM_START: list[str] = []
"""Extra overrides of every run (``--warm-start`` adds ``options.pretrained_backbone=builtin``)."""


def common_overrides(preset: Preset, seed: int, threads: int) -> list[str]:
    return [*WARM_START, f"seed={seed}", f"options.image_size={preset.image_size}",
            f"options.backbone_width={preset.width}", f"train.threads={threads}", "options.data_seed=0",
            "options.difficulty=standard"]


def pretrain(objective: str, preset: Preset, seed: int, threads: int, runs: Path) -> Path:
    lr = scaled_learning_rate(1e-4, preset.pretrain_batch)
    overrides = [*common_overrides(preset, seed, threads), f"options.unlabelled_size={preset.unlabelled}",
                 f"train.epochs={preset.pretrain_epochs}", f"train.batch_size={preset.pretrain_batch}",
                 f"train.optimizer.lr={lr}", f"train.schedule.warmup_epochs={min(1, preset.pretrain_epochs - 1)}"]
    run_dir, _, _ = train_recipe(f"{objective}_pretrain", overrides, runs, f"{objective}-pretrain-s{seed}")
    return run_dir


def finetune(preset: Preset, fraction: float, seed: int, threads: int, runs: Path, checkpoint: Path | None,
             name: str) -> dict[str, object]:
    n_train = max(preset.finetune_batch, round(fraction * preset.labelled))
    steps_per_epoch = n_train // preset.finetune_batch
    epochs = math.ceil(preset.finetune_steps / steps_per_epoch)
    overrides = [*common_overrides(preset, seed, threads), f"options.labelled_size={preset.labelled}",
                 f"options.labelled_fraction={n_train / preset.labelled}", f"options.val_size={preset.val}",
                 f"options.test_size={preset.test}", f"train.epochs={epochs}",
                 f"train.batch_size={preset.finetune_batch}", f"train.eval_every={epochs}", "train.monitor=null",
                 f"train.schedule.warmup_epochs={0.05 * epochs}"]
    if checkpoint is not None:
        overrides.append(f"options.pretrained_checkpoint={checkpoint}")
    _, task, model = train_recipe("peclr_finetune", overrides, runs, name)
    loader = DataLoader(task.test_sets()["test"], batch_size=256, shuffle=False)
    result, uv_px = evaluate_hand_pose(model, loader, "bones")
    return {"pa_epe_mm": 1000 * result.pa_epe_mean, "epe_mm": 1000 * result.epe_mean, "pa_auc": result.pa_auc,
            "auc": result.auc, "uv_px": uv_px, "pck_aligned": result.aligned.pck_curve.numpy(),
            "pck_unaligned": result.unaligned.pck_curve.numpy(), "thresholds": result.aligned.thresholds.numpy(),
            "steps": epochs * steps_per_epoch, "n_train": n_train}


def mean_std(values: list[float], digits: int) -> str:
    array = np.asarray(values)
    return f"{array.mean():.{digits}f} ± {array.std(ddof=1) if len(array) > 1 else 0.0:.{digits}f}"


def plot_pck(results: dict, preset: Preset, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, len(preset.fractions), figsize=(5 * len(preset.fractions), 8), squeeze=False)
    for column, fraction in enumerate(preset.fractions):
        for row, (key, label) in enumerate((("pck_aligned", "aligned (PA)"), ("pck_unaligned", "unaligned"))):
            axis = axes[row][column]
            for method in METHODS:
                runs = results[(fraction, method)]
                curves = np.stack([r[key] for r in runs])
                thresholds_mm = 1000 * runs[0]["thresholds"]
                axis.plot(thresholds_mm, curves.mean(0), label=method)
                axis.fill_between(thresholds_mm, curves.min(0), curves.max(0), alpha=0.15)
            axis.set(title=f"{label}, {round(100 * fraction)} % labels", xlabel="threshold (mm)", ylabel="3D PCK",
                     ylim=(0, 1))
            axis.grid(alpha=0.3)
            axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


FREIHAND_RECIPE = """## Recipe for real FreiHAND

Download FreiHAND_pub_v2 (and the evaluation annotations if you have them) and point `options.freihand_root` at it.
Pre-train on all 4·32,560 training images (no labels used; the crops are already hand-centred), then fine-tune:

```
distill3d train peclr_pretrain options.dataset=freihand options.freihand_root=/data/FreiHAND_pub_v2 \\
    options.image_size=128 options.backbone=resnet50 options.backbone_width=64 train.batch_size=128 \\
    train.optimizer.lr=1.13e-3 train.epochs=100 train.schedule.warmup_epochs=10
distill3d train peclr_finetune options.dataset=freihand options.freihand_root=/data/FreiHAND_pub_v2 \\
    options.image_size=128 options.backbone=resnet50 options.backbone_width=64 \\
    options.pretrained_checkpoint=runs/<pre-training run> train.epochs=100
```

Official protocol (METHODS.md §2.4): ResNet-50/152 at 128 px, batch 128 with 16× gradient accumulation (negatives
from the 128-sample micro-batch only), Adam + LARS, lr 1e-4·√2048, 10 warm-up epochs then cosine, fp16, plus
YouTube3DHands as extra unlabelled data, and (optionally) ImageNet initialisation (`options.imagenet_checkpoint`
takes a torchvision ResNet state dict). The fine-tuning protocol was never released; ours is L1(uv) + 5·L1(z_rel)
(+ 0.5·heat-map CE with the default heat-map head; `options.head=linear` gives the paper-style linear head), Adam.
`distill3d.data.freihand.write_freihand_predictions` writes `pred.json` for the Codalab server
(joints only; the mesh entries are zeros).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (~2 min): checks that everything runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds to run (default 0 1 2; quick: 0 1), e.g. --seeds 1 to rerun one seed")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the report, JSON and PNG")
    parser.add_argument("--warm-start", action="store_true",
                        help="every arm's encoder starts from the shipped shapes-classification weights")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs-dir", type=Path, default=None, help="keep the run folders here (default: temporary)")
    args = parser.parse_args()
    preset = QUICK if args.quick else FULL
    if args.warm_start:
        WARM_START.append("options.pretrained_backbone=builtin")
    seeds = args.seeds if args.seeds is not None else list(range(preset.seeds))
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    results: dict[tuple[float, str], list[dict]] = {(f, m): [] for f in preset.fractions for m in METHODS}
    timings: dict[str, float] = {"pretrain": 0.0, "finetune": 0.0}
    with tempfile.TemporaryDirectory(prefix="peclr-bench-") as scratch:
        runs = args.runs_dir or Path(scratch)
        for seed in seeds:
            tick = time.perf_counter()
            checkpoints = {"SimCLR + fine-tune": pretrain("simclr", preset, seed, args.threads, runs),
                           "PeCLR + fine-tune": pretrain("peclr", preset, seed, args.threads, runs),
                           "supervised only": None}
            timings["pretrain"] += time.perf_counter() - tick
            for fraction in preset.fractions:
                for method in METHODS:
                    tick = time.perf_counter()
                    name = f"ft-{method.split()[0].lower()}-f{fraction}-s{seed}"
                    outcome = finetune(preset, fraction, seed, args.threads, runs, checkpoints[method], name)
                    timings["finetune"] += time.perf_counter() - tick
                    results[(fraction, method)].append(outcome)
                    print(f"seed {seed} | {round(100 * fraction):3d} % | {method:20s} | PA-EPE "
                          f"{outcome['pa_epe_mm']:.2f} mm | EPE {outcome['epe_mm']:.2f} mm | "
                          f"{time.perf_counter() - started:.0f} s", flush=True)
    name = "peclr_quick" if args.quick else "peclr"
    out_dir = Path(args.out)
    plot_path = out_dir / f"{name}_pck.png"
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_pck(results, preset, plot_path)
    total = time.perf_counter() - started
    title = "# PeCLR vs SimCLR vs supervised only, hands world" + (" (QUICK: a smoke test)" if args.quick else "")
    lines = [title,
             "",
             f"ResNet-18 (first-stage width {preset.width}) at {preset.image_size} px, bf16 autocast. Pre-training: "
             f"{preset.unlabelled} unlabelled images × {preset.pretrain_epochs} epochs, batch {preset.pretrain_batch}, "
             f"Adam + LARS, lr 1e-4·√batch, τ = 0.5 (the same budget for SimCLR and PeCLR). Fine-tuning: "
             f"{preset.finetune_steps}+ steps of batch {preset.finetune_batch} for every run (full fine-tuning, "
             f"integral heat-map head, L1(uv) + 5·L1(z_rel) + 0.5·heat-map CE; root depth fitted to all bones). "
             f"World preset `standard`. Test split: {preset.test} images; {len(seeds)} seeds (pre-training and "
             "fine-tuning both re-seeded; the data are the same for all seeds). Mean ± sample std over seeds."
             + (" Every encoder starts from the shipped shapes-classification weights (`--warm-start`)."
                if args.warm_start else ""),
             ""]
    for fraction in preset.fractions:
        n_train = results[(fraction, METHODS[0])][0]["n_train"]
        lines += [f"## {round(100 * fraction)} % of the labelled split ({n_train} images)", "",
                  "| method | PA-EPE (mm) | EPE (mm) | AUC aligned | AUC unaligned | 2D error (px) | per-seed PA-EPE |",
                  "|---|---|---|---|---|---|---|"]
        for method in METHODS:
            runs = results[(fraction, method)]
            per_seed = ", ".join(f"{r['pa_epe_mm']:.2f}" for r in runs)
            lines.append(f"| {method} | {mean_std([r['pa_epe_mm'] for r in runs], 2)} | "
                         f"{mean_std([r['epe_mm'] for r in runs], 1)} | {mean_std([r['pa_auc'] for r in runs], 3)} | "
                         f"{mean_std([r['auc'] for r in runs], 3)} | {mean_std([r['uv_px'] for r in runs], 2)} | "
                         f"{per_seed} |")
        lines.append("")
    lines += [f"PCK curves (mean over seeds, band = min-max): `{plot_path.name}` beside this report.", "",
              f"Wall time {total / 60:.1f} min (pre-training {timings['pretrain'] / 60:.1f} min, fine-tuning and "
              f"evaluation {timings['finetune'] / 60:.1f} min, the rest rendering and caching the world).", "",
              FREIHAND_RECIPE]
    print(f"written: {write_report(name, chr(10).join(lines), out_dir)}")
    arms = {f"{ARM_NAMES[method]}@{round(100 * fraction)}": {
        "pa_epe_mm": [r["pa_epe_mm"] for r in results[(fraction, method)]],
        "epe_mm": [r["epe_mm"] for r in results[(fraction, method)]],
        "pa_auc": [r["pa_auc"] for r in results[(fraction, method)]],
        "err_2d_px": [r["uv_px"] for r in results[(fraction, method)]]}
        for fraction in preset.fractions for method in METHODS}
    print(f"written: {write_results_json(name, arms, out_dir, extra={'seeds': seeds, 'minutes': total / 60})}")


if __name__ == "__main__":
    main()
