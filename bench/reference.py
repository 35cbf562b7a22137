"""The reference implementation's SMASH step and scoring, re-enacted in plain eager PyTorch, to
time the reference's work on the machine at hand.

    python bench/reference.py [--steps 6] [--images 5000] [--archs 2] [--threads 2] [--json]

smashc's speed targets are half the reference's times, but those (0.8 s / 1.7 s / 52 s in
SMASH-reference.md) were measured on another machine. This stand-in does what
SMASH-reference.md says the reference does, written as directly as the reference is, in
fp32 and NCHW: banks as a list of tensors, every read a ``torch.cat``, every write an
add; per op a 1x1 conv whose weights are rows of the HyperNet's (16 S x 64) matrix divided
by their Frobenius norm, a ReLU, then the block's shared pre-activation convs sliced out of
one (64, 128, 7, 7) tensor per block and grid position (``[:out, :in/groups]`` and the
centred kernel window) with their dilation, groups and "same" padding; transitions
BN -> ReLU -> 1x1 conv -> 2x2 average pool and the head BN -> ReLU -> pool -> linear, on
weights allocated at their largest and sliced; the reference's Adam (weight decay on all
but the HyperNet); the HyperNet is ours on the unpadded c (the reference's sizes).

It runs the architectures ``bench/train_step.py`` and ``bench/score.py`` run (the same
seeds, reference-sized work: bottlenecks up to 64) with the same protocol: per step the
first run on an architecture (as training meets it) and the faster of two; scoring is the
HyperNet plus forward passes in eval mode over the images, batch 50. It leaves out what the
reference spends outside the network (its sampling, 11-17 ms, and its Python
bookkeeping), so it is, if anything, faster than the reference: half its time is a target
at least as hard as half the reference's own. It runs with the process defaults, as the
reference does: oneDNN's kernel cache of 1,024 and glibc's malloc settings
(``runtime.alloc`` is ours).
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F  # noqa: N812
from _common import emit, parser

from smashc import arch
from smashc.backends.interpreter import apply_op
from smashc.runtime import hypernet as hypernet_module
from smashc.runtime.hypernet import HyperNet
from smashc.runtime.sampler import Sampler, SearchSpace

SLICE = 16  # input channels per slice of c (depth compression x N)
MAX_IN = 512  # the widest input any transition or head op is allocated for


class Reference(torch.nn.Module):
    """The reference's one-shot network: a HyperNet, shared convs per block and grid
    position, and the stem, transitions and head, all allocated at their largest."""

    def __init__(self, space: SearchSpace, template: arch.Network):
        super().__init__()
        enc = space.encoding()
        hypernet_module.WIDTH_STEP = 1  # the reference's HyperNet runs on c as it is
        self.hypernet = HyperNet(enc)
        self.channels = enc.channels
        nblocks = len(template.blocks)
        self.shared = torch.nn.ParameterList(
            torch.nn.Parameter(torch.randn(64, 128, 7, 7) * 0.05) for _ in range(4 * nblocks)
        )
        self.stage = torch.nn.ParameterDict()
        for st in template.stages:
            if isinstance(st, arch.Block):
                continue
            for i, op in enumerate(st.ops):
                key = f"{st.name}_{i}"
                match op:
                    case arch.Conv():
                        shape = (op.out, MAX_IN, *op.kernel)
                        self.stage[key] = torch.nn.Parameter(torch.randn(shape) * 0.05)
                    case arch.BatchNorm():
                        self.stage[key + "_w"] = torch.nn.Parameter(torch.ones(MAX_IN))
                        self.stage[key + "_b"] = torch.nn.Parameter(torch.zeros(MAX_IN))
                    case arch.Linear():
                        w = torch.randn(op.out, MAX_IN) * 0.05
                        self.stage[key] = torch.nn.Parameter(w)
                        self.stage[key + "_b"] = torch.nn.Parameter(torch.zeros(op.out))

    def generated(self, net: arch.Network) -> torch.Tensor:
        """The HyperNet's (16 S, 64) weight matrix, S the slices the ops' reads fill."""
        slices = sum(
            -(-sum(b.banks[r] for r in layer.reads) // SLICE)
            for b in net.blocks
            for layer in b.layers
        )
        c = torch.ones(1, self.channels, 8, slices).neg_()
        h = self.hypernet(c)  # (1, 8 out x 16 in, 8 rows, S)
        return h.view(8, SLICE, 8, slices).permute(3, 1, 2, 0).reshape(SLICE * slices, 64)

    def stage_op(self, key: str, op: arch.Op, x: torch.Tensor) -> torch.Tensor:
        cin = x.shape[1]
        match op:
            case arch.Conv():
                w = self.stage[key][:, : cin // op.groups]
                return F.conv2d(x, w, None, op.stride, op.padding, op.dilation, op.groups)
            case arch.BatchNorm():
                w, b = self.stage[key + "_w"][:cin], self.stage[key + "_b"][:cin]
                return F.batch_norm(x, None, None, w, b, True, 0.0, op.eps)
            case arch.Linear():
                y = F.linear(x.flatten(1), self.stage[key][:, :cin], self.stage[key + "_b"])
                return y[:, :, None, None]
        return apply_op(op, x, {})

    def smash_op(self, op: arch.SmashOp, x, w1x1: torch.Tensor, block: int) -> torch.Tensor:
        w = w1x1[:, : op.bottleneck].t()
        b = F.relu(F.conv2d(x, (w / w.norm())[:, :, None, None]))
        total = None
        for chain in op.paths():
            y = b
            for pos, c in chain:
                kh, kw = c.kernel
                full = self.shared[4 * block + pos]
                cin = op.conv_in(pos) // c.groups
                w = full[: op.out, :cin, 3 - kh // 2 : 4 + kh // 2, 3 - kw // 2 : 4 + kw // 2]
                pad = arch.same_padding(c.kernel, c.dilation)
                y = F.conv2d(F.relu(y), w, None, 1, pad, c.dilation, c.groups)
            total = y if total is None else total + y
        return total

    def forward(self, x: torch.Tensor, net: arch.Network, matrix: torch.Tensor) -> torch.Tensor:
        row = nblock = 0
        for st in net.stages:
            if not isinstance(st, arch.Block):
                for i, op in enumerate(st.ops):
                    x = self.stage_op(f"{st.name}_{i}", op, x)
                continue
            banks: list[torch.Tensor | None] = []
            offset = 0
            for width in st.banks:  # the input fills the first banks
                banks.append(x[:, offset : offset + width] if offset < x.shape[1] else None)
                offset += width
            for layer in st.layers:
                inp = torch.cat([banks[r] for r in layer.reads], dim=1)
                cin = inp.shape[1]
                (op,) = layer.ops
                y = self.smash_op(op, inp, matrix[row : row + cin], nblock)
                row += -(-cin // SLICE) * SLICE
                chunks = torch.split(y, st.banks[layer.writes[0]], dim=1)
                for j, b in enumerate(layer.writes):
                    chunk = chunks[j % len(chunks)]
                    banks[b] = chunk if banks[b] is None else banks[b] + chunk
            x = torch.cat([banks[o] for o in st.output], dim=1)
            nblock += 1
        return x.flatten(1)


def network(space: SearchSpace, seed: int, progress: float) -> arch.Network:
    return Sampler(space, seed=seed).sample(progress)


def trainer(space: SearchSpace, template: arch.Network, batch: int):
    """The stand-in with the reference's Adam and one synthetic batch, and ``run(net)``: one
    SMASH step on ``net``, its phases' end times (``time.perf_counter``) after the start."""
    model = Reference(space, template)
    hyper = list(model.hypernet.parameters())
    rest = [p for n, p in model.named_parameters() if not n.startswith("hypernet.")]
    groups = [{"params": hyper, "weight_decay": 0.0}, {"params": rest}]
    opt = torch.optim.Adam(groups, lr=1e-3, betas=(0.5, 0.999), eps=1e-4, weight_decay=1e-4)
    x = torch.randn(batch, *space.input)
    y = torch.randint(0, space.classes, (batch,))

    def run(net: arch.Network) -> list[float]:
        t = [time.perf_counter()]
        matrix = model.generated(net)
        t.append(time.perf_counter())
        loss = F.cross_entropy(model(x, net, matrix), y)
        t.append(time.perf_counter())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t.append(time.perf_counter())
        opt.step()
        t.append(time.perf_counter())
        return t

    return run


