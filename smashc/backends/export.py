"""Writes a compiled GraphModule as a plain Python package (code + weights) that needs only torch.

No pickles: the module's constructor is generated source (``nn.Conv2d(...)`` reprs), its
forward is ``gm.code``, and the weights are a ``state_dict`` loaded with ``weights_only=True``.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import uuid
from pathlib import Path

import torch
from torch import fx, nn

_SAFE = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)


def _imports(gm: fx.GraphModule) -> list[str]:
    lines = {"import torch"}
    for name, obj in gm.graph.python_code("self").globals.items():
        if name in (
            "fx_pytree",
            "pytree",
        ):  # fx's codegen always lists them; forward never uses them
            continue
        if isinstance(obj, types.ModuleType):
            lines.add(
                f"import {obj.__name__}"
                if obj.__name__ == name
                else f"import {obj.__name__} as {name}"
            )
        elif name not in ("torch", "inf", "nan", "NoneType", "device"):
            mod = getattr(obj, "__module__", None)
            if mod:
                lines.add(f"from {mod} import {obj.__name__} as {name}")
    return sorted(lines)


def module_source(gm: fx.GraphModule, class_name: str, doc: str) -> str:
    """Source of an ``nn.Module`` subclass equivalent to ``gm`` (parameters uninitialised)."""
    body = []
    for name, mod in gm.named_children():
        if not isinstance(mod, _SAFE):
            raise TypeError(f"cannot export submodule {name} of type {type(mod).__name__}")
        body.append(f"        self.{name} = torch.nn.{mod!r}")
    for name, buf in gm.named_buffers(recurse=False):
        body.append(f"        self.register_buffer({name!r}, torch.empty({list(buf.shape)}))")
    for name, p in gm.named_parameters(recurse=False):
        body.append(f"        self.{name} = torch.nn.Parameter(torch.empty({list(p.shape)}))")
    code = gm.code.strip("\n")
    forward = "\n".join(("    " + line) if line else "" for line in code.splitlines())
    return "\n".join(
        [
            f'"""{doc}"""',
            "",
            *_imports(gm),
            "",
            "",
            f"class {class_name}(torch.nn.Module):",
            "    def __init__(self):",
            "        super().__init__()",
            *(body or ["        pass"]),
            "",
            forward,
            "",
        ]
    )


_INIT = '''"""{doc}"""

from pathlib import Path

import torch

from .module import {cls}

__all__ = ["{cls}", "load"]


def load(map_location="cpu") -> {cls}:
    """The network with its exported weights (loaded with weights_only=True)."""
    model = {cls}()
    path = Path(__file__).with_name("weights.pt")
    model.load_state_dict(torch.load(path, map_location=map_location, weights_only=True))
    return model
'''


def export_package(
    gm: fx.GraphModule, outdir: str | Path, class_name: str, source: str = ""
) -> Path:
    """Writes ``__init__.py``, ``module.py``, ``weights.pt`` (and ``ir.txt``, the IR dump)."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    doc = f"{class_name}, compiled by smashc; needs only torch."
    (out / "module.py").write_text(module_source(gm, class_name, doc), encoding="utf-8")
    (out / "__init__.py").write_text(_INIT.format(doc=doc, cls=class_name), encoding="utf-8")
    torch.save(gm.state_dict(), out / "weights.pt")
    if source:
        (out / "ir.txt").write_text(source, encoding="utf-8")
    return out


def load(path: str | Path, map_location: str = "cpu") -> nn.Module:
    """Imports an exported package from ``path`` and returns its network with weights."""
    path = Path(path).resolve()
    missing = [f for f in ("__init__.py", "module.py", "weights.pt") if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{path} holds no exported smashc network: {', '.join(missing)} missing "
            "(`smashc compile FILE -o DIR` and `smashc train` write one)"
        )
    name = f"smashc_exported_{uuid.uuid4().hex}"  # a fresh name: a re-export is re-read
    spec = importlib.util.spec_from_file_location(
        name, path / "__init__.py", submodule_search_locations=[str(path)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not an exported smashc package")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module.load(map_location)
