"""Watch an unsupervised clustering AAE learn: cluster use, sharpness and errors every 200 steps.

    .venv/bin/python experiments/clustering/cluster_diag.py OUT.jsonl \
        [--clusters 16] [--steps 1400] [--set model.y_balance=1 ...]

Starts from the cluster-K preset with any ``--set`` overrides, trains on the first 50 000 MNIST
training images with one thread, and every 200 steps writes one JSON line: reconstruction loss,
the paper-rule and majority-vote errors (mapping chosen on 3 000 held-out training images, scored
on 3 000 test images), NMI, how many clusters the test images use, the mean largest q(y|x), the
categorical discriminator's mean output on prior samples and on codes, and the cluster sizes.
This is how the clustering defaults were chosen (experiments/clustering/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from aae import data as data_mod
from aae import presets
from aae.clustering import cluster_scores, log_odds
from aae.config import resolve
from aae.runs import build_model
from aae.step import Step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--clusters", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1400)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args()
    torch.set_num_threads(1)
    cfg = resolve(presets.get(f"cluster-{a.clusters}").overrides, None, a.set)
    torch.manual_seed(cfg.train.seed)
    d = data_mod.load("mnist", os.environ.get("AAE_DATA_DIR"))
    x = d.train_x[:50000]
    xv, yv = d.train_x[50000:53000], d.train_y[50000:53000].numpy()
    xt, yt = d.test_x[:3000], d.test_y[:3000].numpy()
    model = build_model(cfg, d.image_shape)
    step_fn = Step.from_config(model, cfg)  # the run's step: every option of the config
    order_gen = torch.Generator().manual_seed(0)
    check_gen = torch.Generator().manual_seed(9)
    b, k, step, acc, t0 = cfg.train.batch_size, a.clusters, 0, [], time.time()
    with open(a.out, "w") as out:
        while step < a.steps:
            perm = torch.randperm(len(x), generator=order_gen)
            for i in range(0, len(x) - b + 1, b):
                s, _ = step_fn(x[perm[i:i + b]])
                acc.append(s)
                step += 1
                if step % 200 == 0:
                    with torch.no_grad():
                        # log-odds for the rules: q rounds to 1.0 (clustering.paper_rule_mapping)
                        lv, lt = [model.encode_all(v)["y_logits"] for v in (xv, xt)]
                        pt = torch.softmax(lt, 1).numpy()
                        ry = model.regularizers[1]
                        d_prior = torch.sigmoid(ry(ry.prior.sample(3000, generator=check_gen))).mean()
                        d_code = torch.sigmoid(ry(torch.from_numpy(pt))).mean()
                    sc = cluster_scores(log_odds(lv.numpy()), yv, log_odds(lt.numpy()), yt)
                    sizes = np.bincount(pt.argmax(1), minlength=k)
                    line = {"step": step, "seconds": round(time.time() - t0),
                            "recon": round(float(torch.stack(acc)[:, 0].mean()), 4),
                            "paper_error": round(sc["paper_error"], 3),
                            "majority_error": round(sc["majority_error"], 3),
                            "nmi": round(sc["nmi"], 3), "clusters_used": int((sizes > 0).sum()),
                            "max_q_y": round(float(pt.max(1).mean()), 3),
                            "d_y_prior": round(float(d_prior), 3), "d_y_codes": round(float(d_code), 3),
                            "sizes": sorted(sizes.tolist(), reverse=True)}
                    acc = []
                    print(json.dumps(line), flush=True)
                    out.write(json.dumps(line) + "\n")
                    out.flush()
                if step >= a.steps:
                    break


if __name__ == "__main__":
    sys.exit(main())
