"""One training per output folder: a lock held for the whole run.

The lock is ``<folder>/.ppzoo.lock``, taken with ``filelock`` (an OS file lock: the kernel
releases it when the holder exits in any way, ``kill -9`` included, so a killed run never
leaves a lock that blocks the next one). Who holds it is written next to it, in
``.ppzoo.lock.json`` (pid, host, start time, command): the lock file itself is truncated
by every attempt to take it. A second run is refused with :class:`RunLockedError` naming
the holder; a run that finds the record of a holder that is gone (the lock was free)
reports it as a stale lock it took over.
"""
import datetime
import json
import os
import socket
import sys
from typing import Optional

from filelock import FileLock, Timeout

from .fileio import write_json

__all__ = ["RunLock", "RunLockedError", "LOCK_NAME"]

LOCK_NAME = ".ppzoo.lock"


class RunLockedError(OSError):
    """Another process holds the output folder's lock."""

    def __str__(self):
        return self.args[0]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


class RunLock:
    """``with RunLock(folder) as lock:`` ... ; ``lock.stale`` is the record of a holder
    that ended without releasing (killed), or ``None``.

    Args:
        folder (str): the output folder (created if missing).
        purpose (str): what the holder does, for the refusal message. Default: "training".
    """

    def __init__(self, folder: str, purpose: str = "training"):
        self.folder, self.purpose = folder, purpose
        self.path = os.path.join(folder, LOCK_NAME)
        self.info_path = self.path + ".json"
        self.stale: Optional[dict] = None
        self._lock = FileLock(self.path, timeout=0)

    def _holder(self) -> Optional[dict]:
        try:
            with open(self.info_path, encoding="utf-8") as f:
                info = json.load(f)
            return info if isinstance(info, dict) else None
        except (OSError, ValueError):
            return None

    def acquire(self) -> "RunLock":
        os.makedirs(self.folder, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            holder = self._holder() or {}
            who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}"
                   if holder else "a process that has not written its pid yet")
            raise RunLockedError(f"{self.folder} is in use by another {self.purpose} ({who}); wait for it to finish, "
                                 f"stop it, or choose another Global.output_dir") from None
        previous = self._holder()
        if previous and previous.get("pid") != os.getpid():
            self.stale = previous
        write_json(self.info_path, {"pid": os.getpid(), "host": socket.gethostname(),
                                    "started": datetime.datetime.now().isoformat(timespec="seconds"),
                                    "command": " ".join(sys.argv)})
        return self

    def describe_stale(self) -> Optional[str]:
        """A line about the stale lock taken over, or ``None``."""
        if not self.stale:
            return None
        pid = self.stale.get("pid")
        state = ("is no longer running" if isinstance(pid, int) and not _pid_alive(pid)
                 else "no longer holds the lock")
        return (f"took over the lock of {self.folder} from a run that ended without releasing it (pid {pid}, started "
                f"{self.stale.get('started', '?')}, {state})")

    def release(self) -> None:
        if self._lock.is_locked:
            if os.path.exists(self.info_path):
                os.remove(self.info_path)
            self._lock.release()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
