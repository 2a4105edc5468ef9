"""Pose CKD: does the representation the students distil know the unseen categories' azimuth? (validation images)

``benchmarks/pose_ckd.py`` finds the image + shape teacher far better than the image-only baseline on unseen
categories, and the distilled students no better than the baseline. This asks where the teacher's unseen knowledge
sits. A linear probe (multinomial logistic regression on standardised features, its regularisation chosen by 3-fold
cross-validation on the probe's own training images) is fitted to predict the 30° azimuth bin of images of the 4
unseen categories from one frozen representation, and scored on the unseen categories' **validation** images (the
test splits are not read). The probe's training images are the unseen categories' ``train``-split renders, which no
model was trained on (every model trains on seen categories only). Representations, per seed:

* ``teacher_fused``: the teacher's 3D-augmented feature (image + the object's point cloud), its heads' input;
* ``teacher_image``: the teacher's image-only embedding (projector of its image encoder), pulled towards the fused
  one by stage 1's InfoNCE — the representation the official KD distils into the student (KL term);
* ``teacher_encoder``: the teacher's pooled image-encoder feature (all an image-only distillation could draw on);
* ``baseline``, ``kd_kl``, ``kd_infonce``: the students' compressed feature (their heads' input), and
  ``<student>_encoder`` their pooled image-encoder feature (the teacher's encoder feature's counterpart);
* ``warm_start``: the shipped encoder's pooled feature (seen-category classification; no viewpoint training).

Beside the probes, each model's own heads (trained on the seen categories) are scored the same way (the azimuth of
their decoded viewpoint, binned): the gap between a model's heads and a probe on its features is what its heads fail
to map on categories they never saw.

If ``teacher_image`` (and ``teacher_encoder``) probe no better than the baseline's same layer, the teacher's image
pathway holds nothing about unseen categories for an image-only student to distil, and the teacher's unseen
advantage comes from its shape input (its heads against the baseline's show how much). The probes' training images
are rendered with the runs' own data seed; the validation images are the runs' unseen-category validation split
(the images ``benchmarks/pose_ckd_tuning.py`` scores). Reads the runs of ``benchmarks/pose_ckd.py``
(``runs/bench_pose_ckd``).

    python -m benchmarks.pose_ckd_probe --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegressionCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader

from benchmarks.common import AZIMUTH_BINS, RESULTS, azimuth_bin, mean_std, write_report, write_results_json
from distill3d.cli.methods import load_trained
from distill3d.data.worlds.shapes import CATEGORIES, UNSEEN_CATEGORIES, ShapesViewpointDataset
from distill3d.methods.pose_ckd import Options, build_image_encoder
from distill3d.models.pose import PoseStudent, PoseTeacher
from distill3d.models.resnet import load_encoder_weights
from distill3d.weights import resolve_encoder_weights

STUDENT_ARMS = ("baseline", "kd_kl", "kd_infonce")
REPRESENTATIONS = {
    "teacher_fused": "teacher: fused image + shape feature (its heads' input)",
    "teacher_image": "teacher: image-only embedding (what the official KD distils)",
    "teacher_encoder": "teacher: pooled image-encoder feature",
    "baseline": "student, no KD: compressed feature",
    "kd_kl": "student + logit + KL repr. KD (official): compressed feature",
    "kd_infonce": "student + logit + InfoNCE repr. KD (paper): compressed feature",
    "baseline_encoder": "student, no KD: pooled image-encoder feature",
    "kd_kl_encoder": "student + logit + KL repr. KD (official): pooled image-encoder feature",
    "kd_infonce_encoder": "student + logit + InfoNCE repr. KD (paper): pooled image-encoder feature",
    "warm_start": "the shipped warm-start encoder: pooled feature (no viewpoint training)",
}
HEADS = "_heads"
"""Suffix of the entries that hold a model's own decoded azimuth (B, 1) radians instead of a feature."""
Extractor = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]
HEAD_ROWS = {f"{arm}{HEADS}": f"{arm}: its own heads, no probe (seen-category training only)"
             for arm in ("teacher", *STUDENT_ARMS)}


def azimuth_bins(viewpoint: torch.Tensor) -> np.ndarray:
    """30° azimuth bin (0..11) of viewpoints (N, 3) radians."""
    return azimuth_bin(viewpoint[:, 0]).numpy()


