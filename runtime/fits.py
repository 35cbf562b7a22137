"""Whether a run's settings fit its data and a machine, checked once the data is loaded and
before anything is allocated or trained.

``config.check_config`` checks each setting on its own; some settings are only wrong
against the data or against each other's sizes: a batch larger than the training split
(every epoch would have no batch), images too small for the search space's downsampling,
or a search space and HyperNet whose one-shot model would not fit any memory. These are
E0704 at the command line, like every other bad setting, and say which settings to change.
"""

from __future__ import annotations

import torch

from smashc.diagnostics import COMMAND_LINE, SmashError, error
from smashc.runtime.data import Dataset, Subset
from smashc.runtime.hypernet import HyperNetConfig
from smashc.runtime.oneshot import OneShot
from smashc.runtime.sampler import SearchSpace

# The most parameters and buffers the one-shot model (HyperNet and shared weights) may
# have: 2^30 is 4.3 GB in float32, some 17 GB with its gradients and Adam's two moments.
# The paper's model has 2.3 million.
MAX_ONESHOT_PARAMS = 2**30


def oneshot_size(space: SearchSpace, hyper: HyperNetConfig) -> int:
    """The parameters and buffers of the one-shot model of ``space`` and ``hyper``, counted
    on torch's meta device (shapes only: nothing is allocated)."""
    with torch.device("meta"):
        model = OneShot(space, hyper)
    return sum(t.numel() for t in (*model.parameters(), *model.buffers()))


def _batch_problems(cfg, train: Subset) -> list[str]:
    n = len(train)
    held = f"the {n} training images left after holding out val_size={cfg.val_size}"
    out = []
    if cfg.train.batch_size > n:
        out.append(
            f"train.batch_size is {cfg.train.batch_size}, more than {held}: the HyperNet "
            "training would have no batch; lower it or val_size"
        )
    final = n if cfg.final.train_images is None else min(n, cfg.final.train_images)
    if cfg.final.batch_size > final:
        of = held if final == n else f"the final.train_images={final} it trains on"
        out.append(
            f"final.batch_size is {cfg.final.batch_size}, more than {of}: the final training "
            "would have no batch; lower it"
        )
    return out


def _space_problems(cfg, ds: Dataset) -> list[str]:
    space = cfg.space
    halvings = len(space.block_inputs) - 1  # each transition between blocks halves the map
    least = 2**halvings
    h, w = ds.shape[1:]
    if min(h, w) < least:
        return [
            f"the images of {ds.name} are {h}x{w}, but the search space's "
            f"{len(space.block_inputs)} blocks halve them {halvings} times: they need at "
            f"least {least}x{least} (space.block_inputs sets the blocks)"
        ]
    size = oneshot_size(space, cfg.hypernet)
    if size > MAX_ONESHOT_PARAMS:
        return [
            f"the one-shot model of this search space and HyperNet would have {size:,} "
            f"parameters ({4 * size / 1e9:,.1f} GB in float32), more than the "
            f"{MAX_ONESHOT_PARAMS:,} a run allows; lower space.max_banks, space.max_units, "
            "space.unit or hypernet.growth"
        ]
    return []


def check_run(cfg, ds: Dataset, train: Subset, searches: bool = True) -> None:
    """Raises a SmashError (E0704, one diagnostic per problem) when ``cfg`` (its space
    resolved to ``ds``) does not fit the data ``ds`` and its training split ``train``, or
    (``searches``: a run that samples architectures) the search space's model does not fit
    its images or any memory."""
    found = _batch_problems(cfg, train)
    if searches and not found:
        found = _space_problems(cfg, ds)
    if found:
        raise SmashError([error("E0704", p, COMMAND_LINE) for p in found])
