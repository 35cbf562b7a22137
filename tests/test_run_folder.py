"""A run's folder under stress: a second run into a folder another run holds is refused
(``runtime.lock``), and a disk that fills up while a checkpoint is saved ends in a located
error with the last complete checkpoint intact, from which ``--resume`` goes on
(``runtime.checkpoints``)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from support import ENV, ROOT

from smashc.cli import main
from smashc.runtime import lock

SMOKE = ["--preset", "smoke", "--no-final"]

_HOLDER = """
import sys
import time
from pathlib import Path
from smashc.runtime import lock
lock.hold(Path(sys.argv[1]))
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


def _holder(folder: Path) -> subprocess.Popen:
    """A process holding ``folder``'s run lock until its stdin closes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(folder)],
        cwd=ROOT,
        env=ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_a_second_run_into_a_held_folder_is_refused_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text('{"the": "holder\'s"}\n')
    holder = _holder(out)
    try:
        rc = main(["search", *SMOKE, "--seed", "8", "--out", str(out)])
        _, err = capsys.readouterr()
    finally:
        holder.stdin.close()
        holder.wait()
    assert rc == 1
    assert err.startswith(
        f"{out}:1:1: error[E0709]: another smashc run (pid {holder.pid}) is writing into "
        f"{out}: wait for it to end, or give this run another --out\n"
    ), err
    assert "Traceback" not in err
    assert (out / "config.json").read_text() == '{"the": "holder\'s"}\n'  # left as it was
    assert sorted(p.name for p in out.iterdir()) == [".smashc.lock", "config.json"]


def test_the_lock_goes_with_its_holder(tmp_path, capsys):
    """Once the holding process has ended (here: killed), the folder is free again; a
    finished command in this process frees it too."""
    out = tmp_path / "run"
    out.mkdir()
    holder = _holder(out)
    holder.kill()
    holder.wait()
    assert main(["search", *SMOKE, "--out", str(out)]) == 0
    assert main(["search", *SMOKE, "--out", str(out), "--resume"]) == 0
    capsys.readouterr()
    assert lock._held == {}


def test_a_search_into_the_folder_of_a_running_search_is_refused(tmp_path, capsys):
    """The issue's case: a search with --seed 8 into the folder of a running one with
    --seed 7. The running one is long (200 epochs); once its lock file names it, the second
    is refused and leaves the first's settings in place; the first is then stopped."""
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "smashc", "search", *SMOKE, "--epochs", "200", "--seed", "7"]
    first = subprocess.Popen(
        [*argv, "--out", str(out)], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        log = out / "train.jsonl"  # its first step logged: it holds the folder
        while not (log.exists() and log.stat().st_size):
            assert first.poll() is None, first.stderr.read()
            time.sleep(0.05)
        rc = main(["search", *SMOKE, "--seed", "8", "--out", str(out)])
        _, err = capsys.readouterr()
    finally:
        first.terminate()  # SIGTERM: it saves and stops
        first.wait()
    assert rc == 1
    assert err.startswith(f"{out}:1:1: error[E0709]: another smashc run (pid {first.pid}) "), err
    assert '"seed": 7' in (out / "config.json").read_text()
