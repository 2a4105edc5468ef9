"""Under DDP only rank 0 validates; an error it finds there must reach every rank (no rank left at a barrier)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import torchrun_unchecked

HELPERS = Path(__file__).resolve().parent / "helpers"


@pytest.mark.slow
def test_a_missing_monitor_after_epoch_1_is_the_same_one_line_error_on_every_rank(tmp_path: Path) -> None:
    done = torchrun_unchecked(HELPERS / "ddp_monitor_worker.py", tmp_path, tmp_path / "run", timeout=180)
    messages = [(tmp_path / f"rank{rank}.txt").read_text() if (tmp_path / f"rank{rank}.txt").is_file() else None
                for rank in range(2)]
    assert None not in messages, done.stderr[-3000:]
    assert messages[0] == messages[1], messages
    assert "\n" not in messages[0]
    assert messages[0].startswith("ConfigError: config key 'train.monitor': 'val/neg_mse' is not a validation "
                                  "metric of this method (it reports val/mse)"), messages[0]
    assert done.returncode != 0
    assert not (tmp_path / "run" / "last.pt").exists()  # nothing saved for an epoch whose check failed
