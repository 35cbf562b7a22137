"""The CUDA path, where a GPU is: ``pytest -m gpu tests/test_gpu.py`` (skipped by default,
and without a CUDA device).

* every example's compiled GraphModule (free weights), moved to the GPU, computes what the
  reference interpreter computes on the CPU (float64);
* so does the one-shot model's executor (``GraphRunner`` over the HyperNet-weight graph)
  for the SMASH-space examples;
* a SMASH training step on the GPU gives the CPU's logits and gradients (float32, TF32 off);
* in bfloat16 autocast a step runs to a finite loss and finite gradients;
* ``smashc search --preset smoke --device cuda`` runs end to end (on a GPU the next
  architecture is compiled in a background thread), and ``smashc train`` trains its winner
  there and exports a model that loads on the CPU.

``SMASHC_TEST_DEVICE=cpu pytest -m gpu tests/test_gpu.py`` runs the same code on the CPU,
to check the tests themselves on a machine without a GPU.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from smash_space import (
    encoding_config,
    example_files,
    example_ir,
    example_net,
    hyper_store,
    load_store_into_fx,
    oracle_input,
    oracle_store,
    random_hypernet_output,
    randomise_shared,
)
from support import exported_output_shape, ok, smashc

from smashc.backends.encoding import encode, op_weights
from smashc.backends.fx import to_fx
from smashc.backends.fxrun import GraphRunner
from smashc.backends.hyperfx import SharedWeights, hyper_graph
from smashc.backends.interpreter import run_network
from smashc.runtime import precision
from smashc.runtime.hypernet import HyperNetConfig
from smashc.runtime.oneshot import OneShot
from smashc.runtime.presets import PRESETS
from smashc.runtime.sampler import Sampler

DEVICE = torch.device(os.environ.get("SMASHC_TEST_DEVICE", "cuda"))
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="no CUDA device"
    ),
]
EXAMPLES = example_files()
SMASH_EXAMPLES = [p for p in EXAMPLES if p.name.startswith("smash_")]
SPACE = replace(PRESETS["smoke"].space, input=(3, 16, 16), classes=10)
HYPER = HyperNetConfig(stem_channels=4, blocks=(2, 2), growth=4)


@pytest.fixture(autouse=True)
def _no_tf32():
    """Full float32 products on the GPU, so that it can be compared with the CPU."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_module_on_the_device_matches_the_oracle(path):
    ir = example_ir(path)
    gm = to_fx(ir).double().eval()
    store = oracle_store(ir, 1)
    load_store_into_fx(gm, ir, store)
    x = oracle_input(ir, 1)
    with torch.no_grad():
        y = gm.to(DEVICE)(x.to(DEVICE))
        expected = run_network(example_net(path), x, store)
    assert y.device.type == DEVICE.type and y.shape == (2, ir.classes)
    assert torch.allclose(y.cpu(), expected), (y.cpu() - expected).abs().max()
    assert not torch.allclose(y[0], y[1])


@pytest.mark.parametrize("path", SMASH_EXAMPLES, ids=lambda p: p.stem)
def test_one_shot_executor_on_the_device_matches_the_oracle(path):
    ir = example_ir(path)
    cfg = encoding_config(ir)
    torch.manual_seed(0)
    shared = randomise_shared(SharedWeights(cfg).double().eval())
    enc = encode(ir, cfg)
    mats = op_weights(random_hypernet_output(enc), enc)
    x = oracle_input(ir)
    expected = run_network(example_net(path), x, hyper_store(ir, shared, enc, mats))
    net = GraphRunner(*hyper_graph(ir, shared.to(DEVICE), enc)).eval()
    with torch.no_grad():
        y = net(x.to(DEVICE), [m.to(DEVICE) for m in mats])
    assert y.device.type == DEVICE.type
    assert torch.allclose(y.cpu(), expected), (y.cpu() - expected).abs().max()


def _step(model: OneShot, net, x, y, z, prec: str = "fp32"):
    """One SMASH forward and backward of the network ``net`` on ``model``'s device: logits
    and named gradients."""
    device = next(model.parameters()).device
    compiled = model.compile(net)
    model.train()
    with precision.autocast(prec, device):
        logits = model(x.to(device), compiled, z.to(device))
    F.cross_entropy(logits.float(), y.to(device)).backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return logits, grads


@pytest.mark.parametrize("progress", [0.0, 1.0], ids=["early", "late"])
def test_smash_step_on_the_device_matches_the_cpu(progress):
    torch.manual_seed(0)
    cpu = OneShot(SPACE, HYPER)
    dev = copy.deepcopy(cpu).to(DEVICE)
    net = Sampler(SPACE, 3).sample(progress)
    x, y = torch.randn(8, *SPACE.input), torch.arange(8) % SPACE.classes
    z = torch.randn(1, 1, *cpu.compile(net).enc.tensor.shape[2:])
    logits, grads = _step(cpu, net, x, y, z)
    logits_d, grads_d = _step(dev, net, x, y, z)
    assert logits_d.device.type == DEVICE.type
    assert torch.allclose(logits_d.cpu(), logits, rtol=1e-4, atol=1e-5)
    assert grads_d.keys() == grads.keys()
    assert any(n.startswith("hypernet.") for n in grads)
    assert any(n.startswith("shared.convs.") for n in grads)
    for name, g in grads.items():
        assert torch.allclose(grads_d[name].cpu(), g, rtol=1e-3, atol=1e-5), name


def test_bf16_step_on_the_device_is_finite():
    torch.manual_seed(0)
    model = OneShot(SPACE, HYPER).to(DEVICE)
    net = Sampler(SPACE, 4).sample(1.0)
    x, y = torch.randn(8, *SPACE.input), torch.arange(8) % SPACE.classes
    z = torch.randn(1, 1, *model.compile(net).enc.tensor.shape[2:])
    logits, grads = _step(model, net, x, y, z, "bf16")
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()
    assert grads and all(torch.isfinite(g).all() for g in grads.values())


def test_search_and_train_run_on_the_device(tmp_path):
    out = tmp_path / "run"
    ok(smashc("search", "--preset", "smoke", "--device", DEVICE.type, "--out", out, timeout=600))
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["device"] == DEVICE.type
    assert cfg["precision"] == precision.resolve("auto", DEVICE)
    rows = (out / "ranking.csv").read_text().splitlines()
    assert len(rows) == 1 + cfg["score"]["archs"] + cfg["score"]["refine"]
    losses = [json.loads(line)["loss"] for line in (out / "train.jsonl").read_text().splitlines()]
    assert losses and all(math.isfinite(v) for v in losses)

    arch = tmp_path / "winner.smash"
    shutil.copyfile(out / "top" / "rank1.smash", arch)
    trained = tmp_path / "trained"
    ok(smashc("train", arch, "--preset", "smoke", "--epochs", "1", "--device", DEVICE.type,
              "--out", trained, timeout=600))  # fmt: skip
    final = json.loads((trained / "final.json").read_text())
    assert 0 <= final["test_acc"] <= 1
    assert exported_output_shape(trained, (3, 16, 16)) == "torch.Size([1, 10])"
