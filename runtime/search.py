"""SMASH search end to end: HyperNet training, scoring and ranking, refinement, final training.

Every random choice is derived from (seed, what, epoch, step), never from hidden global
state, so an interrupted run resumed from its checkpoint makes exactly the same choices as
an uninterrupted one. Outputs land in one directory with the resolved config beside them.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from tqdm import tqdm

from smashc import arch, report
from smashc.diagnostics import COMMAND_LINE, SmashError, Span, error
from smashc.frontend import ast
from smashc.frontend.printer import module as print_module
from smashc.runtime import precision, runs
from smashc.runtime.data import Batches, Dataset, Subset, split
from smashc.runtime.hypernet import HyperNetConfig
from smashc.runtime.oneshot import Compiled, OneShot
from smashc.runtime.sampler import Sampler, SearchSpace, bank_sizes

# --- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SmashTraining:
    """HyperNet training (the reference's defaults)."""

    epochs: int = 100
    batch_size: int = 50
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = 1e-4
    weight_decay: float = 1e-4  # shared weights only, none on the HyperNet
    steps_per_epoch: int | None = None  # None: one pass over the training split


@dataclass(frozen=True)
class Scoring:
    archs: int = 250
    val_images: int | None = None  # None: the whole validation split
    batch_size: int = 50  # faster per image than larger batches on CPU (bench/score.py)
    refine: int = 0  # perturbations of the best tried after ranking
    perturb: float = 0.05  # probability that a perturbation redraws a layer's op / reads
    top: int = 5  # how many top architectures get .smash files and diagrams
    bn_batches: int = 0  # recalibrate BN statistics on this many training batches per arch
    z_samples: int = 1  # average the error over this many HyperNet noise samples


@dataclass(frozen=True)
class FinalTraining:
    """Normal training of the chosen architecture (free weights)."""

    epochs: int = 30
    batch_size: int = 50
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    train_images: int | None = None  # None: the whole training split


@dataclass(frozen=True)
class SearchConfig:
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # fp32, bf16 (autocast) or auto (runtime.precision)
    val_size: int = 5000
    space: SearchSpace = field(default_factory=SearchSpace)
    hypernet: HyperNetConfig = field(default_factory=HyperNetConfig)
    train: SmashTraining = field(default_factory=SmashTraining)
    score: Scoring = field(default_factory=Scoring)
    final: FinalTraining = field(default_factory=FinalTraining)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


# the command-line flag that sets a config field, for messages about it
_FLAGS = {
    "seed": "--seed",
    "train.epochs": "--epochs",
    "score.archs": "--archs",
    "score.refine": "--refine",
    "score.bn_batches": "--bn-batches",
    "score.z_samples": "--z-samples",
    "final.epochs": "--final-epochs",
    "final.lr": "--lr",
}


def _count(least: int):
    def ok(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= least

    return ok, f"at least {least}"


def _optional_count(least: int):
    ok, _ = _count(least)
    return (lambda v: v is None or ok(v)), f"None or at least {least}"


def _number(low: float, high: float, low_open: bool, high_open: bool):
    def ok(v) -> bool:
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
            return False
        return (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    if math.isinf(high) and low == 0:
        return ok, ("a positive number" if low_open else "a number of at least 0")
    if math.isinf(high):
        return ok, (f"a number above {low:g}" if low_open else f"a number of at least {low:g}")
    return ok, f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def _pair(rule):
    ok, wanted = rule

    def both(v) -> bool:
        return isinstance(v, tuple | list) and len(v) == 2 and all(ok(x) for x in v)

    return both, f"two numbers {wanted}"


def _one_of(*names: str):
    return (lambda v: v in names), "one of " + ", ".join(names)


def _counts(least: int):
    ok, _ = _count(least)
    return (lambda v: isinstance(v, tuple) and len(v) > 0 and all(ok(x) for x in v)), (
        f"a list of integers of at least {least}"
    )


def _odd(low: int, high: int):
    return (lambda v: v in range(low, high + 1, 2)), "one of " + ", ".join(
        map(str, range(low, high + 1, 2))
    )


def _power_of_two():
    ok, _ = _count(1)
    return (lambda v: ok(v) and v & (v - 1) == 0), "a power of two"


def _space_problems(sp: SearchSpace) -> list[str]:
    """What keeps ``sp`` from drawing architectures, beyond the ranges of single settings
    (those come first; these are checked only where they hold)."""
    out = []
    if sp.max_units % sp.unit:
        out.append(f"space.max_units ({sp.max_units}) must be a multiple of space.unit ({sp.unit})")
    elif sp.unit % sp.max_groups:
        out.append(
            f"space.max_groups ({sp.max_groups}) must divide space.unit ({sp.unit}): every "
            "conv's channel counts are multiples of the unit"
        )
    lengths = {len(sp.block_inputs), len(sp.max_block_widths), len(sp.budgets)}
    if len(lengths) > 1:
        out.append(
            "space.block_inputs, space.max_block_widths and space.budgets need one entry "
            f"per block, got {len(sp.block_inputs)}, {len(sp.max_block_widths)} and "
            f"{len(sp.budgets)}"
        )
    elif not out:
        for b, cin in enumerate(sp.block_inputs):
            if not bank_sizes(sp, b):
                out.append(
                    f"block {b} has no bank size: its input ({cin} channels) must be a "
                    f"multiple of a bank size (space.unit ... space.max_units, in steps of "
                    f"space.unit), and space.max_block_widths ({sp.max_block_widths[b]}) and "
                    f"space.max_banks ({sp.max_banks}) must leave room for one more bank"
                )
    if sp.kernel_from > sp.max_kernel:
        out.append(
            f"space.kernel_from ({sp.kernel_from}) must be at most space.max_kernel "
            f"({sp.max_kernel})"
        )
    if sp.budget_from > sp.budget_to:
        out.append(
            f"space.budget_from ({sp.budget_from:g}) must be at most space.budget_to "
            f"({sp.budget_to:g})"
        )
    return out


def config_problems(cfg: SearchConfig) -> list[str]:
    """Every setting of ``cfg`` out of its range, one message each, naming the flag that sets
    it where there is one (empty when all are fine); then what keeps the search space from
    drawing architectures. (The space's input shape and classes come from the dataset.)"""
    inf = math.inf
    t, s, f, sp, h = cfg.train, cfg.score, cfg.final, cfg.space, cfg.hypernet
    rules = [
        ("seed", cfg.seed, _count(0)),
        ("device", cfg.device, _one_of("cpu", "cuda", "auto")),
        ("precision", cfg.precision, _one_of("auto", "fp32", "bf16")),
        ("val_size", cfg.val_size, _count(1)),
        ("train.epochs", t.epochs, _count(1)),
        ("train.batch_size", t.batch_size, _count(1)),
        ("train.lr", t.lr, _number(0, inf, True, True)),
        ("train.betas", t.betas, _pair(_number(0, 1, False, True))),
        ("train.eps", t.eps, _number(0, inf, True, True)),
        ("train.weight_decay", t.weight_decay, _number(0, inf, False, True)),
        ("train.steps_per_epoch", t.steps_per_epoch, _optional_count(1)),
        ("score.archs", s.archs, _count(1)),
        ("score.val_images", s.val_images, _optional_count(1)),
        ("score.batch_size", s.batch_size, _count(1)),
        ("score.refine", s.refine, _count(0)),
        ("score.perturb", s.perturb, _number(0, 1, True, False)),
        ("score.top", s.top, _count(1)),
        ("score.bn_batches", s.bn_batches, _count(0)),
        ("score.z_samples", s.z_samples, _count(1)),
        ("final.epochs", f.epochs, _count(1)),
        ("final.batch_size", f.batch_size, _count(1)),
        ("final.lr", f.lr, _number(0, inf, True, True)),
        ("final.momentum", f.momentum, _number(0, 1, False, True)),
        ("final.weight_decay", f.weight_decay, _number(0, inf, False, True)),
        ("final.train_images", f.train_images, _optional_count(1)),
        ("space.unit", sp.unit, _count(1)),
        ("space.max_units", sp.max_units, _count(1)),
        ("space.bottleneck", sp.bottleneck, _count(1)),
        ("space.max_bottleneck", sp.max_bottleneck, _count(1)),
        ("space.depth_compression", sp.depth_compression, _count(1)),
        # dilations are drawn from 1 .. 4 - (k - 1) / 2: none is left for 9x9 kernels
        ("space.max_kernel", sp.max_kernel, _odd(3, 7)),
        ("space.kernel_from", sp.kernel_from, _odd(3, 7)),
        ("space.max_dilation", sp.max_dilation, _count(1)),
        ("space.max_groups", sp.max_groups, _power_of_two()),
        ("space.max_banks", sp.max_banks, _count(1)),
        ("space.block_inputs", sp.block_inputs, _counts(1)),
        ("space.max_block_widths", sp.max_block_widths, _counts(1)),
        ("space.budgets", sp.budgets, _counts(1)),
        # a block's budget fraction is drawn from U(0.3, max), max annealed from -> to
        ("space.budget_from", sp.budget_from, _number(0.3, inf, False, True)),
        ("space.budget_to", sp.budget_to, _number(0.3, inf, False, True)),
        ("hypernet.stem_channels", h.stem_channels, _count(1)),
        ("hypernet.blocks", h.blocks, _counts(1)),
        ("hypernet.growth", h.growth, _count(1)),
        ("hypernet.slope", h.slope, _number(0, inf, False, True)),
    ]
    problems = []
    for name, value, (ok, wanted) in rules:
        if not ok(value):
            flag = _FLAGS.get(name)
            said = f"{flag} must be {wanted}, got {value!r} ({name})" if flag else None
            problems.append(said or f"{name} must be {wanted}, got {value!r}")
    if f.nesterov and f.momentum == 0:
        problems.append("final.nesterov needs a final.momentum above 0")
    if not any(p.startswith("space.") for p in problems):
        problems += _space_problems(sp)
    return problems


def check_config(cfg: SearchConfig) -> None:
    """Raises a SmashError (E0704, one diagnostic per setting) when ``cfg`` has settings out
    of range: before any data is loaded or anything is written."""
    problems = config_problems(cfg)
    if problems:
        raise SmashError([error("E0704", p, COMMAND_LINE) for p in problems])


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
    "demo": SearchConfig(
        dataset="fashion-mnist",
        val_size=2000,
        space=DEMO_SPACE,
        hypernet=HyperNetConfig(stem_channels=7, blocks=(3, 3, 2), growth=8),
        train=SmashTraining(epochs=3, batch_size=64, steps_per_epoch=150),
        score=Scoring(archs=40, val_images=1000, refine=5),
        final=FinalTraining(epochs=2, batch_size=64, lr=0.05, train_images=20000),
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
    "paper": SearchConfig(
        dataset="cifar100",
        train=SmashTraining(epochs=300),
        score=Scoring(archs=250, refine=100),
        final=FinalTraining(epochs=300),
    ),
}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SmashError(
            [error("E0704", "--device cuda: no CUDA device is available", COMMAND_LINE)]
        )
    return torch.device(name)


def run_precision(name: str, device: torch.device, resumed: Path | None = None) -> str:
    """``name`` resolved for ``device`` (``runtime.precision``); ``auto`` in a resumed run
    takes the precision its ``config.json`` recorded, so it goes on computing as it began.
    (One that cannot be read is left to ``runs.check_resumable`` to report.)"""
    if name == "auto" and resumed is not None:
        try:
            stored = json.loads((resumed / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = None
        if isinstance(stored, dict) and stored.get("precision") in ("fp32", "bf16"):
            return stored["precision"]
    return precision.resolve(name, device)


def _seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across runs and platforms)."""
    return (
        int(np.random.SeedSequence(list(parts)).generate_state(2, np.uint32).view(np.uint64)[0])
        >> 1
    )


# --- HyperNet training ----------------------------------------------------------------------


def _truncate_log(path: Path, global_step: int) -> None:
    """Drops log lines of steps a killed run made after its last checkpoint (they rerun)."""
    records = runs.read_jsonl(path)
    keep = [rec for rec in records if rec.get("global_step", global_step) < global_step]
    if path.exists():
        path.write_text("".join(json.dumps(rec) + "\n" for rec in keep), encoding="utf-8")


def _arch_for_step(space: SearchSpace, seed: int, step: int, progress: float) -> ast.Module:
    return Sampler(space, _seed(seed, 1, step)).sample(progress, name=f"step{step}")


def fused(device: torch.device | str) -> bool:
    """Whether torch's fused optimiser kernels run on ``device``."""
    return torch.device(device).type in ("cpu", "cuda")


def smash_optimizer(model: OneShot, t: SmashTraining) -> torch.optim.Adam:
    """The reference's Adam, weight decay on the shared weights only.

    Fused: one kernel over every parameter instead of some ten ops per tensor, the same
    update; 0.7 ms per step instead of 2.7 for the reference-sized model's 66 tensors on
    2 cores (``bench/optim.py``).
    """
    device = next(model.parameters()).device
    return torch.optim.Adam(
        [
            {"params": model.shared.parameters(), "weight_decay": t.weight_decay},
            {"params": model.hypernet.parameters(), "weight_decay": 0.0},
        ],
        lr=t.lr,
        betas=t.betas,
        eps=t.eps,
        fused=fused(device),
    )


def final_optimizer(model: torch.nn.Module, fc: FinalTraining) -> torch.optim.SGD:
    """SGD with ``fc``'s momentum, Nesterov and weight decay; fused like ``smash_optimizer``
    (1.5 ms per step as a loop, 0.5 fused, for a 1.8 M-parameter network)."""
    return torch.optim.SGD(
        model.parameters(),
        lr=fc.lr,
        momentum=fc.momentum,
        nesterov=fc.nesterov,
        weight_decay=fc.weight_decay,
        fused=fused(next(model.parameters()).device),
    )


def train_step(net, inputs: tuple, y: torch.Tensor, opt, sched, prec: str, device):
    """One optimiser and schedule step on the cross-entropy of ``net(*inputs)`` (logits, run
    in precision ``prec``) against ``y``; the batch's loss and accuracy, as floats."""
    with precision.autocast(prec, device):
        logits = net(*inputs)
        loss = F.cross_entropy(logits, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return loss.item(), (logits.argmax(1) == y).float().mean().item()


def _duration(seconds: float) -> str:
    """``1h05m``, ``4m10s`` or ``12s``: an estimate, shown at its scale."""
    m, sec = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


class _Inline:
    """Compiles the next architecture at once, in this thread (the CPU's executor).

    On a GPU a thread compiles it while the device computes. On the CPU there is nothing to
    overlap: torch's threads keep every core busy through a step, and a compiling thread
    costs a step at least as much as compiling inline, as it also contends for Python's lock
    (``bench/overlap.py``, bf16 steps on 2 cores: a compile adds 13.9 / 13.1 ms inline and
    18.6 / 13.4 ms in a thread to an early step, 14.1 / 12.0 and 16.1 / 18.1 ms late).
    """

    def submit(self, fn, *args) -> Future:
        done: Future = Future()
        done.set_result(fn(*args))
        return done

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def train_smash(
    cfg: SearchConfig, ds: Dataset, train: Subset, out: Path, resume: bool, device: torch.device
) -> OneShot:
    """Trains the HyperNet and shared weights on one sampled architecture per step."""
    torch.manual_seed(_seed(cfg.seed, 0))
    model = OneShot(cfg.space, cfg.hypernet).to(device)
    t = cfg.train
    opt = smash_optimizer(model, t)
    batches = Batches(
        ds, train, t.batch_size, _seed(cfg.seed, 2), augment=True, drop_last=True, device=device
    )
    per_epoch = min(len(batches), t.steps_per_epoch or len(batches))
    total = per_epoch * t.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    ckpt = out / "checkpoint.pt"
    epoch0, step0 = 0, 0
    if resume and ckpt.exists():
        state = runs.load_checkpoint(ckpt, device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        epoch0, step0 = state["epoch"], state["step"]
        if epoch0 < t.epochs:
            print(f"resuming HyperNet training at epoch {epoch0}, step {step0}")
        else:
            print("HyperNet training had finished: going on from its checkpoint")
        _truncate_log(out / "train.jsonl", epoch0 * per_epoch + step0)
    elif (out / "train.jsonl").exists():
        (out / "train.jsonl").unlink()

    def save(epoch: int, step: int) -> None:
        runs.atomic_save(
            {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "epoch": epoch,
                "step": step,
            },
            ckpt,
        )

    def compile_step(g: int) -> Compiled:
        return model.compile(_arch_for_step(cfg.space, cfg.seed, g, g / total))

    model.train()
    pool = ThreadPoolExecutor(1) if device.type == "cuda" else _Inline()
    stop = runs.StopFlag().install()
    try:
        for epoch in range(epoch0, t.epochs):
            first = step0 if epoch == epoch0 else 0
            bar = tqdm(
                total=per_epoch,
                initial=first,
                desc=f"smash {epoch + 1}/{t.epochs}",
                unit="step",
                dynamic_ncols=True,
            )
            g0 = epoch * per_epoch + first
            pending = pool.submit(compile_step, g0)
            started = time.perf_counter()
            for step, (x, y) in enumerate(batches.epoch(epoch, start=first), start=first):
                if step >= per_epoch:
                    break
                g = epoch * per_epoch + step
                if stop.requested:
                    bar.close()
                    save(epoch, step)
                    raise runs.Interrupted
                compiled = pending.result()
                if step + 1 < per_epoch:
                    pending = pool.submit(compile_step, g + 1)
                gen = torch.Generator(device="cpu").manual_seed(_seed(cfg.seed, 3, g))
                c = compiled.enc.tensor
                z = torch.randn(1, 1, *c.shape[2:], generator=gen).to(device)
                value, acc = train_step(
                    model, (x, compiled, z), y, opt, sched, cfg.precision, device
                )
                if not math.isfinite(value):
                    bar.close()
                    lr = f"train.lr, now {t.lr:g}"
                    raise runs.diverged("the HyperNet training", value, epoch, f"step {step}", lr)
                rate = (step + 1 - first) / (time.perf_counter() - started)
                runs.append_jsonl(
                    out / "train.jsonl",
                    {
                        "epoch": epoch,
                        "step": step,
                        "global_step": g,
                        "loss": value,
                        "acc": acc,
                        "lr": sched.get_last_lr()[0],
                        "time": time.time(),
                    },
                )
                left = _duration((total - g - 1) / rate)  # the whole training's, not the epoch's
                bar.set_postfix(
                    loss=f"{value:.3f}", acc=f"{acc:.2f}", steps_s=f"{rate:.2f}", all_left=left
                )
                bar.update(1)
            bar.close()
            save(epoch + 1, 0)
    except KeyboardInterrupt:
        raise runs.Interrupted from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        stop.uninstall()
    return model


# --- scoring, ranking, refinement -----------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    index: int
    source: str  # "sample" or "refine"
    error: float
    params: int
    macs: int
    text: str  # the architecture as .smash


def _bn_buffers(model: OneShot) -> list[torch.Tensor]:
    return [b for name, b in model.shared.named_buffers() if "running_" in name]


@torch.no_grad()
def recalibrate_bn(model: OneShot, compiled: Compiled, weights, batches: Batches) -> None:
    """Replaces the shared BN statistics by this architecture's own, averaged over every
    batch of ``batches`` (the reference shares one set across all sampled architectures)."""
    for bn in (*model.shared.transition_bn, model.shared.head_bn):
        bn.reset_running_stats()
    momentum = compiled.net.bn_momentum
    compiled.net.train()
    for k, (x, _) in enumerate(batches.epoch(0)):
        compiled.net.bn_momentum = 1.0 / (k + 1)  # a running mean over the batches
        compiled.net(x, weights)
    compiled.net.bn_momentum = momentum
    compiled.net.eval()


@torch.no_grad()
def smash_error(
    model: OneShot,
    compiled: Compiled,
    batches: Batches,
    zs: list[torch.Tensor],
    calibration: Batches | None = None,
    prec: str = "fp32",
) -> float:
    """Top-1 validation error of ``compiled`` with generated weights, averaged over the noise
    samples ``zs``; with ``calibration``, BN statistics are first recomputed for each sample
    on those batches (the shared statistics are restored afterwards). Forward passes in
    precision ``prec`` (``runtime.precision``)."""
    model.eval()
    saved = [b.clone() for b in _bn_buffers(model)] if calibration is not None else []
    errors = []
    try:
        for z in zs:
            with precision.autocast(prec, z.device):
                weights = model.generated(compiled, z)
                if calibration is not None:
                    recalibrate_bn(model, compiled, weights, calibration)
                compiled.net.eval()
                wrong = total = 0
                for x, y in batches.epoch(0):
                    wrong += (compiled.net(x, weights).argmax(1) != y).sum().item()
                    total += len(y)
            errors.append(wrong / max(total, 1))
    finally:
        for b, old in zip(_bn_buffers(model), saved, strict=False):
            b.copy_(old)
    return sum(errors) / len(errors)


def score_one(
    model,
    module: ast.Module,
    batches,
    cfg: SearchConfig,
    index: int,
    source: str,
    device,
    calibration: Batches | None = None,
) -> Scored:
    """The ``index``-th architecture's SMASH score (its noise samples seeded by ``index``)."""
    compiled = model.compile(module)
    gen = torch.Generator().manual_seed(_seed(cfg.seed, 4, index))
    shape = (1, 1, *compiled.enc.tensor.shape[2:])
    zs = [torch.randn(shape, generator=gen).to(device) for _ in range(cfg.score.z_samples)]
    err = smash_error(model, compiled, batches, zs, calibration, cfg.precision)
    params, macs = report.totals(compiled.ir)
    return Scored(index, source, err, params, macs, print_module(module))


def load_scores(path: Path) -> dict[int, Scored]:
    out = {}
    for number, rec in enumerate(runs.read_jsonl(path), start=1):
        try:
            out[rec["index"]] = Scored(**rec)
        except (KeyError, TypeError):
            raise runs.damaged(path, number, "not a score record") from None
    return out


def score_batches(cfg: SearchConfig, val: Subset, ds: Dataset, device) -> Batches:
    """The validation images scoring uses (the first ``val_images`` of the split)."""
    n = cfg.score.val_images
    if n is not None and n < len(val):
        val = Subset(val.x[:n], val.y[:n])
    return Batches(ds, val, cfg.score.batch_size, 0, shuffle=False, device=device)


def calibration_batches(cfg: SearchConfig, train: Subset | None, ds: Dataset, device):
    """The first ``bn_batches`` training batches (no augmentation), or None when off."""
    n = cfg.score.bn_batches * cfg.score.batch_size
    if not n:
        return None
    if train is None:
        raise ValueError("BN recalibration (Scoring.bn_batches) needs the training split")
    part = Subset(train.x[:n], train.y[:n])
    return Batches(ds, part, cfg.score.batch_size, 0, shuffle=False, device=device)


def score_all(
    model: OneShot,
    cfg: SearchConfig,
    val: Subset,
    ds: Dataset,
    out: Path,
    device,
    train: Subset | None = None,
) -> list[Scored]:
    """Scores ``cfg.score.archs`` sampled architectures; already-scored ones are reused.
    ``train`` is needed only for BN recalibration (``cfg.score.bn_batches``)."""
    sc = cfg.score
    batches = score_batches(cfg, val, ds, device)
    calibration = calibration_batches(cfg, train, ds, device)
    path = out / "scores.jsonl"
    done = load_scores(path)
    results = []
    bar = tqdm(range(sc.archs), desc="scoring", unit="arch", dynamic_ncols=True)
    for i in bar:
        if i in done:
            rec = done[i]
        else:
            module = Sampler(cfg.space, _seed(cfg.seed, 5, i)).sample(1.0, name=f"arch{i}")
            rec = score_one(model, module, batches, cfg, i, "sample", device, calibration)
            runs.append_jsonl(path, dataclasses.asdict(rec))
        results.append(rec)
        bar.set_postfix(best_error=f"{min(r.error for r in results):.3f}", refresh=False)
    return results


def perturb(
    net: arch.Network, space: SearchSpace, rng: np.random.Generator, p: float
) -> arch.Network:
    """Each layer's op is redrawn with probability p, and so are its reads (from the banks
    already holding data at that layer); writes and banks stay, so the result stays valid."""
    sampler = Sampler(space, int(rng.integers(2**31)))
    blocks = []
    for b, blk in enumerate(net.blocks):
        width = blk.banks[0]
        written = space.block_inputs[b] // width
        layers = []
        for lay in blk.layers:
            op, reads = lay.ops[0], lay.reads
            if rng.random() < p:
                n = int(rng.integers(1, written + 1))
                reads = tuple(sorted(int(r) for r in rng.choice(written, n, replace=False)))
            if rng.random() < p:
                new = sampler._op(len(reads), width // space.unit, space.max_kernel)
                op = replace(new, out=op.out, bottleneck=op.bottleneck)
            layers.append(replace(lay, reads=reads, ops=(op,)))
            written = max(written, max(lay.writes) + 1)
        blocks.append(replace(blk, layers=tuple(layers)))
    stages = []
    it = iter(blocks)
    for st in net.stages:
        stages.append(next(it) if isinstance(st, arch.Block) else st)
    return replace(net, stages=tuple(stages))


PERTURB_TRIES = 100  # draws refinement makes for a perturbation it has not scored yet


def fresh_perturbation(
    net: arch.Network,
    seen: set[arch.Network],
    space: SearchSpace,
    rng: np.random.Generator,
    p: float,
    tries: int = PERTURB_TRIES,
) -> arch.Network | None:
    """A perturbation of ``net`` that is in none of ``seen`` (networks compared without
    their names), or None after ``tries`` draws: scoring one again would only re-draw its
    noise sample, so keeping it if it scored better would select noise."""
    for _ in range(tries):
        cand = perturb(net, space, rng, p)
        if replace(cand, name="") not in seen:
            return cand
    return None


def refine(
    model,
    best: Scored,
    cfg: SearchConfig,
    val: Subset,
    ds: Dataset,
    out: Path,
    device,
    start_index: int,
    train: Subset | None = None,
) -> list[Scored]:
    """Hill climbing from the best architecture: keep each perturbation that scores better.
    Each candidate is a network not scored in this refinement before."""
    from smashc.frontend.expand import expand
    from smashc.frontend.flatten import to_module
    from smashc.frontend.loader import load_text

    sc = cfg.score
    batches = score_batches(cfg, val, ds, device)
    calibration = calibration_batches(cfg, train, ds, device)
    path = out / "scores.jsonl"
    done = load_scores(path)
    rng = np.random.default_rng(_seed(cfg.seed, 6))
    current = best
    tried = []
    seen: set[arch.Network] = set()
    bar = tqdm(range(sc.refine), desc="refining", unit="arch", dynamic_ncols=True)
    for j in bar:
        net = expand(load_text(current.text))
        seen.add(replace(net, name=""))  # the best so far; a no-op once it was a candidate
        cand = fresh_perturbation(net, seen, cfg.space, rng, sc.perturb)
        if cand is None:
            tqdm.write(
                f"refinement stopped after {j}: no new perturbation of the best architecture "
                f"in {PERTURB_TRIES} draws (perturbation probability {sc.perturb})"
            )
            break
        seen.add(replace(cand, name=""))
        index = start_index + j
        if index in done:
            rec = done[index]
        else:
            rec = score_one(
                model,
                to_module(replace(cand, name=f"refined{j}")),
                batches,
                cfg,
                index,
                "refine",
                device,
                calibration,
            )
            runs.append_jsonl(path, dataclasses.asdict(rec))
        tried.append(rec)
        if rec.error < current.error:
            current = rec
        bar.set_postfix(best_error=f"{current.error:.3f}", refresh=False)
    return tried


# what a search writes into its folder; a fresh run removes these first, and nothing else
_RUN_FILES = (
    "checkpoint.pt",
    "train.jsonl",
    "train.png",
    "scores.jsonl",
    "scores.png",
    "ranking.csv",
    "summary.json",
)
_FINAL_FILES = (
    "checkpoint.pt",
    "final.json",
    "final.jsonl",
    "curves.png",
    "architecture.smash",
    "model/__init__.py",
    "model/module.py",
    "model/weights.pt",
    "model/ir.txt",
)
_ARCH_FILE = re.compile(r"(sample|refine)\d{4,}\.smash")
_TOP_FILE = re.compile(r"rank\d+\.(smash|png|dot)")


def _remove_matching(folder: Path, pattern: re.Pattern) -> None:
    if folder.is_dir():
        for f in folder.iterdir():
            if f.is_file() and pattern.fullmatch(f.name):
                f.unlink()


def clear_run(out: Path) -> None:
    """Removes an earlier search's outputs from ``out``: the files a search writes, by name,
    so that a fresh run leaves no stale architecture, diagram or final result behind, and
    never anything else that lives there."""
    for name in _RUN_FILES:
        (out / name).unlink(missing_ok=True)
    _remove_matching(out / "archs", _ARCH_FILE)
    _remove_matching(out / "top", _TOP_FILE)
    for name in _FINAL_FILES:  # what train_final writes
        (out / "final" / name).unlink(missing_ok=True)


def write_ranking(scored: list[Scored], out: Path, top: int) -> list[tuple[int, Scored, Path]]:
    """ranking.csv, the top architectures as .smash files and diagrams, a score histogram."""
    ranked = sorted(scored, key=lambda s: (s.error, s.index))
    arch_dir = out / "archs"
    arch_dir.mkdir(exist_ok=True)
    rows = []
    for r, s in enumerate(ranked, start=1):
        path = arch_dir / f"{s.source}{s.index:04d}.smash"
        path.write_text(s.text, encoding="utf-8")
        rows.append((r, s, path))
    with (out / "ranking.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["rank", "smash_error", "params", "macs", "source", "index", "smash_file"])
        for r, s, path in rows:
            w.writerow(
                [r, f"{s.error:.4f}", s.params, s.macs, s.source, s.index, path.relative_to(out)]
            )
    top_dir = out / "top"
    _remove_matching(top_dir, _TOP_FILE)
    top_dir.mkdir(exist_ok=True)
    for r, _, path in rows[:top]:
        dst = top_dir / f"rank{r}.smash"
        shutil.copyfile(path, dst)
        _diagram(dst)
    _histogram([s.error for s in scored], out / "scores.png")
    return rows


def _diagram(path: Path) -> None:
    from smashc.backends.dot import diagram, write
    from smashc.pipeline import compile_file

    ir = compile_file(path)
    fmt = "png" if shutil.which("dot") else "dot"
    try:
        write(diagram(ir, "banks", collapse=False), path.with_suffix(f".{fmt}"))
    except SmashError:
        pass  # no graphviz binary: the .dot is written anyway


def _pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display), imported when a run
    first plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path: Path) -> None:
    """Writes ``fig`` as ``path`` (100 dpi) and closes it."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)


def _training_curve(log: Path, path: Path) -> None:
    """Loss and accuracy of the one-shot model per SMASH step (``train.jsonl``), each step's
    value faint and a running mean over a twentieth of the run on top: every step trains a
    different architecture, so single steps are noisy."""
    plt = _pyplot()

    records = runs.read_jsonl(log)
    if not records:
        return
    steps = np.array([r["global_step"] for r in records])
    window = max(1, len(records) // 20)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key, label in zip(axes, ("loss", "acc"), ("loss", "accuracy"), strict=True):
        values = np.array([r[key] for r in records])
        mean = np.convolve(values, np.ones(window) / window, mode="valid")
        ax.plot(steps, values, color="#1f77b4", alpha=0.25, linewidth=0.8, label="step")
        ax.plot(steps[window - 1 :], mean, color="#1f77b4", label=f"mean of {window}")
        ax.set_xlabel("SMASH step")
        ax.set_ylabel(f"training {label}")
        ax.legend()
    _save_figure(fig, path)


def _histogram(errors: list[float], path: Path) -> None:
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(errors, bins=min(30, max(5, len(errors) // 4)), color="#1f77b4")
    ax.set_xlabel("SMASH score (validation error with generated weights)")
    ax.set_ylabel("architectures")
    _save_figure(fig, path)


# --- final training -------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: Batches) -> tuple[float, float]:
    """Loss and accuracy in float32, as the exported model computes them by default
    (whatever precision it was trained in)."""
    model.eval()
    loss = correct = total = 0.0
    for x, y in batches.epoch(0):
        logits = model(x)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        total += len(y)
    return loss / max(total, 1), correct / max(total, 1)


def _header_span(program, which: str, file: str) -> Span:
    """Where the network states its ``input`` or ``classes`` (else the network itself)."""
    net = program.network
    if net is None:
        return Span(file, 1, 1, 1, 1)
    kind = ast.Input if which == "input" else ast.Classes
    return next((st.span for st in net.body if isinstance(st, kind)), net.span)


def train_final(
    source: str,
    cfg: SearchConfig,
    ds: Dataset,
    train: Subset,
    val: Subset,
    out: Path,
    device,
    file: str = "final.smash",
    resume: bool = False,
) -> dict:
    """Trains one architecture normally; writes metrics, curves and the exported model.

    A checkpoint (``out/checkpoint.pt``) is written after every epoch and where Ctrl-C
    stops the training (``Interrupted``); with ``resume`` the training goes on from it, and
    ends as an uninterrupted one would. Without ``resume`` an earlier training in ``out``
    is discarded. The architecture's input and classes must match the dataset's
    (SmashError otherwise)."""
    from smashc.backends import kernels
    from smashc.backends.export import export_package
    from smashc.backends.fx import class_name, to_fx
    from smashc.frontend.loader import load_text
    from smashc.ir import dump
    from smashc.pipeline import compile_program

    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.pt"
    if not resume:
        for stale in _FINAL_FILES:
            (out / stale).unlink(missing_ok=True)
    fc = cfg.final
    torch.manual_seed(_seed(cfg.seed, 7))
    base = Path(file).resolve().parent if file != "final.smash" else None
    program = load_text(source, file, base)
    ir = compile_program(program).ir
    if ir.input != ds.shape or ir.classes != ds.classes:
        span = _header_span(program, "input" if ir.input != ds.shape else "classes", file)
        shape = "x".join(map(str, ir.input))
        msg = (
            f"the network takes {shape} inputs and {ir.classes} classes, but the dataset "
            f"'{ds.name}' has {'x'.join(map(str, ds.shape))} images and {ds.classes} classes; "
            "change its 'input' and 'classes' lines"
        )
        raise SmashError([error("E0704", msg, span)], program.sources)
    model = to_fx(ir).to(device)
    net = kernels.fast_convs(model)  # trains and evaluates model's own parameters
    if fc.train_images is not None and fc.train_images < len(train):
        train = Subset(train.x[: fc.train_images], train.y[: fc.train_images])
    batches = Batches(
        ds, train, fc.batch_size, _seed(cfg.seed, 8), augment=True, drop_last=True, device=device
    )
    val_batches = Batches(ds, val, 500, 0, shuffle=False, device=device)
    test_batches = Batches(ds, ds.test, 500, 0, shuffle=False, device=device)
    opt = final_optimizer(model, fc)
    total = max(1, fc.epochs * len(batches))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    # finished epochs' records, and the current epoch's running sums (loss, accuracy, batches)
    history: list[dict] = []
    sums = [0.0, 0.0, 0]
    epoch0 = step0 = 0
    if resume and ckpt.exists():
        state = runs.load_checkpoint(ckpt, device)
        if state["source"] != source:
            msg = f"{out} holds the training of another architecture: leave out --resume"
            raise SmashError([error("E0707", msg, Span(str(ckpt), 1, 1, 1, 1))])
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        epoch0, step0 = state["epoch"], state["step"]
        sums, history = state["sums"], state["history"]
        if epoch0 < fc.epochs:
            print(f"resuming the final training at epoch {epoch0 + 1}, batch {step0}")
        else:
            print("the final training had finished: evaluating and exporting it")
    # the log holds exactly the finished epochs (a killed run may have logged one more)
    (out / "final.jsonl").write_text(
        "".join(json.dumps(rec) + "\n" for rec in history), encoding="utf-8"
    )
    (out / "architecture.smash").write_text(source, encoding="utf-8")

    def save(epoch: int, step: int) -> None:
        state = {
            "model": model.state_dict(),
            "opt": opt.state_dict(),
            "sched": sched.state_dict(),
            "epoch": epoch,
            "step": step,
            "sums": sums,
            "history": history,
            "source": source,
        }
        runs.atomic_save(state, ckpt)

    stop = runs.StopFlag().install()
    try:
        for epoch in range(epoch0, fc.epochs):
            first = step0 if epoch == epoch0 else 0
            if first == 0:
                sums = [0.0, 0.0, 0]
            net.train()
            bar = tqdm(
                total=len(batches),
                initial=first,
                desc=f"final {epoch + 1}/{fc.epochs}",
                unit="batch",
                dynamic_ncols=True,
            )
            for step, (x, y) in enumerate(batches.epoch(epoch, start=first), start=first):
                if stop.requested:
                    bar.close()
                    save(epoch, step)
                    raise runs.Interrupted
                value, acc = train_step(net, (x,), y, opt, sched, cfg.precision, device)
                if not math.isfinite(value):
                    bar.close()
                    lr = f"--lr, final.lr, now {fc.lr:g}"
                    raise runs.diverged("the final training", value, epoch, f"batch {step}", lr)
                sums = [sums[0] + value, sums[1] + acc, sums[2] + 1]
                bar.set_postfix(loss=f"{sums[0] / sums[2]:.3f}", acc=f"{sums[1] / sums[2]:.3f}")
                bar.update(1)
            bar.close()
            val_loss, val_acc = evaluate(net, val_batches)
            n = max(sums[2], 1)
            rec = {
                "epoch": epoch + 1,
                "train_loss": sums[0] / n,
                "train_acc": sums[1] / n,
                "val_loss": val_loss,
                "val_acc": val_acc,
            }
            history.append(rec)
            runs.append_jsonl(out / "final.jsonl", rec)
            save(epoch + 1, 0)
    except KeyboardInterrupt:
        raise runs.Interrupted from None
    finally:
        stop.uninstall()
    test_loss, test_acc = evaluate(net, test_batches)
    params, macs = report.totals(ir)
    summary = {
        "test_acc": test_acc,
        "test_error": 1 - test_acc,
        "test_loss": test_loss,
        "params": params,
        "macs": macs,
        "epochs": fc.epochs,
        "trained_in": precision.resolve(cfg.precision, device),  # evaluated in fp32
    }
    (out / "final.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    _curves(history, out / "curves.png")
    export_package(model.eval().cpu(), out / "model", class_name(ir.name), dump(ir))
    return summary


def _curves(history: list[dict], path: Path) -> None:
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    if not history:
        return
    ep = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, what, label in zip(axes, ("loss", "acc"), ("loss", "accuracy"), strict=True):
        # markers: short runs (the demo trains two epochs) would otherwise show bare lines
        ax.plot(ep, [h[f"train_{what}"] for h in history], marker="o", label="train")
        ax.plot(ep, [h[f"val_{what}"] for h in history], marker="o", label="validation")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend()
    _save_figure(fig, path)


# --- the whole search -----------------------------------------------------------------------


def prepare(cfg: SearchConfig) -> tuple[SearchConfig, Dataset, Subset, Subset]:
    """Loads the dataset and adapts the space's input shape and classes to it."""
    from smashc.runtime.data import load

    check_config(cfg)
    ds = load(cfg.dataset, cfg.data_dir)
    cfg = replace(cfg, space=replace(cfg.space, input=ds.shape, classes=ds.classes))
    train, val = split(ds, cfg.val_size, cfg.seed)
    return cfg, ds, train, val


def open_run(
    cfg: SearchConfig, out: Path, resume: bool
) -> tuple[SearchConfig, torch.device, Dataset, Subset, Subset]:
    """A run's device, resolved config and data, and its folder ``out``, created, with the
    resolved config in ``config.json``. Resuming, only a folder whose run had these
    settings (``runs.check_resumable``); ``auto`` precision keeps the one it recorded."""
    device = resolve_device(cfg.device)
    cfg = replace(cfg, precision=run_precision(cfg.precision, device, out if resume else None))
    cfg, ds, train, val = prepare(cfg)
    if resume:
        runs.check_resumable(out, cfg.to_json())
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_json(), indent=2) + "\n", encoding="utf-8")
    return cfg, device, ds, train, val


def search(cfg: SearchConfig, out: Path, resume: bool = False, final: bool = True) -> dict:
    """HyperNet training, scoring, ranking, refinement and (unless ``final`` is False) the
    final training of the winner. Returns a summary with the paths of the main outputs."""
    cfg, device, ds, train, val = open_run(cfg, out, resume)
    if not resume:  # a fresh run never reuses or leaves behind another run's results
        clear_run(out)
    model = train_smash(cfg, ds, train, out, resume, device)
    _training_curve(out / "train.jsonl", out / "train.png")
    try:  # each architecture's score is kept in scores.jsonl as soon as it is known
        scored = score_all(model, cfg, val, ds, out, device, train)
        best = min(scored, key=lambda s: (s.error, s.index))
        if cfg.score.refine:
            scored += refine(model, best, cfg, val, ds, out, device, cfg.score.archs, train)
    except KeyboardInterrupt:
        raise runs.Interrupted from None
    rows = write_ranking(scored, out, cfg.score.top)
    winner = rows[0]
    diagram = out / "top" / "rank1.png"
    summary = {
        "ranking": str(out / "ranking.csv"),
        "best_smash": str(out / "top" / "rank1.smash"),
        "best_diagram": str(diagram if diagram.exists() else diagram.with_suffix(".dot")),
        "best_smash_error": winner[1].error,
        "histogram": str(out / "scores.png"),
    }
    if (out / "train.png").exists():  # not after zero steps
        summary["training_curve"] = str(out / "train.png")
    if final:
        result = train_final(
            winner[1].text, cfg, ds, train, val, out / "final", device, resume=resume
        )
        summary.update(final_test_accuracy=result["test_acc"], final_dir=str(out / "final"))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
