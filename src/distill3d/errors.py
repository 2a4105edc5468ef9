"""User-facing errors: the CLI prints them as one line and exits non-zero, without a traceback."""

from __future__ import annotations


class Distill3dError(Exception):
    """An error caused by user input (bad file, bad config, bad tensor shape), not by a bug."""


class ConfigError(Distill3dError):
    """A configuration file or override is malformed or names an unknown key."""


class DataFormatError(Distill3dError):
    """A dataset file does not follow its format; the message names the file and line."""

    def __init__(self, path: object, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class ShapeError(Distill3dError):
    """A tensor argument has the wrong shape."""


class NonFiniteLossError(Distill3dError):
    """Training produced a NaN or infinite loss (or non-finite weights)."""


class RunInterruptedError(Distill3dError):
    """The user interrupted training (Ctrl-C); the message says how to resume."""


def check_shape(name: str, tensor: object, shape: tuple[int | None, ...]) -> None:
    """Raise :class:`ShapeError` unless ``tensor.shape`` matches ``shape`` (``None`` = any size).

    A leading ``...`` is not supported; pass the full expected rank.
    """
    actual = tuple(getattr(tensor, "shape", ()))
    ok = len(actual) == len(shape) and all(e is None or e == a for e, a in zip(shape, actual, strict=True))
    if not ok:
        want = "(" + ", ".join("*" if e is None else str(e) for e in shape) + ")"
        raise ShapeError(f"{name} must have shape {want}, got {tuple(actual)}")
