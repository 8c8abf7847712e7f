"""Writing files so that a crash, Ctrl-C or ``kill`` never leaves a half-written one.

Every file goes to a temporary name next to its target, is flushed to disk, and is renamed
over the target; SIGINT and SIGTERM arriving meanwhile are held until the rename is done.
"""
import contextlib
import json
import os
import signal
import threading
from typing import Callable

__all__ = ["atomic_write", "deferred_signals", "write_json"]


@contextlib.contextmanager
def deferred_signals():
    """Hold SIGINT and SIGTERM until the block ends, then act on the first one."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    handlers = {sig: signal.signal(sig, lambda signum, frame: received.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        for sig in received[:1]:
            os.kill(os.getpid(), sig)


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)``, then move the result to ``path`` atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with deferred_signals():
            write(tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: str, data: dict) -> None:
    """JSON, written atomically."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
    atomic_write(path, write)
