"""Long fuzz run of every file reader and the config loader (issue #12): mutate a valid file thousands of times
and count the outcomes per reader — accepted with valid values, refused with the library's own one-line error,
or (failures) a raw exception or an accepted impossible value. ``make test`` runs the same properties with a
small hypothesis budget (tests/test_reader_properties.py, tests/test_mat_isolation.py,
tests/test_config_hardening.py); this is the long version.

    python -m benchmarks.fuzz_readers [--seconds-per-reader 120] [--seed 0] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.common import write_report

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

from distill3d.data.viewpoint_common.annotations import read_annotation_file  # noqa: E402
from distill3d.engine.config import load_run_config  # noqa: E402
from distill3d.errors import Distill3dError  # noqa: E402
from test_pascal3d import annotated_object, write_record  # noqa: E402
from test_reader_properties import CHECKS, HOSTILE, SEEDS  # noqa: E402

CONFIG_SEED = (b"method: shape_classification\nseed: 3\nname: fuzz\ntrain:\n  epochs: 2\n  batch_size: 8\n"
               b"  optimizer: {name: adamw, lr: 1.0e-3}\n  grad_clip: 1.0\n  monitor: val/acc\n"
               b"options:\n  num_points: 64\n  ranges: [0.5, 1.5]\n")


def mutate(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 3)):
        position = rng.randint(0, len(data))
        action = rng.choice(["flip", "cut", "insert", "hostile", "delete"])
        if action == "flip" and position < len(data):
            data[position] = rng.randrange(256)
        elif action == "cut":
            del data[position:]
        elif action == "insert":
            data[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
        elif action == "hostile":
            data[position:position] = rng.choice([*HOSTILE, b"*a", b"&a ", b"{", b"[", b"method: x\n"])
        elif action == "delete":
            del data[position : position + rng.randint(1, 8)]
    return bytes(data)


def check_mat(path: Path) -> None:
    table = read_annotation_file(path)
    for name in ("distance", "focal", "viewport"):
        assert np.all(np.isnan(table[name]) | (table[name] > 0))


def check_config(path: Path) -> None:
    config = load_run_config(path)
    dumped = config.model_dump()
    stack = [dumped]
    while stack:
        value = stack.pop()
        if isinstance(value, float):
            assert np.isfinite(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    assert config.seed >= 0


def fuzz(name: str, seed: bytes, check: Callable[[Path], None], folder: Path, seconds: float,
         rng: random.Random) -> tuple[Counter, list[str]]:
    outcomes: Counter = Counter()
    failures: list[str] = []
    path = folder / name
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        content = mutate(rng, seed)
        path.write_bytes(content)
        try:
            check(path)
            outcomes["accepted, valid"] += 1
        except Distill3dError:
            outcomes["refused: library error"] += 1
        except AssertionError:
            outcomes["FAIL: impossible value accepted"] += 1
            failures.append(f"impossible value accepted for input {content[:120]!r}")
        except Exception as error:  # the failures this run exists to find
            outcomes[f"FAIL: raw {type(error).__name__}"] += 1
            where = traceback.extract_tb(error.__traceback__)[-1]
            failures.append(f"{type(error).__name__} at {Path(where.filename).name}:{where.lineno} "
                            f"for input {content[:120]!r}")
    return outcomes, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds-per-reader", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows, all_failures = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_record(folder / "seed.mat", [annotated_object("car", (10, 10, 40, 30)),
                                           annotated_object("bus", (5, 5, 20, 20))], "a.jpg")
        readers = {name: (file_name, content, CHECKS[name]) for name, (file_name, content) in SEEDS.items()}
        readers["pascal3d_mat"] = ("record.mat", (folder / "seed.mat").read_bytes(), check_mat)
        readers["config_yaml"] = ("cfg.yaml", CONFIG_SEED, check_config)
        for name, (file_name, content, check) in readers.items():
            started = time.monotonic()
            outcomes, failures = fuzz(file_name, content, check, folder, args.seconds_per_reader, rng)
            total = sum(outcomes.values())
            rows.append((name, total, outcomes, time.monotonic() - started))
            all_failures += [f"{name}: {f}" for f in failures[:5]]
            print(f"{name:18s} {total:7d} inputs  {dict(outcomes)}", flush=True)
    kinds = sorted({k for _, _, outcomes, _ in rows for k in outcomes})
    lines = ["# Reader fuzzing (issue #12)", "",
             f"Each reader gets a valid seed file mutated 1–3 times (byte flips, cuts, insertions, deletions, hostile "
             f"tokens such as `nan`, `1e999`, a 100 kB number, invalid UTF-8, NUL) for {args.seconds_per_reader:g} s, "
             f"random seed {args.seed}. Goal: 0 raw exceptions, 0 crashes, 0 impossible values accepted.", "",
             "| reader | inputs | " + " | ".join(kinds) + " |", "|---|---:|" + "---:|" * len(kinds)]
    for name, total, outcomes, _ in rows:
        lines.append(f"| {name} | {total} | " + " | ".join(str(outcomes.get(k, 0)) for k in kinds) + " |")
    failed = sum(v for _, _, outcomes, _ in rows for k, v in outcomes.items() if k.startswith("FAIL"))
    lines += ["", f"Total inputs: {sum(total for _, total, _, _ in rows)}; failures: {failed}."]
    if all_failures:
        lines += ["", "## First failures", "", *(f"- {f}" for f in all_failures)]
    path = write_report("fuzz_readers", "\n".join(lines) + "\n", args.out_dir)
    print(f"written: {path}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
