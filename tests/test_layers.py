"""The layering rules, read from the source: the runtime reaches the compiler only through
its facade (``smashc.compiler``), and no runtime module grows past a sitting's reading."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = sorted((ROOT / "runtime").rglob("*.py"))
# what a runtime module may import from smashc: the facade, diagnostics, the runtime itself
ALLOWED = ("smashc.compiler", "smashc.diagnostics", "smashc.runtime")
MAX_LINES = 400


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of a ``smashc`` module in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "smashc":  # ``from smashc import x`` imports smashc.x
                found += [(node.lineno, f"smashc.{a.name}") for a in node.names]
            elif node.module.startswith("smashc."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "smashc"]
    return found


def _allowed(module: str) -> bool:
    return any(module == a or module.startswith(a + ".") for a in ALLOWED)


def test_the_rule_sees_what_it_must(tmp_path):
    tree = "from smashc.ir import lower\nimport smashc.passes\nfrom smashc import arch\n"
    path = tmp_path / "probe.py"
    path.write_text(tree, encoding="utf-8")
    got = [m for _, m in _imports(path)]
    assert got == ["smashc.ir", "smashc.passes", "smashc.arch"]
    assert not any(_allowed(m) for m in got)
    assert _allowed("smashc.runtime.loop") and _allowed("smashc.compiler")


@pytest.mark.parametrize("path", RUNTIME, ids=lambda p: str(p.relative_to(ROOT)))
def test_runtime_imports_the_compiler_only_through_its_facade(path):
    bad = [f"{path.name}:{line}: {m}" for line, m in _imports(path) if not _allowed(m)]
    assert not bad, "import the compiler through smashc.compiler: " + "; ".join(bad)


@pytest.mark.parametrize("path", RUNTIME, ids=lambda p: str(p.relative_to(ROOT)))
def test_runtime_modules_stay_readable_in_one_sitting(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines"


def test_every_package_is_installed():
    """Each folder of modules is a package pyproject.toml installs (else a wheel lacks it)."""
    import tomllib

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {Path(v): k for k, v in tool["package-dir"].items()}
    found = set()
    for init in ROOT.rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT)
        top = next((f for f in folders if rel == f or f in rel.parents), None)
        if top is None or ".venv" in rel.parts:
            continue
        found.add(".".join([folders[top], *rel.relative_to(top).parts]))
    assert found <= set(tool["packages"]), sorted(found - set(tool["packages"]))
