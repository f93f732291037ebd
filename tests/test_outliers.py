"""Outlier scoring (aae score), the contamination experiment's bookkeeping
(experiments/outliers/grid.py), and its metrics."""

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aae.metrics import kid, prdc
from aae.training import Trainer

from conftest import make_images, tiny_config, toy_data, write_idx_set

GRID_SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "outliers" / "grid.py"
_spec = importlib.util.spec_from_file_location("outlier_grid", GRID_SCRIPT)
grid = importlib.util.module_from_spec(_spec)
sys.modules["outlier_grid"] = grid  # its dataclasses look their module up
_spec.loader.exec_module(grid)


def _grid(*args, **kw):
    return subprocess.run([sys.executable, str(GRID_SCRIPT), *args], capture_output=True,
                          text=True, timeout=300, **kw)


def _aae(*args, **kw):
    return subprocess.run([sys.executable, "-m", "aae", *args], capture_output=True, text=True,
                          timeout=300, **kw)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("score") / "run"
    Trainer(tiny_config(epochs=8), run, data=toy_data(480), quiet=True).fit()
    return run


def test_score_ranks_planted_noise_above_real_images(toy_run, tmp_path):
    real, _ = make_images(60, seed=5)
    noise = np.random.default_rng(0).uniform(0, 1, size=(20, 1, 8, 8)).astype(np.float32)
    x = np.concatenate([real, noise])
    is_out = np.r_[np.zeros(60, int), np.ones(20, int)]
    np.savez(tmp_path / "mixed.npz", x=x, is_outlier=is_out)
    out = tmp_path / "scores.csv"
    r = _aae("score", str(toy_run), "--input", str(tmp_path / "mixed.npz"), "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 80 and set(rows[0]) == {"image", "recon_error", "neg_log_prior",
                                                 "disc_score", "is_outlier"}
    err = np.array([float(row["recon_error"]) for row in rows])
    assert err[60:].min() > np.median(err[:60])  # every noise image above the typical digit
    auc = {ln.split()[1].rstrip(":"): float(ln.split()[-1])
           for ln in r.stdout.splitlines() if ln.startswith("AUROC")}
    assert auc["recon_error"] > 0.95


