"""Pytest fixtures shared by the test modules (helpers live in support.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support import check_golden


@pytest.fixture
def golden() -> Callable[[Path, str], None]:
    """``golden(path, actual)``: compare with, or (SMASHC_UPDATE_GOLDENS=1) rewrite, a golden."""
    return check_golden
