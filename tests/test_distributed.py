"""Tests of runs on several processes (``torch.distributed`` with Gloo, 2 ranks on the CPU,
started with ``torch.distributed.run --standalone``):

* one HyperNet step on 2 ranks leaves the weights and BN statistics one process leaves
  after a step on a meta-batch of the same two architectures and batches (allclose);
* a bad process-group setting is a located error, not a hang: WORLD_SIZE without the
  rendezvous address (E0751), a rendezvous nobody answers (E0752, after the timeout), an
  experiment under torchrun (E0754), (slow) a final batch the ranks cannot share (E0753);
* (slow) a ``--preset smoke`` search on 2 ranks ranks as one process with a meta-batch of
  2 does; its final training exports a model that loads in a fresh interpreter; a 2-rank
  run whose rank 1 is SIGKILLed mid-training, resumed, ends with the same ranking, and
  resumed on one process goes on to the end; one stopped by SIGTERM saves the step where
  both ranks stopped and resumes to the same ranking;
  ``bench/distributed.py`` runs and reports both layouts (no timing is checked).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from dist_worker import CONFIG, one_step
from support import ENV, ROOT, exported_output_shape, ok, smashc

from smashc.runtime import runs
from smashc.runtime.context import open_context

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]


def _torchrun(*args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TORCHRUN, *map(str, args)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_two_rank_step_is_a_meta_batch_step(tmp_path):
    ok(_torchrun(ROOT / "tests" / "dist_worker.py", tmp_path / "two.pt"))
    two = torch.load(tmp_path / "two.pt", weights_only=True)
    one = one_step(open_context(CONFIG), [0, 1]).state_dict()
    assert two.keys() == one.keys()
    for name, value in one.items():
        if value.is_floating_point():
            torch.testing.assert_close(two[name], value, rtol=1e-5, atol=1e-6, msg=name)


def _env(**kw: str) -> dict[str, str]:
    env = {k: v for k, v in ENV.items() if k not in ("MASTER_ADDR", "MASTER_PORT")}
    return {**env, "RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", **kw}


def _search_with(env: dict[str, str], out: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "smashc", "search", "--preset", "smoke", "--out", out]
    return subprocess.run(
        list(map(str, cmd)), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_world_size_without_a_rendezvous_is_an_error(tmp_path):
    proc = _search_with(_env(), tmp_path / "run")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(
        "<command line>:1:1: error[E0751]: WORLD_SIZE is 2 but MASTER_ADDR, MASTER_PORT "
        "are not set: start smashc with torchrun"
    ), proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_rendezvous_nobody_answers_times_out_with_an_error(tmp_path):
    env = _env(MASTER_ADDR="127.0.0.1", MASTER_PORT="9", SMASHC_INIT_TIMEOUT="1")
    proc = _search_with(env, tmp_path / "run")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "<command line>:1:1: error[E0752]: rank 1 of 2 could not reach the others at 127.0.0.1:9 ("
    ), proc.stderr
    assert "SMASHC_INIT_TIMEOUT is 1 s): check that every node runs the same command" in last


@pytest.mark.slow
def test_a_final_batch_not_divisible_by_the_ranks_is_an_error(tmp_path):
    proc = smashc(
        "search", "--preset", "smoke", "--device", "cpu", "--nproc", "2",
        "--set", "final.batch_size=33", "--out", tmp_path / "run",
    )  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert (
        "<command line>:1:1: error[E0753]: final.batch_size 33 must be a multiple of the 2 "
        "processes: each trains on its 1/2 of every batch"
    ) in proc.stderr
    assert not (tmp_path / "run").exists()


def test_an_experiment_refuses_a_process_group(tmp_path):
    cmd = [sys.executable, "-m", "smashc", "experiment", "correlation", "--preset", "smoke"]
    proc = subprocess.run(
        [*cmd, "--out", str(tmp_path / "x")],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(
        "<command line>:1:1: error[E0754]: smashc experiment runs in one process"
    ), proc.stderr


# --- (slow) whole searches on 2 ranks -------------------------------------------------------

# 4 epochs of 6 steps: long enough to kill a run in its second epoch, after a checkpoint
SEARCH = ("--preset", "smoke", "--device", "cpu", "--epochs", "4")
STEPS = ("--set", "train.steps_per_epoch=6")


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """An uninterrupted ``--preset smoke`` search on 2 ranks, with a random baseline."""
    out = tmp_path_factory.mktemp("two") / "run"
    baseline = ("--set", "final.baselines=random")
    ok(_torchrun("-m", "smashc", "search", *SEARCH, *STEPS, *baseline, "--out", out))
    return out


@pytest.mark.slow
def test_two_ranks_rank_as_one_process_with_a_meta_batch_of_two(two_ranks, tmp_path):
    ok(smashc("search", *SEARCH, *STEPS, "--meta-batch", "2", "--out", tmp_path / "one"))
    assert (two_ranks / "ranking.csv").read_text() == (tmp_path / "one" / "ranking.csv").read_text()
    steps = [r["global_step"] for r in runs.read_jsonl(two_ranks / "train.jsonl")]
    assert steps == list(range(24))  # rank 0 alone logged, each step once


@pytest.mark.slow
def test_the_two_rank_final_training_exports_a_model_that_loads(two_ranks):
    final = two_ranks / "final"
    assert len(runs.read_jsonl(final / "final.jsonl")) == 1
    assert exported_output_shape(final, (3, 16, 16)) == "torch.Size([1, 10])"
    random = two_ranks / "baselines" / "random"  # trained by both ranks, as the winner is
    assert len(runs.read_jsonl(random / "final.jsonl")) == 1
    assert exported_output_shape(random, (3, 16, 16)) == "torch.Size([1, 10])"


def _rank_pid(parent: int, rank: int) -> int | None:
    """The process ``torchrun`` (pid ``parent``) started as rank ``rank``."""
    for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        try:
            env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return int(child)
    return None


def _stopped_mid_training(out: Path, kill: bool) -> None:
    """A 2-rank search into ``out`` stopped in the second epoch (after the first epoch's
    checkpoint): its rank 1 SIGKILLed (``kill``; torchrun ends the job), or SIGTERM to
    torchrun, which hands it to both ranks."""
    cmd = [*TORCHRUN, "-m", "smashc", "search", *SEARCH, *STEPS, "--out", str(out)]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    log, stopped = out / "train.jsonl", False
    deadline = time.monotonic() + 200
    while proc.poll() is None and time.monotonic() < deadline:
        steps = [r["global_step"] for r in runs.read_jsonl(log)] if log.exists() else []
        pid = _rank_pid(proc.pid, 1)
        if steps and steps[-1] >= 8 and pid is not None:  # in epoch 2, after a checkpoint
            if kill:
                os.kill(pid, signal.SIGKILL)
            else:
                proc.send_signal(signal.SIGTERM)
            stopped = True
            break
        time.sleep(0.02)
    assert proc.wait(timeout=120) != 0 and stopped, "the run should have been stopped mid-run"
    assert not (out / "ranking.csv").exists()
    assert runs.read_jsonl(log)[-1]["global_step"] < 23


@pytest.mark.slow
def test_a_two_rank_run_killed_mid_training_resumes_to_the_same_ranking(two_ranks, tmp_path):
    out = tmp_path / "run"
    _stopped_mid_training(out, kill=True)
    ok(_torchrun("-m", "smashc", "search", *SEARCH, *STEPS, "--out", out, "--resume"))
    assert (out / "ranking.csv").read_text() == (two_ranks / "ranking.csv").read_text()
    steps = [r["global_step"] for r in runs.read_jsonl(out / "train.jsonl")]
    assert steps == list(range(24))


@pytest.mark.slow
def test_a_two_rank_run_stopped_by_sigterm_saves_its_step_and_resumes_exactly(two_ranks, tmp_path):
    out = tmp_path / "run"
    _stopped_mid_training(out, kill=False)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and state["step"] > 0  # where the ranks agreed to stop
    ok(_torchrun("-m", "smashc", "search", *SEARCH, *STEPS, "--out", out, "--resume"))
    assert (out / "ranking.csv").read_text() == (two_ranks / "ranking.csv").read_text()
    steps = [r["global_step"] for r in runs.read_jsonl(out / "train.jsonl")]
    assert steps == list(range(24))


@pytest.mark.slow
def test_a_two_rank_run_resumed_on_one_process_goes_on_from_the_same_batch(tmp_path):
    out = tmp_path / "run"
    _stopped_mid_training(out, kill=True)
    ok(smashc("search", *SEARCH, *STEPS, "--out", out, "--resume"))
    # it goes on from the first epoch's checkpoint, one architecture per step: the log
    # keeps the 6 steps before it and the rest follows in the new numbering
    steps = [r["global_step"] for r in runs.read_jsonl(out / "train.jsonl")]
    assert steps == list(range(24))
    assert (out / "ranking.csv").exists() and (out / "final" / "final.json").exists()


@pytest.mark.slow
def test_the_distributed_benchmark_reports_both_layouts():
    cmd = [sys.executable, str(ROOT / "bench" / "distributed.py"), "--modes", "1x2,2x1"]
    cmd += ["--steps", "1", "--warmup", "0", "--preset", "smoke", "--batch", "16", "--json"]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.splitlines()[-1])
    assert set(res) == {"1x2", "2x1"}
    for r in res.values():
        assert r["arch_steps_per_s"] > 0 and r["images_per_s"] == 16 * r["arch_steps_per_s"]
    assert res["1x2"]["comm_share"] is None and 0 < res["2x1"]["comm_share"] < 1
