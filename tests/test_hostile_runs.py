"""Golden tests of hostile run inputs: damaged checkpoints and logs, data files that would
blow up, settings and config files out of bounds. Each ends in a located error (exit 1),
never a traceback nor a run that goes on as if nothing were wrong.

Each case prepares a run folder, data files or a config file under ``tmp_path``, runs
``smashc`` in this process and compares its diagnostics (stderr from the first headline
on, after the run's progress lines) with ``tests/runtime_diagnostics/NAME.expected``,
``tmp_path`` written as ``<TMP>``. Refresh the goldens (after checking them by eye) with::

    SMASHC_UPDATE_GOLDENS=1 .venv/bin/python -m pytest tests/test_hostile_runs.py

``CASES`` also names each case's codes, so that a careless refresh cannot accept another
error.
"""

from __future__ import annotations

import gzip
import json
import pickle
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from support import ROOT, check_golden, ok, smashc

from smashc.cli import main
from smashc.runtime import checkpoints
from smashc.runtime.oneshot import OneShot
from smashc.runtime.presets import PRESETS

GOLDEN = ROOT / "tests" / "runtime_diagnostics"
SMOKE = ["search", "--preset", "smoke"]
FEW = ["--archs", "2", "--refine", "0"]  # the runs the checkpoint and log cases resume


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A finished smoke search (its final training included) and the HyperNet training of
    one with another seed."""
    base = tmp_path_factory.mktemp("hostile")
    ok(smashc(*SMOKE, *FEW, "--out", base / "done"))
    ok(smashc(*SMOKE, *FEW, "--seed", "1", "--no-final", "--out", base / "seed1"))
    return {"done": base / "done", "seed1": base / "seed1"}


def _copy(runs: dict[str, Path], tmp: Path) -> Path:
    out = tmp / "run"
    shutil.copytree(runs["done"], out)
    return out


def _resume(out: Path) -> list[str]:
    return [*SMOKE, *FEW, "--resume", "--out", str(out)]


# --- point 8: checkpoints and logs with the wrong contents -----------------------------------


def _edited_checkpoint(edit: Callable[[dict], None], resave: bool = False):
    """A case whose run's HyperNet checkpoint is ``edit``-ed in place: written back as it
    is (its digest now stale) or, with ``resave``, through ``checkpoints.save`` with the
    run's own fingerprint (a new digest)."""

    def prepare(runs, tmp):
        out = _copy(runs, tmp)
        path = out / "checkpoint.pt"
        state = torch.load(path, weights_only=True)
        edit(state)
        if resave:
            fingerprint = state.pop("fingerprint")
            del state["digest"]
            checkpoints.save(state, path, fingerprint)
        else:
            torch.save(state, path)
        return _resume(out)

    return prepare


def _empty_checkpoint(which: str):
    def prepare(runs, tmp):
        out = _copy(runs, tmp)
        torch.save({}, out / which)
        return _resume(out)

    return prepare


def _first_tensor(state: dict) -> str:
    return next(iter(state["model"]))


def _other_hypernet(state: dict) -> None:
    smoke = PRESETS["smoke"]
    space = replace(smoke.space, input=(3, 16, 16), classes=10)
    state["model"] = OneShot(space, replace(smoke.hypernet, growth=5)).state_dict()


def _other_seed(runs, tmp):
    out = _copy(runs, tmp)
    shutil.copyfile(runs["seed1"] / "checkpoint.pt", out / "checkpoint.pt")
    return _resume(out)


def _score_record(edit: Callable[[dict], dict], line: int = 2):
    """A case whose run's ``scores.jsonl`` has record ``line`` replaced by ``edit(record)``."""

    def prepare(runs, tmp):
        out = _copy(runs, tmp)
        path = out / "scores.jsonl"
        lines = path.read_text().splitlines()
        lines[line - 1] = json.dumps(edit(json.loads(lines[line - 1])))
        path.write_text("\n".join(lines) + "\n")
        return _resume(out)

    return prepare


_OTHER_NET = """network other {
    input 3 x 16 x 16
    classes 10
    stem { conv(out=16) }
    head { gap -> linear(out=10) }
}
"""


def _drop(key: str):
    return lambda rec: {k: v for k, v in rec.items() if k != key}


# --- point 9: data that blows up ----------------------------------------------------------------


def _idx(arr: np.ndarray) -> bytes:
    head = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim)
    return head + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()


_FM = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
       "t10k-labels-idx1-ubyte")  # fmt: skip


