"""A made-up ground-truth set for the ranking tests: architectures of the smoke space whose
"true" error falls with their parameter count, so the ``params`` predictor's statistics
are known exactly, and a second training that swaps some neighbouring pairs by less than
the first training sets them apart (their mean keeps the first training's order)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from smashc import compiler
from smashc.runtime import runs
from smashc.runtime.context import open_context
from smashc.runtime.presets import PRESETS
from smashc.runtime.sampler import Sampler

SMOKE = PRESETS["smoke"]
SPACE = open_context(SMOKE).cfg.space  # the smoke space with the synthetic data's input


def recipe(space=SPACE) -> dict:
    final = asdict(SMOKE.final)
    return runs.as_json({"dataset": "synthetic", "seed": 0, "space": asdict(space), "final": final})


def record(i: int, net, errors: list[float], rec_recipe: dict) -> dict:
    params, macs = compiler.totals(compiler.for_training(net))
    trainings = [
        {"repeat": k, "val_error": e, "test_error": e + 0.01} for k, e in enumerate(errors)
    ]
    return {"index": i, "name": net.name, "smash": compiler.to_text(net), "params": params,
            "macs": macs, "runs": trainings, "seconds": 1.0, "recipe": rec_recipe}  # fmt: skip


def write_truth(path: Path, n: int) -> Path:
    nets = [Sampler(SPACE, 100 + i).sample(1.0, name=f"arch{i:03d}") for i in range(n)]
    size = [compiler.totals(compiler.for_training(net))[0] for net in nets]
    assert len(set(size)) == n, "the ranking tests need distinct parameter counts"
    order = sorted(range(n), key=lambda i: -size[i])  # biggest first: lowest error
    first = {i: 0.10 + 0.02 * r for r, i in enumerate(order)}
    second = dict(first)
    for r in range(0, n - 1, 4):
        second[order[r]] += 0.015
        second[order[r + 1]] -= 0.01
    lines = [record(i, nets[i], [first[i], second[i]], recipe()) for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    return path
