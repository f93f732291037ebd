"""aae against pythae's Adversarial_AE, side by side on the same machine, runs alternated.

    .venv/bin/python bench/pythae_compare.py --pythae-python /tmp/pythae-venv/bin/python \
        [--data ../shared/data/mnist] [--rounds 3]

pythae lives in its own virtual environment (``python -m venv /tmp/pythae-venv &&
/tmp/pythae-venv/bin/pip install torch==2.13.0 pythae``); this script only starts its interpreter
on bench/pythae_step.py, so neither aae nor this bench imports pythae. Each round runs
bench/throughput.py (aae's steps, by default the paper's schedule and the joint one, batch 100)
and then pythae's trainer; the two alternate so that a noisy neighbour slows both alike. Prints
each round and, per aae variant, the ratio of the medians.
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


def run_json(cmd: list[str]) -> list[dict]:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pythae-python", required=True, help="the interpreter of a venv with pythae")
    ap.add_argument("--data", default=os.path.join(os.environ.get("AAE_DATA_DIR", "../shared/data"),
                                                   "mnist"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--variants", nargs="+", default=["unsupervised", "unsupervised-joint"],
                    help="aae's bench variants to time each round (bench/throughput.py)")
    a = ap.parse_args()
    ours: dict[str, list[float]] = {v: [] for v in a.variants}
    theirs: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            js = Path(tmp) / "aae.json"
            run_json([sys.executable, str(HERE / "throughput.py"), "--variants", *a.variants,
                      "--batch-sizes", str(a.batch_size), "--seconds", "6", "--json", str(js)])
            for row in json.loads(js.read_text()):
                ours[row["variant"]].append(row["images_per_s"])
            theirs.append(run_json([a.pythae_python, str(HERE / "pythae_step.py"), "--data", a.data,
                                    "--batch-size", str(a.batch_size)])[-1]["images_per_s"])
            print(f"round {r + 1}: pythae {theirs[-1]:.0f} images/s; " + ", ".join(
                f"aae {v} {ours[v][-1]:.0f} ({ours[v][-1] / theirs[-1]:.2f}x)" for v in ours),
                flush=True)
    mt = statistics.median(theirs)
    for v, xs in ours.items():
        mo = statistics.median(xs)
        print(f"median: aae {v} {mo:.0f} images/s, pythae {mt:.0f} images/s, "
              f"aae/pythae {mo / mt:.2f}x")


if __name__ == "__main__":
    main()
