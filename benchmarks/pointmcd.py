"""PointMCD benchmark on the shapes world: PointNet and DGCNN students from scratch vs distilled from the multi-view
image teacher — shape classification, part segmentation, and the linear-SVM OA of unsupervised (L_MCD only)
features (issue #11).

One teacher (recipe ``pointmcd_teacher``: ResNet-18 over the 12-view rig, seed 0) is trained once and shared by
every distilled arm and seed: the knowledge (per-view descriptors + the visibility of the training points in the
teacher's rig) does not depend on the student's task, so the classification teacher also serves segmentation and
the unsupervised arm (the paper renders 16 views for segmentation; here the rig stays the teacher's 12 views).
Per seed every selected arm is trained (recipe ``pointmcd_student``) on the same shapes; ``scratch`` is λ = 0 (no
teacher), ``distilled`` is λ = 1 (+ the L1 between the student's visibility-aware per-view descriptors and the
teacher's, on every training shape) beside ``w · SmoothCE`` on the labelled shapes — w = 0.1 in the official
scripts (L_MCD outweighs the task tenfold); here 0.2 for PointNet classification and 0.1 for DGCNN, each the
better of the two on the validation split (seeds 0-2; the weight of L_MCD was 1 / w = 1 before: no gain). The
labelled subset of a seed (``label_fraction``, per class) is the same in both arms of a task. Arms:

- ``cls_pointnet_scratch_all``: PointNet from scratch with every training label (the issue's OA floor);
- ``cls_pointnet_scratch`` / ``cls_pointnet_distilled``: classification at ``--label-fraction`` (OA, mAcc);
- ``cls_dgcnn_scratch`` / ``cls_dgcnn_distilled``: the same with DGCNN (bf16 autocast: the slow student);
- ``seg_pointnet_scratch`` / ``seg_pointnet_distilled``: part segmentation at ``--seg-label-fraction``
  (instance mIoU, class mIoU, point accuracy);
- ``unsup_pointnet``: L_MCD alone, then a linear SVM on the frozen max-pooled features (OA; C chosen on val);
- ``unsup_pointnet_untrained``: the same SVM on an untrained PointNet's features (the protocol's baseline).

Model selection on the validation split with the recipe's monitor of the task (``val/oa``, ``val/instance_miou``,
``val/svm_oa``); the selected checkpoint is scored on the test split. Train and test-evaluation minutes are recorded
per arm and seed. Sizes and epochs are chosen to fit the issue's 45 minutes on 2 cores (480 training shapes of 512
points; 8 epochs for PointNet classification, 4 for DGCNN, 24 for segmentation (bf16), 6 for the unsupervised
arm).
Run: ``python -m benchmarks.pointmcd [--seeds 0 1 2] [--arms ...] [--out DIR]``; ``--quick`` for a smoke test
(tiny sizes, one seed, written as ``pointmcd_quick.{md,json}``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from benchmarks.common import RESULTS, mean_std, write_report, write_results_json
from distill3d.cli.demos import train_recipe
from distill3d.methods.pointmcd.task import PointMCDTask
from distill3d.metrics.shapes import part_segmentation_miou


@dataclass(frozen=True)
class Arm:
    """One benchmark arm: the student's task and network, and whether it distils (λ = 1) or not (λ = 0)."""

    task: str
    student: str
    distilled: bool
    description: str
    untrained: bool = False
    all_labels: bool = False  # classification with every training label (the scratch floor), not --label-fraction


