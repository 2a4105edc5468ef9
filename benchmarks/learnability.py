"""Are the worlds learnable? Supervised image-only models on fresh data, in a fixed CPU budget, several seeds.

* ``shapes``: the Pose CKD image-only student (ResNet-18, width 32, 64 px, viewpoint bins + offsets) trained by the
  engine on the seen categories of the shapes world (``standard`` preset) — a 64,000-image pool rendered once and
  shared by the seeds, so each image is seen only a few times — with the method's augmentation; the best epoch on
  the validation split is scored on the seen-category test split: Acc@π/6 (per-category mean), MedErr. Chance
  level: a random training label for every test image. The encoder starts from the shipped seen-category
  classification weights (``--shapes-warm-start builtin``, the default; their one-off training time, from
  ``benchmarks/results/pretrain_backbone.json``, is added to the budget) or from scratch (``none``).
* ``hands``: see :mod:`benchmarks.learnability_hands` (heat-map / soft-argmax 2.5D model on a large pool of renders; 2D
  error at 64 px, PA-EPE).

Targets (issue #8), each in ≤ 15 min of 2-core CPU: shapes ≥ 80 % Acc@π/6 on seen test images; hands 2D error
≤ 3 px and PA-EPE ≤ 12 mm. Run: ``python -m benchmarks.learnability [--arms shapes hands] [--seeds 0 1 2]
[--out DIR]``; writes ``learnability_<arm>.md`` per arm, ``learnability.json`` (arms of earlier runs that
this run did not measure are kept) and the learning curves.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import RESULTS, mean_std, write_report, write_results_json
from distill3d.cli.methods import load_trained
from distill3d.engine.config import TrainConfig
from distill3d.engine.logging import read_metrics
from distill3d.engine.trainer import Trainer
from distill3d.methods.pose_ckd import Options, build_task, viewpoint_chance_level

SHAPES_TARGET, HANDS_2D_TARGET, HANDS_PA_TARGET = 80.0, 3.0, 12.0


def shapes_options(train_size: int, warm_start: str | None = "builtin") -> Options:
    return Options(stage="student", task_weight=1.0, logit_weight=0.0, representation="none", difficulty="standard",
                   train_size=train_size, val_size=1200, test_size=1200, num_points=16, data_seed=0,
                   pretrained_backbone=warm_start)


def pretraining_minutes() -> float:
    """The recorded training time of the shipped encoder weights (``benchmarks.pretrain_backbone``)."""
    import json

    record = json.loads((RESULTS / "pretrain_backbone.json").read_text())
    return float(record["arms"]["resnet18_w32"]["train_minutes"]["mean"])


def run_shapes_arm(seed: int, epochs: int, train_size: int, warm_start: str | None, lr: float = 2e-3) -> dict:
    """One supervised run; returns test metrics, the validation curve and the wall times."""
    options = shapes_options(train_size, warm_start)
    task = build_task(options, seed)
    task.train_set(), task.val_set(), task.test_sets()  # render (or load) before the clock starts
    config = TrainConfig(epochs=epochs, batch_size=64, precision="bf16", channels_last=True,
                         optimizer={"name": "adamw", "lr": lr, "weight_decay": 5e-4},
                         schedule={"name": "cosine", "warmup_epochs": 0.5}, monitor="val/acc_pi6")
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir, seed=seed, progress=False,
                          config_dump={"method": "pose_ckd", "seed": seed, "options": options.model_dump(mode="json")})
        started = time.perf_counter()
        trainer.fit(task)
        minutes = (time.perf_counter() - started) / 60
        rows = read_metrics(Path(run_dir) / "metrics.csv")
        model = load_trained(Path(run_dir) / "best.pt").model
    test = trainer.evaluate(task, model, task.test_sets()["test_seen"])
    curve = [(step, value) for _, step, metric, value in rows if metric == "val/acc_pi6"]
    print(f"[shapes s{seed}] {minutes:.1f} min: seen test Acc@π/6 {test['acc_pi6']:.1f} %, "
          f"MedErr {test['med_err']:.1f}°", flush=True)
    warm = pretraining_minutes() if warm_start else 0.0
    return {"seen_acc_pi6": test["acc_pi6"], "seen_med_err": test["med_err"], "train_minutes": minutes,
            "budget_minutes": minutes + warm, "curve": curve}


def plot_shapes(runs: dict[int, dict], chance: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(5.5, 3.6))
    for seed, run in runs.items():
        steps, values = zip(*run["curve"], strict=True)
        axis.plot([s * 64 / 1000 for s in steps], values, marker="o", ms=3, label=f"seed {seed}")
    axis.axhline(SHAPES_TARGET, color="k", ls="--", lw=0.8, label="target")
    axis.axhline(chance, color="r", ls=":", lw=0.8, label="chance")
    axis.set_xlabel("training samples (thousands)")
    axis.set_ylabel("val Acc@π/6 (%), seen")
    axis.set_title("shapes world (standard)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", default=["shapes", "hands"], choices=["shapes", "hands"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--shapes-epochs", type=int, default=3)
    parser.add_argument("--shapes-train-size", type=int, default=64000)
    parser.add_argument("--shapes-warm-start", default="builtin", choices=["builtin", "none"])
    parser.add_argument("--hands-minutes", type=float, default=15.0)
    parser.add_argument("--hands-pool", type=int, default=128_000,
                        help="labelled hands samples rendered once and shared by the seeds (0: fresh renders from "
                             "a worker every step)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    arms: dict[str, dict[str, list[float]]] = {}
    sections = []
    if "shapes" in args.arms:
        warm = None if args.shapes_warm_start == "none" else args.shapes_warm_start
        chance = viewpoint_chance_level(build_task(shapes_options(args.shapes_train_size, warm), 0))["test_seen"]
        runs = {seed: run_shapes_arm(seed, args.shapes_epochs, args.shapes_train_size, warm) for seed in args.seeds}
        plot_shapes(runs, chance["acc_pi6"], args.out / "learnability_shapes.png")
        keys = ("seen_acc_pi6", "seen_med_err", "train_minutes", "budget_minutes")
        arms["shapes"] = {k: [r[k] for r in runs.values()] for k in keys}
        arms["shapes_chance"] = {"seen_acc_pi6": [chance["acc_pi6"]], "seen_med_err": [chance["med_err"]]}
        values = arms["shapes"]
        sections.append(f"""## Shapes: viewpoint from one 64 px image (seen categories)

