"""The HyperNet backend's per-op kernels: the generated bottleneck, the shared conv and the
crops of the shared weight bank it takes its weights from; and ``fast_convs``, which runs a
free-weight network's convs through the same conv for training.

One fx node each (instead of the four to six of their parts) keeps the graph small:
building fx nodes is the largest part of compiling an architecture every step.

On CPU every conv runs in channels-last layout and returns it, so the whole network
after the stem stays channels-last: the elementwise ops, bank concatenations, BN and
pooling follow their inputs' layout, and no conversions remain. Same result and gradients
as ``F.conv2d(x, w, None, 1, padding, dilation, groups)``. Why, measured at batch 50 on
2 threads of an AVX2 CPU (``bench/archive/convs.py`` per conv, ``bench/train_step.py`` and
``bench/score.py`` per step and per scored architecture):

* oneDNN runs 1x1 convs 1.4x and grouped convs 2-3x faster in channels-last than in NCHW
  (forward + backward); dense 5x5+ convs lose 7%. With a conversion before and after
  each conv the 1x1 gain turns into a loss, hence one layout throughout;
* on AVX2, oneDNN's dilated kernels have a weight gradient at 15-20 GFLOP/s (against
  100-200 for the forward); computing it on the space-to-batch form of input and output
  gradient, where the dilated conv becomes an ordinary one on ``dh * dw`` sub-images, is
  2-3x faster. With AVX-512 oneDNN's own is the faster one (``SUBIMAGE_WEIGHT_GRAD``).

Over the convs of three late architectures: 4.2 s in NCHW, 3.1 s in channels-last, 2.6 s
as dispatched here. Against a mix that keeps NCHW and converts only grouped and dilated
5x5+ convs to channels-last and back around each conv, ``make bench`` measures 0.71 s
instead of 0.82 per early step, 1.27 instead of 1.53 s per late step and 39.4 instead of
46.8 s per scored architecture (reference-sized work); steps alternated between the two on
the same architectures differ by 7-8% early and 12-16% late.
"""

from __future__ import annotations

import itertools
import os

import torch
import torch.nn.functional as F  # noqa: N812
from torch import fx, nn

_CL = torch.channels_last


