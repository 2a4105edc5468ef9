"""World difficulty presets shared by the procedural worlds.

Every world takes ``difficulty``:

* ``easy`` — plain backgrounds, no distractors or occluders, fixed bright lighting, objects large in the frame:
  for overfitting checks and first experiments;
* ``standard`` — what benchmarks and demos use: mild clutter and lighting variation that a small CPU model
  learns within the benchmark budget (proven by ``benchmarks/learnability.py``);
* ``hard`` — the original realistic world (textured backgrounds, distractors, occluders, wide size and lighting
  ranges) for research.

Each world documents what exactly changes between its presets.
"""

from __future__ import annotations

from typing import Literal, get_args

Difficulty = Literal["easy", "standard", "hard"]
DIFFICULTIES: tuple[str, ...] = get_args(Difficulty)


def check_difficulty(value: str) -> str:
    """Return ``value`` if it names a preset, else raise ``ValueError`` listing the presets."""
    if value not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {value!r}")
    return value
