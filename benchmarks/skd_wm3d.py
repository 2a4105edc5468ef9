"""SKD-WM3D benchmark on the road world: the supervised ceiling, weak MDN only, and the self-distillation ladder.

Arms (same detector, data, warm start, augmentation and number of steps; only the MDN is evaluated):

- ``supervised``: MDN with 3D labels (the ceiling; the only arm that sees 3D boxes);
- ``weak_mdn``: MDN with the weak losses only (2D boxes + depth estimate: projection consistency, box depth,
  size prior; the point-to-box alignment is off by default);
- ``weak_mdn_cue``: a control — the weak MDN given the DSN's depth orientation cue directly (does the transfer
  carry more than that cue would by itself? not a step of the method);
- ``weak_sd``: + the DSN (image + depth estimate, its depth-aware head also fitted to the depth orientation cue,
  :mod:`distill3d.losses.depth_orientation`) trained jointly and its plain margin transfer to the MDN;
- ``weak_sd_unc``: + the uncertainty-aware transfer (DSN's Laplacian σ);
- ``skd_wm3d``: + gradient-targeted transfer modulation — the full method.

Road world frames of data seed 0 in the ``standard`` preset (objects within 25 m, :mod:`distill3d.data.worlds.road`;
rendered once and cached, shared by every arm and seed); model selection by
the validation split's Car AP_BEV@0.5 (R40, Moderate); scored on the test split with the KITTI evaluation.
Run: ``python -m benchmarks.skd_wm3d [--seeds 0 1 2] [--out DIR] [--arms ...]``; ``--quick`` for a smoke test.
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
from distill3d.cli.methods import load_trained
from distill3d.data.worlds.difficulty import DIFFICULTIES
from distill3d.data.worlds.road import road_config
from distill3d.methods.skd_wm3d import Options

ARMS: dict[str, tuple[str, list[str]]] = {
    "supervised": ("MDN, 3D labels (ceiling)", ["options.supervision=full", "options.self_distillation=false"]),
    "weak_mdn": ("MDN, weak losses only", ["options.supervision=weak", "options.self_distillation=false"]),
    "weak_mdn_cue": ("control: weak MDN + the DSN's depth orientation cue, direct",
                     ["options.supervision=weak", "options.self_distillation=false",
                      "options.orientation_cue_branches=[mdn]"]),
    "weak_sd": ("+ DSN self-distillation", ["options.supervision=weak", "options.uncertainty=false",
                                            "options.modulation=false"]),
    "weak_sd_unc": ("+ uncertainty-aware transfer", ["options.supervision=weak", "options.modulation=false"]),
    "skd_wm3d": ("+ transfer modulation (full method)", ["options.supervision=weak"]),
}
METRICS = {"ap_bev_r40_moderate_05": "Car_BEV_AP40_moderate_loose", "ap_3d_r40_moderate_05":
           "Car_3D_AP40_moderate_loose", "ap_bev_r40_moderate_07": "Car_BEV_AP40_moderate_strict",
           "ap_3d_r40_moderate_07": "Car_3D_AP40_moderate_strict", "ap_bev_r11_moderate_07":
           "Car_BEV_AP11_moderate_strict", "ap_2d_r40_moderate_07": "Car_2D_AP40_moderate_strict"}


def run_arm(arm: str, seed: int, args: argparse.Namespace, runs: Path) -> dict[str, float]:
    """Train one arm, reload its validation-selected checkpoint, score it on the test split."""
    overrides = [f"seed={seed}", f"train.epochs={args.epochs}", f"train.batch_size={args.batch_size}",
                 f"train.threads={args.threads}", f"options.train_size={args.train_size}",
                 f"options.val_size={args.val_size}", f"options.test_size={args.test_size}",
                 f"options.image_size=[{args.height}, {args.width}]", f"options.difficulty={args.difficulty}",
                 f"train.optimizer.lr={args.lr}", f"options.classes=[{', '.join(args.classes)}]",
                 f"train.schedule.warmup_epochs={args.warmup_epochs}", *ARMS[arm][1]]
    started = time.perf_counter()
    run_dir, _, _ = train_recipe("skd_wm3d", overrides, runs, f"{arm}-s{seed}")
    minutes = (time.perf_counter() - started) / 60
    trained = load_trained(run_dir)
    task = trained.task
    loader = DataLoader(task.test_sets()["test"], batch_size=32, collate_fn=task.collate)
    metrics = task.evaluate(trained.model, loader)
    result = {key: metrics[name] for key, name in METRICS.items()}
    result.update(train_minutes=minutes, best_epoch=float(trained.epoch or 0))
    print(f"seed {seed} {arm}: {result}", flush=True)
    return result


def checks(results: dict[str, list[dict[str, float]]]) -> list[str]:
    """The issue's floors on Car AP_BEV@0.5 R40 Moderate."""
    key = "ap_bev_r40_moderate_05"
    lines = []
    if "supervised" in results:
        ceiling = [r[key] for r in results["supervised"]]
        lines.append(f"- Supervised ceiling ≥ 40: {mean_std(ceiling)} → {'met' if min(ceiling) >= 40 else 'NOT met'}.")
        if "skd_wm3d" in results:
            full = [r[key] for r in results["skd_wm3d"]]
            half = [f >= c / 2 for f, c in zip(full, ceiling, strict=True)]
            verdicts = ", ".join("yes" if h else "no" for h in half)
            lines.append(f"- Full weak method ≥ half the ceiling, per seed: {verdicts}.")
    if "skd_wm3d" in results and "weak_mdn" in results:
        gains = [f[key] - w[key] for f, w in zip(results["skd_wm3d"], results["weak_mdn"], strict=True)]
        lines.append(f"- Full method − weak MDN only, per seed: {', '.join(f'{g:+.1f}' for g in gains)} "
                     f"({'above in every seed' if min(gains) > 0 else 'NOT above in every seed'}).")
    if "skd_wm3d" in results and "weak_mdn_cue" in results:
        gaps = [f[key] - w[key] for f, w in zip(results["skd_wm3d"], results["weak_mdn_cue"], strict=True)]
        lines.append(f"- Not a floor — full method − the control (weak MDN given the depth orientation cue directly), "
                     f"per seed: {', '.join(f'{g:+.1f}' for g in gaps)}: what the transfer adds beyond handing the "
                     "MDN the DSN's cue.")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--warmup-epochs", type=float, default=0.6,
                        help="linear warm-up (epochs); 0.6 lifted the ceiling of the weak seed 1 from 35 to 42 on val")
    parser.add_argument("--lr", type=float, default=4e-3,
                        help="AdamW lr (chosen on the validation split: the ceiling scores 15 / 20 / 24 / 21 at "
                             "1 / 2 / 4 / 8e-3 on the hard preset, seed 0)")
    parser.add_argument("--classes", nargs="+", default=["Car"],
                        help="detected classes (the first one is scored; Car only: 45 vs 42 val AP on seed 1)")
    parser.add_argument("--difficulty", default="standard", choices=DIFFICULTIES,
                        help="road world preset (objects within 20 / 25 / 60 m)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--train-size", type=int, default=3712)
    parser.add_argument("--val-size", type=int, default=300)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--runs-dir", type=Path, default=None, help="keep the run folders here (default: temporary)")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.train_size, args.val_size, args.test_size, args.seeds = 1, 32, 16, 16, args.seeds[:1]
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    results: dict[str, list[dict[str, float]]] = {arm: [] for arm in args.arms}
    with tempfile.TemporaryDirectory(prefix="skd-bench-") as scratch:
        runs = args.runs_dir or Path(scratch)
        for seed in args.seeds:
            for arm in args.arms:
                results[arm].append(run_arm(arm, seed, args, runs))
    total = (time.perf_counter() - started) / 60
    name = "skd_wm3d_quick" if args.quick else "skd_wm3d"
    defaults = Options()
    lines = [f"# SKD-WM3D on the road world{' (QUICK: a smoke test)' if args.quick else ''}", "",
             f"Road world, `{args.difficulty}` preset (objects within "
             f"{road_config(args.difficulty).distance_range[1]:g} m), at {args.height}×{args.width}, "
             f"{args.train_size:,} training frames, detector of {', '.join(args.classes)}, {args.epochs} epochs "
             f"of batch {args.batch_size} (AdamW lr "
             f"{args.lr:g}, cosine, {args.warmup_epochs} warm-up epochs), ResNet-18 (width 32) "
             "warm-started from the shipped weights; the DSN arms share the image encoder with the MDN (recipe "
             "`shared_encoder: true`) and weigh the transfer "
             f"{defaults.weights.distillation:g} (`options.weights.distillation`); weak cues: median of the depth "
             "estimate inside each 2D box without the pixels of nearer objects' boxes, placed behind that surface by "
             f"`options.depth_offset: {defaults.depth_offset}`, projection consistency, size prior (point-to-box "
             "alignment off: it lowered validation AP); the DSN's depth-aware head is also fitted to the depth "
             "orientation cue (weight "
             f"{defaults.weights.orientation_cue:g}, `options.weights.orientation_cue`: a rectangle fit of each box's "
             "depth points in bird's-eye view, the length's axis chosen by projection consistency); seeds "
             f"{args.seeds}; test split {args.test_size:,} frames; Car, KITTI evaluation of the MDN (image only). "
             "Mean ± sample std over seeds.", "",
             "| arm | AP_BEV@0.5 R40 Mod. | AP_3D@0.5 R40 Mod. | AP_BEV@0.7 R40 Mod. | AP_3D@0.7 R40 Mod. | "
             "AP_2D@0.7 R40 Mod. | train (min) | per-seed AP_BEV@0.5 |", "|---|---|---|---|---|---|---|---|"]
    for arm, runs_of_arm in results.items():
        def column(key: str, rows: list[dict[str, float]] = runs_of_arm) -> str:
            return mean_std([r[key] for r in rows])

        lines.append(f"| {arm} ({ARMS[arm][0]}) | {column('ap_bev_r40_moderate_05')} | "
                     f"{column('ap_3d_r40_moderate_05')} | {column('ap_bev_r40_moderate_07')} | "
                     f"{column('ap_3d_r40_moderate_07')} | {column('ap_2d_r40_moderate_07')} | "
                     f"{column('train_minutes')} | "
                     + ", ".join(f"{r['ap_bev_r40_moderate_05']:.1f}" for r in runs_of_arm) + " |")
    lines += ["", "Chance level (not measured): boxes placed at random score ≈ 0 AP at these IoU thresholds.", "",
              "Paper scale (a GPU job, not run here): recipe `skd_wm3d_kitti` — real KITTI, ResNet-34 at 384×1280, "
              "Adam lr 1.25e-3, batch 16, 140 epochs (`torchrun --nproc_per_node 4 -m distill3d.cli.main train "
              "skd_wm3d_kitti options.kitti_root=… options.depth_root=…`).", "",
              "Checks (issue #10):",
              "", *checks(results), "", f"Wall time {total:.1f} min."]
    print(write_report(name, "\n".join(lines), args.out))
    json_arms = {arm: {key: [r[key] for r in rows] for key in (*METRICS, "train_minutes")}
                 for arm, rows in results.items()}
    print(write_results_json(name, json_arms, args.out, extra={"seeds": args.seeds, "minutes": total}))


if __name__ == "__main__":
    main()