def _fashion(train: int = 200, test: int = 20, side: int = 8, files: dict | None = None):
    """A case with a small Fashion-MNIST folder (gzipped IDX files), some files' bytes
    given by ``files`` (base name -> bytes, written gzipped)."""

    def prepare(runs, tmp):
        folder = tmp / "fashion"
        folder.mkdir()
        rng = np.random.default_rng(0)
        written = {
            _FM[0]: _idx(rng.integers(0, 255, (train, side, side), dtype=np.uint8)),
            _FM[1]: _idx((np.arange(train) % 10).astype(np.uint8)),
            _FM[2]: _idx(rng.integers(0, 255, (test, side, side), dtype=np.uint8)),
            _FM[3]: _idx((np.arange(test) % 10).astype(np.uint8)),
            **(files or {}),
        }
        for name, data in written.items():
            (folder / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=1))
        return [*SMOKE, "--dataset", "fashion-mnist", "--data-dir", str(folder),
                "--out", str(tmp / "run")]  # fmt: skip

    return prepare


# 100 images of 8x8 as the header says, followed by 20 MB of zeros (a 20 KB gzip)
_BOMB = _idx(np.zeros((100, 8, 8), np.uint8)) + bytes(20_000_000)
_NDIM_255 = struct.pack(">BBBB", 0, 0, 0x08, 255) + struct.pack(">I", 1) * 255 + b"\x00"


def _cifar(batch: Callable[[int], object] | None = None, meta: object = None):
    """A case with a small CIFAR-10 tree (40 images a batch); ``batch(i)`` replaces what
    ``data_batch_1`` pickles, ``meta`` what ``batches.meta`` does."""

    def prepare(runs, tmp):
        folder = tmp / "cifar-10-batches-py"
        folder.mkdir()
        rng = np.random.default_rng(0)

        def real(i):
            data = rng.integers(0, 255, (40, 3072), dtype=np.uint8)
            return {b"data": data, b"labels": [k % 10 for k in range(40)]}

        for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
            obj = batch(i) if batch is not None and i == 0 else real(i)
            (folder / name).write_bytes(obj if isinstance(obj, bytes) else pickle.dumps(obj, 2))
        if meta is not None:
            (folder / "batches.meta").write_bytes(pickle.dumps(meta, 2))
        return [*SMOKE, "--dataset", "cifar10", "--data-dir", str(folder),
                "--out", str(tmp / "run")]  # fmt: skip

    return prepare


def _dag(_: int) -> dict:
    """60 levels of lists that each hold the level below twice: 1 KB to pickle, 2^60
    items to walk."""
    x: list = [0]
    for _ in range(60):
        x = [x, x]
    return {b"data": x, b"labels": [0]}


def _shared_rows(_: int) -> dict:
    """2^20 references to one row of 3072 pixels: 24 GiB as an int64 array."""
    row = list(range(3072))
    return {b"data": [row] * 2**20, b"labels": [0] * 2**20}


# --- point 10: settings and config files -----------------------------------------------------


def _config(text: str | None, path: str | None = None):
    def prepare(runs, tmp):
        where = path or str(tmp / "config.json")
        if text is not None:
            Path(where).write_text(text)
        return [*SMOKE, "--config", where, "--out", str(tmp / "run")]

    return prepare


def _argv(*args: str):
    def prepare(runs, tmp):
        return [a.replace("OUT", str(tmp / "run")) for a in args]

    return prepare


@dataclass(frozen=True)
class Case:
    prepare: Callable[[dict[str, Path], Path], list[str]]
    codes: tuple[str, ...]