def teacher_features(teacher: PoseTeacher) -> Extractor:
    """images (B, 3, S, S), points (B, P, 3) → the teacher's fused, image-embedding and encoder features."""
    def extract(images: torch.Tensor, points: torch.Tensor) -> dict[str, torch.Tensor]:
        captured: list[torch.Tensor] = []  # the encoder's output, read during the one forward pass
        hook = teacher.image_encoder.register_forward_hook(lambda module, inputs, output: captured.append(output))
        try:
            heads, fused, projected = teacher(images, points)
        finally:
            hook.remove()
        encoder = captured[0]
        return {"teacher_fused": fused, "teacher_image": projected, "teacher_encoder": encoder,
                f"teacher{HEADS}": teacher.heads.bins.decode(heads)[:, :1]}
    return extract


def student_features(student: PoseStudent, name: str) -> Extractor:
    """images → the student's compressed feature (B, F), its heads' input, and its pooled encoder feature."""
    def extract(images: torch.Tensor, points: torch.Tensor) -> dict[str, torch.Tensor]:
        encoder = student.image_encoder(images)
        feature = student.compress(encoder)
        return {name: feature, f"{name}_encoder": encoder,
                f"{name}{HEADS}": student.heads.bins.decode(student.heads(feature))[:, :1]}
    return extract


def encoder_features(encoder: torch.nn.Module, name: str) -> Extractor:
    """images → an image encoder's pooled feature."""
    return lambda images, points: {name: encoder(images)}


