"""A run's folder under stress: a second run into a folder another run holds is refused
(``runtime.lock``), and a disk that fills up while a checkpoint is saved ends in a located
error with the last complete checkpoint intact, from which ``--resume`` goes on
(``runtime.checkpoints``)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import ENV, ROOT, ok, smashc

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


# --- a full disk -------------------------------------------------------------------------------


def _diagnostic(err: str) -> str:
    """A run's stderr from its first diagnostic on (after its progress lines)."""
    start = err.index(": error[")
    return err[err.rfind("\n", 0, start) + 1 :]


def _full_disk_error(ckpt: Path) -> str:
    return (
        f"{ckpt}:1:1: error[E0710]: no space left on the device to save this checkpoint: it needs "
    )


def test_a_full_disk_while_saving_keeps_the_last_checkpoint_and_resume_goes_on(
    tmp_path, capsys, monkeypatch
):
    """The disk fills up as the checkpoint of the second (last) epoch is written."""
    from smashc.runtime import checkpoints

    whole, out = tmp_path / "whole", tmp_path / "run"
    assert main(["search", *SMOKE, "--out", str(whole)]) == 0
    real, calls = checkpoints._write, []

    def disk_full_on_the_second(path, data):
        calls.append(path)
        if len(calls) == 2:
            path.write_bytes(bytes(data)[:1000])  # what a full disk lets through, then:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, data)

    monkeypatch.setattr(checkpoints, "_write", disk_full_on_the_second)
    capsys.readouterr()
    assert main(["search", *SMOKE, "--out", str(out)]) == 1
    _, err = capsys.readouterr()
    ckpt = out / "checkpoint.pt"
    assert _diagnostic(err).startswith(_full_disk_error(ckpt)), err
    assert f"the last complete checkpoint, {ckpt}, is intact: free some space and run" in err
    assert "with --resume" in err and "Traceback" not in err
    assert checkpoints.load(ckpt, "cpu")["epoch"] == 1  # the first epoch's, whole
    assert not (out / "checkpoint.pt.tmp").exists()

    monkeypatch.setattr(checkpoints, "_write", real)  # space freed
    assert main(["search", *SMOKE, "--out", str(out), "--resume"]) == 0
    assert (out / "ranking.csv").read_text() == (whole / "ranking.csv").read_text()
    assert (out / "train.jsonl").read_text().count("\n") == 8  # 2 epochs of 4 steps


def test_a_full_disk_before_any_checkpoint_says_nothing_was_saved(tmp_path, capsys, monkeypatch):
    from smashc.runtime import checkpoints

    def disk_full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(checkpoints, "_write", disk_full)
    out = tmp_path / "run"
    assert main(["search", *SMOKE, "--out", str(out)]) == 1
    _, err = capsys.readouterr()
    assert _diagnostic(err).startswith(_full_disk_error(out / "checkpoint.pt")), err
    assert (
        _diagnostic(err)
        .split("\n")[0]
        .endswith("nothing was saved yet: free some space and run the command again")
    )


def _mount_tmpfs(where: Path, size: str) -> str | None:
    """Mounts a tmpfs of ``size`` at ``where``; why not, when it cannot."""
    if os.geteuid() != 0:
        return "mounting a small filesystem needs root"
    where.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    return None if proc.returncode == 0 else f"mount failed: {proc.stderr.strip()}"


def test_a_real_full_disk(tmp_path):
    """The issue's case: a run folder on a 5 MB tmpfs. The first checkpoint (some 2.8 MB)
    fits, the second does not fit beside it; once the filesystem is grown, --resume ends
    the run."""
    disk = tmp_path / "disk"
    why = _mount_tmpfs(disk, "5m")
    if why is not None:
        pytest.skip(why)
    try:
        out = disk / "run"
        proc = smashc("search", *SMOKE, "--out", out)
        assert proc.returncode == 1, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr
        assert _diagnostic(proc.stderr).startswith(_full_disk_error(out / "checkpoint.pt")), (
            proc.stderr
        )
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        ok(smashc("search", *SMOKE, "--out", out, "--resume"))
        assert (out / "ranking.csv").exists()
    finally:
        subprocess.run(["umount", str(disk)], check=False)
