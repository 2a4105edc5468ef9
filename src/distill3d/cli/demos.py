"""Quick presets behind ``distill3d demo`` (and ``make demo``): each trains through the real engine in a few
minutes on 2 CPU cores and returns a markdown comparison table. All demos live here; :func:`train_recipe` trains
any built-in recipe or YAML file (the demos' and benchmarks' way to run a config from Python)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# (the engine is imported inside the functions: `distill3d --help` reads DEMOS without loading torch)

DEMOS: dict[str, str] = {
    "peclr": "PeCLR: equivariant pre-training → 2.5D hand pose fine-tuning vs supervised only (≈3 min)",
    "pointmcd": "PointMCD: multi-view image teacher, then PointNet students from scratch and distilled at 10 % labels "
                "on the shapes world (≈2.5 min on 2 cores, measured with an empty cache)",
    "pose_ckd": "Pose CKD: teacher (image + shape), baseline and distilled image-only students (≈4 min)",
    "shapes": "PointNet shape classification on the procedural shapes world (≈30 s)",
    "skd_wm3d": "SKD-WM3D's image-only 3D detector (MDN) on the road world: 3D labels vs weak labels (2D boxes + "
                "depth estimate) vs the same weak labels taught by the DSN (≈5 min; the first run ≈1 min more: it "
                "renders and caches the frames)",
}


def run_demo(name: str, out_dir: Path, progress: bool = True) -> str:
    """Run demo ``name`` (a key of :data:`DEMOS`); returns its markdown table."""
    return {"peclr": peclr_demo, "pointmcd": pointmcd_demo, "pose_ckd": pose_ckd_demo, "shapes": shapes_demo,
            "skd_wm3d": skd_wm3d_demo}[name](out_dir, progress)


def train_recipe(recipe: str | Path, overrides: Sequence[str], out_dir: Path, name: str,
                 progress: bool = False) -> tuple[Path, Any, Any]:
    """Train a built-in recipe (or YAML file) with dotted ``key=value`` overrides through the engine, into
    ``out_dir/name``. Returns (run folder, task, trained model from ``best.pt``/``last.pt`` in eval mode)."""
    from distill3d.cli.methods import load_method, load_trained, resolve_config_path
    from distill3d.engine.config import config_to_yaml, load_run_config, validate_section
    from distill3d.engine.trainer import Trainer

    config = load_run_config(resolve_config_path(str(recipe)), [*overrides, f"name={name}", f"out_dir={out_dir}"])
    method = load_method(config.method)
    task = method.build_task(validate_section(method.Options, config.options, "options"), config.seed)
    run_dir = config.out_dir / name
    Trainer(config.train, run_dir, seed=config.seed, config_yaml=config_to_yaml(config),
            config_dump=config.model_dump(mode="json"), progress=progress).fit(task)
    return run_dir, task, load_trained(run_dir).model


def shapes_demo(out_dir: Path, progress: bool = True) -> str:
    """PointNet shape classification on the shapes world; returns the run's report."""
    from distill3d.engine.report import write_run_report

    run_dir, _, _ = train_recipe("demo_shape_classification", [], out_dir,
                                 f"demo-shapes-{time.strftime('%Y%m%d-%H%M%S')}", progress)
    write_run_report(run_dir)
    return (run_dir / "report.md").read_text()


