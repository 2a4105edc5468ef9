"""PointMCD benchmark on the shapes world (classification): a point-cloud student from scratch vs distilled from
the multi-view image teacher, at a reduced label budget.

One teacher (recipe ``pointmcd_teacher``: ResNet-18 over the 12-view rig, seed 0) is trained once and shared; per
seed, a PointNet student (recipe ``pointmcd_student``) is trained twice on the same shapes with the same labelled
subset (``label_fraction``): ``scratch`` (λ = 0: smooth cross-entropy on the labelled shapes only) and ``distilled``
(λ = 1: + the L1 between its visibility-aware per-view descriptors and the teacher's, on every training shape).
Model selection on the validation split's OA; scored on the test split (OA, mAcc). Part segmentation, DGCNN and the
unsupervised linear-SVM protocol are not in this benchmark yet.

Run: ``python -m benchmarks.pointmcd [--seeds 0 1 2] [--out DIR] [--label-fraction 0.1] [--epochs 8]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from benchmarks.common import RESULTS, mean_std, write_report, write_results_json
from distill3d.cli.demos import train_recipe

ARMS = {"scratch": ("PointNet from scratch (λ = 0)", 0.0), "distilled": ("PointNet + L_MCD (λ = 1)", 1.0)}
METRICS = ("oa", "macc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--label-fraction", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--runs-dir", type=Path, default=None, help="keep the run folders here (default: temporary)")
    args = parser.parse_args()
    sizes = ["options.train_size=32", "options.val_size=16", "options.test_size=16", "options.image_size=32",
             "options.num_points=256"] if args.quick else []
    epochs = 1 if args.quick else args.epochs
    seeds = args.seeds[:1] if args.quick else args.seeds
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    results: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory(prefix="pointmcd-bench-") as scratch:
        runs = args.runs_dir or Path(scratch)
        teacher_started = time.perf_counter()
        teacher_dir, teacher_task, teacher = train_recipe(
            "pointmcd_teacher", [*sizes, f"train.threads={args.threads}", *(["train.epochs=1"] if args.quick else [])],
            runs, "teacher")
        teacher_minutes = (time.perf_counter() - teacher_started) / 60
        teacher_scores = teacher_task.evaluate(teacher, DataLoader(teacher_task.test_sets()["test"], batch_size=32,
                                                                   collate_fn=teacher_task.collate))
        for seed in seeds:
            for arm, (_, weight) in ARMS.items():
                arm_started = time.perf_counter()
                overrides = [*sizes, f"seed={seed}", f"train.epochs={epochs}", f"train.threads={args.threads}",
                             f"options.teacher_checkpoint={teacher_dir}", f"options.distillation_weight={weight}",
                             f"options.label_fraction={args.label_fraction}"]
                _, task, model = train_recipe("pointmcd_student", overrides, runs, f"{arm}-s{seed}")
                minutes = (time.perf_counter() - arm_started) / 60
                task.setup(torch.device("cpu"), None)
                scores = task.evaluate(model, DataLoader(task.test_sets()["test"], batch_size=32,
                                                         collate_fn=task.collate))
                row = {key: scores[key] for key in METRICS} | {"train_minutes": minutes}
                results[arm].append(row)
                print(f"seed {seed} {arm}: {row}", flush=True)
    total = (time.perf_counter() - started) / 60
    gains = [d["oa"] - s["oa"] for d, s in zip(results["distilled"], results["scratch"], strict=True)]
    name = "pointmcd_quick" if args.quick else "pointmcd"
    lines = [f"# PointMCD on the shapes world: classification{' (QUICK: a smoke test)' if args.quick else ''}", "",
             f"Shapes world (`standard`, 16 categories), 960 training shapes of which {args.label_fraction:.0%} carry "
             f"labels (the same subset in both arms of a seed), 1,024 points, PointNet student for {epochs} epochs; "
             "teacher: ResNet-18 (width 32, shipped warm start) over 12 rendered views, trained once "
             f"({teacher_minutes:.1f} min; test OA {teacher_scores['oa']:.1f} %). Seeds {seeds}; selection on the "
             "validation split; test split scored. Mean ± sample std over seeds.", "",
             "| arm | test OA (%) | test mAcc (%) | train (min) | per-seed OA |", "|---|---|---|---|---|"]
    for arm, rows in results.items():
        lines.append(f"| {arm} ({ARMS[arm][0]}) | {mean_std([r['oa'] for r in rows])} | "
                     f"{mean_std([r['macc'] for r in rows])} | {mean_std([r['train_minutes'] for r in rows])} | "
                     + ", ".join(f"{r['oa']:.1f}" for r in rows) + " |")
    lines += ["", "Chance level: 6.25 % (16 balanced categories).", "",
              "Checks (issue #11, classification at a reduced label budget):", "",
              f"- Distilled − scratch OA per seed: {', '.join(f'{g:+.1f}' for g in gains)} "
              f"({'above in every seed' if min(gains) > 0 else 'NOT above in every seed'}).",
              f"- Scratch PointNet OA ≥ 85 % (the issue's floor is for all labels; here {args.label_fraction:.0%}): "
              f"{mean_std([r['oa'] for r in results['scratch']])}.", "", f"Wall time {total:.1f} min."]
    print(write_report(name, "\n".join(lines), args.out))
    json_arms = {arm: {key: [r[key] for r in rows] for key in (*METRICS, "train_minutes")}
                 for arm, rows in results.items()}
    print(write_results_json(name, json_arms, args.out, extra={"seeds": seeds, "minutes": total,
                                                                "label_fraction": args.label_fraction,
                                                                "teacher_test_oa": teacher_scores["oa"]}))


if __name__ == "__main__":
    main()
