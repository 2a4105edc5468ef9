"""PeCLR: where could pre-training help? Fine-tuning protocols compared on VALIDATION images only.

``benchmarks/peclr.py`` finds no pre-training effect at 10 % labels. Issue #8 asks, in that case, for honest
tuning on validation data and a diagnosis. This script pre-trains SimCLR and PeCLR once (the benchmark's budget,
seed 0) and fine-tunes supervised only / SimCLR / PeCLR under protocols that make labels scarcer or the
representation matter more, scoring the last model on the ``val`` split (the test split is never read):

* ``full@400``: full fine-tuning on 400 labelled images (10 % of a 4,000-image labelled split), i.e. 100 epochs
  over them in the benchmark's 600 steps — the paper's fine-tuning length, where labels, not steps, should bind;
* ``full@2000``: the benchmark's protocol (10 % of 20,000), scored on validation;
* ``frozen@400``: the encoder frozen, only the 2.5D head trained (what the pre-trained features alone carry);
* ``linear-full@2000``, ``linear-frozen@400``: the same with the paper's linear 2.5D head on the pooled features
  (what PeCLR's objective shapes) instead of the heat-map decoder;
* ``long@2000``: the benchmark's 2,000 labelled images fine-tuned with the budget that converges with all labels
  (``benchmarks/peclr_full_labels.py``: 7,000+ steps at lr 3e-3, stride-4 decoder), where labels, not steps, bind
  (``--objectives peclr --protocols long@2000 --report-name peclr_tuning_long``, ≈ 25–30 min; with
  ``--pretrain-epochs 12 --report-name peclr_tuning_long_pretrain12`` it asks whether longer pre-training helps there,
  with ``--difficulty hard --report-name peclr_tuning_long_hard`` whether the uniform in-plane roll lets it help).

Run: ``python -m benchmarks.peclr_tuning [--seeds 0] [--out DIR]`` (≈ 30 min on 2 cores; the linear-head
protocols: ``--protocols linear-full@2000 linear-frozen@400 --report-name peclr_tuning_linear``).
``--pretrain-epochs E`` (other than the benchmark's 4) asks whether longer pre-training helps and writes
``peclr_tuning_pretrain<E>.*``, ``--unlabelled N`` whether more varied pre-training images do
(``_unlabelled<N>``); ``--objectives`` limits the arms (supervised only is always run: the gains are measured
against it). ``--cold-start`` starts every arm from random encoders (``peclr_tuning_cold.*``);
``--difficulty hard`` uses the hands world's ``hard`` preset (uniform in-plane roll: ``peclr_tuning_hard.*``).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import RESULTS, mean_std, write_report, write_results_json
from benchmarks.peclr import FULL, LABELS, OBJECTIVES, QUICK, cold, finetune, pretrain
from benchmarks.peclr_full_labels import DEFAULTS
from distill3d.data.worlds.difficulty import DIFFICULTIES


@dataclass(frozen=True)
class Protocol:
    """One fine-tuning protocol of the tuning runs (its arms are scored on validation images)."""

    labelled: int  # size of the labelled split (the arms fine-tune on its first 10 %)
    overrides: tuple[str, ...]  # extra ``distill3d train`` overrides of every fine-tuning run
    description: str
    preset_changes: dict[str, Any] = field(default_factory=dict)  # fields of the benchmark's Preset it changes


LONG_RECIPE = {"finetune_steps": DEFAULTS["steps"], "finetune_lr": DEFAULTS["lr"], "heatmap_from_stem": False}
"""The fine-tuning budget that converges with all labels (``benchmarks/peclr_full_labels.py``, chosen there on
validation images)."""

PROTOCOLS: dict[str, Protocol] = {
    "full@400": Protocol(4_000, (), "full fine-tuning, 400 labelled images (100 epochs over them)"),
    "full@2000": Protocol(20_000, (), "full fine-tuning, 2,000 labelled images (the benchmark's 10 %)"),
    "frozen@400": Protocol(4_000, ("options.freeze_encoder=true",), "frozen encoder, head only, 400 labelled images"),
    "linear-full@2000": Protocol(20_000, ("options.head=linear",),
                                 "the paper's linear head on pooled features, full fine-tuning, 2,000 labelled images"),
    "linear-frozen@400": Protocol(4_000, ("options.head=linear", "options.freeze_encoder=true"),
                                  "the paper's linear head on pooled features, frozen encoder, 400 labelled images"),
    "long@2000": Protocol(20_000, (), "full fine-tuning, 2,000 labelled images, 7,000+ steps at lr 3e-3 (the budget "
                          "that converges with all labels; ≈ 230 epochs over them)", LONG_RECIPE),
}
DEFAULT_PROTOCOLS = ["full@400", "full@2000", "frozen@400"]
"""The committed ``peclr_tuning.md``'s protocols; the linear-head ones were added later (their own report)."""
METRICS = ("pa_epe_mm", "epe_mm", "uv_px")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="fine-tuning seeds")
    parser.add_argument("--protocols", nargs="+", default=DEFAULT_PROTOCOLS, choices=list(PROTOCOLS))
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=list(OBJECTIVES))
    parser.add_argument("--pretrain-epochs", type=int, default=None,
                        help=f"pre-training epochs (default: the benchmark's {FULL.pretrain_epochs})")
    parser.add_argument("--unlabelled", type=int, default=None,
                        help=f"unlabelled pre-training images (default: the benchmark's {FULL.unlabelled:,})")
    parser.add_argument("--cold-start", action="store_true",
                        help="random encoders instead of the shipped warm start, for every arm (report name + _cold)")
    parser.add_argument("--difficulty", default="standard", choices=DIFFICULTIES,
                        help="the hands world's preset (report name + _<difficulty> when not standard)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, not a result")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--report-name", default=None,
                        help="name of the report and JSON (default peclr_tuning, + _quick, + _pretrain<E>, "
                             "+ _unlabelled<N>, + _cold, + _<difficulty>)")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    name = "peclr_tuning_quick" if args.quick else "peclr_tuning"
    for size_field, value, suffix in (("pretrain_epochs", args.pretrain_epochs, "pretrain"),
                                      ("unlabelled", args.unlabelled, "unlabelled")):
        if value is not None and value != getattr(preset, size_field):  # a changed size names the report
            preset, name = dataclasses.replace(preset, **{size_field: value}), f"{name}_{suffix}{value}"
    if args.cold_start:
        preset, name = cold(preset, name)
    if args.difficulty != "standard":
        preset, name = dataclasses.replace(preset, difficulty=args.difficulty), f"{name}_{args.difficulty}"
    name = args.report_name or name
    objectives = [o for o in OBJECTIVES if o == "supervised" or o in args.objectives]
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    scores: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="peclr-tuning-") as scratch:
        runs = Path(scratch)
        checkpoints = {o: pretrain(o, preset, 0, args.threads, runs) for o in objectives if o != "supervised"}
        checkpoints["supervised"] = None
        pretrain_minutes = (time.perf_counter() - started) / 60
        for protocol in args.protocols:
            chosen = PROTOCOLS[protocol]
            overrides = chosen.overrides
            changes = {key: value for key, value in chosen.preset_changes.items()
                       if not (args.quick and key == "finetune_steps")}  # a quick run keeps its tiny budget
            protocol_preset = dataclasses.replace(preset, **changes,
                                                  labelled=chosen.labelled if not args.quick else preset.labelled)
            for objective in objectives:
                arm = f"{objective}/{protocol}"
                for seed in args.seeds:
                    outcome = finetune(protocol_preset, preset.low_fraction, seed, args.threads, runs,
                                       checkpoints[objective], f"{objective}-{protocol.replace('@', '-')}-s{seed}",
                                       split="val", extra_overrides=overrides)
                    for metric in METRICS:
                        scores.setdefault(arm, {}).setdefault(metric, []).append(float(outcome[metric]))
                    print(f"{arm} seed {seed}: val PA-EPE {outcome['pa_epe_mm']:.2f} mm, n = {outcome['n_train']}",
                          flush=True)
    minutes = (time.perf_counter() - started) / 60
    rows = ["| protocol | arm | val PA-EPE (mm) ↓ | val EPE (mm) ↓ | val 2D error (px) ↓ | PA-EPE gain over "
            "supervised only |", "|---|---|---|---|---|---|"]
    for protocol in args.protocols:
        reference = scores[f"supervised/{protocol}"]["pa_epe_mm"]
        for objective in objectives:
            values = scores[f"{objective}/{protocol}"]
            gains = [100 * (r - v) / r for v, r in zip(values["pa_epe_mm"], reference, strict=True)]
            rows.append(f"| {PROTOCOLS[protocol].description} | {LABELS[objective]} | "
                        f"{mean_std(values['pa_epe_mm'], 2)} | "
                        f"{mean_std(values['epe_mm'], 1)} | {mean_std(values['uv_px'], 2)} | "
                        f"{', '.join(f'{g:+.1f} %' for g in gains)} |")
    length_note = (f" instead of the benchmark's {FULL.pretrain_epochs}"
                   if preset.pretrain_epochs != FULL.pretrain_epochs and not args.quick else "")
    size_note = (f" (the benchmark's: {FULL.unlabelled:,})"
                 if preset.unlabelled != FULL.unlabelled and not args.quick else "")
    names = [LABELS[o].split(" ")[0] for o in objectives if o != "supervised"]
    pretrained = " and ".join(names) + (" alike" if len(names) > 1 else " only")
    start = ("from the shipped warm start" if preset.warm_start
             else "from random encoders (`--cold-start`: every arm, supervised only included)")
    title = "# PeCLR: fine-tuning protocols on validation images" + (" (QUICK: a smoke test)" if args.quick else "")
    body = f"""{title}

Pre-training as in `benchmarks/peclr.py` ({preset.unlabelled:,} unlabelled images{size_note} × {preset.pretrain_epochs}
epochs{length_note}, batch {preset.pretrain_batch}, {start}; {pretrained};
{pretrain_minutes:.1f} min). Every fine-tuning run: {preset.finetune_steps}+ steps of batch {preset.finetune_batch}
(unless its protocol names another budget), the last model scored on the **validation** split ({preset.val}
images; the test split is not read). Seeds {args.seeds}; hands world preset `{preset.difficulty}`. Gains are
relative PA-EPE reductions against supervised only under the same protocol (issue #8's target: PeCLR ≥ 5 %).

{chr(10).join(rows)}

Wall time {minutes:.1f} min.
"""
    path = write_report(name, body, args.out)
    write_results_json(name, scores, args.out)
    print(path.read_text())


if __name__ == "__main__":
    main()
