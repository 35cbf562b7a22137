"""glibc malloc settings for training: keep freed memory for the next step's tensors.

A training step allocates and frees hundreds of activation-sized tensors. With glibc's
defaults the heap's top is returned to the kernel as soon as 128 KiB-256 KiB of it are
free, and tensors above the (dynamic) mmap threshold get fresh pages, so every step
takes its memory from the kernel again: 37,000-60,000 minor page faults per SMASH step at
batch 50. Raising the trim threshold to 1 GiB and pinning the mmap threshold at its
dynamic ceiling (32 MiB) cuts that to 6,000-22,000, and steps run 10% faster early in
training and 4% late (``bench/alloc.py``, three rounds of alternating processes). The
price: up to 1 GiB freed in one step stays mapped for the next. Setting the trim
threshold alone is worse than the defaults: it also freezes the mmap threshold at
128 KiB, and every activation then gets fresh pages (220,000 faults per step).

No effect (and no error) where the C library has no ``mallopt``.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>
TRIM_THRESHOLD = 1 << 30
MMAP_THRESHOLD = 32 << 20  # the ceiling of glibc's dynamic threshold; larger tensors are mmapped


def keep_freed_memory() -> bool:
    """Sets the two thresholds for this process; whether the C library took them."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    )
