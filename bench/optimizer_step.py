"""Time one Adam step over the paper-sized autoencoder's parameters, per implementation.

    .venv/bin/python bench/optimizer_step.py [--compiled]

The 3.6 M parameters of the 784-1000-1000-8 encoder and 8-1000-1000-784 decoder, random gradients,
the median of 5 windows of 50 timed steps after 10 of warm-up, for the for-loop, multi-tensor
(foreach) and fused kernels, and the fused kernel over the same number of parameters held in one
flat tensor (what a flat-parameter layout would save: the per-tensor costs). ``--compiled`` adds
``torch.compile`` of a capturable multi-tensor step (Inductor's generated kernel; compiling takes
about half a minute).
"""

import argparse
import statistics
import time

import torch
from torch import nn

SHAPES = [(1000, 784), (1000,), (1000, 1000), (1000,), (8, 1000), (8,),
          (1000, 8), (1000,), (1000, 1000), (1000,), (784, 1000), (784,)]


def params(shapes=SHAPES):
    ps = [nn.Parameter(torch.randn(*s)) for s in shapes]
    for p in ps:
        p.grad = torch.randn_like(p)
    return ps


def timed(step, windows: int = 5, steps: int = 50) -> float:
    """Median milliseconds per call over ``windows`` windows of ``steps`` calls."""
    for _ in range(10):
        step()
    out = []
    for _ in range(windows):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        out.append((time.perf_counter() - t0) / steps * 1000)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compiled", action="store_true", help="also time a torch.compile'd step")
    a = ap.parse_args()
    torch.manual_seed(0)
    n = sum(torch.Size(s).numel() for s in SHAPES)
    cases = [("for-loop", SHAPES, {"foreach": False}), ("foreach", SHAPES, {"foreach": True}),
             ("fused", SHAPES, {"fused": True}), ("fused, one flat tensor", [(n,)], {"fused": True})]
    print(f"# {n / 1e6:.2f} M parameters, {torch.get_num_threads()} threads, torch {torch.__version__}")
    for name, shapes, kw in cases:
        opt = torch.optim.Adam(params(shapes), lr=1e-3, betas=(0.5, 0.999), **kw)
        print(f"{name}: {timed(opt.step):.2f} ms per step")
    if a.compiled:  # lr as a tensor and capturable: the step count never forces a recompile
        opt = torch.optim.Adam(params(), lr=torch.tensor(1e-3), betas=(0.5, 0.999),
                               foreach=True, capturable=True)
        step = torch.compile(opt.step)
        print(f"compiled (capturable foreach): {timed(step):.2f} ms per step")


if __name__ == "__main__":
    main()
