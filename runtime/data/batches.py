"""Seeded, resumable, optionally augmented mini-batches of a Subset (Batches, crop padding)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from smashc.runtime.data.dataset import Dataset, Subset
from smashc.runtime.data.errors import CMDLINE, fail
from smashc.runtime.data.seeds import seed_from


def default_pad(shape: tuple[int, int, int]) -> int:
    """Crop padding: 4 for 32x32 and larger images (CIFAR), 2 below (28x28 Fashion-MNIST)."""
    return 4 if min(shape[1], shape[2]) >= 32 else 2


class Batches:
    """Seeded, resumable mini-batches ``(x, y)`` of a :class:`Subset`.

    ``x`` is float32 ``B x C x H x W``, ``(x / 255 - mean) / std`` with the dataset's stats, ``y``
    int64, both on ``device``. With ``shuffle`` each epoch visits the examples in a fresh random
    order; with ``augment`` each image is zero-padded by ``pad`` pixels (raw 0, i.e. black,
    before normalisation), randomly cropped back to ``H x W`` and, when ``ds.flip``, flipped
    horizontally with probability 1/2.

    All of epoch ``e``'s randomness (order, crop offsets, flips) is drawn up front from a
    ``torch.Generator`` seeded from ``(seed, e)``: epoch ``e`` is identical in every run, and
    ``epoch(e, start=k)`` yields exactly the batches ``k, k+1, ...`` of an uninterrupted epoch.
    """

    def __init__(
        self,
        ds: Dataset,
        data: Subset,
        batch_size: int,
        seed: int = 0,
        *,
        shuffle: bool = True,
        augment: bool = False,
        drop_last: bool = False,
        pad: int | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise fail("E0704", f"batch size must be a positive integer, got {batch_size!r}",
                       CMDLINE)  # fmt: skip
        if data.x.shape[1:] != ds.train_x.shape[1:]:
            raise ValueError(f"subset images {tuple(data.x.shape[1:])} do not match {ds.shape}")
        self.ds = ds
        self.data = data
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.augment = augment
        self.drop_last = drop_last
        self.pad = default_pad(ds.shape) if pad is None else int(pad)
        if self.pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        c = ds.shape[0]
        self._mean = torch.tensor(ds.mean, dtype=torch.float32, device=self.device).view(1, c, 1, 1)
        self._std = torch.tensor(ds.std, dtype=torch.float32, device=self.device).view(1, c, 1, 1)

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def examples(self) -> int:
        """How many examples one epoch yields (fewer than the subset with ``drop_last``)."""
        return min(len(self.data), len(self) * self.batch_size)

    def epoch(
        self, e: int, start: int = 0, keep: Callable[[int], bool] | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of epoch ``e`` (>= 0) from batch ``start`` (0 <= start <= len) on;
        with ``keep``, only the batches whose index it accepts (the others are not built:
        a process of a distributed run takes its share of the same epoch)."""
        if e < 0:
            raise ValueError(f"epoch must be >= 0, got {e}")
        if not 0 <= start <= len(self):
            raise ValueError(f"start must be in 0..{len(self)}, got {start}")
        n = len(self.data)
        gen = torch.Generator().manual_seed(seed_from(self.seed, e, 0xBA7C4))
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        offsets = flips = None
        if self.augment:
            offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=gen)
            if self.ds.flip:
                flips = torch.rand(n, generator=gen) < 0.5
        return self._iterate(order, offsets, flips, start, keep)

    def _iterate(
        self,
        order: torch.Tensor,
        offsets: torch.Tensor | None,
        flips: torch.Tensor | None,
        start: int,
        keep: Callable[[int], bool] | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        b = self.batch_size
        for i in range(start, len(self)):
            if keep is not None and not keep(i):
                continue
            pos = slice(i * b, min((i + 1) * b, len(order)))
            idx = order[pos]
            x = self.data.x[idx]
            y = self.data.y[idx]
            if offsets is not None:
                x = self._crop(x, offsets[pos])
            if flips is not None:
                f = flips[pos]
                x = torch.where(f.view(-1, 1, 1, 1), x.flip(-1), x)
            x = x.to(self.device, non_blocking=True).to(torch.float32).div_(255.0)
            x = x.sub_(self._mean).div_(self._std)
            yield x, y.to(self.device, non_blocking=True)

    def _crop(self, x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        p = self.pad
        if p == 0:
            return x
        n, c, h, w = x.shape
        padded = torch.nn.functional.pad(x, (p, p, p, p))  # zeros
        rows = (offsets[:, 0:1] + torch.arange(h)).view(n, 1, h, 1)
        cols = (offsets[:, 1:2] + torch.arange(w)).view(n, 1, 1, w)
        return padded[
            torch.arange(n).view(n, 1, 1, 1), torch.arange(c).view(1, c, 1, 1), rows, cols
        ]
