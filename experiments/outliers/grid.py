"""The original report's open question: are grouped discriminators more robust to outliers?

Trains AAEs on MNIST with a fraction eps of the training images replaced by outliers, one cell per
(seed, outlier type, eps, arm), and measures each on the CLEAN test set. Cells are paired: for one
seed and outlier type, every arm and every eps starts from the same initialisation and the same
inlier images, and the outliers of a smaller eps are a subset of those of a larger one. Each
finished cell is appended to ``DIR/results.jsonl`` at once; a rerun skips finished cells and
resumes an interrupted one from its checkpoint. ``summarize`` turns the results into tables (mean
+- std over seeds, a bootstrap interval of each arm's paired difference from N = 1) and plots (each
metric against eps, one line per arm).

    python experiments/outliers/grid.py --grid screen --out experiments/outliers/screen

Uses the library's public modules only; see README.md beside it for the question and the answer.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aae import data as data_mod
from aae.config import Config, resolve
from aae.data import ImageData
from aae.errors import AAEError
from aae.fileio import append_line, atomic_write_bytes, atomic_write_text, read_jsonl
from aae.model import AAE
from aae.score import auroc, score_images

# ---------------------------------------------------------------------------------------------
# the contamination experiment

OUTLIER_TYPES = ("noise", "fashion", "near")  # far: uniform noise; out-of-dataset; near: digits 5-9


@dataclass(frozen=True)
class Grid:
    description: str
    seeds: tuple[int, ...]
    types: tuple[str, ...]
    eps: tuple[float, ...]
    arms: dict[str, dict[str, Any]]  # name -> model overrides
    n_train: int = 10000
    epochs: int = 10
    model: dict[str, Any] = field(default_factory=dict)
    n_eval: int = 5000  # test images and decoded samples for the sample metrics
    time_cpu: str = ""  # expected wall time on 2 CPU cores


_SCREEN_ARMS = {
    "N1": {},
    "N4-mean": {"disc_groups": 4, "disc_aggregate": "mean"},
    "N4-median": {"disc_groups": 4, "disc_aggregate": "median"},
    "N16-mean": {"disc_groups": 16, "disc_aggregate": "mean"},
    "N16-median": {"disc_groups": 16, "disc_aggregate": "median"},
}
_SMALL = {"code_dim": 8, "encoder_hidden": [512, 512], "decoder_hidden": [512, 512],
          "disc_hidden": [512, 512]}

GRIDS: dict[str, Grid] = {
    "screen": Grid(
        "the issue's screen: eps 0/5/20%, far (noise) and near (digits 5-9) outliers, N 1/4/16, "
        "mean vs median, 3 seeds; 10 000 training images, 20 epochs, 512-wide MLPs",
        (0, 1, 2), ("noise", "near"), (0.0, 0.05, 0.2), _SCREEN_ARMS, epochs=20, model=_SMALL,
        time_cpu="about 80 min (measured, sharing the cores)"),
    "full": Grid(
        "the whole protocol: every aggregate and control at eps 0/5/20%, all three outlier "
        "types, 5 seeds (same scale as the screen)",
        (0, 1, 2, 3, 4), ("noise", "fashion", "near"), (0.0, 0.05, 0.2), {
            **_SCREEN_ARMS,
            "N16-softmax": {"disc_groups": 16, "disc_aggregate": "softmax"},
            "N16-max": {"disc_groups": 16, "disc_aggregate": "max"},
            "N16-trimmed": {"disc_groups": 16, "disc_aggregate": "trimmed"},
            "N16-dropout": {"disc_groups": 16, "disc_aggregate": "dropout"},
            "N16-median-full": {"disc_groups": 16, "disc_aggregate": "median",
                                "disc_input": "full"},
            "N16-median-shared": {"disc_groups": 16, "disc_aggregate": "median",
                                  "disc_shared": True},
            "N16-median-shard": {"disc_groups": 16, "disc_aggregate": "median",
                                 "group_split": "shard", "disc_budget": "total"},
            "reject-20": {"reject_quantile": 0.2},
        }, epochs=20, model=_SMALL, time_cpu="about 8 h (est.)"),
    "followup": Grid(
        "what the screen shows to matter: is it the split or the smaller discriminators? N1 with "
        "discriminators as narrow as each of N16's (128), N16-median with full-size ones, one "
        "shared discriminator with a median over 16 groups (MoM-WGAN), likelihood rejection of "
        "the 20% least likely codes (Beggel et al.); eps 0 and 20%, 3 seeds (summarize with "
        "--include the screen for N1 and N16-median)",
        (0, 1, 2), ("noise", "near"), (0.0, 0.2), {
            "N1-small": {"disc_hidden": [128, 128]},
            "N16-median-each": {"disc_groups": 16, "disc_aggregate": "median",
                                "disc_budget": "each"},
            "N16-median-shared": {"disc_groups": 16, "disc_aggregate": "median",
                                  "disc_shared": True},
            "reject-20": {"reject_quantile": 0.2},
        }, epochs=20, model=_SMALL, time_cpu="about 40 min (est.)"),
    "test": Grid(  # for the test suite: tiny data, tiny model
        "a tiny grid for tests", (0,), ("noise", "near"), (0.0, 0.2),
        {"N1": {}, "N4-median": {"disc_groups": 4, "disc_aggregate": "median"}},
        n_train=100, epochs=1, n_eval=50,
        model={"code_dim": 2, "encoder_hidden": [16], "decoder_hidden": [16], "disc_hidden": [8]}),
}


class Pools:
    """The data every cell draws from: MNIST (and Fashion-MNIST when a grid needs it)."""

    def __init__(self, types: tuple[str, ...], data_dir: str | None):
        self.mnist = data_mod.load("mnist", data_dir)
        self.fashion = data_mod.load("fashion-mnist", data_dir) if "fashion" in types else None
        self.data_dir = data_dir

    def inliers(self, kind: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(train images, test images, test labels) of the inlier classes."""
        m = self.mnist
        if kind == "near":  # inliers are digits 0-4, outliers digits 5-9
            return (m.train_x[m.train_y < 5], m.test_x[m.test_y < 5], m.test_y[m.test_y < 5])
        return m.train_x, m.test_x, m.test_y

    def outliers(self, kind: str, n: int, g: torch.Generator) -> torch.Tensor:
        if kind == "noise":
            return torch.rand(n, *self.mnist.image_shape, generator=g)
        pool = self.fashion.train_x if kind == "fashion" else self.mnist.train_x[self.mnist.train_y >= 5]
        if n > len(pool):
            raise AAEError(f"outlier type {kind}: {n} outliers asked for, the pool has {len(pool)}")
        return pool[torch.randperm(len(pool), generator=g)[:n]]


