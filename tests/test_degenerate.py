"""Degenerate codes: an encoder whose output is constant (or NaN) gets its fit, the pictures that
still mean something and a report saying what was left out and why, never a crash of the process
inside openTSNE. The artifacts are written in a child process: a segmentation fault there fails the
test instead of killing pytest."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aae import plots
from aae.config import resolve, to_toml
from aae.metrics import code_problem, summarize_fit

from conftest import tiny_config, toy_data

TESTS = Path(__file__).resolve().parent
CHILD = ("import sys; sys.path[:0] = [sys.argv[1]]; import test_degenerate as t; "
         "t.write_artifacts(*sys.argv[2:])")


def write_artifacts(run: str, kind: str, *sets: str) -> None:
    """Latent artifacts and the report of a model whose encoder's last layer outputs a constant
    (``kind`` "constant"), NaN ("nan"), or is left as initialised ("healthy"); prints the log line."""
    from aae.artifacts import write_latent
    from aae.report import write_report
    from aae.runs import build_model

    cfg = resolve(tiny_config(tsne_points=50).to_dict(), None, list(sets))
    data = toy_data()
    torch.manual_seed(0)
    model = build_model(cfg, data.image_shape)
    last = model.encoder[-1]  # the Linear layer whose output is z
    if kind != "healthy":
        with torch.no_grad():
            last.weight.zero_()
            last.bias.fill_(0.5 if kind == "constant" else math.nan)
    run = Path(run)
    (run / "config.toml").write_text(to_toml(cfg))
    fit = write_latent(run, model, data, seed=0, tsne_points=50)
    print(f"test codes vs prior: {summarize_fit(fit)}")
    write_report(run)


def artifacts_in_child(run: Path, kind: str, *sets: str) -> str:
    r = subprocess.run([sys.executable, "-c", CHILD, str(TESTS), str(run), kind, *sets],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr[-2000:]}"
    return r.stdout


def test_constant_codes_skip_the_tsne_with_a_note(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "tsne.png").write_bytes(b"a picture of other codes")  # stale: must go
    out = artifacts_in_child(run, "constant", "model.code_dim=8")
    assert not (run / "tsne.png").exists()
    fit = json.loads((run / "latent.json").read_text())
    why = "the 60 test codes are all the same point (the encoder's output is constant)"
    assert fit["skipped"] == {"tsne.png": why}
    assert fit["std"] == [0.0] * 8 and fit["mean"] == pytest.approx([0.5] * 8)
    assert math.isfinite(fit["mmd2"]) and fit["mmd2"] > 0.1  # far from the prior, and measured
    assert (run / "latent.png").stat().st_size > 1000  # the collapse shows in the histograms
    assert f"not drawn: tsne.png ({why})" in out and len(out.strip().splitlines()) == 1
    page = (run / "report.html").read_text()
    assert "Not drawn:" in page and "<code>tsne.png</code>: the 60 test codes are all the same" in page


def test_nonfinite_codes_skip_every_code_plot_but_the_manifold(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    artifacts_in_child(run, "nan", "prior.name=mixture", "prior.components=3", "model.code_dim=2")
    fit = json.loads((run / "latent.json").read_text())
    why = "60 of the 60 test codes hold NaN or infinite values"
    assert fit["skipped"] == {f: why for f in ("assignment", "latent.png", "tsne.png",
                                               "latent_scatter.png")}
    assert fit["nonfinite"] == 60 and math.isnan(fit["mmd2"]) and fit["ks"] == [None, None]
    for f in ("latent.png", "tsne.png", "latent_scatter.png"):
        assert not (run / f).exists(), f
    assert (run / "manifold.png").stat().st_size > 1000  # the decoder over the prior: still drawn
    page = (run / "report.html").read_text()
    assert page.count(why) == 4


def test_healthy_codes_draw_the_tsne(tmp_path):
    """The control: the same child process with the encoder as initialised draws everything."""
    run = tmp_path / "run"
    run.mkdir()
    out = artifacts_in_child(run, "healthy", "model.code_dim=8")
    assert (run / "tsne.png").stat().st_size > 1000 and "not drawn" not in out
    assert "skipped" not in json.loads((run / "latent.json").read_text())
    assert "Not drawn:" not in (run / "report.html").read_text()


def test_code_problem():
    g = torch.Generator().manual_seed(0)
    assert code_problem(torch.randn(5, 3, generator=g)) is None
    assert code_problem(torch.ones(1, 3)) is None  # one code: nothing to compare
    assert "all the same point" in code_problem(torch.full((4, 3), 2.0))
    bad = torch.randn(5, 3, generator=g)
    bad[1, 2], bad[3, 0] = math.nan, -math.inf
    assert code_problem(bad) == "2 of the 5 test codes hold NaN or infinite values"
    assert code_problem(torch.zeros(0, 3)) == "there are no test codes"


def test_tsne_input_refuses_degenerate_points_and_is_scale_free():
    x = np.random.default_rng(0).normal(size=(40, 5))
    for bad in (np.zeros((40, 5)), np.full((40, 5), 7.0), np.where(x > 2, np.nan, x)):
        with pytest.raises(ValueError, match="t-SNE needs"):
            plots.tsne_input(bad)
    ref = plots.tsne_input(x)
    assert ref.std() == pytest.approx(1.0) and np.abs(ref.mean(0)).max() < 1e-12
    for scale in (1e-300, 1e30, 1e307):  # openTSNE's process crashed on such spreads
        assert np.allclose(plots.tsne_input(scale * x + 3 * scale), ref)


def test_tsne_of_tiny_and_huge_spreads_does_not_crash():
    code = ("import sys, numpy as np; from aae import plots; "
            "x = np.random.default_rng(0).normal(size=(60, 4)); "
            "[print(plots.tsne_embed(s * x, seed=0, n_jobs=1).shape) for s in (1e-300, 1e30)]")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr[-2000:]}"
    assert r.stdout.split() == ["(60,", "2)", "(60,", "2)"]
