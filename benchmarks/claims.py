"""Check every headline claim against the committed benchmark JSON files: is each floor met, in every seed?

Reads only ``benchmarks/results/*.json`` (written by the benchmarks themselves) and writes ``claims.md`` and
``claims.json``: one row per claim with its floor, the measured mean, the per-seed values and whether the floor is
met. A claim "in every seed" is met only when every seed's value passes the floor; a relative gain is
``100 · (reference − arm) / reference`` of an error metric. A claim that is not met is a reported null result: its
diagnosis is in the README's "honest reading" and the tuning reports named there. Runs in a second; ``make bench``
runs it last.

    python -m benchmarks.claims
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import RESULTS, write_report, write_results_json

Report = dict
"""One benchmark's parsed JSON file: ``{"command", "arms": {ARM: {METRIC: {"mean", "std", "per_seed"}}}}``."""
Results = dict[str, Report]
"""report name → its parsed JSON."""


@dataclass(frozen=True)
class Claim:
    """One floor. ``values`` maps the JSON of the report ``source`` to one value per seed; the claim is met when
    ``passes`` holds for every seed's value (``every_seed``) or for their mean."""

    name: str
    source: str
    floor: str
    values: Callable[[Report], list[float]]
    passes: Callable[[float], bool]
    every_seed: bool = True
    unit: str = ""


def per_seed(arm: str, metric: str) -> Callable[[Report], list[float]]:
    """The per-seed values of one arm's metric."""
    return lambda report: [float(v) for v in report["arms"][arm][metric]["per_seed"]]


def difference(arm: str, reference: str, metric: str) -> Callable[[Report], list[float]]:
    """Per seed: ``arm − reference`` (seeds paired by position, as every benchmark writes them)."""
    def values(report: Report) -> list[float]:
        left, right = report["arms"][arm][metric]["per_seed"], report["arms"][reference][metric]["per_seed"]
        if len(left) != len(right):
            raise ValueError(f"{arm} has {len(left)} seeds, {reference} {len(right)}")
        return [float(a) - float(b) for a, b in zip(left, right, strict=True)]
    return values


def relative_gain(arm: str, reference: str, metric: str) -> Callable[[Report], list[float]]:
    """Per seed: ``100 · (reference − arm) / reference`` for an error metric (positive = the arm is better)."""
    def values(report: Report) -> list[float]:
        references = report["arms"][reference][metric]["per_seed"]
        return [100 * -gap / float(ref) for gap, ref in
                zip(difference(arm, reference, metric)(report), references, strict=True)]
    return values


def ratio(arm: str, numerator: str, denominator: str) -> Callable[[Report], list[float]]:
    """Per measurement: ``numerator / denominator`` of one arm's two metrics, in %."""
    def values(report: Report) -> list[float]:
        metrics = report["arms"][arm]
        return [100 * float(a) / float(b) for a, b in
                zip(metrics[numerator]["per_seed"], metrics[denominator]["per_seed"], strict=True)]
    return values


def at_least(floor: float) -> Callable[[float], bool]:
    return lambda value: value >= floor


def at_most(ceiling: float) -> Callable[[float], bool]:
    return lambda value: value <= ceiling


def above(floor: float) -> Callable[[float], bool]:
    return lambda value: value > floor


