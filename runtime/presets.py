"""The named starting points of ``smashc search`` and ``smashc train`` (``--preset``)."""

from __future__ import annotations

from dataclasses import replace

from smashc.runtime.config import FinalTraining, Scoring, SearchConfig, SmashTraining
from smashc.runtime.hypernet import HyperNetConfig
from smashc.runtime.sampler import SearchSpace

DEMO_SPACE = SearchSpace(
    unit=4,
    max_units=32,
    max_kernel=5,
    max_dilation=2,
    max_groups=4,
    max_banks=16,
    block_inputs=(16, 24, 32),
    max_block_widths=(48, 64, 96),
    budgets=(96, 160, 256),
)

PRESETS: dict[str, SearchConfig] = {
    # About 19 minutes on 2 CPU cores: Fashion-MNIST, a small space and HyperNet; the winner
    # and two baselines trained with one recipe on the whole training split.
    "demo": SearchConfig(
        dataset="fashion-mnist",
        val_size=2000,
        space=DEMO_SPACE,
        hypernet=HyperNetConfig(stem_channels=7, blocks=(3, 3, 2), growth=8),
        train=SmashTraining(epochs=3, batch_size=64, steps_per_epoch=150),
        score=Scoring(archs=40, val_images=1000, refine=5),
        final=FinalTraining(epochs=3, batch_size=64, lr=0.05, baselines=("random", "resnet20")),
    ),
    # Seconds, not minutes: for tests and for trying the pipeline out.
    "smoke": SearchConfig(
        dataset="synthetic",
        val_size=64,
        space=replace(DEMO_SPACE, budgets=(32, 48, 64)),
        hypernet=HyperNetConfig(stem_channels=4, blocks=(2, 2), growth=4),
        train=SmashTraining(epochs=2, batch_size=32, steps_per_epoch=4),
        score=Scoring(archs=4, batch_size=64, refine=2, top=2),
        final=FinalTraining(epochs=1, batch_size=32, lr=0.05, train_images=128),
    ),
    # The paper's CIFAR-100 run with the reference's settings.
    "paper": SearchConfig(
        dataset="cifar100",
        train=SmashTraining(epochs=300),
        score=Scoring(archs=250, refine=100),
        final=FinalTraining(epochs=300),
    ),
}
