"""``runtime.alloc.keep_freed_memory``: glibc takes both settings, and ``smashc search``
sets them before it starts. (What they do to page faults and step time is measured by
``bench/alloc.py``: fault counts vary too much between runs for a test.)"""

from __future__ import annotations

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


class _Stop(Exception):
    pass


def test_smashc_search_sets_it_before_searching(monkeypatch, tmp_path):
    from smashc import cli
    from smashc.runtime import alloc, search

    calls = []

    def fake_search(*args, **kwargs):
        calls.append("search")
        raise _Stop

    monkeypatch.setattr(alloc, "keep_freed_memory", lambda: calls.append("alloc") or True)
    monkeypatch.setattr(search, "search", fake_search)
    with pytest.raises(_Stop):
        cli.main(["search", "--preset", "demo", "--out", str(tmp_path)])
    assert calls == ["alloc", "search"]
