"""Config loader hardening: duplicate keys, alias bombs, deep nesting, non-UTF-8, non-finite floats, the
section's allowed keys in errors, the command line named for bad overrides; and a property test that only
ConfigError comes out of the loader and that accepted configs hold only finite floats."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill3d.engine.config import (
    MAX_YAML_NODES,
    OptimizerConfig,
    TrainConfig,
    key_lines,
    load_run_config,
    validate_section,
)
from distill3d.errors import ConfigError


def load(tmp_path: Path, text: str | bytes, overrides: list[str] | None = None):
    path = tmp_path / "cfg.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return load_run_config(path, overrides)


def bomb(levels: int = 7, width: int = 9) -> str:
    lines = ["method: toy", "options:", "  l0: &l0 [" + ", ".join(["x"] * width) + "]"]
    for level in range(1, levels):
        lines.append(f"  l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("method: a\nseed: 1\nmethod: b\n", r"cfg\.yaml:3: .* key 'method' is given twice \(first on line 1"),
        ("method: a\ntrain:\n  epochs: 2\n  epochs: 3\n", r"cfg\.yaml:4: .*'epochs' is given twice"),
        (bomb(), r"aliases expand the document beyond"),
        ("method: a\noptions: &a [*a]\n", r"recursive structure"),
        ("method: a\noptions: " + "[" * 3000 + "]" * 3000 + "\n", r"nested deeper than"),
        (b"method: \xff\xfe\n", r"cfg\.yaml: not a UTF-8 text file"),
        ("method: a\ntrain:\n  optimizer: {lr: .inf}\n", r"config key 'train\.optimizer\.lr': must be a finite number"),
        ("method: a\ntrain:\n  grad_clip: .inf\n", r"config key 'train\.grad_clip': must be a finite number"),
        ("method: a\ntrain:\n  schedule: {warmup_epochs: .nan}\n", r"'train\.schedule\.warmup_epochs': must be"),
        ("method: a\noptions:\n  temperature: .inf\n", r"config key 'options\.temperature': must be a finite number"),
        ("method: a\noptions:\n  ranges: [1.0, -.inf]\n", r"config key 'options\.ranges\.1': must be a finite number"),
        ("method: a\nseed: -1\n", r"config key 'seed': .*greater than or equal to 0"),
        ("method: a\ntrain: {monitor: acc}\n", r"train\.monitor must look like 'val/<metric>'"),
        ("method: a\ntrain: {monitor: train/loss}\n", r"train\.monitor must look like 'val/<metric>'"),
        ("method: a\ntrain:\n  optimizer: {lrr: 1}\n",
         r"unknown config key 'train\.optimizer\.lrr' \(allowed under 'train\.optimizer': betas, lr, momentum"),
        ("method: a\ntrain:\n  epoch: 3\n", r"unknown config key 'train\.epoch' \(allowed under 'train': batch_size"),
        ("method: a\nmethd: 3\n", r"unknown config key 'methd' \(allowed top-level keys: method, name"),
        ("method: a\nseed: " + "9" * 5000 + "\n", r"cfg\.yaml:2: .*an integer of 5000 characters is too large"),
    ],
)
def test_config_mistakes_give_one_line_naming_the_file_and_key(tmp_path: Path, text, needle) -> None:
    with pytest.raises(ConfigError, match=needle) as err:
        load(tmp_path, text)
    assert "\n" not in str(err.value) and str(tmp_path / "cfg.yaml") in str(err.value)


def test_bad_override_names_the_command_line_not_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "method: a\n", ["train.epoch=3"])
    message = str(err.value)
    assert message.startswith("command line override 'train.epoch=3': unknown config key 'train.epoch'")
    assert "cfg.yaml" not in message
    with pytest.raises(ConfigError, match=r"^command line override 'train.optimizer.lr=.inf': .*finite"):
        load(tmp_path, "method: a\n", ["train.optimizer.lr=.inf"])


def test_anchors_within_the_budget_are_fine(tmp_path: Path) -> None:
    config = load(tmp_path, "method: a\ntrain:\n  optimizer: &o {lr: 0.1}\noptions:\n  copy: *o\n")
    assert config.options == {"copy": {"lr": 0.1}} and config.train.optimizer.lr == 0.1
    assert MAX_YAML_NODES < 9**6  # the bomb above really is over the budget


def test_errors_name_the_line_of_the_bad_key(tmp_path: Path) -> None:
    """The deepest key of the error's path that the file holds gives the line (an override is named instead)."""
    text = "# a comment\nmethod: a\ntrain:\n  epochs: 2\n  optimizer:\n    name: sgd\n    lr: .inf\n"
    with pytest.raises(ConfigError, match=r"cfg\.yaml:7: config key 'train\.optimizer\.lr': must be a finite"):
        load(tmp_path, text)
    with pytest.raises(ConfigError, match=r"cfg\.yaml:6: config key 'train\.optimizer\.name'"):
        load(tmp_path, text.replace("name: sgd", "name: rmsprop").replace("lr: .inf", "lr: 0.1"))
    with pytest.raises(ConfigError, match=r"^command line override 'train\.optimizer\.lr=\.nan'"):
        load(tmp_path, text.replace("lr: .inf", "lr: 0.1"), ["train.optimizer.lr=.nan"])
    (tmp_path / "lists.yaml").write_text("a:\n  - 1\n  - {b: 2}\nc: &x {d: 1}\ne: *x\n")
    assert key_lines(tmp_path / "lists.yaml") == {("a",): 1, ("a", "0"): 2, ("a", "1"): 3, ("a", "1", "b"): 3,
                                                  ("c",): 4, ("c", "d"): 4, ("e",): 5, ("e", "d"): 4}
    assert key_lines(tmp_path / "absent.yaml") == {}


def test_options_errors_name_the_file_and_allowed_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^x\.yaml: unknown config key 'options\.lrr' \(allowed under 'options': "):
        validate_section(OptimizerConfig, {"lrr": 1}, "options", source="x.yaml")
    with pytest.raises(ConfigError, match=r"^x\.yaml: config key 'options\.lr': must be a finite number"):
        validate_section(OptimizerConfig, {"lr": float("inf")}, "options", source="x.yaml")


def test_python_api_refuses_non_finite_floats() -> None:
    with pytest.raises(ValueError, match="finite"):
        TrainConfig(grad_clip=float("inf"))


YAML_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from([".inf", "-.inf", ".nan", "1e999", "&a 1", "*a", "~", "0x1F"]),
)
KEYS = st.sampled_from(["method", "seed", "name", "train", "options", "epochs", "lr", "optimizer", "grad_clip",
                        "monitor", "batch_size", "schedule", "x"])
VALUES = st.recursive(
    YAML_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=st.dictionaries(KEYS, VALUES, max_size=6), noise=st.binary(max_size=6), position=st.integers(0, 400))
def test_loader_gives_config_errors_or_finite_configs(tmp_path: Path, document, noise, position) -> None:
    import yaml

    text = yaml.safe_dump(document).encode()
    text = text[:position] + noise + text[position:]
    try:
        config = load(tmp_path, text)
    except ConfigError as err:
        assert "\n" not in str(err)
        return

    def floats(value):
        if isinstance(value, float):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from floats(item)
        elif isinstance(value, list | tuple):
            for item in value:
                yield from floats(item)

    assert all(math.isfinite(v) for v in floats(config.model_dump()))
    assert config.seed >= 0
