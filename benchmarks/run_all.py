"""`make bench`: run every benchmark in turn (about 65 min on 2 cores); each writes its report under
benchmarks/results/."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ["benchmarks.precision", "benchmarks.world_speed", "benchmarks.pose_ckd", "benchmarks.peclr"]


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
