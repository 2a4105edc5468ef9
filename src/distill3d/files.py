"""Atomic file writing shared by every layer: nothing the library writes is ever half-written.

A file is written to a temporary name in the same folder, flushed to disk and renamed over the target
(``os.replace`` is atomic on POSIX). A folder of many files is built under a temporary name beside the
target and renamed into place only when complete (:func:`atomic_directory`). Written files and folders get the
permissions of a normal ``open()``/``mkdir`` under the process umask (typically 0644 / 0755), not the 0600 /
0700 of ``mkstemp``/``mkdtemp``. A writer killed mid-way leaves a ``.<name>.<random>.tmp`` file;
:func:`remove_orphaned_temporaries` deletes those of a folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from distill3d.errors import DataFormatError, Distill3dError

_UMASK = os.umask(0)
os.umask(_UMASK)
#: Name of a temporary file or folder made by this module: ``.<target name>.<8 random chars>.tmp``.
_TEMPORARY = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def atomic_directory(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it is renamed to ``path``, on error removed.

    ``overwrite=False`` refuses an existing non-empty ``path`` (a clear error, nothing touched).
    """
    path = Path(path)
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise Distill3dError(f"{path} already exists and is not empty (choose another folder)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        tmp.chmod(0o777 & ~_UMASK)
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_orphaned_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files and folders that killed atomic writes left in ``folder``; return them.

    Call it only when no writer is active in ``folder`` (e.g. when a run starts or resumes).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        if _TEMPORARY.fullmatch(entry.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Raise a one-line Distill3dError unless ``path`` is (or can be created as) a writable folder.

    Called before any work starts, so that a bad output path costs nothing. Writability is probed by creating
    and removing a temporary file (``os.access`` says yes to root even on read-only mounts).
    """
    path = Path(path)
    if "\x00" in str(path):
        raise Distill3dError(f"{str(path)!r}: a path cannot contain a NUL character")
    existing = _nearest_existing(path)
    if not existing.is_dir():
        blocker = "it" if existing == path else str(existing)
        raise Distill3dError(f"{path}: cannot use as {what}: {blocker} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".distill3d-write-probe.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise Distill3dError(f"{path}: cannot write the {what} in {existing} ({err.strerror or err})") from None
    return path


def check_output_file(path: str | Path, what: str = "output file") -> Path:
    """Raise a one-line Distill3dError unless a file can be written at ``path`` (not a folder; parent writable)."""
    path = Path(path)
    if "\x00" in str(path):
        raise Distill3dError(f"{str(path)!r}: a path cannot contain a NUL character")
    if path.is_dir():
        raise Distill3dError(f"{path}: cannot write the {what} there: it is a folder (give a file name)")
    check_output_dir(path.parent, f"folder of the {what}")
    return path


#: Largest JSON file :func:`read_json` reads (FreiHAND's training_xyz.json is ≈ 40 MB).
MAX_JSON_BYTES = 2 << 30


def read_json(path: str | Path, missing: str = "file not found") -> Any:
    """Parse a JSON file; every failure (missing, oversized, non-UTF-8, malformed, nested too deeply, an integer
    too long to convert) is a DataFormatError naming the file (and the line where JSON reports one)."""
    path = Path(path)
    try:
        if not path.is_file():
            raise DataFormatError(path, missing)
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise DataFormatError(path, f"{size} bytes is too large (limit {MAX_JSON_BYTES})")
        text = path.read_bytes().decode("utf-8")
        return json.loads(text)
    except OSError as err:
        raise DataFormatError(path, f"cannot read file: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise DataFormatError(path, f"not a UTF-8 text file ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise DataFormatError(path, f"malformed JSON: {err.msg}", err.lineno) from None
    except RecursionError:
        raise DataFormatError(path, "JSON nested too deeply") from None
    except ValueError as err:  # e.g. an integer literal with more than 4300 digits
        raise DataFormatError(path, f"malformed JSON value ({str(err)[:100]})") from None