@torch.no_grad()
def extract(extractors: list[Extractor], dataset: ShapesViewpointDataset, batch_size: int = 200
            ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Features of every representation {name: (N, D)}, azimuth bins (N,) and category ids (N,) of a dataset."""
    features: dict[str, list[torch.Tensor]] = {}
    bins, categories = [], []
    for batch in DataLoader(dataset, batch_size=batch_size):
        for extractor in extractors:
            for name, value in extractor(batch["image"], batch["points"]).items():
                features.setdefault(name, []).append(value.float())
        bins.append(azimuth_bins(batch["viewpoint"]))
        categories.append(batch["category"].numpy())
    return ({name: torch.cat(values).numpy() for name, values in features.items()}, np.concatenate(bins),
            np.concatenate(categories))


def per_category_accuracy(correct: np.ndarray, categories: np.ndarray) -> dict[str, float]:
    """{category name: % correct} and their ``mean`` (the per-category mean of the viewpoint protocol)."""
    scores = {CATEGORIES[c]: 100.0 * float(correct[categories == c].mean()) for c in np.unique(categories)}
    scores["mean"] = float(np.mean(list(scores.values())))
    return scores


def probe_accuracy(train_features: np.ndarray, train_bins: np.ndarray, val_features: np.ndarray,
                   val_bins: np.ndarray, val_categories: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Per-category and mean exact-bin accuracy (%) of a linear probe fitted on the training features."""
    probe = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=[0.01, 0.1, 1.0], cv=3, max_iter=500,
                                                                 random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-learn's announced default changes, not ours
        probe.fit(train_features, train_bins)
    return per_category_accuracy(probe.predict(val_features) == val_bins, val_categories)


def category_only_accuracy(train_bins: np.ndarray, train_categories: np.ndarray, val_bins: np.ndarray,
                           val_categories: np.ndarray) -> dict[str, float]:
    """The floor of a probe that only knows the category: each category's most frequent training bin (%)."""
    guesses = {c: np.bincount(train_bins[train_categories == c], minlength=AZIMUTH_BINS).argmax()
               for c in np.unique(val_categories)}
    return per_category_accuracy(val_bins == np.array([guesses[c] for c in val_categories]), val_categories)


def seed_extractors(runs: Path, seed: int) -> tuple[list[Extractor], Options]:
    """The frozen models of one seed (teacher, students, the warm start they started from) as feature extractors."""
    teacher_run = load_trained(runs / f"teacher-seed{seed}" / "best.pt")
    options: Options = teacher_run.task.options
    extractors = [teacher_features(teacher_run.model.eval())]
    for arm in STUDENT_ARMS:
        extractors.append(student_features(load_trained(runs / f"{arm}-seed{seed}" / "best.pt").model.student.eval(),
                                           arm))
    warm = build_image_encoder(options)
    load_encoder_weights(warm, resolve_encoder_weights(options.pretrained_backbone or "builtin", options.backbone,
                                                        options.backbone_width))
    extractors.append(encoder_features(warm.eval(), "warm_start"))
    return extractors, options


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", type=Path, default=Path("runs/bench_pose_ckd"),
                        help="the run folders of benchmarks/pose_ckd.py")
    parser.add_argument("--probe-train", type=int, default=4800,
                        help="unseen-category train-split images the probes are fitted on")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--report-name", default="pose_ckd_probe")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    needed = ["teacher", *STUDENT_ARMS]
    missing = [f"{arm}-seed{seed}" for arm in needed for seed in args.seeds
               if not (args.runs / f"{arm}-seed{seed}" / "best.pt").exists()]
    if missing:
        raise SystemExit(f"{args.runs}: no trained run {', '.join(missing)} (run python -m benchmarks.pose_ckd first)")
    started = time.perf_counter()
    scores: dict[str, dict[str, list[float]]] = {}
    n_val = 0
    for seed in args.seeds:
        extractors, options = seed_extractors(args.runs, seed)
        data_seed = seed if options.data_seed is None else options.data_seed
        common = dict(categories=UNSEEN_CATEGORIES, image_size=options.image_size, n_points=options.num_points,
                      seed=data_seed, difficulty=options.difficulty)
        train = ShapesViewpointDataset("train", args.probe_train, **common)
        val = ShapesViewpointDataset("val", options.val_size, **common)
        n_val = len(val)
        train_features, train_bins, train_categories = extract(extractors, train)
        val_features, val_bins, val_categories = extract(extractors, val)
        for name in HEAD_ROWS:
            result = per_category_accuracy(azimuth_bins(torch.from_numpy(val_features[name])) == val_bins,
                                           val_categories)
            for key, value in result.items():
                scores.setdefault(name, {}).setdefault(key, []).append(value)
        for name in REPRESENTATIONS:
            result = probe_accuracy(train_features[name], train_bins, val_features[name], val_bins, val_categories,
                                    seed)
            for key, value in result.items():
                scores.setdefault(name, {}).setdefault(key, []).append(value)
            print(f"seed {seed} {name}: probe accuracy {result['mean']:.1f} %", flush=True)
        for key, value in category_only_accuracy(train_bins, train_categories, val_bins, val_categories).items():
            scores.setdefault("category_only", {}).setdefault(key, []).append(value)
    minutes = (time.perf_counter() - started) / 60
    columns = [*UNSEEN_CATEGORIES, "mean"]
    rows = ["| representation | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    labels = {**REPRESENTATIONS, **HEAD_ROWS,
              "category_only": "category only: each category's most frequent bin (floor)"}
    for name, label in labels.items():
        rows.append(f"| {label} | " + " | ".join(mean_std(scores[name][c]) for c in columns) + " |")

    def gap(name: str, reference: str) -> str:
        """Mean-accuracy difference between two representations: mean ± std (per seed) points."""
        values = [x - y for x, y in zip(scores[name]["mean"], scores[reference]["mean"], strict=True)]
        return f"{mean_std(values)} points ({', '.join(f'{v:+.1f}' for v in values)})"

    body = f"""# Pose CKD: what each representation knows about the unseen categories' azimuth (linear probes)

Frozen models of `benchmarks/pose_ckd.py` (`{args.runs}`), seeds {', '.join(map(str, args.seeds))}. For each
representation a linear probe (logistic regression on standardised features, regularisation by 3-fold
cross-validation on its training images) predicts the 30° azimuth bin (12 bins) of images of the unseen categories
({', '.join(UNSEEN_CATEGORIES)}): fitted on {args.probe_train:,} of their `train`-split renders (never trained on by
any model: all train on the seen categories), scored on their {n_val:,} **validation** images; exact-bin accuracy
(%), per category and averaged over categories, mean ± std over seeds. The test splits are not read. Rockets and
stools are 3- and 4-fold symmetric: their labels (`a mod 2π/n`) fill only 3–4 of the 12 bins, which the
category-only floor shows.

{chr(10).join(rows)}

Against the baseline student, on the same layer: the teacher's image-only embedding (what the official KD
distils) against the baseline's compressed feature {gap("teacher_image", "baseline")}; the teacher's fused image +
shape feature {gap("teacher_fused", "baseline")}; the teacher's pooled encoder feature against the baseline's
{gap("teacher_encoder", "baseline_encoder")}. Each model's own heads against a probe on its compressed feature:
teacher (fused) {gap("teacher_heads", "teacher_fused")}, baseline {gap("baseline_heads", "baseline")}. (The
exact bin is harsh near 0°: a prediction just below 0° falls in the last bin, while the rockets' labels,
`a mod 2π/n`, lie in [0°, 120°) — a head that predicts ≈ 0° for every rocket, as the teacher's does
(`pose_ckd_unseen_errors.md`), can score 0 % here.)

Wall time {minutes:.1f} min.
"""
    path = write_report(args.report_name, body, args.out)
    write_results_json(args.report_name, scores, args.out)
    print(path.read_text())


if __name__ == "__main__":
    main()
