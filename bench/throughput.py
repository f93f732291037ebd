"""Training throughput of every variant against a plain eager reference and the machine's ceiling.

    .venv/bin/python bench/throughput.py [--batch-sizes 100 256 1024] [--seconds 4]
        [--variants unsupervised groups16-median ...] [--device cuda]

For each batch size: images/s of aae's training step and of bench/reference.py's plain step
(warm-up excluded, median of 15 windows; the ratios are medians of ratios between neighbouring
windows), the matrix-product FLOPs per image derived from the layer
shapes (bench/flops.py), and the ceiling: the same machine running only the step's matrix products
(the exact shapes, in the same process), as images/s. achieved/ceiling says how much of the step is
overhead beyond those products. Every training variant joins the table (``VARIANTS``); for grouped
discriminators the ceiling uses dense products of the same FLOPs (each example passes through one
of the N stacked discriminators).

A variant name may end in any of ``-compiled`` (the networks through torch.compile), ``-bf16``
(bfloat16 autocast; GPUs, CPUs with AMX) and ``-cudagraph`` (the whole step captured as one CUDA graph, CUDA):
``unsupervised-bf16-cudagraph`` is the unsupervised step with both. The step is the one training
runs: :class:`aae.step.Step` built from the variant's config, run through :class:`aae.step.Runner`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aae.config import merge, resolve  # noqa: E402
from aae.runs import build_model  # noqa: E402
from aae.step import Runner, Step  # noqa: E402
from flops import model_shapes, step_flops  # noqa: E402
from reference import ReferenceAAE  # noqa: E402

VARIANTS = {  # name -> config overrides; every training variant that exists
    "unsupervised": {},
    # the joint schedule (one encoder pass; train.schedule = "joint")
    "unsupervised-joint": {"train": {"schedule": "joint"}},
    # the convolutional family (model.arch = "conv", its default widths)
    "conv": {"model": {"arch": "conv"}},
    # the conv family at the layer sizes of pythae's MNIST convolutional networks (its encoder's
    # four stride-2 kernel-4 convolutions, 128-256-512-1024 channels, 28 -> 14 -> 7 -> 3 -> 1, then
    # one linear layer to the code; ours mirrors them in the decoder, where pythae's has three
    # kernel-3 transposed convolutions from 4x4): bench/pythae_compare.py --arch conv
    "conv-pythae": {"model": {"arch": "conv", "conv_widths": [128, 256, 512, 1024]}},
    # the same on the joint schedule (one encoder pass, as pythae's step)
    "conv-pythae-joint": {"model": {"arch": "conv", "conv_widths": [128, 256, 512, 1024]},
                          "train": {"schedule": "joint"}},
    "groups4-median": {"model": {"disc_groups": 4, "disc_aggregate": "median"}},
    "groups16-median": {"model": {"disc_groups": 16, "disc_aggregate": "median"}},
    "groups16-median-each": {"model": {"disc_groups": 16, "disc_aggregate": "median",
                                       "disc_budget": "each"}},
    "supervised": {"model": {"class_input": "label"}},
    "semi-supervised": {"model": {"class_input": "y", "code_dim": 10}},
    # the y head without labels: no classification phase (the cluster-16 preset: its sizes, its
    # warp-consistency, interpolation and virtual adversarial terms, four more encoder passes on
    # warped, mixed and perturbed images, one of them backward to the image only)
    "clustering": {"model": {"class_input": "y", "classes": 16, "code_dim": 5, "y_balance": 5.0,
                             "y_consistency": 5.0, "y_mixup": 5.0, "y_vat": 5.0},
                   "data": {"labelled": 0}},
    # the same without the two terms the paper does not have (its clustering recipe)
    "clustering-paper": {"model": {"class_input": "y", "classes": 16, "code_dim": 5},
                         "data": {"labelled": 0}},
}


MODES = ("compiled", "bf16", "cudagraph")


def split_variant(name: str) -> tuple[str, set[str]]:
    """``unsupervised-bf16-cudagraph`` -> ("unsupervised", {"bf16", "cudagraph"})."""
    modes: set[str] = set()
    while name.rsplit("-", 1)[-1] in MODES:
        name, mode = name.rsplit("-", 1)
        modes.add(mode)
    if name not in VARIANTS:
        raise SystemExit(f"--variants: unknown variant {name!r}; expected one of "
                         f"{', '.join(VARIANTS)}, each optionally ending in "
                         f"{', '.join('-' + m for m in MODES)}")
    return name, modes


def timed(fns, batch: int, seconds: float, repeats: int = 15,
          sync=lambda: None) -> list[list[float]]:
    """Images/s of each function in each of ``repeats`` windows, the functions' windows
    interleaved (a, b, a, b, ...) so that all of them see the same state of a shared machine.
    ``sync`` waits for the device (each window ends when its work has finished)."""
    pers = []
    for fn in fns:
        for _ in range(5):  # warm-up (a CUDA-graph step is captured on its 4th call)
            fn()
        sync()
        t0 = time.perf_counter()
        for _ in range(3):
            fn()
        sync()
        per_call = max(time.perf_counter() - t0, 1e-6) / 3
        pers.append(max(1, int(seconds / repeats / per_call)))
    rates: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, per, out in zip(fns, pers, rates):
            sync()
            t0 = time.perf_counter()
            for _ in range(per):
                fn()
            sync()
            out.append(per * batch / (time.perf_counter() - t0))
    return rates


def paired(a: list[float], b: list[float]) -> float:
    """The median over windows of a / b, each ratio taken between neighbouring windows: this
    development machine's speed drifts by 30% and more within a minute (other tenants), which a
    ratio of separate medians absorbs less well."""
    return statistics.median(x / y for x, y in zip(a, b))


def ceiling(model, batch: int, classify: bool, device: str = "cpu", schedule: str = "paper"):
    """A function running only the step's matrix products (same shapes, same order; convolutions
    as their im2col products, bench/flops.py): its images/s is the ceiling of the step on this
    machine."""
    enc, dec, discs = model_shapes(model)
    ops = []  # (m, k, n) for an (m x k) @ (k x n) product

    def passes(shapes, wgrad, igrad, first_igrad, rows=batch, forward=True):
        for k, (r, i, o) in enumerate(shapes):  # r rows per example (convolutions: positions)
            if forward:
                ops.append((r * rows, i, o))
            if wgrad:
                ops.append((i, r * rows, o))  # dW = x^T @ dy
            if igrad and (k > 0 or first_igrad):
                ops.append((r * rows, o, i))  # dx = dy @ W

    passes(enc, True, True, False)
    passes(dec, True, True, True)
    for disc in discs:
        passes(disc, True, True, False, rows=2 * batch)  # prior samples and codes in one pass
    for disc in discs:  # joint: the codes' forward pass is shared with the discriminator loss
        passes(disc, False, True, True, forward=schedule != "joint")
    if schedule != "joint":  # the paper's encoder phase
        passes(enc, True, True, False)
    if classify:  # the classification phase on a labelled batch
        passes(enc, True, True, False)
    if model.cfg.y_consistency > 0:  # the encoder on the warped images
        passes(enc, True, True, False)
    if model.cfg.y_mixup > 0:  # the encoder on the mixed images
        passes(enc, True, True, False)
    mats = [(torch.randn(m, k, device=device), torch.randn(k, n, device=device)) for m, k, n in ops]
    out = [torch.empty(m, n, device=device) for m, _, n in ops]

    def run():
        for (a, b), o in zip(mats, out):
            torch.mm(a, b, out=o)

    return run


def build_step(cfg, batch: int, modes: set[str] = frozenset()):
    """The variant's whole training step on random images in memory: the :class:`aae.step.Step`
    that training builds from ``cfg``, run through :class:`aae.step.Runner` as in training:
    (model, whether it has the classification phase, the images, a function of no arguments
    running one step on the next batch)."""
    dev = cfg.train.device
    model = build_model(cfg, (1, 28, 28)).to(dev)
    if "compiled" in modes:  # in place: parameter names (checkpoints) unchanged
        for net in (model.encoder, model.decoder, *(r.discriminator for r in model.regularizers)):
            net.compile(dynamic=False)
    classify = model.caps.classify
    x_all = torch.rand(8192, 1, 28, 28, device=dev)
    gen = torch.Generator(device=dev).manual_seed(0)
    y_all = torch.randint(10, (len(x_all),), generator=gen, device=dev)
    labels = y_all if model.caps.needs_labels else None
    runner = Runner(Step.from_config(model, cfg, gen), x_all, labels,
                    precision=cfg.train.precision, cuda_graph=cfg.train.cuda_graph, log=print)
    starts = iter(range(0, 10**12, batch))
    labelled = torch.arange(len(x_all) - batch, len(x_all), device=dev)

    def step():  # labels for a label input, a labelled batch for the classification phase
        i = next(starts) % (len(x_all) - batch)
        return runner(torch.arange(i, i + batch, device=dev), labelled if classify else None)

    return model, classify, x_all, step


def measure(cfg, batch: int, seconds: float, variant: str = "unsupervised") -> dict:
    dev = cfg.train.device
    _, modes = split_variant(variant)
    model, classify, x_all, step = build_step(cfg, batch, modes)
    starts = iter(range(0, 10**12, batch))

    def ref_step():
        i = next(starts) % (len(x_all) - batch)
        ref_model.step(x_all[i:i + batch])

    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    ref_model = ReferenceAAE(device=dev)
    sched = cfg.train.schedule
    rates = timed([step, ref_step, ceiling(model, batch, classify, dev, sched)], batch, seconds,
                  sync=sync)
    ours, ref, ceil = (statistics.median(r) for r in rates)
    fl = step_flops(model, classify, sched)
    return {"variant": variant, "batch": batch, "images_per_s": round(ours),
            "reference_images_per_s": round(ref), "speedup": round(paired(rates[0], rates[1]), 2),
            "mflop_per_image": round(fl["step"] / 1e6, 1),
            "gflop_per_s": round(ours * fl["step"] / 1e9, 1),
            "ceiling_images_per_s": round(ceil), "achieved_of_ceiling": round(paired(rates[0], rates[2]), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 256, 1024])
    ap.add_argument("--seconds", type=float, default=6.0, help="timed seconds per measurement")
    ap.add_argument("--variants", nargs="+", default=["unsupervised"],
                    help=f"any of {', '.join(VARIANTS)}, each optionally ending in "
                         f"{', '.join('-' + m for m in MODES)}")
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    a = ap.parse_args()
    for v in a.variants:
        split_variant(v)
    gpu = f", {torch.cuda.get_device_name()}" if a.device.startswith("cuda") else ""
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores{gpu}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    for variant in a.variants:
        base, modes = split_variant(variant)
        for batch in a.batch_sizes:
            torch.manual_seed(0)
            train = {"device": a.device, "batch_size": batch, "cuda_graph": "cudagraph" in modes,
                     "precision": "bf16" if "bf16" in modes else "fp32"}
            cfg = resolve(None, None, [], merge({"train": train}, VARIANTS[base]))
            row = measure(cfg, batch, a.seconds, variant)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| variant | batch | images/s | reference images/s | speed-up | MFLOP/image | GFLOP/s | "
          "ceiling images/s | achieved/ceiling |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['batch']} | {r['images_per_s']} | {r['reference_images_per_s']} "
              f"| {r['speedup']}x | {r['mflop_per_image']} | {r['gflop_per_s']} | "
              f"{r['ceiling_images_per_s']} | {r['achieved_of_ceiling']:.0%} |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
