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
Unknown or mistyped keys raise :class:`~distill3d.errors.ConfigError` with one line that names the key (and
the file with the key's line, or "command line" for an override), listing the keys allowed in that section.

Strictness: every float anywhere in a config (including a method's ``options``) must be finite; a key given
twice in one mapping, more than :data:`MAX_YAML_ALIASES` alias uses (``*name``), nesting deeper than
:data:`MAX_YAML_DEPTH` and files larger than :data:`MAX_YAML_BYTES` are refused.
"""

from __future__ import annotations

import copy
import math
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from distill3d.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)

#: Limits of the YAML reader (a config is a few hundred bytes; these only stop hostile or broken files).
MAX_YAML_BYTES = 1 << 20
MAX_YAML_ALIASES = 100
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 100_000  # after expanding aliases


# --------------------------------------------------------------------------------------------- YAML reading
class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys, alias bombs and absurd nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_YAML_ALIASES} alias uses ('*name'): refused (alias bomb?)")
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.YAMLError(f"nested deeper than {MAX_YAML_DEPTH} levels: refused")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                if key in first_line:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice (first on line {first_line[key]})", key_node.start_mark
                    )
                first_line[key] = key_node.start_mark.line + 1
            except TypeError:  # an unhashable key: the base class reports it
                continue
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """YAML integers; one beyond Python's digit limit for int() (``sys.get_int_max_str_digits``) is a YAML error
        naming its line, not a raw ValueError."""
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(str(node.value))} characters is too large to read", node.start_mark
            ) from None


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Number of nodes of ``node`` with every alias expanded (memoised: linear in the composed graph)."""
    if sizes.get(id(node)) == -1:
        raise yaml.YAMLError("an alias refers to the node that contains it (a recursive structure): refused")
    if id(node) not in sizes:
        sizes[id(node)] = -1  # being expanded
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        sizes[id(node)] = 1 + sum(_expanded_size(child, sizes) for child in children)
    return sizes[id(node)]


def _yaml_load(text: str) -> Any:
    """Parse YAML text with :class:`_StrictLoader`; refuse documents that expand beyond MAX_YAML_NODES."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise yaml.YAMLError(f"aliases expand the document beyond {MAX_YAML_NODES} values: refused (alias bomb?)")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _yaml_problem(err: Exception) -> tuple[int | None, str]:
    """(1-based line or None, one-line problem) of a YAML error."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or (str(err).splitlines()[0] if str(err) else type(err).__name__)
    return (mark.line + 1 if mark is not None else None), problem


def _non_finite(value: Any, key: str) -> str | None:
    """Dotted key of the first non-finite float inside ``value`` (a model, mapping, sequence), else None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else key
    if isinstance(value, BaseModel):
        items: Any = ((name, getattr(value, name)) for name in type(value).model_fields)
    elif isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for name, item in items:
        found = _non_finite(item, f"{key}.{name}" if key else str(name))
        if found is not None:
            return found
    return None


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, floats must be finite, values are validated on
    assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, allow_inf_nan=False)


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
    step_epochs: int = Field(30, gt=0, le=1_000_000, description="'step': decay every this many epochs")
    gamma: float = Field(0.1, gt=0, description="'step': decay factor")


class TrainConfig(StrictModel):
    epochs: int = Field(10, gt=0, le=1_000_000)
    batch_size: int = Field(32, gt=0, le=2**31, description="global batch size, split over processes under DDP")
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    grad_clip: float | None = Field(None, gt=0, description="max global gradient norm; null = off")
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = False
    num_workers: int = Field(0, ge=0, le=1024)
    eval_every: int = Field(1, gt=0, le=1_000_000, description="evaluate on the validation split every N epochs")
    monitor: str | None = Field(None, description="validation metric that selects best.pt, e.g. 'val/acc'")
    monitor_mode: Literal["max", "min"] = "max"
    deterministic: bool = False
    threads: int | None = Field(None, gt=0, le=4096, description="torch intra-op threads; null = torch default")
    stop_after_epoch: int | None = Field(
        None, gt=0, description="end this run after that epoch (time-sliced runs); continue with --resume"
    )
    log_every: int = Field(10, gt=0, le=2**31, description="steps between progress-bar/CSV step logs")


class RunConfig(StrictModel):
    method: str
    seed: int = Field(0, ge=0, lt=2**63, description="non-negative; seeds torch, numpy and the worlds")
    name: str | None = Field(None, description="run folder name; default: <method>-<timestamp>")
    out_dir: Path = Path("runs")
    train: TrainConfig = TrainConfig()
    options: dict[str, Any] = Field(default_factory=dict, description="method-specific, see the method's docs")

    @model_validator(mode="after")
    def _check_monitor(self) -> RunConfig:
        monitor = self.train.monitor
        if monitor is not None and (not monitor.startswith("val/") or monitor == "val/"):
            raise ValueError(f"train.monitor must look like 'val/<metric>', got {monitor!r}")
        return self


def _section_model(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config-section model that holds the key at ``loc`` (the key itself is ``loc[-1]``)."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        sub = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if sub is None:
            return None
        model = sub
    return model


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _format_item(item: Any, model: type[BaseModel], prefix: str) -> str:
    """One problem of a ValidationError, naming the dotted key and, for unknown keys, the allowed ones."""
    key = ".".join(str(p) for p in (*([prefix] if prefix else []), *item["loc"]))
    if item["type"] == "extra_forbidden":
        section = _section_model(model, tuple(item["loc"]))
        where = ".".join(str(p) for p in (*([prefix] if prefix else []), *item["loc"][:-1])) or "top level"
        allowed = f" (allowed {'under ' + repr(where) if where != 'top level' else 'top-level keys'}: " + ", ".join(
            sorted(section.model_fields)
        ) + ")" if section is not None else ""
        return f"unknown config key '{key}'{allowed}"
    if item["type"] == "missing":
        return f"missing config key '{key}'"
    if not key:  # a check of the whole config
        return str(item["msg"]).removeprefix("Value error, ")
    message = str(item["msg"]).removeprefix("Value error, ")
    if item["type"] == "finite_number":
        message = "must be a finite number"
    return f"config key '{key}': {message} (got {_shown(item.get('input'))})"


def _lookup(config: Any, dotted: str, prefix: str) -> Any:
    parts = dotted.split(".")[1 if prefix else 0 :]
    for part in parts:
        if isinstance(config, BaseModel):
            config = getattr(config, part)
        elif isinstance(config, dict):
            config = config[part]
        else:
            config = config[int(part)]
    return config


def key_lines(path: str | Path) -> dict[tuple[str, ...], int]:
    """1-based line of every key (and list item) of the YAML file ``path``, by its path from the top level
    (``("train", "optimizer", "lr")``; list items by index as a string). Empty when the file cannot be read or
    parsed. Only called on an error path, for a file :func:`read_yaml` has accepted (so its size is bounded)."""
    try:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=_StrictLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return {}
    lines: dict[tuple[str, ...], int] = {}
    pending: list[tuple[yaml.Node | None, tuple[str, ...]]] = [(root, ())]
    while pending:
        node, prefix = pending.pop()
        if isinstance(node, yaml.MappingNode):
            children = [(str(key.value), key, value) for key, value in node.value if isinstance(key, yaml.ScalarNode)]
        elif isinstance(node, yaml.SequenceNode):
            children = [(str(index), item, item) for index, item in enumerate(node.value)]
        else:
            continue
        for name, marker, value in children:
            if (*prefix, name) not in lines:  # an alias reached twice is walked once
                lines[(*prefix, name)] = marker.start_mark.line + 1
                pending.append((value, (*prefix, name)))
    return lines


def _where(loc: tuple[Any, ...], source: str | None, overrides: list[str],
           lines: dict[tuple[str, ...], int] | None = None) -> str:
    """``'<file>:<line>: '`` (the line of the deepest key of ``loc`` found in ``lines``; ``'<file>: '`` without
    one), ``'command line override 'k=v': '`` (when an override set the key) or ``''``."""
    override = _from_override(loc, overrides) if loc else None
    if override is not None:
        return f"command line override '{override}': "
    if not source:
        return ""
    path, lines = tuple(str(part) for part in loc), lines or {}
    line = next((lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in lines), None)
    return f"{source}:{line}: " if line is not None else f"{source}: "


def config_location(loc: tuple[Any, ...], source: str | Path, overrides: list[str] | None = None) -> str:
    """The prefix of an error about the key at ``loc`` of the config file ``source``: ``'<file>:<line>: '``, or
    ``'command line override 'k=v': '`` when one of ``overrides`` set it."""
    return _where(loc, str(source), overrides or [], key_lines(source) if Path(source).is_file() else {})


def validate_section(
    model: type[ModelT], data: dict[str, Any], prefix: str, source: str | None = None,
    overrides: list[str] | None = None,
) -> ModelT:
    """Validate ``data`` as ``model``; errors name keys as ``prefix.key``, after the file ``source`` or, for a
    key set by one of ``overrides`` (dotted, from the top level), the command line.

    Unknown keys list the allowed ones; a non-finite float anywhere is refused, whatever ``model`` allows.
    """
    overrides = overrides or []
    head = tuple(prefix.split(".")) if prefix else ()

    lines: dict[tuple[str, ...], int] | None = None  # read from the file at the first error only

    def where(loc: tuple[Any, ...]) -> str:
        nonlocal lines
        if lines is None:
            lines = key_lines(source) if source and Path(source).is_file() else {}
        return _where(loc, source, overrides, lines)

    if not isinstance(data, dict):
        raise ConfigError(f"{where(head)}config key '{prefix}' must be a mapping, got {_shown(data)}")
    try:
        result = model.model_validate(data)
    except ValidationError as err:
        problems = [where((*head, *item["loc"])) + _format_item(item, model, prefix) for item in err.errors()]
        raise ConfigError("; ".join(problems)) from None
    bad = _non_finite(result, prefix)
    if bad is not None:
        raise ConfigError(f"{where(tuple(bad.split('.')))}config key '{bad}': must be a finite "
                          f"number (got {_lookup(result, bad, prefix)!r})")
    return result


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'train.optimizer.lr=3e-4'`` → (['train', 'optimizer', 'lr'], 0.0003)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.sub=value")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override '{text}' has an empty key part")
    try:
        value = _yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    except RecursionError:
        raise ConfigError(f"command line: override '{text[:60]}' is nested too deeply") from None
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
        if path.stat().st_size > MAX_YAML_BYTES:
            raise ConfigError(f"{path}: {path.stat().st_size} bytes is too large for a config (limit {MAX_YAML_BYTES})")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config ({err.strerror or err})") from None
    try:
        data = _yaml_load(text)
    except yaml.YAMLError as err:
        line, problem = _yaml_problem(err)
        where = f"{path}:{line}" if line is not None else str(path)
        raise ConfigError(f"{where}: malformed YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def _from_override(loc: tuple[Any, ...], overrides: list[str]) -> str | None:
    """The override that set the key at ``loc`` (or a mapping above/below it), else None."""
    dotted = [str(p) for p in loc]
    for text in reversed(overrides):
        parts = text.split("=", 1)[0].strip().split(".")
        n = min(len(parts), len(dotted))
        if parts[:n] == dotted[:n]:
            return text
    return None


def load_run_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read ``path``, apply ``overrides`` and validate into a :class:`RunConfig`.

    An error names the file, or "command line" and the override when an override set the bad key.
    """
    overrides = overrides or []
    data = apply_overrides(read_yaml(path), overrides)
    return validate_section(RunConfig, data, "", source=str(path), overrides=overrides)


def config_to_yaml(config: BaseModel) -> str:
    """The resolved config as YAML (what the run folder stores as ``config.yaml``)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
