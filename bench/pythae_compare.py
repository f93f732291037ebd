"""aae against pythae's Adversarial_AE, side by side on the same machine, runs alternated.

    .venv/bin/python bench/pythae_compare.py --pythae-python /tmp/pythae-venv/bin/python \
        [--arch mlp|conv] [--data ../shared/data/mnist] [--rounds 3]

pythae lives in its own virtual environment (``python -m venv /tmp/pythae-venv &&
/tmp/pythae-venv/bin/pip install torch==2.13.0 pythae``); this script only starts its interpreter
on bench/pythae_step.py, so neither aae nor this bench imports pythae. Each round runs
bench/throughput.py (aae's steps, batch 100) and then pythae's trainer; the two alternate so that a
noisy neighbour slows both alike. Prints each round and, per aae variant, the ratio of the medians,
with both sides' matrix-product FLOPs per image and the GFLOP/s they make: the images/s ratio is
the FLOP ratio (pythae's per image over aae's) times the GFLOP/s ratio (aae's over pythae's).

``--arch mlp`` (default): the paper's MNIST sizes on both sides; aae's variants ``unsupervised``
(the paper's schedule) and ``unsupervised-joint`` (one encoder pass, as pythae's step).
``--arch conv``: pythae's own MNIST convolutional networks (Encoder_Conv_AE_MNIST,
Decoder_Conv_AE_MNIST) against aae's conv family at their widths (``conv-pythae`` and
``conv-pythae-joint`` in bench/throughput.py: model.arch = "conv", model.conv_widths =
[128, 256, 512, 1024]). The encoders have the same convolutions; aae's decoder mirrors its
encoder (four kernel-4 transposed convolutions from 1x1) where pythae's has three kernel-3 ones
from 4x4, so the FLOPs differ: the FLOP and GFLOP/s ratios say how much of the speed difference
each accounts for.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_VARIANTS = {"mlp": ["unsupervised", "unsupervised-joint"],
                    "conv": ["conv-pythae", "conv-pythae-joint"]}


def run_json(cmd: list[str]) -> list[dict]:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pythae-python", required=True, help="the interpreter of a venv with pythae")
    ap.add_argument("--arch", choices=("mlp", "conv"), default="mlp",
                    help="mlp: the paper's sizes; conv: pythae's MNIST convolutional networks "
                         "against aae's conv family at their widths")
    ap.add_argument("--data", default=os.path.join(os.environ.get("AAE_DATA_DIR", "../shared/data"),
                                                   "mnist"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--variants", nargs="+",
                    help="aae's bench variants to time each round (bench/throughput.py); default "
                         + "; ".join(f"{k}: {' '.join(v)}" for k, v in DEFAULT_VARIANTS.items()))
    ap.add_argument("--seconds", type=float, default=6.0,
                    help="bench/throughput.py's timed seconds per measurement")
    ap.add_argument("--images", type=int, default=10000,
                    help="MNIST images per pythae epoch (bench/pythae_step.py)")
    ap.add_argument("--repeats", type=int, default=3, help="timed pythae epochs per round")
    a = ap.parse_args()
    variants = a.variants or DEFAULT_VARIANTS[a.arch]
    ours: dict[str, list[float]] = {v: [] for v in variants}
    mflop: dict[str, float] = {}
    theirs: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            js = Path(tmp) / "aae.json"
            run_json([sys.executable, str(HERE / "throughput.py"), "--variants", *variants,
                      "--batch-sizes", str(a.batch_size), "--seconds", str(a.seconds),
                      "--json", str(js)])
            for row in json.loads(js.read_text()):
                ours[row["variant"]].append(row["images_per_s"])
                mflop[row["variant"]] = row["mflop_per_image"]
            py = run_json([a.pythae_python, str(HERE / "pythae_step.py"), "--data", a.data,
                           "--arch", a.arch, "--batch-size", str(a.batch_size),
                           "--images", str(a.images), "--repeats", str(a.repeats)])[-1]
            theirs.append(py["images_per_s"])
            print(f"round {r + 1}: pythae {theirs[-1]:.0f} images/s; " + ", ".join(
                f"aae {v} {ours[v][-1]:.0f} ({ours[v][-1] / theirs[-1]:.2f}x)" for v in ours),
                flush=True)
    mt, ft = statistics.median(theirs), py["mflop_per_image"]
    gt = mt * ft / 1e3
    print(f"pythae ({a.arch}): {ft:.1f} MFLOP/image, median {mt:.0f} images/s, {gt:.1f} GFLOP/s")
    for v, xs in ours.items():
        mo, fo = statistics.median(xs), mflop[v]
        go = mo * fo / 1e3
        print(f"median: aae {v} {mo:.0f} images/s ({fo:.1f} MFLOP/image, {go:.1f} GFLOP/s), "
              f"pythae {mt:.0f} images/s, aae/pythae {mo / mt:.2f}x = FLOPs {ft / fo:.2f}x "
              f"(pythae's per image over aae's) * GFLOP/s {go / gt:.2f}x")


if __name__ == "__main__":
    main()
