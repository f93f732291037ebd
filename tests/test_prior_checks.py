"""User priors: checked before anything is created, and a minimal one (``dim`` and ``sample`` only,
as the README documents it) goes through training, the artifacts and the report."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aae import priors
from aae.config import PriorConfig, resolve
from aae.errors import AAEError
from aae.metrics import latent_fit
from aae.priors import PRIORS, Gaussian, build_prior, check_prior
from aae.training import Trainer
from prior_cases import RING, SPHERE3

from conftest import make_images, tiny_config, toy_data

TESTS = Path(__file__).resolve().parent

BAD = [  # (prior.name, model.code_dim, what the one line says)
    ("prior_cases:WIDE", 2, "sample(7) returned shape (7, 3); expected (7, 2)"),
    ("prior_cases:SHORT", 2, "sample(7) returned shape (6, 2); expected (7, 2)"),
    ("prior_cases:FLAT", 2, "sample(7) returned shape (14,); expected (7, 2)"),
    ("prior_cases:LIST", 2, "sample(7) returned a builtins.list; expected a torch.Tensor"),
    ("prior_cases:NUMPY", 2, "returned a numpy.ndarray; expected a torch.Tensor; convert it with "
                             "torch.from_numpy(a).float()"),
    ("prior_cases:INTS", 2, "sample(7) returned dtype torch.int64; expected torch.float32"),
    ("prior_cases:DOUBLE", 2, "sample(7) returned dtype torch.float64; expected torch.float32"),
    ("prior_cases:NAN", 2, "sample(7) returned 14 NaN or infinite values; expected finite draws"),
    ("prior_cases:INF", 2, "sample(7) returned 14 NaN or infinite values"),
    ("prior_cases:RAISES", 2, "sample(7) raised ValueError: radius must be positive"),
    ("prior_cases:NO_SAMPLE", 2, "'prior_cases:NO_SAMPLE' has no sample(n, labels=None, "
                                 "generator=None) method"),
    ("prior_cases:OLD_SIGNATURE", 2, "sample(n) does not accept (n, labels=None, generator=None)"),
    ("prior_cases:PARTS", 2, "sample(7, labels) returned shape (7, 1); expected (7, 2)"),
    ("prior_cases:broken_factory", 2, "prior_cases:broken_factory(2) raised RuntimeError: cannot "
                                      "build a 2-D prior"),
    ("prior_cases:RING", 3, "'prior_cases:RING' has dim 2, but model.code_dim is 3"),
]


@pytest.mark.parametrize("name,dim,says", BAD, ids=[b[0].split(":")[1] for b in BAD])
def test_a_wrong_prior_is_one_line_naming_it(name, dim, says):
    with pytest.raises(AAEError) as e:
        build_prior(PriorConfig(name=name), dim)
    msg = str(e.value)
    assert says in msg
    assert msg.startswith("option prior.name: ") and name in msg and "\n" not in msg
    assert "second line" not in msg  # only the first line of the user's exception


def test_check_prior_on_an_object_names_its_type():
    from prior_cases import LIST, RAISES

    with pytest.raises(AAEError, match=r"prior '_Bad': sample\(7\) returned a builtins.list"):
        check_prior(LIST, 2)
    with pytest.raises(AAEError, match=r"prior 'mine': sample\(7\) raised ValueError"):
        check_prior(RAISES, 2, "mine")
    check_prior(RING, 2)  # a good one passes


def test_every_builtin_prior_passes_the_check():
    for name in PRIORS:
        dim = 4 if name in ("gaussian", "uniform", "categorical") else 2
        check_prior(build_prior(PriorConfig(name=name), dim), dim, name)


def test_a_class_or_factory_is_called_with_the_code_size():
    p = build_prior(PriorConfig(name="prior_cases:sphere"), 5)
    assert p.dim == 5 and p.sample(3, generator=torch.Generator()).shape == (3, 5)
    p = build_prior(PriorConfig(name="prior_cases:Ring"), 4)  # a class, not an instance
    assert type(p).__name__ == "Ring" and p.dim == 4


def test_a_wrong_prior_creates_nothing(tmp_path):
    cfg = resolve(tiny_config().to_dict(), None, ["prior.name=prior_cases:NAN"])
    with pytest.raises(AAEError, match="prior_cases:NAN"):
        Trainer(cfg, tmp_path / "run", data=toy_data(), quiet=True)
    assert not (tmp_path / "run").exists()


def test_cli_wrong_prior_exits_2_with_one_line(tmp_path):
    x, y = make_images(64)
    np.savez(tmp_path / "toy.npz", x=x, y=y)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "aae", "train", "--dataset", str(tmp_path / "toy.npz"),
                        "--prior", "prior_cases:WIDE", "--set", "model.code_dim=2", "--epochs", "1",
                        "--batch-size", "16",
                        "--out", str(tmp_path / "run"), "--quiet"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "prior_cases:WIDE" in lines[0] and "shape (7, 3)" in lines[0]
    assert not (tmp_path / "run").exists()


def test_defaults_for_what_a_minimal_prior_lacks():
    mean, std = priors.moments(RING)  # estimated from 100 000 seeded draws
    assert torch.allclose(mean, torch.zeros(2), atol=0.01)
    assert torch.allclose(std, torch.full((2,), 1 / math.sqrt(2)), atol=0.01)
    assert torch.equal(priors.moments(RING)[1], std)  # the same draws every time
    assert priors.marginal_cdf(RING, 0) is None and priors.marginal_pdf(RING, 1) is None
    with pytest.raises(NotImplementedError):
        priors.log_prob(RING, torch.zeros(1, 2))
    with pytest.raises(NotImplementedError):
        priors.assign(RING, torch.zeros(1, 2))
    assert not priors.has_density(RING, 2)
    g = Gaussian(2, std=3.0)  # a prior's own methods win
    assert torch.equal(priors.moments(g)[1], torch.full((2,), 3.0)) and priors.has_density(g, 2)
    assert priors.marginal_cdf(g, 0)(np.array([0.0]))[0] == pytest.approx(0.5)


def test_latent_fit_of_a_minimal_prior():
    codes = torch.randn(300, 2, generator=torch.Generator().manual_seed(1))
    fit = latent_fit(codes, RING)
    assert fit["ks"] == [None, None] and math.isfinite(fit["mmd2"])
    assert fit["prior_std"] == pytest.approx([1 / math.sqrt(2)] * 2, abs=0.01)


@pytest.mark.parametrize("name,dim", [("prior_cases:RING", 2), ("prior_cases:SPHERE3", 3)])
def test_a_minimal_prior_trains_and_writes_every_artifact(tmp_path, name, dim):
    cfg = resolve(tiny_config(epochs=1, tsne_points=40).to_dict(), None,
                  [f"prior.name={name}", f"model.code_dim={dim}"])
    run = tmp_path / "run"
    Trainer(cfg, run, data=toy_data(), quiet=True).fit()
    files = ["latent.png", "tsne.png", "report.html"]
    files += ["latent_scatter.png", "manifold.png"] if dim == 2 else []
    for f in files:
        assert (run / f).stat().st_size > 1000, f
    fit = json.loads((run / "latent.json").read_text())
    expected = priors.moments(SPHERE3 if dim == 3 else RING)[1].tolist()
    assert fit["prior_std"] == pytest.approx(expected) and fit["ks"] == [None] * dim
    assert "skipped" not in fit
    assert "Latent fit" in (run / "report.html").read_text()
