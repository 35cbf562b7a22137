"""The c encoding (smashc.backends.encoding): round trip, layout, refusals, goldens, save, CLI.

* property: ``same_architecture(decode(encode(ir)), ir)`` for sampled SMASH-space nets;
* goldens: ``describe()`` of every ``examples/smash_*.smash`` (tests/golden_encoding/,
  rewritten only with SMASHC_UPDATE_GOLDENS=1);
* every construct c cannot hold is refused with a located ``error[E0601]``;
* the field table of docs/encoding.md, ±1 values, ``op_weights`` against the documented
  HyperNet-output layout, ``save`` (.npy/.pt + JSON sidecar) and ``--emit encoding``.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smash_space import (
    GOOD_LAYER,
    GOOD_STEM,
    TINY,
    encoding_config,
    example_files,
    example_ir,
    is_smash_space,
    one_thread,  # noqa: F401 (autouse)
    sampled,
    space,
    tiny_text,
)
from support import check_golden

from smashc import arch
from smashc.backends.encoding import (
    EncodingConfig,
    decode,
    decode_arch,
    describe,
    encode,
    op_weights,
    save,
)
from smashc.cli import main
from smashc.diagnostics import SmashError
from smashc.ir import lower
from smashc.ir.query import same_architecture
from smashc.ops import op_name
from smashc.passes import run_pipeline
from smashc.pipeline import compile_file, compile_text
from smashc.runtime.sampler import Sampler

GOLDEN = Path(__file__).resolve().parent / "golden_encoding"
EXAMPLES = example_files()
SMASH_EXAMPLES = [p for p in EXAMPLES if p.name.startswith("smash_")]
OTHER_EXAMPLES = [p for p in EXAMPLES if not p.name.startswith("smash_")]


def _assert_pm1(t: torch.Tensor) -> None:
    assert ((t == 1) | (t == -1)).all()


# --- round trip -----------------------------------------------------------------------------


@st.composite
def _arch_draws(draw):
    variable = draw(st.booleans())
    convs_per_op = 4 if variable else draw(st.sampled_from([1, 4]))
    seed = draw(st.integers(0, 2**32 - 1))
    progress = draw(st.floats(0.0, 1.0))
    # the reference budgets, and smaller nets (cheaper to check, and easier to shrink to)
    scale = draw(st.sampled_from([0.1, 0.25, 0.5, 1.0]))
    return variable, convs_per_op, seed, progress, scale


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(_arch_draws())
def test_decode_inverts_encode(draw):
    variable, convs_per_op, seed, progress, scale = draw
    sp = space(variable, scale)
    net = Sampler(sp, seed).sample(progress)
    ir = run_pipeline(lower(net)).ir
    cfg = dataclasses.replace(sp.encoding(), convs_per_op=convs_per_op)
    enc = encode(ir, cfg)
    t = enc.tensor
    assert t.shape == (1, cfg.channels, cfg.rows, sum(s.slices for s in enc.slots))
    _assert_pm1(t)
    # each op takes ceil(in / slice_width) slices, one after another
    at = 0
    for slot in enc.slots:
        assert slot.first_slice == at
        assert slot.slices == -(-slot.in_channels // cfg.slice_width)
        at += slot.slices
    back = decode(t, cfg)
    assert same_architecture(back, ir)
    assert torch.equal(encode(back, cfg).tensor, t)


def test_decode_arch_is_the_network():
    """decode_arch gives the sampler's arch.Network back (blocks, banks, reads, writes, ops)."""
    for seed, progress, variable in [(0, 1.0, False), (1, 0.3, True), (2, 1.0, True)]:
        s = sampled(seed, progress, variable)
        net = decode_arch(encode(s.ir, s.config).tensor, s.config)
        assert [b.banks for b in net.blocks] == [b.banks for b in s.net.blocks]
        for got, want in zip(net.blocks, s.net.blocks, strict=True):
            assert [(lay.reads, lay.writes, lay.ops) for lay in got.layers] == [
                (lay.reads, lay.writes, lay.ops) for lay in want.layers
            ]
        assert [st.ops for st in net.stages if isinstance(st, arch.Stage)] == [
            st.ops for st in s.net.stages if isinstance(st, arch.Stage)
        ]


# --- layout ---------------------------------------------------------------------------------

DOC_FIELDS_1 = {
    "read": (0, 32),
    "write": (32, 32),
    "block": (64, 3),
    "units": (67, 8),
    "c0.dilation_h": (75, 3),
    "c0.dilation_w": (78, 3),
    "c0.kernel_h": (81, 3),
    "c0.kernel_w": (84, 3),
    "c0.groups": (87, 4),
    "bank_size": (91, 8),
    "op_start": (99, 1),
}


