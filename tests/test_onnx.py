"""The ONNX backend: every example's ONNX model computes what its fx module computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support import EXAMPLES

from smashc import ops
from smashc.backends.fx import to_fx
from smashc.pipeline import compile_file, compile_text

ort = pytest.importorskip(
    "onnxruntime", reason="onnxruntime is not installed (pip install onnxruntime)"
)
onnx_backend = pytest.importorskip(
    "smashc.backends.onnx", reason="onnx is not installed (pip install onnx)"
)


def _run(model, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": x.numpy()})
    return y


def _trained_like(gm: torch.nn.Module) -> torch.nn.Module:
    """Batch-norm statistics and affine weights away from their initial values."""
    g = torch.Generator().manual_seed(0)
    for m in gm.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.2 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.weight.data.copy_(1 + 0.2 * torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(0.2 * torch.randn(m.num_features, generator=g))
    return gm.eval()


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.smash")), ids=lambda p: p.stem)
def test_onnx_model_computes_the_fx_module(path):
    ir = compile_file(path)
    torch.manual_seed(0)
    gm = _trained_like(to_fx(ir))
    model = onnx_backend.to_onnx(ir, gm.state_dict())  # checked by onnx.checker inside
    x = torch.randn(3, *ir.input, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = gm(x).numpy()
    got = _run(model, x)
    assert got.shape == want.shape == (3, ir.classes)
    assert np.allclose(got, want, rtol=1e-4, atol=1e-4)
    assert not np.allclose(want, 0)


def test_onnx_covers_every_op_and_zero_banks():
    """Every activation and pool, chanpad, a biased conv and a linear inside the network."""
    src = """network ops {
        input 3 x 12 x 12
        classes 5
        stem { conv(out=8, stride=2, bias=true) -> bn -> leaky_relu(slope=0.2) }
        block b {
            banks 2 x 8
            layer read 0 write 1 = relu6 -> avgpool(kernel=3, stride=1, padding=1) -> conv(out=8)
            layer read 0, 1 write 1 = maxpool(kernel=3, stride=1, padding=1)
                -> conv(out=8, kernel=1)
        }
        transition { chanpad(out=20) -> gap -> linear(out=12) -> relu }
        head { linear(out=classes, bias=false) }
    }"""
    ir = compile_text(src)
    torch.manual_seed(0)
    gm = _trained_like(to_fx(ir))
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        want = gm(x).numpy()
    assert np.allclose(_run(onnx_backend.to_onnx(ir, gm.state_dict()), x), want, atol=1e-5)


def test_zero_bank_in_a_block_output():
    """A bank no layer writes (the front end refuses one; built architectures may have it)."""
    from smashc import arch
    from smashc.compiler import for_training

    block = arch.Block("b", (8, 8), (arch.Layer("b_l0", (0,), (0,), (arch.Conv(8),)),), (0, 1))
    head = arch.Stage("head", "head", (arch.GlobalAvgPool(), arch.Linear(4)))
    stem = arch.Stage("stem", "stem", (arch.Conv(8),))
    ir = for_training(arch.Network("z", (3, 6, 6), 4, (stem, block, head)))
    assert any(ir.graph.in_degree(n) == 0 and n != "input" for n in ir.graph)  # the zero bank
    torch.manual_seed(0)
    gm = to_fx(ir).eval()
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        want = gm(x).numpy()
    assert np.allclose(_run(onnx_backend.to_onnx(ir, gm.state_dict()), x), want, atol=1e-5)


@pytest.mark.parametrize("name", [n for n in ops.names() if ops.lookup(n).onnx is not None])
def test_every_op_with_an_onnx_lowering(name):
    """Each registry entry's ``example`` (the one tests/test_ops.py compiles) in ONNX."""
    from test_ops import network_text

    ir = compile_text(network_text(ops.lookup(name).example))
    torch.manual_seed(0)
    gm = _trained_like(to_fx(ir))
    x = torch.randn(2, *ir.input)
    with torch.no_grad():
        want = gm(x).numpy()
    assert np.allclose(_run(onnx_backend.to_onnx(ir, gm.state_dict()), x), want, atol=1e-5)


def test_every_built_in_op_has_an_onnx_lowering():
    assert [n for n in ops.names() if ops.lookup(n).onnx is None] == []


def test_op_without_onnx_lowering_is_a_diagnostic():
    from dataclasses import replace

    from smashc.diagnostics import SmashError
    from smashc.ops import registry

    relu = registry.lookup("relu")
    registry.unregister("relu")
    registry.register(replace(relu, onnx=None))
    try:
        ir = compile_text(
            "network n { input 3 x 4 x 4\n classes 2\n stem { conv(out=4) -> relu }\n"
            " head { gap -> linear(out=2) } }"
        )
        with pytest.raises(SmashError, match=r"E0810.*op 'relu' has no ONNX lowering"):
            onnx_backend.to_onnx(ir, to_fx(ir).state_dict())
    finally:
        registry.unregister("relu")
        registry.register(relu)
    assert ops.lookup("relu") is relu
