"""Pytest fixtures shared by the test modules (helpers live in support.py)."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from support import check_golden

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one worker per core: the tests' networks are tiny, and OpenMP threads of two workers
    # contending for two cores only slow both down (the subprocesses use one, support.ENV)
    torch.set_num_threads(1)


@pytest.fixture
def golden() -> Callable[[Path, str], None]:
    """``golden(path, actual)``: compare with, or (SMASHC_UPDATE_GOLDENS=1) rewrite, a golden."""
    return check_golden


@pytest.fixture(autouse=True)
def _restore_gc():
    """Commands run in-process call ``runtime.alloc.calm_gc``, which is meant for a whole
    process (it freezes the objects alive and raises the collection threshold): undone
    after each test, so the test process keeps collecting as usual."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
