"""``fxrun.GraphRunner`` runs an fx graph as its GraphModule does: same outputs and gradients
(float64), BN following train/eval and attributes set after construction, the free-weights
backend's graphs too, and intermediate values released after their last use."""

from __future__ import annotations

import copy
import gc
import weakref

import pytest
import torch
from smash_space import (
    CASES,
    case_id,
    example_files,
    example_ir,
    one_thread,  # noqa: F401 (autouse)
    random_hypernet_output,
    randomise_shared,
    sampled,
)

from smashc.backends.encoding import encode, op_weights
from smashc.backends.fx import to_fx
from smashc.backends.fxrun import GraphRunner
from smashc.backends.hyperfx import SharedWeights, hyper_graph, to_fx_hyper


def _pair(seed: int, variable: bool, progress: float = 1.0):
    s = sampled(seed, progress, variable)
    torch.manual_seed(seed)
    shared = randomise_shared(SharedWeights(s.config).double(), seed)
    enc = encode(s.ir, s.config)
    root, graph = hyper_graph(s.ir, shared, enc)
    gm = to_fx_hyper(s.ir, shared, enc)
    out = random_hypernet_output(enc, seed)
    x = torch.randn(3, *s.ir.input, generator=torch.Generator().manual_seed(seed))
    return GraphRunner(root, graph), gm, shared, x.double(), out, enc


@pytest.mark.parametrize("case", CASES[::10], ids=case_id)
def test_runner_matches_graph_module_in_training(case):
    seed, progress, variable, _ = case
    runner, gm, shared, x, out, enc = _pair(seed, variable, progress)
    grads = []
    for net in (gm, runner):
        net.train()
        h = out.clone().requires_grad_()
        xi = x.clone().requires_grad_()
        y = net(xi, op_weights(h, enc))
        y.square().sum().backward()
        params = {k: p.grad for k, p in shared.named_parameters()}
        grads.append((y.detach(), xi.grad, h.grad, params))
        shared.zero_grad(set_to_none=True)
    (y1, gx1, gh1, gp1), (y2, gx2, gh2, gp2) = grads
    torch.testing.assert_close(y2, y1)
    torch.testing.assert_close(gx2, gx1)
    torch.testing.assert_close(gh2, gh1)
    assert gp1.keys() == gp2.keys()
    for k in gp1:
        assert (gp1[k] is None) == (gp2[k] is None), k
        if gp1[k] is not None:
            torch.testing.assert_close(gp2[k], gp1[k], msg=k)


def test_runner_follows_eval_mode_and_later_attributes():
    runner, gm, shared, x, out, enc = _pair(3, False)
    w = op_weights(out, enc)
    with torch.no_grad():
        runner.eval()
        gm.eval()
        torch.testing.assert_close(runner(x, w), gm(x, w))
        train_y = runner.train()(x, w)
        assert not torch.allclose(train_y, runner.eval()(x, w))  # BN statistics differ
        # a momentum set on the runner reaches its BN nodes, as on a GraphModule
        before = shared.head_bn.running_mean.clone()
        runner.bn_momentum = 1.0
        runner.train()(x, w)
        after_runner = shared.head_bn.running_mean.clone()
        shared.head_bn.running_mean.copy_(before)
        gm.bn_momentum = 1.0
        gm.train()(x, w)
        torch.testing.assert_close(after_runner, shared.head_bn.running_mean)
        assert not torch.allclose(after_runner, before)


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.stem)
def test_runner_runs_free_weight_graphs(path):
    gm = to_fx(example_ir(path)).double().eval()
    runner = GraphRunner(gm, copy.deepcopy(gm.graph))
    x = torch.randn(2, *example_ir(path).input, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(runner(x), gm(x))


def test_runner_releases_values_after_their_last_use():
    alive: list[weakref.ref] = []
    seen: list[bool] = []

    def keep(t):
        alive.append(weakref.ref(t))

    def check(t):
        gc.collect()
        seen.append(alive[0]() is None)  # -x is gone once exp(-x) is computed
        return torch.sin(t)

    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    a = graph.call_function(torch.neg, (x,))
    graph.call_function(keep, (a,))
    b = graph.call_function(torch.exp, (a,))
    graph.output(graph.call_function(check, (b,)))
    y = GraphRunner(torch.nn.Module(), graph)(torch.ones(3))
    assert seen == [True]
    torch.testing.assert_close(y, torch.sin(torch.exp(-torch.ones(3))))