def step_times(space: SearchSpace, progress: float, steps: int, batch: int) -> dict:
    """Median seconds of a step (first run and faster of two) and its phases."""
    nets = [network(space, 1000 + i, progress) for i in range(steps + 1)]
    run = trainer(space, nets[0], batch)
    times: dict[str, list[float]] = {k: [] for k in ("hypernet", "forward", "backward", "fresh")}
    times.update(optimiser=[], step=[])
    for i, net in enumerate(nets):
        runs = [run(net), run(net)]
        if i == 0:  # warm-up, as in bench/train_step.py
            continue
        times["fresh"].append(runs[0][-1] - runs[0][0])
        best = min(runs, key=lambda t: t[-1] - t[0])
        phases = ("hypernet", "forward", "backward", "optimiser")
        for name, a, b in zip(phases, best, best[1:], strict=False):
            times[name].append(b - a)
        times["step"].append(best[-1] - best[0])
    return {k: statistics.median(v) for k, v in times.items()}


def score_times(space: SearchSpace, images: int, archs: int, batch: int) -> list[float]:
    """Seconds to score each of ``archs`` architectures on ``images`` images."""
    nets = [network(space, 2000 + i, 1.0) for i in range(archs)]
    model = Reference(space, nets[0]).eval()
    x = torch.randn(images, *space.input)
    out = []
    for net in nets:
        start = time.perf_counter()
        with torch.no_grad():
            matrix = model.generated(net)
            for k in range(0, images, batch):
                model(x[k : k + batch], net, matrix).argmax(1)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--archs", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)  # and no runtime.alloc settings: the reference has none
    space = SearchSpace(max_bottleneck=1)
    results: dict = {}
    print(f"reference stand-in, fp32, batch {args.batch}, {args.threads} threads")
    for when, progress in (("early", 0.0), ("late", 1.0)):
        m = results[when] = step_times(space, progress, args.steps, args.batch)
        split = " / ".join(f"{m[k]:.3f}" for k in ("hypernet", "forward", "backward", "optimiser"))
        print(
            f"SMASH step {when}: first run {m['fresh']:.3f} s, faster of two {m['step']:.3f} s "
            f"(HyperNet / forward / backward / optimiser {split}), median of {args.steps}"
        )
    if args.archs:
        each = score_times(space, args.images, args.archs, args.batch)
        results["score"] = {"seconds": statistics.median(each), "each": each}
        print(
            f"score one architecture on {args.images} images: median "
            f"{statistics.median(each):.1f} s ({', '.join(f'{t:.1f}' for t in each)})"
        )
    emit(args, results)


if __name__ == "__main__":
    main()
