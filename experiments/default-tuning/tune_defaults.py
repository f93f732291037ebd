"""Compare optimizer recipes for the unsupervised MNIST AAE: reconstruction vs prior fit.

    .venv/bin/python experiments/default-tuning/tune_defaults.py --out runs/tune

Each recipe trains the paper-sized model (d = 8, N(0, I)) on the first LIMIT training images for
EPOCHS epochs and records the test reconstruction MSE, the prior fit of the test codes (MMD^2, the
worst |mean| and std per dimension, the largest KS statistic) and the final discriminator accuracy.
Finished recipes are appended to OUT/results.jsonl at once and skipped when the script runs again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/results.py
import torch
from results import finished, record  # noqa: E402

from aae.config import resolve
from aae.training import Trainer

RECIPES = {
    # learning rates of the three phases (reconstruction / discriminator / encoder as generator),
    # all stepped down x0.1 for the last quarter of the run except where the name says otherwise
    "adam 1e-3 / 1e-4 / 1e-3, no decay": ["optim.disc.lr=1e-4", "optim.gen.lr=1e-3"],
    "adam 1e-3 / 1e-3 / 1e-3, no decay": ["optim.disc.lr=1e-3", "optim.gen.lr=1e-3"],
    "adam 1e-3 / 1e-4 / 5e-4, no decay": ["optim.disc.lr=1e-4", "optim.gen.lr=5e-4"],
    "adam 1e-3 / 1e-4 / 1e-4, no decay": ["optim.disc.lr=1e-4", "optim.gen.lr=1e-4"],
    # the SGD recipe often cited for the paper (appendix A, unverified): momentum 0.9 / 0.1
    "sgd 0.01 / 0.1 / 0.1, momentum 0.9 / 0.1 / 0.1, no decay": [
        "optim.recon.name=sgd", "optim.recon.lr=0.01", "optim.recon.momentum=0.9",
        "optim.disc.name=sgd", "optim.disc.lr=0.1", "optim.disc.momentum=0.1",
        "optim.gen.name=sgd", "optim.gen.lr=0.1", "optim.gen.momentum=0.1"],
    "default: adam 1e-3 / 1e-4 / 5e-4, x0.1 after 75%": [],
}
NO_DECAY = ["optim.recon.milestones=[]", "optim.disc.milestones=[]", "optim.gen.milestones=[]"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/tune")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--limit", type=int, default=30000)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    done = finished(results, "recipe")
    for i, (name, sets) in enumerate(RECIPES.items()):
        if name in done:
            continue
        extra = NO_DECAY if "no decay" in name else []
        cfg = resolve(None, None, ["optim.recon.lr=1e-3", *sets, *extra, "train.tsne_points=0"],
                      {"train": {"epochs": a.epochs, "sample_epochs": [a.epochs]},
                       "data": {"limit": a.limit}})
        t0 = time.time()
        t = Trainer(cfg, out / f"recipe{i}", force=True, quiet=True)
        t.fit()
        fit = json.loads((out / f"recipe{i}" / "latent.json").read_text())
        with torch.no_grad():
            x = t.data.test_x
            rec = float(t.model.recon_loss(t.model.decode_logits(t.model.encode_all(x)), x, "mse"))
        last = json.loads((out / f"recipe{i}" / "metrics.jsonl").read_text().splitlines()[-1])
        row = {"recipe": name, "sets": sets, "epochs": a.epochs, "limit": a.limit,
               "test_mse": rec, "mmd2": fit["mmd2"], "max_abs_mean": max(map(abs, fit["mean"])),
               "std_min": min(fit["std"]), "std_max": max(fit["std"]), "max_ks": max(fit["ks"]),
               "disc_acc": last["disc_acc"], "seconds": round(time.time() - t0, 1),
               "run": str(out / f"recipe{i}")}
        record(results, row)
    print("| recipe | test MSE | MMD^2 | max abs mean | std range | max KS | D acc |")
    print("|---|---|---|---|---|---|---|")
    for ln in results.read_text().splitlines():
        r = json.loads(ln)
        print(f"| {r['recipe']} | {r['test_mse']:.4f} | {r['mmd2']:.4f} | {r['max_abs_mean']:.2f} | "
              f"{r['std_min']:.2f}-{r['std_max']:.2f} | {r['max_ks']:.3f} | {r['disc_acc']:.2f} |")


if __name__ == "__main__":
    main()
