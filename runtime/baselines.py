"""What a search's winner is compared with: networks trained with exactly its recipe.

``final.baselines`` names them (the demo preset: both; ``--no-baselines``: none):

* ``random``: an architecture drawn from the same search space by the sampler (fully
  annealed, the stream ``BASELINE_ARCH``), the search's null hypothesis: had scoring
  helped at all, the winner beats it;
* ``resnet20``: ResNet-20 (He et al., 2016; post-activation basic units, option-A
  shortcuts, the bundled ``examples/resnet20.smash``) with its input and classes set to the
  dataset's, a hand-designed network of the kind the search should match.

Each trains into ``OUT/baselines/NAME/`` through ``final.train_final`` with the run's
context, so the same seed gives it the same initial-weight stream, batches, augmentation
and schedule as the winner; it resumes like the winner's training does.
"""

from __future__ import annotations

from pathlib import Path

from smashc.compiler import Network, from_text
from smashc.runtime.context import RunContext
from smashc.runtime.final import train_final
from smashc.runtime.sampler import Sampler
from smashc.runtime.seeds import Stream

RESNET20 = """\
import std

network resnet20 {{
    input {channels} x {height} x {width}
    classes {classes}
    stem {{ conv(out=16) -> bn -> relu }}
    block stage1 = resnet_postact_block(3, 16)
    repeat s in 1..3 {{
        let w = 16 * 2 ** s
        transition {{
            sum {{
                conv_bn_relu(w, stride=2) -> conv(out=w) -> bn
                | avgpool(kernel=1, stride=2) -> chanpad(out=w)
            }}
                -> relu
        }}
        block = resnet_postact_block(2, w)
    }}
    head {{ gap -> linear(out=classes) }}
}}
"""


def random_arch(ctx: RunContext) -> Network:
    """The search space's architecture drawn for the ``random`` baseline."""
    sampler = Sampler(ctx.cfg.space, ctx.seed(Stream.BASELINE_ARCH))
    return sampler.sample(1.0, name="random")


def resnet20(ctx: RunContext) -> Network:
    """ResNet-20 for the run's dataset."""
    c, h, w = ctx.data.shape
    text = RESNET20.format(channels=c, height=h, width=w, classes=ctx.data.classes)
    return from_text(text, "<resnet20 baseline>")


BASELINES = {"random": random_arch, "resnet20": resnet20}


def train_baselines(ctx: RunContext, out: Path, resume: bool) -> dict[str, dict]:
    """Each baseline of ``final.baselines`` trained into ``out/baselines/NAME``; their
    test accuracy, size and folder by name."""
    results = {}
    for name in ctx.cfg.final.baselines:
        folder = out / "baselines" / name
        result = train_final(ctx, BASELINES[name](ctx), folder, resume=resume)
        results[name] = {
            "test_accuracy": result["test_acc"],
            "params": result["params"],
            "macs": result["macs"],
            "dir": str(folder),
        }
    return results
