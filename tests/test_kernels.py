"""``backends.kernels.conv2d`` is ``F.conv2d``: same output and same gradients (float64),
on every path it dispatches to (dilated weight gradients on sub-images or by oneDNN,
whichever this CPU would take) and on sizes the dilation does not divide; ``fast_convs``
runs a compiled free-weight network as the network itself does, on its own parameters."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from smashc.backends import kernels

CASES = [
    # (kernel, dilation, groups, size)
    *itertools.product([(5, 5), (7, 3), (3, 7)], [(1, 1), (2, 1), (1, 2), (2, 2)], [1, 2, 8], [8]),
    ((5, 5), (2, 2), 4, 7),  # odd size: sub-images need zero padding at the bottom/right
    ((3, 7), (3, 1), 2, 10),  # dilation 3 does not divide 10
    ((7, 7), (1, 1), 8, 5),  # kernel wider than the image
    ((3, 3), (3, 3), 8, 8),  # dilation 3 on 8 pixels: sub-images of 3 and 2 rows
    ((1, 1), (1, 1), 1, 8),
]


@pytest.fixture(params=[True, False], ids=["subimage-wgrad", "onednn-wgrad"])
def wgrad(request, monkeypatch):
    monkeypatch.setattr(kernels, "SUBIMAGE_WEIGHT_GRAD", request.param)
    return request.param


@pytest.mark.parametrize(("kernel", "dilation", "groups", "size"), CASES)
def test_conv2d_matches_torch(kernel, dilation, groups, size, wgrad):
    gen = torch.Generator().manual_seed(hash((kernel, dilation, groups, size)) % 2**31)
    cin, cout = 16, 8
    x = torch.randn(3, cin, size, size + 1, generator=gen, dtype=torch.float64)
    w = torch.randn(cout, cin // groups, *kernel, generator=gen, dtype=torch.float64)
    pad = tuple((k - 1) // 2 * d for k, d in zip(kernel, dilation, strict=True))
    x1, w1 = x.clone().requires_grad_(), w.clone().requires_grad_()
    x2, w2 = x.clone().requires_grad_(), w.clone().requires_grad_()
    y1 = kernels.conv2d(x1, w1, pad, dilation, groups)
    y2 = F.conv2d(x2, w2, None, 1, pad, dilation, groups)
    assert y1.is_contiguous(memory_format=torch.channels_last)  # the network's one layout
    on_subimages = type(y1.grad_fn).__name__ == "_DilatedConvBackward"
    assert on_subimages == (wgrad and dilation != (1, 1))
    torch.testing.assert_close(y1, y2)
    gy = torch.randn(y2.shape, generator=gen, dtype=torch.float64)
    g1 = torch.autograd.grad(y1, (x1, w1), gy)
    g2 = torch.autograd.grad(y2, (x2, w2), gy)
    torch.testing.assert_close(g1[0], g2[0])
    torch.testing.assert_close(g1[1], g2[1])


def test_weight_gradient_alone(wgrad):
    """Only the weight needs a gradient (the first conv of a network, frozen inputs)."""
    x = torch.randn(2, 8, 8, 8, dtype=torch.float64)
    w = torch.randn(4, 8, 5, 5, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(kernels.conv2d(x, w, (4, 2), (2, 1), 1).sum(), (w,))
    w2 = w.detach().clone().requires_grad_()
    (g2,) = torch.autograd.grad(F.conv2d(x, w2, None, 1, (4, 2), (2, 1), 1).sum(), (w2,))
    torch.testing.assert_close(g, g2)


@pytest.mark.parametrize(("kernel", "dilation", "groups", "size"), CASES[::5])
def test_conv2d_without_autograd_runs_channels_last(kernel, dilation, groups, size):
    """Scoring's path (no autograd graph): same values, channels-last out."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(3, 16, size, size, generator=gen, dtype=torch.float64)
    w = torch.randn(8, 16 // groups, *kernel, generator=gen, dtype=torch.float64)
    pad = tuple((k - 1) // 2 * d for k, d in zip(kernel, dilation, strict=True))
    with torch.no_grad():
        y = kernels.conv2d(x, w, pad, dilation, groups)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, F.conv2d(x, w, None, 1, pad, dilation, groups))


def test_dilated_conv_without_same_padding(wgrad):
    """The sub-image gradient needs "same" padding; any other padding takes the plain conv."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 8, 9, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 8, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    y = kernels.conv2d(x, w, (1, 0), (3, 2), 1)
    y2 = F.conv2d(x, w, None, 1, (1, 0), (3, 2), 1)
    torch.testing.assert_close(y, y2)
    g = torch.autograd.grad(y.sum(), (x, w))
    g2 = torch.autograd.grad(y2.sum(), (x, w))
    torch.testing.assert_close(g, g2)


def test_crops_match_slices_and_their_gradients():
    """Overlapping boxes, one box used twice and one not at all: the bank's gradient is that
    of plain slicing."""
    gen = torch.Generator().manual_seed(7)
    bank = torch.randn(6, 8, 7, 7, generator=gen, dtype=torch.float64)
    boxes = (
        (6, 8, (0, 7), (0, 7)),
        (4, 2, (2, 5), (1, 6)),
        (3, 8, (3, 4), (3, 4)),
        (4, 2, (2, 5), (1, 6)),
        (5, 5, (1, 6), (1, 6)),
    )
    b1, b2 = bank.clone().requires_grad_(), bank.clone().requires_grad_()
    got = kernels.crops(b1, boxes)
    want = [b2[:o, :i, slice(*r), slice(*c)] for o, i, r, c in boxes]
    for g, w in zip(got, want, strict=True):
        assert g.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(g, w)
    weights = [torch.randn(w.shape, generator=gen, dtype=torch.float64) for w in want]
    used = [0, 1, 2, 3]  # box 4 takes no part in the loss
    sum((got[k] * weights[k]).sum() for k in used).backward()
    sum((want[k] * weights[k]).sum() for k in used).backward()
    torch.testing.assert_close(b1.grad, b2.grad)


_NET = """
network fast {
    input 2 x 12 x 12
    classes 5
    stem { conv(out=8, kernel=3) -> relu }
    block b {
        banks 4 x 4
        layer l0 read 0, 1 write 2 = smash(out=4, bottleneck=8,
            c0=conv(kernel=(3, 5), dilation=(2, 1), groups=2))
        layer l1 read 0..2 write 1, 3 = smash(out=8, bottleneck=8,
            c0=conv(kernel=5, dilation=2, groups=4))
        layer l2 read 3 write 0 = smash(out=4, bottleneck=4, c0=conv(kernel=3))
    }
    transition { bn -> relu -> conv(out=8, kernel=1) -> avgpool(kernel=2) }
    head { bn -> relu -> gap -> linear(out=5) }
}
"""


def test_fast_convs_is_the_same_network_on_the_same_parameters():
    from smashc.backends.fx import to_fx
    from smashc.frontend.loader import load_text
    from smashc.pipeline import compile_program

    torch.manual_seed(0)
    gm = to_fx(compile_program(load_text(_NET, "fast.smash")).ir).double()
    fast = kernels.fast_convs(gm)
    assert {id(p) for p in fast.parameters()} == {id(p) for p in gm.parameters()}
    wrapped = [m for m in fast.modules() if type(m).__name__ == "_FastConv"]
    assert len(wrapped) >= 6  # stem, bottlenecks, the ops' convs, the transition's conv
    assert all(type(m) is not type(wrapped[0]) for m in gm.modules())  # gm keeps nn.Conv2d
    x = torch.randn(3, 2, 12, 12, dtype=torch.float64)
    outs, grads = [], []
    for net in (gm, fast):
        net.train()
        out = net(x)
        out.square().sum().backward()
        outs.append(out.detach())
        grads.append([p.grad.clone() for p in gm.parameters()])
        gm.zero_grad()
    torch.testing.assert_close(outs[1], outs[0])
    for a, b in zip(grads[0], grads[1], strict=True):
        torch.testing.assert_close(b, a)
    with torch.no_grad():  # training the fast one trains gm
        next(p for n, p in fast.named_parameters() if "conv" in n).add_(1.0)
    assert not torch.equal(gm(x), outs[0])
