"""benchmarks/peclr_full_labels.py: a quick run fine-tunes supervised only on every labelled image with the given
budget, scores the last model on the test split, writes the report (check per seed), the JSON in the results
schema and the validation curves."""

from __future__ import annotations

import json

import pytest


def test_quick_full_label_run_writes_report_json_and_curves(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.peclr_full_labels import main

    monkeypatch.setenv("DISTILL3D_CACHE", str(tmp_path / "cache"))
    main(["--quick", "--threads", "1", "--seeds", "0", "--steps", "64", "--lr", "2e-3", "--eval-every", "1",
          "--out", str(tmp_path)])
    report = (tmp_path / "peclr_full_labels_quick.md").read_text()
    assert "QUICK" in report and "Adam at lr 0.002" in report.replace("\n", " ")
    assert "| supervised@100 (supervised only) | 1,024 | 64 |" in report
    assert "PA-EPE ≤ 12 mm, per seed: no" in report  # 64 steps on 1,024 images cannot reach it
    document = json.loads((tmp_path / "peclr_full_labels_quick.json").read_text())
    assert set(document["arms"]) == {"supervised@100"}
    assert set(document["arms"]["supervised@100"]) == {"pa_epe_mm", "epe_mm", "pa_auc", "err_2d_px"}
    assert document["steps"] == 64 and 0 < document["arms"]["supervised@100"]["pa_epe_mm"]["mean"] < 1000
    assert (tmp_path / "peclr_full_labels_quick_curves.png").stat().st_size > 0


def test_read_curve_keeps_the_validation_pa_epe_rows(tmp_path) -> None:
    from benchmarks.peclr_full_labels import read_curve

    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,metric,value\n1,10,train/loss,3.0\n1,32,val/pa_epe_mm,20.5\n2,64,val/uv_px,4.0\n"
                    "2,64,val/pa_epe_mm,18.25\n")
    assert read_curve(path) == [(32, 20.5), (64, 18.25)]
