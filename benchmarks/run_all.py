"""`make bench`: run every benchmark in turn (about 5.5 h on 2 cores); each writes its report under
benchmarks/results/. The shipped encoder weights are not rebuilt here: `python -m benchmarks.pretrain_backbone`."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ["benchmarks.precision", "benchmarks.world_speed", "benchmarks.throughput", "benchmarks.learnability",
              "benchmarks.pose_ckd", "benchmarks.pose_ckd_tuning", "benchmarks.peclr", "benchmarks.peclr_tuning",
              "benchmarks.skd_wm3d", "benchmarks.dgcnn_speed",
              "benchmarks.pointmcd", "benchmarks.fuzz_readers"]


def main() -> None:
    failed = []
    for module in BENCHMARKS:
        print(f"== {module}", flush=True)
        if subprocess.run([sys.executable, "-m", module]).returncode != 0:
            failed.append(module)
    if failed:
        sys.exit(f"benchmarks failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
