"""The zero-cost proxies (runtime/proxies.py), each against a value computed independently:
a closed form, plain torch autograd on a hand-built model with the same weights, a kernel
worked out by hand, torch's own parameter count and a MAC count taken with forward hooks.
Then determinism, and every proxy on a sampled SMASH network and on ResNet-20 (1x28x28)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from support import EXAMPLES
from torch import nn

from smashc import compiler
from smashc.runtime import proxies
from smashc.runtime.context import open_context
from smashc.runtime.presets import DEMO_SPACE, PRESETS
from smashc.runtime.sampler import Sampler
from smashc.runtime.seeds import Stream, derive

CHAIN = (
    "network chain { input 4 x 1 x 1 classes 2 "
    "head { linear(out=3, bias=false) -> relu -> linear(out=2, bias=false) } }"
)
BN_NET = (
    "network bn { input 2 x 3 x 3 classes 2 "
    "stem { conv(out=3, kernel=1) -> bn -> relu } head { gap -> linear(out=2) } }"
)
NO_BN_NET = BN_NET.replace("-> bn ", "")


def _gm(text: str):
    return compiler.free_module(compiler.for_training(compiler.from_text(text)))


def _chain(w1: torch.Tensor, w2: torch.Tensor):
    gm = _gm(CHAIN)
    with torch.no_grad():
        gm.head_0linear.weight.copy_(w1)
        gm.head_2linear.weight.copy_(w2)
    return gm


def _signed(*shape: int, seed: int) -> torch.Tensor:
    """Weights of both signs, none near zero."""
    gen = torch.Generator().manual_seed(seed)
    magnitude = 0.5 + torch.rand(shape, generator=gen)
    return magnitude * torch.where(torch.rand(shape, generator=gen) < 0.5, -1.0, 1.0)


def _batch(shape, n: int = 8, classes: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((n, *shape), generator=gen), torch.randint(0, classes, (n,), generator=gen)


# --- synflow


def test_synflow_of_a_linear_chain_is_its_closed_form():
    w1, w2 = _signed(3, 4, seed=1), _signed(2, 3, seed=2)
    gm = _chain(w1, w2)
    x, y = _batch((4, 1, 1))
    a1, a2 = w1.double().abs(), w2.double().abs()
    # R = 1^T |W2| |W1| 1; dR/d|W1|_ij = (1^T |W2|)_i, dR/d|W2|_ki = (|W1| 1)_i
    into, out_of = a2.sum(0), a1.sum(1)
    expected = float((a1 * into[:, None]).sum() + (a2 * out_of[None, :]).sum())
    assert proxies.synflow(gm, x, y) == pytest.approx(expected, rel=1e-12)
    # R is homogeneous of degree 2 in the weights (Euler): the score is 2 R
    assert expected == pytest.approx(2 * float(a2.sum(0) @ a1.sum(1)), rel=1e-12)
    assert torch.equal(gm.head_0linear.weight, w1)  # the caller's module is not touched


def test_synflow_takes_batchnorm_out_and_reads_only_the_input_shape():
    gm, twin = _gm(BN_NET), _gm(NO_BN_NET)
    twin.load_state_dict({k: v for k, v in gm.state_dict().items() if "bn" not in k})
    with torch.no_grad():  # a BatchNorm far from the identity, in statistics and affine
        gm.stem_1bn.weight.fill_(3.0)
        gm.stem_1bn.bias.fill_(-2.0)
        gm.stem_1bn.running_mean.fill_(5.0)
        gm.stem_1bn.running_var.fill_(0.1)
    x, y = _batch((2, 3, 3))
    value = proxies.synflow(gm, x, y)
    assert value == pytest.approx(proxies.synflow(twin, x, y), rel=1e-12)
    assert value == proxies.synflow(gm, 7 * x + 1, 1 - y)  # data-free


# --- snip and grad_norm against plain torch


def _hand_built(gm) -> nn.Module:
    """BN_NET written in plain torch, with ``gm``'s weights."""
    model = nn.Sequential(
        nn.Conv2d(2, 3, 1, bias=gm.stem_0conv.bias is not None),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(3, 2),
    )
    with torch.no_grad():
        for mine, theirs in ((model[0], gm.stem_0conv), (model[5], gm.head_1linear)):
            mine.weight.copy_(theirs.weight)
            if mine.bias is not None:
                mine.bias.copy_(theirs.bias)
    return model.train()


def test_snip_and_grad_norm_equal_plain_autograd_on_the_same_weights():
    torch.manual_seed(3)
    gm = _gm(BN_NET)
    model = _hand_built(gm)
    x, y = _batch((2, 3, 3), n=6)
    weights = [model[0].weight, model[5].weight]
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), weights)
    expected_norm = sum(float(g.double().norm()) for g in grads)
    pairs = zip(grads, weights, strict=True)
    expected_snip = sum(float((g.double() * w.detach().double()).abs().sum()) for g, w in pairs)
    assert proxies.grad_norm(gm, x, y) == pytest.approx(expected_norm, rel=1e-6)
    assert proxies.snip(gm, x, y) == pytest.approx(expected_snip, rel=1e-6)
    assert gm.stem_0conv.weight.grad is None  # computed on a copy


