"""Corrupting one field of an encoding c: the paper's check that the HyperNet reads c.

``corrupt`` is a pure function of a c tensor: it changes the +1 entries of one field (a
conv's dilation, kernel size or groups, the read or write banks, the output units) and
nothing else, so the architecture that runs stays the true one while the HyperNet is asked
for the weights of a different one. Two ways to corrupt:

* ``redraw``: every op (every slice, for ``read``) gets a different valid value, so c
  always changes where the field is present;
* ``shuffle``: the ops' values are permuted among the ops (the paper's "shuffling the
  dilation values"); read and write sets only among the ops of the same block, since bank
  numbers mean different banks in different blocks. c is unchanged only when every op has
  the same value (then no permutation can change it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from smashc.compiler import EncodingConfig

MODES = ("redraw", "shuffle")
CONV_FIELDS = ("dilation_h", "dilation_w", "kernel_h", "kernel_w", "groups")


def corruptible(cfg: EncodingConfig) -> tuple[str, ...]:
    """The fields ``corrupt`` accepts (those with at least two values), in channel order."""
    convs = tuple(f"c{p}.{name}" for p in range(cfg.convs_per_op) for name in CONV_FIELDS)
    sizes = cfg.fields()
    return tuple(f for f in ("read", "write", "units", *convs) if sizes[f][1] >= 2)


@dataclass(frozen=True)
class OpColumns:
    """Where one op sits in c: slices ``start:end`` and rows ``:rows``, in block ``block``."""

    start: int
    end: int
    rows: int
    block: int


def op_columns(c: torch.Tensor, cfg: EncodingConfig) -> list[OpColumns]:
    """The ops of c (1, C, rows, S), found from the op-start flag and the block field."""
    f = cfg.fields()
    flag = f["op_start"][0]
    b0, nb = f["block"]
    width = c.shape[3]
    starts = [s for s in range(width) if c[0, flag, 0, s] > 0]
    out = []
    for start, end in zip(starts, [*starts[1:], width], strict=True):
        rows = int((c[0, flag, :, start] > 0).sum())
        block = int(torch.argmax(c[0, b0 : b0 + nb, 0, start]))
        out.append(OpColumns(start, end, rows, block))
    return out


def _hot(v: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in torch.nonzero(v > 0).flatten())


def _set(c: torch.Tensor, field: tuple[int, int], rows: int, cols: slice, hot) -> None:
    start, n = field
    c[0, start : start + n, :rows, cols] = -1.0
    for i in hot:
        c[0, start + i, :rows, cols] = 1.0


def _other_set(rng: np.random.Generator, pool: int, old: tuple[int, ...]) -> tuple[int, ...]:
    """A set of ``len(old)`` values from ``range(pool)``, different from ``old``."""
    if pool <= len(old):
        raise ValueError(f"no other set of {len(old)} among {pool} values")
    while True:
        new = tuple(sorted(int(i) for i in rng.choice(pool, len(old), replace=False)))
        if new != old:
            return new


def _bank_pools(c: torch.Tensor, cfg: EncodingConfig, ops: list[OpColumns]) -> dict[int, int]:
    """Per block, how many banks its ops use (read or written), and at least one more than
    the largest read or write set, so that a different set of the same size always exists."""
    f = cfg.fields()
    pools: dict[int, int] = {}
    for op in ops:
        need = 2
        for name in ("read", "write"):
            start, n = f[name]
            for s in range(op.start, op.end):
                hot = _hot(c[0, start : start + n, 0, s])
                need = max(need, len(hot) + 1, *(h + 1 for h in hot))
        pools[op.block] = min(cfg.max_banks, max(pools.get(op.block, 0), need))
    return pools


def _permute(rng: np.random.Generator, values: list, tries: int = 100) -> list:
    """A random permutation of ``values`` that differs from it, or ``values`` when none does."""
    if len(set(values)) < 2:
        return list(values)
    for _ in range(tries):
        new = [values[i] for i in rng.permutation(len(values))]
        if new != values:
            return new
    return values[1:] + values[:1]  # a rotation differs when two values differ


def corrupt(
    enc_tensor: torch.Tensor,
    cfg: EncodingConfig,
    field: str,
    rng: np.random.Generator,
    mode: str = "redraw",
) -> torch.Tensor:
    """A copy of c (1, C, rows, S) whose ``field`` (one of ``corruptible(cfg)``) is corrupted.

    Only that field's channels change, and only at positions an op marks; the other fields,
    the op layout and the unmarked positions stay as they were. Ops without the field (an
    inactive conv of the variable op) keep it absent. Raises ValueError for an unknown field
    or mode.
    """
    if field not in corruptible(cfg):
        raise ValueError(f"unknown field {field!r}: corruptible fields are {corruptible(cfg)}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: modes are {MODES}")
    c = enc_tensor.detach().clone()
    ops = op_columns(c, cfg)
    spec = cfg.fields()[field]
    start, n = spec
    whole = [
        (slice(op.start, op.end), op, _hot(c[0, start : start + n, 0, op.start])) for op in ops
    ]
    if field in ("read", "write"):
        units = whole
        if field == "read":  # one set per slice
            units = [
                (slice(s, s + 1), op, _hot(c[0, start : start + n, 0, s]))
                for op in ops
                for s in range(op.start, op.end)
            ]
        new = _new_sets(units, _bank_pools(c, cfg, ops), rng, mode)
    else:
        units = [u for u in whole if u[2]]  # ops where the field is present
        if mode == "shuffle":
            new = _permute(rng, [old for _, _, old in units])
        else:
            new = [_other_set(rng, n, old) for _, _, old in units]
    for (cols, op, _), hot in zip(units, new, strict=True):
        _set(c, spec, op.rows, cols, hot)
    return c


def _new_sets(units, pools: dict[int, int], rng: np.random.Generator, mode: str) -> list:
    """Read or write sets: redrawn within the block's banks, or permuted within each block."""
    if mode == "redraw":
        return [_other_set(rng, pools[op.block], old) for _, op, old in units]
    new = [old for _, _, old in units]
    for b in sorted({op.block for _, op, _ in units}):
        at = [i for i, (_, op, _) in enumerate(units) if op.block == b]
        for i, hot in zip(at, _permute(rng, [new[i] for i in at]), strict=True):
            new[i] = hot
    return new
