"""The baselines a search trains beside its winner (``final.baselines``, runtime/baselines.py):
the same recipe as the winner, their results in summary.json and the printed summary,
``--no-baselines``, resuming without retraining, and the ResNet-20 baseline being the
bundled example with the dataset's input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from smash_space import one_thread  # noqa: F401 (autouse)
from support import EXAMPLES

from smashc import compiler
from smashc.cli import main
from smashc.runtime import baselines, final
from smashc.runtime.context import open_context
from smashc.runtime.presets import PRESETS

WITH_BOTH = ["--set", "final.baselines=random,resnet20"]


def _search(out: Path, *extra: str) -> int:
    return main(["search", "--preset", "smoke", "--out", str(out), *extra])


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("baselines") / "run"
    assert _search(out, *WITH_BOTH) == 0
    return out


def test_baselines_train_with_the_winners_recipe(run, capsys):
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert set(summary["baselines"]) == {"random", "resnet20"}
    winner = json.loads((run / "final" / "final.json").read_text(encoding="utf-8"))
    for name, b in summary["baselines"].items():
        folder = run / "baselines" / name
        assert b["dir"] == str(folder)
        result = json.loads((folder / "final.json").read_text(encoding="utf-8"))
        assert b["test_accuracy"] == result["test_acc"]
        assert result["epochs"] == winner["epochs"] == PRESETS["smoke"].final.epochs
        assert (folder / "model" / "weights.pt").is_file()
        history = [json.loads(line) for line in (folder / "final.jsonl").read_text().splitlines()]
        assert len(history) == winner["epochs"]
    ctx = open_context(PRESETS["smoke"])
    drawn = compiler.to_text(baselines.random_arch(ctx))
    assert (run / "baselines" / "random" / "architecture.smash").read_text() == drawn
    assert summary["baselines"]["resnet20"]["params"] > summary["baselines"]["random"]["params"]


def test_resnet20_baseline_is_the_bundled_example_for_the_dataset():
    ctx = open_context(PRESETS["smoke"])
    net = baselines.resnet20(ctx)
    assert net.input == ctx.data.shape and net.classes == ctx.data.classes
    c, h, w = ctx.data.shape
    example = (EXAMPLES / "resnet20.smash").read_text(encoding="utf-8")
    example = example.replace("input 3 x 32 x 32", f"input {c} x {h} x {w}")
    bundled = compiler.from_text(example, str(EXAMPLES / "resnet20.smash"), EXAMPLES)
    assert compiler.totals(compiler.for_training(net)) == compiler.totals(
        compiler.for_training(bundled)
    )
    assert final.misfit(net, ctx) is None


def test_resume_keeps_the_baselines_and_no_baselines_skips_them(run, tmp_path, capsys):
    import shutil

    out = tmp_path / "again"
    shutil.copytree(run, out)
    capsys.readouterr()
    calls = []
    original = baselines.train_final

    def counting(ctx, net, folder, resume=False, text=None):
        calls.append((folder.name, resume))
        return original(ctx, net, folder, resume, text)

    baselines.train_final = counting
    try:
        assert _search(out, *WITH_BOTH, "--resume") == 0
    finally:
        baselines.train_final = original
    printed = capsys.readouterr().out
    assert calls == [("random", True), ("resnet20", True)]  # finished: read back, not redone
    before = json.loads((run / "summary.json").read_text(encoding="utf-8"))["baselines"]
    after = json.loads((out / "summary.json").read_text(encoding="utf-8"))["baselines"]
    assert [after[k]["test_accuracy"] for k in after] == [
        before[k]["test_accuracy"] for k in before
    ]
    assert "baseline random:" in printed and "baseline resnet20:" in printed
    config = tmp_path / "both.json"  # a --config is applied before the flags, --set after
    config.write_text('{"final": {"baselines": ["random", "resnet20"]}}', encoding="utf-8")
    assert _search(tmp_path / "none", "--config", str(config), "--no-baselines") == 0
    summary = json.loads((tmp_path / "none" / "summary.json").read_text(encoding="utf-8"))
    assert summary["baselines"] == {} and not (tmp_path / "none" / "baselines").exists()
    assert "  baseline " not in capsys.readouterr().out


def test_unknown_baseline_is_a_setting_error(tmp_path, capsys):
    assert _search(tmp_path / "x", "--set", "final.baselines=resnet21") == 1
    err = capsys.readouterr().err
    assert "error[E0704]" in err and "distinct baselines (random, resnet20)" in err
