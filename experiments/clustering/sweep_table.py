"""A table of clustering runs that differ in seed and one setting, from their metrics.jsonl.

    .venv/bin/python experiments/clustering/sweep_table.py --key model.y_mixup --bar 0.15 \
        --jsonl experiments/clustering/results/gpu/cluster16-sweep.jsonl RUN [RUN ...]

Per run: the setting's value (from the run's config.toml), its seed, the last epoch's clustering
errors (the paper's rule and the majority vote, on the test split as training logs them), NMI and
the number of clusters in use; per value of the setting: the median error and how many runs reach
``--bar``. ``--jsonl`` keeps one line per run with its per-epoch error (the curves), so the table
can be redrawn without the run folders.
"""

from __future__ import annotations

import argparse
import json
import statistics
from itertools import combinations
from pathlib import Path

from aae.runs import load_config


def setting(cfg, key: str):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="*")
    ap.add_argument("--key", required=True, help="the setting that differs, e.g. model.y_mixup")
    ap.add_argument("--bar", type=float, default=0.15, help="error to reach (paper's rule)")
    ap.add_argument("--jsonl", type=Path)
    ap.add_argument("--from-jsonl", type=Path, help="read the rows from an earlier --jsonl")
    ap.add_argument("--plot", type=Path, help="a PNG: each run's final error by the setting")
    ap.add_argument("--early", type=int, default=5, help="epoch whose error predicts the final")
    ap.add_argument("--pick", type=int, default=3, help="starts to pick from by loss_gen")
    a = ap.parse_args()
    rows = ([json.loads(x) for x in a.from_jsonl.read_text().splitlines() if x.strip()]
            if a.from_jsonl else [])
    for run in a.runs:
        cfg = load_config(run)
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
        last = lines[-1]
        rows.append({"run": run.name, a.key: setting(cfg, a.key), "seed": cfg.train.seed,
                     "epoch": last["epoch"], "paper_error": last["cluster_error"],
                     "majority_error": last["cluster_error_majority"], "nmi": last["nmi"],
                     "clusters_used": last["clusters_used"],
                     "loss_gen": last["loss_gen"],
                     "paper_error_per_epoch": [ln["cluster_error"] for ln in lines]})
    rows.sort(key=lambda r: (r[a.key], r["seed"]))
    print(f"| {a.key} | seed | epoch | paper's rule | majority | NMI | clusters used |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[a.key]} | {r['seed']} | {r['epoch']} | {100 * r['paper_error']:.1f}% | "
              f"{100 * r['majority_error']:.1f}% | {r['nmi']:.3f} | {r['clusters_used']} |")
    for v in sorted({r[a.key] for r in rows}):
        errs = [r["paper_error"] for r in rows if r[a.key] == v]
        ok = sum(e <= a.bar for e in errs)
        print(f"{a.key} = {v}: {len(errs)} runs, median {100 * statistics.median(errs):.1f}%, "
              f"{ok} of {len(errs)} at or under {100 * a.bar:.0f}%")
        if len(errs) >= 5:
            predictors(a, [r for r in rows if r[a.key] == v])
    if a.jsonl:
        a.jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if a.plot:
        plot(rows, a.key, a.bar, a.plot)


def predictors(a, rows: list[dict]) -> None:
    """How well an early error and the final ``loss_gen`` (label-free) rank the runs' final
    errors, and how often the start with the lowest ``loss_gen`` among ``--pick`` meets the bar
    (over every such subset of the runs)."""
    from scipy.stats import spearmanr

    final = [r["paper_error"] for r in rows]
    early = [r["paper_error_per_epoch"][a.early - 1] for r in rows]
    loss = [r["loss_gen"] for r in rows]
    picks = [min(c, key=lambda i: loss[i]) for c in combinations(range(len(rows)), a.pick)]
    print(f"  Spearman with the final error: epoch {a.early}'s error "
          f"{spearmanr(early, final).statistic:+.2f}, final loss_gen "
          f"{spearmanr(loss, final).statistic:+.2f}; the lowest loss_gen of {a.pick} starts meets "
          f"the bar in {100 * sum(final[i] <= a.bar for i in picks) / len(picks):.0f}% of "
          f"{len(picks)} subsets")


def plot(rows: list[dict], key: str, bar: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = sorted({r[key] for r in rows})
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for i, v in enumerate(values):
        errs = sorted(100 * r["paper_error"] for r in rows if r[key] == v)
        maj = [100 * r["majority_error"] for r in rows if r[key] == v]
        # spread the dots of one value sideways so that equal errors stay visible
        dx = [0.25 * (j / max(len(errs) - 1, 1) - 0.5) for j in range(len(errs))]
        ax.scatter([i + d for d in dx], errs, color="tab:blue", s=22, zorder=3,
                   label="paper's rule" if i == 0 else None)
        ax.scatter([i + 0.35 + d / 3 for d in dx], sorted(maj), color="tab:orange", s=12,
                   marker="s", zorder=3, label="majority vote" if i == 0 else None)
        ax.text(i + 0.15, max(errs) + 1.5,
                f"{sum(e <= 100 * bar for e in errs)} of {len(errs)} at or under the bar",
                ha="center", fontsize=8)
    ax.axhline(100 * bar, color="tab:red", ls="--", lw=1, label=f"bar ({100 * bar:.0f}%)")
    ax.set_xticks(range(len(values)), [f"{key} = {v:g}" for v in values])
    ax.set_ylabel("test clustering error (%)")
    ax.set_ylim(0, 100 * max(r["paper_error"] for r in rows) + 6)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


if __name__ == "__main__":
    main()