| model | seen Acc@π/6 (%) ↑ | seen MedErr (°) ↓ | training (min) | budget incl. warm start (min) | per seed |
|---|---|---|---|---|---|
| ResNet-18 w32, {"warm start" if warm else "from scratch"}, {args.shapes_epochs} epochs of \
{args.shapes_train_size:,} | {mean_std(values["seen_acc_pi6"])} | {mean_std(values["seen_med_err"])} | \
{mean_std(values["train_minutes"])} | {mean_std(values["budget_minutes"])} | \
{", ".join(f"{v:.1f}" for v in values["seen_acc_pi6"])} |
| chance (a random training label) | {chance["acc_pi6"]:.1f} | {chance["med_err"]:.1f} | | | |

Target: ≥ {SHAPES_TARGET:.0f} % in ≤ 15 min. ![shapes learning curves](learnability_shapes.png)
""")
    if "hands" in args.arms:
        from benchmarks.learnability_hands import run_hands_arm

        results = [run_hands_arm(seed, args.hands_minutes, args.out, pool_size=args.hands_pool)
                   for seed in args.seeds]
        keys = ("err_2d_px", "pa_epe_mm", "epe_mm", "pa_auc", "train_minutes", "steps", "pool_render_minutes")
        arms["hands"] = {k: [r[k] for r in results] for k in keys}
        values = arms["hands"]
        data = (f"a {args.hands_pool:,}-sample pool, random roll ±10°" if args.hands_pool
                else "fresh samples")
        pool_note = (f" Preparing the pool took {max(values['pool_render_minutes']):.1f} min in this run (rendered "
                     "once, then loaded from the disk cache; shared by the seeds, as the shapes arm's pool, and not "
                     "part of the training budget)." if args.hands_pool else "")
        sections.append(f"""## Hands: 2D keypoints and 3D pose from one 64 px image (all labels)

| model | 2D error (px) ↓ | PA-EPE (mm) ↓ | EPE (mm) ↓ | PA-AUC ↑ | training (min) |
|---|---|---|---|---|---|
| heat-map 2.5D net, {data} | {mean_std(values["err_2d_px"], 2)} | {mean_std(values["pa_epe_mm"], 2)} | \
{mean_std(values["epe_mm"])} | {mean_std(values["pa_auc"], 3)} | {mean_std(values["train_minutes"])} |

Per seed: 2D error {", ".join(f"{v:.2f}" for v in values["err_2d_px"])} px; PA-EPE \
{", ".join(f"{v:.2f}" for v in values["pa_epe_mm"])} mm; {mean_std(values["steps"], 0)} steps of 64.{pool_note}

Targets: 2D error ≤ {HANDS_2D_TARGET:g} px and PA-EPE ≤ {HANDS_PA_TARGET:g} mm in ≤ 15 min. Curves:
{", ".join(f"`hands_learning_curve_s{seed}.png`" for seed in args.seeds)}.
""")
    for arm in ("shapes", "hands"):  # one report per arm: running one arm keeps the other's report
        text = "".join(section for section in sections if section.startswith(f"## {arm.capitalize()}"))
        if text:
            intro = next(i for i in __doc__.split("\n* ") if i.startswith(f"``{arm}``")).split("\n\n")[0]
            print(write_report(f"learnability_{arm}", f"# Learnability of the worlds\n\n* {intro.strip()}\n\n{text}",
                               args.out))
    path = args.out / "learnability.json"
    merged = merge_arms(path, arms)
    print(write_results_json("learnability", merged, args.out,
                             extra={"arm_commands": arm_commands(path, arms, merged)}))


def arm_commands(path: Path, measured: dict, merged: dict) -> dict[str, str]:
    """The command that produced each arm of ``merged``: this run's for the arms it ``measured``; for the arms kept
    from the previous file, its ``arm_commands`` entry, else the ``Command:`` line of the arm's report."""
    import json
    import re
    import sys

    previous: dict = json.loads(path.read_text()) if path.is_file() else {}
    this = ("python -m benchmarks.learnability " + " ".join(sys.argv[1:])).strip()
    old = previous.get("arm_commands", {})

    def from_report(arm: str) -> str:
        report = path.parent / f"learnability_{arm.split('_')[0]}.md"
        found = re.search(r"^Command: `(.*)`", report.read_text(), re.M) if report.is_file() else None
        return found.group(1) if found else "unknown"

    return {arm: this if arm in measured else old.get(arm) or from_report(arm) for arm in merged}


def merge_arms(path: Path, arms: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, list[float]]]:
    """The arms of a previous ``learnability.json`` that this run did not measure, plus this run's arms."""
    import json

    if not path.is_file():
        return arms
    previous = json.loads(path.read_text()).get("arms", {})
    kept = {arm: {metric: value["per_seed"] for metric, value in metrics.items()}
            for arm, metrics in previous.items() if arm.split("_")[0] not in {a.split("_")[0] for a in arms}}
    return {**kept, **arms}


if __name__ == "__main__":
    main()