ARMS: dict[str, Arm] = {
    "cls_pointnet_scratch_all": Arm("classification", "pointnet", False, "PointNet from scratch, all labels",
                                    all_labels=True),
    "cls_pointnet_scratch": Arm("classification", "pointnet", False, "PointNet from scratch (λ = 0)"),
    "cls_pointnet_distilled": Arm("classification", "pointnet", True, "PointNet + L_MCD (λ = 1)"),
    "cls_dgcnn_scratch": Arm("classification", "dgcnn", False, "DGCNN from scratch (λ = 0)"),
    "cls_dgcnn_distilled": Arm("classification", "dgcnn", True, "DGCNN + L_MCD (λ = 1)"),
    "seg_pointnet_scratch": Arm("segmentation", "pointnet", False, "PointNet from scratch (λ = 0)"),
    "seg_pointnet_distilled": Arm("segmentation", "pointnet", True, "PointNet + L_MCD (λ = 1)"),
    "unsup_pointnet": Arm("unsupervised", "pointnet", True, "PointNet, L_MCD only"),
    "unsup_pointnet_untrained": Arm("unsupervised", "pointnet", True, "PointNet, untrained (random weights)",
                                    untrained=True),
}
#: Per task: the test metrics recorded (in table order) and the validation monitor of model selection.
METRICS = {"classification": ("oa", "macc"), "segmentation": ("instance_miou", "class_miou", "point_acc"),
           "unsupervised": ("svm_oa", "svm_c")}
MONITOR = {"classification": "val/oa", "segmentation": "val/instance_miou", "unsupervised": "val/svm_oa"}
#: Sizes of the benchmark (half the recipes' 960 training shapes and 1,024 points, so that the seven arms × 3 seeds
#: fit 45 minutes on 2 cores; the demo's sizes) and of ``--quick``.
FULL_SIZES = {"train_size": 480, "val_size": 320, "test_size": 640, "num_points": 512}
QUICK_SIZES = {"train_size": 32, "val_size": 16, "test_size": 16, "num_points": 256}


def arm_settings(arm: Arm, args: argparse.Namespace) -> tuple[int, float, list[str]]:
    """(epochs, label fraction, the arm's own overrides) of ``arm`` under the command-line settings."""
    if arm.task == "classification" and arm.student == "dgcnn":
        epochs, fraction = args.dgcnn_epochs, args.label_fraction
        extra = [f"train.precision={args.dgcnn_precision}", f"train.batch_size={args.dgcnn_batch_size}",
                 f"options.task_weight={args.dgcnn_task_weight}"]
    elif arm.task == "classification":
        epochs, fraction = args.epochs, 1.0 if arm.all_labels else args.label_fraction
        extra = [f"options.task_weight={args.task_weight}"]
    elif arm.task == "segmentation":
        epochs, fraction = args.seg_epochs, args.seg_label_fraction
        extra = [f"train.batch_size={args.seg_batch_size}", f"train.optimizer.lr={args.seg_lr}",
                 f"train.precision={args.seg_precision}"]
    elif not arm.untrained:  # unsupervised: no label in training (the SVM sees the training labels afterwards)
        epochs, fraction, extra = args.unsup_epochs, 1.0, []
    else:  # the SVM protocol's baseline: one epoch at lr 1e-12 (weights stay at their random init; only the
        epochs, fraction, extra = 1, 1.0, ["train.optimizer.lr=1e-12"]  # BN statistics adapt)
    overrides = [f"options.task={arm.task}", f"options.student={arm.student}", f"train.monitor={MONITOR[arm.task]}",
                 f"options.distillation_weight={1.0 if arm.distilled else 0.0}",
                 f"options.label_fraction={fraction}", *extra]
    return (1 if args.quick else epochs), fraction, overrides


def run_arm(name: str, seed: int, args: argparse.Namespace, sizes: list[str], teacher_dir: Path | None,
            runs: Path) -> tuple[dict[str, float], PointMCDTask]:
    """Train one arm for one seed (validation-selected checkpoint), score it on the test split; (scores, task)."""
    arm = ARMS[name]
    epochs, _, overrides = arm_settings(arm, args)
    teacher = [f"options.teacher_checkpoint={teacher_dir}"] if teacher_dir is not None else []
    started = time.perf_counter()
    _, task, model = train_recipe("pointmcd_student", [*sizes, f"seed={seed}", f"train.epochs={epochs}",
                                                       f"train.threads={args.threads}", *teacher, *overrides],
                                  runs, f"{name}-s{seed}")
    minutes = (time.perf_counter() - started) / 60
    task.setup(torch.device("cpu"), None)
    scores = task.evaluate(model, DataLoader(task.test_sets()["test"], batch_size=32, collate_fn=task.collate))
    row = {key: float(scores[key]) for key in METRICS[arm.task]}
    row.update(train_minutes=minutes, test_minutes=(time.perf_counter() - started) / 60 - minutes)
    print(f"seed {seed} {name}: {row}", flush=True)
    return row, task


