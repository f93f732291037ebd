"""Clustering errors of a run's saved checkpoints and of their weight average.

    .venv/bin/python experiments/clustering/cluster_average.py \\
        RUN EPOCH [EPOCH ...]

For each listed epoch's checkpoint (RUN/checkpoints/epoch_NNNN, verified as on resume) and for
the plain average of their model weights (what an averaged or EMA copy of the weights would
evaluate): the paper's rule and the majority vote (mappings chosen on the run's validation split,
errors on the test split, as ``aae evaluate --cluster``) and NMI. A question for the 16-cluster
preset: is the rule's miss a matter of noisy final weights (experiments/clustering/README.md)?
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from aae import checkpoint as ckpt
from aae import data as data_mod
from aae.clustering import cluster_scores, log_odds
from aae.runs import build_model, check_images, load_config, load_weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("epochs", type=int, nargs="+")
    a = ap.parse_args()
    cfg = load_config(a.run)
    d = data_mod.from_config(cfg.data)
    if d.val_x is None or d.test_y is None:
        sys.exit(f"{a.run}: needs a run with a validation split (data.validation) and labels")
    loaded = []
    for e in a.epochs:
        path = a.run / "checkpoints" / f"epoch_{e:04d}.json"
        if not path.is_file():
            sys.exit(f"{path}: no such checkpoint")
        tensors, meta = ckpt.load(path)
        loaded.append((f"epoch {e}", {k: v for k, v in tensors.items() if k.startswith("model.")}))
    shape = tuple(meta["image_shape"])
    check_images(shape, d.image_shape, f"dataset {cfg.data.dataset}")
    if len(loaded) > 1:
        avg = {k: torch.stack([t[k].double() for _, t in loaded]).mean(0).to(v.dtype)
               if v.is_floating_point() else v for k, v in loaded[-1][1].items()}
        loaded.append(("average of " + ", ".join(str(e) for e in a.epochs), avg))
    for name, tensors in loaded:
        model = build_model(cfg, shape)
        load_weights(model, tensors, name)
        model.eval()
        val, test = (log_odds(model.encode_all(x)["y_logits"].numpy()) for x in (d.val_x, d.test_x))
        s = cluster_scores(val, d.val_y.numpy(), test, d.test_y.numpy())
        print(f"{name}: paper's rule {100 * s['paper_error']:.2f}%, majority vote "
              f"{100 * s['majority_error']:.2f}%, NMI {s['nmi']:.3f}")


if __name__ == "__main__":
    main()
