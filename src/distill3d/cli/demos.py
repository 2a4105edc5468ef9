"""Quick presets behind ``distill3d demo`` (and ``make demo``): each trains through the real engine in a few
minutes on 2 CPU cores and returns a markdown comparison table."""

from __future__ import annotations

import time
from pathlib import Path

from distill3d.cli.methods import load_trained
from distill3d.engine.config import TrainConfig, config_to_yaml
from distill3d.engine.report import write_run_report
from distill3d.engine.trainer import Trainer


def _train_pose_run(options, run_dir: Path, epochs: int, progress: bool) -> dict[str, dict[str, float]]:
    from distill3d.engine.config import RunConfig
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