def test_score_reads_an_image_folder_with_an_outliers_subfolder(toy_run, tmp_path):
    from PIL import Image

    real, _ = make_images(6, seed=7)
    for sub, imgs in (("digits", real), ("outliers", np.random.default_rng(1).uniform(0, 1, (3, 1, 8, 8)))):
        (tmp_path / "in" / sub).mkdir(parents=True)
        for i, im in enumerate(imgs):
            Image.fromarray((im[0] * 255).astype(np.uint8)).save(tmp_path / "in" / sub / f"{i}.png")
    out = tmp_path / "s.csv"
    r = _aae("score", str(toy_run), "--input", str(tmp_path / "in"), "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(out.open()))
    assert [row["is_outlier"] for row in rows] == ["0"] * 6 + ["1"] * 3
    assert rows[0]["image"] == "digits/0.png" and "AUROC recon_error" in r.stdout


@pytest.mark.parametrize("make,args,needle", [
    (lambda p: np.save(p / "a.npy", np.zeros((4, 28, 28), np.float32)), ["a.npy"], "images are"),
    (lambda p: np.save(p / "a.npy", np.zeros((4, 8, 8), np.float32)), ["a.npy", "--labels", "l.txt"],
     "option --labels"),
    (lambda p: (p / "a.txt").write_text("x"), ["a.txt"], "option --input"),
])
def test_score_bad_input_is_one_line(toy_run, tmp_path, make, args, needle):
    make(tmp_path)
    (tmp_path / "l.txt").write_text("0\n1\n")
    out = tmp_path / "s.csv"
    cmd = ["score", str(toy_run), "--input", str(tmp_path / args[0]), "--out", str(out), *[
        str(tmp_path / a) if a.endswith(".txt") and i else a for i, a in enumerate(args[1:], 1)]]
    r = _aae(*cmd)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr
    assert not out.exists()


@pytest.mark.slow
def test_experiment_resumes_without_redoing_cells(tmp_path):
    data = write_idx_set(tmp_path / "mnist", n_train=400, n_test=60)
    out = tmp_path / "ex"
    env = {"AAE_DATA_DIR": str(tmp_path)}
    import os

    env = {**os.environ, **env}
    args = ["--grid", "test", "--out", str(out), "--data-dir", str(data)]
    r = _grid(*args, "--max-cells", "3", env=env)
    assert r.returncode == 0, r.stderr
    first = (out / "results.jsonl").read_text().splitlines()
    assert len(first) == 3
    # a crash while appending leaves a cut line: that cell runs again, nothing else does
    with open(out / "results.jsonl", "a") as f:
        f.write('{"id": "s0-noise-eps20')
    r = _grid(*args, env=env)
    assert r.returncode == 0, r.stderr
    lines = (out / "results.jsonl").read_text().splitlines()
    assert lines[:3] == first  # finished cells untouched, not recomputed
    rows = [json.loads(ln) for ln in lines if ln.endswith("}")]
    ids = [r["id"] for r in rows]
    expected = [grid.cell_id(*c) for c in grid.cells(grid.GRIDS["test"])]
    assert sorted(ids) == sorted(expected) and len(set(ids)) == len(ids)
    assert f"{len(expected)} cells done, 0 to run" in _grid(*args, env=env).stderr
    summary = (out / "summary.md").read_text()
    assert "N4-median" in summary and "AUROC recon. error" in summary
    assert (out / "metrics_noise.png").stat().st_size > 0
    # a finished grid summarized with another one: cells counted once, ids unique
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.jsonl").write_text("\n".join(lines[:2]) + "\n")
    r = _grid("--grid", "test", "--out", str(out), "--include", str(other), env=env)
    assert r.returncode == 0 and f"{len(expected)} cells" in r.stdout
    assert f"{len(expected)} cells" in (out / "summary.md").read_text()
    r = _grid("--grid", "test", "--out", str(out), "--include", str(tmp_path / "nowhere"),
              env=env)
    assert r.returncode == 2 and "option --include" in r.stderr
    auc = [r["metrics"]["auroc"] for r in rows if r["eps"] > 0]
    assert auc and all(0 <= v <= 1 for a in auc for v in a.values())


def test_contamination_is_paired_and_nested(tmp_path):
    pools = grid.Pools(("noise", "near"), str(write_idx_set(tmp_path / "mnist", n_train=400)))
    x5, o5 = grid.contaminate(pools, "near", 0.05, 100, seed=0)
    x20, o20 = grid.contaminate(pools, "near", 0.2, 100, seed=0)
    x20b, _ = grid.contaminate(pools, "near", 0.2, 100, seed=0)
    assert o5.sum() == 5 and o20.sum() == 20 and torch.equal(x20, x20b)
    assert (o20 | ~o5).all()  # the 5% outliers are among the 20% ones
    assert torch.equal(x5[~o20], x20[~o20])  # the same inliers
    assert torch.equal(x5[o5], x20[o5])


def test_kid_and_prdc_tell_same_from_shifted():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(600, 16, generator=g), torch.randn(600, 16, generator=g)
    c = torch.randn(600, 16, generator=g) + 1.5
    same, shifted = kid(a, b, subset_size=300), kid(a, c, subset_size=300)
    assert abs(same[0]) < 0.05 < shifted[0]
    p_same, p_shift = prdc(a, b), prdc(a, c)
    assert p_same["precision"] > 0.6 and p_same["coverage"] > 0.6
    assert p_shift["precision"] < p_same["precision"] and p_shift["coverage"] < p_same["coverage"]
    assert 0.5 < p_same["density"] < 1.5