def _subimage_weight_grad() -> bool:
    """Whether dilated convs take their weight gradient on sub-images: where oneDNN runs
    without AVX-512. Forward + backward of the dilated convs of three early reference-sized
    architectures (``bench/archive/convs.py --progress 0``, fp32, 2 threads, one AVX-512 EPYC):
    554 ms by oneDNN with its ISA capped at AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``) against 430
    on sub-images, but 191 against 234 with AVX-512 (late architectures: 378 against 404).
    Early training steps on that CPU are 4.5% (fp32) and 7% (bf16) faster without the
    sub-images, late ones the same (``bench/archive/ab.py``)."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    capped = isa in ("SSE41", "AVX") or isa.startswith("AVX2")
    return capped or not torch.backends.cpu.get_cpu_capability().startswith("AVX512")


SUBIMAGE_WEIGHT_GRAD = _subimage_weight_grad()


def _to_subimages(x: torch.Tensor, dh: int, dw: int) -> torch.Tensor:
    """(N, C, H, W) -> (N*dh*dw, C, ceil(H/dh), ceil(W/dw)), channels-last: pixel (i, j) of
    sub-image (a, b) is pixel (a + dh*i, b + dw*j); a dilated conv on x is an undilated one
    on these (zero rows at the bottom/right stand in for the conv's own zero padding).

    One copy, from channels-last to channels-last; only the padding rows are zeroed. (A pad,
    a permute and a layout conversion would make three copies; one copy makes training steps
    4-5% faster, ``bench/archive/ab.py``.)
    """
    n, c, h, w = x.shape
    hs, ws = -(-h // dh), -(-w // dw)
    xl = x.permute(0, 2, 3, 1)  # (N, H, W, C): a view of a channels-last x
    if (hs * dh, ws * dw) == (h, w):
        out = xl.reshape(n, hs, dh, ws, dw, c).permute(0, 2, 4, 1, 3, 5).contiguous()
    else:
        out = x.new_empty(n, dh, dw, hs, ws, c)
        for a, b in itertools.product(range(dh), range(dw)):
            rows, cols = len(range(a, h, dh)), len(range(b, w, dw))
            out[:, a, b, :rows, :cols] = xl[:, a::dh, b::dw]
            out[:, a, b, rows:] = 0
            out[:, a, b, :rows, cols:] = 0
    return out.reshape(n * dh * dw, hs, ws, c).permute(0, 3, 1, 2)


class _DilatedConv(torch.autograd.Function):
    """Channels-last dilated conv whose weight gradient is taken on the sub-images."""

    @staticmethod
    def forward(ctx, x, w, padding, dilation, groups):
        ctx.save_for_backward(x, w)  # both channels-last, in the conv's dtype (``conv2d``)
        ctx.conf = (padding, dilation, groups)
        return F.conv2d(x, w, None, 1, padding, dilation, groups)

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        padding, dilation, groups = ctx.conf
        gy = gy.contiguous(memory_format=_CL)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.convolution_backward(
                gy, x, w, None, [1, 1], list(padding), list(dilation), False, [0, 0], groups,
                [True, False, False],
            )[0]  # fmt: skip
        if ctx.needs_input_grad[1]:
            (dh, dw), (kh, kw) = dilation, w.shape[2:]
            gw = torch.ops.aten.convolution_backward(
                _to_subimages(gy, dh, dw), _to_subimages(x, dh, dw), w, None, [1, 1],
                [(kh - 1) // 2, (kw - 1) // 2], [1, 1], False, [0, 0], groups,
                [False, True, False],
            )[1]  # fmt: skip
        return gx, gw, None, None, None


def conv2d(
    x: torch.Tensor,
    w: torch.Tensor,
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
) -> torch.Tensor:
    """``F.conv2d`` (stride 1, no bias), channels-last out on CPU. The sub-image weight
    gradient (``SUBIMAGE_WEIGHT_GRAD``) needs "same" padding, which every SMASH conv has."""
    if x.device.type != "cpu":
        return F.conv2d(x, w, None, 1, padding, dilation, groups)
    x, w = _cl(x), _cl(w)
    (kh, kw), (dh, dw) = w.shape[2:], dilation
    same = tuple(padding) == ((kh - 1) // 2 * dh, (kw - 1) // 2 * dw)
    if SUBIMAGE_WEIGHT_GRAD and dilation != (1, 1) and same:
        return _DilatedConv.apply(x, w, padding, dilation, groups)
    return F.conv2d(x, w, None, 1, padding, dilation, groups)


def _cl(t: torch.Tensor) -> torch.Tensor:
    """``t`` channels-last, and cast as autocast casts a conv's operands where it is on (not
    float64): one copy at most. (Autocast would cast again after a layout copy, and does
    not reach into ``_DilatedConv``, whose backward needs its saved operands in the dtype
    of the output gradient.)"""
    if torch.is_autocast_enabled("cpu") and t.dtype != torch.float64:
        return t.to(torch.get_autocast_dtype("cpu"), memory_format=_CL)
    return t.contiguous(memory_format=_CL)


def bottleneck(x: torch.Tensor, w: list[torch.Tensor], slot: int, cin: int) -> torch.Tensor:
    """ReLU of the op's 1x1 conv with generated weight ``w[slot]`` (bottleneck, cin),
    weight-normalised: divided by its Frobenius norm."""
    mat = w[slot]
    kern = (mat / mat.norm()).reshape(mat.shape[0], cin, 1, 1)
    # in place: the conv backward does not need its output (one allocation less per op)
    return conv2d(x, kern, (0, 0), (1, 1), 1).relu_()


Box = tuple[int, int, tuple[int, int], tuple[int, int]]  # out, in, rows, cols


class _Crops(torch.autograd.Function):
    """Copies of boxes of one shared weight bank, taken from it by one autograd node.

    Slicing the bank once per conv gives each conv its own slice backward, and each of
    those allocates a zero tensor the size of the whole bank and adds it into the bank's
    gradient; here one zero tensor takes every box's gradient in place. (The profiler put
    33 ms of an early step in those slice backwards, fills and adds; with one autograd node
    steps are about 1% faster, ``bench/archive/ab.py``.)
    """

    @staticmethod
    def forward(ctx, bank, boxes):
        ctx.set_materialize_grads(False)
        ctx.shape, ctx.dtype, ctx.boxes = bank.shape, bank.dtype, boxes
        if bank.device.type == "cpu":
            return tuple(_cl(bank[_window(box)]) for box in boxes)
        return tuple(bank[_window(box)].contiguous() for box in boxes)

    @staticmethod
    def backward(ctx, *grads):
        g = None
        for box, gk in zip(ctx.boxes, grads, strict=True):
            if gk is not None:
                if g is None:
                    g = gk.new_zeros(ctx.shape, dtype=ctx.dtype)
                g[_window(box)] += gk
        return g, None


def _window(box: Box) -> tuple[slice, ...]:
    out, cin, rows, cols = box
    return slice(0, out), slice(0, cin), slice(*rows), slice(*cols)


def crops(bank: torch.Tensor, boxes: tuple[Box, ...]) -> tuple[torch.Tensor, ...]:
    """``bank[:out, :in, rows[0]:rows[1], cols[0]:cols[1]]`` for each box, channels-last on
    CPU; one node in autograd."""
    return _Crops.apply(bank, boxes)


def shared_conv(
    x: torch.Tensor,
    weights: tuple[torch.Tensor, ...],
    k: int,
    dilation: tuple[int, int],
    groups: int,
) -> torch.Tensor:
    """The conv with the shared weight ``weights[k]`` (one of ``crops``), "same" padding."""
    w = weights[k]
    kh, kw = w.shape[2:]
    pad = ((kh - 1) // 2 * dilation[0], (kw - 1) // 2 * dilation[1])
    return conv2d(x, w, pad, dilation, groups)


class _FastConv(nn.Module):
    """A stride-1, bias-free ``nn.Conv2d`` run through ``conv2d``, on the wrapped module's
    own weight (so training one trains the other)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        return conv2d(x, c.weight, c.padding, c.dilation, c.groups)


def fast_convs(gm: fx.GraphModule) -> fx.GraphModule:
    """``gm``'s graph on ``gm``'s own modules and parameters, its stride-1 bias-free convs
    dispatched through ``conv2d`` (channels-last; on AVX2, the sub-image weight gradient
    for dilated convs). The same function; ``gm`` itself, which ``smashc compile`` and the
    exported package keep, is unchanged.

    For the free-weight networks that ``smashc train`` trains: on an AVX2 CPU, a
    Fashion-MNIST demo winner with dilated and grouped convs trained 2.2-2.6x faster per
    step (fp32 176 -> 77 ms, bf16 153 -> 59 ms, batch 64), one with few of them 1.2x
    (92 -> 78, 64 -> 52 ms)."""
    root: dict[str, nn.Module] = {}
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        mod = gm.get_submodule(node.target)
        if (
            type(mod) is nn.Conv2d
            and mod.stride == (1, 1)
            and mod.bias is None
            and mod.padding_mode == "zeros"
            and not isinstance(mod.padding, str)
        ):
            mod = _FastConv(mod)
        root[node.target] = mod
    return fx.GraphModule(root, gm.graph, type(gm).__name__)
