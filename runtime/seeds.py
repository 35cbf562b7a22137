"""Named seed streams: every random choice of a run is drawn from (run seed, stream, parts).

A stream is one use of randomness (the architecture of a SMASH step, the noise of a score,
the shuffling of the final training, ...). Each has its own number, so two phases never
share one by accident and a new phase takes a new member of ``Stream``: ``enum.unique``
refuses a number used twice. The numbers are part of a run's results (the same seed gives
the same run), so existing members never change theirs.
"""

from __future__ import annotations

import enum

import numpy as np


@enum.unique
class Stream(enum.IntEnum):
    SMASH_INIT = 0  # the one-shot model's initial weights
    SMASH_ARCH = 1  # the architecture of each HyperNet training step (part: the step)
    SMASH_BATCHES = 2  # the HyperNet training's shuffling and augmentation
    SMASH_NOISE = 3  # the HyperNet's noise input at each training step (part: the step)
    SCORE_NOISE = 4  # the noise samples an architecture is scored with (part: its index)
    SCORE_ARCH = 5  # the index-th architecture drawn for scoring (part: the index)
    REFINE = 6  # the perturbations the refinement draws
    FINAL_INIT = 7  # the final training's initial weights
    FINAL_BATCHES = 8  # the final training's shuffling and augmentation
    CORRELATION_RANDOM = 90  # the random ranking the correlation experiment compares with
    CORRUPTION = 91  # the corrupt experiment's corruptions (parts: arch, field, mode)
    ARCH_GRAD_RANDOM = 92  # the random changes the arch-grad experiment compares with
    PROXY_INIT = 93  # the weights a zero-cost proxy scores a network with (runtime.proxies)
    PROXY_BATCH = 94  # the training images a zero-cost proxy is computed on
    GROUNDTRUTH_ARCH = 95  # bench/groundtruth.py: the index-th architecture (part: the index)
    GROUNDTRUTH_TRAIN = 96  # bench/groundtruth.py: the seed of each training (part: repeat)
    BASELINE_ARCH = 99  # the architecture of a search's random baseline (runtime.baselines)


def derive(seed: int, stream: Stream, *parts: int) -> int:
    """A 63-bit seed for ``stream`` of the run seeded ``seed`` (and ``parts``, such as a
    step or an architecture's index); stable across runs and platforms."""
    state = np.random.SeedSequence([seed, int(stream), *parts]).generate_state(2, np.uint32)
    return int(state.view(np.uint64)[0]) >> 1
