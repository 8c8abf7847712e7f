"""Writing files so that a crash, Ctrl-C or ``kill`` never leaves a half-written one.

Every file goes to a temporary name next to its target (``<name>.tmp<pid>``), is flushed
to disk, and is renamed over the target; SIGINT and SIGTERM arriving meanwhile are held
until the rename is done. :func:`write_together` extends this to a set of files (one
epoch's checkpoints, weights and metrics): all are written to temporary names first, then
a journal listing the renames is committed, then the renames happen. A ``kill -9`` before
the journal leaves the old files; after it, :func:`recover` (run before the next write to
the folder) completes the renames. So the set is always all old or all new.

A write that fails (a full disk, no permission) raises ``OSError`` naming the target file.
"""
import contextlib
import json
import os
import re
import signal
import threading
from typing import Callable, List, Sequence, Tuple

__all__ = ["atomic_write", "deferred_signals", "write_json", "json_writer", "write_together", "recover", "JOURNAL"]

JOURNAL = ".ppzoo-commit.json"  # the pending renames of one write_together
_TEMP = re.compile(r".+\.tmp\d+$")


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


def _temp_name(path: str) -> str:
    return f"{path}.tmp{os.getpid()}"


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(path: str, write: Callable[[str], None]) -> str:
    """``write`` to the temporary name of ``path`` and flush it to disk; an ``OSError``
    (ENOSPC, EACCES, ...) is raised again naming ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = _temp_name(path)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise OSError(e.errno, f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return tmp


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)``, then move the result to ``path`` atomically."""
    with deferred_signals():
        tmp = _write_temp(path, write)
        try:
            os.replace(tmp, path)
            _fsync_dir(os.path.dirname(os.path.abspath(path)))
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def write_together(writes: Sequence[Tuple[str, Callable[[str], None]]]) -> None:
    """Write every ``(path, write)`` (paths in one folder) so that the set is replaced as a
    unit, even through ``kill -9``: temporary files, then the journal, then the renames.
    SIGINT/SIGTERM wait until all are done."""
    if not writes:
        return
    directory = os.path.dirname(os.path.abspath(writes[0][0]))
    if any(os.path.dirname(os.path.abspath(p)) != directory for p, _ in writes):
        raise ValueError("write_together: all files must be in one folder")
    with deferred_signals():
        temps: List[Tuple[str, str]] = []
        try:
            for path, write in writes:
                temps.append((_write_temp(path, write), path))
            journal = {"renames": [[os.path.basename(t), os.path.basename(p)] for t, p in temps]}
            atomic_write(os.path.join(directory, JOURNAL), lambda tmp: _dump_json(tmp, journal))
        except BaseException:
            for tmp, _ in temps:
                if os.path.exists(tmp):
                    os.remove(tmp)
            raise
        _commit(directory)


def _commit(directory: str) -> List[str]:
    """Do the renames the journal in ``directory`` lists (those not done yet), then drop it."""
    journal = os.path.join(directory, JOURNAL)
    with open(journal, encoding="utf-8") as f:
        renames = json.load(f)["renames"]
    done = []
    for tmp, name in renames:
        if os.path.exists(os.path.join(directory, tmp)):
            os.replace(os.path.join(directory, tmp), os.path.join(directory, name))
            done.append(name)
    _fsync_dir(directory)
    os.remove(journal)
    _fsync_dir(directory)
    return done


def recover(directory: str) -> Tuple[List[str], List[str]]:
    """Finish a :func:`write_together` that a ``kill -9`` or power cut interrupted after
    its journal was written, and delete temporary files left by killed writers. Call it
    only while no other process writes to ``directory`` (hold its run lock). Returns (files
    completed, temporary files removed)."""
    if not os.path.isdir(directory):
        return [], []
    completed = []
    if os.path.isfile(os.path.join(directory, JOURNAL)):
        try:
            completed = _commit(directory)
        except (ValueError, KeyError, TypeError):  # a journal cut short cannot be: it is written atomically
            os.remove(os.path.join(directory, JOURNAL))
    removed = sorted(name for name in os.listdir(directory) if _TEMP.match(name))
    for name in removed:
        os.remove(os.path.join(directory, name))
    return completed, removed


def _dump_json(path: str, data) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def json_writer(data) -> Callable[[str], None]:
    """The ``write(tmp_path)`` of :func:`write_json`, for :func:`write_together`."""
    return lambda tmp: _dump_json(tmp, data)


def write_json(path: str, data: dict) -> None:
    """JSON, written atomically."""
    atomic_write(path, json_writer(data))
