"""What the training step costs beyond its matrix products, by taking parts away.

    .venv/bin/python bench/step_overhead.py [--kinds aae torch-step] [--seconds 6] [--tiny]

Copies of the unsupervised step (bench/throughput.py's ``build_step``, batch 100, the same
weights and data) in one process, their timed windows interleaved with the ceiling's (the step's
matrix products alone), ``--kinds`` of:

* ``aae``: the step as training runs it (``aae.optim.step``: torch's fused Adam kernel called
  directly);
* ``torch-step``: the same with ``opt.zero_grad()`` and ``opt.step()`` (torch's Adam bookkeeping
  around the same kernel);
* ``no-updates``: no optimizer updates at all. Not training (the weights never change): it shows
  how much of the gap to the ceiling the memory-bound Adam kernels are.

Each row: images/s (median of windows), achieved/ceiling and the ratio to the first of ``--kinds``
(medians of ratios between neighbouring windows). ``--tiny``: hidden layers of 8 units instead of
1000, so the matrix products cost almost nothing and the time per step is the step's fixed cost
(Python, dispatch, autograd, optimizer calls, the 784-pixel losses).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aae import optim  # noqa: E402
from aae.config import merge, resolve  # noqa: E402
from throughput import build_step, ceiling, paired, timed  # noqa: E402

KINDS = {  # how each copy steps its optimizers: (clear the gradients, step)
    "aae": (optim.clear_grads, optim.step),
    "torch-step": (lambda o: o.zero_grad(set_to_none=True), lambda o: o.step()),
    "no-updates": (optim.clear_grads, lambda o: None),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=6.0, help="timed seconds per copy")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--tiny", action="store_true", help="hidden layers of 8 units")
    ap.add_argument("--kinds", nargs="+", choices=list(KINDS), default=list(KINDS),
                    help="which copies (each copy's weights and Adam states compete for the cache: "
                         "two at a time disturb each other less than three)")
    a = ap.parse_args()
    over = {"train": {"device": "cpu", "batch_size": a.batch}}
    if a.tiny:
        over["model"] = {"encoder_hidden": [8, 8], "decoder_hidden": [8, 8], "disc_hidden": [8, 8]}
    cfg = resolve(None, None, [], merge(over, {}))
    steps, model, classify = {}, None, False
    for kind in a.kinds:
        clear, step = KINDS[kind]
        torch.manual_seed(0)
        m, classify, _, run = build_step(cfg, a.batch)
        model = model or m

        def one(run=run, clear=clear, step=step):  # the training module looks these up per call
            optim.clear_grads, optim.step = clear, step
            return run()

        steps[kind] = one
    fns = [*steps.values(), ceiling(model, a.batch, classify)]
    rates = timed(fns, a.batch, a.seconds)
    print(f"# {'tiny' if a.tiny else 'paper'} sizes, batch {a.batch}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print(f"| step | images/s | ms per step | achieved/ceiling | vs {a.kinds[0]} |")
    print("|---|---|---|---|---|")
    for kind, r in zip(steps, rates):
        med = statistics.median(r)
        print(f"| {kind} | {med:.0f} | {1e3 * a.batch / med:.2f} | {paired(r, rates[-1]):.0%} | "
              f"{paired(r, rates[0]):.3f} |")
    med = statistics.median(rates[-1])
    print(f"| ceiling (matrix products alone) | {med:.0f} | {1e3 * a.batch / med:.2f} | | |")
    optim.clear_grads, optim.step = KINDS["aae"]


if __name__ == "__main__":
    main()