def _contiguous(fields: dict[str, tuple[int, int]], channels: int) -> None:
    at = 0
    for _, (start, n) in sorted(fields.items(), key=lambda kv: kv[1][0]):
        assert start == at and n > 0
        at += n
    assert at == channels


def test_field_layout_default():
    cfg = EncodingConfig()
    assert cfg.channels == 100
    assert cfg.fields() == DOC_FIELDS_1
    assert list(cfg.fields()) == list(DOC_FIELDS_1)  # channel order
    _contiguous(cfg.fields(), 100)
    assert cfg.rows == 16 and cfg.slice_width == 16


def test_field_layout_four_convs():
    cfg = EncodingConfig(convs_per_op=4)
    f = cfg.fields()
    assert cfg.channels == 152
    _contiguous(f, 152)
    for name in ("read", "write", "block", "units", *(f"c0.{k}" for k in ("dilation_h",))):
        assert f[name] == DOC_FIELDS_1[name]
    per_conv = ["dilation_h", "dilation_w", "kernel_h", "kernel_w", "groups"]
    sizes = {"dilation_h": 3, "dilation_w": 3, "kernel_h": 3, "kernel_w": 3, "groups": 4}
    at = 75
    for p in range(4):
        for k in per_conv:
            assert f[f"c{p}.{k}"] == (at, sizes[k])
            at += sizes[k]
    assert at == 139
    assert f["active"] == (139, 4)
    assert f["bank_size"] == (143, 8)
    assert f["op_start"] == (151, 1)


@pytest.mark.parametrize(
    "cfg",
    [
        EncodingConfig(unit=4, max_units=32, block_inputs=(32, 48), kernel_sizes=(3, 5)),
        EncodingConfig(max_banks=8, groups=(1, 2), max_dilation=2, convs_per_op=4),
    ],
    ids=["small", "narrow4"],
)
def test_field_layout_other_configs(cfg):
    _contiguous(cfg.fields(), cfg.channels)


def test_values_are_pm1_and_fields_hot_per_slice():
    """Every entry is ±1; each marked slice has exactly one hot value in the one-hot fields;
    unmarked rows of an op (beyond its bottleneck) are all -1."""
    s = sampled(21, 1.0, True)
    cfg = s.config
    enc = encode(s.ir, cfg)
    t = enc.tensor[0]
    _assert_pm1(enc.tensor)
    f = cfg.fields()
    one_hot = ["block", "units", "bank_size"]
    for slot in enc.slots:
        for sl in range(slot.first_slice, slot.first_slice + slot.slices):
            v = t[:, 0, sl]
            for name in one_hot:
                start, n = f[name]
                assert int((v[start : start + n] > 0).sum()) == 1, name
            assert 1 <= int((v[f["read"][0] : f["read"][0] + 32] > 0).sum()) <= 2
            assert (v[f["op_start"][0]] > 0) == (sl == slot.first_slice)
            for r in range(1, slot.rows):
                assert torch.equal(t[:, r, sl], v)
            assert (t[:, slot.rows :, sl] == -1).all()


