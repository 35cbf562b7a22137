"""Rank statistics: known rankings give known rho/tau, intervals behave, every-m-th selection."""

from __future__ import annotations

import numpy as np
import pytest

from smashc.runtime.stats import correlation, every_mth


@pytest.mark.parametrize("kind", ["spearman", "kendall"])
def test_identical_and_reversed_rankings(kind):
    x = np.arange(20)
    same = correlation(x, x * 3 + 1, kind, resamples=200)
    assert same.value == pytest.approx(1.0)
    assert same.low == pytest.approx(1.0) and same.high == pytest.approx(1.0)
    rev = correlation(x, -x, kind, resamples=200)
    assert rev.value == pytest.approx(-1.0)


def test_known_values():
    # one adjacent swap in 5 items: rho = 1 - 6*2/(5*24) = 0.9, tau = (9 - 1)/10 = 0.8
    x, y = [1, 2, 3, 4, 5], [1, 2, 3, 5, 4]
    assert correlation(x, y, "spearman", resamples=50).value == pytest.approx(0.9)
    assert correlation(x, y, "kendall", resamples=50).value == pytest.approx(0.8)


def test_interval_contains_the_estimate_and_is_reproducible():
    rng = np.random.default_rng(1)
    x = rng.normal(size=60)
    y = x + rng.normal(scale=1.0, size=60)
    a = correlation(x, y, "spearman", resamples=500, seed=3)
    b = correlation(x, y, "spearman", resamples=500, seed=3)
    assert a == b
    assert a.low <= a.value <= a.high
    assert 0.3 < a.value < 0.9
    unrelated = correlation(x, rng.normal(size=60), "kendall", resamples=500)
    assert unrelated.low < 0 < unrelated.high


def test_bad_inputs():
    with pytest.raises(ValueError):
        correlation([1, 2], [1, 2])
    with pytest.raises(ValueError):
        correlation([1, 2, 3], [1, 2])
    with pytest.raises(ValueError):
        correlation([1, 2, 3], [1, 2, 3], "pearson")


def test_every_mth_selection():
    scores = [0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0]
    assert every_mth(scores, 1) == sorted(range(10), key=lambda i: scores[i])
    assert every_mth(scores, 5) == [9, 0]  # the best (0.0), then the 6th best (0.5)
    assert every_mth(scores, 3) == [9, 3, 8, 2]
    assert len(every_mth(list(range(250)), 5)) == 50  # the paper's 250 -> 50
    assert every_mth([0.2, 0.2, 0.1], 1) == [2, 0, 1]  # ties keep their order
    with pytest.raises(ValueError):
        every_mth(scores, 0)
