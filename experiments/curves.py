"""Draw error curves against training time from metrics.jsonl files (README's learning curves).

    .venv/bin/python experiments/curves.py --out docs/img/semi_curves.png --key test_error \\
        experiments/semi-supervised/results/semi-100.metrics.jsonl \\
        experiments/semi-supervised/results/semi-1000.metrics.jsonl

Several ``--key`` values draw one panel per key (e.g. both clustering errors), a file keeping
its colour across panels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aae.fileio import atomic_write_bytes, read_jsonl
from aae.plots import curves_png


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--key", nargs="+", default=["test_error"])
    ap.add_argument("--out", required=True, type=Path)
    a = ap.parse_args()
    panels = []  # one panel per key; a file keeps its colour across panels
    for key in a.key:
        series = {}
        for f in a.files:
            lines = [ln for ln in read_jsonl(f) if key in ln]
            series[f.name.split(".")[0]] = ([ln["elapsed"] / 60 for ln in lines],
                                            [100 * ln[key] for ln in lines])
        panels.append((f"{key} (%) against training time", "%", series))
    atomic_write_bytes(a.out, curves_png(panels, "training minutes", cols=len(panels)))
    for key, (_, _, series) in zip(a.key, panels):
        for name, (x, y) in series.items():
            print(f"{name} {key}: {y[-1]:.2f}% after {x[-1]:.1f} min (best {min(y):.2f}%)")

if __name__ == "__main__":
    main()
