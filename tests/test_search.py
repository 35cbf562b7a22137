"""End-to-end tests of ``smashc search`` and ``smashc train`` (subprocesses, synthetic data).

* ``smashc search --preset smoke`` writes the documented outputs (docs/search.md);
* a run killed with SIGKILL and resumed with ``--resume`` is identical to an uninterrupted
  one (per-step losses, weights, ranking), and scoring resumes from ``scores.jsonl``;
* ``smashc train`` trains a .smash file and exports it;
* user errors exit 1 with a located message and no traceback.

The subprocesses run with ``OMP_NUM_THREADS=1``: these networks are tiny, and on a busy
2-core machine OpenMP threads make a smoke search 4x slower without changing any result.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from support import ENV, ROOT, exported_output_shape, ok, smashc

from smashc.cli import main
from smashc.frontend.expand import expand
from smashc.frontend.loader import load_file
from smashc.runtime import precision

HEADER = ["rank", "smash_error", "params", "macs", "source", "index", "smash_file"]
LOCATED = re.compile(r"^\S.*:\d+:\d+: error\[E\d{4}\]: \S", re.MULTILINE)


def read_ranking(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == HEADER
    return [dict(zip(HEADER, r, strict=True)) for r in rows[1:]]


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def state_dict(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


# --- a whole smoke search -------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("smoke") / "run"
    return out, ok(smashc("search", "--preset", "smoke", "--out", out))


def test_smoke_search_writes_the_documented_outputs(smoke):
    out, proc = smoke
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["dataset"] == "synthetic"
    assert cfg["precision"] == precision.resolve("auto", torch.device("cpu"))  # resolved
    assert cfg["space"]["input"] == [3, 16, 16] and cfg["space"]["classes"] == 10
    archs, refine = cfg["score"]["archs"], cfg["score"]["refine"]
    assert (archs, refine) == (4, 2)

    rows = read_ranking(out / "ranking.csv")
    assert len(rows) == archs + refine
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    errors = [float(r["smash_error"]) for r in rows]
    assert errors == sorted(errors) and all(0 <= e <= 1 for e in errors)
    assert sorted(int(r["index"]) for r in rows) == list(range(archs + refine))
    assert sorted(r["source"] for r in rows) == ["refine"] * refine + ["sample"] * archs
    for r in rows:
        assert int(r["params"]) > 0 and int(r["macs"]) > 0
        assert (out / r["smash_file"]).is_file()
    best = (out / rows[0]["smash_file"]).read_text()
    assert (out / "top" / "rank1.smash").read_text() == best
    assert len(jsonl(out / "scores.jsonl")) == archs + refine
    steps = cfg["train"]["epochs"] * cfg["train"]["steps_per_epoch"]
    assert [r["global_step"] for r in jsonl(out / "train.jsonl")] == list(range(steps))
    assert (out / "checkpoint.pt").is_file()

    for f in ("scores.png", "train.png", "final/curves.png", "top/rank1.png"):
        if f.endswith("rank1.png") and not (out / f).exists():
            f = "top/rank1.dot"  # no graphviz binary
        assert (out / f).stat().st_size > 0, f
    assert (out / "scores.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "train.png").read_bytes()[:4] == b"\x89PNG"
    final = json.loads((out / "final" / "final.json").read_text())
    assert 0 <= final["test_acc"] <= 1
    assert final["test_error"] == pytest.approx(1 - final["test_acc"])
    assert final["params"] > 0 and final["macs"] > 0 and final["epochs"] == 1
    assert final["trained_in"] == cfg["precision"]
    assert (out / "final" / "architecture.smash").read_text() == best
    assert {p.name for p in (out / "final" / "model").iterdir()} >= {
        "__init__.py",
        "module.py",
        "weights.pt",
    }

    summary = json.loads((out / "summary.json").read_text())
    lines = proc.stdout.splitlines()

    def line(prefix: str) -> str:
        found = [s for s in lines if s.startswith(prefix)]
        assert len(found) == 1, (prefix, proc.stdout)
        return found[0]

    assert str(out / "ranking.csv") in line("ranking:")
    assert str(out / "top" / "rank1.smash") in line("best architecture:")
    diagram = line("its diagram:").split(":", 1)[1].strip()
    assert diagram == summary["best_diagram"] and Path(diagram).is_file()
    assert f"{final['test_acc']:.4f}" in line("final test accuracy:")
    assert summary["final_test_accuracy"] == final["test_acc"]


def test_best_architecture_passes_check(smoke):
    out, _ = smoke
    proc = ok(smashc("check", out / "top" / "rank1.smash", out / "top" / "rank2.smash"))
    assert proc.stdout.count(": ok (network") == 2


def test_exported_final_model_is_importable_and_matches_the_test_accuracy(smoke):
    out, _ = smoke
    probe = (
        "import torch; from model import load; m = load().eval(); "
        "print(tuple(m(torch.zeros(2, 3, 16, 16)).shape))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=out / "final",
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(2, 10)"

    from smashc.backends.export import load as load_package
    from smashc.runtime.data import Batches, load
    from smashc.runtime.final import evaluate

    model = load_package(out / "final" / "model")
    ds = load("synthetic")
    _, acc = evaluate(model, Batches(ds, ds.test, 500, 0, shuffle=False))
    final = json.loads((out / "final" / "final.json").read_text())
    assert acc == pytest.approx(final["test_acc"])


def test_final_onnx_model_computes_the_exported_package(smoke):
    ort = pytest.importorskip(
        "onnxruntime", reason="onnxruntime is not installed (pip install onnxruntime)"
    )
    from smashc.backends.export import load as load_package

    out, _ = smoke
    onnx_file = out / "final" / "model.onnx"
    assert onnx_file.is_file()
    model = load_package(out / "final" / "model").eval()
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        want = model(x).numpy()
    assert got.shape == want.shape == (3, 10)
    assert np.allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_smoke_search_is_deterministic(smoke, tmp_path):
    out, _ = smoke
    ok(smashc("search", "--preset", "smoke", "--out", tmp_path / "again"))
    assert (tmp_path / "again" / "ranking.csv").read_text() == (out / "ranking.csv").read_text()
    a = [r["loss"] for r in jsonl(out / "train.jsonl")]
    assert [r["loss"] for r in jsonl(tmp_path / "again" / "train.jsonl")] == a


# --- resuming -------------------------------------------------------------------------------

RESUME_ARGS = ("search", "--preset", "smoke", "--epochs", "4", "--no-final")
STEPS_PER_EPOCH = 4


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> dict:
    """A: uninterrupted; B: SIGKILLed mid-training after its first checkpoint, then resumed."""
    base = tmp_path_factory.mktemp("resume")
    a, b = base / "A", base / "B"
    # A runs alongside B (separate processes; every choice is seeded, so no interference)
    run_a = subprocess.Popen(
        [sys.executable, "-m", "smashc", *RESUME_ARGS, "--out", str(a)],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "smashc", *RESUME_ARGS, "--out", str(b)],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = b / "train.jsonl"
    deadline = time.monotonic() + 300
    try:
        # after the first checkpoint (end of epoch 1) and one more logged step, so the
        # resumed run must also drop the log lines of steps after its checkpoint
        while True:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            if (b / "checkpoint.pt").exists() and log.exists():
                lines = log.read_text().count("\n")
                if lines > STEPS_PER_EPOCH:
                    break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    stdout, stderr = run_a.communicate(timeout=300)
    ok(subprocess.CompletedProcess(run_a.args, run_a.returncode, stdout, stderr))
    killed_at = len(jsonl(log))
    ckpt_epoch = torch.load(b / "checkpoint.pt", weights_only=True)["epoch"]
    rerun = ok(smashc(*RESUME_ARGS, "--resume", "--out", b))
    return {"A": a, "B": b, "killed_at": killed_at, "ckpt_epoch": ckpt_epoch, "rerun": rerun}


def test_resume_after_sigkill_is_identical(resumed):
    a, b = resumed["A"], resumed["B"]
    total = 4 * STEPS_PER_EPOCH
    assert resumed["killed_at"] < total, "the kill came after HyperNet training had finished"
    assert 1 <= resumed["ckpt_epoch"] < 4
    assert f"resuming HyperNet training at epoch {resumed['ckpt_epoch']}" in (
        resumed["rerun"].stdout + resumed["rerun"].stderr
    )
    la, lb = jsonl(a / "train.jsonl"), jsonl(b / "train.jsonl")
    key = lambda r: (r["epoch"], r["step"], r["global_step"])  # noqa: E731
    assert (
        [key(r) for r in lb]
        == [key(r) for r in la]
        == [(g // STEPS_PER_EPOCH, g % STEPS_PER_EPOCH, g) for g in range(total)]
    )
    assert [r["loss"] for r in lb] == [r["loss"] for r in la]
    assert [r["lr"] for r in lb] == [r["lr"] for r in la]
    sa, sb = state_dict(a / "checkpoint.pt"), state_dict(b / "checkpoint.pt")
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert (b / "ranking.csv").read_text() == (a / "ranking.csv").read_text()
    scores = lambda d: sorted(jsonl(d / "scores.jsonl"), key=lambda r: r["index"])  # noqa: E731
    assert scores(b) == scores(a)
    assert (b / "top" / "rank1.smash").read_text() == (a / "top" / "rank1.smash").read_text()
    assert not (a / "final").exists() and not (b / "final").exists()  # --no-final


def test_scoring_resumes_from_scores_jsonl(resumed, tmp_path):
    c = tmp_path / "C"
    shutil.copytree(resumed["B"], c)
    path = c / "scores.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    kept = lines[::2]
    dropped = {json.loads(s)["index"] for s in lines[1::2]}
    assert {json.loads(s)["source"] for s in lines[1::2]} == {"sample", "refine"}
    path.write_text("".join(kept))
    train_log = (c / "train.jsonl").read_text()
    (c / "ranking.csv").unlink()
    shutil.rmtree(c / "top")

    proc = ok(smashc(*RESUME_ARGS, "--resume", "--out", c))
    assert (c / "ranking.csv").read_text() == (resumed["B"] / "ranking.csv").read_text()
    assert (c / "train.jsonl").read_text() == train_log  # HyperNet training was finished
    records = jsonl(path)
    assert records[: len(kept)] == [json.loads(s) for s in kept]  # kept lines untouched
    assert {r["index"] for r in records[len(kept) :]} == dropped  # only the missing rescored
    by_index = {r["index"]: r for r in jsonl(resumed["B"] / "scores.jsonl")}
    assert {r["index"]: r for r in records} == by_index
    assert "ranking:" in proc.stdout and "final test accuracy" not in proc.stdout


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A run stopped with SIGINT (Ctrl-C) during HyperNet training."""
    return _stopped_run(tmp_path_factory.mktemp("interrupt") / "run", signal.SIGINT)


