"""In-memory datasets: Dataset and Subset, per-channel stats, the seeded train/val split."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from smashc.runtime.data.errors import CMDLINE, fail
from smashc.runtime.data.seeds import seed_from


@dataclass(frozen=True, eq=False)
class Subset:
    """Some images (``uint8 N x C x H x W``) with their labels (``int64 N``)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True, eq=False)
class Dataset:
    """A whole dataset in memory. ``mean``/``std`` are per channel, over ``train_x / 255``."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: int
    class_names: tuple[str, ...]
    flip: bool
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.train_x.shape[1:]
        return (int(c), int(h), int(w))

    @property
    def train(self) -> Subset:
        return Subset(self.train_x, self.train_y)

    @property
    def test(self) -> Subset:
        return Subset(self.test_x, self.test_y)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.train_y)}, test={len(self.test_y)}, "
            f"shape={self.shape}, classes={self.classes})"
        )


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and (population) std of ``uint8 x / 255``, via histograms."""
    values = torch.arange(256, dtype=torch.float64)
    means, stds = [], []
    for c in range(x.shape[1]):
        counts = torch.bincount(x[:, c].reshape(-1), minlength=256).to(torch.float64)
        n = counts.sum()
        mean = (counts * values).sum() / n
        var = (counts * (values - mean) ** 2).sum() / n
        means.append(float(mean) / 255.0)
        stds.append(max(math.sqrt(float(var)) / 255.0, 1e-6))
    return tuple(means), tuple(stds)


def make_dataset(
    name: str,
    train: tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor],
    test: tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor],
    class_names: Sequence[str],
    flip: bool,
) -> Dataset:
    """A :class:`Dataset` of uint8 images and int64 labels, with its stats computed here."""

    def tensors(x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x)
        y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
        return x.to(torch.uint8).contiguous(), y.to(torch.int64).contiguous()

    train_x, train_y = tensors(*train)
    test_x, test_y = tensors(*test)
    mean, std = channel_stats(train_x)
    return Dataset(
        name=name,
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        classes=len(class_names),
        class_names=tuple(class_names),
        flip=flip,
        mean=mean,
        std=std,
    )


def split(ds: Dataset, val_size: int, seed: int) -> tuple[Subset, Subset]:
    """``(train, val)``: hold out ``val_size`` training examples chosen by a seeded random
    permutation (``torch.randperm`` on a generator seeded from ``seed``), so the same seed always
    gives the same split. Each part keeps the original order of its examples. ``val_size == 0``
    gives an empty validation set."""
    n = len(ds.train_y)
    if isinstance(val_size, bool) or not isinstance(val_size, int) or not 0 <= val_size < n:
        raise fail(
            "E0704",
            f"validation size must be an integer in 0..{n - 1} for {ds.name} "
            f"({n} training images), got {val_size!r}",
            CMDLINE,
        )
    gen = torch.Generator().manual_seed(seed_from(seed, 0x5B117))
    perm = torch.randperm(n, generator=gen)
    val_idx = perm[:val_size].sort().values
    train_idx = perm[val_size:].sort().values
    return (
        Subset(ds.train_x[train_idx], ds.train_y[train_idx]),
        Subset(ds.train_x[val_idx], ds.train_y[val_idx]),
    )
