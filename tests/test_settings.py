"""``--set KEY=VALUE`` and ``--config FILE`` (``runtime.settings``), and the range checks
that the settings they reach now need (search space, HyperNet, experiments).

* every key of every config takes its own value back from text (``assign``), and random
  well-typed values land in the right field;
* a config written to JSON and loaded over another preset is the same config; a file with a
  few keys changes only those;
* wrong keys, wrong types and malformed files are E0704, located in the file when there is
  one;
* a search space that passes ``config_problems`` draws architectures that compile and run;
* on the command line: a run repeated from its own config.json gives the same ranking.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from smashc.diagnostics import SmashError
from smashc.runtime import config, experiments, presets, settings
from smashc.runtime.hypernet import HyperNetConfig
from smashc.runtime.oneshot import OneShot
from smashc.runtime.sampler import Sampler

CONFIGS = {
    **{f"search-{k}": v for k, v in presets.PRESETS.items()},
    "correlation-smoke": experiments.CORRELATION["smoke"],
    "corrupt-smoke": experiments.CORRUPT["smoke"],
    "arch-grad-smoke": experiments.ARCH_GRAD["smoke"],
}


def _get(cfg, key: str):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _text(value) -> str:
    """How a user writes ``value`` after ``KEY=``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(_text(v) for v in value)
    return str(value)


@pytest.mark.parametrize("name", CONFIGS)
def test_every_key_takes_its_own_value_back(name):
    cfg = CONFIGS[name]
    keys = settings.keys(type(cfg))
    leaves = [k for k in keys if not dataclasses.is_dataclass(_get(cfg, k))]
    assert keys == leaves and len(keys) == len(set(keys))
    assert {k.split(".")[0] for k in keys} == {f.name for f in dataclasses.fields(cfg)}
    for key in keys:
        value = _get(cfg, key)
        if isinstance(value, tuple) and not value:
            continue  # an empty list has no comma form
        assert settings.assign(cfg, f"{key}={_text(value)}") == cfg, key


_VALUES = {
    int: st.integers(-5, 10_000),
    float: st.floats(-1e6, 1e6, allow_nan=False).filter(lambda x: x == 0 or abs(x) > 1e-300),
    bool: st.booleans(),
    str: st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=1, max_size=8),
}


def _type(cls, key: str):
    """The declared type of ``key``, without None."""
    head, _, rest = key.partition(".")
    tp = typing.get_type_hints(cls)[head]
    if rest:
        return _type(tp, rest)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (types.UnionType, typing.Union) else tp


def _strategy(cfg, key):
    tp = _type(type(cfg), key)
    if typing.get_origin(tp) is tuple:
        return st.lists(_VALUES[typing.get_args(tp)[0]], min_size=1, max_size=4).map(tuple)
    return _VALUES[tp]


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_values_land_in_their_field(data):
    cfg = presets.PRESETS["demo"]
    key = data.draw(st.sampled_from(settings.keys(type(cfg))))
    if key == "space.input" or key == "train.betas":
        return  # fixed-length lists: covered by the table below
    value = data.draw(_strategy(cfg, key))
    if isinstance(value, str) and value.lower() in ("none", "null") and _get(cfg, key) is None:
        return
    new = settings.assign(cfg, f"{key}={_text(value)}")
    assert _get(new, key) == value
    assert type(_get(new, key)) is type(value)
    assert dataclasses.replace(new) == settings.assign(new, f"{key}={_text(value)}")
    # nothing else moved
    for other in settings.keys(type(cfg)):
        if other != key:
            assert _get(new, other) == _get(cfg, other), other


