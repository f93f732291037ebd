"""Train the paper's figure 2-4 presets and record each prior's fit before and after training.

    .venv/bin/python experiments/paper-figures/figures.py \\
        --limit 30000 --out runs/figures

For every preset: MMD^2 between the test codes and prior samples for the untrained model (the
epoch-0 checkpoint) and the trained one, and, with labels, the share of each digit's test codes on
its own component or segment. Each finished preset is appended to OUT/results.jsonl at once and
skipped when the script runs again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/results.py
from results import finished, record  # noqa: E402

from aae import checkpoint as ckpt
from aae import data as data_mod
from aae import presets
from aae.config import resolve
from aae.metrics import latent_fit
from aae.runs import build_model, load_weights
from aae.training import Trainer

PRESETS = ["fig2-gaussian", "fig2-mixture", "fig2-swissroll", "fig3-mixture", "fig3-swissroll",
           "fig4-mixture", "fig4-swissroll"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/figures")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--presets", nargs="+", default=PRESETS)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    done = finished(results, "preset")
    for name in a.presets:
        if name in done:
            continue
        cfg = resolve(presets.get(name).overrides, None, [], {"data": {"limit": a.limit}})
        t0 = time.time()
        run = out / name
        t = Trainer(cfg, run, force=True, quiet=True)
        t.fit()
        seconds = time.time() - t0
        after = json.loads((run / "latent.json").read_text())
        tensors, _ = ckpt.load(run / "checkpoints" / "epoch_0000.json")
        untrained = build_model(cfg, t.data.image_shape)
        load_weights(untrained, tensors, "epoch 0")
        test = data_mod.from_config(cfg.data).test_x
        before = latent_fit(untrained.encode_all(test)["z"], untrained.regularizers[0].prior)
        row = {"preset": name, "limit": a.limit, "epochs": cfg.train.epochs,
               "mmd2_before": before["mmd2"], "mmd2_after": after["mmd2"],
               "assignment": after.get("assignment"), "seconds": round(seconds)}
        record(results, row)


if __name__ == "__main__":
    main()
