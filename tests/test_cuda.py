"""How the step runs: bf16 autocast and CUDA graphs. The CUDA tests skip without a GPU; they ran on
a lent H200 (experiments/performance/README.md), the joint-schedule case and the bf16 cast fix after it."""

from __future__ import annotations

import json

import pytest
import torch

from aae.config import resolve
from aae.errors import AAEError
from aae.optim import build_optimizers
from aae.runs import build_model
from aae.step import Runner, Step, StepOptions
from aae.training import Trainer

from conftest import tiny_config, toy_data, weights_after_steps

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.slow
def test_bf16_run_on_cpu(tmp_path):
    """bf16 autocast is a run-time choice on the CPU too: the run trains and logs finite losses."""
    Trainer(tiny_config(precision="bf16"), tmp_path / "run", data=toy_data(), quiet=True).fit()
    lines = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all(ln["loss_recon"] == ln["loss_recon"] for ln in lines)


def test_cuda_graph_is_ignored_on_cpu(tmp_path):
    """The default (cuda_graph = true) means "on CUDA": a CPU run steps eagerly."""
    t = Trainer(tiny_config(cuda_graph=True), tmp_path / "run", data=toy_data(), quiet=True)
    assert not t.runner.cuda_graph
    assert all(not g.get("capturable", False) for o in t.step.opts.values() for g in o.param_groups)


def test_bad_precision_is_one_line_error():
    with pytest.raises(AAEError, match=r"train.precision .*one of fp32, bf16"):
        tiny_config(precision="fp16")


def test_runner_eager_is_train_step(tiny_data):
    """On the CPU the runner is the plain step: the same weights as indexing by hand."""
    x = tiny_data.train_x
    by_hand = weights_after_steps(tiny_config(), tiny_data, lambda m, o, i, g:
                                  Step(m, o, g)(x[16 * i:16 * (i + 1)]))
    by_runner = weights_after_steps(tiny_config(), tiny_data, lambda m, o, i, g: Runner(
        Step(m, o, g), x, None)(torch.arange(16 * i, 16 * (i + 1))))
    assert all(torch.equal(by_hand[k], by_runner[k]) for k in by_hand)


def test_bf16_phases_see_the_updated_weights(tiny_data):
    """Under bf16 autocast the encoder phase must encode with the weights the reconstruction
    phase just updated (autocast's cast cache would hand it the old ones; CPU autocast shows it)."""
    cfg = resolve(tiny_config().to_dict(), None, ["optim.recon.lr=0.05", 'optim.gen.name="sgd"',
                                                  "optim.gen.lr=1e-30", "optim.gen.momentum=0"])
    torch.manual_seed(0)
    model = build_model(cfg, tiny_data.image_shape)
    opts = build_optimizers(model, cfg.optim)
    x = tiny_data.train_x[:16]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        before = model.encode(x)["z"].float()
    runner = Runner(Step(model, opts, torch.Generator().manual_seed(1)), tiny_data.train_x, None,
                    precision="bf16")
    _, z = runner(torch.arange(16))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        after = model.encode(x)["z"].float()
    assert (before - after).abs().max() > 0.1  # the reconstruction step moved the codes
    assert torch.allclose(z.float(), after, atol=0.02)


def _cuda_steps(cfg, data, steps: int, **runner) -> tuple[dict, list[float]]:
    torch.manual_seed(0)
    model = build_model(cfg, data.image_shape).cuda()
    opts = build_optimizers(model, cfg.optim, capturable=cfg.train.cuda_graph)
    gen = torch.Generator(device="cuda").manual_seed(1)
    x = data.train_x.cuda()
    y = data.train_y.cuda()
    labels = y if model.caps.needs_labels else None
    r = Runner(Step(model, opts, gen, StepOptions.of(cfg.train)), x, labels, **runner)
    rec = []
    for i in range(steps):
        idx = torch.arange(16 * (i % 10), 16 * (i % 10 + 1), device="cuda")
        j = idx.flip(0) if model.caps.classify else None
        scalars, _ = r(idx, j)
        rec.append(float(scalars[0]))
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}, rec


