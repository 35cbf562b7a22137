"""Parameter and MAC counts of smashc.report agree exactly with independently written torch
modules, counted with ``numel`` and ``torch.utils.flop_counter.FlopCounterMode`` (MACs =
conv and linear FLOPs / 2).

ResNet-20, WRN-16-4, DenseNet-BC and a SMASH-op network have modules written out by hand;
every example and snippet is also checked against a generic module built from the expanded
architecture (``arch.Network``, not the IR).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from smashc import arch, report
from smashc.frontend.expand import expand
from smashc.frontend.loader import load_file, load_text
from smashc.ops import op_name
from smashc.pipeline import compile_file, compile_text

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.smash"))
SNIPPET_FILES = sorted((ROOT / "tests" / "snippets").glob("*.smash"))


@pytest.fixture(autouse=True)
def _one_thread():
    """Small CPU workloads: thread start-up costs more than the work (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def counted(module, input_chw: tuple[int, int, int]) -> tuple[int, int]:
    """(parameters, MACs) of ``module`` (an nn.Module, or a function making one) on one input
    of size ``input_chw``. A function is called on the meta device: shapes only, no data."""
    device = "cpu"
    if not isinstance(module, nn.Module):
        device = "meta"
        with torch.device(device):
            module = module()
    params = sum(p.numel() for p in module.parameters())
    x = torch.randn(1, *input_chw, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        module.eval()(x)
    flops = fc.get_total_flops()
    assert flops % 2 == 0
    return params, flops // 2


def conv(cin, cout, k=3, stride=1, groups=1, dilation=1, bias=False) -> nn.Conv2d:
    if isinstance(k, int):
        k = (k, k)
    if isinstance(dilation, int):
        dilation = (dilation, dilation)
    pad = (dilation[0] * (k[0] - 1) // 2, dilation[1] * (k[1] - 1) // 2)
    return nn.Conv2d(cin, cout, k, stride, pad, dilation, groups, bias=bias)


# --- ResNet-20 (He et al. 2016, CIFAR, option-A shortcuts) ----------------------------------------

RESNET20 = """import std

# The downsampling unit of each stage is a transition: a sum of the strided residual path and
# the option-A shortcut (stride-2 subsampling, then zero channels).
def down(width) = sum { conv(out=width, stride=2) -> bn -> relu -> conv(out=width) -> bn
                      | maxpool(kernel=1, stride=2) -> chanpad(out=width) } -> relu

network resnet20 {
    input 3 x 32 x 32
    classes 10
    stem { conv(out=16) -> bn -> relu }
    block = resnet_postact_block(3, 16)
    transition { down(32) }
    block = resnet_postact_block(2, 32)
    transition { down(64) }
    block = resnet_postact_block(2, 64)
    head { gap -> linear(out=classes) }
}
"""


class BasicUnit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = conv(cin, cout, 3, stride), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = conv(cout, cout), nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, cout - cin

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, 0, self.pad))
        return F.relu(y + shortcut)


class ResNet20(nn.Module):
    """ResNet-(6n+2); n = 3 is ResNet-20."""

    def __init__(self, classes: int = 10, n: int = 3):
        super().__init__()
        self.stem = nn.Sequential(conv(3, 16), nn.BatchNorm2d(16), nn.ReLU())
        units = []
        cin = 16
        for width in (16, 32, 64):
            for i in range(n):
                units.append(BasicUnit(cin, width, 2 if (i == 0 and width != 16) else 1))
                cin = width
        self.units = nn.Sequential(*units)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        return self.fc(self.units(self.stem(x)).mean((2, 3)))


def test_resnet20_counts():
    ir = compile_text(RESNET20)
    params, macs = report.totals(ir)
    want = counted(ResNet20(), (3, 32, 32))
    assert (params, macs) == want
    assert params == 269_722  # the well-known 0.27M
    assert macs == 40_551_040


# --- WRN-16-4 (Zagoruyko & Komodakis 2016), pre-activation, at 16x16 ------------------------------

WRN = """import std

# The first unit of a stage changes width (and resolution): both paths see bn -> relu of the
# input, the shortcut is a 1x1 conv.
def widen(width, stride) = bn -> relu
    -> sum { conv(out=width, stride=stride) -> bn -> relu -> conv(out=width)
           | conv(out=width, kernel=1, stride=stride) }

network wrn(depth=16, k=4) {
    input 3 x 16 x 16
    classes 10
    let n = (depth - 4) / 6
    stem { conv(out=16) }
    repeat s in 0..3 {
        transition { widen(16 * k * 2 ** s, min(s, 1) + 1) }
        block = resnet_block(n - 1, 16 * k * 2 ** s)
    }
    head { bn -> relu -> gap -> linear(out=classes) }
}
"""


class WideUnit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), conv(cin, cout, 3, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), conv(cout, cout)
        self.shortcut = None if cin == cout and stride == 1 else conv(cin, cout, 1, stride)

    def forward(self, x):
        o = F.relu(self.bn1(x))
        y = self.conv2(F.relu(self.bn2(self.conv1(o))))
        return y + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(nn.Module):
    def __init__(self, depth: int = 16, k: int = 4, classes: int = 10):
        super().__init__()
        n = (depth - 4) // 6
        self.stem = conv(3, 16)
        units, cin = [], 16
        for s, width in enumerate((16 * k, 32 * k, 64 * k)):
            for i in range(n):
                units.append(WideUnit(cin, width, 1 if (i or s == 0) else 2))
                cin = width
        self.units = nn.Sequential(*units)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.units(self.stem(x)))).mean((2, 3)))


