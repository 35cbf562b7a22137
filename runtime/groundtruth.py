"""Ground-truth sets read back: architectures trained normally, each more than once, the
truth a ranking is measured against (``smashc experiment ranking``).

``bench/groundtruth.py`` makes a set: one JSON record a line, each an architecture of a
search space with its ``.smash`` text, its parameters and MACs, and one entry in ``runs``
per training with its validation and test error (null where the loss diverged). This
module reads such a file, checks every record (a damaged or foreign line is an E0730 at
its line, never a traceback), and gives the architectures with their errors.

The *true error* of an architecture is the mean validation error of its trainings; the
*noise ceiling* is Spearman's rho between its first and second training's validation
errors over the set: no predictor can be trusted to rank the set better than one training
of each architecture ranks another.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from smashc.compiler import Network, from_text
from smashc.diagnostics import SmashError, Span, error

_RECORD = ("index", "name", "smash", "params", "macs", "runs", "recipe")
_RECIPE = ("dataset", "seed", "space", "final")


@dataclass(frozen=True)
class Truth:
    """One architecture of a ground-truth set, with the errors of its trainings."""

    index: int
    name: str
    arch: Network
    text: str  # its .smash text as the record holds it
    params: int
    macs: int
    val_errors: tuple[float, ...]
    test_errors: tuple[float, ...]

    @property
    def error(self) -> float:
        """The true error: the mean validation error over the trainings."""
        return sum(self.val_errors) / len(self.val_errors)

    @property
    def test_error(self) -> float:
        return sum(self.test_errors) / len(self.test_errors)


@dataclass(frozen=True)
class GroundTruth:
    path: Path
    recipe: dict  # what every record was trained with (dataset, split seed, space, final)
    archs: tuple[Truth, ...]  # in index order; architectures with a diverged training left out
    diverged: tuple[int, ...]  # the indices left out

    def part(self, indices) -> GroundTruth:
        """The set restricted to the architectures whose index is in ``indices``."""
        keep = set(indices)
        archs = tuple(t for t in self.archs if t.index in keep)
        return GroundTruth(self.path, self.recipe, archs, self.diverged)

    def trainings(self) -> int:
        return min((len(t.val_errors) for t in self.archs), default=0)


def _fail(path: Path, line: int, message: str) -> SmashError:
    return SmashError([error("E0730", message, Span(str(path), line, 1, line, 1))])


def _is_error(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _truth(rec: dict, path: Path, line: int) -> Truth | None:
    """The record's architecture, or None when one of its trainings diverged."""
    missing = [k for k in _RECORD if k not in rec]
    if missing:
        raise _fail(path, line, f"not a ground-truth record (no {', '.join(missing)})")
    if not (_count(rec["index"]) and _count(rec["params"]) and _count(rec["macs"])):
        raise _fail(path, line, "index, params and macs must be counts")
    if not isinstance(rec["runs"], list) or not rec["runs"]:
        raise _fail(path, line, "`runs` must list at least one training")
    vals, tests = [], []
    for run in rec["runs"]:
        if not isinstance(run, dict) or "val_error" not in run or "test_error" not in run:
            raise _fail(path, line, "a training without `val_error` and `test_error`")
        if run["val_error"] is None or run["test_error"] is None:
            return None  # diverged: recorded, left out of every ranking
        if not (_is_error(run["val_error"]) and _is_error(run["test_error"])):
            raise _fail(path, line, "an error that is not a number in [0, 1]")
        vals.append(float(run["val_error"]))
        tests.append(float(run["test_error"]))
    if not isinstance(rec["smash"], str):
        raise _fail(path, line, "`smash` must be the architecture's .smash text")
    arch = from_text(rec["smash"], f"{path}:{line}")
    return Truth(
        rec["index"], str(rec["name"]), arch, rec["smash"], rec["params"], rec["macs"],
        tuple(vals), tuple(tests),
    )  # fmt: skip


def read(path: Path) -> GroundTruth:
    """The ground-truth set in ``path``, every record checked."""
    path = Path(path)
    if not path.is_file():
        raise _fail(path, 1, "ground-truth file not found (bench/groundtruth.py makes one)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(path, 1, f"cannot read this ground-truth file: {exc}") from None
    recipe, archs, diverged, seen = None, [], [], set()
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError:
            rec = None
        if not isinstance(rec, dict):
            raise _fail(path, line, "not a JSON record")
        truth = _truth(rec, path, line)
        if not isinstance(rec["recipe"], dict) or any(k not in rec["recipe"] for k in _RECIPE):
            raise _fail(path, line, f"a recipe without {', '.join(_RECIPE)}")
        if recipe is None:
            recipe = rec["recipe"]
        elif rec["recipe"] != recipe:
            raise _fail(path, line, "a record trained with another recipe than the first's")
        if rec["index"] in seen:
            raise _fail(path, line, f"architecture {rec['index']} recorded twice")
        seen.add(rec["index"])
        if truth is None:
            diverged.append(rec["index"])
        else:
            archs.append(truth)
    if recipe is None:
        raise _fail(path, 1, "no records in this ground-truth file")
    archs.sort(key=lambda t: t.index)
    return GroundTruth(path, recipe, tuple(archs), tuple(sorted(diverged)))
