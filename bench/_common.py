"""What the benchmark scripts share: their common options (threads, device, ``--json``) and
the JSON line ``bench/run.py`` reads from each."""

from __future__ import annotations

import argparse
import json

import torch

from smashc.runtime.alloc import keep_freed_memory


def parser(doc: str, *, device: bool = False) -> argparse.ArgumentParser:
    """An argument parser described by the first line of ``doc``, with ``--threads``,
    ``--json`` and, with ``device``, ``--device``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    if device:
        ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    return ap


def parse(ap: argparse.ArgumentParser) -> argparse.Namespace:
    """The parsed arguments, with torch's thread count set from them and malloc set up as
    ``smashc search`` and ``smashc train`` set it (``runtime.alloc``)."""
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    return args


def emit(args: argparse.Namespace, figures) -> None:
    """The figures as one JSON line, when ``--json`` was given."""
    if args.json:
        print(json.dumps(figures))
