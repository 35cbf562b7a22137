"""docs/interop.md runs as written: its files are written, its shell and Python blocks run
in order in one folder, and the .smash it shows is the file ``smashc lift`` writes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import ENV, ROOT

DOC = ROOT / "docs" / "interop.md"
BLOCK = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.M | re.S)


def blocks() -> list[tuple[str, str, str]]:
    return [(m[1], m[2].strip(), m[3]) for m in BLOCK.finditer(DOC.read_text(encoding="utf-8"))]


def test_the_page_has_its_steps():
    kinds = [(lang, info) for lang, info, _ in blocks()]
    assert ("python", "file=resnet.py") in kinds and ("smash", "output=resnet.smash") in kinds
    assert sum(lang == "sh" for lang, _ in kinds) >= 4


def test_interop_page_runs_as_written(tmp_path, monkeypatch):
    pytest.importorskip(
        "onnxruntime", reason="onnxruntime is not installed (pip install onnxruntime)"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    env = {**ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{ENV.get('PATH', '')}"}
    for lang, info, body in blocks():
        if lang == "python" and info.startswith("file="):
            (tmp_path / info[5:]).write_text(body, encoding="utf-8")
            continue
        if lang == "smash":
            produced = (tmp_path / info.removeprefix("output=")).read_text(encoding="utf-8")
            assert produced == body
            continue
        if lang == "python":  # in this process, as a fresh module in the page's folder
            exec(compile(body, f"{DOC.name} (python block)", "exec"), {"__name__": "__main__"})
            continue
        cmd = ["bash", "-euo", "pipefail", "-c", body]
        proc = subprocess.run(
            cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, f"{lang} block failed:\n{body}\n{proc.stdout}\n{proc.stderr}"
