"""Progress bars: every bar a run shows is made here, so they look alike and can be hushed."""

from __future__ import annotations

from tqdm import tqdm

_hushed = False


def hush() -> None:
    """No bars in this process (a worker of a pool whose parent shows one)."""
    global _hushed
    _hushed = True


def bar(iterable=None, **kw) -> tqdm:
    """A tqdm bar that follows the terminal's width."""
    return tqdm(iterable, dynamic_ncols=True, disable=_hushed, **kw)


def note(text: str) -> None:
    """A line printed above the bars (not torn through one)."""
    tqdm.write(text)


def duration(seconds: float) -> str:
    """``1h05m``, ``4m10s`` or ``12s``: an estimate, shown at its scale."""
    m, sec = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")
