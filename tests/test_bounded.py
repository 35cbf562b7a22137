"""Reading dataset files within bounds (``runtime.data.bounded``): real files pass, inputs
that would expand beyond their bound are refused before they are expanded or built."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest

from smashc.runtime.data import bounded


def test_gunzip_expands_every_member_up_to_its_limit():
    raw = gzip.compress(b"abc" * 1000) + gzip.compress(b"xyz")
    assert bounded.gunzip(raw, 3003) == b"abc" * 1000 + b"xyz"
    assert bounded.gunzip(raw, 10, prefix=True) == b"abcabcabca"
    with pytest.raises(bounded.TooLarge, match="expands to more than 3,002 bytes"):
        bounded.gunzip(raw, 3002)


def test_gunzip_stops_a_bomb_at_its_limit():
    bomb = gzip.compress(bytes(50_000_000))  # 50 KB that expand to 50 MB
    assert len(bomb) < 100_000
    with pytest.raises(bounded.TooLarge):
        bounded.gunzip(bomb, 1000)


def test_a_cut_gzip_is_an_error():
    with pytest.raises(EOFError):
        bounded.gunzip(gzip.compress(b"abc" * 1000)[:30], 5000)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_a_cifar_sized_pickle_passes(protocol):
    batch = {
        b"batch_label": b"training batch 1 of 5",
        b"labels": [k % 10 for k in range(10_000)],
        b"data": np.zeros((10_000, 3072), np.uint8),
        b"filenames": [b"img%05d.png" % k for k in range(10_000)],
    }
    bounded.check_pickle(pickle.dumps(batch, protocol))


def test_a_list_holding_itself_passes():
    loop: list = [1]
    loop.append(loop)
    bounded.check_pickle(pickle.dumps(loop))


def _dag(levels: int) -> list:
    x: list = [0]
    for _ in range(levels):
        x = [x, x]
    return x


@pytest.mark.parametrize(
    "obj",
    [_dag(40), {b"data": [list(range(3072))] * 4096}, (tuple(_dag(30)),)],
    ids=["shared-lists", "shared-rows", "tuple-of-shared-lists"],
)
def test_what_unfolds_past_the_bound_is_refused(obj):
    data = pickle.dumps(obj, 2)
    assert len(data) < 100_000
    with pytest.raises(bounded.TooLarge, match="builds more than 10,000,000 objects"):
        bounded.check_pickle(data)


def test_not_a_pickle_is_a_value_error():
    with pytest.raises(ValueError):
        bounded.check_pickle(b"not a pickle")
