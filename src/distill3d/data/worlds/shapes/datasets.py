"""Torch datasets over the shapes world: viewpoint images and point clouds (see the package docstring)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from distill3d.data.worlds.difficulty import Difficulty
from distill3d.data.worlds.shapes.categories import SPLITS
from distill3d.data.worlds.shapes.world import ShapesWorld


def _unbatch(batch: dict[str, torch.Tensor], size: int, shared: tuple[str, ...] = ()) -> list[dict[str, torch.Tensor]]:
    return [{k: (v if k in shared else v[i]) for k, v in batch.items()} for i in range(size)]


class _ShapesDataset(Dataset):
    def __init__(self, world: ShapesWorld, split: str, length: int) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
        self.world, self.split, self.length = world, split, int(length)

    def __len__(self) -> int:
        return self.length

    def _check(self, indices: Sequence[int]) -> list[int]:
        out = [int(i) for i in indices]
        if any(i < 0 or i >= self.length for i in out):
            raise IndexError(f"index out of range for a dataset of {self.length} samples")
        return out

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        """Batched generation (DataLoader calls this with a whole batch of indices)."""
        indices = self._check(indices)
        return _unbatch(self.batch(indices), len(indices), self._shared_keys)

    _shared_keys: tuple[str, ...] = ()

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class ShapesViewpointDataset(_ShapesDataset):
    """Images with Pascal3D+ viewpoint labels (see :meth:`ShapesWorld.viewpoint_batch` for the keys).

    ``ShapesViewpointDataset(split="train", length=10000, categories="seen", image_size=64, seed=0)``.
    """

    def __init__(
        self,
        split: str = "train",
        length: int = 10000,
        categories: Sequence[str] | str = "all",
        image_size: int = 64,
        n_points: int = 1024,
        seed: int = 0,
        samples_per_side: int = 1,
        with_points: bool = True,
        difficulty: Difficulty = "standard",
    ) -> None:
        super().__init__(ShapesWorld(image_size, n_points, categories, seed, samples_per_side, difficulty), split,
                         length)
        self.with_points = with_points

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Stacked samples for ``indices`` (one renderer call)."""
        return self.world.viewpoint_batch(self.split, self._check(indices), self.with_points)


class ShapesPointCloudDataset(_ShapesDataset):
    """Point clouds for classification and part segmentation (see :meth:`ShapesWorld.point_cloud_batch`).

    With ``with_views`` each sample also carries the fixed 12-view rig's renders (views (12, 3, H, W))
    and its cameras (view_K, view_R, view_t, the same for every sample).
    """

    _shared_keys = ("view_K", "view_R", "view_t")

    def __init__(
        self,
        split: str = "train",
        length: int = 10000,
        categories: Sequence[str] | str = "all",
        n_points: int = 1024,
        seed: int = 0,
        with_views: bool = False,
        image_size: int = 64,
        difficulty: Difficulty = "standard",
    ) -> None:
        super().__init__(ShapesWorld(image_size, n_points, categories, seed, difficulty=difficulty), split, length)
        self.with_views = with_views

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Stacked samples for ``indices``; view_K/R/t are (V, …), shared by the batch."""
        return self.world.point_cloud_batch(self.split, self._check(indices), self.with_views)
