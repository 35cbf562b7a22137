"""bench/groundtruth.py, briefly, on the synthetic dataset: its records, its resume (nothing
is trained twice, a lost record is rebuilt from the trainings' folders), the recipe check
and the noise-ceiling report."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
from scipy import stats
from support import ROOT

from smashc import compiler
from smashc.runtime import runs
from smashc.runtime.runs import read_jsonl


def _tool():
    spec = importlib.util.spec_from_file_location("groundtruth", ROOT / "bench" / "groundtruth.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["groundtruth"] = mod
    spec.loader.exec_module(mod)
    return mod


def _summary(capsys) -> dict:
    return json.loads(capsys.readouterr().out.splitlines()[-1])


def test_groundtruth_records_resumes_and_reports(tmp_path, capsys, monkeypatch):
    gt = _tool()
    out = tmp_path / "gt.jsonl"
    argv = ["--dataset", "synthetic", "--archs", "2", "--epochs", "1", "--train-images", "64",
            "--val-size", "64", "--device", "cpu", "--precision", "fp32", "--threads", "1",
            "--out", str(out), "--runs", str(tmp_path / "runs"), "--json"]  # fmt: skip
    assert gt.main(argv) == 0
    before = _summary(capsys)
    assert before["archs"] == 2 and before["noise_ceiling"] is None  # too few for one
    records = read_jsonl(out)
    assert [r["index"] for r in records] == [0, 1]
    assert records[0]["smash"] != records[1]["smash"]
    ctx, recipe = gt.open_set(gt.arguments(argv))
    for rec in records:
        net = compiler.from_text(rec["smash"])
        assert rec["smash"] == compiler.to_text(gt.architecture(ctx, 0, rec["index"]))
        assert (rec["params"], rec["macs"]) == compiler.totals(compiler.for_training(net))
        assert rec["recipe"] == recipe
        assert [r["seed"] for r in rec["runs"]] == recipe["train_seeds"]
        assert all(0 <= r[k] <= 1 for r in rec["runs"] for k in ("val_error", "test_error"))
        assert rec["seconds"] == pytest.approx(sum(r["seconds"] for r in rec["runs"]))
    assert recipe["train_images"] == 64 and recipe["val_images"] == 64
    assert recipe["final"]["epochs"] == 1 and len(set(recipe["train_seeds"])) == 2

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(gt, "train_final", no_training)
    text = out.read_text(encoding="utf-8")
    assert gt.main(argv) == 0  # every record is there: nothing to do
    assert out.read_text(encoding="utf-8") == text
    out.write_text(text.splitlines(keepends=True)[0], encoding="utf-8")
    assert gt.main(argv) == 0  # the lost record comes back from its finished trainings
    assert read_jsonl(out) == records
    with pytest.raises(SystemExit, match="another recipe"):
        gt.main([*argv, "--seeds", "3"])
    capsys.readouterr()

    def diverging(*args, **kwargs):
        raise runs.diverged("the final training", float("nan"), 0, "batch 0", "--lr")

    monkeypatch.setattr(gt, "train_final", diverging)  # a third architecture's loss diverges
    three = [*argv]
    three[three.index("--archs") + 1] = "3"
    assert gt.main(three) == 0
    summary = _summary(capsys)
    assert (summary["archs"], summary["diverged"], summary["noise_ceiling"]) == (3, 1, None)
    # the report leaves the diverged one out
    assert summary["val_error"]["between"] == before["val_error"]["between"]
    lost = [(r["diverged"], r["val_error"], r["test_error"]) for r in read_jsonl(out)[2]["runs"]]
    assert lost == [(True, None, None)] * 2

    # the report: Spearman between the first two trainings' validation errors
    first = [0.10, 0.12, 0.15, 0.11, 0.20, 0.13, 0.17, 0.09]
    second = [0.11, 0.14, 0.13, 0.12, 0.19, 0.15, 0.16, 0.10]
    test = [0.12, 0.10, 0.11, 0.13, 0.18, 0.14, 0.15, 0.16]  # the second training's test error
    fake = tmp_path / "fake.jsonl"
    fake.write_text(
        "".join(
            json.dumps({**records[0], "index": i, "runs": [
                {**records[0]["runs"][0], "val_error": a, "test_error": b},
                {**records[0]["runs"][1], "val_error": b, "test_error": c},
            ]}) + "\n"
            for i, (a, b, c) in enumerate(zip(first, second, test, strict=True))
        ),
        encoding="utf-8",
    )  # fmt: skip
    assert gt.main(["--report", "--out", str(fake), "--json"]) == 0
    summary = _summary(capsys)
    assert summary["archs"] == 8
    expected = stats.spearmanr(first, second).statistic
    assert summary["noise_ceiling"]["value"] == pytest.approx(expected)
    assert summary["val_error"]["ceiling"] == summary["noise_ceiling"]
    expected = stats.spearmanr(second, test).statistic  # the trainings' test errors
    assert summary["test_error"]["ceiling"]["value"] == pytest.approx(expected)
    assert summary["noise_ceiling"]["low"] <= summary["noise_ceiling"]["high"]


def test_an_unusable_checkpoint_is_trained_afresh(tmp_path, capsys):
    gt = _tool()
    out, folder = tmp_path / "gt.jsonl", tmp_path / "runs" / "arch000-s0"
    argv = ["--dataset", "synthetic", "--archs", "1", "--epochs", "1", "--train-images", "64",
            "--val-size", "64", "--device", "cpu", "--precision", "fp32", "--threads", "1",
            "--seeds", "1", "--out", str(out), "--runs", str(tmp_path / "runs")]  # fmt: skip
    assert gt.main(argv) == 0
    first = read_jsonl(out)
    out.unlink()  # the record and the result are lost, a checkpoint that cannot be read is left
    (folder / "result.json").unlink()
    (folder / "checkpoint.pt").write_bytes(b"not a checkpoint")
    capsys.readouterr()
    assert gt.main(argv) == 0
    err = capsys.readouterr().err
    assert f"{folder}: its checkpoint cannot be resumed" in err and "training afresh" in err
    again = read_jsonl(out)
    assert again[0]["runs"][0]["val_error"] == first[0]["runs"][0]["val_error"]  # same seed
    assert again[0]["runs"][0]["resumed"] is False
