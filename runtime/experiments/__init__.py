"""The paper's experiments on the SMASH score (section 4.1), one module each, and their
registry, from which ``smashc experiment`` builds its subcommands.

* ``correlation`` / ``low-budget``: SMASH score against the true error of normally
  trained architectures (``correlation.py``);
* ``corrupt``: scores with corrupted encodings c (``corrupt.py``);
* ``arch-grad``: single-op changes proposed by dE/dc against random ones (``archgrad.py``);
* ``ranking``: SMASH score and zero-cost proxies against a ground-truth set of trained
  architectures (``ranking.py``).

Every experiment writes its resolved config and resumes where it stopped when run again
into the same folder: the SMASH checkpoint, every score and every trained architecture's
result are kept as they are finished. A new experiment is one module that defines its
config dataclass (its settings declared with ``rules.setting``), its presets, its run and
its summary printer, and calls ``register``; ``docs/experiments.md`` has a worked example.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Experiment:
    name: str  # the subcommand
    help: str
    presets: dict  # preset name -> config (a dataclass with a ``search`` SearchConfig)
    run: Callable[[object, Path], dict]  # (config, folder) -> summary
    show: Callable[[dict], None]  # prints the summary


EXPERIMENTS: dict[str, Experiment] = {}


def register(name: str, help: str, presets: dict, run, show) -> Experiment:
    if name in EXPERIMENTS:
        raise ValueError(f"experiment {name!r} registered twice")
    EXPERIMENTS[name] = Experiment(name, help, presets, run, show)
    return EXPERIMENTS[name]


from smashc.runtime.config import check_config as check  # noqa: E402
from smashc.runtime.experiments import archgrad, correlation, corrupt, ranking  # noqa: E402, F401

# the experiments' configs and presets, by the names callers know them by
from smashc.runtime.experiments.archgrad import ARCH_GRAD, ArchGradConfig  # noqa: E402
from smashc.runtime.experiments.correlation import (  # noqa: E402
    CORRELATION,
    LOW_BUDGET,
    CorrelationConfig,
)
from smashc.runtime.experiments.corrupt import CORRUPT, CorruptConfig  # noqa: E402
from smashc.runtime.experiments.ranking import RANKING, RankingConfig  # noqa: E402

__all__ = [
    "ARCH_GRAD",
    "CORRELATION",
    "CORRUPT",
    "EXPERIMENTS",
    "LOW_BUDGET",
    "RANKING",
    "ArchGradConfig",
    "CorrelationConfig",
    "CorruptConfig",
    "Experiment",
    "RankingConfig",
    "check",
    "register",
]
