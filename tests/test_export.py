"""Exported packages (``smashc compile F -o OUTDIR``): torch only, no pickles, same outputs.

The package is imported in a fresh ``python -I`` with smashc made unimportable, and its
output on a saved input must equal the in-process GraphModule's with the same weights.
"""

from __future__ import annotations

import keyword
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from smash_space import (  # noqa: F401 (one_thread: autouse)
    CORNERS,
    EXAMPLES,
    example_files,
    example_ir,
    one_thread,
    sampled,
)

import smashc
from smashc.backends.export import export_package, module_source
from smashc.backends.fx import class_name, to_fx
from smashc.cli import main
from smashc.diagnostics import SmashError
from smashc.ir import dump
from smashc.ir.graph import IRGraph
from smashc.pipeline import compile_text

RESNET20 = EXAMPLES / "resnet20.smash"
FILES = example_files()

# Runs in a fresh interpreter: only the package's folder is added to sys.path, and any
# attempt to import smashc fails loudly.
FRESH = textwrap.dedent(
    """
    import sys
    folder, package = sys.argv[1], sys.argv[2]
    sys.path.insert(0, folder)

    class NoSmashc:
        def find_spec(self, name, path=None, target=None):
            if name == "smashc" or name.startswith("smashc."):
                raise ImportError("the exported package must not need smashc")
            return None

    sys.meta_path.insert(0, NoSmashc())
    import importlib
    from pathlib import Path

    import torch

    load = importlib.import_module(package).load
    assert "smashc" not in sys.modules, sorted(m for m in sys.modules if "smashc" in m)
    model = load().eval()
    x = torch.load(Path(folder) / "x.pt", weights_only=True)
    with torch.no_grad():
        y = model(x)
    torch.save(y, Path(folder) / "y.pt")
    print("ok", type(model).__name__, tuple(y.shape))
    """
)


def _exe() -> str:
    exe = Path(sys.executable).with_name("smashc")
    return str(exe) if exe.exists() else "smashc"


def _reference(ir: IRGraph, package: Path) -> torch.fx.GraphModule:
    """The in-process GraphModule carrying the package's weights."""
    gm = to_fx(ir)
    state = torch.load(package / "weights.pt", weights_only=True)
    gm.load_state_dict(state)
    return gm.eval()


def _input(ir: IRGraph, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, *ir.input, generator=g)


def _assert_no_pickled_modules(package: Path) -> None:
    pts = sorted(package.rglob("*.pt"))
    assert pts, "no weights in the package"
    for pt in pts:
        obj = torch.load(pt, weights_only=True)  # raises on a pickled nn.Module
        assert isinstance(obj, dict), (pt, type(obj))
        assert all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


@pytest.mark.skipif(not RESNET20.exists(), reason="examples/resnet20.smash not written yet")
def test_resnet20_package_runs_in_a_fresh_interpreter(tmp_path):
    package = tmp_path / "resnet20pkg"
    proc = subprocess.run(
        [_exe(), "compile", str(RESNET20), "-o", str(package)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in package.iterdir()} >= {"__init__.py", "module.py", "weights.pt"}
    _assert_no_pickled_modules(package)
    for py in package.glob("*.py"):
        assert "smashc" not in "\n".join(
            line for line in py.read_text(encoding="utf-8").splitlines() if "import" in line
        ), py

    ir = example_ir(RESNET20)
    x = _input(ir)
    torch.save(x, tmp_path / "x.pt")
    fresh = subprocess.run(
        [sys.executable, "-I", "-c", FRESH, str(tmp_path), package.name],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.startswith(f"ok {class_name(ir.name)} (2, {ir.classes})"), fresh.stdout
    y = torch.load(tmp_path / "y.pt", weights_only=True)
    with torch.no_grad():
        expected = _reference(ir, package)(x)
        loaded = smashc.load(package).eval()(x)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loaded, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(y[0], y[1])


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_example_exports_and_loads(tmp_path, path, capsys):
    package = tmp_path / f"{path.stem}_pkg"
    assert main(["compile", str(path), "-o", str(package)]) == 0
    assert "wrote" in capsys.readouterr().err
    _assert_no_pickled_modules(package)
    ir = example_ir(path)
    assert (package / "ir.txt").read_text(encoding="utf-8") == dump(ir)
    model = smashc.load(package)
    assert type(model).__name__ == class_name(ir.name)
    x = _input(ir, 1)
    with torch.no_grad():
        for train in (False, True):  # BN on running statistics, then on the batch
            expected = _reference(ir, package).train(train)(x)
            torch.testing.assert_close(model.train(train)(x), expected, rtol=1e-5, atol=1e-6)


def test_sampled_smash_net_exports_and_loads(tmp_path):
    """SMASH ops export as plain Conv2d submodules ({op}_w1x1, {op}_c0, ...)."""
    s = sampled(17, 1.0, True)
    torch.manual_seed(0)
    gm = to_fx(s.ir).eval()
    package = export_package(gm, tmp_path / "sampled_pkg", class_name(s.ir.name), dump(s.ir))
    _assert_no_pickled_modules(package)
    model = smashc.load(package).eval()
    assert set(model.state_dict()) == set(gm.state_dict())
    x = _input(s.ir, 2)
    with torch.no_grad():
        torch.testing.assert_close(model(x), gm(x), rtol=1e-5, atol=1e-6)


def test_corner_case_net_exports_and_loads(tmp_path):
    """Every op kind and argument (leaky_relu slope, chanpad, maxpool padding, empty banks,
    sums, slices, flattened head values) survives the generated source."""
    ir = compile_text(CORNERS)
    torch.manual_seed(0)
    gm = to_fx(ir)
    package = export_package(gm, tmp_path / "corners_pkg", class_name(ir.name), dump(ir))
    _assert_no_pickled_modules(package)
    model = smashc.load(package)
    x = _input(ir, 3)
    with torch.no_grad():
        for train in (False, True):
            torch.testing.assert_close(
                model.train(train)(x), gm.train(train)(x), rtol=1e-5, atol=1e-6
            )


def test_load_twice_gives_independent_models(tmp_path):
    s = sampled(18, 0.0, False)
    torch.manual_seed(0)
    gm = to_fx(s.ir)
    package = export_package(gm, tmp_path / "twice", class_name(s.ir.name))
    a, b = smashc.load(package), smashc.load(tmp_path / "twice")
    assert a is not b
    with torch.no_grad():
        next(a.parameters()).add_(1.0)
    assert not torch.equal(next(a.parameters()), next(b.parameters()))
    assert not (package / "ir.txt").exists()


def test_module_source_refuses_unknown_submodules():
    s = sampled(18, 0.0, False)
    gm = to_fx(s.ir)
    gm.add_module("extra", torch.nn.Dropout())
    with pytest.raises(TypeError, match="extra"):
        module_source(gm, "Net", "doc")


def test_load_after_reexport_to_the_same_folder(tmp_path):
    a = "network a { input 3 x 8 x 8 classes 4 stem { conv(out=8) } head { gap -> linear(out=4) } }"
    b = a.replace("conv(out=8) }", "conv(out=8) -> relu6 }")  # same weights, another forward
    package = tmp_path / "pkg"
    export_package(to_fx(compile_text(a)), package, "A")
    smashc.load(package)
    gm = to_fx(compile_text(b)).eval()
    export_package(gm, package, "A")
    model = smashc.load(package).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), gm(x))


