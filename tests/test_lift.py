"""Lifting PyTorch modules into .smash: networks written in plain PyTorch (tests/lift_nets.py)
come back as memory-bank programs that compute the same function with the lifted weights."""

from __future__ import annotations

import lift_nets as nets
import pytest
import torch
from support import EXAMPLES
from torch.utils.flop_counter import FlopCounterMode

from smashc.backends.export import load as load_package
from smashc.compiler import export, for_training, free_module, totals
from smashc.frontend import printer
from smashc.frontend.parser import parse
from smashc.lifting import lift

# (network, its constructor, the families of its blocks in order, input size)
CASES = [
    ("resnet20", lambda: nets.CifarResNet(3), ["resnet"] * 3, 32),
    ("preact_bottleneck", lambda: nets.PreActResNet((2, 2)), ["resnet"] * 2, 16),
    ("wrn_16_4", lambda: nets.WideResNet(16, 4), ["resnet"] * 3, 16),
    ("densenet_bc", lambda: nets.DenseNetBC(4, 6), ["densenet"] * 2, 16),
    ("fractal_pair", nets.FractalNet, ["fractalnet"] * 2, 16),
    ("mobilenetv2", nets.MobileNetV2Stack, ["resnet"] * 2, 16),
]
SLOW = [
    pytest.param(
        "resnet56", lambda: nets.CifarResNet(9), ["resnet"] * 3, 32, marks=pytest.mark.slow
    )
]


def _randomised(module: torch.nn.Module) -> torch.nn.Module:
    """The module in float64 eval mode with non-trivial batch-norm statistics."""
    g = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(1 + 0.2 * torch.rand(m.num_features, generator=g))
            m.weight.data.copy_(1 + 0.1 * torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(m.num_features, generator=g))
    return module.double().eval()


def _lifted(make, size):
    module = _randomised(make())
    x = torch.randn(
        2, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    return module, x, lift(module, x)


def _compiled(lifted):
    ir = for_training(lifted.network)
    gm = free_module(ir).double().eval()
    gm.load_state_dict(lifted.weights)
    return ir, gm


@pytest.mark.parametrize("name,make,families,size", CASES + SLOW)
def test_lifted_network_computes_the_module(name, make, families, size):
    module, x, lifted = _lifted(make, size)
    ir, gm = _compiled(lifted)
    with torch.no_grad():
        assert torch.allclose(gm(x), module(x), rtol=1e-9, atol=1e-9)
    assert [ir.patterns[b.name].family for b in ir.blocks] == families
    params, macs = totals(ir)
    assert params == sum(p.numel() for p in module.parameters())
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(x[:1])
    assert 2 * macs == counter.get_total_flops()


@pytest.mark.parametrize("name,make,families,size", CASES)
def test_lifted_text_is_canonical_and_uses_templates(name, make, families, size):
    _, _, lifted = _lifted(make, size)
    assert printer.module(parse(lifted.text)) == lifted.text  # `smashc fmt --check` holds
    uses = [line.strip() for line in lifted.text.splitlines() if line.strip().startswith("block")]
    assert len(uses) == len(families) and all(" = " in u for u in uses), lifted.text


def test_the_lifted_program_compiles_like_its_network():
    from smashc.ir import dump

    _, _, lifted = _lifted(nets.FractalNet, 16)
    assert dump(for_training(lifted.program)) == dump(for_training(lifted.network))


def test_module_paths_are_comments():
    _, _, lifted = _lifted(lambda: nets.CifarResNet(3), 32)
    text = lifted.text
    assert "    # layer1\n    block layer1 = resnet_postact_block(3, 16)\n" in text
    assert "    # layer2.0\n    transition {" in text


@pytest.mark.parametrize("name,make,families,size", CASES)
def test_lifting_the_compiled_package_is_a_fixed_point(name, make, families, size, tmp_path):
    module, x, lifted = _lifted(make, size)
    ir, gm = _compiled(lifted)
    export(gm.float(), ir, tmp_path / "pkg")
    package = load_package(tmp_path / "pkg").double().eval()
    again = lift(package, x, name=lifted.network.name)
    assert parse(again.text) == parse(lifted.text)  # the same program (comments aside)
    _, gm2 = _compiled(again)
    with torch.no_grad():
        assert torch.allclose(gm2(x), module(x), rtol=1e-9, atol=1e-9)


NON_SMASH = ["densenet_bc", "fractalnet", "mobilenetv2_cifar", "resnet20", "wrn_16_4"]


@pytest.mark.parametrize("example", NON_SMASH)
def test_lifting_an_example_compiled_module_gives_its_ir_back(example):
    from smashc.backends.fx import to_fx
    from smashc.ir import dump
    from smashc.pipeline import compile_file

    ir = compile_file(EXAMPLES / f"{example}.smash")
    gm = to_fx(ir).eval()
    lifted = lift(gm, torch.randn(2, *ir.input), name=ir.name)
    assert dump(for_training(lifted.network)) == dump(ir)


@pytest.mark.parametrize("example", ["smash_a", "smash_b", "smash_c"])
def test_smash_space_examples_are_not_lifted_yet(example):
    """Their blocks' inputs fill several banks (channel slices) and their SMASH ops are
    grids of convs: the lifter reports the slice instead of guessing."""
    from smashc.backends.fx import to_fx
    from smashc.diagnostics import SmashError
    from smashc.pipeline import compile_file

    ir = compile_file(EXAMPLES / f"{example}.smash")
    with pytest.raises(SmashError, match=r"E0801.*indexing"):
        lift(to_fx(ir).eval(), torch.randn(2, *ir.input), name=ir.name)