def test_sigterm_stops_a_run_as_ctrl_c_does(tmp_path):
    """What a batch scheduler sends before it kills a job."""
    out, proc = _stopped_run(tmp_path / "run", signal.SIGTERM)
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "smashc search --resume" in proc.stderr
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] * STEPS_PER_EPOCH + state["step"] == len(jsonl(out / "train.jsonl"))


def _stopped_run(out: Path, sig: int) -> tuple[Path, subprocess.CompletedProcess]:
    """A smoke search sent ``sig`` once its first SMASH step is logged."""
    args = [sys.executable, "-m", "smashc", *RESUME_ARGS, "--seed", "2", "--out", str(out)]

    def default_sigint() -> None:  # a background parent may have left SIGINT ignored
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + 300
    try:
        while not ((out / "train.jsonl").exists() and (out / "train.jsonl").read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, "no SMASH step"
            time.sleep(0.002)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out, subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


def test_ctrl_c_stops_cleanly_with_a_resume_hint(interrupted):
    out, proc = interrupted
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "interrupted" in proc.stderr and "smashc search --resume" in proc.stderr
    assert str(out) in proc.stderr
    assert len(jsonl(out / "train.jsonl")) < 4 * STEPS_PER_EPOCH


def test_ctrl_c_hint_repeats_the_runs_flags(interrupted):
    _, proc = interrupted
    hint = proc.stderr[proc.stderr.index("smashc search --resume") :].splitlines()[0]
    for flag in ("--preset smoke", "--epochs 4", "--seed 2", "--no-final"):
        assert flag in hint, hint


def test_fresh_search_into_an_old_folder_does_not_reuse_its_scores(resumed, tmp_path):
    from dataclasses import replace

    from smashc.compiler import to_text
    from smashc.runtime.presets import PRESETS
    from smashc.runtime.sampler import Sampler
    from smashc.runtime.seeds import Stream, derive

    d = tmp_path / "D"
    shutil.copytree(resumed["A"], d)  # a finished seed-0 run
    args = ("--seed", "1", "--epochs", "1", "--archs", "1", "--refine", "0", "--no-final")
    ok(smashc("search", "--preset", "smoke", *args, "--out", d))
    space = replace(PRESETS["smoke"].space, input=(3, 16, 16), classes=10)
    want = to_text(Sampler(space, derive(1, Stream.SCORE_ARCH, 0)).sample(1.0, name="arch0"))
    got = {r["index"]: r["text"] for r in jsonl(d / "scores.jsonl")}
    assert got[0] == want


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(f.relative_to(folder)): f.read_bytes() for f in folder.rglob("*") if f.is_file()}


