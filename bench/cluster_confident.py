"""Per cluster of a clustering run: its majority label and the labels of its most confident
held-out images, the ones the paper's rule names the cluster from.

    AAE_DATA_DIR=../shared/data .venv/bin/python bench/cluster_confident.py RUN [--top 10]

Uses the run's latest checkpoint and its held-out split (the last ``data.validation`` training
images), ranks by the log-odds of q(y = k|x) as ``aae evaluate --cluster`` does.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from aae import checkpoint as ckpt
from aae import data as data_mod
from aae.clustering import log_odds
from aae.runs import build_model, load_config, load_weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--top", type=int, default=10)
    a = ap.parse_args()
    cfg = load_config(a.run)
    d = data_mod.load(cfg.data.dataset, os.environ.get("AAE_DATA_DIR"))
    model = build_model(cfg, d.image_shape)
    tensors, meta = ckpt.latest(a.run / "checkpoints")
    load_weights(model, tensors, str(a.run))
    n = cfg.data.validation or 10000
    xv, yv = d.train_x[-n:], d.train_y[-n:].numpy()
    odds = log_odds(model.encode_all(xv)["y_logits"].numpy())
    assigned = odds.argmax(1)
    print(f"{a.run}, epoch {meta.get('epoch')}, {n} held-out images")
    for k in range(odds.shape[1]):
        members = yv[assigned == k]
        majority = np.bincount(members, minlength=10).argmax() if len(members) else -1
        top = yv[np.argsort(-odds[:, k])[:a.top]]
        print(f"cluster {k:2d}: {len(members):5d} members, majority {majority}, "
              f"most confident: {' '.join(map(str, top))}")


if __name__ == "__main__":
    sys.exit(main())