# --- op_weights -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", [(4, 1.0, False), (5, 0.0, True)], ids=["c0", "var"])
def test_op_weights_inverts_documented_layout(case):
    s = sampled(*case)
    cfg = s.config
    enc = encode(s.ir, cfg)
    n, sw = cfg.unit, cfg.slice_width
    slices = enc.tensor.shape[3]
    # a HyperNet output whose every entry says where it is: channel, row, slice
    ch = torch.arange(n * sw, dtype=torch.float64)[:, None, None]
    r = torch.arange(cfg.rows, dtype=torch.float64)[None, :, None]
    sl = torch.arange(slices, dtype=torch.float64)[None, None, :]
    out = (ch + 1000 * r + 100000 * sl)[None]
    mats = op_weights(out, enc)
    assert len(mats) == len(enc.slots) == sum(len(b.layers) for b in s.net.blocks)
    for slot, m in zip(enc.slots, mats, strict=True):
        assert m.shape == (slot.bottleneck, slot.in_channels)
        # docs: (row r, slice s) holds an n-out x sw-in block; channel o*sw + i is the
        # weight from input 16 s + i (relative to the op's first slice) to unit 8 r + o
        o = torch.arange(slot.bottleneck)[:, None]
        i = torch.arange(slot.in_channels)[None, :]
        want = ((o % n) * sw + i % sw) + 1000 * (o // n) + 100000 * (slot.first_slice + i // sw)
        assert torch.equal(m, want.to(torch.float64))


def test_op_weights_slots_follow_layers():
    s = sampled(6, 1.0, False)
    enc = encode(s.ir, s.config)
    layers = [lay for b in s.net.blocks for lay in b.layers]
    assert len(enc.slots) == len(layers)
    for slot, lay in zip(enc.slots, layers, strict=True):
        op = lay.ops[0]
        assert slot.node == op_name(lay.name, 0, op)
        assert slot.bottleneck == op.bottleneck
        assert slot.rows == op.bottleneck // s.config.unit
        b = next(i for i, blk in enumerate(s.net.blocks) if lay in blk.layers)
        assert slot.block == b
        assert slot.in_channels == sum(s.net.blocks[b].banks[r] for r in lay.reads)


# --- refusals -------------------------------------------------------------------------------

CFG = EncodingConfig(input=(3, 8, 8), classes=10)


def test_base_network_encodes():
    ir = compile_text(tiny_text())
    enc = encode(ir, CFG)
    assert enc.tensor.shape == (1, 100, 16, 2 + 4 + 6 + 7)
    assert same_architecture(decode(enc.tensor, CFG), ir)


@pytest.mark.parametrize(
    "stem, layer, line, words",
    [
        (
            GOOD_STEM,
            "layer b0_l0 read 0 overwrite 1, 2 = smash(out=32, bottleneck=64, c0=conv(kernel=3))",
            7,
            ["b0_l0", "overwrites"],
        ),
        (GOOD_STEM, "layer b0_l0 read 0 write 2 = conv(out=32)", 7, ["b0_l0", "one smash op"]),
        (
            GOOD_STEM,
            "layer b0_l0 read 0 write 2 = relu -> smash(out=32, bottleneck=64, c0=conv(kernel=3))",
            7,
            ["b0_l0", "one smash op"],
        ),
        (
            GOOD_STEM,
            "layer b0_l0 read 0 write 2 = smash(out=32, bottleneck=64, c0=conv(kernel=(9, 9)))",
            7,
            ["kernel (9, 9)"],
        ),
        (
            GOOD_STEM,
            "layer b0_l0 read 0 write 2 = smash(out=32, bottleneck=64, "
            "c0=conv(kernel=3, act=relu6))",
            7,
            ["act=relu6"],
        ),
        (
            GOOD_STEM,
            "layer b0_l0 read 0 write 2 = smash(out=32, bottleneck=64, "
            "c0=conv(kernel=3, dilation=4))",
            7,
            ["dilation (4, 4)"],
        ),
        (
            GOOD_STEM,
            "layer b0_l0 read 0 write 2, 1 = smash(out=32, bottleneck=64, c0=conv(kernel=3))",
            7,
            ["b0_l0", "[2, 1]", "increasing order"],
        ),
        (
            GOOD_STEM,
            "layer b0_l0 read 0 write 2 = smash(out=32, bottleneck=60, c0=conv(kernel=3))",
            7,
            ["bottleneck=60", "multiple of 8 up to 128"],
        ),
        (
            GOOD_STEM,
            "layer b0_l0 read 0 write 2 = smash(out=32, bottleneck=256, c0=conv(kernel=3))",
            7,
            ["bottleneck=256"],
        ),
        (
            "stem { conv(out=64, kernel=5) -> relu }",
            GOOD_LAYER,
            4,
            ["stem"],
        ),
        (
            "stem { conv(out=64, kernel=7) -> relu6 }",
            GOOD_LAYER,
            4,
            ["stem"],
        ),
    ],
    ids=[
        "overwrite",
        "plain-conv",
        "two-ops",
        "kernel9",
        "relu6",
        "dilation4",
        "unsorted-writes",
        "bottleneck60",
        "bottleneck256",
        "stem-kernel",
        "stem-act",
    ],
)
def test_refusals_are_located(stem, layer, line, words):
    text = tiny_text(stem, layer)
    ir = compile_text(text)  # the front end accepts it: only c cannot hold it
    with pytest.raises(SmashError) as info:
        encode(ir, CFG)
    diags = info.value.diagnostics
    assert diags and all(d.code == "E0601" for d in diags)
    d = diags[0]
    assert d.message.startswith("cannot encode")
    for w in words:
        assert w in d.message, d.message
    assert d.span.line == line, (d.span, d.message)
    assert d.span.column >= 1
    # the rendered diagnostic points at the offending source line
    rendered = SmashError(diags, {d.span.file: text}).render()
    assert "error[E0601]" in rendered
    assert text.splitlines()[line - 1].strip() in rendered


def test_overwrite_of_an_empty_bank_is_a_write():
    """Overwriting a bank nothing has written yet adds into zeros: the same architecture."""
    over = "layer b0_l0 read 0 overwrite 2 = smash(out=32, bottleneck=64, c0=conv(kernel=3))"
    a = compile_text(tiny_text(layer=over))
    b = compile_text(tiny_text())
    assert same_architecture(a, b)
    assert torch.equal(encode(a, CFG).tensor, encode(b, CFG).tensor)


def test_refuses_wrong_input_and_skeleton():
    ir = compile_text(tiny_text())
    with pytest.raises(SmashError) as info:
        encode(ir, EncodingConfig())  # 32x32 input, 100 classes
    assert any("input" in d.message for d in info.value.diagnostics)
    assert all(d.code == "E0601" for d in info.value.diagnostics)
    with pytest.raises(SmashError) as info:
        encode(ir, dataclasses.replace(CFG, block_inputs=(64, 96)))
    assert "stem block transition block head" in info.value.diagnostics[0].message


def test_refuses_reads_a_slice_would_reorder():
    """Banks of 8 channels: reads 2, 1 share one 16-channel slice, whose read field is a set."""
    block0 = (
        "banks 9 x 8\n"
        "        layer b0_l0 read 2, 1 write 8 = smash(out=8, bottleneck=64, c0=conv(kernel=3))"
    )
    start = TINY.index("banks 4 x 32")
    end = TINY.index("}", start)
    text = (TINY[:start] + block0 + "\n    " + TINY[end:]).replace("STEM", GOOD_STEM)
    ir = compile_text(text)
    with pytest.raises(SmashError) as info:
        encode(ir, CFG)
    d = info.value.diagnostics[0]
    assert d.code == "E0601" and d.span.line == 7
    assert "reads [2, 1]" in d.message and "[2, 1]" in d.message
    # the same reads in increasing order encode (two banks in one slice: a two-hot read)
    ok = compile_text(text.replace("read 2, 1", "read 1, 2"))
    enc = encode(ok, CFG)
    f = CFG.fields()["read"]
    assert (enc.tensor[0, f[0] : f[0] + f[1], 0, 0] > 0).nonzero().flatten().tolist() == [1, 2]
    assert same_architecture(decode(enc.tensor, CFG), ok)


def test_convs_per_op_1_refuses_variable_op():
    text = tiny_text(
        layer="layer b0_l0 read 0 write 2 = smash(out=32, bottleneck=64, "
        "c0=conv(kernel=3), c1=conv(kernel=3))"
    )
    ir = compile_text(text)
    with pytest.raises(SmashError) as info:
        encode(ir, CFG)
    assert "active convs {0, 1}" in info.value.diagnostics[0].message
    assert info.value.diagnostics[0].span.line == 7
    enc = encode(ir, dataclasses.replace(CFG, convs_per_op=4))
    assert enc.tensor.shape[1] == 152


# --- examples -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SMASH_EXAMPLES, ids=lambda p: p.stem)
def test_smash_example_golden(path):
    ir = example_ir(path)
    assert is_smash_space(ir)
    cfg = encoding_config(ir)
    enc = encode(ir, cfg)
    _assert_pm1(enc.tensor)
    assert same_architecture(decode(enc.tensor, cfg), ir)
    actual = f"tensor shape: {tuple(enc.tensor.shape)}\n" + describe(enc)
    check_golden(GOLDEN / f"{path.stem}.txt", actual)


def test_no_stale_goldens():
    names = {p.stem for p in SMASH_EXAMPLES}
    stale = [p.name for p in GOLDEN.glob("*.txt") if p.stem not in names]
    assert not stale, f"golden files without an example: {stale}"


@pytest.mark.parametrize("path", OTHER_EXAMPLES, ids=lambda p: p.stem)
def test_non_smash_example_refused(path):
    ir = example_ir(path)
    with pytest.raises(SmashError) as info:
        encode(ir, EncodingConfig(input=ir.input, classes=ir.classes))
    diags = info.value.diagnostics
    assert diags and all(d.code == "E0601" for d in diags)
    for d in diags:
        assert d.span.line >= 1 and d.span.column >= 1, d
        assert Path(d.span.file).name == path.name or d.span.file.startswith("<stdlib>"), d
    assert any(Path(d.span.file).name == path.name for d in diags)


@pytest.mark.parametrize("path", OTHER_EXAMPLES, ids=lambda p: p.stem)
def test_cli_emit_encoding_refuses_non_smash_example(tmp_path, path, capsys):
    out = tmp_path / "c.npy"
    assert main(["compile", str(path), "--emit", "encoding", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "error[E0601]: cannot encode" in err
    assert f"{path.name}:" in err
    assert " | " in err  # the source excerpt under the headline
    assert not out.exists()


# --- save and the CLI -----------------------------------------------------------------------


def _config_from_json(d: dict) -> EncodingConfig:
    return EncodingConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@pytest.mark.parametrize("suffix", [".npy", ".pt"])
def test_save_writes_tensor_and_sidecar(tmp_path, suffix):
    s = sampled(8, 0.6, True)
    enc = encode(s.ir, s.config)
    written = save(enc, tmp_path / "sub" / f"c{suffix}")
    assert written == [tmp_path / "sub" / f"c{suffix}", tmp_path / "sub" / "c.json"]
    if suffix == ".npy":
        t = torch.from_numpy(np.load(written[0]))
    else:
        t = torch.load(written[0], weights_only=True)
    assert torch.equal(t, enc.tensor)
    meta = json.loads(written[1].read_text(encoding="utf-8"))
    assert meta["shape"] == list(enc.tensor.shape)
    assert _config_from_json(meta["config"]) == enc.config
    assert {k: tuple(v) for k, v in meta["fields"].items()} == enc.config.fields()
    assert [op["node"] for op in meta["ops"]] == [slot.node for slot in enc.slots]
    assert meta["ops"][0] == dataclasses.asdict(enc.slots[0])
    # the sidecar is enough to decode the saved tensor
    assert same_architecture(decode(t, _config_from_json(meta["config"])), s.ir)


@pytest.fixture
def smash_file(tmp_path) -> Path:
    path = tmp_path / "net.smash"
    path.write_text(sampled(9, 1.0, True).text(), encoding="utf-8")
    return path


def test_cli_emit_encoding(tmp_path, smash_file):
    out = tmp_path / "x.npy"
    exe = Path(sys.executable).with_name("smashc")
    proc = subprocess.run(
        [
            str(exe) if exe.exists() else "smashc",
            "compile",
            str(smash_file),
            "--emit",
            "encoding",
            "--convs-per-op",
            "4",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stderr
    ir = compile_file(smash_file)
    cfg = EncodingConfig(input=ir.input, classes=ir.classes, convs_per_op=4)
    assert torch.equal(torch.from_numpy(np.load(out)), encode(ir, cfg).tensor)
    meta = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert _config_from_json(meta["config"]) == cfg


def test_cli_emit_encoding_pt_in_process(tmp_path, smash_file, capsys):
    out = tmp_path / "y.pt"
    argv = ["compile", str(smash_file), "--emit", "encoding", "--convs-per-op", "4"]
    assert main([*argv, "-o", str(out)]) == 0
    t = torch.load(out, weights_only=True)
    assert t.shape[1] == 152
    _assert_pm1(t)


def test_cli_emit_encoding_default_layout_refuses_variable_ops(tmp_path, smash_file, capsys):
    """Without --convs-per-op 4, a net with c1..c3 is refused with a located E0601."""
    ir = compile_file(smash_file)
    assert any(
        isinstance(ir.payload(n).op, arch.SmashOp) and ir.payload(n).op.convs[1] is not None
        for n in ir.graph
        if hasattr(ir.payload(n), "op")
    )
    assert (
        main(["compile", str(smash_file), "--emit", "encoding", "-o", str(tmp_path / "z.npy")]) == 1
    )
    err = capsys.readouterr().err
    assert "error[E0601]: cannot encode active convs" in err
    assert f"{smash_file.name}:" in err
    assert not (tmp_path / "z.npy").exists()


@pytest.mark.parametrize("output", [None, "x.txt", "x"], ids=["no-o", "txt", "no-suffix"])
def test_cli_emit_encoding_needs_npy_or_pt(tmp_path, smash_file, capsys, output):
    argv = ["compile", str(smash_file), "--emit", "encoding", "--convs-per-op", "4"]
    if output is not None:
        argv += ["-o", str(tmp_path / output)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "<command line>:1:1: error[E0102]" in err
    assert "-o FILE.npy or -o FILE.pt" in err
    assert list(tmp_path.iterdir()) == [smash_file]
