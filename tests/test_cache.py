"""MaterializedDataset: fixed-size and variable-length (ragged) fields, served exactly as the source made them."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from distill3d.data.cache import MaterializedDataset, collate_ragged


class Frames(Dataset):
    """Frame i has an image and i % 4 boxes (0 boxes included)."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return {"image": torch.rand(3, 4, 4, generator=g), "boxes": torch.rand(i % 4, 7, generator=g),
                "labels": torch.arange(i % 4)}


def test_ragged_fields_round_trip_through_memory_and_the_disk_cache(tmp_path: Path) -> None:
    source = Frames()
    for attempt in range(2):  # generated, then read back from the disk cache
        data = MaterializedDataset(source, ("image", "boxes", "labels"), {"world": "frames", "v": 1},
                                   cache_dir=tmp_path, batch_size=3, progress=False, ragged_keys=("boxes", "labels"))
        assert len(data) == 10 and len(list(tmp_path.glob("frames-*.pt"))) == 1, attempt
        for i in range(10):
            item, expected = data[i], source[i]
            torch.testing.assert_close(item["boxes"], expected["boxes"])
            assert torch.equal(item["labels"], expected["labels"])
            torch.testing.assert_close(item["image"], expected["image"], atol=1 / 255, rtol=0)  # stored as uint8
    batch = data.batch([3, 0, 7])
    assert batch["image"].shape == (3, 3, 4, 4)
    assert [len(b) for b in batch["boxes"]] == [3, 0, 3] and batch["index"].tolist() == [3, 0, 7]
    loader = DataLoader(data, batch_size=4, collate_fn=lambda s: collate_ragged(s, ("boxes", "labels")))
    first = next(iter(loader))
    assert first["image"].shape == (4, 3, 4, 4) and [len(b) for b in first["boxes"]] == [0, 1, 2, 3]


def test_road_frames_cache_with_their_per_object_labels(tmp_path: Path) -> None:
    from distill3d.data.worlds.road import RoadDataset

    source = RoadDataset("val", size=3, image_size=(48, 160))
    keys = ("image", "depth_estimate", "P2", *RoadDataset.ragged_keys)
    data = MaterializedDataset(source, keys, None, batch_size=2, progress=False, ragged_keys=RoadDataset.ragged_keys)
    for i in range(3):
        expected = source[i]
        for key in RoadDataset.ragged_keys:
            torch.testing.assert_close(data[i][key], expected[key])
    assert len(data.batch([0, 1, 2])["boxes3d"]) == 3
