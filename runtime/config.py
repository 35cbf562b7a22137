"""A search's settings: the frozen config tree, each field with its range and its flag.

``SearchConfig`` is what ``smashc search`` and ``smashc train`` run on (an experiment's
config holds one under ``search``). Every leaf is declared with ``rules.setting``, so its
range check, its command-line option and its ``--set`` key are one declaration;
``config_problems`` walks the tree and ``check_config`` raises them as E0704 before any
data is loaded or anything is written. Presets live in ``runtime.presets``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from smashc.diagnostics import COMMAND_LINE, SmashError, error
from smashc.runtime import precision
from smashc.runtime.data import DATASETS
from smashc.runtime.hypernet import HyperNetConfig
from smashc.runtime.rules import (
    EXPERIMENT,
    SEARCH,
    TRAIN,
    Flag,
    Rule,
    count,
    number,
    one_of,
    optional_count,
    pair,
    positive,
    problems,
    setting,
)
from smashc.runtime.sampler import SearchSpace

_SCORED = (SEARCH, "correlation", "low-budget")  # the commands that rank sampled architectures
_SMASH_TRAINED = (SEARCH, EXPERIMENT)  # the commands that train a HyperNet
_FINAL_TRAINED = (SEARCH, TRAIN, "correlation", "low-budget")


@dataclass(frozen=True)
class SmashTraining:
    """HyperNet training (the reference's defaults)."""

    epochs: int = setting(
        100, count(1), Flag("--epochs", _SMASH_TRAINED, "HyperNet training epochs", "E")
    )
    batch_size: int = setting(50, count(1))
    # architectures per optimiser step (and per process in a distributed run), each on its
    # own batch, their gradients averaged (runtime.metabatch)
    meta_batch: int = setting(
        1,
        count(1),
        Flag(
            "--meta-batch",
            _SMASH_TRAINED,
            "HyperNet training: architectures per optimiser step (per process), K",
            "K",
        ),
    )
    lr: float = setting(1e-3, positive())
    betas: tuple[float, float] = setting((0.5, 0.999), pair(number(0, 1)))
    eps: float = setting(1e-4, positive())
    weight_decay: float = setting(1e-4, number(0))  # shared weights only, none on the HyperNet
    steps_per_epoch: int | None = setting(None, optional_count(1))  # None: the whole split


def _strategies(v) -> bool:
    from smashc.runtime.strategies import STRATEGIES

    return isinstance(v, tuple) and 0 < len(v) == len(set(v)) and set(v) <= set(STRATEGIES)


def _baselines(v) -> bool:
    from smashc.runtime.baselines import BASELINES

    return isinstance(v, tuple) and len(v) == len(set(v)) and set(v) <= set(BASELINES)


@dataclass(frozen=True)
class Scoring:
    """Ranking architectures by their validation error with generated weights."""

    archs: int = setting(
        250, count(1), Flag("--archs", _SCORED, "architectures to score (paper: 250)", "K")
    )
    val_images: int | None = setting(None, optional_count(1))  # None: the whole split
    batch_size: int = setting(50, count(1))  # faster per image than larger ones on CPU
    refine: int = setting(  # perturbations of the best tried after ranking
        0, count(0), Flag("--refine", (SEARCH,), "perturbations of the best to try", "N")
    )
    perturb: float = setting(0.05, number(0, 1, low_open=True, high_open=False))
    top: int = setting(5, count(1))  # how many top architectures get .smash files and diagrams
    bn_batches: int = setting(  # recalibrate BN statistics on this many training batches
        0,
        count(0),
        Flag(
            "--bn-batches",
            (SEARCH, EXPERIMENT),
            "scoring: recalibrate each architecture's BN statistics on B training batches",
            "B",
        ),
    )
    # the search strategies, in order (runtime.strategies): random sampling of ``archs``
    # architectures, then ``refine`` perturbations of the best
    strategies: tuple[str, ...] = setting(
        ("sample", "refine"), Rule(_strategies, "distinct search strategies (sample, refine)")
    )
    z_samples: int = setting(  # average the error over this many HyperNet noise samples
        1,
        count(1),
        Flag(
            "--z-samples",
            (SEARCH, EXPERIMENT),
            "scoring: average the error over Z noise samples",
            "Z",
        ),
    )


@dataclass(frozen=True)
class FinalTraining:
    """Normal training of the chosen architecture (free weights)."""

    epochs: int = setting(
        30,
        count(1),
        Flag(
            "--final-epochs",
            _FINAL_TRAINED,
            "epochs of the final (normal) training",
            "E",
            aliases=((TRAIN, ("--epochs",)),),
        ),
    )
    batch_size: int = setting(50, count(1))
    lr: float = setting(
        0.1, positive(), Flag("--lr", (TRAIN,), "the final training's learning rate", "LR")
    )
    momentum: float = setting(0.9, number(0, 1))
    nesterov: bool = setting(True)
    weight_decay: float = setting(1e-4, number(0))
    train_images: int | None = setting(None, optional_count(1))  # None: the whole split
    # what a search trains beside its winner with this recipe (runtime.baselines)
    baselines: tuple[str, ...] = setting(
        (),
        Rule(_baselines, "distinct baselines (random, resnet20)"),
        Flag(
            "--no-baselines",
            (SEARCH,),
            "skip the baselines trained beside the winner (final.baselines)",
            store_true=True,
            convert=lambda _: (),
        ),
    )

    def cross_checks(self) -> list[str]:
        if self.nesterov and self.momentum == 0:
            return ["final.nesterov needs a final.momentum above 0"]
        return []


@dataclass(frozen=True)
class SearchConfig:
    dataset: str = setting("fashion-mnist", one_of(*DATASETS), Flag("--dataset", choices=DATASETS))
    data_dir: str | None = setting(None, None, Flag("--data-dir", help="folder with the data"))
    seed: int = setting(0, count(0), Flag("--seed"))
    device: str = setting(
        "auto", one_of("cpu", "cuda", "auto"), Flag("--device", choices=("cpu", "cuda", "auto"))
    )
    precision: str = setting(
        "auto",
        one_of(*precision.CHOICES),
        Flag(
            "--precision",
            choices=precision.CHOICES,
            help="forward passes in float32 or in bfloat16 autocast (default auto: bf16 "
            "where the CPU or GPU computes it natively)",
        ),
    )
    val_size: int = setting(5000, count(1))
    space: SearchSpace = setting(factory=SearchSpace)
    hypernet: HyperNetConfig = setting(factory=HyperNetConfig)
    train: SmashTraining = setting(factory=SmashTraining)
    score: Scoring = setting(factory=Scoring)
    final: FinalTraining = setting(factory=FinalTraining)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def config_problems(cfg) -> list[str]:
    """Every setting of the config ``cfg`` out of its range, one message each, naming the
    flag that sets it where there is one (empty when all are fine); then the cross-field
    checks (what keeps the search space from drawing architectures, ...) of each part whose
    own settings are fine. (The space's input shape and classes come from the dataset.)"""
    return problems(cfg)


def check_config(cfg) -> None:
    """Raises a SmashError (E0704, one diagnostic per setting) when ``cfg`` has settings out
    of range: before any device is chosen, data loaded or anything written."""
    found = config_problems(cfg)
    if found:
        raise SmashError([error("E0704", p, COMMAND_LINE) for p in found])