CLAIMS: tuple[Claim, ...] = (
    Claim("shapes world learnable: seen Acc@π/6", "learnability", "≥ 80 %",
          per_seed("shapes", "seen_acc_pi6"), at_least(80), unit="%"),
    Claim("hands world learnable: 2D error", "learnability", "≤ 3 px",
          per_seed("hands", "err_2d_px"), at_most(3), unit=" px"),
    Claim("hands world learnable: PA-EPE", "learnability", "≤ 12 mm",
          per_seed("hands", "pa_epe_mm"), at_most(12), unit=" mm"),
    Claim("Pose CKD student loop / raw step", "throughput", "≥ 85 %",
          ratio("pose_ckd_student", "loop_samples_per_s", "raw_step_samples_per_s"), at_least(85),
          unit="%"),
    Claim("PeCLR fine-tuning loop / raw step", "throughput", "≥ 85 %",
          ratio("peclr_finetune", "loop_samples_per_s", "raw_step_samples_per_s"), at_least(85),
          unit="%"),
    Claim("Pose CKD: teacher − baseline, unseen Acc@π/6", "pose_ckd", "≥ +10 points",
          difference("teacher", "baseline", "unseen_acc_pi6"), at_least(10), unit=" pts"),
    Claim("Pose CKD: baseline seen Acc@π/6", "pose_ckd", "≥ 70 %",
          per_seed("baseline", "seen_acc_pi6"), at_least(70), unit="%"),
    Claim("Pose CKD: KD (logit KL) − baseline, unseen Acc@π/6", "pose_ckd", "≥ +3 points",
          difference("kd_kl", "baseline", "unseen_acc_pi6"), at_least(3), unit=" pts"),
    Claim("Pose CKD: KD (InfoNCE) − baseline, unseen Acc@π/6", "pose_ckd", "≥ +3 points",
          difference("kd_infonce", "baseline", "unseen_acc_pi6"), at_least(3), unit=" pts"),
    Claim("PeCLR @10 % labels: PA-EPE gain over supervised only", "peclr", "≥ 5 %",
          relative_gain("peclr@10", "supervised@10", "pa_epe_mm"), at_least(5), unit="%"),
    Claim("PeCLR @10 % labels: PA-EPE gain over SimCLR", "peclr", "> 0 % (PeCLR < SimCLR)",
          relative_gain("peclr@10", "simclr@10", "pa_epe_mm"), above(0), every_seed=False, unit="%"),
    Claim("SimCLR @10 % labels: PA-EPE gain over supervised only", "peclr", "> 0 % (SimCLR < supervised)",
          relative_gain("simclr@10", "supervised@10", "pa_epe_mm"), above(0), every_seed=False, unit="%"),
    Claim("supervised only @100 % labels: PA-EPE", "peclr_full_labels", "≤ 12 mm",
          per_seed("supervised@100", "pa_epe_mm"), at_most(12), unit=" mm"),
    Claim("SKD-WM3D − weak MDN: AP3D R40 moderate @0.5", "skd_wm3d", "> 0 points",
          difference("skd_wm3d", "weak_mdn", "ap_3d_r40_moderate_05"), above(0), unit=" pts"),
    Claim("PointMCD: PointNet distilled − scratch, OA @10 % labels", "pointmcd", "> 0 points",
          difference("cls_pointnet_distilled", "cls_pointnet_scratch", "oa"), above(0), unit=" pts"),
    Claim("PointMCD: DGCNN distilled − scratch, OA @10 % labels", "pointmcd", "> 0 points",
          difference("cls_dgcnn_distilled", "cls_dgcnn_scratch", "oa"), above(0), unit=" pts"),
    Claim("PointMCD: part segmentation distilled − scratch, instance mIoU", "pointmcd", "> 0 points",
          difference("seg_pointnet_distilled", "seg_pointnet_scratch", "instance_miou"), above(0),
          unit=" pts"),
)


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    values: list[float]
    met: bool

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)


def judge(claim: Claim, results: Results) -> Verdict:
    """Evaluate one claim: met when every seed passes (``every_seed``) or the mean passes."""
    values = claim.values(results[claim.source])
    met = all(claim.passes(v) for v in values) if claim.every_seed else claim.passes(statistics.fmean(values))
    return Verdict(claim, values, met)


def load_results(results_dir: Path, names: set[str]) -> Results:
    """Parse ``<results_dir>/<name>.json`` for every name (one clear error naming a missing file)."""
    loaded: Results = {}
    for name in sorted(names):
        path = results_dir / f"{name}.json"
        if not path.is_file():
            raise SystemExit(f"{path}: missing; run the benchmark that writes it (see benchmarks/run_all.py)")
        loaded[name] = json.loads(path.read_text())
    return loaded


def render(verdicts: list[Verdict], results: Results) -> str:
    lines = ["Every headline claim checked against the committed benchmark JSON files (nothing is re-run). "
             "\"every seed\": the floor must hold for each seed's value; \"mean\": for the mean over seeds. "
             "A claim not met is a reported null result — its diagnosis is in the README's honest reading.", "",
             "| claim | source | floor | over | measured (mean) | per seed | met |", "|---|---|---|---|---|---|---|"]
    for verdict in verdicts:
        claim = verdict.claim
        seeds = ", ".join(f"{v:+.1f}" if claim.unit == " pts" else f"{v:.2f}" for v in verdict.values)
        mean = f"{verdict.mean:+.1f}" if claim.unit == " pts" else f"{verdict.mean:.2f}"
        lines.append(f"| {claim.name} | `{claim.source}.json` | {claim.floor} | "
                     f"{'every seed' if claim.every_seed else 'mean'} | {mean}{claim.unit} | {seeds} | "
                     f"{'yes' if verdict.met else '**no**'} |")
    met = sum(v.met for v in verdicts)
    lines += ["", f"**{met} of {len(verdicts)} claims met.**", "", "Sources (the command that wrote each file):", ""]
    lines += [f"- `{name}.json`: `{document['command']}`" for name, document in sorted(results.items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the benchmark JSON files to read")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = load_results(args.results, {claim.source for claim in CLAIMS})
    verdicts = [judge(claim, results) for claim in CLAIMS]
    report = render(verdicts, results)
    write_report("claims", report, args.out)
    # the results schema: one arm per claim, its per-seed values as metric "value", met (1) or not (0) as "met"
    write_results_json("claims", {v.claim.name: {"value": v.values, "met": [float(v.met)]} for v in verdicts},
                       args.out, extra={"claims": [{"claim": v.claim.name, "source": v.claim.source,
                                                    "floor": v.claim.floor, "every_seed": v.claim.every_seed,
                                                    "met": v.met} for v in verdicts]})
    print(report)


if __name__ == "__main__":
    main()
