"""dE/dc: the gradient of the SMASH loss with respect to the encoding c, and the single-op
changes of an architecture it can rank (the paper's "perturbing the architecture according
to the dE/dc vector").

A change is made on the architecture (``arch.Network``), so the result is always a valid
network of the search space; its encoding then differs from the original's only in the
changed op's field. The first-order prediction of the loss change is
``sum(dE/dc * (c_new - c_old))``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F  # noqa: N812

from smashc.compiler import EncodingConfig, arch, encode_network, op_weights
from smashc.runtime.oneshot import Compiled, OneShot
from smashc.runtime.sampler import SearchSpace

ATTRIBUTES = ("kernel_h", "kernel_w", "dilation_h", "dilation_w", "groups")


@dataclass(frozen=True)
class Change:
    """One attribute of one conv of one layer's op set to a new value."""

    block: int
    layer: int  # index within the block
    conv: int  # grid position 0..3
    attribute: str  # one of ATTRIBUTES
    old: int
    new: int

    def describe(self) -> str:
        return (
            f"block{self.block} layer {self.layer} c{self.conv}.{self.attribute} "
            f"{self.old} -> {self.new}"
        )


def _get(conv: arch.SmashConv, attribute: str) -> int:
    axis = 0 if attribute.endswith("_h") else 1
    if attribute.startswith("kernel"):
        return conv.kernel[axis]
    if attribute.startswith("dilation"):
        return conv.dilation[axis]
    return conv.groups


def _set(conv: arch.SmashConv, attribute: str, value: int) -> arch.SmashConv:
    axis = 0 if attribute.endswith("_h") else 1
    if attribute == "groups":
        return replace(conv, groups=value)
    name = "kernel" if attribute.startswith("kernel") else "dilation"
    pair = list(getattr(conv, name))
    pair[axis] = value
    return replace(conv, **{name: (pair[0], pair[1])})


def _allowed(op: arch.SmashOp, p: int, conv: arch.SmashConv, space: SearchSpace) -> bool:
    """The sampler's rule (per axis, dilation at most 4 - (kernel - 1) / 2) and groups that
    divide the conv's input and output channels."""
    dilations = all(
        1 <= d <= min(space.max_dilation, 4 - (k - 1) // 2)
        for k, d in zip(conv.kernel, conv.dilation, strict=True)
    )
    return dilations and op.conv_in(p) % conv.groups == 0 and op.out % conv.groups == 0


def single_changes(net: arch.Network, space: SearchSpace) -> list[Change]:
    """Every change of one kernel size, dilation or group count of one active conv that the
    search space's sampler could have drawn."""
    enc = space.encoding()
    values = {
        "kernel_h": enc.kernel_sizes,
        "kernel_w": enc.kernel_sizes,
        "dilation_h": tuple(range(1, space.max_dilation + 1)),
        "dilation_w": tuple(range(1, space.max_dilation + 1)),
        "groups": enc.groups,
    }
    out = []
    for b, blk in enumerate(net.blocks):
        for i, lay in enumerate(blk.layers):
            op = lay.ops[0]
            assert isinstance(op, arch.SmashOp)
            for p, conv in enumerate(op.convs):
                if conv is None:
                    continue
                for attribute in ATTRIBUTES:
                    old = _get(conv, attribute)
                    for new in values[attribute]:
                        if new != old and _allowed(op, p, _set(conv, attribute, new), space):
                            out.append(Change(b, i, p, attribute, old, new))
    return out


def apply(net: arch.Network, change: Change) -> arch.Network:
    """``net`` with ``change`` made (a new network; ``net`` is not modified)."""
    blk = net.blocks[change.block]
    lay = blk.layers[change.layer]
    op = lay.ops[0]
    assert isinstance(op, arch.SmashOp)
    conv = op.convs[change.conv]
    if conv is None or _get(conv, change.attribute) != change.old:
        raise ValueError(f"{change.describe()} does not fit this network")
    convs = list(op.convs)
    convs[change.conv] = _set(conv, change.attribute, change.new)
    new_op = replace(op, convs=tuple(convs))  # type: ignore[arg-type]
    layers = list(blk.layers)
    layers[change.layer] = replace(lay, ops=(new_op,))
    new_blk = replace(blk, layers=tuple(layers))
    stages = tuple(new_blk if s is blk else s for s in net.stages)
    return replace(net, stages=stages)


def encode_arch(net: arch.Network, cfg: EncodingConfig) -> torch.Tensor:
    """c of a network, compiled as for the one-shot model (``compiler.encode_network``)."""
    return encode_network(net, cfg).tensor


def encoding_gradient(
    model: OneShot, compiled: Compiled, batches, z: torch.Tensor, limit: int
) -> tuple[torch.Tensor, float]:
    """dE/dc and E, with E the mean cross-entropy of ``compiled`` with generated weights over
    the first ``limit`` batches (the model in eval mode: the shared BN statistics)."""
    model.eval()
    compiled.net.eval()
    device = next(model.hypernet.parameters()).device
    c = compiled.enc.tensor.to(device).clone().requires_grad_(True)
    grad = torch.zeros_like(c)
    total = 0.0
    seen = 0
    for k, (x, y) in enumerate(batches.epoch(0)):
        if k >= limit:
            break
        weights = op_weights(model.hypernet(c, z), compiled.enc)
        loss = F.cross_entropy(compiled.net(x, weights), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, c)
        grad += g
        total += loss.item()
        seen += len(y)
    if not seen:
        raise ValueError("no batches to compute dE/dc on")
    return (grad / seen).cpu(), total / seen


def predicted_change(grad: torch.Tensor, old: torch.Tensor, new: torch.Tensor) -> float:
    """First-order change of E from c ``old`` to c ``new``: sum(dE/dc * (new - old))."""
    if old.shape != new.shape:
        raise ValueError(f"encodings of different shapes: {tuple(old.shape)} vs {new.shape}")
    return float((grad * (new - old)).sum())
