"""Where a training step's CPU time goes: matrix products, optimizer updates, everything else.

    .venv/bin/python bench/profile_step.py [--variant unsupervised] [--batch 100] [--steps 20]

Builds the step with bench/throughput.py's ``build_step`` (same variants, random images in
memory), runs 50 warm-up steps, then ``torch.profiler`` over ``--steps`` steps, and prints each
share of the self CPU time and the ten most expensive operators. Profiling adds its own overhead
to every operator call, so "everything else" is an upper bound. Then 200 steps without the
profiler: images/s, minor page faults and system CPU time per step (``getrusage``; glibc's malloc
settings, e.g. ``MALLOC_MMAP_THRESHOLD_``, change the faults).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aae.config import merge, resolve  # noqa: E402
from throughput import VARIANTS, build_step  # noqa: E402

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
    _, _, _, step = build_step(cfg, a.batch)
    for _ in range(50):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(a.steps):
            step()
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
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(200):
        step()
    dt, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    print(f"without the profiler: {200 * a.batch / dt:.0f} images/s, "
          f"{(r1.ru_minflt - r0.ru_minflt) / 200:.0f} minor page faults and "
          f"{(r1.ru_stime - r0.ru_stime) / 200 * 1e3:.2f} ms of system time per step")


if __name__ == "__main__":
    main()
