"""A run's folder and its life: logs written so that a killed run loses at most the step it
was in (its checkpoints are ``runtime.checkpoints``'), resuming only what the same settings
started, and stopping on Ctrl-C or divergence with the run's work saved.

Shared by ``smashc search``, ``smashc train`` and ``smashc experiment``. Problems with a
folder are E0707 (resuming) and E0708 (a diverged training), located at the file.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

from smashc.diagnostics import COMMAND_LINE, SmashError, Span, error


class Interrupted(Exception):
    """Ctrl-C stopped a run between steps; its checkpoint is saved and ``--resume`` continues."""


def diverged(what: str, loss: float, epoch: int, where: str, lr: str) -> SmashError:
    """E0708: a training's loss stopped being a number. Its weights and optimiser state are
    then lost for good (every later step computes on them), so the run stops instead of
    ranking or exporting garbage; the checkpoint on disk is from before."""
    msg = (
        f"{what} diverged: its loss is {loss} in epoch {epoch + 1}, {where}; start it over "
        f"with a lower learning rate ({lr})"
    )
    return SmashError([error("E0708", msg, COMMAND_LINE)])


class StopFlag:
    """Ctrl-C (SIGINT), or the SIGTERM a batch scheduler sends before it kills a job, as a
    request: the first only sets ``requested``, which a training loop checks between steps,
    so its checkpoint never holds a half-applied update; a second interrupts at once.
    Installed only in the main thread (where Python delivers signals)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict = {}

    def install(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._on_signal) for sig in self.SIGNALS}
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _on_signal(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


def append_jsonl(path: Path, record: dict) -> None:
    """One JSON record per line, appended as soon as it is known (``read_jsonl`` reads them
    back)."""
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def damaged(path: Path, line: int, what: str) -> SmashError:
    """E0707 at ``path:line``: a file of a run that cannot be used as it is."""
    msg = f"{what}: this file of the run is damaged; delete it (or the run) to redo its work"
    return SmashError([error("E0707", msg, Span(str(path), line, 1, line, 1))])


def read_jsonl(path: Path) -> list[dict]:
    """The records of a log written by ``append_jsonl`` (none if it does not exist).

    A last line without its newline is a write the run did not finish (killed, disk full):
    it is dropped, from the file too, so that the next record appended starts a line of its
    own. Any other line that is not a JSON object is a SmashError (E0707) at that line."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    torn = lines.pop()  # "" when the file ends with a newline
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            rec = None
        if not isinstance(rec, dict):
            raise damaged(path, number, "not a JSON record")
        records.append(rec)
    if torn:
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return records


def config_differences(old, new, at: str = "") -> list[str]:
    """``path old -> new`` for every leaf where two configs in their JSON form differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += config_differences(old.get(k), new.get(k), f"{at}.{k}" if at else k)
        return out
    return [] if old == new else [f"{at} {json.dumps(old)} -> {json.dumps(new)}"]


def as_json(obj) -> object:
    """``obj`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(obj))


# where a run reads its data and what computes it: a resumed run may change these
RESUME_MAY_CHANGE = ("data_dir", "device")


def check_resumable(out: Path, config: dict) -> None:
    """Raises a SmashError (E0707) unless ``out`` holds a run whose ``config.json`` is
    ``config`` (a resolved config's JSON form) in all but ``RESUME_MAY_CHANGE``: resuming
    with other settings would mix two runs, and resuming a folder without a run would
    quietly start a new one."""
    path = out / "config.json"
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        msg = (
            f"nothing to resume: {out} holds no run (no config.json); "
            "leave out --resume to start one"
        )
        raise SmashError([error("E0707", msg, Span(str(out), 1, 1, 1, 1))]) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"cannot read the run's settings to resume it: {exc}"
        raise SmashError([error("E0707", msg, Span(str(path), 1, 1, 1, 1))]) from None
    if not isinstance(old, dict):
        old = {}
    diff = config_differences(
        {k: v for k, v in old.items() if k not in RESUME_MAY_CHANGE},
        {k: v for k, v in as_json(config).items() if k not in RESUME_MAY_CHANGE},
    )
    if diff:
        shown = "; ".join(diff[:4]) + ("; ..." if len(diff) > 4 else "")
        msg = (
            f"{out} holds a run with other settings ({shown}): resume with the preset and "
            "flags it was started with, or leave out --resume to start over"
        )
        raise SmashError([error("E0707", msg, Span(str(path), 1, 1, 1, 1))])
