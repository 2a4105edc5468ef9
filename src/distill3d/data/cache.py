"""Materialise a generated dataset once and reuse it: in memory, and optionally in a versioned cache folder.

Rendering the procedural worlds runs at a few hundred samples/s per core, about the rate a small CNN trains at,
so multi-epoch, multi-seed benchmarks render each split once, keep it as stacked tensors (images as uint8), and
serve batches by slicing. The cache file name is a hash of everything that determines the samples (world,
split, size, seed, options, ``CACHE_VERSION``): a change to any of them writes a new file, never a stale hit.
Location: ``$DISTILL3D_CACHE`` or ``~/.cache/distill3d``; writes are atomic.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from distill3d.files import atomic_write_bytes

#: Bumped whenever a world renders different samples for the same description (2: the readable presets' rocket
#: fin phase; 3: their readable guitars), so that no cache written before the change is ever read after it.
CACHE_VERSION = 3
IMAGE_KEYS = ("image",)


def default_cache_dir() -> Path:
    return Path(os.environ.get("DISTILL3D_CACHE", Path.home() / ".cache" / "distill3d"))


def cache_key(description: dict[str, Any]) -> str:
    """Stable short hash of a JSON-able description of the samples."""
    text = json.dumps({**description, "cache_version": CACHE_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _to_storage(key: str, value: torch.Tensor) -> torch.Tensor:
    if key in IMAGE_KEYS and value.is_floating_point():
        return (value.clamp(0, 1) * 255).round().to(torch.uint8)
    return value


def _from_storage(key: str, value: torch.Tensor) -> torch.Tensor:
    if key in IMAGE_KEYS and value.dtype == torch.uint8:
        return value.float() / 255
    return value


def collate_ragged(samples: Sequence[dict[str, torch.Tensor]], ragged_keys: Sequence[str]) -> dict[str, Any]:
    """Stack the fixed-size entries of ``samples`` (B, ...); the ``ragged_keys`` entries (a different number of
    rows per sample, e.g. one box per object) become lists of B tensors."""
    return {key: [s[key] for s in samples] if key in ragged_keys else torch.stack([s[key] for s in samples])
            for key in samples[0]}


class MaterializedDataset(Dataset):
    """All samples of ``source`` as stacked tensors (keys in ``keys``), images stored as uint8.

    Served samples also carry ``index`` (their position in the dataset; contrastive memory banks use it).
    Variable-length fields (``ragged_keys``: boxes, labels, … with one row per object) are stored as all
    samples' rows concatenated plus offsets (``<key>.offsets`` (N + 1,)), so a frame's objects are one slice;
    :meth:`batch` serves them as lists of tensors (see :func:`collate_ragged`).

    Args:
        source: a map-style dataset of dicts of tensors (generated on first use).
        keys: the fields to keep (fixed-size and ragged).
        description: what determines the samples (hashed into the cache file name); None = no disk cache.
        cache_dir: folder of the disk cache (default :func:`default_cache_dir`).
        num_workers: DataLoader workers used to generate.
        transform: optional per-batch function applied when serving (dict → dict).
        ragged_keys: the fields of ``keys`` whose first dimension differs between samples.
    """

    def __init__(self, source: Dataset, keys: Sequence[str], description: dict[str, Any] | None = None,
                 cache_dir: str | Path | None = None, num_workers: int = 0, batch_size: int = 64,
                 progress: bool = True, transform: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]
                 | None = None, ragged_keys: Sequence[str] = ()) -> None:
        self.keys, self.transform, self.ragged_keys = tuple(keys), transform, tuple(ragged_keys)
        unknown = [k for k in self.ragged_keys if k not in self.keys]
        if unknown:
            raise ValueError(f"ragged_keys {unknown} are not among keys {self.keys}")
        path = None
        if description is not None:
            name = f"{description.get('world', 'data')}-{cache_key(description)}.pt"
            path = Path(cache_dir or default_cache_dir()) / name
        if path is not None and path.is_file():
            self.tensors = torch.load(path, map_location="cpu", weights_only=True)
        else:
            self.tensors = self._generate(source, num_workers, batch_size, progress, description)
            if path is not None:
                buffer = io.BytesIO()
                torch.save(self.tensors, buffer)
                atomic_write_bytes(path, buffer.getvalue())
        fixed = [k for k in self.keys if k not in self.ragged_keys]
        self.length = len(self.tensors[fixed[0]]) if fixed else len(self.tensors[f"{self.keys[0]}.offsets"]) - 1
        self.cache_path = path

    def _generate(self, source: Dataset, num_workers: int, batch_size: int, progress: bool,
                  description: dict[str, Any] | None) -> dict[str, torch.Tensor]:
        loader = DataLoader(source, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=list)
        chunks: dict[str, list[torch.Tensor]] = {k: [] for k in self.keys}
        label = "generating"
        if description:
            label += f" {description.get('world', 'data')}/{description.get('split', '')}"
        with tqdm(total=len(source), desc=label, unit="sample", disable=not progress, leave=False) as bar:
            for samples in loader:
                batch = collate_ragged([{key: sample[key] for key in self.keys} for sample in samples],
                                       self.ragged_keys)
                for key in self.keys:
                    value = batch[key]
                    if key in self.ragged_keys:
                        chunks[key].extend(value)
                    else:
                        chunks[key].append(_to_storage(key, value))
                bar.update(len(samples))
        tensors = {k: torch.cat(v) for k, v in chunks.items()}
        for key in self.ragged_keys:
            lengths = torch.tensor([len(rows) for rows in chunks[key]], dtype=torch.int64)
            tensors[f"{key}.offsets"] = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
        return tensors

    def __len__(self) -> int:
        return self.length

    def _rows(self, key: str, index: torch.Tensor) -> list[torch.Tensor]:
        offsets, rows = self.tensors[f"{key}.offsets"], self.tensors[key]
        return [rows[offsets[i]:offsets[i + 1]] for i in index.tolist()]

    def batch(self, indices: Sequence[int] | torch.Tensor) -> dict[str, Any]:
        """Samples ``indices`` stacked (B, ...), ragged fields as lists of B tensors, plus ``index`` (B,)."""
        index = torch.as_tensor(indices, dtype=torch.long)
        out: dict[str, Any] = {}
        for key in self.keys:
            ragged = key in self.ragged_keys
            out[key] = self._rows(key, index) if ragged else _from_storage(key, self.tensors[key][index])
        out["index"] = index
        return self.transform(out) if self.transform is not None else out

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.batch([index]).items()}

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        batch = self.batch(indices)
        return [{k: v[i] for k, v in batch.items()} for i in range(len(indices))]
