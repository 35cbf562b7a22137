"""``smashc visualize``: SVG/PNG/.dot for every example in both views, --collapse, and the
errors for an unknown format and a missing graphviz ``dot`` binary."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from smash_space import CORNERS, example_files, example_ir, tiny_ir, tiny_text

from smashc.backends import dot as dotmod
from smashc.backends.dot import Diagram, diagram, write
from smashc.cli import main
from smashc.diagnostics import SmashError
from smashc.ir.graph import IRGraph
from smashc.pipeline import compile_text

SVG = "{http://www.w3.org/2000/svg}"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FILES = example_files()
VIEWS = ("banks", "dataflow")
HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="graphviz 'dot' is not installed")


# Rendered at a smaller size: graphviz's layout of the full DenseNet-BC-100 dataflow view
# takes minutes (superlinear in the layers per block: 12 -> 4 s, 14 -> 55 s, 16 -> 2 min).
# The full-size .dot source is still checked (test_dot_source_for_every_example).
RENDER_OVERRIDES: dict[str, tuple[tuple[str, int], ...]] = {"densenet_bc": (("layers", 6),)}


def _render_args(path: Path) -> tuple[list[str], IRGraph]:
    overrides = RENDER_OVERRIDES.get(path.stem, ())
    args = [a for k, v in overrides for a in ("-D", f"{k}={v}")]
    return args, example_ir(path, overrides)


def _titles(root: ET.Element, cls: str) -> list[str]:
    """Titles of the ``<g class=cls>`` groups (clusters: ``cluster_NAME``; nodes: ids)."""
    out = []
    for g in root.iter(f"{SVG}g"):
        if g.get("class") == cls:
            title = g.find(f"{SVG}title")
            assert title is not None
            out.append(title.text or "")
    return out


def _check_svg(path: Path, ir: IRGraph, view: str, collapse: bool) -> ET.Element:
    root = ET.parse(path).getroot()  # well-formed XML
    assert root.tag == f"{SVG}svg"
    clusters = _titles(root, "cluster")
    nodes = _titles(root, "node")
    if collapse:
        assert clusters == []
        for b in ir.blocks:
            assert nodes.count(b.name) == 1, (b.name, nodes)
        # one node per stage, plus the input
        assert sorted(nodes) == sorted(["input", *(s.name for s in ir.stages)])
    else:
        for b in ir.blocks:
            assert clusters.count(f"cluster_{b.name}") == 1, (b.name, clusters)
        if view == "dataflow":
            assert sorted(clusters) == sorted(f"cluster_{s.name}" for s in ir.stages)
            assert set(nodes) == set(ir.graph)  # every IR node drawn once
            assert len(nodes) == len(ir.graph)
        else:
            assert sorted(clusters) == sorted(f"cluster_{b.name}" for b in ir.blocks)
    return root


@needs_dot
@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_svg_and_png_for_every_example(tmp_path, path, view, capsys):
    args, ir = _render_args(path)
    svg = tmp_path / f"{path.stem}.svg"
    png = tmp_path / f"{path.stem}.png"
    assert main(["visualize", str(path), "-o", str(svg), "--view", view, *args]) == 0
    assert main(["visualize", str(path), "-o", str(png), "--view", view, *args]) == 0
    assert f"wrote {svg}" in capsys.readouterr().out
    _check_svg(svg, ir, view, collapse=False)
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert png.stat().st_size > 100
    # the .dot source is written next to a rendered file
    assert svg.with_suffix(".dot").read_text(encoding="utf-8").lstrip().startswith("digraph")


@needs_dot
@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_collapse_draws_one_node_per_block(tmp_path, path, view):
    ir = example_ir(path)  # collapsed: full size
    svg = tmp_path / "c.svg"
    assert main(["visualize", str(path), "-o", str(svg), "--view", view, "--collapse"]) == 0
    _check_svg(svg, ir, view, collapse=True)


@pytest.mark.parametrize("collapse", [False, True])
@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_dot_source_for_every_example(path, view, collapse):
    """The graphviz source at full size: a cluster per block (none when collapsed)."""
    ir = example_ir(path)
    text = diagram(ir, view, collapse).source()
    assert text.lstrip().startswith("digraph")
    for b in ir.blocks:
        assert (f"subgraph cluster_{b.name} {{" in text) != collapse, b.name
    if view == "dataflow" and not collapse:
        for st in ir.stages:
            assert f"subgraph cluster_{st.name} {{" in text


@needs_dot
@pytest.mark.parametrize("view", VIEWS)
def test_corner_case_net_renders(tmp_path, view):
    ir = compile_text(CORNERS)
    out = write(diagram(ir, view), tmp_path / f"corners_{view}.svg")
    _check_svg(out, ir, view, collapse=False)


@needs_dot
def test_cli_subprocess_writes_svg(tmp_path):
    src = tmp_path / "net.smash"
    src.write_text(tiny_text(), encoding="utf-8")
    out = tmp_path / "deep" / "er" / "net.svg"
    exe = Path(sys.executable).with_name("smashc")
    proc = subprocess.run(
        [str(exe) if exe.exists() else "smashc", "visualize", str(src), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote {out}"
    _check_svg(out, tiny_ir(), "banks", collapse=False)


@pytest.mark.parametrize("suffix", [".dot", ".gv"])
@pytest.mark.parametrize("view", VIEWS)
def test_dot_output(tmp_path, view, suffix, monkeypatch):
    """.dot/.gv are written without the graphviz binary."""
    monkeypatch.setattr(dotmod.shutil, "which", lambda name: None)
    src = tmp_path / "net.smash"
    src.write_text(tiny_text(), encoding="utf-8")
    out = tmp_path / f"net{suffix}"
    assert main(["visualize", str(src), "-o", str(out), "--view", view]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.lstrip().startswith("digraph")
    for b in tiny_ir().blocks:
        assert f"subgraph cluster_{b.name} {{" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["net.smash", out.name])
    assert text == diagram(tiny_ir(), view).source()


@pytest.mark.parametrize("name", ["out.jpg", "out", "out.SVGZ", "out.txt"])
def test_unknown_extension_exits_1(tmp_path, name, capsys):
    src = tmp_path / "net.smash"
    src.write_text(tiny_text(), encoding="utf-8")
    assert main(["visualize", str(src), "-o", str(tmp_path / name)]) == 1
    err = capsys.readouterr().err
    suffix = name.rpartition(".")[2] if "." in name else ""
    expected = f"unknown diagram format '.{suffix}'" if suffix else "has no file extension"
    assert "error[E0501]:" in err and expected in err
    assert ".svg, .png, .pdf or .dot" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.smash"]


def test_uppercase_extension_is_accepted(tmp_path, monkeypatch):
    monkeypatch.setattr(dotmod.shutil, "which", lambda name: None)
    path = write(diagram(tiny_ir()), tmp_path / "x.DOT")
    assert path.read_text(encoding="utf-8").lstrip().startswith("digraph")


@pytest.mark.parametrize("how", ["which", "PATH"])
@pytest.mark.parametrize("fmt", ["svg", "png", "pdf"])
def test_missing_dot_binary(tmp_path, monkeypatch, capsys, how, fmt):
    src = tmp_path / "net.smash"
    src.write_text(tiny_text(), encoding="utf-8")
    if how == "which":
        monkeypatch.setattr(dotmod.shutil, "which", lambda name: None)
    else:
        empty = tmp_path / "emptybin"
        empty.mkdir()
        monkeypatch.setenv("PATH", str(empty))
    out = tmp_path / f"net.{fmt}"
    assert main(["visualize", str(src), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "error[E0502]" in err
    assert "apt-get install graphviz" in err
    assert str(out.with_suffix(".dot")) in err
    assert not out.exists()
    dot = out.with_suffix(".dot")
    assert dot.read_text(encoding="utf-8") == diagram(tiny_ir()).source()


def test_missing_dot_binary_api(tmp_path, monkeypatch):
    monkeypatch.setattr(dotmod.shutil, "which", lambda name: None)
    with pytest.raises(SmashError) as info:
        write(diagram(tiny_ir(), "dataflow"), tmp_path / "a" / "g.png")
    assert info.value.diagnostics[0].code == "E0502"
    assert (tmp_path / "a" / "g.dot").exists()


@needs_dot
@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("collapse", [False, True])
def test_repr_svg(view, collapse):
    d = diagram(tiny_ir(), view, collapse)
    assert isinstance(d, Diagram)
    text = d._repr_svg_()
    assert isinstance(text, str)
    assert "<svg" in text
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == f"{SVG}svg"
    clusters = _titles(root, "cluster")
    if collapse:
        assert clusters == []
    else:
        for b in tiny_ir().blocks:
            assert f"cluster_{b.name}" in clusters


def test_unknown_view_is_refused_by_the_cli(tmp_path, capsys):
    src = tmp_path / "net.smash"
    src.write_text(tiny_text(), encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        main(["visualize", str(src), "-o", str(tmp_path / "x.svg"), "--view", "lanes"])
    assert info.value.code == 1
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_large_dataflow_views_limit_the_layout_passes(path):
    # without the limit graphviz takes about 90 s on DenseNet-BC's 600 nodes
    ir = example_ir(path)
    source = diagram(ir, "dataflow").source()
    assert ("nslimit" in source) == (len(ir.graph) > dotmod._LARGE)
    assert "nslimit" not in diagram(ir, "banks").source()


def test_some_example_is_large_enough_to_limit():
    assert any(len(example_ir(p).graph) > dotmod._LARGE for p in FILES)
