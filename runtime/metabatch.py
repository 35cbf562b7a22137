"""One HyperNet optimiser step on a meta-batch: several architectures, their gradients averaged.

A meta-batch of ``M`` architectures is ``train.meta_batch`` (k) per process times the number
of processes. Each architecture runs on its own batch; its loss is divided by ``M`` before
its backward pass, so the gradients accumulated over a process's k architectures, summed
across the processes, are the average over the meta-batch. A shared weight that an
architecture does not use gets no gradient from it (zero in the sum); one that no
architecture of the meta-batch used keeps no gradient at all (``None``), so Adam leaves it
and its moments alone, as it does in a one-architecture step.

BatchNorm running statistics follow the same rule: each architecture updates them from
where the step found them, and the step leaves their average over the meta-batch. So they
are the same on every process after every step (what rank 0 checkpoints is what every rank
has), and a meta-batch gives the same statistics whether one process or several ran it.

Across processes the gradients travel as one flat buffer, summed by one all-reduce
(``Comm.all_reduce``), with one flag per parameter saying whether some process gave it a
gradient, the BN statistics, and the loss and accuracy sums for the log: one collective
per step, whatever the model's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F  # noqa: N812

from smashc.runtime import loop, precision


class Comm(Protocol):
    """What the step needs of the process group (``runtime.distributed``)."""

    world: int

    def all_reduce(self, flat: torch.Tensor) -> None:
        """Sums ``flat`` over every process, in place."""


@dataclass(frozen=True)
class Item:
    """One architecture of a meta-batch: the one-shot model's inputs and the labels."""

    x: torch.Tensor
    compiled: object  # oneshot.Compiled
    z: torch.Tensor
    y: torch.Tensor


def _sum_across(params, stats: list[torch.Tensor], numbers: list[float], comm: Comm, device):
    """Sums every parameter's gradient (a missing one counts as zero), the tensors ``stats``
    (in place) and ``numbers`` over the processes; a gradient that no process had is left
    ``None``. The summed ``numbers``."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    used = [float(p.grad is not None) for p in params]
    flat = torch.cat(
        [
            *(g.reshape(-1).float() for g in grads),
            *(t.reshape(-1).float() for t in stats),
            torch.tensor(used + numbers, dtype=torch.float32, device=device),
        ]
    )
    comm.all_reduce(flat)
    at = 0
    for p in params:
        n = p.numel()
        p.grad = flat[at : at + n].view_as(p).to(p.dtype)
        at += n
    for t in stats:
        n = t.numel()
        t.copy_(flat[at : at + n].view_as(t))
        at += n
    for p, flag in zip(params, flat[at : at + len(params)].tolist(), strict=True):
        if flag == 0:
            p.grad = None
    return flat[at + len(params) :].tolist()


def _bn_statistics(model: torch.nn.Module) -> list[torch.Tensor]:
    return [b for name, b in model.named_buffers() if "running_" in name]


def step(
    model: torch.nn.Module,
    items: Sequence[Item],
    opt: torch.optim.Optimizer,
    sched,
    prec: str,
    device: torch.device,
    comm: Comm | None = None,
) -> tuple[float, float]:
    """One optimiser and schedule step on this process's ``items`` (the whole meta-batch
    with ``comm`` None or of one process, else this process's share of it); the meta-batch's
    mean loss and accuracy. One architecture in one process is ``loop.train_step`` itself."""
    world = comm.world if comm is not None else 1
    if world == 1 and len(items) == 1:
        it = items[0]
        return loop.train_step(model, (it.x, it.compiled, it.z), it.y, opt, sched, prec, device)
    total = world * len(items)
    opt.zero_grad(set_to_none=True)
    loss_sum = acc_sum = 0.0
    stats = _bn_statistics(model)
    found = [b.clone() for b in stats]
    summed = [torch.zeros_like(b) for b in stats]
    for it in items:
        for b, start in zip(stats, found, strict=True):
            b.copy_(start)
        with precision.autocast(prec, device):
            logits = model(it.x, it.compiled, it.z)
            loss = F.cross_entropy(logits, it.y)
        (loss / total).backward()
        loss_sum += loss.item()
        acc_sum += (logits.argmax(1) == it.y).float().mean().item()
        for s, b in zip(summed, stats, strict=True):
            s += b
    if comm is not None and world > 1:
        params = [p for group in opt.param_groups for p in group["params"]]
        loss_sum, acc_sum = _sum_across(params, summed, [loss_sum, acc_sum], comm, device)
    for b, s in zip(stats, summed, strict=True):
        b.copy_(s / total)
    opt.step()
    sched.step()
    return loss_sum / total, acc_sum / total
