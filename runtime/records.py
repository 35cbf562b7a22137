"""What a score record of ``scores.jsonl`` may hold, checked as a resumed run reads it back.

A resumed run takes the scores it finds in its log instead of scoring again, so a record
that was edited or damaged would otherwise go straight into the ranking (an error of -5 as
rank 1, a NaN that breaks the sort, text that is not a network). ``score_fields`` checks
each record's fields and parses its architecture; ``check_reuse`` checks that a record
taken in place of a score is the one the run would compute: the same strategy proposed the
same architecture at that index. Problems are E0707 at the record's line.
"""

from __future__ import annotations

import math
from pathlib import Path

from smashc.compiler import Network, from_text, to_text
from smashc.diagnostics import SmashError
from smashc.runtime import runs

FIELDS = ("index", "source", "error", "params", "macs", "text")


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _problem(rec: dict) -> str | None:
    """What is wrong with the fields of ``rec`` (its architecture text aside), or None."""
    if set(rec) != set(FIELDS):
        has = ", ".join(sorted(map(str, rec))) or "no fields"
        return f"not a score record (it has {has}; a score record has {', '.join(FIELDS)})"
    err = rec["error"]
    if isinstance(err, bool) or not isinstance(err, int | float) or not math.isfinite(err):
        return f"the error {err!r} of this score record is not a number"
    if not 0 <= err <= 1:
        return f"the error {err!r} of this score record is not a fraction in [0, 1]"
    for name in ("index", "params", "macs"):
        if not _count(rec[name]):
            return f"the {name} {rec[name]!r} of this score record is not a count"
    if not isinstance(rec["source"], str) or not isinstance(rec["text"], str):
        return "the source and text of a score record are strings"
    return None


def score_fields(rec: dict, path: Path, line: int, seen: dict) -> dict:
    """The fields of the record ``rec`` at ``path:line`` as ``scoring.Scored`` takes them
    (its text parsed into ``arch``); a SmashError (E0707) at that line when they cannot be
    a score, or when ``seen`` (the indices read so far) already holds its index."""
    problem = _problem(rec)
    if problem is not None:
        raise runs.damaged(path, line, problem)
    if rec["index"] in seen:
        raise runs.damaged(path, line, f"a second score record of architecture {rec['index']}")
    try:
        arch = from_text(rec["text"], f"{path}:{line}")
    except SmashError as exc:
        what = f"its architecture text is not a network ({exc.diagnostics[0].message})"
        raise runs.damaged(path, line, what) from None
    fields = {k: v for k, v in rec.items() if k != "text"}
    return {**fields, "error": float(rec["error"]), "arch": arch}


def check_reuse(log, index: int, source: str, arch: Network) -> None:
    """Refuses (E0707 at its line) the record of ``index`` in ``log`` (a ``ScoreLog``) as
    the score of ``arch`` proposed by ``source`` when it scored something else."""
    rec = log.get(index)
    if rec.source == source and to_text(rec.arch) == to_text(arch):
        return
    msg = (
        f"this score record of architecture {index} is not the one the run proposes there "
        f"(a {source} architecture), written by another run or edited"
    )
    raise runs.damaged(log.path, log.lines.get(index, 1), msg)