def uniform_part_chance(task: PointMCDTask) -> tuple[float, float]:
    """(instance mIoU, class mIoU) in % of guessing every test point's part uniformly among the parts of its
    shape's category (one seeded draw, scored with the benchmark's metric)."""
    data = task.point_split("test").tensors
    category, target = data["category"].long(), data["part_labels"].long()  # (S,), (S, P)
    table = task.spec.category_to_parts
    width = max(len(parts) for parts in table.values())
    padded = torch.zeros(max(table) + 1, width, dtype=torch.long)
    counts = torch.ones(max(table) + 1, dtype=torch.long)
    for key, parts in table.items():  # one row per category (16)
        padded[key, :len(parts)] = torch.as_tensor(parts)
        counts[key] = len(parts)
    generator = torch.Generator().manual_seed(0)
    rank = (torch.rand(target.shape, generator=generator, dtype=torch.float64) * counts[category][:, None]).long()
    guess = padded[category[:, None], rank]
    result = part_segmentation_miou(guess, target, category, table)
    return 100.0 * result.instance_miou, 100.0 * result.class_miou


def per_seed(rows: list[dict[str, float]], key: str) -> str:
    return ", ".join(f"{row[key]:.1f}" for row in rows)


def task_table(task: str, results: dict[str, list[dict[str, float]]], label_fraction: float) -> list[str]:
    """The markdown table of the arms of ``task`` (mean ± sample std over seeds, per-seed values, minutes)."""
    rows = {name: runs for name, runs in results.items() if ARMS[name].task == task}
    if task == "classification":
        header = ["| arm | labels | test OA (%) | test mAcc (%) | train (min) | per-seed OA |",
                  "|---|---|---|---|---|---|"]
        keys, seed_key = ("oa", "macc"), "oa"
    elif task == "segmentation":
        header = ["| arm | instance mIoU (%) | class mIoU (%) | point acc. (%) | train (min) | "
                  "per-seed instance mIoU |", "|---|---|---|---|---|---|"]
        keys, seed_key = ("instance_miou", "class_miou", "point_acc"), "instance_miou"
    else:
        header = ["| arm | linear-SVM test OA (%) | train (min) | per-seed SVM OA (C) |", "|---|---|---|---|"]
        keys, seed_key = ("svm_oa",), "svm_oa"
    lines = list(header)
    for name, runs in rows.items():
        seeds = (per_seed(runs, seed_key) if task != "unsupervised"
                 else ", ".join(f"{r['svm_oa']:.1f} ({r['svm_c']:g})" for r in runs))
        labels = f" {1.0 if ARMS[name].all_labels else label_fraction:.0%} |" if task == "classification" else ""
        lines.append(f"| {name} ({ARMS[name].description}) |{labels} "
                     + " | ".join(mean_std([r[key] for r in runs]) for key in keys)
                     + f" | {mean_std([r['train_minutes'] for r in runs])} | {seeds} |")
    return lines


def gains_line(results: dict[str, list[dict[str, float]]], prefix: str, key: str, label: str) -> list[str]:
    """``distilled − scratch`` per seed of ``key`` for the arm pair ``<prefix>_scratch`` / ``<prefix>_distilled``."""
    scratch, distilled = results.get(f"{prefix}_scratch"), results.get(f"{prefix}_distilled")
    if not scratch or not distilled:
        return []
    gains = [d[key] - s[key] for d, s in zip(distilled, scratch, strict=True)]
    verdict = "above in every seed" if min(gains) > 0 else "NOT above in every seed"
    return [f"- {label}, distilled − scratch per seed: {', '.join(f'{g:+.1f}' for g in gains)} ({verdict})."]