@pytest.mark.parametrize(
    "flags,changed",
    [(["--seed", "1"], "seed 0 -> 1"), (["--archs", "3"], "score.archs 4 -> 3")],
    ids=["seed", "archs"],
)
def test_resume_with_other_settings_is_refused_and_touches_nothing(
    resumed, tmp_path, capsys, flags, changed
):
    d = tmp_path / "B"
    shutil.copytree(resumed["B"], d)
    before = _snapshot(d)
    code, out, err = run_main([*RESUME_ARGS, "--resume", "--out", str(d), *flags], capsys)
    assert code == 1, err
    assert re.search(r"config\.json:1:1: error\[E0707\]: .*other settings", err), err
    assert changed in err and "Traceback" not in err
    assert _snapshot(d) == before


def test_resume_may_change_the_device(resumed, tmp_path, capsys):
    d = tmp_path / "B"
    shutil.copytree(resumed["B"], d)
    code, _, err = run_main([*RESUME_ARGS, "--resume", "--out", str(d), "--device", "cpu"], capsys)
    assert code == 0, err
    assert (d / "ranking.csv").read_text() == (resumed["B"] / "ranking.csv").read_text()


def test_resume_without_a_run_is_refused(tmp_path, capsys):
    d = tmp_path / "typo"
    code, _, err = run_main(["search", "--preset", "smoke", "--resume", "--out", str(d)], capsys)
    assert code == 1
    assert "error[E0707]: nothing to resume" in err, err
    assert not d.exists()


