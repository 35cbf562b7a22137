"""SMASH search end to end: HyperNet training, scoring by the configured strategies,
ranking, and the final training of the winner.

Every random choice is derived from the run's seed through named streams
(``runtime.seeds``), never from hidden global state, so an interrupted run resumed from
its checkpoint makes exactly the same choices as an uninterrupted one. Outputs land in
one folder with the resolved config beside them (``docs/search.md`` lists them).

Started by ``torchrun``, every rank runs every phase: the HyperNet training and the final
training are data-parallel, a strategy whose proposals do not depend on each other's
scores (``independent``) has them scored ``world`` at a time, one per rank, and rank 0
alone writes the folder.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from smashc.runtime import artifacts, baselines, plots, progress, records, runs, strategies
from smashc.runtime.config import SearchConfig
from smashc.runtime.context import RunContext, open_run
from smashc.runtime.final import train_final
from smashc.runtime.hypertrain import train_smash
from smashc.runtime.scoring import Scored, ScoreLog, Scorer


def _scored(ctx: RunContext, scorer: Scorer, log: ScoreLog, name: str, chunk) -> list[Scored]:
    """The scores of ``chunk``'s proposals (index, architecture), from ``log`` where it has
    them; in a process group the ``j``-th is scored by rank ``j % world`` and every rank
    gets them all. The new ones are added to ``log`` (which rank 0 alone writes)."""
    g = ctx.group
    mine = {}
    for j, (index, arch) in enumerate(chunk):
        if j % g.world == g.rank and log.get(index) is None:
            mine[index] = scorer.score(index, name, arch)
    found = {i: rec for part in g.gather(mine) for i, rec in part.items()}
    out = []
    for index, arch in chunk:
        rec = log.get(index)
        if rec is None:
            rec = found[index]
            log.add(rec)
        else:
            records.check_reuse(log, index, name, arch)
        out.append(rec)
    return out


def run_strategies(ctx: RunContext, scorer: Scorer, log: ScoreLog) -> list[Scored]:
    """Every architecture the strategies of ``score.strategies`` propose, scored (or taken
    from ``log``), in the order they were proposed."""
    history: list[Scored] = []
    start, best = 0, float("inf")
    for name in ctx.cfg.score.strategies:
        strategy = strategies.get(name)
        budget = strategy.budget(ctx.cfg)
        width = ctx.group.world if getattr(strategy, "independent", False) else 1
        bar = progress.bar(total=budget, desc=strategy.label, unit="arch")
        proposals = strategy.propose(ctx, history, start)
        while chunk := list(itertools.islice(proposals, width)):
            for rec in _scored(ctx, scorer, log, strategy.name, chunk):
                history.append(rec)
                best = min(best, rec.error)
                bar.set_postfix(best_error=f"{best:.3f}", refresh=False)
                bar.update(1)
        bar.close()
        start += budget
    return history


def search(cfg: SearchConfig, out: Path, resume: bool = False, final: bool = True) -> dict:
    """HyperNet training, scoring, ranking and (unless ``final`` is False) the final
    training of the winner and of the baselines beside it (``final.baselines``). Returns
    a summary with the paths of the main outputs."""
    ctx = open_run(cfg, out, resume)
    main = ctx.group.main
    if main and not resume:  # a fresh run never reuses or leaves behind another run's results
        artifacts.clear_run(out)
    model = train_smash(ctx, out, resume)
    if main:
        plots.training_curve(out / "train.jsonl", out / "train.png")
    log = ScoreLog(out / "scores.jsonl" if main else None)
    log.done = ctx.group.broadcast(log.done)
    try:  # each architecture's score is kept in scores.jsonl as soon as it is known
        scored = run_strategies(ctx, Scorer(ctx, model), log)
    except KeyboardInterrupt:
        raise runs.Interrupted from None
    if not main:  # the other ranks take part in the same (data-parallel) trainings
        if final:
            train_final(ctx, artifacts.ranked(scored)[0].arch, out / "final", resume=resume)
            baselines.train_baselines(ctx, out, resume)
        return {}
    winner = artifacts.write_ranking(scored, out, ctx.cfg.score.top)[0]
    diagram = out / "top" / "rank1.png"
    summary = {
        "ranking": str(out / "ranking.csv"),
        "best_smash": str(out / "top" / "rank1.smash"),
        "best_diagram": str(diagram if diagram.exists() else diagram.with_suffix(".dot")),
        "best_smash_error": winner.error,
        "histogram": str(out / "scores.png"),
    }
    if (out / "train.png").exists():  # not after zero steps
        summary["training_curve"] = str(out / "train.png")
    if final:
        result = train_final(ctx, winner.arch, out / "final", resume=resume)
        summary.update(final_test_accuracy=result["test_acc"], final_dir=str(out / "final"))
        summary["baselines"] = baselines.train_baselines(ctx, out, resume)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
