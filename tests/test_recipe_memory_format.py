"""Every built-in recipe that trains an image CNN in bf16 asks for channels-last, the layout under which
``benchmarks/throughput.py`` measures the training loops (faster on CPU for the ResNet encoders); point-cloud
recipes (PointNet / DGCNN, no 4-D activations) need not."""

from __future__ import annotations

from importlib import resources

import pytest

from distill3d.engine.config import load_run_config

RECIPES = sorted(p.name for p in resources.files("distill3d.recipes").iterdir() if p.name.endswith(".yaml"))


def _trains_images(method: str, stage: str | None) -> bool:
    if method in {"pose_ckd", "peclr", "skd_wm3d"}:
        return True
    return method == "pointmcd" and stage == "teacher"


@pytest.mark.parametrize("recipe", RECIPES)
def test_image_recipes_train_channels_last(recipe: str) -> None:
    config = load_run_config(resources.files("distill3d.recipes") / recipe)
    if _trains_images(config.method, config.options.get("stage")) and config.train.precision == "bf16":
        assert config.train.channels_last, f"{recipe}: an image CNN in bf16 without train.channels_last"
