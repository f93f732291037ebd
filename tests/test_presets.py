"""Every preset listed by ``aae presets`` trains for one epoch on a slice of its data."""

import json

import numpy as np
import pytest

from aae.config import merge, resolve
from aae.presets import PRESETS
from aae.training import Trainer

from conftest import SHARED_DATA, has_real_mnist


def _fake_svhn(folder):
    from scipy.io import savemat

    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(0)
    for name, n in (("train_32x32.mat", 1200), ("test_32x32.mat", 100)):
        savemat(folder / name, {"X": g.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                                "y": (np.arange(n) % 10 + 1).reshape(-1, 1)})


@pytest.mark.slow
@pytest.mark.skipif(not has_real_mnist(), reason="no real MNIST in ../shared/data")
@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_trains_one_epoch_on_a_subset(name, tmp_path):
    over = PRESETS[name].overrides
    cfg = resolve(over).to_dict()
    data_dir = str(SHARED_DATA)
    if cfg["data"]["dataset"] == "svhn":  # not downloadable here: a synthetic file, same format
        _fake_svhn(tmp_path / "svhn")
        data_dir = str(tmp_path)
    small = {"data": {"limit": 300, "data_dir": data_dir,
                      "validation": min(cfg["data"]["validation"], 200)},
             "train": {"epochs": 1, "sample_epochs": [0, 1], "tsne_points": 0, "device": "cpu"}}
    if cfg["data"]["labelled"] > 0:
        small["data"]["labelled"] = min(cfg["data"]["labelled"], 60)
    cfg = resolve(merge(cfg, small))
    line = Trainer(cfg, tmp_path / "run", quiet=True).fit()
    assert line["epoch"] == 1 and np.isfinite(line["loss_recon"])
    assert (tmp_path / "run" / "report.html").is_file()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["epoch"] == 1
