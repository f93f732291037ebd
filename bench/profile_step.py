"""Where a training step's CPU time goes: matrix products, optimizer updates, everything else.

    .venv/bin/python bench/profile_step.py [--variant unsupervised] [--batch 100] [--steps 20]

Builds the step as bench/throughput.py does (same variants, random images in memory), runs 50
warm-up steps, then ``torch.profiler`` over ``--steps`` steps, and prints each share of the self
CPU time and the ten most expensive operators. Profiling adds its own overhead to every operator
call, so "everything else" is an upper bound.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aae.config import merge, resolve  # noqa: E402
from aae.runs import build_model  # noqa: E402
from aae.training import StepRunner, build_optimizers  # noqa: E402
from throughput import VARIANTS  # noqa: E402

MATMUL = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}
OPTIMIZER = {"aten::_fused_adam_", "aten::_fused_adamw_"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="unsupervised", choices=sorted(VARIANTS))
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    torch.manual_seed(0)
    cfg = resolve(None, None, [], merge({"train": {"batch_size": a.batch, "device": "cpu"}},
                                        VARIANTS[a.variant]))
    model = build_model(cfg, (1, 28, 28))
    opts = build_optimizers(model, cfg)
    x_all = torch.rand(8192, 1, 28, 28)
    gen = torch.Generator().manual_seed(0)
    classify = model.class_input == "y" and cfg.data.labelled != 0
    labels = torch.randint(10, (len(x_all),), generator=gen)
    runner = StepRunner(model, opts, x_all, labels if classify or model.class_input == "label"
                        else None, gen,
                        schedule=cfg.train.schedule, adv_weight=cfg.train.adv_weight)
    labelled = torch.arange(len(x_all) - a.batch, len(x_all))

    def step(i: int) -> None:
        s = (i * a.batch) % (len(x_all) - a.batch)
        runner(torch.arange(s, s + a.batch), labelled if classify else None)

    for i in range(50):
        step(i)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(a.steps):
            step(i)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    mm = sum(e.self_cpu_time_total for e in events if e.key in MATMUL)
    # the optimizer's own kernels and its Python around them (Optimizer.step#Adam.step's self time)
    opt = sum(e.self_cpu_time_total for e in events
              if e.key in OPTIMIZER or e.key.startswith("Optimizer.step#"))
    print(f"# {a.variant}, batch {a.batch}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}: {total / a.steps / 1e3:.1f} ms of CPU time per step")
    print(f"matrix products {mm / total:.0%}, optimizer updates {opt / total:.0%}, "
          f"everything else {(total - mm - opt) / total:.0%}")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:10]:
        print(f"  {e.key:45s} {e.self_cpu_time_total / a.steps / 1e3:6.2f} ms/step "
              f"{e.count // a.steps:4d} calls/step")


if __name__ == "__main__":
    main()
