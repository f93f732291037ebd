"""Real data: one epoch on 2 000 MNIST training images from ../shared/data (skipped without it)."""

import json

import pytest

from aae.config import resolve
from aae.training import Trainer

from conftest import SHARED_DATA, has_real_mnist

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not has_real_mnist(), reason="no real MNIST in ../shared/data")]


def test_one_epoch_on_real_mnist(tmp_path):
    cfg = resolve(None, None, [], {
        "data": {"dataset": "mnist", "data_dir": str(SHARED_DATA), "limit": 2000},
        "train": {"epochs": 1, "tsne_points": 500, "sample_epochs": [0, 1], "device": "cpu"}})
    t = Trainer(cfg, tmp_path / "run", quiet=True)
    before = t.model.encode_all(t.data.test_x[:500])["z"]
    t.fit()
    line = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert line["epoch"] == 1 and line["loss_recon"] < 0.1  # the mean image alone scores ~0.067
    fit = json.loads((tmp_path / "run" / "latent.json").read_text())
    assert fit["n"] == 10000 and len(fit["ks"]) == 8
    assert not before.equal(t.model.encode_all(t.data.test_x[:500])["z"])
    for f in ("samples/progress.png", "tsne.png", "latent.png"):
        assert (tmp_path / "run" / f).stat().st_size > 10_000
