"""benchmarks/peclr_tuning.py: a quick run pre-trains, fine-tunes the chosen objectives (and supervised only) under
each protocol, scores the validation split only and writes the report and the JSON under a name that carries
``_quick``, a non-default pre-training length and set size, ``_cold`` (random encoders) and a non-default world
preset."""

from __future__ import annotations

import json

import pytest


def test_quick_tuning_scores_validation_only(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.peclr_tuning import main

    from distill3d.methods.peclr.task import FinetuneTask

    monkeypatch.setenv("DISTILL3D_CACHE", str(tmp_path / "cache"))

    def no_test_split(self: FinetuneTask) -> None:
        raise AssertionError("tuning must not read the test split")

    monkeypatch.setattr(FinetuneTask, "test_sets", no_test_split)
    main(["--quick", "--threads", "1", "--protocols", "frozen@400", "linear-frozen@400", "--objectives", "peclr",
          "--pretrain-epochs", "2", "--unlabelled", "512", "--cold-start", "--difficulty", "easy",
          "--out", str(tmp_path)])
    report = (tmp_path / "peclr_tuning_quick_pretrain2_unlabelled512_cold_easy.md").read_text()
    assert "from random encoders (`--cold-start`" in report.replace("\n", " ") and "preset `easy`" in report
    assert "QUICK" in report and "| frozen encoder, head only, 400 labelled images | PeCLR + fine-tune |" in report
    assert "× 2 epochs" in report.replace("\n", " ") and "PeCLR only" in report
    assert "(512 unlabelled images ×" in report
    document = json.loads((tmp_path / "peclr_tuning_quick_pretrain2_unlabelled512_cold_easy.json").read_text())
    assert set(document["arms"]) == {f"{objective}/{protocol}" for objective in ("supervised", "peclr")
                                     for protocol in ("frozen@400", "linear-frozen@400")}
    assert "| the paper's linear head on pooled features, frozen encoder, 400 labelled images | PeCLR" in report
    assert all(document["arms"][arm]["pa_epe_mm"]["mean"] > 0 for arm in document["arms"])


def test_the_long_protocol_uses_the_converging_full_label_budget() -> None:
    """``long@2000`` fine-tunes the benchmark's 2,000 labels with ``peclr_full_labels``' budget (steps, lr,
    stride-4 decoder) and leaves the other protocols on the benchmark's preset."""
    import dataclasses

    from benchmarks.peclr import FULL
    from benchmarks.peclr_full_labels import DEFAULTS
    from benchmarks.peclr_tuning import PROTOCOLS

    long = dataclasses.replace(FULL, **PROTOCOLS["long@2000"].preset_changes)
    assert (long.steps_for(FULL.low_fraction), long.finetune_lr, long.heatmap_from_stem) == (
        DEFAULTS["steps"], DEFAULTS["lr"], False)
    assert PROTOCOLS["long@2000"].labelled == FULL.labelled
    assert all(not PROTOCOLS[name].preset_changes for name in PROTOCOLS if name != "long@2000")