@pytest.mark.parametrize(
    "item,value",
    [
        ("final.nesterov=false", False),
        ("final.nesterov=True", True),
        ("train.betas=0.9,0.99", (0.9, 0.99)),
        ("train.betas=[0.9, 0.99]", (0.9, 0.99)),
        ("space.block_inputs=[16, 24]", (16, 24)),
        ("train.lr=1e-3", 0.001),
        ("train.lr=2", 2.0),
        ("data_dir=none", None),
        ("data_dir=/data/cifar 10", "/data/cifar 10"),
        ("score.val_images=null", None),
        ("train.steps_per_epoch=7", 7),
        ("hypernet.slope=0", 0.0),
    ],
)
def test_values_read_by_field_type(item, value):
    key = item.split("=")[0]
    got = _get(settings.assign(presets.PRESETS["demo"], item), key)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    "item,message",
    [
        ("final.lr", r"--set wants KEY=VALUE, got 'final.lr'"),
        ("=3", r"--set wants KEY=VALUE"),
        ("final.lrr=3", r"unknown setting 'final.lrr'; did you mean final.lr"),
        ("learning_rate=3", r"unknown setting 'learning_rate' \(the keys are those"),
        ("train=3", r"train is a group of settings; set one of them: train.epochs, "),
        ("train.lr.x=3", r"unknown setting 'train.lr.x'"),
        ("final.lr=fast", r"final.lr must be a number, got 'fast'"),
        ("final.lr=nan", r"final.lr must be a number, got 'nan'"),
        ("seed=1.5", r"seed must be an integer, got '1.5'"),
        ("seed=true", r"seed must be an integer, got 'true'"),
        ("final.nesterov=yes", r"final.nesterov must be true or false, got 'yes'"),
        ("space.input=1,28", r"space.input must be a list of 3 integers, got '1,28'"),
        ("train.betas=0.5", r"train.betas must be a list of 2 numbers"),
        ("space.block_inputs=16,x", r"space.block_inputs must be a list of integers, got"),
        ("score.val_images=many", r"score.val_images must be an integer or none, got 'many'"),
        ("seed=none", r"seed must be an integer, got 'none'"),
    ],
)
def test_wrong_keys_and_values_are_named(item, message):
    with pytest.raises(SmashError) as info:
        settings.assign(presets.PRESETS["demo"], item)
    text = info.value.render()
    assert text.startswith("<command line>:1:1: error[E0704]: ")
    assert re.search(message, text), text


@pytest.mark.parametrize("name", CONFIGS)
def test_a_written_config_loads_back_over_another(name, tmp_path):
    cfg = CONFIGS[name]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg.to_json(), indent=2))
    family = {
        config.SearchConfig: presets.PRESETS,
        experiments.CorrelationConfig: experiments.CORRELATION,
        experiments.CorruptConfig: experiments.CORRUPT,
        experiments.ArchGradConfig: experiments.ARCH_GRAD,
    }[type(cfg)]
    other = next(c for c in family.values() if c != cfg)
    assert settings.load(other, path) == cfg