def test_wrn_16_4_counts():
    ir = compile_text(WRN)
    assert report.totals(ir) == counted(WideResNet(16, 4), (3, 16, 16))
    assert report.totals(ir)[0] == 2_748_890  # WRN-16-4: 2.7M


def test_wrn_16_2_counts():
    ir = compile_text(WRN, {"k": 2})
    assert report.totals(ir) == counted(WideResNet(16, 2), (3, 16, 16))


# --- DenseNet-BC (Huang et al. 2017): bottleneck layers, compression 0.5 --------------------------

DENSENET_BC = """import std

def compress(out) = bn -> relu -> conv(out=out, kernel=1) -> avgpool

network densenet_bc(growth=12, layers=4) {
    input 3 x 16 x 16
    classes 10
    let c0 = 2 * growth
    let c1 = (c0 + layers * growth) / 2
    let c2 = (c1 + layers * growth) / 2
    stem { conv(out=c0) }
    block = dense_block(layers, growth)
    transition { compress(c1) }
    block = dense_block(layers, growth)
    transition { compress(c2) }
    block = dense_block(layers, growth)
    head { bn -> relu -> gap -> linear(out=classes) }
}
"""


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), conv(cin, 4 * growth, 1)
        self.bn2, self.conv2 = nn.BatchNorm2d(4 * growth), conv(4 * growth, growth)

    def forward(self, x):
        y = self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))
        return torch.cat([x, y], 1)


