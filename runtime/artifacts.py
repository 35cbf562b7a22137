"""What a search leaves in its folder besides logs and checkpoints: the ranking, every
scored architecture as ``.smash``, the top ones with diagrams, the score histogram; and
clearing an earlier search's outputs before a fresh one."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

from smashc.compiler import draw, for_training, to_text
from smashc.runtime import final, plots
from smashc.runtime.baselines import BASELINES
from smashc.runtime.scoring import Scored
from smashc.runtime.strategies import STRATEGIES

# what a search writes into its folder; a fresh run removes these first, and nothing else
RUN_FILES = (
    "checkpoint.pt",
    "train.jsonl",
    "train.png",
    "scores.jsonl",
    "scores.png",
    "ranking.csv",
    "summary.json",
)
_TOP_FILE = re.compile(r"rank\d+\.(smash|png|dot)")


def _remove_matching(folder: Path, pattern: re.Pattern) -> None:
    if folder.is_dir():
        for f in folder.iterdir():
            if f.is_file() and pattern.fullmatch(f.name):
                f.unlink()


def clear_run(out: Path) -> None:
    """Removes an earlier search's outputs from ``out``: the files a search writes, by name,
    so that a fresh run leaves no stale architecture, diagram or final result behind, and
    never anything else that lives there."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    names = "|".join(map(re.escape, STRATEGIES))
    _remove_matching(out / "archs", re.compile(rf"({names})\d{{4,}}\.smash"))
    _remove_matching(out / "top", _TOP_FILE)
    for name in final.FILES:
        (out / "final" / name).unlink(missing_ok=True)
        for baseline in BASELINES:
            (out / "baselines" / baseline / name).unlink(missing_ok=True)


def ranked(scored: list[Scored]) -> list[Scored]:
    """Best first: lowest SMASH error, ties broken by index."""
    return sorted(scored, key=lambda s: (s.error, s.index))


def write_ranking(scored: list[Scored], out: Path, top: int) -> list[Scored]:
    """ranking.csv, every architecture as a .smash file, the top ones with diagrams, a score
    histogram; returns the ranking."""
    order = ranked(scored)
    arch_dir = out / "archs"
    arch_dir.mkdir(exist_ok=True)
    paths = []
    for s in order:
        path = arch_dir / f"{s.source}{s.index:04d}.smash"
        path.write_text(to_text(s.arch), encoding="utf-8")
        paths.append(path)
    with (out / "ranking.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["rank", "smash_error", "params", "macs", "source", "index", "smash_file"])
        for r, (s, path) in enumerate(zip(order, paths, strict=True), start=1):
            w.writerow(
                [r, f"{s.error:.4f}", s.params, s.macs, s.source, s.index, path.relative_to(out)]
            )
    top_dir = out / "top"
    _remove_matching(top_dir, _TOP_FILE)
    top_dir.mkdir(exist_ok=True)
    for r, (s, path) in enumerate(zip(order[:top], paths, strict=False), start=1):
        dst = top_dir / f"rank{r}.smash"
        shutil.copyfile(path, dst)
        draw(for_training(s.arch), dst)
    plots.histogram([s.error for s in scored], out / "scores.png")
    return order
