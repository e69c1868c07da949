"""Run locks: a run holds ``flock`` on ``<work folder>/run.lock`` for its whole life.

    lock = RunLock.acquire(work_dir)   # raises HarnessError naming the holder when another session has it
    lock.fileno()                      # handed to the traffic supervisor, which then holds it too
    lock.release()                     # unlock (for every holder) and close
    lock.forget()                      # close ours only: a holder it was handed to keeps the lock
    lock_held(work_dir)                # True while any process holds the lock (sweeps skip those runs)

``flock`` belongs to the open file, not to the process: a child given the descriptor (the traffic
supervisor, through ``pass_fds``) keeps the lock after the harness is gone, and the kernel drops it
when the last holder exits, however it exits (``kill -9`` and OOM included). Nothing else the run
starts inherits it (Python opens files non-inheritable), so a balancer or a node left running by
a dead run never keeps its lock. A folder with no lock file (a run from before locks) counts as
not held.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from pathlib import Path

from harness.errors import HarnessError

LOCK_FILE = "run.lock"
RUN_ENV = "KUH_RUN_ID"  # every process a run starts carries its run id in this variable (sweeps read it)


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _try_lock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _holder(path: Path) -> str:
    """Who wrote the lock file last (pid, command), for the message; the lock itself is the flock."""
    try:
        record = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "an unknown process"
    return f"pid {record.get('pid')} ({record.get('what', '?')})"


class RunLock:
    """An exclusive ``flock`` on a run's lock file, held until :meth:`release` (or the holders exit)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def __repr__(self) -> str:
        return f"RunLock({str(self.path)!r}, held={self._fd is not None})"

    @classmethod
    def acquire(cls, work_dir: Path, *, wait: float = 2.0, what: str = "harness") -> RunLock:
        """Take the lock of the run whose private folder is ``work_dir`` (waiting up to ``wait`` s:
        another run's sweep may be testing it at this instant)."""
        work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = work_dir / LOCK_FILE
        fd = _open(path)
        deadline = time.monotonic() + wait
        while not _try_lock(fd, fcntl.LOCK_EX):
            if time.monotonic() >= deadline:
                os.close(fd)
                raise HarnessError(
                    f"run folder {work_dir.name} is in use: another session holds {path} "
                    f"(last taken by {_holder(path)})",
                    hint="wait for that session (or its paused traffic supervisor) to finish, or start a "
                    "fresh run without --run-dir",
                )
            time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "what": what, "since": time.time()}).encode(), 0)
        return cls(path, fd)

    def fileno(self) -> int:
        if self._fd is None:
            raise HarnessError(f"the run lock {self.path} was released", hint="acquire it again")
        return self._fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def forget(self) -> None:
        """Close this process's descriptor WITHOUT unlocking: a child that shares it (the paused
        traffic supervisor) keeps the lock. (``LOCK_UN`` would unlock it for every holder.)"""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def lock_held(work_dir: Path) -> bool:
    """True while some process holds the run's lock. Tested with a shared, non-blocking lock that is
    dropped at once (a run starting at that instant waits for it, see :meth:`RunLock.acquire`)."""
    path = work_dir / LOCK_FILE
    if not path.is_file():
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if _try_lock(fd, fcntl.LOCK_SH):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        return True
    finally:
        os.close(fd)