def peclr_demo(out_dir: Path, progress: bool = True) -> str:
    """Brief PeCLR pre-training on unlabelled hands, fine-tuning on 500 labelled ones, and the supervised-only
    baseline with the same fine-tuning budget; a markdown table of test-split metrics (2-3 min on 2 cores)."""
    from torch.utils.data import DataLoader

    from distill3d.methods.peclr import evaluate_hand_pose

    out_dir = Path(out_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    started = time.perf_counter()
    pretrain_dir, _, _ = train_recipe("demo_peclr_pretrain", [], out_dir, f"demo-peclr-pretrain-{stamp}", progress)
    rows = []
    for label, extra in (("supervised only", []),
                         ("PeCLR pre-train + fine-tune", [f"options.pretrained_checkpoint={pretrain_dir}"])):
        name = f"demo-peclr-finetune-{'peclr' if extra else 'supervised'}-{stamp}"
        run_dir, task, model = train_recipe("demo_peclr_finetune", extra, out_dir, name, progress)
        test = task.test_sets()["test"]
        result, uv_px = evaluate_hand_pose(model, iter(DataLoader(test, batch_size=128, shuffle=False)))
        rows.append(f"| {label} | {1000 * result.pa_epe_mean:.2f} | {1000 * result.epe_mean:.2f} | "
                    f"{result.pa_auc:.3f} | {result.auc:.3f} | {uv_px:.2f} | `{run_dir}` |")
    minutes = (time.perf_counter() - started) / 60
    return ("## PeCLR demo: hands world, 500 labelled images, test split (500)\n\n"
            "| model | PA-EPE (mm) | EPE (mm) | AUC aligned | AUC unaligned | 2D error (px) | run |\n"
            "|---|---|---|---|---|---|---|\n" + "\n".join(rows) +
            f"\n\nPre-training: `{pretrain_dir}`. One seed and a tiny budget ({minutes:.1f} min): differences "
            "here are not significant; `python -m benchmarks.peclr` compares 3 seeds and two label budgets.\n")


def _train_pose_run(options, run_dir: Path, epochs: int, progress: bool) -> dict[str, dict[str, float]]:
    from distill3d.cli.methods import load_trained
    from distill3d.engine.config import RunConfig, TrainConfig, config_to_yaml
    from distill3d.engine.report import write_run_report
    from distill3d.engine.trainer import Trainer
    from distill3d.methods.pose_ckd import build_task

    config = RunConfig(method="pose_ckd", seed=0, name=run_dir.name, out_dir=run_dir.parent, options=options.model_dump(
        mode="json"), train=TrainConfig(epochs=epochs, batch_size=64, precision="bf16", channels_last=True,
                                        monitor="val/acc_pi6",
                                        optimizer={"name": "adamw", "lr": 2e-3, "weight_decay": 5e-4},
                                        schedule={"name": "cosine", "warmup_epochs": 0.5}))
    task = build_task(options, config.seed)
    trainer = Trainer(config.train, run_dir, seed=config.seed, progress=progress, config_yaml=config_to_yaml(config),
                      config_dump=config.model_dump(mode="json"))
    trainer.fit(task)
    write_run_report(run_dir)
    model = load_trained(run_dir / "best.pt").model
    return {name: trainer.evaluate(task, model, data) for name, data in task.test_sets().items()}


def pose_ckd_demo(out_dir: Path, progress: bool = True, train_size: int = 12000, epochs: int = 3) -> str:
    """Teacher (image + shape), baseline student, distilled student (logit + InfoNCE KD) on the shapes world
    (``standard`` preset, encoders warm-started from the shipped weights)."""
    from distill3d.methods.pose_ckd import Options, build_task, viewpoint_chance_level

    base = dict(train_size=train_size, val_size=600, test_size=600, image_size=64, backbone_width=32, num_points=256,
                difficulty="standard", data_seed=0, pretrained_backbone="builtin")
    root = (out_dir / f"demo-pose_ckd-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    baseline = Options(stage="student", task_weight=1.0, logit_weight=0.0, representation="none", **base)
    runs = {
        "teacher (image + 3D shape)": (root / "teacher", Options(stage="teacher", **base)),
        "student, no distillation": (root / "student_baseline", baseline),
        "student, logit + InfoNCE KD": (root / "student_distilled", Options(
            stage="student", teacher_checkpoint=root / "teacher", representation="infonce", **base)),
    }
    rows = ["| model | seen Acc@π/6 (%) ↑ | seen MedErr (°) ↓ | unseen Acc@π/6 (%) ↑ | unseen MedErr (°) ↓ | run |",
            "|---|---|---|---|---|---|"]
    for label, (run_dir, options) in runs.items():
        print(f"== {label} → {run_dir}", flush=True)
        r = _train_pose_run(options, run_dir, epochs, progress)
        rows.append(f"| {label} | {r['test_seen']['acc_pi6']:.1f} | {r['test_seen']['med_err']:.1f} | "
                    f"{r['test_unseen']['acc_pi6']:.1f} | {r['test_unseen']['med_err']:.1f} | `{run_dir}` |")
    chance = viewpoint_chance_level(build_task(baseline, 0))
    rows.append(f"| chance (a random training label) | {chance['test_seen']['acc_pi6']:.1f} | "
                f"{chance['test_seen']['med_err']:.1f} | {chance['test_unseen']['acc_pi6']:.1f} | "
                f"{chance['test_unseen']['med_err']:.1f} | |")
    return ("Pose CKD quick preset: one seed, a small budget (the numbers are noisy).\n\n" + "\n".join(rows)
            + "\n\nThe best epoch of each run was chosen on the validation split of seen categories. Learning "
            "curves: `curves.png` and `report.md` in each run folder. Full benchmark (3 seeds, mean ± std): "
            "benchmarks/results/pose_ckd.md; world learnability: benchmarks/results/learnability_shapes.md.\n")


SKD_WM3D_DEMO_ARMS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("MDN, 3D labels (supervised ceiling)", "supervised", ("options.supervision=full",)),
    ("MDN, weak labels only (2D boxes + depth estimate)", "weak", ("options.supervision=weak",)),
    ("SKD-WM3D: MDN taught by the DSN (same weak labels)", "skd",
     ("options.supervision=weak", "options.self_distillation=true", "options.shared_encoder=true")),
)


def skd_wm3d_demo(out_dir: Path, progress: bool = True, overrides: Sequence[str] = (), reports: bool = True) -> str:
    """The image-only detector (MDN) of SKD-WM3D trained briefly on a small cached road-world split (recipe
    ``demo_skd_wm3d``: 800 frames at 96×320, 7 epochs) with 3D labels, with the weak labels only, and with the
    same weak labels taught by the DSN (the full method, image encoder shared by both branches); a markdown table
    of Car AP (KITTI evaluation, R40, Moderate) on the validation and test splits.
    ``overrides``: extra dotted overrides for every arm (the tests shrink the sizes with them); ``reports``: write
    each run's report.md and curves.png (one panel per validation metric: ≈10 s each with the KITTI metrics)."""
    import torch
    from torch.utils.data import DataLoader

    from distill3d.engine.report import write_run_report

    out_dir = Path(out_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    started = time.perf_counter()
    rows = ["| model | val AP_BEV@0.5 | test AP_BEV@0.5 | test AP_3D@0.5 | val AP_2D@0.7 | test AP_2D@0.7 | run |",
            "|---|---|---|---|---|---|---|"]
    for label, key, arm in SKD_WM3D_DEMO_ARMS:
        print(f"== {label}", flush=True)
        run_dir, task, model = train_recipe("demo_skd_wm3d", [*arm, *overrides], out_dir,
                                            f"demo-skd_wm3d-{key}-{stamp}", progress)
        if reports:
            write_run_report(run_dir)
        task.setup(next(model.parameters()).device, None)  # the reloaded model is on the CPU
        with torch.no_grad():
            scores = {split: task.evaluate(model, DataLoader(data, batch_size=32, collate_fn=task.collate))
                      for split, data in (("val", task.val_set()), ("test", task.test_sets()["test"]))}
        first = task.options.classes[0]
        two_d = f"{first}_2D_AP40_moderate_strict"
        rows.append(f"| {label} | {scores['val']['ap_bev_r40_moderate_05']:.1f} | "
                    f"{scores['test']['ap_bev_r40_moderate_05']:.1f} | {scores['test']['ap_3d_r40_moderate_05']:.1f} | "
                    f"{scores['val'][two_d]:.1f} | {scores['test'][two_d]:.1f} | `{run_dir}` |")
    rows.append("| chance (boxes placed at random; not measured) | ≈ 0 | ≈ 0 | ≈ 0 | ≈ 0 | ≈ 0 | |")
    minutes = (time.perf_counter() - started) / 60
    return (f"## SKD-WM3D demo: road world, Car, KITTI AP (R40, Moderate), {minutes:.1f} min\n\n" + "\n".join(rows)
            + "\n\nOne seed and a tiny budget (the numbers are noisy): every arm learns (chance ≈ 0); with the same "
            "weak labels, the MDN taught by the depth-guided DSN should land between the weak MDN and the 3D-label "
            "ceiling. Checkpoints were chosen on the validation split's AP_BEV@0.5; learning curves: `curves.png` in "
            "each run folder. `distill3d predict RUN image.png` draws the 3D boxes and a bird's-eye view; 3 seeds "
            "and the ablation ladder: `python -m benchmarks.skd_wm3d` (benchmarks/results/skd_wm3d.md).\n")


POINTMCD_DEMO_SIZES: tuple[str, ...] = ("options.train_size=480", "options.val_size=160", "options.test_size=320",
                                        "options.num_points=512")
"""Overrides of both PointMCD recipes in the demo: half the recipes' shapes, 512 points (the recipes: 960 / 320 /
640 shapes, 1,024 points)."""
POINTMCD_DEMO_TEACHER: tuple[str, ...] = ("train.epochs=1",)  # val OA 100 % after this epoch in a probe
POINTMCD_DEMO_STUDENTS: tuple[str, ...] = ("train.epochs=8", "options.label_fraction=0.1")
POINTMCD_DEMO_ARMS: tuple[tuple[str, str, float], ...] = (
    ("PointNet from scratch (λ = 0)", "scratch", 0.0),
    ("PointNet + L_MCD to the teacher (λ = 1)", "distilled", 1.0),
)


def _student_test_predictions(task: Any, model: Any) -> tuple[Any, Any]:
    """(predicted classes (S,), true classes (S,)) of a classification student on its task's test split."""
    import torch
    from torch.utils.data import DataLoader

    predicted, truth = task.classification_predictions(
        model, DataLoader(task.test_sets()["test"], batch_size=64, collate_fn=task.collate))
    return torch.cat(predicted), torch.cat(truth)


def pointmcd_demo(out_dir: Path, progress: bool = True, overrides: Sequence[str] = (), reports: bool = True) -> str:
    """PointMCD on the shapes world, small: the multi-view image teacher (recipe ``pointmcd_teacher``, 1 epoch),
    then two PointNet students (recipe ``pointmcd_student``, 8 epochs) with the labels of 10 % of the training shapes
    — from scratch (λ = 0) and distilled from the teacher's per-view descriptors on every training shape (λ = 1) —
    at :data:`POINTMCD_DEMO_SIZES`. Returns a markdown table of test OA / mAcc beside the chance level, and the
    distilled − scratch OA difference with its paired standard error over the test shapes (one training seed).
    ``overrides``: extra dotted overrides of all three runs (the tests shrink the sizes with them); ``reports``:
    write each run's report.md and curves.png."""
    import torch
    from torch.utils.data import DataLoader

    from distill3d.engine.report import write_run_report
    from distill3d.methods.pointmcd.data import labelled_mask, shapes_categories
    from distill3d.metrics.shapes import mean_class_accuracy, overall_accuracy

    out_dir = Path(out_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    started = time.perf_counter()
    print("== teacher: image encoder over the rendered views", flush=True)
    teacher_dir, teacher_task, teacher = train_recipe(
        "pointmcd_teacher", [*POINTMCD_DEMO_SIZES, *POINTMCD_DEMO_TEACHER, *overrides], out_dir,
        f"demo-pointmcd-teacher-{stamp}", progress)
    if reports:
        write_run_report(teacher_dir)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # the recipe's precision
        teacher_scores = teacher_task.evaluate(teacher, DataLoader(teacher_task.test_sets()["test"], batch_size=32,
                                                                   collate_fn=teacher_task.collate))
    rows = ["| model | test OA (%) | test mAcc (%) | run |", "|---|---|---|---|",
            f"| teacher: {teacher_task.options.backbone} over {teacher_task.rig.views} rendered views (sees images) | "
            f"{teacher_scores['oa']:.1f} | {teacher_scores['macc']:.1f} | `{teacher_dir}` |"]
    correct = {}
    for label, key, weight in POINTMCD_DEMO_ARMS:
        print(f"== student: {label}", flush=True)
        run_dir, task, model = train_recipe(
            "pointmcd_student", [*POINTMCD_DEMO_SIZES, *POINTMCD_DEMO_STUDENTS, *overrides,
                                 f"options.teacher_checkpoint={teacher_dir}", f"options.distillation_weight={weight}"],
            out_dir, f"demo-pointmcd-{key}-{stamp}", progress)
        if reports:
            write_run_report(run_dir)
        predicted, truth = _student_test_predictions(task, model)
        correct[key] = (predicted == truth).double()
        rows.append(f"| {label} | {100 * overall_accuracy(predicted, truth):.1f} | "
                    f"{100 * mean_class_accuracy(predicted, truth):.1f} | `{run_dir}` |")
    options = task.options
    categories = len(shapes_categories(options))
    rows.append(f"| chance (1 / {categories} categories) | {100 / categories:.1f} | {100 / categories:.1f} | |")
    labelled = int(labelled_mask(task.point_split("train").tensors["category"], options.label_fraction,
                                 task.seed).sum())
    difference = correct["distilled"] - correct["scratch"]  # per test shape: +1, 0 or −1
    gain = 100 * float(difference.mean())
    error = 100 * float(difference.std()) / len(difference) ** 0.5 if len(difference) > 1 else float("inf")
    if abs(gain) <= 2 * error:
        verdict = ("within two paired standard errors of zero: on this run the test split does not resolve a "
                   "difference between the two students")
    else:
        verdict = (f"the distilled student is {'ahead of' if gain > 0 else 'behind'} scratch by more than two paired "
                   "standard errors on this run's test shapes")
    minutes = (time.perf_counter() - started) / 60
    return (f"## PointMCD demo: shapes world, {categories} categories, {options.train_size} training shapes of which "
            f"{labelled} are labelled, {options.num_points} points, {minutes:.1f} min\n\n" + "\n".join(rows)
            + f"\n\nDistilled − scratch test OA: {gain:+.1f} points ± {error:.1f} (paired standard error over the "
            f"{len(difference)} test shapes) — {verdict}. One training seed and a small budget: the error does not "
            "include the variation between seeds, so it does not show whether the method helps in general; "
            "`python -m benchmarks.pointmcd` compares 3 seeds (benchmarks/results/pointmcd.md). Checkpoints were "
            "chosen on the validation split's OA. `distill3d predict RUN CLOUD.txt` classifies a point-cloud file "
            "with a student.\n")
