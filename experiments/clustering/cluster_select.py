"""Label-free scores of finished clustering runs against their clustering error.

    .venv/bin/python experiments/clustering/cluster_select.py RUN [RUN ...]

A question for the 16-cluster preset (experiments/clustering/README.md): its error depends on the start (the
seed), so could a user train a few starts and keep one, without labels? For each run (its last
checkpoint, verified as on resume) this computes, on the run's validation images and without
their labels:

* ``mi``: the mutual information between image and cluster, H(mean q) - mean H(q), in nats (the
  quantity IMSAT and IIC maximise; high when clusters are both used and confident);
* ``warp``: how often an image keeps its cluster under a random warp of the kind the consistency
  term uses (mean over two draws);
* ``knn``: how often an image's 10 nearest neighbours in pixel space share its cluster;
* ``recon``: the mean squared reconstruction error.

and prints them beside the paper's-rule error from the run's eval.json (``aae evaluate --cluster``),
with each score's Spearman rank correlation with that error across the runs (scipy).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.neighbors import NearestNeighbors

from aae import checkpoint as ckpt
from aae import data as data_mod
from aae.model import random_warp
from aae.runs import build_model, load_config, load_weights

SCORES = ("mi", "warp", "knn", "recon")


def entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(-1)


def scores(run: Path, knn_cache: dict) -> dict:
    cfg = load_config(run)
    d = data_mod.from_config(cfg.data)
    if d.val_x is None:
        sys.exit(f"{run}: needs a run with a validation split (data.validation)")
    last = sorted((run / "checkpoints").glob("epoch_*.json"))[-1]
    tensors, meta = ckpt.load(last)
    model = build_model(cfg, tuple(meta["image_shape"]))
    load_weights(model, {k: v for k, v in tensors.items() if k.startswith("model.")}, str(last))
    model.eval()
    x = d.val_x
    with torch.no_grad():
        codes = model.encode_all(x)
        p = torch.softmax(codes["y_logits"].double(), 1).numpy()
        hard = p.argmax(1)
        g = torch.Generator().manual_seed(0)
        agree = []
        for _ in range(2):
            torch.manual_seed(int(torch.randint(1 << 30, (1,), generator=g)))
            warped = random_warp(x, cfg.model.warp_shift, cfg.model.warp_degrees, cfg.model.warp_scale)
            agree.append((model.predict(warped).numpy() == hard).mean())
        rec = torch.cat([model.decode(model.encode(x[i:i + 2000])).reshape(len(x[i:i + 2000]), -1)
                         for i in range(0, len(x), 2000)])
        recon = float(((rec - x.reshape(len(x), -1)) ** 2).mean())
    key = (cfg.data.dataset, len(x))
    if key not in knn_cache:  # the neighbours depend on the images alone: once per split
        flat = x.reshape(len(x), -1).numpy()
        knn_cache[key] = NearestNeighbors(n_neighbors=11).fit(flat).kneighbors(flat)[1][:, 1:]
    knn = (hard[knn_cache[key]] == hard[:, None]).mean()
    ev = json.loads((run / "eval.json").read_text())["cluster"] if (run / "eval.json").exists() \
        else {}
    return {"run": run.name, "epoch": meta.get("epoch"), "error": ev.get("paper_error"),
            "majority": ev.get("majority_error"),
            "mi": float(entropy(p.mean(0)) - entropy(p).mean()), "warp": float(np.mean(agree)),
            "knn": float(knn), "recon": recon}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    a = ap.parse_args()
    cache: dict = {}
    rows = []
    for run in a.runs:
        r = scores(run, cache)
        rows.append(r)
        err = "-" if r["error"] is None else f"{100 * r['error']:.2f}%"
        print(f"{r['run']:>10} epoch {r['epoch']}: paper's rule {err}  "
              + "  ".join(f"{k} {r[k]:.4f}" for k in SCORES), flush=True)
    rated = [r for r in rows if r["error"] is not None]
    if len(rated) >= 3:
        for k in SCORES:
            rho = spearmanr([r[k] for r in rated], [r["error"] for r in rated]).statistic
            print(f"Spearman rank correlation of {k} with the error over {len(rated)} runs: "
                  f"{rho:+.2f}")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
