"""glibc malloc settings for training: keep freed memory for the next step's tensors.

A training step allocates and frees hundreds of activation-sized tensors. With glibc's
defaults the heap's top is returned to the kernel as soon as 128 KiB-256 KiB of it are
free, and tensors above the (dynamic) mmap threshold get fresh pages, so every step
takes its memory from the kernel again: 37,000-60,000 minor page faults per SMASH step at
batch 50. Here the trim threshold is 1 GiB and malloc never uses mmap, so every tensor
comes from the heap, and the heap keeps what the last step freed: no page faults in a
step once the heap has grown to the largest step's size.

Why not mmap at all: the mmap threshold cannot be raised above 32 MiB, and activations
of the wider reads and transitions (50 x 168 x 32 x 32 floats is 34 MB) are larger than
that, so with the threshold at its ceiling (the setting of stop 10) a late step still
faulted in 38,000-80,000 pages; without mmap, 0-10,000. ``bench/alloc.py`` alternates
processes with each setting. The price: up to 1 GiB freed in one step stays mapped for
the next. Setting the trim threshold alone is worse than the defaults: it also freezes
the mmap threshold at 128 KiB, and every activation then gets fresh pages (220,000
faults per step).

No effect (and no error) where the C library has no ``mallopt``.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc <malloc.h>
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Sets the trim threshold and turns off mmap for this process; whether the C library
    took both."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(_M_MMAP_MAX, 0))
