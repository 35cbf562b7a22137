"""bfloat16 autocast (``runtime.precision``) through the one-shot model's kernels.

* ``auto`` resolves to bf16 exactly where the hardware computes it; a resumed run keeps the
  precision its config recorded;
* ``kernels.conv2d`` and ``kernels.crops`` under autocast compute in bfloat16 (also on the
  dilated path, which autocast does not reach by itself) and hand float32 gradients back
  to float32 parameters, close to the float32 results;
* a SMASH step under bf16 gives float32 gradients to the HyperNet and the shared weights,
  pointing where the float32 step's do; scoring in bf16 runs.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from smashc.backends import kernels
from smashc.runtime import precision
from smashc.runtime.context import open_context, run_precision
from smashc.runtime.hypernet import HyperNetConfig
from smashc.runtime.oneshot import OneShot
from smashc.runtime.presets import DEMO_SPACE, PRESETS
from smashc.runtime.sampler import Sampler
from smashc.runtime.scoring import smash_error

CPU = torch.device("cpu")
BF16 = torch.autocast("cpu", dtype=torch.bfloat16)
PRECISIONS = ("fp32", "bf16")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def test_auto_is_bf16_exactly_where_it_is_native():
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert precision.native_bf16(CPU) == native
    assert precision.resolve("auto", CPU) == ("bf16" if native else "fp32")
    assert precision.resolve("fp32", CPU) == "fp32"
    assert precision.resolve("bf16", CPU) == "bf16"
    with pytest.raises(ValueError, match="fp16"):
        precision.resolve("fp16", CPU)


def test_autocast_context_follows_the_precision():
    x = torch.randn(2, 3)
    with precision.autocast("bf16", CPU):
        assert (x @ x.T).dtype == torch.bfloat16
    with precision.autocast("fp32", CPU):
        assert (x @ x.T).dtype == torch.float32


def test_a_resumed_run_keeps_its_recorded_precision(tmp_path):
    other = "fp32" if precision.resolve("auto", CPU) == "bf16" else "bf16"
    (tmp_path / "config.json").write_text(json.dumps({"precision": other}))
    assert run_precision("auto", CPU, tmp_path) == other
    assert run_precision("auto", CPU, None) == precision.resolve("auto", CPU)
    explicit = "bf16" if other == "fp32" else "fp32"
    assert run_precision(explicit, CPU, tmp_path) == explicit  # the flag wins
    # a run's context resolves its precision so, and records it concretely
    smoke = replace(PRESETS["smoke"], device="cpu", precision="auto")
    assert open_context(smoke, tmp_path).cfg.precision == other
    assert open_context(smoke).cfg.precision == precision.resolve("auto", CPU)
    (tmp_path / "config.json").unlink()
    assert run_precision("auto", CPU, tmp_path) == precision.resolve("auto", CPU)


@pytest.mark.parametrize(
    ("kernel", "dilation", "groups"),
    [((3, 3), (1, 1), 1), ((5, 3), (2, 1), 2), ((7, 7), (2, 2), 4), ((1, 1), (1, 1), 1)],
)
def test_conv2d_under_autocast_computes_in_bf16(kernel, dilation, groups):
    gen = torch.Generator().manual_seed(sum(kernel) + 10 * dilation[0] + groups)
    x = torch.randn(4, 16, 9, 10, generator=gen)
    w = torch.randn(8, 16 // groups, *kernel, generator=gen)
    pad = tuple((k - 1) // 2 * d for k, d in zip(kernel, dilation, strict=True))
    x1, w1 = x.clone().requires_grad_(), w.clone().requires_grad_()
    with BF16:
        y = kernels.conv2d(x1, w1, pad, dilation, groups)
    assert y.dtype == torch.bfloat16
    assert y.is_contiguous(memory_format=torch.channels_last)
    x2, w2 = x.clone().requires_grad_(), w.clone().requires_grad_()
    ref = F.conv2d(x2, w2, None, 1, pad, dilation, groups)
    assert rel(y, ref) < 2e-2
    gy = torch.randn(ref.shape, generator=gen)
    gx, gw = torch.autograd.grad(y, (x1, w1), gy.bfloat16())
    rx, rw = torch.autograd.grad(ref, (x2, w2), gy)
    assert gx.dtype == gw.dtype == torch.float32
    assert rel(gx, rx) < 2e-2 and rel(gw, rw) < 2e-2


def test_crops_under_autocast_give_the_bank_a_float32_gradient():
    bank = torch.randn(8, 16, 7, 7, requires_grad=True)
    boxes = ((8, 16, (2, 5), (2, 5)), (4, 8, (0, 7), (1, 6)))
    with BF16:
        a, b = kernels.crops(bank, boxes)
    assert a.dtype == b.dtype == torch.bfloat16
    assert torch.equal(a.float(), bank.detach()[:, :, 2:5, 2:5].bfloat16().float())
    (g,) = torch.autograd.grad(a.float().sum() + 2 * b.float().sum(), (bank,))
    assert g.dtype == torch.float32
    want = torch.zeros_like(g)
    want[:, :, 2:5, 2:5] += 1
    want[:4, :8, :, 1:6] += 2
    assert torch.equal(g, want)


@pytest.fixture(scope="module")
def one_shot():
    space = replace(DEMO_SPACE, input=(3, 16, 16), classes=10)
    torch.manual_seed(0)
    model = OneShot(space, HyperNetConfig(stem_channels=4, blocks=(2, 2), growth=4))
    return model, space


def test_a_bf16_step_follows_the_fp32_gradient(one_shot):
    model, space = one_shot
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, *space.input, generator=gen)
    y = torch.randint(0, space.classes, (16,), generator=gen)
    compiled = model.compile(Sampler(space, seed=3).sample(1.0))
    z = torch.randn(1, 1, *compiled.enc.tensor.shape[2:], generator=gen)
    model.train()
    grads, losses = {}, {}
    for prec in PRECISIONS:
        model.zero_grad(set_to_none=True)
        with precision.autocast(prec, CPU):
            logits = model(x, compiled, z)
            loss = F.cross_entropy(logits, y)
        assert logits.dtype == (torch.bfloat16 if prec == "bf16" else torch.float32)
        loss.backward()
        used = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
        assert any(n.startswith("hypernet.") for n, _ in used)
        assert any(n.startswith("shared.") for n, _ in used)
        assert all(g.dtype == torch.float32 and g.isfinite().all() for _, g in used)
        grads[prec] = torch.cat([g.flatten() for _, g in used])
        losses[prec] = loss.item()
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=1e-2)
    assert F.cosine_similarity(grads["bf16"], grads["fp32"], dim=0) > 0.99


def test_scoring_in_bf16_runs(one_shot):
    model, space = one_shot
    compiled = model.compile(Sampler(space, seed=4).sample(1.0))
    x = torch.randn(40, *space.input, generator=torch.Generator().manual_seed(2))
    y = torch.arange(40) % space.classes

    class Batches:
        def epoch(self, _):
            return [(x[:20], y[:20]), (x[20:], y[20:])]

    z = torch.zeros(1, 1, *compiled.enc.tensor.shape[2:])
    errors = [smash_error(model, compiled, Batches(), [z], None, p) for p in PRECISIONS]
    assert all(0 <= e <= 1 for e in errors)
    # the same network in either precision: a few near-ties may flip, not the whole answer
    assert abs(errors[0] - errors[1]) <= 0.1
