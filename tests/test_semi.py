"""Supervised (style/content) and semi-supervised AAE, classification error, SVHN loading."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from aae.config import resolve
from aae.data import load
from aae.evaluate import classification_error
from aae.optim import build_optimizers
from aae.runs import build_model
from aae.training import Trainer

from conftest import assert_train_refuses, tiny_config, train_step, train_toy_cli


def semi_config(labelled=30, epochs=4, **train):
    d = tiny_config(epochs=epochs, **train).to_dict()
    d["model"].update(class_input="y", classes=3, code_dim=2)
    d["data"].update(labelled=labelled)
    return resolve(d)


def test_y_head_is_a_distribution_and_decoder_takes_it(tiny_data):
    model = build_model(semi_config(), tiny_data.image_shape)
    codes = model.encode(tiny_data.train_x[:7])
    assert set(codes) == {"z", "y", "y_logits"} and codes["y"].shape == (7, 3)
    torch.testing.assert_close(codes["y"].sum(1), torch.ones(7))
    assert model.decoder_inputs == ["y", "z"] and len(model.regularizers) == 2
    assert model.regularizers[1].code == "y" and model.decode(codes).shape == (7, 1, 8, 8)


def test_classification_phase_updates_only_the_encoder(tiny_data):
    cfg = resolve(semi_config().to_dict(), None, [
        *(f"optim.{ph}.name=sgd" for ph in ("recon", "disc", "gen")),
        *(f"optim.{ph}.lr=1e-30" for ph in ("recon", "disc", "gen")),
        *(f"optim.{ph}.momentum=0" for ph in ("recon", "disc", "gen"))])
    torch.manual_seed(0)
    model = build_model(cfg, tiny_data.image_shape)
    opts = build_optimizers(model, cfg.optim)
    assert {id(p) for g in opts["classify"].param_groups for p in g["params"]} == {
        id(p) for p in model.encoder.parameters()}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = tiny_data.train_x[:16], tiny_data.train_y[:16]
    scalars, _ = train_step(model, opts, x, torch.Generator().manual_seed(0),
                            classify=(x, y))
    after = model.state_dict()
    assert scalars.shape == (6,) and scalars[5] > 0
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("encoder.") for k in changed)


def test_semi_supervised_training_learns_to_classify(split_data, tmp_path):
    t = Trainer(semi_config(labelled=30, epochs=6), tmp_path / "r", data=split_data, quiet=True)
    labels = t.t.labels
    assert (labels >= 0).sum() == 30 and torch.bincount(labels[labels >= 0]).tolist() == [10] * 3
    t.fit()
    lines = [json.loads(ln) for ln in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert all("val_error" in ln and "test_error" in ln and "loss_classify" in ln for ln in lines)
    assert lines[-1]["test_error"] < 0.2
    assert lines[-1]["loss_classify"] < lines[0]["loss_classify"]
    best = json.loads((tmp_path / "r" / "best" / "best.json").read_text())
    assert best["val_error"] == min(ln["val_error"] for ln in lines)
    # the same seed picks the same labelled examples
    again = Trainer(semi_config(labelled=30), tmp_path / "r2", data=split_data, quiet=True)
    assert torch.equal(again.t.labels, labels)


def test_classification_error_on_known_answers():
    pred = torch.tensor([0, 1, 2, 2])
    assert classification_error(pred, torch.tensor([0, 1, 2, 0])) == 0.25
    assert classification_error(pred, pred) == 0.0
    with pytest.raises(ValueError):
        classification_error(pred, torch.tensor([0]))


@pytest.mark.slow
def test_evaluate_classify_matches_the_model(tmp_path):
    run = train_toy_cli(tmp_path, "--labelled", "30", "--set", "model.class_input=y",
                        "--set", "model.classes=3", "--set", "data.validation=40")
    r = subprocess.run([sys.executable, "-m", "aae", "evaluate", str(run), "--classify"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    result = json.loads((run / "eval.json").read_text())["classify"]
    from aae.runs import load_run

    cfg, model, _ = load_run(run)
    data = load(str(tmp_path / "toy.npz"), validation=40)
    expected = float((model.predict(data.test_x) != data.test_y).float().mean())
    assert result["last"]["test_error"] == pytest.approx(expected)
    assert "val_error" in result["best"] and "test error" in r.stdout
    r = subprocess.run([sys.executable, "-m", "aae", "encode", str(run), "--out",
                        str(tmp_path / "codes.npz")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "codes.npz") as f:  # q(y|x) exported beside z
        assert f["z"].shape == (len(data.test_x), 8) and f["y"].shape == (len(data.test_x), 3)
        np.testing.assert_allclose(f["y"].sum(1), 1, rtol=1e-5)
    conf = np.array(result["last"]["confusion"])
    assert conf.sum() == len(data.test_y) and 1 - np.trace(conf) / conf.sum() == pytest.approx(expected)


def test_supervised_style_grid(tiny_data, tmp_path):
    d = tiny_config(epochs=1).to_dict()
    d["model"].update(class_input="label", classes=3)
    t = Trainer(resolve(d), tmp_path / "r", data=tiny_data, quiet=True)
    t.fit()
    from PIL import Image

    with Image.open(tmp_path / "r" / "style.png") as im:  # 10 rows of z, 3 class columns
        w, h = im.size
    assert h > 3 * w  # a tall grid: 10 rows, 3 columns
    z = torch.zeros(3, 2)
    imgs = t.model.decode(t.model.prior_codes(z, classes=torch.arange(3)))
    assert not torch.allclose(imgs[0], imgs[1])  # the label changes the image for a fixed z


@pytest.mark.slow
@pytest.mark.parametrize("args,needle", [
    (["--labelled", "100000", "--set", "model.class_input=y"], "option data.labelled"),
    (["--set", "model.class_input=label", "--labelled", "50"], "option data.labelled"),
    (["--set", "model.class_input=y", "--set", "model.classes=3"], "option model.classes"),
    (["--set", "model.class_input=maybe"], "option model.class_input"),
])
def test_bad_semi_options_are_one_line_errors(tmp_path, args, needle):
    assert_train_refuses(tmp_path, args, needle)


def test_unlabelled_folder_with_a_y_head_is_a_one_line_error(tmp_path):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    for i in range(20):
        Image.fromarray(np.full((8, 8), i * 10, np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    r = subprocess.run([sys.executable, "-m", "aae", "train", "--dataset", str(tmp_path / "imgs"),
                        "--epochs", "1", "--batch-size", "4", "--labelled", "5", "--out",
                        str(tmp_path / "run"), "--set", "model.class_input=y"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "no labels" in r.stderr and not (tmp_path / "run").exists()


def test_svhn_loader_reads_the_mat_format(tmp_path):
    from scipy.io import savemat

    folder = tmp_path / "svhn"
    folder.mkdir()
    g = np.random.default_rng(0)
    for name, n in (("train_32x32.mat", 12), ("test_32x32.mat", 5)):
        savemat(folder / name, {"X": g.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                                "y": (np.arange(n) % 10 + 1).reshape(-1, 1)})
    data = load("svhn", tmp_path)
    assert data.train_x.shape == (12, 3, 32, 32) and data.test_x.shape == (5, 3, 32, 32)
    assert data.train_y.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]  # label 10 is the digit 0
    assert 0 <= data.train_x.min() and data.train_x.max() <= 1
    savemat(folder / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8),
                                        "y": np.array([[0], [11]])})
    from aae.errors import AAEError

    with pytest.raises(AAEError, match="test_32x32.mat: labels should be 1..10"):
        load("svhn", tmp_path)
    (folder / "test_32x32.mat").write_bytes(b"not a mat file")
    with pytest.raises(AAEError, match="test_32x32.mat: not a readable MATLAB file"):
        load("svhn", tmp_path)
