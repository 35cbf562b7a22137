"""Checkpoints of a training: saved whole or not at all, and read back only when they are
the ones this run wrote.

``save`` serialises a checkpoint in memory first, then writes it to a temporary file and
renames it over the old one: a kill leaves the old checkpoint or the new one, and a full
disk is a plain ``OSError`` on that write (not torch's half-written zip), reported as E0710
with the room the checkpoint needs, the old checkpoint still in place.

Each checkpoint carries the fingerprint of the settings its training depends on
(``fingerprint``) and a digest of everything in it (``digest``). ``load`` refuses (E0707,
at the file) one that cannot be read, whose contents no longer match their digest (a
tensor missing, added or reshaped, a position edited, ...) or that another run's settings
wrote (another seed, dataset, search space, HyperNet), so that ``--resume`` never trains on
from something it did not save; ``position`` checks where it says the training stopped.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from smashc.diagnostics import SmashError, Span, error

# the settings a training's checkpoint depends on, by config key
HYPERNET_SETTINGS = ("dataset", "seed", "val_size", "precision", "space", "hypernet", "train")
FINAL_SETTINGS = ("dataset", "seed", "val_size", "precision", "final")


def fingerprint(cfg, names: tuple[str, ...]) -> str:
    """A short hash of the settings ``names`` of the run config ``cfg``."""
    settings = cfg.to_json()
    text = json.dumps({n: settings[n] for n in names}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _feed(h, obj: Any) -> None:
    """Adds ``obj`` (a checkpoint's nested dicts, lists, tensors and scalars) to the hash."""
    if isinstance(obj, torch.Tensor):
        flat = obj.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"T{flat.dtype}{tuple(obj.shape)};".encode())
        h.update(flat.view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)};".encode())
        for key in sorted(obj, key=repr):
            _feed(h, key)
            _feed(h, obj[key])
    elif isinstance(obj, list | tuple):
        h.update(f"{type(obj).__name__[0]}{len(obj)};".encode())
        for item in obj:
            _feed(h, item)
    else:
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


def digest(state: dict) -> str:
    """The sha256 of everything in ``state`` but its own ``digest``."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != "digest"})
    return h.hexdigest()


def _write(path: Path, data: memoryview) -> None:
    """``data`` into a new file ``path``, on disk when this returns."""
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def _no_space(path: Path, needed: int) -> SmashError:
    free = shutil.disk_usage(path.parent).free
    kept = (
        f"the last complete checkpoint, {path}, is intact: free some space and run the same "
        "command again with --resume to go on from it"
        if path.exists()
        else "nothing was saved yet: free some space and run the command again"
    )
    msg = (
        f"no space left on the device to save this checkpoint: it needs {_size(needed)}, "
        f"{_size(free)} are free in {path.parent}; {kept}"
    )
    return SmashError([error("E0710", msg, Span(str(path), 1, 1, 1, 1))])


def save(state: dict, path: Path, fingerprint: str = "") -> None:
    """Saves ``state`` to ``path`` with the run's ``fingerprint`` and its digest, through a
    temporary file and a rename. A full disk (or quota) is a SmashError (E0710) that leaves
    the previous checkpoint as it was."""
    body = {**state, "fingerprint": fingerprint}
    body["digest"] = digest(body)
    buffer = io.BytesIO()
    torch.save(body, buffer)
    data = buffer.getbuffer()
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        _write(tmp, data)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _no_space(path, len(data)) from None
        raise  # any other refusal to write is the command's E0306
    os.replace(tmp, path)


def _refuse(path: Path, what: str, code: str) -> SmashError:
    return SmashError([error(code, what, Span(str(path), 1, 1, 1, 1))])


def load(path: Path, device, fingerprint: str | None = None, code: str = "E0707") -> dict:
    """The checkpoint ``path`` as ``save`` wrote it; a SmashError (``code``, at the file)
    when it cannot be read, its contents do not match its digest, or (given the run's
    ``fingerprint``) another run's settings wrote it."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # any failure to read it means the same to the user
        # torch's messages run to several sentences of advice; the first says what failed
        first = str(exc).split(". ")[0].splitlines()[0] if str(exc) else type(exc).__name__
        raise _refuse(path, f"cannot read this checkpoint ({first})", code) from None
    if not isinstance(state, dict) or not isinstance(state.get("digest"), str):
        raise _refuse(path, "not a checkpoint written by smashc (it has no digest)", code)
    if state["digest"] != digest(state):
        msg = (
            "this checkpoint's contents do not match the digest it was saved with: it was "
            "changed or damaged after it was written; delete it to train from the start"
        )
        raise _refuse(path, msg, code)
    if fingerprint is not None and state.get("fingerprint") != fingerprint:
        msg = (
            "this checkpoint was written by a run with other settings (another seed, "
            "dataset, split, precision, search space, HyperNet or training): it is not this "
            "run's; resume in the folder it came from, or delete it to train from the start"
        )
        raise _refuse(path, msg, code)
    return state


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def position(state: dict, path: Path, epochs: int, steps: int) -> tuple[int, int]:
    """``(epoch, step)`` where the checkpoint's training stopped, within a training of
    ``epochs`` epochs of ``steps`` steps (a SmashError, E0707, when it is not)."""
    epoch, step = state.get("epoch"), state.get("step")
    if _count(epoch) and _count(step) and (epoch, step) <= (epochs, 0) and step < max(steps, 1):
        return epoch, step
    msg = (
        f"this checkpoint says its training stopped at epoch {epoch!r}, step {step!r}, "
        f"outside this training's {epochs} epochs of {steps} steps; delete it to train "
        "from the start"
    )
    raise _refuse(path, msg, "E0707")


def restore(training, state: dict, path: Path) -> None:
    """``training.restore(state)``, a state that does not fit the training (the model or
    optimiser of another network) reported as E0707 at the checkpoint."""
    try:
        training.restore(state)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines()] or [type(exc).__name__]
        # load_state_dict says "Error(s) in loading state_dict for ...:", then what it found
        first = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s)") else lines[0]
        first = first.rstrip(".") if len(first) <= 200 else first[:200] + "..."
        msg = f"this checkpoint does not fit this training ({first}); delete it to start over"
        raise _refuse(path, msg, "E0707") from None
