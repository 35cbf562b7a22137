"""Tests of the SMASH runtime: the sampler, the HyperNet, the one-shot model and perturbation.

* every sampled architecture (many seeds and annealing progress values, both op layouts,
  a 3x16x16 and the demo 1x28x28 space) prints to .smash text that the front end accepts,
  compiles, encodes and runs to finite (N, classes) logits; sampling is seeded and annealed;
* the HyperNet's output follows the encoding's shape and ``op_weights`` cuts one
  (bottleneck, in) matrix per op out of it;
* gradients reach the HyperNet and exactly the shared weights the architecture uses;
* a few SMASH steps on the synthetic dataset reduce the loss;
* ``strategies.refine.perturb`` keeps architectures valid.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from smashc import arch
from smashc.backends.encoding import op_weights
from smashc.backends.hyperfx import centre
from smashc.compiler import to_text
from smashc.frontend import printer
from smashc.frontend.expand import expand
from smashc.frontend.flatten import to_module
from smashc.frontend.loader import load_text
from smashc.runtime.context import open_context
from smashc.runtime.data import Batches
from smashc.runtime.hypernet import WIDTH_STEP, HyperNet, HyperNetConfig
from smashc.runtime.hypertrain import smash_optimizer
from smashc.runtime.oneshot import Compiled, OneShot
from smashc.runtime.presets import DEMO_SPACE, PRESETS
from smashc.runtime.sampler import (
    Sampler,
    SearchSpace,
    _units_cdf,
    bottleneck_width,
    read_step,
)
from smashc.runtime.strategies.refine import fresh_perturbation, perturb

SMALL = SearchSpace(input=(3, 16, 16), classes=10)
DEMO = replace(DEMO_SPACE, input=(1, 28, 28), classes=10)
SMOKE = replace(PRESETS["smoke"].space, input=(3, 16, 16), classes=10)
SPACES = {"small": SMALL, "demo": DEMO}
HYPER = HyperNetConfig(stem_channels=4, blocks=(2, 2), growth=4)  # small and quick


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small convs: extra OpenMP threads only add contention on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@functools.cache
def model_for(space: SearchSpace) -> OneShot:
    torch.manual_seed(0)
    return OneShot(space, HYPER)


def space_of(name: str, variable_ops: bool) -> SearchSpace:
    return replace(SPACES[name], variable_ops=variable_ops)


def smash_ops(net: arch.Network) -> list[tuple[arch.Block, arch.Layer, arch.SmashOp]]:
    """Every (block, layer, op) of a SMASH-space network, in encoding order."""
    out = []
    for blk in net.blocks:
        for lay in blk.layers:
            assert len(lay.ops) == 1 and isinstance(lay.ops[0], arch.SmashOp)
            out.append((blk, lay, lay.ops[0]))
    return out


def text_of(net: arch.Network) -> str:
    return printer.module(to_module(net))


def check_compiles_and_runs(space: SearchSpace, text: str, batch: int = 2) -> Compiled:
    """text -> front end -> compile -> encode -> forward; returns the compiled architecture."""
    program = load_text(text, "sampled.smash")
    net = expand(program)
    assert net.input == space.input and net.classes == space.classes
    assert len(net.blocks) == len(space.block_inputs)
    ops = smash_ops(net)
    for blk in net.blocks:
        assert blk.layers, f"{blk.name} has no layers"
        assert len(blk.banks) <= space.max_banks
        assert len(set(blk.banks)) == 1 and blk.banks[0] % space.unit == 0
    model = model_for(space)
    compiled = model.compile(net)  # the re-parsed network, not the sampler's object
    enc = compiled.enc
    cfg = space.encoding()
    sw = cfg.slice_width
    slices = sum(math.ceil(len(lay.reads) * blk.banks[0] / sw) for blk, lay, _ in ops)
    assert enc.tensor.shape == (1, cfg.channels, cfg.rows, slices)
    assert set(enc.tensor.unique().tolist()) <= {-1.0, 1.0}
    assert len(enc.slots) == len(ops)
    x = torch.randn(batch, *space.input, generator=torch.Generator().manual_seed(1))
    z = torch.randn(1, 1, cfg.rows, slices, generator=torch.Generator().manual_seed(2))
    model.eval()
    with torch.no_grad():
        logits = model(x, compiled, z)
    assert logits.shape == (batch, space.classes)
    assert torch.isfinite(logits).all()
    return compiled


# --- the sampler ----------------------------------------------------------------------------

PROGRESS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


def sampler_cases(n: int) -> list:
    cases = []
    for name in SPACES:
        for variable in (False, True):
            for seed in range(n):
                progress = PROGRESS[seed % len(PROGRESS)]
                cases.append(
                    pytest.param(
                        name,
                        variable,
                        seed,
                        progress,
                        id=f"{name}-{'var' if variable else 'c0'}-s{seed}-p{progress}",
                    )
                )
    return cases


@pytest.mark.parametrize("name,variable,seed,progress", sampler_cases(6))
def test_sampled_architecture_compiles_and_runs(name, variable, seed, progress):
    space = space_of(name, variable)
    module = Sampler(space, seed).sample(progress, name=f"arch{seed}")
    check_compiles_and_runs(space, to_text(module))


@pytest.mark.slow
@pytest.mark.parametrize("name,variable,seed,progress", sampler_cases(40)[6::2])
def test_many_sampled_architectures_compile_and_run(name, variable, seed, progress):
    space = space_of(name, variable)
    module = Sampler(space, 1000 + seed).sample(progress)
    check_compiles_and_runs(space, to_text(module))


@pytest.mark.parametrize("name", list(SPACES))
@pytest.mark.parametrize("variable", [False, True], ids=["c0", "var"])
def test_sampled_text_round_trips_to_the_same_network(name, variable):
    """The printed text of a sampled network expands back to that network."""
    space = space_of(name, variable)
    for seed in range(5):
        net = Sampler(space, seed).sample(1.0, name="n")
        text = to_text(net)
        assert text == text_of(net)
        assert expand(load_text(text)) == net
        assert text_of(expand(load_text(text))) == text


@pytest.mark.parametrize("name", list(SPACES))
@pytest.mark.parametrize("variable", [False, True], ids=["c0", "var"])
def test_sampling_is_reproducible(name, variable):
    space = space_of(name, variable)
    for progress in (0.0, 1.0):
        texts = [to_text(Sampler(space, s).sample(progress)) for s in range(8)]
        again = [to_text(Sampler(space, s).sample(progress)) for s in range(8)]
        assert texts == again
        assert len(set(texts)) == len(texts), "different seeds gave the same architecture"


def test_sampler_state_restores_the_stream():
    sampler = Sampler(SMALL, 3)
    sampler.sample(0.3)
    state = sampler.state()
    first = text_of(sampler.sample(0.7))
    second = text_of(sampler.sample(0.7))
    assert first != second  # one sampler draws a fresh architecture every time
    sampler.set_state(state)
    assert text_of(sampler.sample(0.7)) == first


@pytest.mark.parametrize("seed", [0, 7])
def test_sampler_draws_are_numpy_choice_draws(seed):
    """The sampler's fast draws give what ``Generator.choice`` gives on the same stream, so
    a seed means the same architectures as when the sampler called ``choice``."""
    fast, ref = Sampler(SMALL, seed), np.random.default_rng(seed)
    for n in range(1, 40):
        options = tuple(range(3, 2 * (n % 5) + 4, 2))
        assert fast._pick(options) == options[int(ref.choice(len(options)))]
        assert fast._pick(options) == int(ref.choice(options))
        p = np.exp(-np.arange(n % 9 + 1))
        assert fast._extra_writes(n % 9 + 1) == int(ref.choice(n % 9 + 1, p=p / p.sum()))
        size, target = n % 3 + 1, n % 11 + 1  # output units: bank size, reads x bank size
        g = np.arange(size, 9, size)
        w = 1 / (0.01 + 10 * np.abs(g - target))
        drawn = int(g[ref.choice(len(g), p=w / w.sum())])
        assert size * (1 + fast._draw(_units_cdf(size, target, 8))) == drawn
    assert fast.rng.random() == ref.random()  # both streams consumed the same numbers


def convs_of(net: arch.Network) -> list[arch.SmashConv]:
    return [c for _, _, op in smash_ops(net) for c in op.convs if c is not None]


@pytest.mark.parametrize("name", list(SPACES))
@pytest.mark.parametrize("variable", [False, True], ids=["c0", "var"])
def test_kernel_size_is_annealed(name, variable):
    space = space_of(name, variable)
    early = [c for s in range(20) for c in convs_of(Sampler(space, s).sample(0.0))]
    late = [c for s in range(20) for c in convs_of(Sampler(space, s).sample(1.0))]
    assert early and late
    assert {c.kernel for c in early} == {(3, 3)}
    sizes = {k for c in late for k in c.kernel}
    assert max(sizes) == space.max_kernel, sizes
    assert sizes <= set(range(3, space.max_kernel + 1, 2))
    for c in early + late:
        assert all(1 <= d <= space.max_dilation for d in c.dilation)
        assert c.groups in {2**i for i in range(int(math.log2(space.max_groups)) + 1)}


@pytest.mark.parametrize("name", list(SPACES))
def test_variable_ops_draws_the_allowed_conv_sets(name):
    allowed = {
        (True, False, False, False),
        (True, False, True, False),
        (True, True, False, False),
        (True, True, True, False),
        (True, True, True, True),
    }
    seen = set()
    for s in range(10):
        for _, _, op in smash_ops(Sampler(space_of(name, True), s).sample(1.0)):
            seen.add(tuple(c is not None for c in op.convs))
        for _, _, op in smash_ops(Sampler(space_of(name, False), s).sample(1.0)):
            assert tuple(c is not None for c in op.convs) == (True, False, False, False)
    assert seen == allowed


@pytest.mark.parametrize("name", list(SPACES))
def test_layer_count_grows_with_progress(name):
    space = SPACES[name]

    def mean_layers(progress: float) -> float:
        nets = [Sampler(space, s).sample(progress) for s in range(30)]
        return float(np.mean([len(smash_ops(n)) for n in nets]))

    m0, m25, m1 = mean_layers(0.0), mean_layers(0.25), mean_layers(1.0)
    assert m0 < m25 < m1, (m0, m25, m1)
    assert m1 > 1.2 * m0, (m0, m1)


# --- HyperNet and op_weights ----------------------------------------------------------------


@pytest.mark.parametrize("name", list(SPACES))
@pytest.mark.parametrize("variable", [False, True], ids=["c0", "var"])
def test_hypernet_output_follows_the_encoding(name, variable):
    space = space_of(name, variable)
    cfg = space.encoding()
    torch.manual_seed(0)
    hyper = HyperNet(cfg, HyperNetConfig(stem_channels=5, blocks=(2, 3), growth=6))
    model = model_for(space)
    widths = set()
    for seed in range(3):
        module = Sampler(space, seed).sample([0.0, 0.5, 1.0][seed])
        net = expand(load_text(to_text(module)))
        enc = model.compile(module).enc
        S = enc.tensor.shape[3]  # noqa: N806
        widths.add(S)
        with torch.no_grad():
            out = hyper(enc.tensor)
            z = torch.randn(1, 1, cfg.rows, S, generator=torch.Generator().manual_seed(seed))
            a, b = hyper(enc.tensor, z), hyper(enc.tensor, z)
            c = hyper(enc.tensor, torch.randn_like(z))
        assert out.shape == (1, cfg.unit * cfg.slice_width, cfg.rows, S)
        assert torch.equal(a, b)  # deterministic given z
        assert not torch.allclose(a, c)  # the noise channel matters
        mats = op_weights(a, enc)
        ops = smash_ops(net)
        assert len(mats) == len(ops)
        for m, (blk, lay, op) in zip(mats, ops, strict=True):
            cin = sum(blk.banks[r] for r in lay.reads)
            assert m.shape == (op.bottleneck, cin), lay.name
    assert len(widths) > 1  # the HyperNet is fully convolutional over architectures' widths


def _hypernet_as_described(hyper: HyperNet, c: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The HyperNet written as the reference describes it: LeakyReLU of the whole
    concatenation before each conv, plain F.conv2d with the weight-normalised weights."""

    def conv(m, x):
        w = m.weight * (m.gain / m.weight.flatten(1).norm(dim=1))[:, None, None, None]
        return F.conv2d(x, w, None, 1, m.padding)

    act = lambda t: F.leaky_relu(t, hyper.cfg.slope)  # noqa: E731
    x = torch.cat([c, z], dim=1)
    x = torch.cat([x, conv(hyper.stem, x)], dim=1)
    for i, layers in enumerate(hyper.dense):
        for m in layers:
            x = torch.cat([x, conv(m, act(x))], dim=1)
        if i < len(hyper.halve):
            x = conv(hyper.halve[i], act(x))
    return conv(hyper.out, act(x))


