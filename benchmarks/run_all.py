"""`make bench`: run every benchmark in turn, with the arguments of every committed report (about 8–9 h on 2
cores); each writes its report under benchmarks/results/. The shipped encoder weights are not rebuilt here:
`python -m benchmarks.pretrain_backbone`. The tuning runs after their benchmark (the Pose CKD tuning reuses its
teachers, the unseen-error breakdown and the probes its runs); the claims check, last, reads every JSON file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS: list[list[str]] = [
    ["benchmarks.precision"], ["benchmarks.world_speed"], ["benchmarks.throughput"],
    ["benchmarks.learnability", "--arms", "shapes", "--seeds", "0", "1", "2"],
    ["benchmarks.learnability", "--arms", "hands", "--seeds", "0", "1", "2"],
    ["benchmarks.pose_ckd", "--teacher-epochs", "6", "--student-epochs", "3"],
    ["benchmarks.pose_ckd_tuning", "--seeds", "0", "1"],
    ["benchmarks.pose_ckd_unseen_errors", "--seeds", "0", "1", "2"],
    ["benchmarks.pose_ckd_probe", "--seeds", "0", "1", "2"],
    ["benchmarks.pose_ckd_tuning", "--seeds", "0", "1", "2", "--arms", "baseline_cold", "kd_kl_cold", "--baseline",
     "baseline_cold", "--report-name", "pose_ckd_tuning_cold", "--runs", "runs/pose_ckd_tuning_cold"],
    ["benchmarks.pose_ckd_tuning", "--seeds", "0", "1", "2", "--arms", "baseline_cold", "kd_kl_cold", "--baseline",
     "baseline_cold", "--student-epochs", "6", "--report-name", "pose_ckd_tuning_cold_e6", "--runs",
     "runs/pose_ckd_tuning_cold_e6"],
    ["benchmarks.pose_ckd_tuning", "--seeds", "0", "1", "2", "--arms", "baseline_cold", "kd_kl_cold", "--baseline",
     "baseline_cold", "--student-epochs", "10", "--report-name", "pose_ckd_tuning_cold_e10", "--runs",
     "runs/pose_ckd_tuning_cold_e10"],
    ["benchmarks.peclr", "--seeds", "0", "1", "2"], ["benchmarks.peclr_full_labels", "--seeds", "0", "1", "2"],
    ["benchmarks.peclr_tuning", "--seeds", "0"],
    ["benchmarks.peclr_tuning", "--seeds", "0", "--objectives", "peclr", "--protocols", "frozen@400", "full@400",
     "--pretrain-epochs", "12"],
    ["benchmarks.peclr_tuning", "--seeds", "0", "--objectives", "peclr", "--protocols", "linear-full@2000",
     "linear-frozen@400", "--report-name", "peclr_tuning_linear"],
    ["benchmarks.peclr_tuning", "--cold-start", "--protocols", "full@2000"],
    ["benchmarks.peclr_tuning", "--difficulty", "hard", "--protocols", "full@2000"],
    ["benchmarks.peclr_tuning", "--seeds", "0", "--objectives", "peclr", "--protocols", "long@2000", "--report-name",
     "peclr_tuning_long"],
    ["benchmarks.peclr_tuning", "--seeds", "0", "--objectives", "peclr", "--protocols", "long@2000",
     "--pretrain-epochs", "12", "--report-name", "peclr_tuning_long_pretrain12"],
    ["benchmarks.peclr_tuning", "--seeds", "0", "--objectives", "peclr", "--protocols", "long@2000",
     "--difficulty", "hard", "--report-name", "peclr_tuning_long_hard"],
    ["benchmarks.peclr_tuning", "--seeds", "0", "--objectives", "peclr", "--protocols", "long@2000",
     "--unlabelled", "60000", "--report-name", "peclr_tuning_long_unlabelled60000"],
    ["benchmarks.peclr_tuning", "--seeds", "0", "--objectives", "simclr", "--protocols", "long@2000",
     "--report-name", "peclr_tuning_long_simclr"],
    ["benchmarks.skd_wm3d", "--seeds", "0", "1", "2"], ["benchmarks.dgcnn_speed"],
    ["benchmarks.pointmcd", "--seeds", "0", "1", "2"], ["benchmarks.fuzz_readers", "--seconds-per-reader", "30"],
    ["benchmarks.claims"],
]
"""``python -m`` arguments of every run, in order (the commands written in the committed reports' headers)."""


def committed_commands(results: Path) -> set[str]:
    """The ``python -m ...`` commands written in the headers of the committed reports (run folders left out)."""
    commands = set()
    for path in results.glob("*.md"):
        match = re.search(r"^Command: `python -m (.+?)`", path.read_text(), re.MULTILINE)
        if match:
            commands.add(re.sub(r" --runs-dir \S+", "", match.group(1)))
    return commands


def main() -> None:
    failed = []
    for arguments in BENCHMARKS:
        print(f"== {' '.join(arguments)}", flush=True)
        if subprocess.run([sys.executable, "-m", *arguments]).returncode != 0:
            failed.append(" ".join(arguments))
    if failed:
        sys.exit(f"benchmarks failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
