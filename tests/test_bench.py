"""The fast benchmark scripts run and print their figures (``make bench`` reads those of the
compile scripts; ``sampler.py`` compares the sampler's statistics with the reference's).

No timing is checked, only that each script still works against the code it measures and
reports what ``bench/run.py`` expects; the floor benchmark also asserts, as it runs, that
the graphs it rebuilds equal the ones compiling makes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def figures(script: str, *args: str) -> dict:
    cmd = [sys.executable, str(BENCH / script), *args, "--threads", "1", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_compile_floor_reports_both_graphs_and_the_whole_compile():
    res = figures("compile_floor.py", "--archs", "3")
    assert set(res) == {"early", "late"}
    for r in res.values():
        assert r["networkx_ms"] > 0 and r["fx_ms"] > 0
        assert r["floor_ms"] == r["networkx_ms"] + r["fx_ms"]
    assert res["late"]["ir_nodes"] > res["early"]["ir_nodes"]  # annealing grows networks


def test_compile_reports_every_stage_of_both_paths():
    res = figures("compile.py", "--archs", "2", "--progress", "0")
    assert set(res["text"]) >= {"parse", "expand", "lower", "passes", "encode", "fx"}
    # the training path compiles the sampler's network object: nothing to parse or expand
    assert set(res["training"]) >= {"lower", "passes", "encode", "fx"}
    assert not set(res["training"]) & {"parse", "expand"}
    for path in res.values():
        assert path["archs_per_s"] > 0


def test_sampler_reports_both_draws_side_by_side():
    res = figures("sampler.py", "--archs", "40")
    assert set(res) == {"early", "late"}
    for r in res.values():
        assert "MACs" in r["tests"] and "bottleneck/cin" in r["tests"]
        assert set(r["costs"]) >= {"smashc", "independent draw"}
        assert r["histograms"] and all(0 <= h["smashc"] <= 1 for h in r["histograms"])


def test_ranking_and_levers_report_every_predictor(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from synthetic_truth import write_truth

    truth = str(write_truth(tmp_path / "gt.jsonl", 6))
    res = figures("ranking.py", "--preset", "smoke", "--groundtruth", truth, "--out",
                  str(tmp_path / "ranking"))  # fmt: skip
    assert res["archs"] == 6 and {"smash", "noise ceiling", "params", "synflow"} <= set(
        res["predictors"]
    )
    assert res["predictors"]["params"]["rho"]["value"] == 1.0  # the made-up truth's order
    res = figures("levers.py", "--preset", "smoke", "--groundtruth", truth, "--only",
                  "demo,bn-4", "--out", str(tmp_path / "levers"))  # fmt: skip
    assert set(res) == {"demo", "bn-4"}
    levers = tmp_path / "levers"
    assert (levers / "demo" / "smash" / "checkpoint.pt").is_file()
    assert not (levers / "bn-4" / "smash").exists()  # rescored the demo variant's network
    config = json.loads((levers / "bn-4" / "config.json").read_text(encoding="utf-8"))
    assert config["search"]["score"]["bn_batches"] == 4
    assert "| bn-4 | BN recalibrated on 4 batches |" in (levers / "table.md").read_text()