# --- NASWOT


def test_naswot_kernel_is_the_hand_computed_agreement_matrix():
    # one ReLU layer h = relu(W1 x) of three units; each image's code is h > 0
    w1 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    gm = _gm(CHAIN.replace("input 4", "input 2"))
    with torch.no_grad():
        gm.head_0linear.weight.copy_(w1)
    x = torch.tensor([[1.0, 2.0], [-1.0, 1.0], [2.0, 1.0], [1.0, -1.0]]).view(4, 2, 1, 1)
    # codes: 110, 010, 111, 101; K[i, j] = 3 - Hamming(c_i, c_j)
    expected = torch.tensor(
        [[3, 2, 2, 1], [2, 3, 1, 0], [2, 1, 3, 2], [1, 0, 2, 3]], dtype=torch.float64
    )
    assert torch.equal(proxies.naswot_kernel(gm, x), expected)
    y = torch.zeros(4, dtype=torch.int64)
    _, logdet = np.linalg.slogdet(expected.numpy())
    assert proxies.naswot(gm, x, y) == pytest.approx(logdet, rel=1e-12)
    # two images with one code make the kernel singular
    assert proxies.naswot(gm, x[[0, 0, 1, 2]], y) == -math.inf


# --- params and MACs against torch


def _hooked_macs(gm, shape) -> int:
    """Multiply-accumulates per image of every conv and linear, from the output shapes a
    forward pass records."""
    found = []

    def hook(layer, inputs, out):
        if isinstance(layer, nn.Conv2d):
            per_output = layer.in_channels // layer.groups * math.prod(layer.kernel_size)
        else:
            per_output = layer.in_features
        found.append(out[0].numel() * per_output)

    handles = [m.register_forward_hook(hook) for m in proxies.weighted_layers(gm)]
    with torch.no_grad():
        gm.eval()(torch.zeros((1, *shape)))
    for h in handles:
        h.remove()
    return sum(found)


def _resnet20():
    text = (EXAMPLES / "resnet20.smash").read_text(encoding="utf-8")
    text = text.replace("input 3 x 32 x 32", "input 1 x 28 x 28")
    return compiler.from_text(text, "resnet20-28.smash", EXAMPLES)


def _sampled(seed: int = 0):
    space = replace(DEMO_SPACE, input=(1, 28, 28), classes=10)
    return Sampler(space, seed).sample(1.0, name="sampled")


@pytest.fixture(scope="module")
def networks():
    return {"resnet20": _resnet20(), "sampled": _sampled()}


@pytest.mark.parametrize("name", ["resnet20", "sampled"])
def test_params_and_macs_equal_torchs_counts(networks, name):
    net = networks[name]
    gm = compiler.free_module(compiler.for_training(net))
    x, y = _batch((1, 28, 28), classes=10)
    assert proxies.params(net, x, y) == sum(p.numel() for p in gm.parameters())
    assert proxies.macs(net, x, y) == _hooked_macs(gm, (1, 28, 28))
    with pytest.raises(TypeError):
        proxies.params(gm, x, y)


# --- every proxy on real networks, deterministically


@pytest.mark.parametrize("name", ["resnet20", "sampled"])
def test_every_proxy_runs_and_is_deterministic(networks, name):
    net = networks[name]
    x, y = _batch((1, 28, 28), classes=10)
    for proxy, fn in proxies.PROXIES.items():
        value = fn(net, x, y, 5)
        assert math.isfinite(value) and value > 0, (proxy, value)
        assert fn(net, x, y, 5) == value, proxy
    # the seed draws the weights: another seed, other weights and another score
    assert proxies.synflow(net, x, y, 6) != proxies.synflow(net, x, y, 5)
    torch.manual_seed(derive(5, Stream.PROXY_INIT))  # what a Network is scored with
    gm = compiler.free_module(compiler.for_training(net))
    assert proxies.snip(gm, x, y) == proxies.snip(net, x, y, 5)
    state = torch.random.get_rng_state()
    proxies.snip(net, x, y, 5)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global stream is untouched


def test_the_proxy_batch_is_seeded_by_the_run():
    ctx = open_context(replace(PRESETS["smoke"], device="cpu"))
    x, y = proxies.batch(ctx, 16)
    assert x.shape == (16, *ctx.data.shape) and x.dtype == torch.float32 and y.shape == (16,)
    again, labels = proxies.batch(ctx, 16)
    assert torch.equal(x, again) and torch.equal(y, labels)
    other = open_context(replace(PRESETS["smoke"], device="cpu", seed=1))
    assert not torch.equal(proxies.batch(other, 16)[1], y)
