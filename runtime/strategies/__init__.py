"""Search strategies: what decides which architectures a search scores.

A strategy proposes architectures one at a time; the search scores each (or takes its
score from ``scores.jsonl`` when a resumed run has it) and appends it to the history the
strategy sees before it proposes the next, so a strategy can climb from what it learned.
``score.strategies`` names the strategies a search runs, in order; each proposes at most
``budget(cfg)`` architectures, indexed after those of the strategies before it.

A new strategy is one module in this package holding a class with ``name``, ``label``,
``budget`` and ``propose``, registered with ``@register`` (``docs/search.md`` has a worked
example).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from smashc.compiler import Network
from smashc.runtime.config import SearchConfig
from smashc.runtime.context import RunContext
from smashc.runtime.scoring import Scored


class Strategy(Protocol):
    name: str  # its key in score.strategies, and the "source" of the scores it proposes
    label: str  # its progress bar's
    # optional ``independent = True``: no proposal reads the scores of the ones before it,
    # so a process group scores them several at a time (one per rank); without it, rank 0
    # scores each and its score is in ``history`` before the next is proposed

    def budget(self, cfg: SearchConfig) -> int:
        """How many architectures it proposes at most."""

    def propose(
        self, ctx: RunContext, history: list[Scored], start: int
    ) -> Iterator[tuple[int, Network]]:
        """Architectures to score, with their indices (from ``start`` on); ``history``
        holds every score so far, this strategy's included, as each becomes known."""


STRATEGIES: dict[str, Callable[[], Strategy]] = {}


def register(cls):
    """Class decorator: makes the strategy available as ``cls.name`` in score.strategies."""
    if cls.name in STRATEGIES:
        raise ValueError(f"search strategy {cls.name!r} registered twice")
    STRATEGIES[cls.name] = cls
    return cls


def get(name: str) -> Strategy:
    return STRATEGIES[name]()


from smashc.runtime.strategies import refine, sample  # noqa: E402, F401  (they register)
