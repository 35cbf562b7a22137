"""The scoring knobs of ``runtime.scoring``: BN recalibration and averaging over noise samples z.

* recalibration replaces the shared BN statistics by the architecture's own running mean
  over the calibration batches, and puts the shared ones back afterwards;
* an error averaged over several z is the mean of the single-z errors;
* with ``bn_batches`` the calibration batches are the first training images, and scoring
  the same architectures with them changes their scores;
* ``smashc search --bn-batches B --z-samples Z`` sets them.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from smashc.cli import main
from smashc.compiler import to_text
from smashc.runtime import scoring
from smashc.runtime.context import open_context
from smashc.runtime.data import Batches, Subset
from smashc.runtime.oneshot import OneShot
from smashc.runtime.presets import PRESETS
from smashc.runtime.sampler import Sampler
from smashc.runtime.strategies.sample import sampled

CFG = PRESETS["smoke"]


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    ctx = open_context(CFG)
    cfg, ds, train, val = ctx.cfg, ctx.data, ctx.train, ctx.val
    model = OneShot(cfg.space, cfg.hypernet)
    compiled = model.compile(Sampler(cfg.space, 3).sample(1.0))
    return ctx, ds, train, val, model, compiled


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

    scoring.recalibrate_bn(model, compiled, weights, Chain())
    return head_stats(model)


def test_recalibration_is_the_running_mean_over_batches(setup):
    _, ds, train, _, model, compiled = setup
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
    _, ds, train, val, model, compiled = setup
    for bn in (*model.shared.transition_bn, model.shared.head_bn):
        bn.running_mean.uniform_(-1, 1)  # something recalibration would certainly change
    before = [b.clone() for b in model.shared.buffers()]
    z = torch.zeros(1, 1, *compiled.enc.tensor.shape[2:])
    scoring.smash_error(model, compiled, batches(ds, val, 0, 32), [z], batches(ds, train, 0, 32))
    for b, old in zip(model.shared.buffers(), before, strict=True):
        assert torch.equal(b, old)


def test_error_over_several_z_is_the_mean_of_single_z_errors(setup):
    ctx, ds, train, val, _, _ = setup
    cfg = ctx.cfg
    torch.manual_seed(1)
    model = OneShot(cfg.space, cfg.hypernet)
    model.shared.head.weight.data.mul_(100)  # untrained, it predicts one class whatever z is
    compiled = model.compile(Sampler(cfg.space, 3).sample(1.0))
    gen = torch.Generator().manual_seed(1)
    zs = [torch.randn(1, 1, *compiled.enc.tensor.shape[2:], generator=gen) * 50 for _ in range(3)]
    data = batches(ds, val, 0, 64)
    single = [scoring.smash_error(model, compiled, data, [z]) for z in zs]
    assert len(set(single)) > 1, "the noise samples should give different errors"
    assert scoring.smash_error(model, compiled, data, zs) == pytest.approx(sum(single) / 3)


def with_score(ctx, **score):
    return replace(ctx, cfg=replace(ctx.cfg, score=replace(ctx.cfg.score, **score)))


def test_calibration_batches_are_the_first_training_images(setup):
    ctx, _, train, _, _, _ = setup
    assert scoring.calibration_batches(with_score(ctx, bn_batches=0)) is None  # off
    bn = with_score(ctx, bn_batches=2, batch_size=16)
    got = list(scoring.calibration_batches(bn).epoch(0))
    assert len(got) == 2
    x = torch.cat([b[0] for b in got])
    y = torch.cat([b[1] for b in got])
    assert torch.equal(y, train.y[:32].to(y.device))
    # no augmentation, no shuffling: the same images in the same order every epoch
    again = torch.cat([b[0] for b in scoring.calibration_batches(bn).epoch(3)])
    assert torch.equal(x, again)


def test_scoring_with_recalibration(setup, tmp_path):
    ctx, _, _, _, model, _ = setup
    ctx = with_score(ctx, archs=3)

    def score_all(c, d):
        log = scoring.ScoreLog(tmp_path / d / "scores.jsonl")
        got = scoring.score_indices(
            scoring.Scorer(c, model), log, range(3), lambda i: sampled(c, i)
        )
        return [got[i] for i in range(3)]

    for d in ("plain", "bn"):
        (tmp_path / d).mkdir()
    plain = score_all(ctx, "plain")
    recal = score_all(with_score(ctx, bn_batches=2), "bn")
    assert [to_text(s.arch) for s in plain] == [to_text(s.arch) for s in recal]
    assert [s.error for s in plain] != [s.error for s in recal]
    # the records written are read back as they were scored
    back = scoring.ScoreLog(tmp_path / "bn" / "scores.jsonl")
    assert [back.get(i).record() for i in range(3)] == [s.record() for s in recal]


def test_search_takes_the_knobs_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["search", "--preset", "smoke", "--out", str(out), "--no-final", "--archs", "2"]
    assert main([*argv, "--bn-batches", "1", "--z-samples", "2"]) == 0
    score = json.loads((out / "config.json").read_text())["score"]
    assert (score["bn_batches"], score["z_samples"]) == (1, 2)
    assert main([*argv, "--z-samples", "0"]) == 1
    assert "--z-samples must be at least 1" in capsys.readouterr().err
