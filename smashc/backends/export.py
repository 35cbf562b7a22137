"""Writes a compiled GraphModule as a plain Python package (code + weights) that needs only torch.

No pickles: the module's constructor is generated source (``nn.Conv2d(...)`` reprs), its
forward is ``gm.code``, and the weights are a ``state_dict`` loaded with ``weights_only=True``.
``__init__.py`` records the size and SHA-256 of ``weights.pt``; loading (the package's own
``load`` and ``smashc.load``, which reports E0503) refuses a symlinked, truncated or changed
file and non-finite weights. The class is named after the network, made safe where that
name is a Python keyword or builtin or one the generated code uses.
"""

from __future__ import annotations

import builtins
import hashlib
import importlib.util
import io
import keyword
import pickle
import sys
import types
import uuid
from pathlib import Path

import torch
from torch import fx, nn

from smashc.diagnostics import SmashError, Span, error

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


# names the generated __init__.py binds at module level besides the class
_INIT_NAMES = frozenset(
    "Path torch io hashlib load from_state read_weights WEIGHTS_BYTES WEIGHTS_SHA256".split()
    + ["__all__"]
)


def safe_class_name(wanted: str, gm: fx.GraphModule) -> str:
    """``wanted``, or ``wanted`` + "Net" (repeated) where it is not an identifier, is a
    Python keyword (soft ones too) or builtin, or a name the generated modules use: the
    network's name is the user's and must not break the package (``None``, ``Path``)."""
    taken = set(gm.graph.python_code("self").globals) | _INIT_NAMES
    out = wanted if wanted.isidentifier() else "Net"
    while (
        keyword.iskeyword(out)
        or keyword.issoftkeyword(out)
        or hasattr(builtins, out)
        or out in taken
        or out.startswith("__")
    ):
        out += "Net"
    return out


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

import hashlib
import io
from pathlib import Path

import torch

from .module import {cls}

__all__ = ["{cls}", "from_state", "load", "read_weights"]

# weights.pt as written at export: its size in bytes and its SHA-256
WEIGHTS_BYTES = {size}
WEIGHTS_SHA256 = "{sha256}"


def read_weights(path: Path, map_location="cpu") -> dict:
    """The state dict in ``path``, refused (ValueError, saying what is wrong) unless it is
    a regular file with the size and checksum written at export and finite values."""
    if path.is_symlink():
        raise ValueError(f"{{path}} is a symlink; the weights must be the exported file itself")
    if not path.is_file():
        raise ValueError(f"{{path}} is missing or not a regular file")
    data = path.read_bytes()
    if len(data) != WEIGHTS_BYTES:
        raise ValueError(
            f"{{path}} is damaged: {{len(data)}} bytes where {{WEIGHTS_BYTES}} were exported"
            + (" (truncated)" if len(data) < WEIGHTS_BYTES else "")
        )
    if hashlib.sha256(data).hexdigest() != WEIGHTS_SHA256:
        raise ValueError(f"{{path}} is damaged or replaced: its SHA-256 is not the exported one")
    state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"{{path}} holds NaN or infinite values in {{', '.join(bad)}}")
    return state


def from_state(state: dict) -> {cls}:
    """The network carrying ``state`` (what read_weights returns)."""
    model = {cls}()
    model.load_state_dict(state)
    return model


def load(map_location="cpu") -> {cls}:
    """The network with its exported weights (loaded with weights_only=True, checked by
    read_weights)."""
    return from_state(read_weights(Path(__file__).with_name("weights.pt"), map_location))
'''


def export_package(
    gm: fx.GraphModule, outdir: str | Path, class_name: str, source: str = ""
) -> Path:
    """Writes ``__init__.py``, ``module.py``, ``weights.pt`` (and ``ir.txt``, the IR dump)."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    class_name = safe_class_name(class_name, gm)
    doc = f"{class_name}, compiled by smashc; needs only torch."
    (out / "module.py").write_text(module_source(gm, class_name, doc), encoding="utf-8")
    buffer = io.BytesIO()
    torch.save(gm.state_dict(), buffer)
    data = buffer.getvalue()
    (out / "weights.pt").unlink(missing_ok=True)  # a symlink left there is replaced, not followed
    (out / "weights.pt").write_bytes(data)
    init = _INIT.format(doc=doc, cls=class_name, size=len(data), sha256=_sha256(data))
    (out / "__init__.py").write_text(init, encoding="utf-8")
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
    weights = path / "weights.pt"
    if not hasattr(module, "read_weights"):
        raise _damaged(weights, "the package has no checksum of its weights; export it again")
    try:
        state = module.read_weights(weights, map_location)
    except (ValueError, OSError, RuntimeError, pickle.UnpicklingError) as exc:
        raise _damaged(weights, str(exc).replace(f"{weights} ", "", 1)) from None
    return module.from_state(state)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _damaged(weights: Path, message: str) -> SmashError:
    return SmashError([error("E0503", message, Span(str(weights), 1, 1, 1, 1))])
