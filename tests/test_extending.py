"""Extending the runtime as docs/search.md and docs/experiments.md show: a search strategy
and an experiment, each one class or module registered at run time, reach the command line
with nothing else edited."""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from smashc.cli import main
from smashc.runtime import experiments, strategies
from smashc.runtime.config import SearchConfig
from smashc.runtime.experiments import common
from smashc.runtime.rules import Flag, count, setting
from smashc.runtime.sampler import Sampler
from smashc.runtime.seeds import Stream
from smashc.runtime.strategies.sample import sampled

# --- a search strategy (docs/search.md, "Adding a search strategy") ------------------------


class WidestOfThree:
    """Of every three sampled architectures, only the one with the most parameters."""

    name = "widest"
    label = "widest of three"

    def budget(self, cfg) -> int:
        return 2

    def propose(self, ctx, history, start):
        for i in range(start, start + self.budget(ctx.cfg)):
            drawn = [
                Sampler(ctx.cfg.space, ctx.seed(Stream.SCORE_ARCH, i, k)).sample(name=f"w{i}")
                for k in range(3)
            ]
            yield i, max(drawn, key=lambda net: sum(b.banks[0] * len(b.layers) for b in net.blocks))


@pytest.fixture
def widest():
    strategies.register(WidestOfThree)
    yield
    del strategies.STRATEGIES["widest"]


def test_a_registered_strategy_runs_after_sampling(widest, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["search", "--preset", "smoke", "--epochs", "1", "--archs", "2", "--no-final"]
    code = main([*argv, "--set", "score.strategies=sample,widest", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    with (out / "ranking.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["source"], int(r["index"])) for r in rows) == [
        ("sample", 0), ("sample", 1), ("widest", 2), ("widest", 3)
    ]  # fmt: skip
    assert (out / "archs" / "widest0002.smash").read_text().startswith("network w2")


def test_an_unknown_strategy_is_a_located_error(tmp_path, capsys):
    code = main(["search", "--preset", "smoke", "--set", "score.strategies=sample,nope",
                 "--out", str(tmp_path / "x")])  # fmt: skip
    assert code == 1
    assert "error[E0704]: score.strategies must be distinct search strategies" in (
        capsys.readouterr().err
    )


def test_registering_a_strategy_twice_is_refused(widest):
    with pytest.raises(ValueError, match="registered twice"):
        strategies.register(WidestOfThree)


# --- an experiment (docs/experiments.md, "Adding an experiment") ---------------------------


@dataclass(frozen=True)
class SizesConfig:
    search: SearchConfig = setting(own_names=True)
    archs: int = setting(3, count(1), Flag("--archs", ("sizes",), "architectures", "K"))
    checkpoint: str | None = setting(None, None, common.CHECKPOINT_FLAG)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def run_sizes(cfg: SizesConfig, out: Path) -> dict:
    """The SMASH error of the first ``archs`` sampled architectures next to their sizes."""
    from smashc.runtime.scoring import Scorer

    cfg, ctx, model = common.open_experiment(cfg, out)
    scorer = Scorer(ctx, model)
    rows = [scorer.score(i, "sample", sampled(ctx, i)) for i in range(cfg.archs)]
    summary = {"archs": [{"params": s.params, "error": s.error} for s in rows]}
    common.write_json(out / "summary.json", summary)
    return summary


def show_sizes(summary: dict) -> None:
    for row in summary["archs"]:
        print(f"{row['params']:>8} parameters: SMASH error {row['error']:.3f}")


@pytest.fixture
def sizes():
    presets = {"smoke": SizesConfig(search=common.preset("smoke"))}
    experiments.register("sizes", "SMASH error against size", presets, run_sizes, show_sizes)
    yield
    del experiments.EXPERIMENTS["sizes"]


def test_a_registered_experiment_is_a_command_with_its_own_flags(sizes, tmp_path, capsys):
    out = tmp_path / "sizes"
    argv = ["experiment", "sizes", "--preset", "smoke", "--epochs", "1", "--archs", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 2 and all("parameters: SMASH error" in line for line in printed)
    config = json.loads((out / "config.json").read_text())
    assert config["archs"] == 2 and config["search"]["train"]["epochs"] == 1
    assert (out / "smash" / "checkpoint.pt").is_file()
    assert main([*argv, "--archs", "0", "--out", str(out)]) == 1
    assert "error[E0704]: --archs must be at least 1, got 0 (archs)" in capsys.readouterr().err
