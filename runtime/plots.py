"""The figures runs write: training curves, score histograms (and the experiments' own)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from smashc.runtime import runs


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display), imported when a run
    first plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> None:
    """Writes ``fig`` as ``path`` (100 dpi) and closes it."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)


def training_curve(log: Path, path: Path) -> None:
    """Loss and accuracy of the one-shot model per SMASH step (``train.jsonl``), each step's
    value faint and a running mean over a twentieth of the run on top: every step trains a
    different architecture, so single steps are noisy."""
    records = runs.read_jsonl(log)
    if not records:
        return
    plt = pyplot()
    steps = np.array([r["global_step"] for r in records])
    window = max(1, len(records) // 20)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key, label in zip(axes, ("loss", "acc"), ("loss", "accuracy"), strict=True):
        values = np.array([r[key] for r in records])
        mean = np.convolve(values, np.ones(window) / window, mode="valid")
        ax.plot(steps, values, color="#1f77b4", alpha=0.25, linewidth=0.8, label="step")
        ax.plot(steps[window - 1 :], mean, color="#1f77b4", label=f"mean of {window}")
        ax.set_xlabel("SMASH step")
        ax.set_ylabel(f"training {label}")
        ax.legend()
    save(fig, path)


def histogram(errors: list[float], path: Path) -> None:
    """The distribution of the SMASH scores of a search."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(errors, bins=min(30, max(5, len(errors) // 4)), color="#1f77b4")
    ax.set_xlabel("SMASH score (validation error with generated weights)")
    ax.set_ylabel("architectures")
    save(fig, path)


def curves(history: list[dict], path: Path) -> None:
    """Training and validation loss and accuracy per epoch of a final training."""
    if not history:
        return
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    ep = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, what, label in zip(axes, ("loss", "acc"), ("loss", "accuracy"), strict=True):
        # markers: short runs (the demo trains two epochs) would otherwise show bare lines
        ax.plot(ep, [h[f"train_{what}"] for h in history], marker="o", label="train")
        ax.plot(ep, [h[f"val_{what}"] for h in history], marker="o", label="validation")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend()
    save(fig, path)
