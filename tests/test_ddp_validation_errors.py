"""Under DDP only rank 0 validates; an error it finds there must reach every rank (no rank left at a barrier)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parent / "helpers"


@pytest.mark.slow
def test_a_missing_monitor_after_epoch_1_is_the_same_one_line_error_on_every_rank(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(HELPERS / "ddp_monitor_worker.py"), str(tmp_path), str(tmp_path / "run")],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=180, capture_output=True, text=True,
    )
    messages = [(tmp_path / f"rank{rank}.txt").read_text() if (tmp_path / f"rank{rank}.txt").is_file() else None
                for rank in range(2)]
    assert None not in messages, done.stderr[-3000:]
    assert messages[0] == messages[1], messages
    assert "\n" not in messages[0]
    assert messages[0].startswith("ConfigError: config key 'train.monitor': 'val/neg_mse' is not a validation "
                                  "metric of this method (it reports val/mse)"), messages[0]
    assert done.returncode != 0
    assert not (tmp_path / "run" / "last.pt").exists()  # nothing saved for an epoch whose check failed