@cuda
@pytest.mark.parametrize("variant", [{}, {"model": {"class_input": "y", "code_dim": 3}},
                                     {"model": {"label_conditioning": True},
                                      "prior": {"name": "mixture"}, "data": {"labelled": -1}},
                                     {"train": {"schedule": "joint"}}])
def test_cuda_graph_matches_eager(variant):
    """Replaying the captured step trains like the eager step: the same weights within float
    tolerance after 20 steps (17 of them replays), and the reconstruction loss falls."""
    cfg = resolve(tiny_config(cuda_graph=True, device="cuda").to_dict(), None, [], variant)
    data = toy_data()
    eager, _ = _cuda_steps(cfg, data, 20)
    graphed, rec = _cuda_steps(cfg, data, 20, cuda_graph=True)
    for k in eager:
        assert torch.allclose(eager[k], graphed[k], atol=1e-4, rtol=1e-3), k
    assert rec[-1] < rec[0]


@cuda
def test_bf16_step_learns():
    cfg = tiny_config(device="cuda", precision="bf16")
    _, rec = _cuda_steps(cfg, toy_data(), 60, precision="bf16")
    assert all(map(lambda v: v == v, rec)) and rec[-1] < 0.7 * rec[0]


@cuda
def test_cuda_graph_run_resumes(tmp_path):
    """A whole run with CUDA graphs (a learning-rate step re-captures), stopped and resumed:
    every epoch logged once, weights finite, the run's report written."""
    data = toy_data()
    cfg = tiny_config(device="cuda", cuda_graph=True, epochs=4)
    cfg = resolve(cfg.to_dict(), None, ["optim.recon.milestones=[0.5]"])
    Trainer(resolve(cfg.to_dict(), None, ["train.epochs=2"]), tmp_path / "run", data=data,
            quiet=True).fit()
    Trainer(cfg, tmp_path / "run", data=data, resume=True, quiet=True).fit()
    lines = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [ln["epoch"] for ln in lines] == [1, 2, 3, 4]
    assert lines[-1]["lr"]["recon"] == pytest.approx(1e-4)
    assert lines[-1]["loss_recon"] < lines[0]["loss_recon"]
    assert (tmp_path / "run" / "report.html").exists()


@cuda
def test_cuda_graph_replays_draw_fresh_noise():
    """The clustering step (input noise, warp, interpolation and VAT terms, all drawn from the
    default CUDA generator; VAT with a gradient to the input inside the step) is captured, not
    left to the eager fallback, and every replay advances that generator: the warps, pairs,
    mixing weights and VAT's starting directions are new in each step, not frozen at capture."""
    cfg = resolve(tiny_config(cuda_graph=True, device="cuda").to_dict(), None, [],
                  {"model": {"class_input": "y", "classes": 6, "code_dim": 3, "y_balance": 5.0,
                             "y_consistency": 5.0, "y_mixup": 5.0, "y_vat": 5.0},
                   "data": {"labelled": 0}})
    torch.manual_seed(0)
    data = toy_data()
    model = build_model(cfg, data.image_shape).cuda()
    opts = build_optimizers(model, cfg.optim, capturable=True)
    step = Step(model, opts, torch.Generator(device="cuda").manual_seed(1),
                StepOptions(input_noise=0.3))
    r = Runner(step, data.train_x.cuda(), None, cuda_graph=True)
    rec, states = [], []
    for i in range(20):
        states.append(torch.cuda.get_rng_state())
        scalars, _ = r(torch.arange(16 * (i % 10), 16 * (i % 10 + 1), device="cuda"))
        rec.append(float(scalars[0]))
    assert r.graph is not None and r.cuda_graph  # captured: no fallback to eager steps
    assert all(not torch.equal(a, b) for a, b in zip(states[5:], states[6:]))  # replays draw
    assert all(v == v for v in rec) and rec[-1] < rec[0]