def test_a_partial_config_changes_only_its_keys(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text('{"final": {"momentum": 0.8}, "space": {"max_kernel": 3}, "seed": 4}')
    base = presets.PRESETS["demo"]
    got = settings.load(base, path)
    want = dataclasses.replace(
        base,
        seed=4,
        final=dataclasses.replace(base.final, momentum=0.8),
        space=dataclasses.replace(base.space, max_kernel=3),
    )
    assert got == want


@pytest.mark.parametrize(
    "text,where,message",
    [
        (
            '{\n  "final": {\n    "lr": "fast"\n  }\n}\n',
            "3:5",
            'final.lr must be a number, got "fast"',
        ),
        (
            '{\n  "train": {"epochs": 2},\n  "final": {\n    "epochs": 3, "momentun": 0.5\n  }\n}',
            "4:18",
            "unknown setting 'final.momentun'; did you mean final.momentum?",
        ),
        ('{\n  "final": 3\n}', "2:3", "a config file holds a JSON object"),
        ("[1, 2]", "1:1", "a config file holds a JSON object"),
        ('{\n  "final": {"epochs": 3,}\n}', "2:25", "not a JSON config file: Expecting property"),
        ('{"space": {"depth_budget": 12}}', "1:12", "unknown setting 'space.depth_budget'"),
    ],
)
def test_config_file_errors_are_located(tmp_path, text, where, message):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(SmashError) as info:
        settings.load(presets.PRESETS["demo"], path)
    out = info.value.render()
    assert out.startswith(f"{path}:{where}: error[E0704]: {message}"), out
    assert "^" in out  # the line and a caret under the key


def test_missing_or_unreadable_config_file(tmp_path):
    with pytest.raises(SmashError, match="config file not found"):
        settings.load(presets.PRESETS["demo"], tmp_path / "nope.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SmashError, match="cannot read this config file"):
        settings.load(presets.PRESETS["demo"], tmp_path / "bin.json")


@pytest.mark.parametrize(
    "items,message",
    [
        (["space.unit=3"], r"space.max_units \(32\) must be a multiple of space.unit \(3\)"),
        (["space.max_groups=8"], r"space.max_groups \(8\) must divide space.unit \(4\)"),
        (["space.block_inputs=16,24"], r"need one entry per block, got 2, 3 and 3"),
        (["space.block_inputs=18,24,32"], r"block 0 has no bank size: its input \(18 channels\)"),
        (["space.max_block_widths=16,64,96"], r"block 0 has no bank size"),
        (["space.max_banks=1"], r"block [012] has no bank size"),
        (["space.kernel_from=5", "space.max_kernel=3"], r"space.kernel_from \(5\) must be at"),
        (["space.budget_from=0.9", "space.budget_to=0.5"], r"space.budget_from \(0.9\) must"),
    ],
)
def test_search_spaces_that_cannot_draw_are_refused(items, message):
    cfg = presets.PRESETS["demo"]
    for item in items:
        cfg = settings.assign(cfg, item)
    problems = config.config_problems(cfg)
    blocks = 3 if items == ["space.max_banks=1"] else 1  # no block has room then
    assert len(problems) == blocks, problems
    assert all(re.search(message, p) for p in problems), problems


@st.composite
def _spaces(draw):
    n = draw(st.integers(1, 3))
    inputs = tuple(draw(st.sampled_from([4, 8, 12, 16, 24])) for _ in range(n))
    space = dataclasses.replace(
        presets.PRESETS["smoke"].space,
        unit=draw(st.sampled_from([1, 2, 4, 8])),
        max_units=draw(st.sampled_from([4, 8, 16, 32])),
        bottleneck=draw(st.integers(1, 4)),
        max_bottleneck=draw(st.integers(1, 3)),
        depth_compression=draw(st.integers(1, 3)),
        max_kernel=draw(st.sampled_from([3, 5, 7])),
        kernel_from=draw(st.sampled_from([3, 5, 7])),
        max_dilation=draw(st.integers(1, 4)),
        max_groups=draw(st.sampled_from([1, 2, 4, 8])),
        max_banks=draw(st.integers(1, 12)),
        block_inputs=inputs,
        max_block_widths=tuple(x + draw(st.sampled_from([0, 4, 8, 16])) for x in inputs),
        budgets=tuple(draw(st.integers(1, 60)) for _ in range(n)),
        variable_ops=draw(st.booleans()),
        budget_from=draw(st.floats(0.3, 1.0)),
        budget_to=draw(st.floats(0.3, 1.2)),
        input=(draw(st.sampled_from([1, 3])), 12, 12),
        classes=draw(st.sampled_from([2, 10])),
    )
    hyper = HyperNetConfig(
        stem_channels=draw(st.integers(1, 3)),
        blocks=tuple(draw(st.lists(st.integers(1, 2), min_size=1, max_size=2))),
        growth=draw(st.integers(1, 3)),
    )
    return dataclasses.replace(presets.PRESETS["smoke"], space=space, hypernet=hyper)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=_spaces(), seed=st.integers(0, 1000))
def test_a_space_without_problems_draws_runnable_architectures(cfg, seed):
    if config.config_problems(cfg):
        return
    model = OneShot(cfg.space, cfg.hypernet)
    for progress in (0.0, 1.0):
        compiled = model.compile(Sampler(cfg.space, seed=seed).sample(progress))
        out = model(torch.randn(2, *cfg.space.input), compiled)
        assert out.shape == (2, cfg.space.classes)


@pytest.mark.parametrize(
    "name,item,message",
    [
        ("correlation-smoke", "every=0", r"--every must be at least 1, got 0 \(every\)"),
        ("correlation-smoke", "jobs=0", r"--jobs must be at least 1, got 0 \(jobs\)"),
        ("correlation-smoke", "knob_z_samples=0", r"knob_z_samples must be at least 1, got 0"),
        ("correlation-smoke", "resamples=0", r"resamples must be at least 1, got 0"),
        ("correlation-smoke", "test_images=0", r"test_images must be None or at least 1"),
        ("corrupt-smoke", "modes=redraw,redraw", r"--mode must be a list of distinct modes"),
        ("corrupt-smoke", "modes=swap", r"--mode must be a list of distinct modes"),
        ("corrupt-smoke", "archs=0", r"--archs must be at least 1, got 0 \(archs\)"),
        ("arch-grad-smoke", "grad_batches=0", r"--grad-batches must be at least 1, got 0"),
    ],
)
def test_experiment_settings_are_checked(name, item, message):
    cfg = settings.assign(CONFIGS[name], item)
    with pytest.raises(SmashError) as info:
        experiments.check(cfg)
    assert re.search(message, info.value.render()), info.value.render()


def test_presets_of_experiments_pass_their_checks():
    for family in (
        experiments.CORRELATION,
        experiments.LOW_BUDGET,
        experiments.CORRUPT,
        experiments.ARCH_GRAD,
    ):
        for cfg in family.values():
            experiments.check(cfg)
            assert config.config_problems(cfg.search) == []


def test_a_run_repeats_from_its_config_json(tmp_path):
    """``--set`` changes the run and is recorded; ``--config`` of that record over another
    preset repeats it: same config, same ranking."""
    from tests.test_search import ok, read_ranking, smashc

    first, again = tmp_path / "first", tmp_path / "again"
    ok(
        smashc(
            "search",
            "--preset",
            "smoke",
            "--out",
            first,
            "--no-final",
            "--set",
            "space.max_kernel=3",
            "--set",
            "train.lr=0.002",
            "--set",
            "score.archs=3",
        )  # fmt: skip
    )
    recorded = json.loads((first / "config.json").read_text())
    assert recorded["space"]["max_kernel"] == 3 and recorded["train"]["lr"] == 0.002
    assert recorded["score"]["archs"] == 3
    ok(
        smashc(
            "search",
            "--preset",
            "paper",
            "--config",
            first / "config.json",
            "--out",
            again,
            "--no-final",
        )  # fmt: skip
    )
    assert json.loads((again / "config.json").read_text()) == recorded
    assert read_ranking(again / "ranking.csv") == read_ranking(first / "ranking.csv")
    assert len(read_ranking(first / "ranking.csv")) == 3 + 2  # archs + refine (smoke)


def test_set_errors_on_the_command_line_exit_1_located(tmp_path, capsys):
    from smashc.cli import main

    assert main(["search", "--preset", "smoke", "--out", str(tmp_path), "--set", "x=1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("<command line>:1:1: error[E0704]: --set x=1: unknown setting 'x'")
    assert not any(tmp_path.iterdir())  # nothing written
    bad = tmp_path.parent / "bad.json"
    bad.write_text('{"final": {"lr": -1}}')
    assert main(["train", "examples/resnet20.smash", "--config", str(bad), "--out", "x"]) == 1
    assert "final.lr" in capsys.readouterr().err and not Path("x").exists()


def test_resume_refuses_other_set_values(tmp_path):
    from tests.test_search import ok, smashc

    ok(smashc("search", "--preset", "smoke", "--out", tmp_path, "--no-final"))
    proc = smashc(
        "search", "--preset", "smoke", "--out", tmp_path, "--no-final", "--resume",
        "--set", "final.momentum=0.5",
    )  # fmt: skip
    assert proc.returncode == 1 and "final.momentum 0.9 -> 0.5" in proc.stderr, proc.stderr


def _seeded(cfg, seed: int, archs: int | None = None):
    """``cfg`` (a search or an experiment config) with its search's seed (and archs)."""
    if not isinstance(cfg, config.SearchConfig):
        return dataclasses.replace(cfg, search=_seeded(cfg.search, seed, archs))
    if archs is not None:
        cfg = dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, archs=archs))
    return dataclasses.replace(cfg, seed=seed)


@pytest.mark.parametrize(
    ("argv", "key", "expected"),
    [
        (["search", "--archs", "7"], "seed", _seeded(presets.PRESETS["paper"], 5, 7)),
        (["train", "examples/resnet20.smash"], "seed", _seeded(presets.PRESETS["smoke"], 5)),
        (["experiment", "corrupt"], "search.seed", _seeded(experiments.CORRUPT["smoke"], 5)),
    ],
    ids=["search", "train", "experiment"],
)
def test_print_config_shows_what_config_reads_and_runs_nothing(
    argv, key, expected, tmp_path, capsys
):
    """``--print-config`` prints the resolved settings (preset, flags and ``--set``), writes
    no folder, and its output given back to ``--config`` over the default preset is the
    same."""
    from smashc.cli import main

    out = tmp_path / "out"
    preset = "paper" if argv[0] == "search" else "smoke"
    more = ["--preset", preset, "--set", f"{key}=5", "--out", str(out), "--print-config"]
    assert main([*argv, *more]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert not out.exists()
    assert printed == json.loads(json.dumps(expected.to_json()))
    saved = tmp_path / "printed.json"
    saved.write_text(json.dumps(printed))
    command = argv[:1] if argv[0] == "search" else argv[:2]  # without the flags
    assert main([*command, "--config", str(saved), "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out) == printed


def test_print_config_refuses_settings_out_of_range(capsys):
    from smashc.cli import main

    assert main(["search", "--set", "train.epochs=0", "--print-config"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "error[E0704]: --epochs must be at least 1" in captured.err
    assert main(["experiment", "arch-grad", "--set", "proposals=0", "--print-config"]) == 1
    assert "proposals" in capsys.readouterr().err


# --- bad settings of every run command, without --print-config --------------------------

RUN_COMMANDS = {
    "search": ["search"],
    "train": ["train", "examples/resnet20.smash"],
    **{
        name: ["experiment", name] for name in ("correlation", "low-budget", "corrupt", "arch-grad")
    },
}
BAD_RUN_SETTINGS = [
    ("device", "tpu", "--device must be one of cpu, cuda, auto, got 'tpu'"),
    ("precision", "fp16", "--precision must be one of auto, fp32, bf16, got 'fp16'"),
    ("seed", "-1", "--seed must be at least 0, got -1"),
    ("dataset", "imagenet", "--dataset must be one of fashion-mnist"),
    ("final.lr", "-0.5", "--lr must be a positive number, got -0.5 (final.lr)"),
    ("score.strategies", "sample,annealing", "score.strategies must be distinct search"),
]


@pytest.mark.parametrize("how", ["set", "config"])
@pytest.mark.parametrize(
    ("key", "value", "said"), BAD_RUN_SETTINGS, ids=[k for k, *_ in BAD_RUN_SETTINGS]
)
@pytest.mark.parametrize("command", RUN_COMMANDS)
def test_every_run_command_refuses_a_bad_setting_before_it_runs(
    command, key, value, said, how, tmp_path, capsys
):
    """A setting out of range, given by ``--set`` or in a ``--config`` file, is one located
    E0704 and exit 1 before a device is asked for, data read or a folder written."""
    from smashc.cli import main

    argv = RUN_COMMANDS[command]
    full = key if argv[0] != "experiment" else f"search.{key}"
    if how == "set":
        given = ["--set", f"{full}={value}"]
    else:
        parsed = settings._parse(settings._field_type(type(_preset_of(command)), full), value)
        head, _, leaf = full.rpartition(".")
        tree: dict = {leaf: parsed}
        for part in reversed(head.split(".") if head else []):
            tree = {part: tree}
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(tree))
        given = ["--config", str(path)]
    out = tmp_path / "out"
    code = main([*argv, "--preset", "smoke", *given, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert "error[E0704]: " + said in captured.err, captured.err
    assert "Traceback" not in captured.err
    assert not out.exists()


def _preset_of(command: str):
    if command in ("search", "train"):
        return presets.PRESETS["smoke"]
    return experiments.EXPERIMENTS[command].presets["smoke"]
