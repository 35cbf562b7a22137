"""The interop commands: ``smashc lift`` (with its diagnostics' goldens), ``compile
--weights`` and ``compile --emit onnx``, each against what the module itself computes."""

from __future__ import annotations

import shutil

import lift_nets as nets
import numpy as np
import pytest
import torch
from support import EXAMPLES, ROOT, check_golden

from smashc.backends.export import load as load_package
from smashc.cli import main

DIAG = ROOT / "tests" / "lift_diagnostics"
CASES = sorted(DIAG.glob("*.py"))
EXPECTED_CODES = {"attention": ["E0801", "E0801", "E0801"], "data_dependent": ["E0802"]}


def test_every_case_has_expected_codes():
    assert sorted(c.stem for c in CASES) == sorted(EXPECTED_CODES)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_lift_diagnostic_golden(case, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    rc = main(["lift", f"tests/lift_diagnostics/{case.name}:Net", "--input", "3x8x8"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    codes = [line.split("error[")[1][:5] for line in err.splitlines() if "error[" in line]
    assert codes == EXPECTED_CODES[case.stem]
    check_golden(case.with_suffix(".expected"), err)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    shutil.copy(ROOT / "tests" / "lift_nets.py", tmp_path / "model.py")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _reference(cls: str, **kw) -> torch.nn.Module:
    """The same module the command builds, with the same weights (seeded before both)."""
    torch.manual_seed(0)
    return getattr(nets, cls)(**kw).eval()


def test_lift_compile_with_weights_computes_the_module(workdir, capsys):
    torch.manual_seed(0)
    rc = main(["lift", "model.py:CifarResNet", "--arg", "n=2", "-o", "r.smash", "--weights"])
    assert rc == 0, capsys.readouterr().err
    assert main(["fmt", "--check", "r.smash"]) == 0
    assert main(["compile", "r.smash", "-o", "pkg", "--weights", "r.pt"]) == 0
    module = _reference("CifarResNet", n=2)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(load_package(workdir / "pkg").eval()(x), module(x), atol=1e-5)


def test_lift_onnx_export_computes_the_module(workdir, capsys):
    ort = pytest.importorskip(
        "onnxruntime", reason="onnxruntime is not installed (pip install onnxruntime)"
    )
    torch.manual_seed(0)
    assert (
        main(["lift", "model.py:DenseNetBC", "--input", "3x16x16", "-o", "d.smash", "--weights"])
        == 0
    )
    assert main(["compile", "d.smash", "--emit", "onnx", "-o", "d.onnx", "--weights", "d.pt"]) == 0
    module = _reference("DenseNetBC")
    x = torch.randn(2, 3, 16, 16)
    session = ort.InferenceSession("d.onnx", providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        assert np.allclose(got, module(x).numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "args,message",
    [
        (["lift", "model.py:Nope"], "error[E0805]: model.py defines no 'Nope'"),
        (["lift", "missing.py:Net"], "missing.py:1:1: error[E0805]: no such model file"),
        (["lift", "model.py:CifarResNet", "--input", "3x32"], "--input expects CxHxW"),
        (["lift", "model.py:CifarResNet", "--arg", "n"], "--arg expects NAME=VALUE"),
        (
            ["lift", "model.py:CifarResNet", "--arg", "n=x"],
            "error[E0806]: building CifarResNet(n=x) failed",
        ),
        (
            ["compile", str(EXAMPLES / "resnet20.smash"), "--emit", "onnx"],
            "--emit onnx needs -o FILE.onnx",
        ),
        (
            ["compile", str(EXAMPLES / "resnet20.smash"), "-o", "p", "--weights", "no.pt"],
            "error[E0812]: no weights file here",
        ),
    ],
)
def test_interop_user_errors_are_diagnostics(workdir, capsys, args, message):
    assert main(args) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_weights_of_another_network_are_refused(workdir, capsys):
    assert main(["compile", str(EXAMPLES / "resnet20.smash"), "-o", "pkg"]) == 0
    rc = main(
        [
            "compile",
            str(EXAMPLES / "wrn_16_4.smash"),
            "--emit",
            "onnx",
            "-o",
            "w.onnx",
            "--weights",
            "pkg",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "error[E0813]: these weights do not fit the network: missing" in err


BRANCHES = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, 2, 1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(11, 10)

    def forward(self, x):
        x = torch.cat([self.down(x), self.pool(x)], 1)
        return self.fc(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))
"""


def test_a_concatenation_that_changes_resolution_is_located(workdir, capsys):
    (workdir / "branches.py").write_text(BRANCHES, encoding="utf-8")
    assert main(["lift", "branches.py:Net", "--input", "3x8x8"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("branches.py:14:9: error[E0804]: (the model): a concatenation")
    assert "x = torch.cat([self.down(x), self.pool(x)], 1)" in err


def test_an_input_the_module_does_not_take_is_located(workdir, capsys):
    assert main(["lift", "model.py:CifarResNet", "--input", "1x32x32"]) == 1
    err = capsys.readouterr().err
    assert "error[E0803]: the module does not run on an input of shape (2, 1, 32, 32)" in err
    assert "Traceback" not in err
