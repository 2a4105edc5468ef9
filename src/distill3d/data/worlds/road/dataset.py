"""Road frames as a torch Dataset (images, depth estimate, per-object labels)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import Dataset

from distill3d.data.cache import collate_ragged
from distill3d.data.worlds.difficulty import Difficulty
from distill3d.data.worlds.road.depth import estimated_depth
from distill3d.data.worlds.road.frames import road_frames
from distill3d.data.worlds.road.scene import SPLITS, WORLD_ID, RoadConfig, image_projection, road_config

# ----------------------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------------------


class RoadDataset(Dataset):
    """Road-world frames as a torch Dataset (KITTI stand-in).

    ``RoadDataset(split="train", size=3712, seed=0, image_size=(96, 320), difficulty="standard")`` (a preset of
    :data:`~distill3d.data.worlds.road.scene.ROAD_PRESETS`; an explicit ``config`` replaces it); a sample is a dict:

    * image (3, H, W) float32 in [0, 1]; depth (H, W) float32 true camera-2 z (m, 0 = sky);
      depth_estimate (H, W) float32 (:func:`estimated_depth`); K (3, 3) float32 of the rendered image;
      P2_image (3, 4) float32 label frame → rendered image; P2 (3, 4) float32 label frame → original
      1242×375 pixels;
    * per object, named like :class:`~distill3d.metrics.kitti.FrameAnnotations`' fields: bbox (N, 4) float32 in
      the original 1242×375 frame; boxes3d (N, 7) float32 (``FrameAnnotations.boxes3d()``); labels (N,) int64
      class ids; truncated (N,) float32; occluded (N,) int64; alpha (N,) float32; dontcare (M, 4) float32;
      index () int64.

    :meth:`collate` stacks the fixed-size entries and keeps the per-object ones as lists.  Batched access
    (``__getitems__``, used by DataLoader) renders the whole batch in one call.
    Speed on 2 shared CPU cores at 96×320, 1 ray/pixel, batches of 64: a few % below :func:`road_frames`, the
    depth estimate (one vectorised call per batch) included (``benchmarks/world_speed.py``).
    """

    #: per-object entries (a different number of rows per frame); cache them with
    #: ``MaterializedDataset(..., ragged_keys=RoadDataset.ragged_keys)``.
    ragged_keys = ("bbox", "boxes3d", "labels", "truncated", "occluded", "alpha", "dontcare")

    def __init__(
        self,
        split: str = "train",
        size: int = 3712,
        seed: int = 0,
        image_size: tuple[int, int] = (96, 320),
        config: RoadConfig | None = None,
        difficulty: Difficulty = "standard",
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
        self.split, self.size, self.seed = split, int(size), int(seed)
        self.config = replace(config or road_config(difficulty), image_size=tuple(image_size))

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        indices = [int(i) for i in indices]
        if any(i < 0 or i >= self.size for i in indices):
            raise IndexError(f"index out of range for a dataset of {self.size} frames")
        frames = road_frames(self.split, indices, self.seed, self.config)
        P2_image = torch.from_numpy(image_projection(self.config.image_size)).float()
        estimate_rngs = [np.random.default_rng([WORLD_ID, self.seed, SPLITS[self.split], i, 1]) for i in indices]
        estimates = estimated_depth(torch.stack([frame.depth for frame in frames]), estimate_rngs)
        samples = []
        for index, frame, estimate in zip(indices, frames, estimates, strict=True):
            a = frame.objects
            samples.append({
                "image": frame.image,
                "depth": frame.depth,
                "depth_estimate": estimate,
                "K": torch.from_numpy(frame.K).float(),
                "P2_image": P2_image.clone(),
                "P2": torch.from_numpy(frame.P2).float(),
                "bbox": torch.from_numpy(a.bbox).float().reshape(-1, 4),
                "boxes3d": torch.from_numpy(a.boxes3d()).float().reshape(-1, 7),
                "labels": torch.from_numpy(frame.labels),
                "truncated": torch.from_numpy(a.truncated).float(),
                "occluded": torch.from_numpy(a.occluded.astype(np.int64)),
                "alpha": torch.from_numpy(a.alpha).float(),
                "dontcare": torch.from_numpy(frame.dontcare).float().reshape(-1, 4),
                "index": torch.tensor(index, dtype=torch.int64),
            })  # fmt: skip
        return samples

    @staticmethod
    def collate(samples: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Stack fixed-size entries (B, ...); per-object entries become lists of B tensors."""
        return collate_ragged(samples, RoadDataset.ragged_keys)
