"""Progress in logs: with stderr redirected to a file (as batch schedulers do) a run writes
a few plain lines per bar instead of tqdm's ``\\r`` redraws (``runtime.progress``)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

from support import ENV, ROOT

from smashc.runtime import progress


def _bars(log: str) -> Counter:
    """How many lines each bar (``desc: ...``) wrote."""
    return Counter(line.split(": ", 1)[0] for line in log.splitlines() if ": " in line)


def test_a_search_with_stderr_in_a_file_writes_a_few_lines_per_epoch(tmp_path):
    # 40 steps an epoch: tqdm would redraw its bar some 40 times (plus its timer's refreshes)
    log = tmp_path / "stderr.log"
    argv = [sys.executable, "-m", "smashc", "search", "--preset", "smoke"]
    argv += ["--out", tmp_path / "run"]
    argv += ["--set", "train.steps_per_epoch=40", "--set", "train.batch_size=8"]
    with log.open("w") as f:
        proc = subprocess.run(argv, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=f)
    assert proc.returncode == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "\r" not in text and "Traceback" not in text
    lines = _bars(text)
    assert set(lines) >= {"smash 1/2", "smash 2/2", "scoring", "refining", "final 1/1"}, text
    assert all(n <= progress.LINES_PER_BAR + 1 for n in lines.values()), lines
    assert lines["smash 1/2"] == progress.LINES_PER_BAR  # each quarter of the epoch, once
    assert "smash 1/2: 40/40 step (100%)" in text


def test_a_line_bar_closed_early_says_where_it_stopped(capsys):
    bar = progress.LineBar(total=1000, desc="smash 1/3", unit="step")
    for _ in range(600):
        bar.update(1)
    bar.set_postfix(loss="2.000")
    bar.close()
    bar.close()  # a second close writes nothing
    err = capsys.readouterr().err.splitlines()
    assert [line.split(" in ")[0] for line in err] == [
        "smash 1/3: 250/1000 step (25%)",
        "smash 1/3: 500/1000 step (50%)",
        "smash 1/3: 600/1000 step (60%)",
    ]
    assert err[-1].endswith(", loss=2.000")


def test_a_resumed_bar_does_not_repeat_the_quarters_it_had_passed(capsys):
    for _ in progress.LineBar(range(5), initial=5, total=10, desc="final 2/2", unit="batch"):
        pass
    err = capsys.readouterr().err.splitlines()
    assert [line.split(" in ")[0] for line in err] == [
        "final 2/2: 8/10 batch (80%)",
        "final 2/2: 10/10 batch (100%)",
    ]


def test_on_a_terminal_the_bar_is_tqdms(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    shown = progress.bar(total=3)
    assert not isinstance(shown, progress.LineBar)
    shown.close()