CASES: dict[str, Case] = {
    # point 8: the HyperNet training's checkpoint
    "checkpoint_empty": Case(_empty_checkpoint("checkpoint.pt"), ("E0707",)),
    "checkpoint_missing_tensor": Case(
        _edited_checkpoint(lambda s: s["model"].pop(_first_tensor(s))), ("E0707",)
    ),
    "checkpoint_extra_tensor": Case(
        _edited_checkpoint(lambda s: s["model"].update(extra=torch.zeros(3))), ("E0707",)
    ),
    "checkpoint_wrong_shape": Case(
        _edited_checkpoint(lambda s: s["model"].update({_first_tensor(s): torch.zeros(2, 2)})),
        ("E0707",),
    ),
    "checkpoint_epoch_string": Case(_edited_checkpoint(lambda s: s.update(epoch="2")), ("E0707",)),
    "checkpoint_epoch_negative": Case(_edited_checkpoint(lambda s: s.update(epoch=-1)), ("E0707",)),
    "checkpoint_epoch_huge": Case(_edited_checkpoint(lambda s: s.update(epoch=10**9)), ("E0707",)),
    "checkpoint_epoch_huge_resaved": Case(
        _edited_checkpoint(lambda s: s.update(epoch=10**9), resave=True), ("E0707",)
    ),
    "checkpoint_other_hypernet_resaved": Case(
        _edited_checkpoint(_other_hypernet, resave=True), ("E0707",)
    ),
    "checkpoint_other_seed": Case(_other_seed, ("E0707",)),
    "final_checkpoint_empty": Case(_empty_checkpoint("final/checkpoint.pt"), ("E0707",)),
    # point 8: scores.jsonl
    "scores_error_negative": Case(_score_record(lambda r: {**r, "error": -5}), ("E0707",)),
    "scores_error_nan": Case(_score_record(lambda r: {**r, "error": float("nan")}), ("E0707",)),
    "scores_error_word": Case(_score_record(lambda r: {**r, "error": "low"}), ("E0707",)),
    "scores_text_garbage": Case(_score_record(lambda r: {**r, "text": "}{ garbage"}), ("E0707",)),
    "scores_text_other_network": Case(
        _score_record(lambda r: {**r, "text": _OTHER_NET}), ("E0707",)
    ),
    "scores_missing_field": Case(_score_record(_drop("params")), ("E0707",)),
    # point 9: data files
    "idx_gzip_bomb": Case(_fashion(files={_FM[0]: _BOMB}), ("E0702",)),
    "idx_ndim_255": Case(_fashion(files={_FM[2]: _NDIM_255}), ("E0702",)),
    "idx_65_training_images": Case(_fashion(train=65), ("E0704", "E0704")),
    "idx_no_test_images": Case(_fashion(test=0), ("E0702",)),
    "idx_1x1_images": Case(_fashion(side=1), ("E0704",)),
    "cifar_dag_pickle": Case(_cifar(batch=_dag), ("E0702",)),
    "cifar_shared_rows": Case(_cifar(batch=_shared_rows), ("E0702",)),
    "cifar_meta_not_utf8": Case(
        _cifar(meta={b"label_names": [b"plane\xff", *(b"c%d" % i for i in range(9))]}),
        ("E0702",),
    ),
    # point 10: settings and config files
    "config_dev_zero": Case(_config(None, "/dev/zero"), ("E0704",)),
    "config_nested_100000": Case(
        _config('{"train": ' + "[" * 100_000 + "]" * 100_000 + "}"), ("E0704",)
    ),
    "set_batch_size_over_the_split": Case(
        _argv(*SMOKE, "--set", "train.batch_size=1000", "--out", "OUT"), ("E0704",)
    ),
    "set_hypernet_growth": Case(
        _argv(*SMOKE, "--set", "hypernet.growth=100000", "--out", "OUT"), ("E0704",)
    ),
    "set_space_max_banks": Case(
        _argv(*SMOKE, "--set", "space.max_banks=100000000", "--out", "OUT"), ("E0704",)
    ),
    "define_arabic_indic_digit": Case(
        _argv("check", "-D", "n=\u0663", str(ROOT / "examples" / "resnet20.smash")), ("E0102",)
    ),
    "define_underscore_digits": Case(
        _argv("check", "-D", "n=1_0", str(ROOT / "examples" / "resnet20.smash")), ("E0102",)
    ),
}


def _diagnostics(err: str) -> str:
    """``err`` from its first headline on (a run's progress lines come before)."""
    start = err.index(": error[")
    return err[err.rfind("\n", 0, start) + 1 :]


def _codes(err: str) -> list[str]:
    return [
        line.split("error[", 1)[1].split("]", 1)[0]
        for line in err.splitlines()
        if ": error[" in line and not line.startswith(" ")
    ]


def test_every_case_has_a_golden_and_no_golden_is_orphaned():
    assert {p.stem for p in GOLDEN.glob("*.expected")} == set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_hostile_run_input_is_a_located_error(name, runs, tmp_path, capsys):
    case = CASES[name]
    argv = case.prepare(runs, tmp_path)
    capsys.readouterr()
    rc = main(argv)
    _, err = capsys.readouterr()
    assert rc == 1, err[-3000:]
    assert "Traceback" not in err
    shown = _diagnostics(err).replace(str(tmp_path), "<TMP>")
    check_golden(GOLDEN / f"{name}.expected", shown)
    assert tuple(_codes(shown)) == case.codes
    for line in shown.splitlines():  # every headline has a place: a file or the command line
        if ": error[" in line and not line.startswith(" "):
            assert not line.startswith("<unknown>") and ":0:0:" not in line, line