@pytest.mark.parametrize("width", [None, 1, WIDTH_STEP - 1, WIDTH_STEP, WIDTH_STEP + 1])
def test_hypernet_computes_the_described_function_and_its_gradients(width):
    """float64: activating each feature once, not the whole concatenation per layer, and
    running on c padded to a multiple of WIDTH_STEP slices, change nothing. ``width``: a
    random c of that many slices (None: a sampled architecture's)."""
    space = SMALL
    torch.manual_seed(0)
    hyper = HyperNet(space.encoding(), HyperNetConfig(stem_channels=5, blocks=(3, 2), growth=6))
    hyper = hyper.double()
    c = model_for(space).compile(Sampler(space, 4).sample(1.0)).enc.tensor.double()
    if width is not None:
        c = torch.randint(0, 2, (*c.shape[:3], width)).double() * 2 - 1
    z = torch.randn(1, 1, *c.shape[2:], dtype=torch.float64)
    gy = torch.randn(hyper(c, z).shape, dtype=torch.float64)
    params = list(hyper.parameters())
    got = torch.autograd.grad(hyper(c, z), params, gy)
    want = torch.autograd.grad(_hypernet_as_described(hyper, c, z), params, gy)
    torch.testing.assert_close(hyper(c, z), _hypernet_as_described(hyper, c, z))
    for (name, _), g, w in zip(hyper.named_parameters(), got, want, strict=True):
        torch.testing.assert_close(g, w, msg=name)


