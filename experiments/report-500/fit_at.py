"""The test codes' fit to N(0, I) at the run's kept checkpoints (epochs 0, 50, 100, ... 500).

    AAE_DATA_DIR=... .venv/bin/python experiments/report-500/fit_at.py experiments/report-500/run

For each checkpoint of a whole epoch in RUN/checkpoints not yet in fit.jsonl beside this script:
the per-dimension mean and std of the 10 000 MNIST test codes, the largest KS statistic and
MMD^2 against prior samples (aae.metrics.latent_fit), appended to fit.jsonl at once.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from aae import checkpoint as ckpt
from aae import data as data_mod
from aae.metrics import latent_fit
from aae.runs import build_model, load_config, load_weights

OUT = Path(__file__).resolve().parent / "fit.jsonl"


def main(run: Path) -> None:
    cfg = load_config(run)
    data = data_mod.from_config(cfg.data)
    done = {json.loads(ln)["epoch"] for ln in OUT.read_text().splitlines()} if OUT.exists() else set()
    for path in sorted((run / "checkpoints").glob("epoch_*.json")):
        m = re.fullmatch(r"epoch_(\d{4})\.json", path.name)
        if not m or int(m.group(1)) in done:
            continue
        tensors, meta = ckpt.load(path)
        model = build_model(cfg, tuple(meta["image_shape"]))
        load_weights(model, tensors, str(path))
        codes = model.eval().encode_all(data.test_x)["z"]
        fit = latent_fit(codes, model.prior, seed=0)
        row = {"epoch": int(m.group(1)), "max_abs_mean": max(abs(v) for v in fit["mean"]),
               "std_min": min(fit["std"]), "std_max": max(fit["std"]),
               "max_ks": max(k for k in fit["ks"] if k is not None), "mmd2": fit["mmd2"]}
        with OUT.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(row)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
