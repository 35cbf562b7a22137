"""The scoring knobs of ``runtime.search``: BN recalibration and averaging over noise samples z.

* recalibration replaces the shared BN statistics by the architecture's own running mean
  over the calibration batches, and puts the shared ones back afterwards;
* an error averaged over several z is the mean of the single-z errors;
* ``score_all`` with ``bn_batches`` needs the training split and changes scores;
* ``smashc search --bn-batches B --z-samples Z`` sets them.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from smashc.cli import main
from smashc.runtime import search
from smashc.runtime.data import Batches, Subset
from smashc.runtime.oneshot import OneShot
from smashc.runtime.sampler import Sampler

CFG = search.PRESETS["smoke"]


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    cfg, ds, train, val = search.prepare(CFG)
    model = OneShot(cfg.space, cfg.hypernet)
    compiled = model.compile(Sampler(cfg.space, 3).sample(1.0))
    return cfg, ds, train, val, model, compiled


def batches(ds, sub: Subset, lo: int, hi: int) -> Batches:
    return Batches(ds, Subset(sub.x[lo:hi], sub.y[lo:hi]), hi - lo, shuffle=False)


def head_stats(model: OneShot) -> tuple[torch.Tensor, torch.Tensor]:
    bn = model.shared.head_bn
    return bn.running_mean.clone(), bn.running_var.clone()


def calibrated(model, compiled, ds, sub, ranges) -> tuple[torch.Tensor, torch.Tensor]:
    """Head BN statistics after recalibrating on the batches ``ranges`` (one per batch)."""
    weights = model.generated(compiled, torch.zeros(1, 1, *compiled.enc.tensor.shape[2:]))
    parts = [batches(ds, sub, lo, hi) for lo, hi in ranges]

    class Chain:  # several one-batch Batches seen as one calibration set
        def epoch(self, e):
            for p in parts:
                yield from p.epoch(e)

    search.recalibrate_bn(model, compiled, weights, Chain())
    return head_stats(model)


def test_recalibration_is_the_running_mean_over_batches(setup):
    cfg, ds, train, _, model, compiled = setup
    shared = head_stats(model)
    m1, v1 = calibrated(model, compiled, ds, train, [(0, 16)])
    m2, v2 = calibrated(model, compiled, ds, train, [(16, 32)])
    m12, v12 = calibrated(model, compiled, ds, train, [(0, 16), (16, 32)])
    c = model.shared.cfg.max_banks * model.shared.cfg.max_units
    assert not torch.allclose(m1, shared[0][:c])  # the architecture's own statistics
    assert not torch.allclose(m1, m2)
    torch.testing.assert_close(m12, (m1 + m2) / 2)
    torch.testing.assert_close(v12, (v1 + v2) / 2)
    assert compiled.net.bn_momentum == pytest.approx(0.1)  # the graph's own momentum is back


def test_smash_error_restores_the_shared_statistics(setup):
    cfg, ds, train, val, model, compiled = setup
    for bn in (*model.shared.transition_bn, model.shared.head_bn):
        bn.running_mean.uniform_(-1, 1)  # something recalibration would certainly change
    before = [b.clone() for b in model.shared.buffers()]
    z = torch.zeros(1, 1, *compiled.enc.tensor.shape[2:])
    search.smash_error(model, compiled, batches(ds, val, 0, 32), [z], batches(ds, train, 0, 32))
    for b, old in zip(model.shared.buffers(), before, strict=True):
        assert torch.equal(b, old)


def test_error_over_several_z_is_the_mean_of_single_z_errors(setup):
    cfg, ds, train, val, _, _ = setup
    torch.manual_seed(1)
    model = OneShot(cfg.space, cfg.hypernet)
    model.shared.head.weight.data.mul_(100)  # untrained, it predicts one class whatever z is
    compiled = model.compile(Sampler(cfg.space, 3).sample(1.0))
    gen = torch.Generator().manual_seed(1)
    zs = [torch.randn(1, 1, *compiled.enc.tensor.shape[2:], generator=gen) * 50 for _ in range(3)]
    data = batches(ds, val, 0, 64)
    single = [search.smash_error(model, compiled, data, [z]) for z in zs]
    assert len(set(single)) > 1, "the noise samples should give different errors"
    assert search.smash_error(model, compiled, data, zs) == pytest.approx(sum(single) / 3)


def test_score_all_with_recalibration(setup, tmp_path):
    cfg, ds, train, val, model, _ = setup
    cfg = replace(cfg, score=replace(cfg.score, archs=3))
    for d in ("plain", "nobn", "bn"):
        (tmp_path / d).mkdir()
    plain = search.score_all(model, cfg, val, ds, tmp_path / "plain", "cpu")
    bn_cfg = replace(cfg, score=replace(cfg.score, bn_batches=2))
    with pytest.raises(ValueError, match="training split"):
        search.score_all(model, bn_cfg, val, ds, tmp_path / "nobn", "cpu")
    recal = search.score_all(model, bn_cfg, val, ds, tmp_path / "bn", "cpu", train)
    assert [s.text for s in plain] == [s.text for s in recal]
    assert [s.error for s in plain] != [s.error for s in recal]


def test_search_takes_the_knobs_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["search", "--preset", "smoke", "--out", str(out), "--no-final", "--archs", "2"]
    assert main([*argv, "--bn-batches", "1", "--z-samples", "2"]) == 0
    score = json.loads((out / "config.json").read_text())["score"]
    assert (score["bn_batches"], score["z_samples"]) == (1, 2)
    assert main([*argv, "--z-samples", "0"]) == 1
    assert "--z-samples must be at least 1" in capsys.readouterr().err
