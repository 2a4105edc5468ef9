"""The 21-joint hand skeleton in FreiHAND order (wrist, then thumb, index, middle, ring, little, each MCP → tip):
joint tables and mean bone lengths, shared by the hands world, the 2.5D geometry, the methods and the drawings."""

from __future__ import annotations

import numpy as np

__all__ = ["FINGERS", "MEAN_BONE_LENGTHS", "NUM_JOINTS", "PARENTS"]

NUM_JOINTS = 21
FINGERS = {"thumb": (1, 2, 3, 4), "index": (5, 6, 7, 8), "middle": (9, 10, 11, 12), "ring": (13, 14, 15, 16),
           "little": (17, 18, 19, 20)}  # fmt: skip
"""Finger name → its four joints, proximal to distal."""
PARENTS = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)
"""Parent of each joint (FreiHAND order); the wrist has none."""

MEAN_BONE_LENGTHS = np.array([
    0.0, 0.034, 0.035, 0.031, 0.027,  # wrist→thumb CMC, thumb metacarpal, proximal, distal
    0.086, 0.041, 0.024, 0.021,       # index: metacarpal, proximal, middle, distal phalanx
    0.083, 0.042, 0.027, 0.022,       # middle
    0.078, 0.042, 0.027, 0.022,       # ring
    0.073, 0.034, 0.020, 0.019,       # little
])  # fmt: skip
"""Mean length (metres) of bone ``PARENTS[j] → j`` at index j (index 0 unused)."""
