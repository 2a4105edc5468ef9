"""Pose CKD: where the azimuth predictions on each category go (validation images only).

Reads the trained runs of ``benchmarks/pose_ckd.py`` (``runs/bench_pose_ckd/<arm>-seed<N>/best.pt``) and, for every
unseen category and for the seen objects of revolution (bottle, cup: labelled azimuth 0), reports Acc@π/6 and how
concentrated the predicted azimuths are: the share of the category's images whose prediction falls in the single
most frequent 30° bin and in the three most frequent ones (a model that reads the azimuth spreads its predictions
as the labels are spread, about 1/12 and 3/12 per bin; one that cannot collapses onto a few), and the share
predicted within ±15° of 0°, the label of every object of revolution. The test splits are not read.

    python -m benchmarks.pose_ckd_unseen_errors --seeds 0 1 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from benchmarks.common import AZIMUTH_BINS, RESULTS, azimuth_bin, mean_std, write_report, write_results_json
from distill3d.cli.methods import load_trained
from distill3d.data.worlds.shapes import CATEGORIES, UNSEEN_CATEGORIES
from distill3d.metrics.viewpoint import viewpoint_metrics

ARMS = ("teacher", "baseline", "kd_kl", "kd_infonce")
REVOLUTION_CATEGORIES = ("bottle", "cup")


def azimuth_spread(azimuth: torch.Tensor) -> dict[str, float]:
    """Concentration of predicted azimuths (N,) radians: % in the most frequent 30° bin, in the three most frequent,
    and within ±15° of 0."""
    degrees = torch.rad2deg(azimuth).remainder(360.0)
    counts = torch.bincount(azimuth_bin(azimuth), minlength=AZIMUTH_BINS).double()
    top = counts.sort(descending=True).values
    near_zero = torch.minimum(degrees, 360.0 - degrees) <= 15.0
    return {"top_bin": 100 * (top[0] / counts.sum()).item(), "top3_bins": 100 * (top[:3].sum() / counts.sum()).item(),
            "near_0": 100 * near_zero.double().mean().item()}


def category_scores(run: Path) -> dict[str, float]:
    """``<category>_<metric>`` for the unseen categories and the seen objects of revolution of one run."""
    trained = load_trained(run / "best.pt")
    task, model = trained.task, trained.model.eval()
    scores: dict[str, float] = {}
    validation = task.validation_sets()
    for split, names in (("val_unseen", UNSEEN_CATEGORIES), ("val_seen", REVOLUTION_CATEGORIES)):
        with torch.no_grad():
            predicted, truth, categories = task.predictions(
                model, DataLoader(validation[split], batch_size=128, collate_fn=task.collate))
        per_category = viewpoint_metrics(predicted, truth, categories).per_category
        for name in names:
            index = CATEGORIES.index(name)
            scores[f"{name}_acc_pi6"] = per_category[str(index)].acc_pi_6_percent
            for key, value in azimuth_spread(predicted[categories == index, 0]).items():
                scores[f"{name}_{key}"] = value
    return scores


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS))
    parser.add_argument("--runs", type=Path, default=Path("runs/bench_pose_ckd"),
                        help="the run folders of benchmarks/pose_ckd.py")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    missing = [f"{arm}-seed{seed}" for arm in args.arms for seed in args.seeds
               if not (args.runs / f"{arm}-seed{seed}" / "best.pt").exists()]
    if missing:
        raise SystemExit(f"{args.runs}: no trained run {', '.join(missing)} (run python -m benchmarks.pose_ckd first)")
    scores = {(arm, seed): category_scores(args.runs / f"{arm}-seed{seed}") for arm in args.arms for seed in args.seeds}
    categories = [*UNSEEN_CATEGORIES, *REVOLUTION_CATEGORIES]
    rows = ["| arm | category | Acc@π/6 (%) | in the top 30° bin (%) | in the top three bins (%) "
            "| within ±15° of 0° (%) |", "|---|---|---|---|---|---|"]
    for arm in args.arms:
        for name in categories:
            cells = [mean_std([scores[arm, seed][f"{name}_{key}"] for seed in args.seeds])
                     for key in ("acc_pi6", "top_bin", "top3_bins", "near_0")]
            kind = "unseen" if name in UNSEEN_CATEGORIES else "seen, revolution"
            rows.append(f"| {arm} | {name} ({kind}) | " + " | ".join(cells) + " |")
    uniform = 100 / AZIMUTH_BINS
    body = f"""# Pose CKD: where the azimuth predictions go, per category (validation images)

The best checkpoints of `benchmarks/pose_ckd.py` (`{args.runs}`), seeds {", ".join(map(str, args.seeds))}; mean ± std
over seeds. For each category: Acc@π/6, and the share of its validation images whose predicted azimuth falls in the
most frequent 30° bin, in the three most frequent bins, and within ±15° of 0° (the label of the objects of
revolution). Predictions spread like the labels put ≈ {uniform:.0f} % in one bin and ≈ {3 * uniform:.0f} % in three
(rockets and stools, 3- and 4-fold, have labels in [0°, 90°) or [0°, 120°), so fewer bins); a model that cannot read
a category's azimuth collapses onto a few. The test splits are not read.

{chr(10).join(rows)}
"""
    path = write_report("pose_ckd_unseen_errors", body, args.out)
    write_results_json("pose_ckd_unseen_errors", {arm: {key: [scores[arm, seed][key] for seed in args.seeds]
                                                        for key in scores[arm, args.seeds[0]]}
                                                  for arm in args.arms}, args.out)
    print(path.read_text())


if __name__ == "__main__":
    main()
