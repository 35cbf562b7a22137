"""``runtime.alloc``: oneDNN keeps more kernels when its cache size is set after torch is
imported, glibc takes both malloc settings, a large tensor freed and allocated again reuses
its pages, ``calm_gc`` freezes the start-up objects, and ``smashc search`` sets all of it
before it starts. (What they do to a training step's page faults and time
is measured by ``bench/alloc.py`` and ``bench/compile.py``: too noisy for a test.)"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="needs glibc"
)


@glibc
def test_glibc_takes_both_settings():
    # in a child process: malloc settings hold for a whole process
    probe = "from smashc.runtime.alloc import keep_freed_memory; print(keep_freed_memory())"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True)
    assert out.stdout.decode().split() == ["True"]


_REUSE = """
import resource, sys, torch
from smashc.runtime.alloc import keep_freed_memory
if sys.argv[1] == "on":
    keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = torch.ones(64 << 18)  # 64 MiB: above any mmap threshold glibc allows
del x
before = faults()
# smaller: an equal size would not fit the hole, as torch's 64-byte alignment asks a little more
x = torch.ones(48 << 18)
print(faults() - before)
"""


@glibc
def test_a_freed_large_tensor_gives_its_pages_to_the_next():
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _REUSE, mode], check=True, capture_output=True)
        return int(out.stdout.decode().split()[-1])

    pages = (48 << 20) // 4096
    assert faults("off") > pages // 2  # glibc's defaults: fresh pages from mmap
    assert faults("on") < pages // 16


def test_calm_gc_freezes_the_start_up_objects_and_collects_less_often():
    probe = (
        "import gc, torch; from smashc.runtime.alloc import GC_THRESHOLD, calm_gc; calm_gc(); "
        "print(gc.get_freeze_count(), gc.get_threshold()[0] == GC_THRESHOLD)"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True)
    frozen, threshold = out.stdout.decode().split()
    assert int(frozen) > 10_000 and threshold == "True"  # torch alone leaves 100,000s


# 1,100 conv shapes, more than oneDNN's default cache of 1,024 kernels, then the first
# shape again: is its kernel still cached?
_KERNELS = """
import sys, torch, torch.nn.functional as F
from smashc.runtime.alloc import cache_conv_kernels
print("set", cache_conv_kernels(), flush=True)  # after importing torch, before any conv
x = torch.randn(16, 8, 8, 8).contiguous(memory_format=torch.channels_last)
for c in range(1, 1101):
    F.conv2d(x, torch.randn(c, 8, 3, 3))
print("again", flush=True)
F.conv2d(x, torch.randn(1, 8, 3, 3))
"""


@pytest.mark.parametrize("preset", [None, "1024"])
def test_the_kernel_cache_size_takes_effect_and_a_users_choice_wins(preset):
    env = {k: v for k, v in os.environ.items() if "PRIMITIVE_CACHE" not in k}
    env["ONEDNN_VERBOSE"] = "profile_create"  # prints every kernel built or found cached
    env["OMP_NUM_THREADS"] = "1"  # the kernels cached are the same; 1,100 convs 5x faster
    if preset:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = preset
    out = subprocess.run(
        [sys.executable, "-c", _KERNELS], check=True, capture_output=True, env=env
    ).stdout.decode()
    if "onednn_verbose" not in out:
        pytest.skip("this torch build runs these convs without oneDNN")
    assert f"set {preset is None}" in out
    last = [ln for ln in out.split("again")[1].splitlines() if ",convolution," in ln]
    assert last and all(("cache_hit" in ln) == (preset is None) for ln in last)


class _Stop(Exception):
    pass


def test_smashc_search_sets_them_before_searching(monkeypatch, tmp_path):
    from smashc import cli
    from smashc.runtime import alloc, search

    calls = []

    def fake_search(*args, **kwargs):
        calls.append("search")
        raise _Stop

    monkeypatch.setattr(alloc, "cache_conv_kernels", lambda: calls.append("kernels") or True)
    monkeypatch.setattr(alloc, "keep_freed_memory", lambda: calls.append("alloc") or True)
    monkeypatch.setattr(alloc, "calm_gc", lambda: calls.append("gc"))
    monkeypatch.setattr(search, "search", fake_search)
    with pytest.raises(_Stop):
        cli.main(["search", "--preset", "demo", "--out", str(tmp_path)])
    assert calls == ["kernels", "alloc", "gc", "search"]
