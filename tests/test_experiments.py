"""The paper's experiments (``smashc experiment``), at smoke size on synthetic data.

* correlation: end to end through the CLI (CSV columns, PNG, summary statistics recomputed
  from the CSV, the every-m-th selection, the knob variants), resuming without retraining
  (deleted results, an interrupted run, two worker processes), low-budget reusing a
  correlation run's trained architectures;
* corruption of c changes exactly the intended field, for every field and mode;
* dE/dc matches finite differences; single-op changes encode as a change of one field;
* corrupt and arch-grad run end to end;
* user errors (bad flags, missing or unfitting checkpoints, reused folders) exit 1 cleanly.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from smash_space import one_thread  # noqa: F401 (autouse)

from smashc.cli import main
from smashc.runtime import experiments, precision
from smashc.runtime.archgrad import (
    apply,
    encode_arch,
    encoding_gradient,
    predicted_change,
    single_changes,
)
from smashc.runtime.context import open_context, resolve_device
from smashc.runtime.corrupt import MODES, corrupt, corruptible, op_columns
from smashc.runtime.data import Batches, Subset
from smashc.runtime.experiments import trainings
from smashc.runtime.oneshot import OneShot
from smashc.runtime.presets import PRESETS
from smashc.runtime.sampler import Sampler, SearchSpace
from smashc.runtime.stats import correlation, every_mth

CSV_HEADER = ["index", "rank", "smash_error", "true_error", "params", "macs", "smash_file"]
KNOB_COLUMNS = [f"smash_error_{v}" for v in ("plain", "bn", "z", "bn_z")]


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """``smashc ARGV`` in this process: (exit status, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def results(out: Path) -> dict[int, Path]:
    return {
        json.loads(p.read_text())["index"]: p for p in (out / "trained").glob("arch*/result.json")
    }


# --- correlation -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corr(tmp_path_factory) -> Path:
    """A finished smoke correlation experiment with --knobs."""
    out = tmp_path_factory.mktemp("corr") / "run"
    argv = ["experiment", "correlation", "--preset", "smoke", "--out", str(out), "--knobs"]
    assert main(argv) == 0
    return out


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
def test_correlation_writes_csv_plot_and_summary(corr):
    out = corr
    cfg = experiments.CORRELATION["smoke"]
    header, rows = read_csv(out / "correlation.csv")
    assert header == CSV_HEADER + KNOB_COLUMNS
    scores = {r["index"]: r for r in jsonl(out / "scores.jsonl")}
    assert sorted(scores) == list(range(cfg.search.score.archs))
    errors = [scores[i]["error"] for i in range(len(scores))]
    picked = every_mth(errors, cfg.every)
    assert [int(r["index"]) for r in rows] == picked
    ranked = sorted(scores, key=lambda i: (scores[i]["error"], i))
    trained = results(out)
    assert sorted(trained) == sorted(picked)
    for r in rows:
        i = int(r["index"])
        assert int(r["rank"]) == ranked.index(i) + 1
        assert float(r["smash_error"]) == pytest.approx(scores[i]["error"], abs=1e-4)
        assert int(r["params"]) == scores[i]["params"] and int(r["macs"]) == scores[i]["macs"]
        assert (out / r["smash_file"]).read_text() == scores[i]["text"]
        # the true error is the held-out validation error after the last epoch
        last = jsonl(trained[i].parent / "final.jsonl")[-1]
        assert float(r["true_error"]) == pytest.approx(1 - last["val_acc"], abs=1e-4)
        assert json.loads(trained[i].read_text())["true_error"] == pytest.approx(
            1 - last["val_acc"]
        )
        assert r["smash_error_plain"] == r["smash_error"]  # plain = the main settings
    assert (out / "correlation.png").read_bytes()[:4] == b"\x89PNG"

    summary = json.loads((out / "summary.json").read_text())
    assert summary["trained"] == len(picked) and summary["archs_scored"] == len(scores)
    smash = [float(r["smash_error"]) for r in rows]
    true = [float(r["true_error"]) for r in rows]
    for key, values in (("smash", smash), ("params", [int(r["params"]) for r in rows])):
        for kind in ("spearman", "kendall"):
            got = summary["correlation"][key][kind]
            want = correlation(values, true, kind, resamples=cfg.resamples)
            assert got["value"] == pytest.approx(want.value, abs=1e-3), (key, kind)
            assert -1 <= got["low"] <= got["high"] <= 1
    assert set(summary["correlation"]) == {"smash", "params", "macs", "random"}
    assert set(summary["knobs"]) == {"plain", "bn", "z", "bn+z"}
    assert summary["knobs"]["bn"]["bn_batches"] == cfg.knob_bn_batches
    assert summary["knobs"]["z"]["z_samples"] == cfg.knob_z_samples
    assert summary["hypernet_params"] > 0 and summary["shared_params"] > 0

    config = json.loads((out / "config.json").read_text())
    assert config["every"] == cfg.every and config["search"]["dataset"] == "synthetic"
    assert config["search"]["space"]["input"] == [3, 16, 16]  # adapted to the data
    # the precision the run computed in, resolved from "auto" for this machine
    assert config["search"]["precision"] == precision.resolve("auto", resolve_device("auto"))


def test_knob_variants_rescore_the_same_architectures(corr):
    out = corr
    main_scores = {r["index"]: r for r in jsonl(out / "scores.jsonl")}
    _, rows = read_csv(out / "correlation.csv")
    picked = [int(r["index"]) for r in rows]
    bn = {r["index"]: r for r in jsonl(out / "scores_bn.jsonl")}
    assert sorted(bn) == sorted(picked)
    for i in picked:
        assert bn[i]["text"] == main_scores[i]["text"]
    for r in rows:  # the CSV's knob columns come from the variant score files
        assert float(r["smash_error_bn"]) == pytest.approx(bn[int(r["index"])]["error"], abs=1e-4)
    assert [r["smash_error_bn"] for r in rows] != [r["smash_error"] for r in rows]


def test_rerun_after_deleting_results_trains_only_those(corr, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(corr, out)
    before = results(out)
    gone = sorted(before)[0]
    shutil.rmtree(before[gone].parent)
    kept = {i: p.stat().st_mtime_ns for i, p in before.items() if i != gone}
    scores = (out / "scores.jsonl").read_text()
    ckpt = (out / "smash" / "checkpoint.pt").stat().st_mtime_ns

    code, stdout, err = run_main(
        ["experiment", "correlation", "--preset", "smoke", "--out", out, "--knobs"], capsys
    )
    assert code == 0, err
    after = results(out)
    assert sorted(after) == sorted(before)
    assert {i: after[i].stat().st_mtime_ns for i in kept} == kept  # not retrained
    assert json.loads((out / "summary.json").read_text())["trained_now"] == 1
    assert (out / "scores.jsonl").read_text() == scores  # nothing rescored
    assert (out / "smash" / "checkpoint.pt").stat().st_mtime_ns == ckpt  # no SMASH training
    assert (out / "correlation.csv").read_text() == (corr / "correlation.csv").read_text()
    assert "SMASH score vs true error" in stdout


def test_interrupted_training_resumes_where_it_stopped(corr, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    shutil.copytree(corr, out)
    shutil.rmtree(out / "trained")
    calls = []
    real = trainings.train_one

    def stop_after_one(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt  # Ctrl-C during the second training
        calls.append(args[1].index)
        return real(*args, **kwargs)

    monkeypatch.setattr(trainings, "train_one", stop_after_one)
    argv = ["experiment", "correlation", "--preset", "smoke", "--out", out]
    code, _, err = run_main(argv, capsys)
    assert code == 130
    assert "Traceback" not in err
    assert f"Continue with: smashc experiment correlation --preset smoke --out {out}" in err
    first = results(out)
    assert list(first) == calls
    stamp = first[calls[0]].stat().st_mtime_ns

    monkeypatch.setattr(trainings, "train_one", real)
    code, _, err = run_main(argv, capsys)
    assert code == 0, err
    assert first[calls[0]].stat().st_mtime_ns == stamp
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trained_now"] == summary["trained"] - 1


def test_a_training_stopped_after_its_checkpoint_is_not_redone(corr, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(corr, out)
    before = {i: json.loads(p.read_text()) for i, p in results(out).items()}
    index, path = next(iter(results(out).items()))
    path.unlink()  # stopped after the final checkpoint, before its result was written
    argv = ["experiment", "correlation", "--preset", "smoke", "--out", out]
    code, stdout, err = run_main(argv, capsys)
    assert code == 0, err
    assert "the final training had finished" in stdout
    after = json.loads(path.read_text())
    for key in ("true_error", "val_loss", "test_error", "smash_error"):
        assert after[key] == before[index][key], key


def test_worker_processes_give_the_same_results(corr, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    shutil.copytree(corr, out)
    before = {i: json.loads(p.read_text()) for i, p in results(out).items()}
    shutil.rmtree(out / "trained")

    def in_this_process(*args, **kwargs):
        raise AssertionError("--jobs 2 trained in the parent process")

    monkeypatch.setattr(trainings, "train_one", in_this_process)  # the workers' is intact
    argv = ["experiment", "correlation", "--preset", "smoke", "--out", out, "--jobs", "2"]
    code, _, err = run_main(argv, capsys)
    assert code == 0, err
    after = {i: json.loads(p.read_text()) for i, p in results(out).items()}
    assert sorted(after) == sorted(before)
    for i in before:
        assert after[i]["true_error"] == before[i]["true_error"]
        assert after[i]["val_loss"] == pytest.approx(before[i]["val_loss"], rel=1e-4)


def test_low_budget_reuses_the_reference_runs_trained_architectures(corr, tmp_path, capsys):
    ref = corr
    out = tmp_path / "low"
    argv = ["experiment", "low-budget", "--preset", "smoke", "--out", out, "--reference", ref]
    code, stdout, err = run_main(argv, capsys)
    assert code == 0, err
    assert not (out / "trained").exists()
    _, mine = read_csv(out / "correlation.csv")
    _, theirs = read_csv(ref / "correlation.csv")
    true = {r["index"]: r["true_error"] for r in theirs}
    assert {r["index"]: r["true_error"] for r in mine} == true
    summary = json.loads((out / "summary.json").read_text())
    big = json.loads((ref / "summary.json").read_text())
    assert summary["hypernet_params"] < big["hypernet_params"] / 4
    assert summary["shared_params"] == big["shared_params"]  # the same main network
    assert summary["reference"]["correlation"] == big["correlation"]
    assert f"reference run {ref}:" in stdout


def test_correlation_with_a_reference_rescores_with_another_smash_network(corr, tmp_path, capsys):
    """--epochs 1 --reference: the same architectures and true errors, other SMASH scores."""
    out = tmp_path / "short"
    argv = ["experiment", "correlation", "--preset", "smoke", "--out", out, "--epochs", "1"]
    code, _, err = run_main([*argv, "--reference", corr], capsys)
    assert code == 0, err
    assert not (out / "trained").exists()
    _, mine = read_csv(out / "correlation.csv")
    _, theirs = read_csv(corr / "correlation.csv")
    assert {r["index"]: r["true_error"] for r in mine} == {
        r["index"]: r["true_error"] for r in theirs
    }
    assert json.loads((out / "config.json").read_text())["search"]["train"]["epochs"] == 1


# --- corruption of c -------------------------------------------------------------------------

SPACES = {
    "demo": replace(PRESETS["demo"].space, input=(1, 28, 28), classes=10),
    "variable": SearchSpace(
        input=(3, 8, 8), classes=10, variable_ops=True, budgets=(200, 300, 400)
    ),
}
CORRUPT_CASES = [
    (space, field, mode)
    for space, sp in SPACES.items()
    for field in corruptible(sp.encoding())
    for mode in MODES
]


@pytest.fixture(scope="module")
def encodings() -> dict[str, list[torch.Tensor]]:
    return {
        name: [encode_arch(Sampler(sp, seed).sample(1.0), sp.encoding()) for seed in range(4)]
        for name, sp in SPACES.items()
    }


def _values(c: torch.Tensor, cfg, field: str) -> list[tuple]:
    """Per op (per slice for ``read``): the +1 channels of ``field``."""
    start, n = cfg.fields()[field]
    cols = []
    for op in op_columns(c, cfg):
        slices = range(op.start, op.end) if field == "read" else [op.start]
        for s in slices:
            cols.append(tuple(int(i) for i in torch.nonzero(c[0, start : start + n, 0, s] > 0)))
    return cols


@pytest.mark.parametrize(
    "space,field,mode", CORRUPT_CASES, ids=["-".join(c) for c in CORRUPT_CASES]
)
def test_corruption_changes_only_its_field(encodings, space, field, mode):
    cfg = SPACES[space].encoding()
    start, n = cfg.fields()[field]
    changed = 0
    for k, c in enumerate(encodings[space]):
        bad = corrupt(c, cfg, field, np.random.default_rng(k), mode)
        assert bad.shape == c.shape
        diff = (bad != c).any(dim=3).any(dim=2)[0]  # per channel
        channels = set(torch.nonzero(diff).flatten().tolist())
        assert channels <= set(range(start, start + n)), (field, sorted(channels))
        marked = (c > 0).any(dim=1, keepdim=True).expand_as(c)
        assert torch.equal(bad[~marked], c[~marked])  # unmarked positions stay all -1
        assert set(bad.unique().tolist()) <= {-1.0, 1.0}
        old, new = _values(c, cfg, field), _values(bad, cfg, field)
        if mode == "redraw" or field not in ("read", "write"):  # (shuffled sets move whole)
            assert [len(v) for v in new] == [len(v) for v in old]  # as many +1s as before
        if mode == "redraw":  # every op (slice) where the field is present changes
            assert all(a != b for a, b in zip(old, new, strict=True) if a), field
            assert not torch.equal(bad, c)
        elif field not in ("read", "write"):  # a permutation of the ops' values
            assert sorted(new) == sorted(old)
            distinct = len({v for v in old if v}) > 1
            assert torch.equal(bad, c) != distinct  # changed unless all values are equal
        changed += not torch.equal(bad, c)
    assert changed > 0, f"{field} ({mode}) never changed c"


def test_shuffled_banks_stay_within_each_block(encodings):
    cfg = SPACES["demo"].encoding()
    c = encodings["demo"][0]
    for field in ("read", "write"):
        bad = corrupt(c, cfg, field, np.random.default_rng(0), "shuffle")
        ops = op_columns(c, cfg)
        for b in {op.block for op in ops}:
            mine = [op for op in ops if op.block == b]
            cols = [s for op in mine for s in range(op.start, op.end)]
            start, n = cfg.fields()[field]
            old = sorted(
                tuple(torch.nonzero(c[0, start : start + n, 0, s] > 0).flatten().tolist())
                for s in (cols if field == "read" else [op.start for op in mine])
            )
            new = sorted(
                tuple(torch.nonzero(bad[0, start : start + n, 0, s] > 0).flatten().tolist())
                for s in (cols if field == "read" else [op.start for op in mine])
            )
            assert new == old, (field, b)


def test_corrupt_rejects_unknown_fields_and_modes(encodings):
    cfg = SPACES["demo"].encoding()
    c = encodings["demo"][0]
    with pytest.raises(ValueError, match="unknown field"):
        corrupt(c, cfg, "block", np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown mode"):
        corrupt(c, cfg, "units", np.random.default_rng(0), "swap")


# --- dE/dc and single-op changes -------------------------------------------------------------


def test_single_changes_encode_as_one_field_of_one_op():
    sp = SPACES["demo"]
    cfg = sp.encoding()
    net = Sampler(sp, 1).sample(1.0)
    c = encode_arch(net, cfg)
    ops = op_columns(c, cfg)
    changes = single_changes(net, sp)
    assert len(changes) > 10
    keys = {(ch.block, ch.layer, ch.conv, ch.attribute, ch.new) for ch in changes}
    assert len(keys) == len(changes)
    first = {b: next(k for k, op in enumerate(ops) if op.block == b) for b in range(3)}
    for ch in changes[:: max(1, len(changes) // 12)]:
        new = encode_arch(apply(net, ch), cfg)
        assert new.shape == c.shape
        start, n = cfg.fields()[f"c{ch.conv}.{ch.attribute}"]
        op = ops[first[ch.block] + ch.layer]
        where = torch.nonzero(new != c)
        assert len(where) > 0
        assert set(where[:, 1].tolist()) <= set(range(start, start + n))
        assert set(where[:, 3].tolist()) <= set(range(op.start, op.end))


def test_encoding_gradient_matches_finite_differences():
    ctx = open_context(PRESETS["smoke"])
    cfg, val = ctx.cfg, ctx.val
    torch.manual_seed(0)
    model = OneShot(cfg.space, cfg.hypernet).double()
    compiled = model.compile(Sampler(cfg.space, 2).sample(1.0))
    compiled = replace(compiled, enc=replace(compiled.enc, tensor=compiled.enc.tensor.double()))
    data = Batches(ctx.data, Subset(val.x[:16], val.y[:16]), 16, shuffle=False)

    class Double:  # the batches in float64
        def epoch(self, e):
            for x, y in data.epoch(e):
                yield x.double(), y

    z = torch.randn(1, 1, *compiled.enc.tensor.shape[2:], dtype=torch.float64)
    grad, loss = encoding_gradient(model, compiled, Double(), z, 1)
    direction = torch.randn_like(compiled.enc.tensor)
    eps = 1e-5

    def loss_at(c):
        moved = replace(compiled, enc=replace(compiled.enc, tensor=c))
        return encoding_gradient(model, moved, Double(), z, 1)[1]

    c = compiled.enc.tensor
    numeric = (loss_at(c + eps * direction) - loss_at(c - eps * direction)) / (2 * eps)
    assert predicted_change(grad, c, c + direction) == pytest.approx(numeric, rel=1e-2)
    assert loss > 0


# --- corrupt and arch-grad end to end --------------------------------------------------------


def test_corrupt_command(corr, tmp_path, capsys):
    out = tmp_path / "corrupt"
    ckpt = corr / "smash" / "checkpoint.pt"
    argv = ["experiment", "corrupt", "--preset", "smoke", "--out", out, "--checkpoint", ckpt]
    code, stdout, err = run_main(argv, capsys)
    assert code == 0, err
    header, rows = read_csv(out / "corrupt.csv")
    assert header == [
        "field", "mode", "archs", "true_best", "ties", "corrupt_best", "unchanged",
        "frac_true_best", "frac_ties", "mean_gap",
    ]  # fmt: skip
    cfg = experiments.CORRUPT["smoke"]
    fields = corruptible(PRESETS["smoke"].space.encoding())
    assert [(r["field"], r["mode"]) for r in rows] == [(f, m) for f in fields for m in MODES]
    for r in rows:
        counts = [int(r[k]) for k in ("true_best", "ties", "corrupt_best")]
        assert sum(counts) == int(r["archs"]) == cfg.archs - int(r["unchanged"])
    _, per_arch = read_csv(out / "corrupt_archs.csv")
    assert len(per_arch) == cfg.archs * len(fields) * len(MODES)
    records = jsonl(out / "corrupt.jsonl")
    assert sum(r["field"] == "true" for r in records) == cfg.archs
    assert not (out / "smash").exists()  # the checkpoint was used, nothing trained
    assert "c0.dilation_h" in stdout
    # scored in the run's precision, recorded resolved
    config = json.loads((out / "config.json").read_text())
    assert config["search"]["precision"] == precision.resolve("auto", resolve_device("auto"))

    # rerunning scores nothing again
    before = (out / "corrupt.jsonl").read_text()
    assert run_main(argv, capsys)[0] == 0
    assert (out / "corrupt.jsonl").read_text() == before


def test_arch_grad_command(corr, tmp_path, capsys):
    out = tmp_path / "grad"
    ckpt = corr / "smash" / "checkpoint.pt"
    argv = ["experiment", "arch-grad", "--preset", "smoke", "--out", out, "--checkpoint", ckpt]
    code, stdout, err = run_main(argv, capsys)
    assert code == 0, err
    header, rows = read_csv(out / "arch_grad.csv")
    assert header[:3] == ["index", "kind", "rank"] and header[-4:] == [
        "predicted", "base_error", "error", "actual",
    ]  # fmt: skip
    cfg = experiments.ARCH_GRAD["smoke"]
    assert len(rows) == 2 * cfg.archs * cfg.proposals
    for i in range(cfg.archs):
        grad = [r for r in rows if int(r["index"]) == i and r["kind"] == "gradient"]
        rand = [r for r in rows if int(r["index"]) == i and r["kind"] == "random"]
        pg = [float(r["predicted"]) for r in grad]
        assert pg == sorted(pg)  # the best-predicted first
        key = lambda r: (r["block"], r["layer"], r["conv"], r["attribute"], r["new"])  # noqa: E731
        others = [float(r["predicted"]) for r in rand if key(r) not in {key(g) for g in grad}]
        assert all(max(pg) <= p for p in others)
        for r in grad + rand:
            assert float(r["actual"]) == pytest.approx(
                float(r["error"]) - float(r["base_error"]), abs=1e-9
            )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gradient"]["changes"] == cfg.archs * cfg.proposals
    assert "predicted vs actual change" in stdout


# --- user errors -----------------------------------------------------------------------------


def _checkpoint_alone(corr, tmp_path) -> Path:
    path = tmp_path / "alone" / "checkpoint.pt"
    path.parent.mkdir()
    shutil.copyfile(corr / "smash" / "checkpoint.pt", path)
    return path


ERRORS = [
    pytest.param(
        ["experiment", "correlation", "--bogus"],
        r"smashc: error: unrecognized arguments: --bogus",
        id="bad-flag",
    ),
    pytest.param(
        ["experiment", "teleport"], r"argument experiment: invalid choice", id="no-experiment"
    ),
    pytest.param(
        ["experiment", "corrupt", "--mode", "scramble"],
        r"argument --mode: invalid choice: 'scramble'",
        id="bad-mode",
    ),
    pytest.param(
        ["experiment", "correlation", "--preset", "smoke", "--checkpoint", "nope/checkpoint.pt"],
        r"nope/checkpoint\.pt:1:1: error\[E0705\]: checkpoint not found",
        id="missing-checkpoint",
    ),
    pytest.param(
        ["experiment", "arch-grad", "--preset", "smoke", "--checkpoint", "garbage.pt"],
        r"garbage\.pt:1:1: error\[E0705\]: cannot read this checkpoint",
        id="garbage-checkpoint",
    ),
    pytest.param(
        ["experiment", "correlation", "--preset", "smoke", "--every", "0"],
        r"error\[E0704\]: --every must be at least 1",
        id="every-0",
    ),
    pytest.param(
        ["experiment", "correlation", "--preset", "smoke", "--archs", "4", "--every", "2"],
        r"error\[E0704\]: --archs 4 with --every 2 trains 2 architectures",
        id="too-few",
    ),
    pytest.param(
        ["experiment", "correlation", "--preset", "smoke", "--jobs", "0"],
        r"error\[E0704\]: --jobs must be at least 1",
        id="jobs-0",
    ),
]


@pytest.mark.parametrize("args,message", ERRORS)
def test_user_errors_exit_1_without_a_traceback(args, message, tmp_path, monkeypatch, capsys):
    import re

    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    code, out, err = run_main(args, capsys)
    assert code == 1, (code, err)
    assert "Traceback" not in err
    assert re.search(message, err), err
    assert out == ""
    assert not (tmp_path / "runs").exists()  # nothing written


def test_checkpoint_of_another_network_is_refused(corr, tmp_path, capsys):
    ckpt = _checkpoint_alone(corr, tmp_path)  # no config.json: the preset's HyperNet is used
    argv = ["experiment", "low-budget", "--preset", "smoke", "--out", tmp_path / "o"]
    code, _, err = run_main([*argv, "--checkpoint", ckpt], capsys)
    assert code == 1
    assert "Traceback" not in err
    assert f"{ckpt}:1:1: error[E0705]: this checkpoint's network does not fit" in err


def test_folder_of_another_experiment_is_refused(corr, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(corr, out)
    argv = ["experiment", "correlation", "--preset", "smoke", "--out", out, "--every", "1"]
    code, _, err = run_main(argv, capsys)
    assert code == 1
    assert "Traceback" not in err
    assert "error[E0706]" in err and "every 2 -> 1" in err
    assert (out / "correlation.csv").read_text() == (corr / "correlation.csv").read_text()


def test_an_experiment_goes_on_in_the_precision_it_began_with(tmp_path):
    """``auto`` precision in a folder whose experiment resolved it (on another machine,
    say) keeps that precision, as ``smashc search --resume`` does."""
    from dataclasses import replace

    from smashc.runtime import precision as prec
    from smashc.runtime.context import resolve_device
    from smashc.runtime.experiments import common

    here = prec.resolve("auto", resolve_device("cpu"))
    other = "fp32" if here == "bf16" else "bf16"
    cfg = experiments.CORRUPT["smoke"]
    cfg = replace(cfg, search=replace(cfg.search, device="cpu"))
    (tmp_path / "config.json").write_text(json.dumps({"search": {"precision": other}}))
    assert common.setup(cfg, tmp_path)[1].cfg.precision == other
    assert common.setup(cfg)[1].cfg.precision == here
