"""Per cluster of a clustering run: its majority label, the labels of its most confident
held-out images (the ones the paper's rule names the cluster from), and how many held-out images
have q(y = k|x) rounded to exactly 1.0 in float32.

    .venv/bin/python experiments/clustering/cluster_confident.py RUN [--top 10]

Uses the run's newest checkpoint and its validation split (``data.validation``), ranks by the
log-odds of q(y = k|x) as ``aae evaluate --cluster`` does.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

from aae import data as data_mod
from aae.clustering import log_odds
from aae.runs import load_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--top", type=int, default=10)
    a = ap.parse_args()
    cfg, model, meta = load_run(a.run)
    d = data_mod.from_config(cfg.data, os.environ.get("AAE_DATA_DIR"))
    if d.val_x is None or d.val_y is None:
        sys.exit(f"{a.run}: the run has no labelled validation split (data.validation)")
    logits = model.encode_all(d.val_x)["y_logits"]
    ties = (torch.softmax(logits, 1) == 1.0).sum(0).tolist()
    odds = log_odds(logits.numpy())
    yv, assigned = d.val_y.numpy(), odds.argmax(1)
    print(f"{a.run}, epoch {meta.get('epoch')}, {len(yv)} held-out images")
    for k in range(odds.shape[1]):
        members = yv[assigned == k]
        majority = np.bincount(members).argmax() if len(members) else -1
        top = yv[np.argsort(-odds[:, k])[:a.top]]
        print(f"cluster {k:2d}: {len(members):5d} members, majority {majority}, "
              f"q = 1.0 for {ties[k]:4d}, most confident: {' '.join(map(str, top))}")


if __name__ == "__main__":
    sys.exit(main())
