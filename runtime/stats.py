"""Rank statistics for the experiments: Spearman rho and Kendall tau with
bootstrap confidence intervals, top-fraction recall, and the paper's every-m-th selection of
scored architectures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Correlation:
    """A rank correlation with its bootstrap (percentile) confidence interval."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def _coefficient(kind: str, x: np.ndarray, y: np.ndarray) -> float:
    if kind == "spearman":
        r = stats.spearmanr(x, y).statistic
    elif kind == "kendall":
        r = stats.kendalltau(x, y).statistic
    else:
        raise ValueError(f"unknown rank correlation {kind!r}")
    return float(r) if np.isfinite(r) else 0.0  # a constant sample has no rank order


def correlation(
    x, y, kind: str = "spearman", resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> Correlation:
    """Spearman's rho or Kendall's tau between ``x`` and ``y`` with a bootstrap interval.

    The interval resamples (x, y) pairs with replacement ``resamples`` times and takes the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles; seeded, so it is reproducible.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise ValueError("need two equally long 1-D samples of at least 3 values")
    value = _coefficient(kind, x, y)
    rng = np.random.default_rng(seed)
    boots = np.empty(resamples)
    for i in range(resamples):
        idx = rng.integers(0, len(x), len(x))
        boots[i] = _coefficient(kind, x[idx], y[idx])
    low, high = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return Correlation(value, float(low), float(high))


def every_mth(scores, m: int) -> list[int]:
    """Indices of every m-th architecture in order of score (the paper: 250 scored, every
    5th trained), starting with the best; ties keep their original order."""
    if m < 1:
        raise ValueError("m must be at least 1")
    order = sorted(range(len(scores)), key=lambda i: (scores[i], i))
    return order[::m]


def top_recall(predicted, true, fraction: float) -> float:
    """How many of the truly best ``fraction`` (lowest ``true``) are among the predicted best
    ``fraction`` (lowest ``predicted``), as a share: 1.0 finds all of them, and a random
    order finds ``fraction`` of them on average. At least one architecture is taken; ties
    are broken by position."""
    n = len(true)
    if n != len(predicted) or n == 0:
        raise ValueError("need two equally long, non-empty samples")
    if not 0 < fraction <= 1 or math.isnan(fraction):
        raise ValueError("fraction must be in (0, 1]")
    k = max(1, round(fraction * n))
    best = set(sorted(range(n), key=lambda i: (true[i], i))[:k])
    picked = set(sorted(range(n), key=lambda i: (predicted[i], i))[:k])
    return len(best & picked) / k