def contaminate(pools: Pools, kind: str, eps: float, n: int, seed: int):
    """(training images, is_outlier) with round(eps * n) of n inlier images REPLACED by outliers.

    The inliers and the outlier draws depend only on (seed, kind): for a larger eps the outliers
    extend those of a smaller one, and every arm sees the same set."""
    g = torch.Generator().manual_seed(1000 * seed + OUTLIER_TYPES.index(kind))
    train, _, _ = pools.inliers(kind)
    if n > len(train):
        raise AAEError(f"grid n_train {n} exceeds the {len(train)} inlier images of type {kind}")
    x = train[torch.randperm(len(train), generator=g)[:n]].clone()
    k = round(eps * n)
    where = torch.randperm(n, generator=g)  # the first k positions are replaced
    outl = pools.outliers(kind, n // 2, g)[:k]  # a fixed draw: eps grows by extending it
    x[where[:k]] = outl
    is_out = torch.zeros(n, dtype=torch.bool)
    is_out[where[:k]] = True
    return x, is_out


def cell_id(seed: int, kind: str, eps: float, arm: str) -> str:
    return f"s{seed}-{kind}-eps{round(eps * 100):02d}-{arm}"


def cells(grid: Grid):
    """Every cell in run order: seed outermost, so a stopped grid holds whole seeds."""
    for seed in grid.seeds:
        for kind in grid.types:
            for eps in grid.eps:
                for arm in grid.arms:
                    yield seed, kind, eps, arm


def cell_config(grid: Grid, arm: str, seed: int) -> Config:
    return resolve({
        "data": {"dataset": "mnist", "download": False},
        "model": {**grid.model, **grid.arms[arm]},
        "train": {"epochs": grid.epochs, "seed": seed, "tsne_points": 0, "sample_epochs": [],
                  "checkpoint_every": max(grid.epochs, 1), "device": "cpu"},
    })


def read_results(path: Path) -> list[dict[str, Any]]:
    return read_jsonl(path, stop_at_bad=False)  # a cut line: that cell runs again


class Evaluator:
    """Metrics of one trained cell on the clean test set (see experiments/outliers/README.md)."""

    def __init__(self, pools: Pools, grid: Grid):
        from aae.classifier import get_classifier

        self.pools, self.grid = pools, grid
        self.clf, self.clf_info = get_classifier(pools.mnist)
        self._real: dict[str, torch.Tensor] = {}
        self._detector: dict[tuple[str, int], Any] = {}

    def real_features(self, kind: str) -> torch.Tensor:
        if kind not in self._real:
            _, test_x, _ = self.pools.inliers(kind)
            self._real[kind] = self.clf.features(test_x[:self.grid.n_eval])[0]
        return self._real[kind]

    def leakage(self, kind: str, samples: torch.Tensor, seed: int) -> float:
        """Share of decoded prior samples that look like the outlier type: for near outliers the
        MNIST classifier's verdict (a digit 5-9); for far ones a 1-nearest-neighbour classifier in
        pixel space between 2 000 clean training digits and 2 000 fresh outliers of the type."""
        if kind == "near":
            _, probs = self.clf.features(samples)
            return float((probs.argmax(1) >= 5).float().mean())
        key = (kind, seed)
        if key not in self._detector:
            from sklearn.neighbors import KNeighborsClassifier

            g = torch.Generator().manual_seed(10_000 + seed)
            train, _, _ = self.pools.inliers(kind)
            m = min(2000, len(train))
            clean = train[torch.randperm(len(train), generator=g)[:m]]
            out = self.pools.outliers(kind, m, g)
            x = torch.cat([clean, out]).flatten(1).numpy()
            y = np.r_[np.zeros(m), np.ones(m)]
            self._detector[key] = KNeighborsClassifier(n_neighbors=1).fit(x, y)
        return float(self._detector[key].predict(samples.flatten(1).numpy()).mean())

    @torch.no_grad()
    def __call__(self, model: AAE, kind: str, train_x: torch.Tensor, is_out: torch.Tensor,
                 seed: int) -> dict[str, Any]:
        from aae.classifier import frechet_distance
        from aae.metrics import kid, latent_fit, prdc

        model.eval()
        reg = model.regularizers[0]
        _, test_x, _ = self.pools.inliers(kind)
        test = test_x[:self.grid.n_eval]
        g = torch.Generator().manual_seed(seed)
        z = reg.prior.sample(len(test), generator=g)
        samples = model.decode(model.prior_codes(z, g))
        real = self.real_features(kind)
        fake = self.clf.features(samples)[0]
        k_mean, k_std = kid(real, fake, seed=seed)
        all_codes = model.encode_all(test_x)
        codes = all_codes[reg.code]
        rec = model.decode(all_codes)
        out: dict[str, Any] = {
            "fid": frechet_distance(real.double().numpy(), fake.double().numpy()),
            "kid": k_mean, "kid_std": k_std,
            **prdc(real, fake),
            "leakage": self.leakage(kind, samples, seed),
            "mmd2": latent_fit(codes, reg.prior, seed=seed)["mmd2"],
            "recon_error": float((rec - test_x).pow(2).mean()),
        }
        scores = score_images(model, train_x)
        out["auroc"] = auroc(scores, is_out.numpy())
        return out


def run_grid(name: str, out: Path, data_dir: str | None = None, max_cells: int = 0,
             quiet: bool = False, include: list[Path] | tuple[Path, ...] = ()
             ) -> list[dict[str, Any]]:
    """Run (or continue) grid ``name`` in ``out``; returns every result so far. The summary also
    covers the results of the grids in ``include`` (cells of the same seeds are paired)."""
    from aae.training import Trainer

    if name not in GRIDS:
        raise AAEError(f"--grid {name!r}: expected one of {', '.join(GRIDS)}")
    grid = GRIDS[name]
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    done = {r["id"] for r in read_results(results_path)}
    todo = [c for c in cells(grid) if cell_id(c[0], c[1], c[2], c[3]) not in done]
    log = (lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    log(f"grid {name}: {len(done)} cells done, {len(todo)} to run -> {results_path}")
    def merged() -> list[dict[str, Any]]:
        own = read_results(results_path)
        ids = {r["id"] for r in own}
        extra = [r for d in include for r in read_results(Path(d) / "results.jsonl")
                 if r["id"] not in ids]
        return extra + own

    if not todo:
        results = merged()
        summarize(results, out)
        return results
    pools = Pools(grid.types, data_dir)
    evaluator = Evaluator(pools, grid)
    for count, (seed, kind, eps, arm) in enumerate(todo):
        if max_cells and count >= max_cells:
            break
        cid = cell_id(seed, kind, eps, arm)
        x, is_out = contaminate(pools, kind, eps, grid.n_train, seed)
        _, test_x, test_y = pools.inliers(kind)
        data = ImageData(f"mnist-{kind}-eps{eps:g}", x, None, test_x, test_y)
        cfg = cell_config(grid, arm, seed)
        run = out / "runs" / cid
        resume = (run / "checkpoints").is_dir() and any((run / "checkpoints").glob("*.json"))
        t0 = time.perf_counter()
        trainer = Trainer(cfg, run, data=data, resume=resume, force=not resume, quiet=True)
        last = trainer.fit()
        train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        metrics = evaluator(trainer.model, kind, x, is_out, seed)
        lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
        row = {
            "id": cid, "grid": name, "seed": seed, "type": kind, "eps": eps, "arm": arm,
            "model": {**grid.model, **grid.arms[arm]}, "n_train": grid.n_train,
            "epochs": grid.epochs, "metrics": metrics,
            "disc_acc": last.get("disc_acc"),
            "seconds_per_epoch": float(np.mean([ln["seconds"] for ln in lines])),
            "train_seconds": round(train_s, 1), "eval_seconds": round(time.perf_counter() - t1, 1),
            "parameters_disc": sum(p.numel() for p in trainer.model.discriminator_parameters()),
            "hardware": f"{platform.machine()}, {torch.get_num_threads()} threads",
            "torch": torch.__version__,
        }
        append_line(results_path, json.dumps(row))
        shutil.rmtree(run / "checkpoints", ignore_errors=True)  # the row holds what matters
        log(f"[{count + 1}/{len(todo)}] {cid}: FID {metrics['fid']:.2f}, KID {metrics['kid']:.4f}, "
            f"leak {metrics['leakage']:.3f}, MMD2 {metrics['mmd2']:.4f}, "
            f"{row['seconds_per_epoch']:.1f} s/epoch, eval {row['eval_seconds']} s")
    results = merged()
    summarize(results, out)
    return results


# ---------------------------------------------------------------------------------------------
# tables and plots

METRIC_ROWS = [  # (key in metrics, label, lower is better)
    ("fid", "FID (classifier features)", True),
    ("kid", "KID", True),
    ("precision", "precision (k=3)", False),
    ("recall", "recall (k=3)", False),
    ("density", "density (k=5)", False),
    ("coverage", "coverage (k=5)", False),
    ("leakage", "outlier leakage", True),
    ("mmd2", "latent MMD^2", True),
    ("recon_error", "clean recon. MSE", True),
    ("auroc.recon_error", "AUROC recon. error", False),
    ("auroc.neg_log_prior", "AUROC -log p(z)", False),
    ("auroc.disc_score", "AUROC disc. score", False),
]


def _get(metrics: dict[str, Any], key: str) -> float:
    v: Any = metrics
    for part in key.split("."):
        if not isinstance(v, dict) or part not in v:
            return math.nan
        v = v[part]
    return float(v)


def bootstrap_ci(diffs: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of paired differences."""
    if len(diffs) < 2:
        return math.nan, math.nan
    g = np.random.default_rng(seed)
    means = g.choice(diffs, size=(reps, len(diffs)), replace=True).mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


HEADLINE = ("fid", "coverage", "leakage", "mmd2", "recon_error")


def _cell(by: dict, kind: str, eps: float, arm: str, key: str) -> str:
    """mean +- std over seeds, and the bootstrap interval of the paired difference from N1."""
    seeds = sorted(s for (k, e, a, s) in by if k == kind and e == eps and a == arm)
    vals = np.array([_get(by[(kind, eps, arm, s)]["metrics"], key) for s in seeds])
    vals = vals[np.isfinite(vals)]
    if not len(vals):
        return "-"
    text = f"{vals.mean():.4g} +- {vals.std(ddof=1) if len(vals) > 1 else 0:.2g}"
    if arm != "N1":
        d = np.array([_get(by[(kind, eps, arm, s)]["metrics"], key)
                      - _get(by[(kind, eps, "N1", s)]["metrics"], key)
                      for s in seeds if (kind, eps, "N1", s) in by])
        lo, hi = bootstrap_ci(d[np.isfinite(d)])
        if np.isfinite(lo):
            text += f" [{lo:+.3g}, {hi:+.3g}]"
    return text


def headline(results: list[dict[str, Any]], kind: str, eps: float) -> str:
    """One markdown table: every arm's key metrics at one (outlier type, eps)."""
    by = {(r["type"], r["eps"], r["arm"], r["seed"]): r for r in results}
    arms = list(dict.fromkeys(r["arm"] for r in results))
    labels = {k: lab for k, lab, _ in METRIC_ROWS}
    n = len({r["seed"] for r in results if r["type"] == kind and r["eps"] == eps})
    rows = [f"{kind} outliers, eps = {eps:.0%} ({n} seeds; mean +- std, [95% bootstrap interval "
            "of the paired difference from N1])", "",
            "| arm | " + " | ".join(labels[k] for k in HEADLINE) + " |",
            "|---" * (len(HEADLINE) + 1) + "|"]
    for arm in arms:
        k_arm = sum(1 for (k, e, a, _) in by if a == arm and k == kind and e == eps)
        if k_arm:
            name = arm if k_arm == n else f"{arm} ({k_arm} of {n} seeds so far)"
            rows.append(f"| {name} | " + " | ".join(_cell(by, kind, eps, arm, k) for k in HEADLINE)
                        + " |")
    return "\n".join(rows)


def summarize(results: list[dict[str, Any]], out: Path) -> str:
    """Write ``summary.md`` (tables) and ``metrics_<type>.png`` (plots) into ``out``."""
    if not results:
        return ""
    arms = list(dict.fromkeys(r["arm"] for r in results))
    kinds = list(dict.fromkeys(r["type"] for r in results))
    by = {(r["type"], r["eps"], r["arm"], r["seed"]): r for r in results}
    lines = [f"# Contamination experiment: {len(results)} cells", "", "## Headline", ""]
    for kind in kinds:
        for e in sorted({r["eps"] for r in results if r["type"] == kind}):
            lines += [headline(results, kind, e), ""]
    for kind in kinds:
        eps_list = sorted({r["eps"] for r in results if r["type"] == kind})
        lines += [f"## Outliers: {kind}", ""]
        for key, label, lower in METRIC_ROWS:
            head = "| arm | " + " | ".join(f"eps {e:.0%}" for e in eps_list) + " |"
            rows = [f"### {label} ({'lower' if lower else 'higher'} is better)", "",
                    "mean +- std over seeds; [95% bootstrap interval of the paired difference "
                    "from N1]", "", head, "|---" * (len(eps_list) + 1) + "|"]
            any_value = False
            for arm in arms:
                cells_ = [_cell(by, kind, e, arm, key) for e in eps_list]
                any_value = any_value or any(c != "-" for c in cells_)
                rows.append(f"| {arm} | " + " | ".join(cells_) + " |")
            if any_value:
                lines += rows + [""]
        # the median over cells: robust to a cell slowed by other work on the machine
        sec = {a: np.median([r["seconds_per_epoch"] for r in results if r["arm"] == a]) for a in arms}
        lines += ["### seconds per epoch (median over cells)", "",
                  "| arm | s/epoch | discriminator parameters |", "|---|---|---|"]
        lines += [f"| {a} | {sec[a]:.2f} | "
                  f"{next(r['parameters_disc'] for r in results if r['arm'] == a)} |" for a in arms]
        lines.append("")
        atomic_write_bytes(out / f"metrics_{kind}.png", _plot(results, kind, arms))
    text = "\n".join(lines)
    atomic_write_text(out / "summary.md", text)
    return text


def _plot(results: list[dict[str, Any]], kind: str, arms: list[str]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [m for m in METRIC_ROWS if not m[0].startswith("auroc") or m[0] == "auroc.recon_error"]
    cols = 4
    rows_n = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4 * cols, 3.2 * rows_n), squeeze=False)
    for ax, (key, label, lower) in zip(axes.flat, keys):
        for arm in arms:
            pts = {}
            for r in results:
                if r["type"] == kind and r["arm"] == arm:
                    v = _get(r["metrics"], key)
                    if np.isfinite(v):
                        pts.setdefault(r["eps"], []).append(v)
            if not pts:
                continue
            e = sorted(pts)
            m = [np.mean(pts[x]) for x in e]
            s = [np.std(pts[x]) for x in e]
            style = "-" if "median" in arm else ("--" if "mean" in arm else ":")
            ax.errorbar([100 * x for x in e], m, yerr=s, label=arm, marker="o", ms=3,
                        linestyle=style, capsize=2)
        ax.set_title(f"{label} ({'lower' if lower else 'higher'} better)", fontsize=9)
        ax.set_xlabel("outliers in training data (%)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower right", fontsize=8, ncol=1)
    fig.suptitle(f"MNIST with {kind} outliers: clean-test metrics against contamination "
                 "(mean +- std over seeds)", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="the grouped-discriminator contamination experiment "
                                            "(resumable: results.jsonl, summary.md)")
    p.add_argument("--grid", default="screen", help="screen | followup | full | test")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--data-dir", metavar="DIR")
    p.add_argument("--max-cells", type=int, default=0, metavar="K",
                   help="stop after K new cells (0: run the whole grid)")
    p.add_argument("--include", action="append", default=[], metavar="DIR",
                   help="also summarize the results of another grid's folder (repeatable)")
    p.add_argument("--list", action="store_true", help="list the grids and exit")
    a = p.parse_args(argv)
    try:
        if a.list:
            for name, g in GRIDS.items():
                n = len(g.seeds) * len(g.types) * len(g.eps) * len(g.arms)
                print(f"{name:<10} {n} cells, {g.time_cpu}: {g.description}")
            return 0
        if a.max_cells < 0:
            raise AAEError(f"option --max-cells: expected an integer >= 0, got {a.max_cells}")
        for d in a.include:
            if not (Path(d) / "results.jsonl").is_file():
                raise AAEError(f"option --include {d}: no results.jsonl there")
        results = run_grid(a.grid, Path(a.out), a.data_dir, a.max_cells,
                           include=[Path(d) for d in a.include])
    except AAEError as e:
        print(f"grid.py: error: {e}", file=sys.stderr)
        return 2
    print(f"{len(results)} cells in {Path(a.out) / 'results.jsonl'}; tables in "
          f"{Path(a.out) / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
