"""Zero-cost proxies: training-free scores of an architecture, the baselines SMASH's ranking
is compared with.

Each proxy is a function ``proxy(model, images, labels, seed) -> float`` where ``model`` is
an ``arch.Network`` (its weights are drawn afresh, ``torch.manual_seed`` of the stream
``PROXY_INIT`` of ``seed``) or a module such as ``compiler.free_module(compiler.
for_training(net))``, used with the weights it holds (``seed`` is then unused). ``images``
is a normalised float batch ``N x C x H x W`` (``batch`` draws one from a run's training
split), ``labels`` its classes. The model is never changed: every proxy works on a copy,
on ``images``' device, and leaves torch's global random state as it found it.

Sign convention: for every proxy a higher value predicts a better (lower-error)
architecture, as the papers use them; a correlation with *error* is therefore expected to
be negative, and a report should negate the proxy or say it compares magnitudes.

The weights a proxy sums over are those of the convolutions and linear layers (the
``weight`` of each ``nn.Conv2d`` and ``nn.Linear``), as Abdelfattah et al. (2021) do; biases
and BatchNorm's affine parameters take part in the forward pass but are not summed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812
from torch import fx, nn

from smashc.compiler import Network, for_training, free_module, totals
from smashc.runtime.seeds import Stream, derive

Model = Network | nn.Module  # a network to build with seeded weights, or a module as it is
Proxy = Callable[[Model, torch.Tensor, torch.Tensor, int], float]

_RELUS = (F.relu, torch.relu)  # what the fx backend emits for ``relu`` (backends/fx.py)


def module(model: Model, seed: int, device: torch.device) -> nn.Module:
    """A copy of ``model``'s module on ``device``: a ``Network`` compiled with weights drawn
    from ``seed`` (stream ``PROXY_INIT``; torch's global random state is restored after),
    a module deep-copied with its own weights."""
    if isinstance(model, Network):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive(seed, Stream.PROXY_INIT))
            built = free_module(for_training(model))
        return built.to(device)
    return copy.deepcopy(model).to(device)


def weighted_layers(m: nn.Module) -> list[nn.Module]:
    """The layers whose ``weight`` the proxies sum over: convolutions and linear layers."""
    return [layer for layer in m.modules() if isinstance(layer, (nn.Conv2d, nn.Linear))]


def _loss_gradients(model: Model, images, labels, seed: int) -> list[tuple[torch.Tensor, ...]]:
    """(weight, dL/dweight) of every weighted layer, for the mean cross-entropy ``L`` of the
    batch with the model in training mode (BatchNorm normalises with the batch's statistics,
    as in the first step of a training)."""
    m = module(model, seed, images.device).train()
    m.zero_grad()
    F.cross_entropy(m(images), labels).backward()
    return [
        (layer.weight.detach(), layer.weight.grad)
        for layer in weighted_layers(m)
        if layer.weight.grad is not None
    ]


def grad_norm(model: Model, images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """grad_norm (Abdelfattah et al. 2021, "Zero-Cost Proxies for Lightweight NAS"): the
    Euclidean norm of each weighted layer's loss gradient ``dL/dW``, summed over the layers
    (the paper's per-layer sum, not the norm of the whole gradient vector). ``L`` is the
    batch's mean cross-entropy, BatchNorm in training mode.

    Higher predicts better (a network whose loss responds strongly to its weights)."""
    return float(sum(g.double().norm() for _, g in _loss_gradients(model, images, labels, seed)))


def snip(model: Model, images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """SNIP (Lee et al. 2019, "SNIP: Single-shot Network Pruning based on Connection
    Sensitivity"), as a network score (Abdelfattah et al. 2021): the connection
    sensitivities ``|dL/dW * W|`` summed over every weight of the weighted layers. ``L`` is
    the batch's mean cross-entropy, BatchNorm in training mode.

    Higher predicts better."""
    pairs = _loss_gradients(model, images, labels, seed)
    return float(sum((g.double() * w.double()).abs().sum() for w, g in pairs))


def synflow(model: Model, images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """SynFlow (Tanaka et al. 2020, "Pruning neural networks without any data by iteratively
    conserving synaptic flow"; a NAS proxy in Abdelfattah et al. 2021): with every parameter
    replaced by its magnitude ``|theta|`` and an all-ones input of one image's shape, ``R`` is
    the sum of the outputs and the score is ``sum(theta * dR/dtheta)`` over the weights of
    the weighted layers. Data-free: only ``images``' shape is read, ``labels`` not at all.

    Computed in float64, where products of hundreds of layers' magnitudes stay finite.
    BatchNorm is taken out (each becomes an identity), as Abdelfattah et al. do: with fresh
    statistics Tanaka et al.'s evaluation-mode BatchNorm is the same up to 1/sqrt(1 + eps)
    per layer, and a batch-statistics one would divide out the magnitudes the score measures.

    Higher predicts better (more synaptic flow from input to output)."""
    m = module(model, seed, images.device)
    _drop_batchnorm(m)
    m = m.double().eval()
    with torch.no_grad():
        for p in m.parameters():
            p.abs_()
    m.zero_grad()
    ones = torch.ones((1, *images.shape[1:]), dtype=torch.float64, device=images.device)
    m(ones).sum().backward()
    return float(
        sum(
            (layer.weight.detach() * layer.weight.grad).sum()
            for layer in weighted_layers(m)
            if layer.weight.grad is not None
        )
    )


def _drop_batchnorm(m: nn.Module) -> None:
    """Replaces every BatchNorm layer of ``m`` by an identity, in place."""
    for name, layer in list(m.named_modules()):
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            parent, _, leaf = name.rpartition(".")
            setattr(m.get_submodule(parent) if parent else m, leaf, nn.Identity())


class _ReluCodes(fx.Interpreter):
    """Runs a GraphModule and accumulates, for every ReLU it computes, the agreements of
    the images' binary codes (``unit > 0``) into ``kernel``: ``c c^T + (1 - c)(1 - c)^T``."""

    def __init__(self, gm: fx.GraphModule, n: int) -> None:
        super().__init__(gm)
        self.kernel = torch.zeros((n, n), dtype=torch.float64)
        self.units = 0  # N_A, the ReLU units seen

    def record(self, out: torch.Tensor) -> None:
        c = (out > 0).flatten(1).double().cpu()
        self.kernel += c @ c.T + (1 - c) @ (1 - c).T
        self.units += c.shape[1]

    def call_function(self, target, args, kwargs):
        out = super().call_function(target, args, kwargs)
        if target in _RELUS:
            self.record(out)
        return out

    def call_module(self, target, args, kwargs):
        out = super().call_module(target, args, kwargs)
        if isinstance(self.module.get_submodule(target), nn.ReLU):
            self.record(out)
        return out


def naswot_kernel(model: Model, images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The NASWOT kernel ``K_H`` (Mellor et al. 2021, "Neural Architecture Search without
    Training"): for the images ``i, j`` of the batch, ``K_H[i, j] = N_A - d_H(c_i, c_j)``,
    the number of ReLU units (of all ``N_A``) on which their binary codes ``c = unit > 0``
    agree. float64, ``N x N``, on the CPU.

    The ReLUs are the ``relu`` calls (and ``nn.ReLU`` modules) of the GraphModule; the SMASH
    grid's ``relu6`` and ``leaky_relu`` are not ReLUs and are not read. The network runs in
    training mode (BatchNorm normalises with the batch's statistics), without gradients."""
    m = module(model, seed, images.device).train()
    if not isinstance(m, fx.GraphModule):
        m = fx.symbolic_trace(m)
    codes = _ReluCodes(m, images.shape[0])
    with torch.no_grad():
        codes.run(images)
    return codes.kernel


def naswot(model: Model, images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """NASWOT (Mellor et al. 2021, "Neural Architecture Search without Training"; the
    paper's first version scored the Jacobian covariance, "jacob_cov"): ``log |det K_H|`` of
    ``naswot_kernel``, the log-determinant of the agreement kernel of the batch's binary
    ReLU codes. ``labels`` are unused. ``-inf`` when two images share a code (``K_H`` is
    singular), as it is for a network without ReLUs.

    Higher predicts better (the network tells the batch's images apart at initialisation)."""
    return float(torch.linalg.slogdet(naswot_kernel(model, images, seed)).logabsdet)


def _network(model: Model, what: str) -> Network:
    if not isinstance(model, Network):
        raise TypeError(f"{what} is counted on an arch.Network (compiler.totals), not a module")
    return model


def params(model: Model, images=None, labels=None, seed: int = 0) -> float:
    """The parameter count (``compiler.totals``) of a Network. Higher predicts better (the
    size baseline every proxy should beat)."""
    return float(totals(for_training(_network(model, "params")))[0])


def macs(model: Model, images=None, labels=None, seed: int = 0) -> float:
    """Multiply-accumulates per image (``compiler.totals``) of a Network. Higher predicts
    better (the compute baseline)."""
    return float(totals(for_training(_network(model, "macs")))[1])


PROXIES: dict[str, Proxy] = {
    "synflow": synflow,
    "naswot": naswot,
    "snip": snip,
    "grad_norm": grad_norm,
    "params": params,
    "macs": macs,
}


def batch(ctx, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` images of the run's training split and their labels, normalised, on the run's
    device, drawn by the stream ``PROXY_BATCH`` (the same for every architecture scored)."""
    part = ctx.train
    return next(iter(ctx.batches(part, min(size, len(part)), Stream.PROXY_BATCH).epoch(0)))