def test_ctrl_c_while_scoring_keeps_the_scores_and_hints_resume(tmp_path, capsys, monkeypatch):
    from smashc.runtime import scoring

    scored = []
    real = scoring.smash_error

    def second_is_interrupted(*args, **kwargs):
        if len(scored) == 1:
            raise KeyboardInterrupt  # as Ctrl-C raises it in the middle of scoring
        scored.append(real(*args, **kwargs))
        return scored[-1]

    monkeypatch.setattr(scoring, "smash_error", second_is_interrupted)
    out = tmp_path / "run"
    code, _, err = run_main([*RESUME_ARGS, "--epochs", "1", "--out", str(out)], capsys)
    assert code == 130, err
    assert "Traceback" not in err
    assert "interrupted; the work so far is saved" in err and "--resume" in err
    assert len(jsonl(out / "scores.jsonl")) == 1


def test_a_torn_last_log_line_is_dropped_and_the_log_repaired(tmp_path):
    from smashc.runtime.runs import append_jsonl, read_jsonl

    log = tmp_path / "scores.jsonl"
    append_jsonl(log, {"index": 0})
    with log.open("a") as f:
        f.write('{"index": 1, "te')  # a write the run did not finish
    assert read_jsonl(log) == [{"index": 0}]
    append_jsonl(log, {"index": 2})
    assert read_jsonl(log) == [{"index": 0}, {"index": 2}]


@pytest.mark.parametrize("bad", ["garbage", "[1, 2]", ""])
def test_a_damaged_log_line_is_located(tmp_path, bad):
    from smashc.diagnostics import SmashError
    from smashc.runtime.runs import read_jsonl

    log = tmp_path / "train.jsonl"
    log.write_text(f'{{"a": 1}}\n{bad}\n{{"a": 2}}\n')
    with pytest.raises(SmashError) as info:
        read_jsonl(log)
    assert info.value.render().startswith(f"{log}:2:1: error[E0707]: not a JSON record")


def test_resume_with_a_damaged_config_is_a_located_error(resumed, tmp_path, capsys):
    d = tmp_path / "B"
    shutil.copytree(resumed["B"], d)
    (d / "config.json").write_text("garbage{\n")
    code, _, err = run_main([*RESUME_ARGS, "--resume", "--out", str(d)], capsys)
    assert code == 1 and "Traceback" not in err
    assert err.startswith(f"{d / 'config.json'}:1:1: error[E0707]: cannot read the run's"), err


