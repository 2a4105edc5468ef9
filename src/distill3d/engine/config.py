"""Run configuration: small YAML files validated into typed objects.

A run config has three parts::

    method: shape_classification     # which method (see ``distill3d list``)
    seed: 0
    train:                           # generic training settings (this module, :class:`TrainConfig`)
      epochs: 10
      batch_size: 32
      optimizer: {name: adamw, lr: 1.0e-3}
    options:                         # the method's own settings, validated by the method's pydantic model
      num_points: 512

Overrides from the command line use dotted keys: ``train.optimizer.lr=3e-4 options.num_points=256``.
Values are parsed as YAML scalars (``true``, ``1e-3``, ``[1, 2]``).
Unknown or mistyped keys raise :class:`~distill3d.errors.ConfigError` with one line that names the key.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from distill3d.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class OptimizerConfig(StrictModel):
    name: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    betas: tuple[float, float] = (0.9, 0.999)


class ScheduleConfig(StrictModel):
    """Learning-rate schedule, applied per optimisation step."""

    name: Literal["constant", "cosine", "step"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    step_epochs: int = Field(30, gt=0, description="'step': decay every this many epochs")
    gamma: float = Field(0.1, gt=0, description="'step': decay factor")


class TrainConfig(StrictModel):
    epochs: int = Field(10, gt=0)
    batch_size: int = Field(32, gt=0, description="global batch size, split over processes under DDP")
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    grad_clip: float | None = Field(None, gt=0, description="max global gradient norm; null = off")
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = False
    num_workers: int = Field(0, ge=0)
    eval_every: int = Field(1, gt=0, description="evaluate on the validation split every N epochs")
    monitor: str | None = Field(None, description="validation metric that selects best.pt, e.g. 'val/acc'")
    monitor_mode: Literal["max", "min"] = "max"
    deterministic: bool = False
    threads: int | None = Field(None, gt=0, description="torch intra-op threads; null = torch default")
    stop_after_epoch: int | None = Field(
        None, gt=0, description="end this run after that epoch (time-sliced runs); continue with --resume"
    )
    log_every: int = Field(10, gt=0, description="steps between progress-bar/CSV step logs")


class RunConfig(StrictModel):
    method: str
    seed: int = 0
    name: str | None = Field(None, description="run folder name; default: <method>-<timestamp>")
    out_dir: Path = Path("runs")
    train: TrainConfig = TrainConfig()
    options: dict[str, Any] = Field(default_factory=dict, description="method-specific, see the method's docs")

    @model_validator(mode="after")
    def _check_monitor(self) -> RunConfig:
        if self.train.monitor is not None and "/" not in self.train.monitor:
            raise ValueError("train.monitor must look like 'val/<metric>'")
        return self


def _format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line per problem, each naming the dotted key and what is allowed."""
    lines = []
    for item in err.errors():
        key = ".".join(str(p) for p in (*([prefix] if prefix else []), *item["loc"]))
        if item["type"] == "extra_forbidden":
            lines.append(f"unknown config key '{key}'")
        elif item["type"] == "missing":
            lines.append(f"missing config key '{key}'")
        else:
            got = item.get("input")
            shown = repr(got) if not isinstance(got, dict) else "a mapping"
            lines.append(f"config key '{key}': {item['msg']} (got {shown})")
    return "; ".join(lines)


def validate_section(model: type[ModelT], data: dict[str, Any], prefix: str) -> ModelT:
    """Validate ``data`` as ``model``; errors name keys as ``prefix.key``.

    Unknown keys also list the allowed ones.
    """
    try:
        return model.model_validate(data)
    except ValidationError as err:
        message = _format_validation_error(err, prefix)
        if "unknown config key" in message:
            message += f" (allowed under '{prefix}': {', '.join(sorted(model.model_fields))})"
        raise ConfigError(message) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'train.optimizer.lr=3e-4'`` → (['train', 'optimizer', 'lr'], 0.0003)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.sub=value")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override '{text}' has an empty key part")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted overrides applied (intermediate mappings are created)."""
    result = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = result
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override '{text}': '{'.'.join(parts[: i + 1])}' is not a mapping")
            node = child
        node[parts[-1]] = value
    return result


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; malformed YAML gives a ConfigError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: malformed YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def load_run_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read ``path``, apply ``overrides`` and validate into a :class:`RunConfig`."""
    data = apply_overrides(read_yaml(path), overrides or [])
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        message = _format_validation_error(err)
        if "unknown config key" in message:
            message += f" (allowed top-level keys: {', '.join(sorted(RunConfig.model_fields))})"
        raise ConfigError(f"{path}: {message}") from None


def config_to_yaml(config: BaseModel) -> str:
    """The resolved config as YAML (what the run folder stores as ``config.yaml``)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
