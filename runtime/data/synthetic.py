"""The synthetic dataset: ten classes of coloured stripes, deterministic, needing no files."""

from __future__ import annotations

import torch

from smashc.runtime.data.dataset import Dataset, make_dataset
from smashc.runtime.data.errors import CMDLINE, fail
from smashc.runtime.data.seeds import seed_from

_PALETTE = ((255, 40, 40), (40, 255, 40), (40, 40, 255), (255, 255, 40), (40, 255, 255))
_COLOUR_NAMES = ("red", "green", "blue", "yellow", "cyan")
_LEVELS = (80, 120, 160, 200, 240)


def synthetic(size: int, shape: tuple[int, int, int]) -> Dataset:
    """Ten classes = 5 colours x 2 stripe orientations (horizontal for 0-4, vertical for 5-9).

    Each image is dim noise plus stripes of period 4 with a random phase in the class colour at
    a random brightness, so the class survives crops, flips and shifts and a small conv net
    learns it in a few hundred steps. Always the same images (fixed seed).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise fail("E0704", f"synthetic dataset size must be a positive integer, got {size!r}",
                   CMDLINE)  # fmt: skip
    c, h, w = (int(v) for v in shape)
    if c < 1 or h < 4 or w < 4:
        raise fail("E0704", f"synthetic image shape must be C x H x W with C >= 1 and H, W >= 4, "
                   f"got {tuple(shape)}", CMDLINE)  # fmt: skip
    if c == 3:
        colours = torch.tensor(_PALETTE, dtype=torch.float32)
        colour_names = _COLOUR_NAMES
    else:
        colours = torch.tensor(
            [[_LEVELS[(k + j) % 5] for j in range(c)] for k in range(5)], dtype=torch.float32
        )
        colour_names = tuple(f"level{k}" for k in range(5))
    names = tuple(f"{n}-{o}" for o in ("horizontal", "vertical") for n in colour_names)

    def make(n: int, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed_from(0x5E7, stream))
        y = (torch.arange(n) % 10)[torch.randperm(n, generator=gen)]
        phase = torch.randint(0, 4, (n, 1, 1), generator=gen)
        rows = torch.arange(h).view(1, h, 1)
        cols = torch.arange(w).view(1, 1, w)
        vertical = (y >= 5).view(n, 1, 1)
        coord = torch.where(vertical, cols.expand(n, h, w), rows.expand(n, h, w))
        on = (((coord + phase) % 4) < 2).to(torch.float32).unsqueeze(1)  # n x 1 x h x w
        bright = 0.85 + 0.15 * torch.rand(n, 1, 1, 1, generator=gen)
        colour = colours[y % 5].view(n, c, 1, 1)
        noise = 40.0 * torch.rand(n, c, h, w, generator=gen)
        x = (noise + on * colour * bright).clamp(0, 255).round().to(torch.uint8)
        return x, y

    return make_dataset("synthetic", make(size, 1), make(max(1, size // 4), 2), names, False)
