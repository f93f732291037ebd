"""Regenerate the result tables of README.md beside this script from results.jsonl files.

    .venv/bin/python experiments/outliers/tables.py experiments/outliers/screen \\
        experiments/outliers/followup

Every table between the markers ``<!-- tables:NAME -->`` and ``<!-- /tables:NAME -->`` is
rewritten: NAME ``screen`` gets the headline table of every (outlier type, eps) of the first
folder, ``followup`` those of all folders together (the follow-up's arms paired with the
screen's N1 and N16-median cells).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from grid import headline, read_results

from aae.fileio import atomic_write_text

DOC = Path(__file__).resolve().parent / "README.md"


def tables(results: list[dict], arms: set[str] | None = None) -> str:
    if arms is not None:
        results = [r for r in results if r["arm"] in arms]
    out = []
    for kind in dict.fromkeys(r["type"] for r in results):
        for eps in sorted({r["eps"] for r in results if r["type"] == kind}):
            out += [headline(results, kind, eps), ""]
    return "\n".join(out)


def main() -> None:
    folders = [Path(a) for a in sys.argv[1:]] or [Path("experiments/outliers/screen")]
    screen = read_results(folders[0] / "results.jsonl")
    everything = [r for f in folders for r in read_results(f / "results.jsonl")]
    follow_arms = {r["arm"] for f in folders[1:] for r in read_results(f / "results.jsonl")}
    follow_eps = {(r["type"], r["eps"]) for f in folders[1:] for r in read_results(f / "results.jsonl")}
    follow = [r for r in everything if (r["type"], r["eps"]) in follow_eps
              and r["arm"] in follow_arms | {"N1", "N16-median"}]
    text = DOC.read_text(encoding="utf-8")
    for name, body in (("screen", tables(screen)), ("followup", tables(follow))):
        pattern = re.compile(rf"(<!-- tables:{name} -->\n).*?(<!-- /tables:{name} -->)", re.S)
        text = pattern.sub(lambda m, b=body: m.group(1) + b + "\n" + m.group(2), text)
    atomic_write_text(DOC, text)
    print(f"{DOC}: {len(screen)} screen cells, {len(follow)} follow-up cells (with pairs)")


if __name__ == "__main__":
    main()