def test_load_names_what_a_folder_is_missing(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"no exported smashc network: __init__\.py, module"
    ):
        smashc.load(tmp_path)
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "module.py").write_text("")
    with pytest.raises(FileNotFoundError, match=r"network: weights\.pt missing"):
        smashc.load(tmp_path)


# Names the generated package must survive as the network's, a block's and a layer's name:
# every Python keyword (soft ones too), the builtins and module-level names the generated
# code uses, and names that Python mangles or that clash once capitalised.
HOSTILE_NAMES = sorted(
    set(keyword.kwlist + keyword.softkwlist)
    | {"path", "Path", "torch", "load", "from_state", "read_weights", "hashlib", "io"}
    | {"self", "x", "super", "object", "getattr", "print", "operator", "none_type"}
    | {"float", "int", "len", "Module", "nn", "fx", "inf", "nan", "device", "_", "__init__"}
    | {"__all__", "__name__", "WEIGHTS_SHA256", "weights_bytes"}
)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_package_of_a_network_named_like_python(name, tmp_path):
    text = f"""network {name} {{
        input 3 x 8 x 8
        classes 2
        stem {{ conv(out=8) -> bn -> relu }}
        block {name} {{
            banks 1 x 8, 1 x 8
            layer {name} read 0 write 1 = conv(out=8) -> relu
            output 1
        }}
        head {{ gap -> linear(out=2) }}
    }}"""
    gm = to_fx(compile_text(text)).eval()
    package = export_package(gm, tmp_path / "pkg", class_name(name))
    model = smashc.load(package).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), gm(x), rtol=0, atol=0)
    assert not keyword.iskeyword(type(model).__name__)


_TINY = "network t { input 3 x 8 x 8 classes 2 stem { conv(out=4) } head { gap -> linear(out=2) } }"


def _tiny_package(tmp_path: Path, nan: bool = False) -> Path:
    gm = to_fx(compile_text(_TINY))
    if nan:
        with torch.no_grad():
            next(gm.parameters())[0] = float("nan")
    return export_package(gm, tmp_path / "pkg", "T")


def _load_fails(package: Path, message: str) -> None:
    weights = package / "weights.pt"
    with pytest.raises(SmashError) as info:
        smashc.load(package)
    headline = info.value.diagnostics[0].headline()
    assert headline == f"{weights}:1:1: error[E0503]: {message}", headline


def test_load_refuses_truncated_weights(tmp_path):
    package = _tiny_package(tmp_path)
    weights = package / "weights.pt"
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[: size // 2])
    _load_fails(package, f"is damaged: {size // 2} bytes where {size} were exported (truncated)")


def test_load_refuses_changed_weights(tmp_path):
    package = _tiny_package(tmp_path)
    weights = package / "weights.pt"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    _load_fails(package, "is damaged or replaced: its SHA-256 is not the exported one")


def test_load_refuses_symlinked_weights(tmp_path):
    package = _tiny_package(tmp_path)
    weights = package / "weights.pt"
    weights.rename(tmp_path / "elsewhere.pt")
    weights.symlink_to(tmp_path / "elsewhere.pt")
    _load_fails(package, "is a symlink; the weights must be the exported file itself")
    export_package(to_fx(compile_text(_TINY)), package, "T")  # a re-export replaces the link
    assert not weights.is_symlink() and (tmp_path / "elsewhere.pt").exists()
    smashc.load(package)


def test_load_refuses_nan_weights(tmp_path):
    package = _tiny_package(tmp_path, nan=True)
    _load_fails(package, "holds NaN or infinite values in stem_0conv.weight")


def test_the_package_checks_its_weights_without_smashc(tmp_path):
    """The package's own ``load`` (what a user without smashc calls) makes the same checks."""
    import importlib

    package = _tiny_package(tmp_path)
    weights = package / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:-1])
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(ValueError, match=r"weights\.pt is damaged: \d+ bytes where"):
            importlib.import_module("pkg").load()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("pkg", None)
        sys.modules.pop("pkg.module", None)
