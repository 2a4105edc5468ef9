"""benchmarks/claims.py: every headline claim checked from the committed JSON files, per seed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from benchmarks.claims import CLAIMS, judge, load_results, main
from benchmarks.common import RESULTS


def _copy_results(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    results.mkdir()
    for name in {claim.source for claim in CLAIMS}:
        shutil.copy(RESULTS / f"{name}.json", results / f"{name}.json")
    return results


def _set_per_seed(results: Path, report: str, arm: str, metric: str, values: list[float]) -> None:
    path = results / f"{report}.json"
    document = json.loads(path.read_text())
    document["arms"][arm][metric]["per_seed"] = values
    path.write_text(json.dumps(document))


def _verdict(results: Path, name: str):
    claim = next(c for c in CLAIMS if c.name == name)
    return judge(claim, load_results(results, {claim.source}))


def test_every_claim_reads_the_committed_results() -> None:
    """Each claim's arms and metrics exist in the committed JSON files, with one value per seed."""
    results = load_results(RESULTS, {claim.source for claim in CLAIMS})
    for claim in CLAIMS:
        verdict = judge(claim, results)
        assert verdict.values and all(v == v for v in verdict.values), claim.name


def test_a_floor_in_every_seed_fails_when_one_seed_misses_it(tmp_path: Path) -> None:
    results = _copy_results(tmp_path)
    name = "Pose CKD: KD (logit KL) − baseline, unseen Acc@π/6"
    _set_per_seed(results, "pose_ckd", "baseline", "unseen_acc_pi6", [20.0, 20.0, 20.0])
    _set_per_seed(results, "pose_ckd", "kd_kl", "unseen_acc_pi6", [24.0, 23.5, 26.0])
    verdict = _verdict(results, name)
    assert verdict.met and verdict.values == pytest.approx([4.0, 3.5, 6.0])
    _set_per_seed(results, "pose_ckd", "kd_kl", "unseen_acc_pi6", [30.0, 22.0, 30.0])  # mean +7.3, one seed +2
    assert not _verdict(results, name).met


def test_relative_gain_of_an_error_metric_is_positive_when_the_arm_is_better(tmp_path: Path) -> None:
    results = _copy_results(tmp_path)
    _set_per_seed(results, "peclr", "supervised@10", "pa_epe_mm", [20.0, 20.0, 20.0])
    _set_per_seed(results, "peclr", "peclr@10", "pa_epe_mm", [18.0, 19.0, 18.8])  # 10 %, 5 %, 6 % better
    verdict = _verdict(results, "PeCLR @10 % labels: PA-EPE gain over supervised only")
    assert verdict.values == pytest.approx([10.0, 5.0, 6.0]) and verdict.met


def test_the_report_lists_every_claim_and_a_missing_file_is_one_line(tmp_path: Path) -> None:
    results = _copy_results(tmp_path)
    main(["--results", str(results), "--out", str(tmp_path)])
    report = (tmp_path / "claims.md").read_text()
    assert all(claim.name in report for claim in CLAIMS)
    document = json.loads((tmp_path / "claims.json").read_text())
    assert [c["claim"] for c in document["claims"]] == [claim.name for claim in CLAIMS]
    assert set(document["arms"]) == {claim.name for claim in CLAIMS}  # the results schema every JSON follows
    for claim in CLAIMS:
        arm = document["arms"][claim.name]
        assert set(arm["value"]) == {"mean", "std", "per_seed"} and arm["met"]["per_seed"] in ([0.0], [1.0])
    (results / "pose_ckd.json").unlink()
    with pytest.raises(SystemExit, match=r"pose_ckd\.json: missing"):
        main(["--results", str(results), "--out", str(tmp_path)])
