"""Tests of the meta-batch step (``runtime.metabatch``): k architectures, one optimiser step.

* a step on two architectures, each on its own batch, equals (allclose) the average of the
  two single-architecture gradients applied by one optimiser step; a shared weight neither
  architecture uses is left exactly as it was;
* the HyperNet training with ``train.meta_batch`` 2 takes half the steps per epoch;
* a meta-batch needing more batches than the split has is E0750, not a traceback.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from support import smashc

from smashc.runtime import loop, metabatch, runs
from smashc.runtime.context import open_context
from smashc.runtime.hypertrain import smash_optimizer, train_smash
from smashc.runtime.oneshot import OneShot
from smashc.runtime.presets import PRESETS
from smashc.runtime.sampler import Sampler


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _unused(net) -> set[tuple[int, int]]:
    """The (block, conv position) pairs no layer of ``net`` uses."""
    return {
        (b, p)
        for b, blk in enumerate(net.blocks)
        for p in range(4)
        if all(lay.ops[0].convs[p] is None for lay in blk.layers)
    }


def _setup():
    """A model, two batches and two architectures (variable ops, 3x3 kernels only) such that
    some shared conv is used by one of them only and some by neither."""
    cfg = PRESETS["smoke"]
    cfg = replace(cfg, device="cpu", space=replace(cfg.space, variable_ops=True))
    ctx = open_context(cfg)
    torch.manual_seed(0)
    model = OneShot(ctx.cfg.space, ctx.cfg.hypernet).train()
    data = list(ctx.batches(ctx.train, 16, None).epoch(0))[:2]
    nets = [Sampler(ctx.cfg.space, s).sample(0.0) for s in range(200)]
    for a in nets:
        for b in nets:
            if _unused(a) & _unused(b) and _unused(a) ^ _unused(b):
                return ctx, model, data, [a, b]
    pytest.fail("no two sampled architectures differ in the shared convs they use")


def _items(model, data, archs):
    out = []
    for (x, y), net in zip(data, archs, strict=True):
        c = model.compile(net)
        z = torch.randn(1, 1, *c.enc.tensor.shape[2:], generator=torch.Generator().manual_seed(7))
        out.append(metabatch.Item(x, c, z, y))
    return out


def test_two_architecture_step_applies_the_average_gradient():
    ctx, model, data, archs = _setup()
    ref = copy.deepcopy(model)
    names = [n for n, _ in ref.named_parameters()]

    grads = []  # each architecture's gradients alone, None where it did not use a weight
    for it in _items(ref, data, archs):
        ref.zero_grad(set_to_none=True)
        F.cross_entropy(ref(it.x, it.compiled, it.z), it.y).backward()
        grads.append(
            {n: None if p.grad is None else p.grad.clone() for n, p in ref.named_parameters()}
        )
    for n, p in ref.named_parameters():
        got = [g[n] for g in grads if g[n] is not None]
        p.grad = None if not got else sum(got) / 2
    only_one = [n for n in names if (grads[0][n] is None) != (grads[1][n] is None)]
    neither = [n for n in names if grads[0][n] is None and grads[1][n] is None]
    assert only_one and neither, "the two architectures should differ in the weights they use"
    opt = smash_optimizer(ref, ctx.cfg.train)
    opt.step()

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt2 = smash_optimizer(model, ctx.cfg.train)
    loss, _ = metabatch.step(
        model, _items(model, data, archs), opt2, loop.cosine(opt2, 10), "fp32", ctx.device
    )
    assert loss > 0
    after = dict(model.named_parameters())
    for n, p in ref.named_parameters():
        torch.testing.assert_close(after[n], p, rtol=1e-5, atol=1e-6, msg=n)
    for n in neither:
        assert torch.equal(after[n], before[n]), f"{n} is used by neither architecture"
    assert any(not torch.equal(after[n], before[n]) for n in only_one)


def test_meta_batch_of_two_halves_the_steps(tmp_path):
    cfg = PRESETS["smoke"]
    cfg = replace(cfg, device="cpu", train=replace(cfg.train, epochs=1, meta_batch=2))
    ctx = open_context(cfg)
    train_smash(ctx, tmp_path, False)
    log = runs.read_jsonl(tmp_path / "train.jsonl")
    per_epoch = len(ctx.train) // cfg.train.batch_size // 2
    if cfg.train.steps_per_epoch:
        per_epoch = min(per_epoch, cfg.train.steps_per_epoch)
    assert [r["global_step"] for r in log] == list(range(per_epoch))


def test_a_meta_batch_larger_than_the_split_is_an_error(tmp_path):
    proc = smashc(
        "search", "--preset", "smoke", "--device", "cpu", "--meta-batch", "1000",
        "--out", tmp_path / "run",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (
        "error[E0750]: a meta-batch of 1000 architectures (train.meta_batch 1000 x 1 "
        "processes) needs 1000 batches of train.batch_size 32 per step"
    ) in proc.stderr


def test_a_checkpoint_of_another_meta_batch_goes_on_from_the_same_batch(tmp_path):
    """What resuming on another number of processes does: a checkpoint taken at step 3 of
    epoch 1 with a meta-batch of 2 (6 batches into the epoch) goes on at step 6 with a
    meta-batch of 1, its learning rate the schedule's there."""
    from smashc.runtime.hypertrain import _HyperNetTraining

    cfg = PRESETS["smoke"]
    cfg = replace(cfg, device="cpu", train=replace(cfg.train, steps_per_epoch=None))
    ctx = open_context(cfg)
    two = _HyperNetTraining(
        replace(ctx, cfg=replace(cfg, train=replace(cfg.train, meta_batch=2))),
        OneShot(ctx.cfg.space, ctx.cfg.hypernet),
        tmp_path,
        None,
    )
    state = {**two.state(), "epoch": 1, "step": 3}
    assert state["meta"] == 2
    one = _HyperNetTraining(ctx, OneShot(ctx.cfg.space, ctx.cfg.hypernet), tmp_path, None)
    assert "meta" not in one.state()  # a one-architecture checkpoint is as it always was
    one.restore(state)
    assert state["step"] == 6
    assert one.logged == 1 * two.per_epoch + 3  # the log's numbering up to the checkpoint
    g = 1 * one.per_epoch + 6
    assert one.sched.last_epoch == g
    assert one.opt.param_groups[0]["lr"] == pytest.approx(
        cfg.train.lr * 0.5 * (1 + math.cos(math.pi * g / one.total))
    )
