"""The process group of a run started by ``torchrun``: joining it, this process's share, leaving.

``torchrun`` (``torch.distributed.run``) starts the processes and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` in
each; ``join`` reads them, checks them, initialises the process group (NCCL on CUDA, Gloo on
the CPU) and pins the process to ``cuda:LOCAL_RANK`` or to its share of the CPU cores.
Without ``WORLD_SIZE`` (or with 1) a run is one process and nothing here talks to anyone.

A ``Group`` is what the phases use: the rank and world size, and the few collectives they
need (a sum of a flat tensor, any-of a flag, a broadcast and a gather of Python objects).
Every wait is bounded by the initialisation timeout (``SMASHC_INIT_TIMEOUT`` seconds,
default 120), so a rank that cannot reach the others fails with E0752 instead of hanging.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from smashc.diagnostics import COMMAND_LINE, SmashError, error
from smashc.runtime import progress

TIMEOUT_VARIABLE = "SMASHC_INIT_TIMEOUT"
DEFAULT_TIMEOUT = 120.0
_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Group:
    """This process's place in the run: rank ``rank`` of ``world`` (``local`` on its node)."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes the run's files (rank 0)."""
        return self.rank == 0

    def all_reduce(self, flat: torch.Tensor) -> None:
        """Sums ``flat`` over every process, in place."""
        if self.world > 1:
            dist.all_reduce(flat)

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` holds on some process (the same answer on all)."""
        if self.world == 1:
            return flag
        t = torch.tensor([float(flag)], device=_collective_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def broadcast(self, obj):
        """Rank 0's ``obj``, on every process."""
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=_collective_device())
        return box[0]

    def gather(self, obj) -> list:
        """Every process's ``obj``, by rank, on every process."""
        if self.world == 1:
            return [obj]
        out: list = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


SINGLE = Group()


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _fail(code: str, message: str) -> SmashError:
    return SmashError([error(code, message, COMMAND_LINE)])


def _int_env(name: str) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw)
    except ValueError:
        raise _fail("E0751", f"{name}={raw!r} is not a whole number: start smashc with "
                    "torchrun, which sets it") from None  # fmt: skip
    if value < 0:
        raise _fail("E0751", f"{name}={value} is negative")
    return value


def timeout() -> float:
    """The seconds any rank waits for the others (``SMASHC_INIT_TIMEOUT``)."""
    raw = os.environ.get(TIMEOUT_VARIABLE)
    if raw is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise _fail("E0751", f"{TIMEOUT_VARIABLE}={raw!r}: give a number of seconds above 0")
    return value


def requested() -> bool:
    """Whether this process was started as one of several (``WORLD_SIZE`` above 1)."""
    return os.environ.get("WORLD_SIZE", "1") not in ("", "1")


def _checked_env() -> Group:
    missing = [v for v in (*_ENV, "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:
        raise _fail(
            "E0751",
            f"WORLD_SIZE is {os.environ['WORLD_SIZE']} but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set: start smashc with torchrun "
            "(torchrun --nproc-per-node N -m smashc ...), which sets them all",
        )
    rank, world, local = (_int_env(v) for v in _ENV)
    if not rank < world:
        raise _fail("E0751", f"RANK={rank} must be below WORLD_SIZE={world}")
    return Group(rank, world, local)


def _pin(group: Group, device: torch.device) -> torch.device:
    """This process's device: ``cuda:LOCAL_RANK``, or the CPU with its share of the cores."""
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if group.local >= count:
            raise _fail(
                "E0751",
                f"local rank {group.local} needs a GPU of its own and this machine has "
                f"{count}: start at most {count} processes per node (--nproc-per-node)",
            )
        torch.cuda.set_device(group.local)
        return torch.device("cuda", group.local)
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    if "OMP_NUM_THREADS" not in os.environ:  # torchrun sets it to 1 when it starts several
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, per_node)))
    return device


_joined: Group | None = None


def join(device: torch.device) -> tuple[Group, torch.device]:
    """The process group of this run, joined (once per process), and this process's device
    (``device`` pinned to its share). A single process: ``SINGLE`` and ``device``."""
    global _joined
    if not requested():
        return SINGLE, device
    if _joined is not None:
        return _joined, _pin(_joined, device)
    group = _checked_env()
    wait = timeout()
    pinned = _pin(group, device)
    backend = "nccl" if pinned.type == "cuda" else "gloo"
    try:
        dist.init_process_group(
            backend,
            rank=group.rank,
            world_size=group.world,
            timeout=datetime.timedelta(seconds=wait),
            device_id=pinned if pinned.type == "cuda" else None,
        )
        dist.barrier()  # every rank is there, or the timeout says which is not
    except (RuntimeError, ValueError, OSError) as exc:
        first = str(exc).splitlines()[0].rstrip(".") if str(exc) else type(exc).__name__
        where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
        raise _fail(
            "E0752",
            f"rank {group.rank} of {group.world} could not reach the others at {where} "
            f"({first}; {TIMEOUT_VARIABLE} is {wait:g} s): check that every node runs "
            "the same command "
            "with the same --nnodes, --nproc-per-node and rendezvous address, that the "
            f"address and port are reachable from every node, or raise {TIMEOUT_VARIABLE}",
        ) from None
    _joined = group
    if not group.main:
        progress.hush()  # rank 0 shows the run's bars
    return group, pinned


def leave() -> None:
    """Shuts the process group down (if this process joined one)."""
    global _joined
    if _joined is not None and dist.is_initialized():
        dist.destroy_process_group()
    _joined = None