def test_resume_from_a_damaged_checkpoint_is_a_located_error(resumed, tmp_path, capsys):
    d = tmp_path / "B"
    shutil.copytree(resumed["B"], d)
    ckpt = d / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    code, _, err = run_main([*RESUME_ARGS, "--resume", "--out", str(d)], capsys)
    assert code == 1 and "Traceback" not in err
    assert err.startswith(f"{ckpt}:1:1: error[E0707]: cannot read this checkpoint"), err


# --- final training: checkpoints and resuming -----------------------------------------------

FINAL_EPOCHS = 3


@pytest.fixture(scope="module")
def final_setup():
    from dataclasses import replace

    from smashc.runtime.context import open_context
    from smashc.runtime.presets import PRESETS
    from smashc.runtime.sampler import Sampler

    cfg = PRESETS["smoke"]
    cfg = replace(
        cfg, precision="fp32", device="cpu", final=replace(cfg.final, epochs=FINAL_EPOCHS)
    )
    ctx = open_context(cfg)
    return ctx, Sampler(ctx.cfg.space, 5).sample(1.0, name="final_test")


def _train_final(final_setup, out: Path, resume: bool = False) -> dict:
    from smashc.runtime.final import train_final

    ctx, net = final_setup
    return train_final(ctx, net, out, resume=resume)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_final_training_stopped_by_ctrl_c_resumes_to_the_same_result(
    final_setup, tmp_path, monkeypatch, sig
):
    from smashc.runtime import precision, runs

    a, b = tmp_path / "A", tmp_path / "B"
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    whole = _train_final(final_setup, a)
    real = precision.autocast
    calls = []

    def ctrl_c_at_batch_six(*args, **kwargs):  # epoch 2 of 3, third of four batches
        calls.append(1)
        if len(calls) == 6:
            signal.raise_signal(sig)
        return real(*args, **kwargs)

    monkeypatch.setattr(precision, "autocast", ctrl_c_at_batch_six)
    with pytest.raises(runs.Interrupted):
        _train_final(final_setup, b)
    monkeypatch.setattr(precision, "autocast", real)
    state = torch.load(b / "checkpoint.pt", weights_only=True)
    assert (state["epoch"], state["step"]) == (1, 2)  # mid-epoch: batch 6 ran, then it stopped
    assert len(jsonl(b / "final.jsonl")) == 1
    # the handlers in place before the run are back (a shell's background job ignores SIGINT)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers

    resumed = _train_final(final_setup, b, resume=True)
    assert resumed == whole
    assert (b / "final.jsonl").read_text() == (a / "final.jsonl").read_text()
    wa, wb = (torch.load(d / "model" / "weights.pt", weights_only=True) for d in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_final_training_killed_after_an_epoch_resumes_from_its_checkpoint(
    final_setup, tmp_path, monkeypatch
):
    """A kill leaves the checkpoint of the last finished epoch, and log lines after it."""
    from smashc.runtime import checkpoints

    a, b = tmp_path / "A", tmp_path / "B"
    whole = _train_final(final_setup, a)
    saved = []
    real = checkpoints.save

    def keep_a_copy(obj, path, fingerprint):
        saved.append((copy.deepcopy(obj), fingerprint))  # state dicts hold the live tensors
        real(obj, path, fingerprint)

    monkeypatch.setattr(checkpoints, "save", keep_a_copy)
    _train_final(final_setup, b)
    monkeypatch.setattr(checkpoints, "save", real)
    after_epoch_1 = [(st, fp) for st, fp in saved if (st["epoch"], st["step"]) == (1, 0)]
    assert len(after_epoch_1) == 1
    state, fingerprint = after_epoch_1[0]
    real(state, b / "checkpoint.pt", fingerprint)  # as if killed in epoch 2 or 3
    (b / "final.json").unlink()
    assert len(jsonl(b / "final.jsonl")) == FINAL_EPOCHS  # logged beyond the checkpoint
    assert _train_final(final_setup, b, resume=True) == whole
    assert (b / "final.jsonl").read_text() == (a / "final.jsonl").read_text()


def test_a_diverging_final_training_stops_with_an_error(final_setup, tmp_path):
    from dataclasses import replace

    from smashc.diagnostics import SmashError
    from smashc.runtime.final import train_final

    ctx, net = final_setup
    wild = replace(ctx, cfg=replace(ctx.cfg, final=replace(ctx.cfg.final, lr=1e6)))
    with pytest.raises(SmashError) as info:
        train_final(wild, net, tmp_path)
    text = info.value.render()
    assert "error[E0708]: the final training diverged: its loss is nan in epoch 1" in text
    assert "final.lr, now 1e+06" in text
    assert not (tmp_path / "final.json").exists() and not (tmp_path / "model").exists()


def test_a_diverging_hypernet_training_stops_with_an_error(tmp_path):
    from dataclasses import replace

    from smashc.diagnostics import SmashError
    from smashc.runtime.context import open_context
    from smashc.runtime.hypertrain import train_smash
    from smashc.runtime.presets import PRESETS

    cfg = PRESETS["smoke"]
    cfg = replace(cfg, precision="fp32", device="cpu", train=replace(cfg.train, lr=1e8))
    with pytest.raises(SmashError) as info:
        train_smash(open_context(cfg), tmp_path, False)
    assert "error[E0708]: the HyperNet training diverged: its loss is nan" in info.value.render()
    logged = jsonl(tmp_path / "train.jsonl")
    assert logged and all(math.isfinite(r["loss"]) for r in logged)


def test_training_twice_into_one_folder_starts_over(final_setup, tmp_path):
    _train_final(final_setup, tmp_path / "A")
    _train_final(final_setup, tmp_path / "A")
    assert [r["epoch"] for r in jsonl(tmp_path / "A" / "final.jsonl")] == [1, 2, 3]


def test_fresh_search_leaves_nothing_of_the_old_run_but_keeps_other_files(smoke, tmp_path):
    d = tmp_path / "D"
    shutil.copytree(smoke[0], d)  # a finished smoke run with its final training
    for mine in ("notes.txt", "archs/notes.txt", "top/notes.txt", "final/notes.txt"):
        (d / mine).write_text("the user's\n")
    args = ("--epochs", "1", "--archs", "1", "--refine", "0", "--no-final")
    ok(smashc("search", "--preset", "smoke", *args, "--out", d))
    ranked = [r["smash_file"] for r in read_ranking(d / "ranking.csv")]
    assert sorted(f"archs/{f.name}" for f in (d / "archs").glob("*.smash")) == ranked
    assert {f.stem for f in (d / "top").iterdir() if f.suffix != ".txt"} == {"rank1"}
    assert sorted(f.name for f in (d / "final").rglob("*") if f.is_file()) == ["notes.txt"]
    for mine in ("notes.txt", "archs/notes.txt", "top/notes.txt", "final/notes.txt"):
        assert (d / mine).read_text() == "the user's\n"


# --- smashc train ---------------------------------------------------------------------------


def test_train_command_trains_and_exports(smoke, tmp_path):
    arch = tmp_path / "winner.smash"
    shutil.copyfile(smoke[0] / "top" / "rank1.smash", arch)
    out = tmp_path / "trained"
    proc = ok(
        smashc("train", arch, "--preset", "smoke", "--epochs", "1", "--lr", "0.02", "--out", out,
               "--precision", "fp32")
    )  # fmt: skip
    final = json.loads((out / "final.json").read_text())
    assert 0 <= final["test_acc"] <= 1 and final["epochs"] == 1
    assert final["trained_in"] == "fp32"
    assert f"test accuracy {final['test_acc']:.4f}" in proc.stdout
    assert len(jsonl(out / "final.jsonl")) == 1
    assert (out / "curves.png").stat().st_size > 0
    assert (out / "architecture.smash").read_text() == arch.read_text()
    config = json.loads((out / "config.json").read_text())
    assert (config["final"]["epochs"], config["final"]["lr"]) == (1, 0.02)
    assert exported_output_shape(out, (3, 16, 16)) == "torch.Size([1, 10])"


def test_train_resume_refuses_another_architecture(final_setup, tmp_path, capsys):
    from smashc.compiler import to_text
    from smashc.runtime.sampler import Sampler

    ctx, net = final_setup
    first, second = tmp_path / "first.smash", tmp_path / "second.smash"
    first.write_text(to_text(net))
    second.write_text(to_text(Sampler(ctx.cfg.space, 6).sample(1.0, name="final_test")))
    out = tmp_path / "run"
    argv = ["train", "--preset", "smoke", "--epochs", "1", "--precision", "fp32", "--out", str(out)]
    assert run_main([*argv, str(first)], capsys)[0] == 0
    code, _, err = run_main([*argv, "--resume", str(second)], capsys)
    assert code == 1
    assert "checkpoint.pt:1:1: error[E0707]: " in err and "another architecture" in err, err
    code, out_text, err = run_main([*argv, "--resume", str(first)], capsys)
    assert code == 0, err
    assert "the final training had finished: evaluating" in out_text


def _variant(smoke, tmp_path: Path, edits: list[tuple[str, str]]) -> Path:
    text = (smoke[0] / "top" / "rank1.smash").read_text()
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "variant.smash"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "edits",
    [
        [("input 3 x 16 x 16", "input 1 x 16 x 16")],
        pytest.param(
            [("classes 10", "classes 5"), ("linear(out=10)", "linear(out=5)")],
            marks=pytest.mark.slow,  # the same defect as "channels"
            id="classes",
        ),
    ],
    ids=["channels", "classes"],
)
def test_train_rejects_an_architecture_that_does_not_fit_the_dataset(smoke, tmp_path, edits):
    path = _variant(smoke, tmp_path, edits)
    expand(load_file(path))  # a valid architecture, just not for this dataset
    proc = smashc("train", path, "--preset", "smoke", "--out", tmp_path / "o")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert LOCATED.search(proc.stderr), proc.stderr


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """``smashc ARGV`` in this process: (exit status, stdout, stderr)."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_train_reports_a_bad_architecture_file(tmp_path, capsys):
    bad = tmp_path / "bad.smash"
    bad.write_text("network broken {\n    input 3 x 16 x 16\n    classes 10 10\n}\n")
    code, _, err = run_main(
        ["train", str(bad), "--preset", "smoke", "--out", str(tmp_path)], capsys
    )
    assert code == 1
    assert re.search(r"bad\.smash:3:16: error\[E0001\]: unexpected '10'", err), err
    assert "3 |     classes 10 10" in err  # the source line is shown
    assert not (tmp_path / "final.json").exists()


# --- user errors ----------------------------------------------------------------------------

ERRORS = [
    pytest.param(
        ["search", "--dataset", "cifar10", "--data-dir", "/nonexistent", "--preset", "smoke"],
        r"/nonexistent:\d+:\d+: error\[E0701\]: .*CIFAR-10",
        id="missing-dataset",
    ),
    pytest.param(["train", "missing.smash"], r"missing\.smash:1:1: error\[E0305\]", id="no-file"),
    pytest.param(
        ["search", "--device", "cuda", "--preset", "smoke"],
        r"<command line>:1:1: error\[E0704\]: --device cuda",
        marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available"),
        id="no-cuda",
    ),
    pytest.param(
        ["search", "--bogus"], r"smashc: error: unrecognized arguments: --bogus", id="bad-flag"
    ),
    pytest.param(
        ["search", "--preset", "smoke", "--archs", "0"],
        r"<command line>:1:1: error\[E0704\]: --archs must be at least 1, got 0 \(score\.archs\)",
        id="archs-0",
    ),
    pytest.param(
        ["search", "--preset", "smoke", "--seed", "-1", "--refine", "-2"],
        r"--seed must be at least 0, got -1 \(seed\)\n(.*\n)*.*--refine must be at least 0",
        id="two-bad-flags",
    ),
    pytest.param(
        ["train", str(ROOT / "examples" / "resnet20.smash"), "--preset", "smoke", "--lr", "0"],
        r"error\[E0704\]: --lr must be a positive number, got 0\.0 \(final\.lr\)",
        id="train-lr-0",
    ),
    pytest.param(
        ["search", "--epochs", "many"],
        r"smashc search: error: argument --epochs: invalid int value: 'many'",
        id="bad-value",
    ),
    pytest.param(
        ["train", "--preset", "huge", "a.smash"],
        r"smashc train: error: argument --preset: invalid choice: 'huge'",
        id="bad-preset",
    ),
]


@pytest.mark.parametrize("args,message", ERRORS)
def test_user_errors_exit_1_with_a_readable_message(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(args, capsys)
    assert code == 1, (code, err)
    assert "Traceback" not in err
    assert re.search(message, err), err
    assert out == ""
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args", [["train", "missing.smash"], ["search", "--bogus"]])
def test_user_errors_in_a_real_process(args, tmp_path):
    proc = smashc(*args, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() and proc.stdout == ""
    assert "error" in proc.stderr


def test_train_points_at_the_input_or_classes_line_that_does_not_fit(tmp_path, capsys):
    """The smoke dataset is 3x16x16 with 10 classes; ResNet-20 states 3 x 32 x 32."""
    example = ROOT / "examples" / "resnet20.smash"
    assert main(["train", str(example), "--preset", "smoke", "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert re.search(r"resnet20\.smash:7:5: error\[E0704\]: the network takes 3x32x32", err), err
    text = example.read_text().replace("input 3 x 32 x 32", "input 3 x 16 x 16")
    text = text.replace("classes 10", "classes 7")
    fixed = tmp_path / "resnet_small.smash"
    fixed.write_text(text)
    assert main(["train", str(fixed), "--preset", "smoke", "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert re.search(r"resnet_small\.smash:8:5: error\[E0704\]: .* 7 classes", err), err


# --- checking a run's settings --------------------------------------------------------------

BAD_SETTINGS = [
    ("seed", -1),
    ("device", "tpu"),
    ("precision", "fp16"),
    ("val_size", 0),
    ("train.epochs", 0),
    ("train.batch_size", 0),
    ("train.lr", 0.0),
    ("train.lr", float("nan")),
    ("train.betas", (1.0, 0.999)),
    ("train.betas", (0.5, -0.1)),
    ("train.eps", 0.0),
    ("train.weight_decay", -1e-4),
    ("train.steps_per_epoch", 0),
    ("score.archs", 0),
    ("score.archs", 2.5),
    ("score.archs", True),
    ("score.val_images", 0),
    ("score.batch_size", 0),
    ("score.refine", -1),
    ("score.perturb", 0.0),
    ("score.perturb", 1.5),
    ("score.top", 0),
    ("score.bn_batches", -1),
    ("score.z_samples", 0),
    ("final.epochs", 0),
    ("final.batch_size", 0),
    ("final.lr", -0.1),
    ("final.momentum", 1.0),
    ("final.weight_decay", float("inf")),
    ("final.train_images", 0),
    ("space.unit", 0),
    ("space.max_units", 0),
    ("space.bottleneck", 0),
    ("space.max_bottleneck", 0),
    ("space.depth_compression", 0),
    ("space.max_kernel", 9),
    ("space.max_kernel", 4),
    ("space.kernel_from", 1),
    ("space.max_dilation", 0),
    ("space.max_groups", 3),
    ("space.max_banks", 0),
    ("space.block_inputs", ()),
    ("space.max_block_widths", (48, 0, 96)),
    ("space.budgets", (0, 160, 256)),
    ("space.budget_from", 0.2),
    ("space.budget_to", float("nan")),
    ("hypernet.stem_channels", 0),
    ("hypernet.blocks", ()),
    ("hypernet.growth", 0),
    ("hypernet.slope", -0.1),
]


def _with(cfg, path: str, value):
    from dataclasses import replace

    head, _, rest = path.partition(".")
    if not rest:
        return replace(cfg, **{head: value})
    return replace(cfg, **{head: _with(getattr(cfg, head), rest, value)})


@pytest.mark.parametrize("field,value", BAD_SETTINGS, ids=lambda v: str(v))
def test_each_out_of_range_setting_is_named(field, value):
    from smashc.runtime.config import config_problems
    from smashc.runtime.presets import PRESETS

    problems = config_problems(_with(PRESETS["smoke"], field, value))
    assert len(problems) == 1, problems
    assert field in problems[0] and repr(value) in problems[0], problems


def test_presets_and_nesterov_without_momentum():
    from smashc.runtime.config import config_problems
    from smashc.runtime.presets import PRESETS

    for name, cfg in PRESETS.items():
        assert config_problems(cfg) == [], name
    problems = config_problems(_with(PRESETS["smoke"], "final.momentum", 0.0))
    assert problems == ["final.nesterov needs a final.momentum above 0"]
    assert (
        config_problems(
            _with(_with(PRESETS["smoke"], "final.momentum", 0.0), "final.nesterov", False)
        )
        == []
    )


def test_remaining_time_reads_at_its_scale():
    from smashc.runtime.progress import duration as _duration

    assert [_duration(t) for t in (0, 12.7, 250, 3900, 360000)] == [
        "0s",
        "12s",
        "4m10s",
        "1h05m",
        "100h00m",
    ]