def floor_line(values: list[float], floor: float, label: str, note: str = "") -> list[str]:
    verdict = "met in every seed" if min(values) >= floor else f"NOT met in every seed (lowest {min(values):.1f})"
    return [f"- {label} ≥ {floor:g} %{note}: {mean_std(values)} → {verdict}."]


def checks(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> list[str]:
    """Issue #11's floors and comparisons, computed from the arms that were run."""
    lines: list[str] = []
    if results.get("cls_pointnet_scratch_all"):
        lines += floor_line([r["oa"] for r in results["cls_pointnet_scratch_all"]], 85,
                            "Scratch PointNet test OA (all labels)")
    elif results.get("cls_pointnet_scratch"):
        note = ("" if args.label_fraction >= 1 else
                f" (the issue's floor is for all labels; here {args.label_fraction:.0%} of them)")
        lines += floor_line([r["oa"] for r in results["cls_pointnet_scratch"]], 85, "Scratch PointNet test OA", note)
    if results.get("seg_pointnet_scratch"):
        note = ("" if args.seg_label_fraction >= 1 else
                f" (the issue's floor is for all labels; here {args.seg_label_fraction:.0%} of them)")
        lines += floor_line([r["instance_miou"] for r in results["seg_pointnet_scratch"]], 70,
                            "Scratch PointNet part instance mIoU", note)
    budget = f"at {args.label_fraction:.0%} labels"
    lines += gains_line(results, "cls_pointnet", "oa", f"PointNet classification OA {budget}")
    lines += gains_line(results, "cls_dgcnn", "oa", f"DGCNN classification OA {budget}")
    if results.get("unsup_pointnet"):
        lines += floor_line([r["svm_oa"] for r in results["unsup_pointnet"]], 80,
                            "Unsupervised L_MCD features, linear-SVM test OA")
    if results.get("unsup_pointnet") and results.get("unsup_pointnet_untrained"):
        gains = [t["svm_oa"] - u["svm_oa"] for t, u in zip(results["unsup_pointnet"],
                                                            results["unsup_pointnet_untrained"], strict=True)]
        lines.append(f"- Linear-SVM OA, L_MCD-trained − untrained features per seed: "
                     f"{', '.join(f'{g:+.1f}' for g in gains)} (how much of the SVM OA the distillation adds).")
    information = gains_line(results, "seg_pointnet", "instance_miou",
                             "Part segmentation instance mIoU (information, no floor)")
    return lines + information


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--label-fraction", type=float, default=0.1, help="classification arms (PointNet, DGCNN)")
    parser.add_argument("--epochs", type=int, default=8, help="PointNet classification")
    parser.add_argument("--task-weight", type=float, default=0.2, help="PointNet classification: weight of "
                        "SmoothCE beside λ = 1 (official 0.1; 0.2 chosen on val)")
    parser.add_argument("--dgcnn-task-weight", type=float, default=0.1, help="DGCNN classification: weight of "
                        "SmoothCE beside λ = 1 (official 0.1; better than 0.2 on val)")
    parser.add_argument("--dgcnn-epochs", type=int, default=4, help="DGCNN classification")
    parser.add_argument("--dgcnn-precision", default="bf16", choices=["bf16", "fp32"], help="DGCNN training")
    parser.add_argument("--dgcnn-batch-size", type=int, default=8, help="DGCNN (more steps in the same time)")
    parser.add_argument("--seg-batch-size", type=int, default=8, help="segmentation arms")
    parser.add_argument("--seg-lr", type=float, default=2e-3, help="segmentation arms (AdamW)")
    parser.add_argument("--seg-label-fraction", type=float, default=1.0, help="segmentation arms")
    parser.add_argument("--seg-epochs", type=int, default=24, help="PointNet part segmentation")
    parser.add_argument("--seg-precision", default="bf16", choices=["bf16", "fp32"],
                        help="segmentation arms (bf16: 1.8× the fp32 samples/s here)")
    parser.add_argument("--unsup-epochs", type=int, default=6, help="PointNet, L_MCD only")
    parser.add_argument("--teacher-epochs", type=int, default=None, help="default: the teacher recipe's (3)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 epoch, first seed: checks that all runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--runs-dir", type=Path, default=None, help="keep the run folders here (default: temporary)")
    parser.add_argument("--train-size", type=int, default=None, help=f"training shapes ({FULL_SIZES['train_size']})")
    parser.add_argument("--num-points", type=int, default=None, help=f"points per cloud ({FULL_SIZES['num_points']})")
    args = parser.parse_args(argv)
    size_values = dict(QUICK_SIZES if args.quick else FULL_SIZES)
    if not args.quick:
        size_values.update({key: value for key, value in (("train_size", args.train_size),
                                                          ("num_points", args.num_points)) if value is not None})
    sizes = [f"options.{key}={value}" for key, value in size_values.items()]
    if args.quick:
        sizes.append("options.image_size=32")  # the teacher's renders (a student reads its rig from the teacher)
    seeds = args.seeds[:1] if args.quick else args.seeds
    teacher_epochs = 1 if args.quick else args.teacher_epochs
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in args.arms}
    teacher: dict[str, float] = {}  # minutes, test OA, views and elevations of the shared teacher (if any)
    chance: dict = {}
    with tempfile.TemporaryDirectory(prefix="pointmcd-bench-") as scratch:
        runs = args.runs_dir or Path(scratch)
        teacher_dir = None
        if any(ARMS[name].distilled for name in args.arms):
            teacher_started = time.perf_counter()
            teacher_dir, teacher_task, teacher_model = train_recipe(
                "pointmcd_teacher", [*sizes, f"train.threads={args.threads}",
                                     *([f"train.epochs={teacher_epochs}"] if teacher_epochs else [])], runs, "teacher")
            teacher_minutes = (time.perf_counter() - teacher_started) / 60
            test_loader = DataLoader(teacher_task.test_sets()["test"], batch_size=32, collate_fn=teacher_task.collate)
            teacher = {"minutes": teacher_minutes, "test_oa": teacher_task.evaluate(teacher_model, test_loader)["oa"],
                       "views": teacher_task.options.views,
                       "elevations_deg": list(teacher_task.options.view_elevations_deg)}
        for seed in seeds:
            for name in args.arms:
                row, task = run_arm(name, seed, args, sizes, teacher_dir, runs)
                results[name].append(row)
                if ARMS[name].task == "segmentation" and "segmentation" not in chance:
                    chance["segmentation"] = uniform_part_chance(task)
                chance.setdefault("categories", task.spec.num_classes)
    total = (time.perf_counter() - started) / 60
    name = "pointmcd_quick" if args.quick else "pointmcd"
    body = report(args, seeds, size_values, results, chance, teacher, total)
    print(write_report(name, body, args.out))
    json_arms = {arm: {key: [r[key] for r in rows] for key in (*METRICS[ARMS[arm].task], "train_minutes",
                                                                "test_minutes")}
                 for arm, rows in results.items()}
    settings = {"seeds": seeds, "minutes": total, "quick": args.quick, "sizes": size_values,
                "label_fraction": args.label_fraction, "seg_label_fraction": args.seg_label_fraction,
                "task_weight": {"pointnet_classification": args.task_weight,
                                "dgcnn_classification": args.dgcnn_task_weight, "segmentation": "recipe default (0.1)"},
                "epochs": {arm: arm_settings(ARMS[arm], args)[0] for arm in args.arms},
                "dgcnn_precision": args.dgcnn_precision, "seg_precision": args.seg_precision,
                "teacher": teacher or None,
                "chance": {"classification_oa": 100.0 / chance["categories"],
                           "segmentation_instance_miou": chance.get("segmentation", (None, None))[0],
                           "segmentation_class_miou": chance.get("segmentation", (None, None))[1]}}
    print(write_results_json(name, json_arms, args.out, extra=settings))
    print(f"Wall time {total:.1f} min.")


