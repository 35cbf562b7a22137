"""Seeds for the data package's torch generators, mixed from a few integers."""

from __future__ import annotations

import numpy as np


def seed_from(*words: int) -> int:
    """A well-mixed 63-bit seed from some integers (negative ones are taken modulo 2**64)."""
    state = np.random.SeedSequence([w % 2**64 for w in words]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])