def test_op_weights_cut_the_documented_blocks():
    """Entry (o, i) of op k's matrix is HyperNet channel (o % unit) * slice_width + i % sw
    at row o // unit and slice first_slice + i // sw."""
    space = space_of("demo", False)
    enc = model_for(space).compile(Sampler(space, 4).sample(1.0)).enc
    cfg = enc.config
    n, sw = cfg.unit, cfg.slice_width
    out = torch.arange(n * sw * cfg.rows * enc.tensor.shape[3], dtype=torch.float64)
    out = out.reshape(1, n * sw, cfg.rows, enc.tensor.shape[3])
    for slot, m in zip(enc.slots, op_weights(out, enc), strict=True):
        o = torch.arange(slot.bottleneck)[:, None]
        i = torch.arange(slot.in_channels)[None, :]
        want = out[0, (o % n) * sw + i % sw, o // n, slot.first_slice + i // sw]
        assert torch.equal(m, want), slot.node


# --- gradients ------------------------------------------------------------------------------


def _used_mask(
    weight: torch.Tensor, ops: list[arch.SmashOp], position: int, kmax: int
) -> torch.Tensor:
    mask = torch.zeros_like(weight, dtype=torch.bool)
    for op in ops:
        c = op.convs[position]
        if c is None:
            continue
        cin = op.conv_in(position) // c.groups
        mask[: op.out, :cin, centre(kmax, c.kernel[0]), centre(kmax, c.kernel[1])] = True
    return mask


def _backward(space: SearchSpace, module) -> tuple[OneShot, arch.Network]:
    torch.manual_seed(0)
    model = OneShot(space, HYPER).train()
    compiled = model.compile(module)
    x = torch.randn(4, *space.input)
    y = torch.arange(4) % space.classes
    F.cross_entropy(model(x, compiled), y).backward()
    return model, expand(load_text(to_text(module)))


def test_gradients_reach_hypernet_and_used_shared_weights_only():
    space = replace(SMOKE, variable_ops=True)
    # an architecture (3x3 kernels only) in which some block leaves a conv position unused
    for seed in range(200):
        net = Sampler(space, seed).sample(0.0)
        unused = [
            (b, p)
            for b, blk in enumerate(net.blocks)
            for p in range(4)
            if all(lay.ops[0].convs[p] is None for lay in blk.layers)
        ]
        if unused:
            break
    else:
        pytest.fail("no sampled architecture leaves a conv position unused")
    model, net = _backward(space, net)
    cfg = space.encoding()
    kmax = max(cfg.kernel_sizes)

    for pname, prm in model.hypernet.named_parameters():
        assert prm.grad is not None, f"hypernet.{pname}: no gradient"
        assert torch.isfinite(prm.grad).all()
        assert prm.grad.abs().sum() > 0, f"hypernet.{pname}: zero gradient"

    shared = model.shared
    assert shared.stem.weight.grad.abs().sum() > 0
    assert shared.head.bias.grad.abs().sum() > 0
    for b, blk in enumerate(net.blocks):
        ops = [lay.ops[0] for lay in blk.layers]
        channels = sum(blk.banks)
        for p in range(4):
            w = shared.convs[f"block{b}_c{p}"]
            if (b, p) in unused:
                assert w.grad is None or not w.grad.any(), f"block{b}_c{p} is unused"
                continue
            mask = _used_mask(w, ops, p, kmax)
            assert w.grad is not None and w.grad[mask].abs().sum() > 0, f"block{b}_c{p}"
            # channels no op reads or writes, and kernel taps outside the 3x3 centre
            assert not w.grad[~mask].any(), f"block{b}_c{p}: gradient outside the used slice"
        if b + 1 < len(net.blocks):
            conv, bn = shared.transition_conv[b], shared.transition_bn[b]
            assert conv.grad[:, :channels].abs().sum() > 0
            assert not conv.grad[:, channels:].any()
            assert bn.weight.grad[:channels].abs().sum() > 0
            assert not bn.weight.grad[channels:].any() and not bn.bias.grad[channels:].any()
        else:
            assert shared.head.weight.grad[:, :channels].abs().sum() > 0
            assert not shared.head.weight.grad[:, channels:].any()
            assert not shared.head_bn.weight.grad[channels:].any()


def test_single_conv_layout_allocates_and_trains_c0_only():
    space = replace(SMOKE, variable_ops=False)
    assert set(OneShot(space, HYPER).shared.convs.keys()) == {
        f"block{b}_c0" for b in range(len(space.block_inputs))
    }
    model, net = _backward(space, Sampler(space, 5).sample(1.0))
    kmax = max(space.encoding().kernel_sizes)
    for b, blk in enumerate(net.blocks):
        w = model.shared.convs[f"block{b}_c0"]
        mask = _used_mask(w, [lay.ops[0] for lay in blk.layers], 0, kmax)
        assert w.grad[mask].abs().sum() > 0 and not w.grad[~mask].any()
    assert all(p.grad is not None for p in model.hypernet.parameters())


# --- a few SMASH steps ----------------------------------------------------------------------


def smash_losses(fixed: bool, steps: int = 30, batch: int = 16) -> list[float]:
    """``steps`` SMASH steps (the HyperNet training's optimiser) on the synthetic dataset."""
    ctx = open_context(replace(PRESETS["smoke"], device="cpu"))
    cfg, ds, train = ctx.cfg, ctx.data, ctx.train
    torch.manual_seed(0)
    model = OneShot(cfg.space, cfg.hypernet).train()
    opt = smash_optimizer(model, cfg.train)
    batches = Batches(ds, train, batch, 0, augment=True, drop_last=True)
    compiled = model.compile(Sampler(cfg.space, 0).sample(0.0))
    losses: list[float] = []
    epoch = 0
    while len(losses) < steps:
        for x, y in batches.epoch(epoch):
            if len(losses) == steps:
                break
            if not fixed:
                compiled = model.compile(Sampler(cfg.space, 100 + len(losses)).sample(0.0))
            loss = F.cross_entropy(model(x, compiled), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        epoch += 1
    assert all(math.isfinite(v) for v in losses)
    return losses


@pytest.mark.parametrize("fixed", [True, False], ids=["fixed-arch", "new-arch-per-step"])
def test_smash_steps_reduce_the_loss(fixed):
    losses = smash_losses(fixed)
    first, last = float(np.mean(losses[:5])), float(np.mean(losses[-5:]))
    assert last < first - 0.1, (first, last, losses)


# --- perturbation ---------------------------------------------------------------------------


def _check_perturbed(space: SearchSpace, net: arch.Network, cand: arch.Network) -> None:
    """Banks, writes and out stay; reads come from banks already written, in multiples of
    the read step; the bottleneck is the sampler's rule for the op's (new) input."""
    assert len(cand.blocks) == len(net.blocks)
    for b, (old, new) in enumerate(zip(net.blocks, cand.blocks, strict=True)):
        assert new.banks == old.banks and new.output == old.output
        assert [lay.writes for lay in new.layers] == [lay.writes for lay in old.layers]
        width = old.banks[0]
        written = space.block_inputs[b] // width
        step = read_step(space, width // space.unit)
        for lo, ln in zip(old.layers, new.layers, strict=True):
            assert ln.reads and set(ln.reads) <= set(range(written)), (ln.name, ln.reads)
            assert list(ln.reads) == sorted(set(ln.reads))
            assert len(ln.reads) % step == 0, (ln.name, ln.reads)
            o, n = lo.ops[0], ln.ops[0]
            assert n.out == o.out
            assert n.bottleneck == bottleneck_width(space, len(ln.reads) * width, n.out)
            assert n.bottleneck <= len(ln.reads) * width
            written = max(written, max(ln.writes) + 1)
    # and it is a valid SMASH-space architecture: front end, compile, encode, run
    check_compiles_and_runs(space, text_of(cand))


@pytest.mark.parametrize("name", list(SPACES))
@pytest.mark.parametrize("variable", [False, True], ids=["c0", "var"])
def test_perturb_keeps_architectures_valid(name, variable):
    space = space_of(name, variable)
    for seed, p in ((0, 0.05), (1, 0.3), (2, 1.0)):
        net = Sampler(space, seed).sample(1.0)
        cand = perturb(net, space, np.random.default_rng(seed), p)
        _check_perturbed(space, net, cand)


@pytest.mark.parametrize("name", list(SPACES))
@pytest.mark.parametrize("variable", [False, True], ids=["c0", "var"])
def test_perturb_with_p0_is_identity_and_p1_changes(name, variable):
    space = space_of(name, variable)
    for seed in range(4):
        net = Sampler(space, seed).sample(1.0)
        # refine perturbs the network read back from its .smash text
        parsed = expand(load_text(text_of(net)))
        for source in (net, parsed):
            same = perturb(source, space, np.random.default_rng(seed), 0.0)
            assert text_of(same) == text_of(net)
            changed = perturb(source, space, np.random.default_rng(seed), 1.0)
            assert text_of(changed) != text_of(net)


def test_perturb_is_seeded():
    space = space_of("demo", True)
    net = Sampler(space, 7).sample(1.0)
    a = perturb(net, space, np.random.default_rng(3), 0.5)
    b = perturb(net, space, np.random.default_rng(3), 0.5)
    c = perturb(net, space, np.random.default_rng(4), 0.5)
    assert text_of(a) == text_of(b)
    assert text_of(a) != text_of(c)


def test_fresh_perturbation_never_repeats_a_network():
    """Refinement's candidates: with a perturbation probability small enough that most
    draws change nothing, every candidate still differs from the source and each other."""
    space = space_of("small", False)
    net = Sampler(space, 3).sample(1.0)
    rng = np.random.default_rng(0)
    # 0.01: this network has 26 layers, each with two chances to change
    unchanged = sum(text_of(perturb(net, space, rng, 0.01)) == text_of(net) for _ in range(50))
    assert unchanged > 10  # the plain perturbation does repeat at this probability
    seen = {replace(net, name="")}
    texts = {text_of(net)}
    for _ in range(20):
        cand = fresh_perturbation(net, seen, space, rng, 0.01)
        assert cand is not None
        seen.add(replace(cand, name=""))
        texts.add(text_of(cand))
    assert len(texts) == 21
    assert fresh_perturbation(net, seen, space, rng, 0.0, tries=5) is None
