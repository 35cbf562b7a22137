"""The ranking benchmark (``smashc experiment ranking``) and the ground-truth reader behind it.

The ground truth here is made up on purpose (``synthetic_truth.py``): the "true" error
falls with the parameter count, so the statistics of the ``params`` predictor are known
exactly (rho = tau = 1, every top architecture found, the best one picked), and a second
training with its order partly shuffled gives a known noise ceiling. Then: the
held-out part, resuming without rescoring, and every damaged or unfitting file as an E0730
at its line.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
from scipy import stats
from smash_space import one_thread  # noqa: F401 (autouse)
from synthetic_truth import SPACE, recipe, write_truth

from smashc.cli import main
from smashc.runtime import groundtruth
from smashc.runtime.scoring import Scorer
from smashc.runtime.stats import top_recall

N = 12


@pytest.fixture(scope="module")
def truth_file(tmp_path_factory) -> Path:
    return write_truth(tmp_path_factory.mktemp("gt") / "gt.jsonl", N)


def _run(argv, capsys):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def ranked(truth_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("ranking") / "run"
    argv = ["experiment", "ranking", "--preset", "smoke", "--groundtruth", truth_file,
            "--out", out, "--heldout-from", "9"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    return out, argv


def test_top_recall_by_hand():
    true = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert top_recall(true, true, 0.2) == 1.0
    assert top_recall(true[::-1], true, 0.2) == 0.0
    assert top_recall([0.1, 0.9, 0.05, *true[3:]], true, 0.2) == 0.5  # finds index 0, not 1
    assert top_recall([3, 2, 1], [1, 2, 3], 0.1) == 0.0  # at least one architecture is taken
    with pytest.raises(ValueError):
        top_recall([1, 2], [1, 2], 0)


def test_ranking_reports_known_statistics(ranked, truth_file):
    out, _ = ranked
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    truth = groundtruth.read(truth_file).part(range(9))
    assert summary["archs"] == 9 and summary["part"] == "tuning" and summary["trainings"] == 2
    rows = summary["predictors"]
    assert set(rows) == {"noise ceiling", "smash", "synflow", "naswot", "snip", "grad_norm",
                         "params", "macs", "random"}  # fmt: skip
    # true error falls with the parameter count, and params is negated: a perfect ranking
    assert rows["params"]["spearman"]["value"] == pytest.approx(1.0)
    assert rows["params"]["kendall"]["value"] == pytest.approx(1.0)
    assert rows["params"]["top_recall"] == 1.0
    assert rows["params"]["picked_error"] == pytest.approx(min(t.error for t in truth.archs))
    first = [t.val_errors[0] for t in truth.archs]
    second = [t.val_errors[1] for t in truth.archs]
    ceiling = rows["noise ceiling"]["spearman"]
    assert ceiling["value"] == pytest.approx(stats.spearmanr(first, second).statistic)
    assert ceiling["low"] <= ceiling["value"] <= ceiling["high"]
    with (out / "ranking.csv").open(newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert [int(r["index"]) for r in table] == [t.index for t in truth.archs]
    smash = [float(r["smash_error"]) for r in table]
    true = [float(r["val_error"]) for r in table]
    assert rows["smash"]["spearman"]["value"] == pytest.approx(
        stats.spearmanr(smash, true).statistic, abs=1e-3
    )
    synflow = [-float(r["synflow"]) for r in table]
    assert rows["synflow"]["spearman"]["value"] == pytest.approx(
        stats.spearmanr(synflow, true).statistic, abs=1e-3
    )
    assert (out / "ranking.png").stat().st_size > 0


def test_heldout_part_and_resume_without_rescoring(ranked, capsys, monkeypatch):
    out, argv = ranked

    def no_scoring(*args, **kwargs):
        raise AssertionError("scored again")

    monkeypatch.setattr(Scorer, "score", no_scoring)
    code, text, _ = _run(argv, capsys)
    assert code == 0 and "ranking of 9 architectures" in text and "noise ceiling" in text
    monkeypatch.undo()
    code, text, err = _run([*argv, "--heldout"], capsys)
    assert code == 0, err
    summary = json.loads((out / "summary-heldout.json").read_text(encoding="utf-8"))
    assert summary["part"] == "held-out" and summary["archs"] == N - 9
    assert (out / "ranking-heldout.csv").is_file()
    tuning = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert tuning["part"] == "tuning"  # the tuning part's report is kept beside it
    code, _, err = _run([*argv, "--truth", "test"], capsys)
    assert code == 0, err
    test = json.loads((out / "summary-test.json").read_text(encoding="utf-8"))
    assert test["truth"] == "test" and test["archs"] == 9
    # the made-up test errors are the validation errors + 0.01: the same order
    assert test["predictors"]["params"]["spearman"]["value"] == pytest.approx(1.0)
    assert test["best_true_error"] == pytest.approx(tuning["best_true_error"] + 0.01)


def _damaged(tmp_path, truth_file, edit) -> Path:
    lines = truth_file.read_text(encoding="utf-8").splitlines()
    recs = [json.loads(line) for line in lines]
    edit(recs)
    path = tmp_path / "bad.jsonl"
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in recs),
        encoding="utf-8",
    )
    return path


def _set(key, value, line=3):
    def edit(recs):
        recs[line - 1][key] = value

    return edit


def _set_run(key, value):
    def edit(recs):
        recs[2]["runs"][1][key] = value

    return edit


def _replace_line(text):
    def edit(recs):
        recs[2] = text

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_replace_line("[1, 2]"), "bad.jsonl:3:1: error[E0730]: not a JSON record"),
        (_replace_line("{"), "bad.jsonl:3:1: error[E0730]: not a JSON record"),
        (_set("runs", []), "bad.jsonl:3:1: error[E0730]: `runs` must list at least one"),
        (_set_run("val_error", -5), "bad.jsonl:3:1: error[E0730]: an error that is not a number"),
        (_set_run("val_error", "low"), "bad.jsonl:3:1: error[E0730]: an error that is not a num"),
        (_set("index", 1), "bad.jsonl:3:1: error[E0730]: architecture 1 recorded twice"),
        (_set("params", -1), "bad.jsonl:3:1: error[E0730]: index, params and macs must be co"),
        (_set("recipe", {"dataset": "x"}), "bad.jsonl:3:1: error[E0730]: a recipe without"),
        (_set("smash", "network {"), "bad.jsonl:3:1"),
    ],
)
def test_damaged_groundtruth_is_located(tmp_path, truth_file, capsys, edit, message):
    path = _damaged(tmp_path, truth_file, edit)
    code, _, err = _run(["experiment", "ranking", "--preset", "smoke", "--groundtruth", path,
                         "--out", tmp_path / "out"], capsys)  # fmt: skip
    assert code == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_unfitting_or_missing_groundtruth(tmp_path, truth_file, capsys):
    other = _damaged(tmp_path, truth_file, lambda recs: [r.update(recipe=recipe(
        replace(SPACE, max_kernel=3))) for r in recs])  # fmt: skip
    base = ["experiment", "ranking", "--preset", "smoke", "--out", tmp_path / "out"]
    code, _, err = _run([*base, "--groundtruth", other], capsys)
    assert code == 1 and "error[E0730]: this set was drawn from another search space" in err
    code, _, err = _run([*base, "--groundtruth", truth_file, "--dataset", "fashion-mnist",
                         "--data-dir", tmp_path], capsys)  # fmt: skip
    assert code == 1 and "error[E0730]: this set was trained on synthetic" in err
    code, _, err = _run([*base, "--groundtruth", truth_file, "--heldout-from", "10",
                         "--heldout"], capsys)  # fmt: skip
    assert code == 1 and "held-out part (index >= 10) has 2 trained architectures" in err
    code, _, err = _run([*base, "--groundtruth", tmp_path / "none.jsonl"], capsys)
    assert code == 1 and "none.jsonl:1:1: error[E0730]: ground-truth file not found" in err
    code, _, err = _run(base, capsys)
    assert code == 1 and "error[E0704]: --groundtruth FILE is needed" in err
    assert not (tmp_path / "out").exists()
