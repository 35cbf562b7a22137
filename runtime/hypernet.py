"""The HyperNet: a fully convolutional DenseNet over the encoding c (plus a noise channel).

As in the reference: no BatchNorm, no biases, every conv weight-normalised, LeakyReLU(0.02)
before every conv but the first, no downsampling. A 3x3 stem conv whose output is
concatenated to its input, dense blocks (default 8, 10, 4 layers of growth 10, 3x3) joined
by 3x3 convs that halve the channel count, and a final 1x1 conv to
``unit * slice_width`` channels: at each (row, slice) of c, one unit-out x slice-in block
of generated 1x1 weights (``encoding.op_weights`` cuts each op's matrix out of it).

Its forward and backward take 8-17% of a SMASH step (``bench/archive/hypernet.py``: 65 ms for
early architectures, 86 ms for late ones). Each feature's LeakyReLU is computed once,
when the feature is made, and each dense layer reads the concatenation of the activated
features: LeakyReLU(cat(x, y)) = cat(LeakyReLU(x), LeakyReLU(y)), so this is the
reference's "activate the whole concatenation before each conv" without redoing the
earlier layers' activations at every layer. Same function; only 1-2% faster
(``bench/archive/hypernet.py``), as the features are small (batch 1, 8 rows). Channels-last
convs, or channels-last for the input gradient alone, were slower: the layout
conversions and channels-last concatenations cost more than the convs gain. So was an
input gradient computed as the forward conv of the output gradient with flipped filters
(40% faster per conv in isolation, 3% slower in the HyperNet).

It runs on c zero-padded to a multiple of ``WIDTH_STEP`` slices, its features re-zeroed
beyond the real width after every layer, so every conv sees the zeros its own padding
would give: the same function, but a few input widths instead of one per architecture,
so oneDNN reuses its conv kernels across architectures. Fresh-architecture bf16 steps
(reference-sized work, 20 warm-up then 30 timed architectures per process, two processes
each): early 0.281 -> 0.246 s, late 0.498 -> 0.465 s; buckets of 128 gained nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from smashc.compiler import EncodingConfig
from smashc.runtime.rules import count, counts, number, setting

# The HyperNet runs on c padded to a multiple of this many slices. A conv library builds
# a kernel for each input shape; unpadded, every architecture's slice count is a new shape
# and a step rebuilt all ~80 of the HyperNet's conv kernels.
WIDTH_STEP = 64


@dataclass(frozen=True)
class HyperNetConfig:
    stem_channels: int = setting(7, count(1))
    blocks: tuple[int, ...] = setting((8, 10, 4), counts(1))
    growth: int = setting(10, count(1))
    slope: float = setting(0.02, number(0))


class WNConv2d(nn.Module):
    """A bias-free conv whose filters are each divided by their norm and scaled by a gain."""

    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__()
        w = torch.empty(cout, cin, kernel, kernel)
        nn.init.orthogonal_(w.view(cout, -1))
        self.weight = nn.Parameter(w)
        self.gain = nn.Parameter(w.flatten(1).norm(dim=1))
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = self.weight.flatten(1).norm(dim=1).clamp_min(1e-12)
        w = self.weight * (self.gain / norm)[:, None, None, None]
        return F.conv2d(x, w, None, 1, self.padding)


class HyperNet(nn.Module):
    """c (1, C, rows, S) -> generated weights (1, unit * slice_width, rows, S)."""

    def __init__(self, enc: EncodingConfig, cfg: HyperNetConfig | None = None):
        super().__init__()
        cfg = cfg or HyperNetConfig()
        self.cfg = cfg
        self.enc = enc
        c = enc.channels + 1  # + the noise channel z
        self.stem = WNConv2d(c, cfg.stem_channels, 3)
        c += cfg.stem_channels
        self.dense = nn.ModuleList()
        self.halve = nn.ModuleList()
        for i, n in enumerate(cfg.blocks):
            layers = nn.ModuleList()
            for _ in range(n):
                layers.append(WNConv2d(c, cfg.growth, 3))
                c += cfg.growth
            self.dense.append(layers)
            if i + 1 < len(cfg.blocks):
                self.halve.append(WNConv2d(c, c // 2, 3))
                c //= 2
        self.out = WNConv2d(c, enc.unit * enc.slice_width, 1)

    def forward(self, c: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if z is None:
            z = torch.randn(c.shape[0], 1, *c.shape[2:], device=c.device, dtype=c.dtype)
        x = torch.cat([c, z], dim=1)
        width = x.shape[3]
        padded = -(-width // WIDTH_STEP) * WIDTH_STEP
        x = F.pad(x, (0, padded - width))
        # zero beyond ``width`` after every layer, as the unpadded convs' zero padding is
        keep = torch.arange(padded, device=x.device) < width
        slope = self.cfg.slope
        act = lambda t: F.leaky_relu(t, slope) * keep  # noqa: E731
        # the activated features so far; a dense layer reads their concatenation
        feats = [F.leaky_relu(x, slope), act(self.stem(x))]
        for i, layers in enumerate(self.dense):
            for conv in layers:
                feats.append(act(conv(torch.cat(feats, dim=1))))
            if i < len(self.halve):
                feats = [act(self.halve[i](torch.cat(feats, dim=1)))]
        return self.out(torch.cat(feats, dim=1))[..., :width]
