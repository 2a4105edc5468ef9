"""The methods the command line can run, and how to find a run config by recipe name.

A method module exposes three names:

- ``DESCRIPTION``: one line for ``distill3d list``;
- ``Options``: a pydantic model of its ``options:`` config section;
- ``build_task(options, seed) -> Task``: the object the generic engine trains and evaluates
  (optionally with ``test_sets() -> dict[str, Dataset]`` for final evaluation splits).

This table is the only place that names them: no registry, no import-time side effects.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from distill3d.errors import ConfigError, Distill3dError

if TYPE_CHECKING:
    from torch import nn

METHOD_MODULES: dict[str, str] = {
    "peclr": "distill3d.methods.peclr",
    "pointmcd": "distill3d.methods.pointmcd",
    "pose_ckd": "distill3d.methods.pose_ckd",
    "shape_classification": "distill3d.methods.shape_classification",
    "skd_wm3d": "distill3d.methods.skd_wm3d",
}


def load_method(name: str) -> ModuleType:
    """Import the module of method ``name``; unknown names list the known ones."""
    if name not in METHOD_MODULES:
        raise ConfigError(f"config key 'method': unknown method '{name}' (known: {', '.join(sorted(METHOD_MODULES))})")
    return importlib.import_module(METHOD_MODULES[name])


def recipe_dir() -> Path:
    return Path(str(resources.files("distill3d") / "recipes"))


def list_recipes() -> dict[str, Path]:
    """Built-in run configs shipped with the package, by name."""
    return {p.stem: p for p in sorted(recipe_dir().glob("*.yaml"))}


def resolve_config_path(config: str) -> Path:
    """A YAML path as given, or the built-in recipe of that name."""
    path = Path(config)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        return path
    recipes = list_recipes()
    if config in recipes:
        return recipes[config]
    raise ConfigError(f"'{config}' is neither a config file nor a built-in recipe (recipes: {', '.join(recipes)})")


@dataclass
class TrainedRun:
    """A trained run rebuilt from its checkpoint: the method's task, the model with the checkpoint's weights (eval
    mode), the validated run config, the checkpoint file it came from and the epoch it was saved at."""

    task: Any
    model: nn.Module
    config: Any
    checkpoint: Path
    epoch: int | None


def load_trained(run_or_checkpoint: str | Path) -> TrainedRun:
    """Rebuild a run folder (``best.pt``, else ``last.pt``) or checkpoint file: config → task → architecture →
    weights. Nothing else is loaded (no pre-trained warm start, no teacher) and no data is rendered."""
    from distill3d.engine.checkpoint import load_checkpoint, load_weights, resolve_checkpoint
    from distill3d.engine.config import RunConfig, validate_section

    path = resolve_checkpoint(run_or_checkpoint)
    state = load_checkpoint(path)
    if "config" not in state or "model" not in state:
        raise Distill3dError(f"{path}: checkpoint has no config/model (not written by distill3d train)")
    config = validate_section(RunConfig, state["config"], "config")
    method = load_method(config.method)
    task = method.build_task(validate_section(method.Options, config.options, "options"), config.seed)
    model = load_weights(task.build_model(), state["model"], str(path))
    return TrainedRun(task, model.eval(), config, path, state.get("epoch"))
