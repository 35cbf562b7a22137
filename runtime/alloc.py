"""Process settings for training: oneDNN keeps the conv kernels it builds, glibc malloc
keeps freed memory for the next step's tensors, and Python's cyclic garbage collector
leaves the objects of the imports alone.

oneDNN builds (JIT-compiles) a kernel for every conv shape, direction and layout reorder
it meets and keeps the last 1,024 in a cache. Every SMASH step samples a new
architecture, about 200 kernels' worth for the network's convs, so with that cache they
are built again step after step, though the shapes recur (about 950 distinct conv
configurations early in training, 3,200 late, over 2,000 sampled architectures).
``cache_conv_kernels`` raises the cache to 16,384 entries. ``bench/archive/kernel_cache.py``
(one process per size, sizes alternating, reference-sized work, steps on architectures
never run before, as training meets them) on a 2-core AVX512-BF16 EPYC, bf16:
early 0.236 -> 0.196 s per step (after 150 architectures, two rounds), late 0.460 ->
0.381 s (after 200, two rounds), at 1.6 GB instead of 1.1 GB early and 2.8 instead of
1.2 late, bounded by the 16,384 entries; fp32, late: 0.592 -> 0.496 s at 4.1 GB instead
of 1.9 (one round). The padded HyperNet (``runtime/hypernet.py``) builds few kernels of
its own, so the cache holds mostly the network's. Set ONEDNN_PRIMITIVE_CACHE_CAPACITY
yourself to choose another trade-off; oneDNN reads it when it builds its first kernel.

A training step allocates and frees hundreds of activation-sized tensors. With glibc's
defaults the heap's top is returned to the kernel as soon as 128 KiB-256 KiB of it are
free, and tensors above the (dynamic) mmap threshold get fresh pages, so every step
takes its memory from the kernel again: 37,000-60,000 minor page faults per SMASH step at
batch 50. Here the trim threshold is 1 GiB and malloc never uses mmap, so every tensor
comes from the heap, and the heap keeps what the last step freed: no page faults in a
step once the heap has grown to the largest step's size.

Why not mmap at all: the mmap threshold cannot be raised above 32 MiB, and activations
of the wider reads and transitions (50 x 168 x 32 x 32 floats is 34 MB) are larger than
that, so with the threshold at its ceiling a step still faults in 5,000-16,000 pages;
without mmap, 4,000-6,600 (``bench/archive/alloc.py``, which alternates
processes with each setting: late steps 1% faster, early ones unchanged). The price:
up to 1 GiB freed in one step stays mapped for the next. Setting the trim threshold
alone is worse than the defaults: it also freezes the mmap threshold at 128 KiB, and
every activation then gets fresh pages (220,000 faults per step).

No effect (and no error) where the C library has no ``mallopt``.

The garbage collector: compiling an architecture makes about 14,000 container objects
(fx nodes, IR dicts and tuples), so with Python's defaults (a young collection every 700,
and every hundredth one a full collection over all 280,000 objects that importing torch
leaves) collections took 6-10 of every 33 ms of compiling in a training process, and a
collection started by the compile thread holds the lock the training step needs between
its kernels. ``calm_gc`` freezes the objects alive at start-up (``gc.freeze``: collections
no longer visit them) and starts a young collection every 20,000 new objects: 26.9 ms
per late architecture on average instead of 33.1 (``bench/compile.py --archs 100``), and
prefetched compilation costs a step half as much. Reference cycles (fx graphs have them)
are still collected, a little later.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc <malloc.h>
TRIM_THRESHOLD = 1 << 30
GC_THRESHOLD = 20_000
KERNEL_CACHE = 16_384
_KERNEL_CACHE_VARS = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "DNNL_PRIMITIVE_CACHE_CAPACITY")


def cache_conv_kernels() -> bool:
    """Sets oneDNN's kernel cache to ``KERNEL_CACHE`` entries unless the environment already
    chose a size; whether it set it. Takes effect only before the process's first conv."""
    if any(v in os.environ for v in _KERNEL_CACHE_VARS):
        return False
    os.environ[_KERNEL_CACHE_VARS[0]] = str(KERNEL_CACHE)
    return True


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


def calm_gc() -> None:
    """Collects once, freezes every object alive now out of the collector's reach, and
    makes young collections rarer (``GC_THRESHOLD`` new objects instead of 700)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, middle, old)


def tune_process() -> None:
    """The three settings, as ``smashc search``, ``train`` and ``experiment`` (and the
    benches) start."""
    cache_conv_kernels()
    keep_freed_memory()
    calm_gc()