def report(args: argparse.Namespace, seeds: list[int], sizes: dict[str, int],
           results: dict[str, list[dict[str, float]]], chance: dict, teacher: dict, total: float) -> str:
    """The markdown body: set-up, one table per task with its chance level, the issue's checks, wall time."""
    epochs = {arm: arm_settings(ARMS[arm], args)[0] for arm in args.arms}
    rings = ", ".join(f"{elevation:g}°" for elevation in teacher.get("elevations_deg", []))
    teacher_text = (
        "no distilled arm, no teacher" if not teacher else
        f"teacher: ResNet-18 (width 32, shipped warm start) over {teacher['views']} rendered views (rings at {rings} "
        f"elevation), trained once ({teacher['minutes']:.1f} min; test OA {teacher['test_oa']:.1f} %) and shared by "
        "every distilled arm — classification, segmentation and unsupervised alike (the knowledge is per-view "
        "descriptors + the rig's visibility, independent of the student's task; the paper renders 16 views for "
        "segmentation)")
    lines = [f"# PointMCD on the shapes world{' (QUICK: a smoke test)' if args.quick else ''}", "",
             f"Shapes world (`standard`, 16 categories, data seed 0), {sizes['train_size']:,} training / "
             f"{sizes['val_size']:,} validation / {sizes['test_size']:,} test shapes of {sizes['num_points']:,} "
             f"points; {teacher_text}. Seeds {seeds}; model selection on the validation split (classification val OA, "
             "segmentation val instance mIoU, unsupervised val SVM OA); the selected checkpoint scored on the test "
             "split. Mean ± sample std over seeds; train minutes include the validation passes and, in the first "
             "distilled run on a training split, the one-off export of the teacher's knowledge (then read from the "
             "disk cache, also by later invocations).", ""]
    tasks = [task for task in METRICS if any(ARMS[arm].task == task for arm in args.arms)]
    for task in tasks:
        arms = [arm for arm in args.arms if ARMS[arm].task == task]
        settings = ", ".join(f"{arm} {epochs[arm]} epoch{'s' if epochs[arm] != 1 else ''}" for arm in arms)
        if task == "classification":
            title = f"Classification at {args.label_fraction:.0%} of the training labels (the same subset in both " \
                    "arms of a seed; one scratch arm with all of them; loss w·SmoothCE + λ·L_MCD with " \
                    f"w = {args.task_weight:g} for PointNet, " \
                    f"{args.dgcnn_task_weight:g} for DGCNN (in {args.dgcnn_precision}))"
            chance_line = (f"Chance level (uniform guessing): {100 / chance['categories']:.2f} % OA and mAcc "
                           f"({chance['categories']} categories).")
        elif task == "segmentation":
            title = f"Part segmentation at {args.seg_label_fraction:.0%} of the training labels (category one-hot " \
                    f"as input; parts predicted within the shape's category; {args.seg_precision}; loss " \
                    "0.1·SmoothCE + λ·L_MCD, the official weights)"
            instance, klass = chance["segmentation"]
            chance_line = (f"Chance level (every point's part guessed uniformly among its category's parts, one "
                           f"draw on the test split): instance mIoU {instance:.1f} %, class mIoU {klass:.1f} %.")
        else:
            title = "Unsupervised: L_MCD only (no labels), linear SVM on the frozen max-pooled features"
            chance_line = (f"Chance level (uniform guessing): {100 / chance['categories']:.2f} % OA. The SVM is fitted "
                           "on the training split's features and labels, C chosen on the validation split.")
        table = task_table(task, results, args.label_fraction)
        lines += [f"## {title}", "", f"Epochs: {settings}.", "", *table, "", chance_line, ""]
    lines += ["## Checks (issue #11)", "", *checks(results, args), "", f"Wall time {total:.1f} min."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