class DenseNetBC(nn.Module):
    def __init__(self, growth: int = 12, layers: int = 4, classes: int = 10):
        super().__init__()
        c = 2 * growth
        mods: list[nn.Module] = [conv(3, c)]
        for b in range(3):
            for _ in range(layers):
                mods.append(DenseLayer(c, growth))
                c += growth
            if b < 2:
                mods += [nn.BatchNorm2d(c), nn.ReLU(), conv(c, c // 2, 1), nn.AvgPool2d(2)]
                c //= 2
        mods += [nn.BatchNorm2d(c), nn.ReLU()]
        self.body = nn.Sequential(*mods)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        return self.fc(self.body(x).mean((2, 3)))


@pytest.mark.parametrize("growth,layers", [(12, 4), (4, 6)])
def test_densenet_bc_counts(growth, layers):
    ir = compile_text(DENSENET_BC, {"growth": growth, "layers": layers})
    assert report.totals(ir) == counted(DenseNetBC(growth, layers), (3, 16, 16))


# --- a network of SMASH ops -----------------------------------------------------------------------

SMASH_NET = """network smashnet {
    input 3 x 12 x 12
    classes 10
    stem { conv(out=16) -> bn -> relu }
    block s {
        banks 2 x 8, 2 x 8
        layer read 0, 1 write 2 = smash(out=8, bottleneck=16,
            c0=conv(kernel=5, dilation=2, groups=2), c1=conv(kernel=(1, 3), act=identity))
        layer read 1, 2 write 3, 0 = smash(out=16, bottleneck=32,
            c0=conv(kernel=3), c2=conv(kernel=(3, 5), groups=4, act=leaky_relu),
            c3=conv(kernel=1, act=relu6))
        layer read 0..4 write 1 = smash(out=8)
    }
    transition { avgpool }
    head { gap -> linear(out=10) }
}
"""


class SmashOp(nn.Module):
    """1x1 conv to the bottleneck, ReLU, then c0 -> c1 and c2 -> c3 (each conv after its act)."""

    def __init__(self, cin: int, out: int, bottleneck: int, convs: dict):
        super().__init__()
        self.reduce = nn.Conv2d(cin, bottleneck, 1, bias=False)
        self.acts = {}
        self.convs = nn.ModuleDict()
        for pos, (k, d, g, act) in convs.items():
            c_in = bottleneck if pos in ("c0", "c2") else out
            self.convs[pos] = conv(c_in, out, k, groups=g, dilation=d)
            self.acts[pos] = act

    def path(self, b, first, second):
        y = b
        for pos in (first, second):
            if pos in self.convs:
                y = self.convs[pos](self.acts[pos](y))
        return y

    def forward(self, x):
        b = F.relu(self.reduce(x))
        y = self.path(b, "c0", "c1")
        return y + self.path(b, "c2", "c3") if "c2" in self.convs else y


class SmashNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(conv(3, 16), nn.BatchNorm2d(16), nn.ReLU())
        relu, ident = F.relu, (lambda t: t)
        leaky, relu6 = (lambda t: F.leaky_relu(t, 0.01)), F.relu6
        self.op0 = SmashOp(16, 8, 16, {"c0": (5, 2, 2, relu), "c1": ((1, 3), 1, 1, ident)})
        self.op1 = SmashOp(
            16,
            16,
            32,
            {"c0": (3, 1, 1, relu), "c2": ((3, 5), 1, 4, leaky), "c3": (1, 1, 1, relu6)},
        )
        self.op2 = SmashOp(32, 8, 32, {"c0": (3, 1, 1, relu)})
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.stem(x)
        banks = [x[:, :8], x[:, 8:], torch.zeros_like(x[:, :8]), torch.zeros_like(x[:, :8])]
        banks[2] = banks[2] + self.op0(torch.cat([banks[0], banks[1]], 1))
        y = self.op1(torch.cat([banks[1], banks[2]], 1))
        banks[3], banks[0] = banks[3] + y[:, :8], banks[0] + y[:, 8:]
        banks[1] = banks[1] + self.op2(torch.cat(banks, 1))
        x = F.avg_pool2d(torch.cat(banks, 1), 2)
        return self.fc(x.mean((2, 3)))


def test_smash_network_counts():
    ir = compile_text(SMASH_NET)
    assert report.totals(ir) == counted(SmashNet(), (3, 12, 12))


def test_smash_network_module_is_the_network():
    """The hand module computes what the memory-bank oracle computes (same weights)."""
    from smashc.backends.interpreter import WeightStore, run_network

    net = expand(load_text(SMASH_NET))
    m = SmashNet().double()
    store = WeightStore(seed=1)
    x = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    ref = run_network(net, x, store)
    w = store.tensors
    sd = {
        "stem.0.weight": w["stem.0conv"]["weight"],
        "stem.1.weight": w["stem.1bn"]["weight"],
        "stem.1.bias": w["stem.1bn"]["bias"],
        "stem.1.running_mean": w["stem.1bn"]["running_mean"],
        "stem.1.running_var": w["stem.1bn"]["running_var"],
        "fc.weight": w["head.1linear"]["weight"],
        "fc.bias": w["head.1linear"]["bias"],
    }
    for i in range(3):
        ws = w[f"s_l{i}.0smash"]
        sd[f"op{i}.reduce.weight"] = ws["w1x1"]
        for pos in ("c0", "c1", "c2", "c3"):
            if pos in ws:
                sd[f"op{i}.convs.{pos}.weight"] = ws[pos]
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    with torch.no_grad():
        assert torch.allclose(m.eval()(x), ref, rtol=1e-10, atol=1e-12)


# --- the bundled examples against hand-written modules -----------------------------------------


def sc(k=3, d=1, g=1):
    """One grid conv of a SMASH op (kernel, dilation, groups; act relu, the default)."""
    return (k, d, g, F.relu)


# examples/smash_c.smash typed in by hand: per block (banks, input banks, layers), each layer
# (reads, writes, out, bottleneck, {grid position: conv}).
SMASH_C = [
    (
        [32] * 5,
        2,
        [
            ([0], [2], 32, 128, {"c0": sc()}),
            ([1, 2], [3], 32, 128, {"c0": sc(), "c2": sc(5, g=2)}),
            ([0, 1, 2, 3], [1, 4], 64, 128, {"c0": sc((3, 5)), "c1": sc(3, 2)}),
            ([2, 4], [0], 32, 128, {"c0": sc(7), "c1": sc((3, 5), g=4), "c2": sc(5, 2)}),
            (
                [0, 3],
                [2, 3],
                64,
                128,
                {"c0": sc(3, g=2), "c1": sc(3, 3), "c2": sc((5, 3)), "c3": sc(3, g=8)},
            ),
        ],
    ),
    (
        [24] * 9,
        4,
        [
            ([0, 1], [4], 24, 96, {"c0": sc(), "c1": sc(3, g=4), "c2": sc(7)}),
            ([2, 3, 4], [5, 6], 48, 128, {"c0": sc((5, 3), (2, 1)), "c2": sc(3, 3)}),
            ([5, 6], [7], 24, 96, {"c0": sc(5, g=8)}),
            (list(range(8)), [8], 24, 96, {"c0": sc(), "c1": sc((7, 3))}),
            (
                [4, 8],
                [0, 1],
                48,
                128,
                {"c0": sc(3, 2), "c1": sc(5), "c2": sc((3, 7), g=2), "c3": sc(3, g=4)},
            ),
        ],
    ),
    (
        [56] * 4,
        2,
        [
            (
                [0, 1],
                [2],
                56,
                128,
                {"c0": sc(), "c1": sc(5), "c2": sc(3, (1, 3)), "c3": sc(3, g=8)},
            ),
            ([2], [3], 56, 128, {"c0": sc(7), "c2": sc((3, 5), g=4)}),
            ([0, 3], [1], 56, 128, {"c0": sc(5, 2)}),
            ([1, 2, 3], [0, 2], 56, 128, {"c0": sc(3, g=2), "c1": sc(3, 3)}),
        ],
    ),
]


class SmashC(nn.Module):
    """examples/smash_c.smash: stem, three memory-bank blocks of SMASH ops, BN-ReLU-1x1
    conv-avgpool transitions, BN-ReLU-GAP-linear head."""

    def __init__(self, blocks=SMASH_C, classes: int = 100):
        super().__init__()
        self.blocks = blocks
        self.stem = conv(3, 64, 7)
        self.ops = nn.ModuleList()
        self.transitions = nn.ModuleList()
        for b, (banks, _, layers) in enumerate(blocks):
            self.ops.append(
                nn.ModuleList(
                    SmashOp(sum(banks[r] for r in reads), out, bottleneck, convs)
                    for reads, _, out, bottleneck, convs in layers
                )
            )
            cout = (96, 112)[b] if b < 2 else None
            if cout is not None:
                self.transitions.append(
                    nn.Sequential(
                        nn.BatchNorm2d(sum(banks)),
                        nn.ReLU(),
                        conv(sum(banks), cout, 1),
                        nn.AvgPool2d(2),
                    )
                )
        self.bn = nn.BatchNorm2d(sum(blocks[-1][0]))
        self.fc = nn.Linear(sum(blocks[-1][0]), classes)

    def forward(self, x):
        x = F.relu(self.stem(x))
        for b, (widths, filled, layers) in enumerate(self.blocks):
            w = widths[0]
            bank = [x[:, i * w : (i + 1) * w] for i in range(filled)]
            bank += [torch.zeros_like(bank[0]) for _ in range(len(widths) - filled)]
            for op, (reads, writes, _, _, _) in zip(self.ops[b], layers, strict=True):
                y = op(torch.cat([bank[r] for r in reads], 1))
                chunks = y.split(w, 1)
                for j, t in enumerate(writes):
                    bank[t] = bank[t] + chunks[j % len(chunks)]
            x = torch.cat(bank, 1)
            if b < len(self.transitions):
                x = self.transitions[b](x)
        return self.fc(F.relu(self.bn(x)).mean((2, 3)))


def example(stem: str) -> Path:
    path = ROOT / "examples" / f"{stem}.smash"
    if not path.exists():
        pytest.skip(f"examples/{stem}.smash is not there")
    return path


HAND_MODULES = {
    "resnet20": (ResNet20, 269_722),  # the well-known 0.27M
    "wrn_16_4": (lambda: WideResNet(16, 4), 2_748_890),  # 2.7M
    "densenet_bc": (lambda: DenseNetBC(12, 16), 769_162),  # DenseNet-BC-100, k=12: 0.8M
    "smash_c": (SmashC, None),
}


@pytest.mark.parametrize("stem", sorted(HAND_MODULES))
def test_example_counts_match_hand_module(stem):
    ir = compile_file(example(stem))
    make, params = HAND_MODULES[stem]
    got = report.totals(ir)
    assert got == counted(make, ir.input)
    if params is not None:
        assert got[0] == params


@pytest.mark.parametrize(
    "stem,overrides,make,params",
    [
        ("wrn_16_4", {"depth": 28, "k": 10}, lambda: WideResNet(28, 10), 36_479_194),  # 36.5M
        ("resnet20", {"n": 9}, lambda: ResNet20(n=9), 853_018),  # ResNet-56: 0.85M
        ("densenet_bc", {"layers": 6, "growth": 8}, lambda: DenseNetBC(8, 6), None),
    ],
    ids=["wrn-28-10", "resnet-56", "densenet-bc-42"],
)
def test_example_overrides_match_hand_module(stem, overrides, make, params):
    ir = compile_file(example(stem), overrides)
    got = report.totals(ir)
    assert got == counted(make, ir.input)
    if params is not None:
        assert got[0] == params


def test_smash_c_module_is_the_example():
    """The hand module computes what the memory-bank oracle computes (same weights, 8x8)."""
    import dataclasses

    from smashc.backends.interpreter import WeightStore, run_network

    net = expand(load_file(example("smash_c")))
    net = dataclasses.replace(net, input=(3, 8, 8))
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    store = WeightStore(seed=6)
    ref = run_network(net, x, store)
    w = store.tensors
    sd = {"stem.weight": w["stem.0conv"]["weight"]}
    for b, (_, _, layers) in enumerate(SMASH_C):
        for i in range(len(layers)):
            ws = w[f"b{b}_l{i}.0smash"]
            sd[f"ops.{b}.{i}.reduce.weight"] = ws["w1x1"]
            sd |= {f"ops.{b}.{i}.convs.{k}.weight": v for k, v in ws.items() if k != "w1x1"}
    for t in (0, 1):
        sd |= {f"transitions.{t}.0.{k}": v for k, v in w[f"transition{t + 1}.0bn"].items()}
        sd[f"transitions.{t}.2.weight"] = w[f"transition{t + 1}.2conv"]["weight"]
    sd |= {f"bn.{k}": v for k, v in w["head.0bn"].items()}
    sd["fc.weight"], sd["fc.bias"] = w["head.3linear"]["weight"], w["head.3linear"]["bias"]
    m = SmashC().double()
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    with torch.no_grad():
        assert torch.allclose(m.eval()(x), ref, rtol=1e-10, atol=1e-12)


# --- a generic, independent counter for every example and snippet ---------------------------------


def live_layers(block: arch.Block) -> list[arch.Layer]:
    """The layers whose result reaches the block output (backward liveness over banks).

    The report counts the normalised IR, where remove-dead-writes has dropped the others.
    """
    needed = set(block.output)  # banks whose current version is still needed
    live = []
    for lay in reversed(block.layers):
        if not needed & set(lay.writes):
            continue
        live.append(lay)
        if lay.mode == "overwrite":
            needed -= set(lay.writes)
        needed |= set(lay.reads)
    return live[::-1]


class ArchModule(nn.Module):
    """An eager torch module for an expanded ``arch.Network``: banks are tensors, live layers run
    in order. Built from the architecture alone (no IR, no smashc.report)."""

    def __init__(self, net: arch.Network):
        super().__init__()
        self.net = net
        self.mods = nn.ModuleDict()
        c = net.input[0]
        for st in net.stages:
            if isinstance(st, arch.Block):
                for lay in live_layers(st):
                    self._build(lay.ops, sum(st.banks[r] for r in lay.reads), lay.name)
                c = sum(st.banks[o] for o in st.output)
            else:
                c = self._build(st.ops, c, st.name)

    def _key(self, name: str) -> str:
        return name.replace(".", "/")

    def _build(self, ops, c: int, prefix: str) -> int:
        for i, op in enumerate(ops):
            name = self._key(op_name(prefix, i, op))
            match op:
                case arch.Conv():
                    self.mods[name] = nn.Conv2d(
                        c,
                        op.out,
                        op.kernel,
                        op.stride,
                        op.padding,
                        op.dilation,
                        op.groups,
                        bias=op.bias,
                    )
                    c = op.out
                case arch.BatchNorm():
                    self.mods[name] = nn.BatchNorm2d(c, op.eps, op.momentum)
                case arch.Linear():
                    self.mods[name] = nn.Linear(c, op.out, bias=op.bias)
                    c = op.out
                case arch.ChannelPad():
                    c = op.out
                case arch.SmashOp():
                    convs = {}
                    for pos, sc in enumerate(op.convs):
                        if sc is not None:
                            act = {
                                "relu": F.relu,
                                "relu6": F.relu6,
                                "leaky_relu": lambda t: F.leaky_relu(t, 0.01),
                                "identity": lambda t: t,
                            }[sc.act]
                            convs[f"c{pos}"] = (sc.kernel, sc.dilation, sc.groups, act)
                    self.mods[name] = SmashOp(c, op.out, op.bottleneck, convs)
                    c = op.out
                case arch.Sum():
                    outs = [
                        self._build(p, c, f"{prefix}.{i}sum.p{j}") for j, p in enumerate(op.paths)
                    ]
                    c = outs[0]
        return c

    def _run(self, ops, x, prefix: str):
        for i, op in enumerate(ops):
            name = self._key(op_name(prefix, i, op))
            match op:
                case arch.Sum():
                    outs = [
                        self._run(p, x, f"{prefix}.{i}sum.p{j}") for j, p in enumerate(op.paths)
                    ]
                    x = sum(outs[1:], outs[0])
                case arch.Act(kind="relu"):
                    x = F.relu(x)
                case arch.Act(kind="relu6"):
                    x = F.relu6(x)
                case arch.Act(kind="leaky_relu"):
                    x = F.leaky_relu(x, op.slope)
                case arch.Act():
                    pass
                case arch.Pool(kind="max"):
                    x = F.max_pool2d(x, op.kernel, op.stride, op.padding)
                case arch.Pool():
                    x = F.avg_pool2d(x, op.kernel, op.stride, op.padding)
                case arch.GlobalAvgPool():
                    x = x.mean((2, 3), keepdim=True)
                case arch.ChannelPad():
                    x = F.pad(x, (0, 0, 0, 0, 0, op.out - x.shape[1]))
                case arch.Linear():
                    x = self.mods[name](x.flatten(1))[:, :, None, None]
                case _:
                    x = self.mods[name](x)
        return x

    def forward(self, x):
        for st in self.net.stages:
            if not isinstance(st, arch.Block):
                x = self._run(st.ops, x, st.name)
                continue
            banks, offset = [], 0
            for width in st.banks:
                part = x[:, offset : offset + width]
                banks.append(
                    part if part.shape[1] == width else x.new_zeros(x.shape[0], width, *x.shape[2:])
                )
                offset += width
            for lay in live_layers(st):
                y = self._run(lay.ops, torch.cat([banks[r] for r in lay.reads], 1), lay.name)
                chunks = torch.split(y, st.banks[lay.writes[0]], 1)
                for j, b in enumerate(lay.writes):
                    c = chunks[j % len(chunks)]
                    banks[b] = banks[b] + c if lay.mode == "write" else c
            x = torch.cat([banks[o] for o in st.output], 1)
        return x.flatten(1)


@pytest.mark.parametrize(
    "path", EXAMPLES + SNIPPET_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}"
)
def test_generic_counter_agrees(path):
    net = expand(load_file(path))
    ir = compile_file(path)
    assert report.totals(ir) == counted(ArchModule(net), net.input)


DEAD_LAYERS = """network dead {
    input 3 x 6 x 6
    classes 3
    stem { conv(out=8) }
    block b {
        banks 3 x 8
        layer l0 read 0 write 1 = conv(out=8)
        layer l1 read 0 write 2 = conv(out=8)
        layer l2 read 0 overwrite 1 = conv(out=8, kernel=1)
        layer l3 read 1 write 0 = relu -> conv(out=8)
        layer l4 read 2 write 2 = conv(out=8)
        output 0, 1
    }
    head { gap -> linear(out=3) }
}
"""


def test_dead_layers_are_not_counted():
    """l0 is overwritten before anyone reads it, l1 and l4 write a bank nobody uses."""
    net = expand(load_text(DEAD_LAYERS))
    assert [lay.name for lay in live_layers(net.blocks[0])] == ["l2", "l3"]
    params, macs = report.totals(compile_text(DEAD_LAYERS))
    live = 8 * 8 * 1 + 8 * 8 * 9  # l2, l3
    assert params == 3 * 8 * 9 + live + 16 * 3 + 3
    assert macs == (3 * 8 * 9 + live) * 36 + 16 * 3
    assert (params, macs) == counted(ArchModule(net), net.input)


@pytest.mark.parametrize(
    "src",
    [RESNET20, WRN, DENSENET_BC, SMASH_NET, DEAD_LAYERS],
    ids=["resnet20", "wrn", "densenet", "smash", "dead"],
)
def test_generic_counter_agrees_with_hand_modules(src):
    net = expand(load_text(src))
    ir = compile_text(src)
    assert report.totals(ir) == counted(ArchModule(net), net.input)


def test_report_rows_add_up():
    ir = compile_text(RESNET20)
    rows = report.rows(ir)
    assert [r.name for r in rows] == [s.name for s in ir.stages]
    assert (sum(r.params for r in rows), sum(r.macs for r in rows)) == report.totals(ir)
    stem = rows[0]
    assert (stem.params, stem.macs) == (3 * 16 * 9 + 2 * 16, 3 * 16 * 9 * 32 * 32)
    text = report.render(ir)
    assert text.endswith("network resnet20: 269722 parameters (269.72K), 40551040 MACs (40.55M)\n")
