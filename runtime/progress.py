"""Progress bars: every bar a run shows is made here, so they look alike and can be hushed.

On a terminal a bar is tqdm's, redrawn in place. When stderr is not a terminal (a batch
scheduler's log, ``2> run.log``) redrawing would write every update as a ``\\r`` line, so a
bar is a ``LineBar`` instead: one plain line each time a quarter of its total is done
(and when it closes unfinished), at most ``LINES_PER_BAR`` + 1 lines however many updates.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator

from tqdm import tqdm

_hushed = False

# the fractions of a bar's total at which a LineBar writes a line
MILESTONES = (0.25, 0.5, 0.75, 1.0)
LINES_PER_BAR = len(MILESTONES)


def hush() -> None:
    """No bars in this process (a worker of a pool whose parent shows one)."""
    global _hushed
    _hushed = True


def _on_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class LineBar:
    """What a run's loops use of a tqdm bar, written as plain lines to stderr: ``desc: n/total
    unit (pct%) elapsed, postfix`` at each of ``MILESTONES`` of the total (with no total:
    only when it closes)."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        total: int | None = None,
        initial: int = 0,
        desc: str = "",
        unit: str = "it",
        disable: bool = False,
    ) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.n = iterable, total, initial
        self.desc, self.unit, self.disable = desc, unit, disable
        self.postfix = ""
        self.started = time.monotonic()
        self.closed = False
        self._written = self._reached()  # milestones already passed when the bar starts

    def _reached(self) -> int:
        if not self.total:
            return 0
        return sum(1 for m in MILESTONES if self.n >= m * self.total)

    def __iter__(self) -> Iterator:
        assert self.iterable is not None
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def set_postfix(self, refresh: bool = True, **values: object) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        reached = self._reached()
        if reached > self._written:
            self._written = reached
            self._write()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._written < LINES_PER_BAR or not self.total:
            self._write()

    def line(self) -> str:
        """The line this bar writes now."""
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        pct = f" ({100 * self.n // self.total}%)" if self.total else ""
        took = duration(time.monotonic() - self.started)
        tail = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}: {done} {self.unit}{pct} in {took}{tail}"

    def _write(self) -> None:
        if not self.disable:
            print(self.line(), file=sys.stderr, flush=True)


def bar(iterable=None, **kw) -> tqdm | LineBar:
    """A tqdm bar that follows the terminal's width; a ``LineBar`` when stderr is not a
    terminal."""
    if not _on_terminal():
        return LineBar(iterable, disable=_hushed, **kw)
    return tqdm(iterable, dynamic_ncols=True, disable=_hushed, **kw)


def note(text: str) -> None:
    """A line printed above the bars (not torn through one)."""
    tqdm.write(text)


def duration(seconds: float) -> str:
    """``1h05m``, ``4m10s`` or ``12s``: an estimate, shown at its scale."""
    m, sec = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")
