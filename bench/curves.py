"""Draw error curves against training time from metrics.jsonl files (README's learning curves).

    .venv/bin/python bench/curves.py --out docs/img/semi_curves.png --key test_error \\
        docs/results/semi-100.metrics.jsonl docs/results/semi-1000.metrics.jsonl

Several ``--key`` values draw one line per file and key (e.g. both clustering errors).
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
    series = {}
    for f in a.files:
        for key in a.key:
            lines = [ln for ln in read_jsonl(f) if key in ln]
            name = f.name.split(".")[0] + (f" {key}" if len(a.key) > 1 else "")
            series[name] = ([ln["elapsed"] / 60 for ln in lines], [100 * ln[key] for ln in lines])
    png = curves_png([(f"{', '.join(a.key)} (%) against training time", "%", series)],
                     "training minutes", cols=1)
    atomic_write_bytes(a.out, png)
    for name, (x, y) in series.items():
        print(f"{name}: {y[-1]:.2f}% after {x[-1]:.1f} min (best {min(y):.2f}%)")


if __name__ == "__main__":
    main()
