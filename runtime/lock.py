"""One run per folder: an exclusive ``fcntl.flock`` on the run folder's lock file.

Two runs writing into one ``--out`` at once interleave their logs and leave a folder that
mixes two runs (the config of one, the ranking of the other). So a run holds an exclusive
lock on ``FOLDER/.smashc.lock`` from the moment its folder is opened until the command ends
(``release_all``) or its process dies, when the system drops the lock itself, so a killed
run never leaves a stale lock behind. A second run into a locked folder is refused (E0709),
naming the pid the holder wrote into the file.

Within one process a folder already held is not taken again (an experiment opens a folder
and its subfolders). Of the processes of one distributed job only rank 0 opens the run's
folder (``context.open_run``), so only it takes the lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from smashc.diagnostics import SmashError, Span, error

LOCK_NAME = ".smashc.lock"

_held: dict[Path, int] = {}  # folder (resolved) -> the open file descriptor holding its lock


def _holder(fd: int) -> str:
    """The pid the lock's holder wrote, as text ("unknown" if it wrote none yet)."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return text if text.isdigit() else "unknown"


def hold(folder: Path) -> None:
    """Takes the exclusive lock on ``folder`` (an existing folder) for this process, or
    raises a SmashError (E0709) at the folder naming the pid of the run that holds it."""
    key = folder.resolve()
    if key in _held:
        return
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _holder(fd)
        os.close(fd)
        msg = (
            f"another smashc run (pid {pid}) is writing into {folder}: wait for it to end, "
            "or give this run another --out"
        )
        raise SmashError([error("E0709", msg, Span(str(folder), 1, 1, 1, 1))]) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    _held[key] = fd


def release_all() -> None:
    """Drops every lock this process holds (at the end of a command)."""
    while _held:
        _, fd = _held.popitem()
        os.close(fd)  # closing the descriptor releases its flock
