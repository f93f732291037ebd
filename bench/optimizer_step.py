"""Time one Adam step over the paper-sized autoencoder's parameters, per implementation.

    .venv/bin/python bench/optimizer_step.py

The 3.6 M parameters of the 784-1000-1000-8 encoder and 8-1000-1000-784 decoder, random gradients,
50 timed steps after 5 of warm-up, for the for-loop, multi-tensor (foreach) and fused kernels.
"""

import time

import torch
from torch import nn


def params():
    shapes = [(1000, 784), (1000,), (1000, 1000), (1000,), (8, 1000), (8,),
              (1000, 8), (1000,), (1000, 1000), (1000,), (784, 1000), (784,)]
    ps = [nn.Parameter(torch.randn(*s)) for s in shapes]
    for p in ps:
        p.grad = torch.randn_like(p)
    return ps


def main() -> None:
    torch.manual_seed(0)
    for kw in ({"foreach": False}, {"foreach": True}, {"fused": True}):
        opt = torch.optim.Adam(params(), lr=1e-3, betas=(0.5, 0.999), **kw)
        for _ in range(5):
            opt.step()
        t0 = time.perf_counter()
        for _ in range(50):
            opt.step()
        print(f"{kw}: {(time.perf_counter() - t0) / 50 * 1000:.2f} ms per step")


if __name__ == "__main__":
    main()
