import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from aae.classifier import frechet_distance
from aae.evaluate import evaluate, parzen, parzen_log_likelihood
from aae.training import Trainer

from conftest import tiny_config


def test_parzen_matches_closed_form_gaussian():
    """One kernel centre at mu: the Parzen density is exactly N(mu, sigma^2 I)."""
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(1, 5, generator=g)
    x = torch.randn(50, 5, generator=g)
    ll = parzen_log_likelihood(x, mu, [0.7, 1.3])
    for j, s in enumerate((0.7, 1.3)):
        ref = multivariate_normal(mu[0].numpy(), s**2 * np.eye(5)).logpdf(x.numpy())
        assert np.allclose(ll[j].numpy(), ref, atol=1e-4)


def test_parzen_mixture_and_chunks():
    g = torch.Generator().manual_seed(1)
    centres, x = torch.randn(7, 3, generator=g), torch.randn(25, 3, generator=g)
    ll = parzen_log_likelihood(x, centres, [0.5], chunk=4)[0]
    dens = sum(multivariate_normal(c.numpy(), 0.25 * np.eye(3)).pdf(x.numpy()) for c in centres) / 7
    assert np.allclose(ll.numpy(), np.log(dens), atol=1e-4)


def test_width_search_finds_the_true_width():
    """Validation points drawn from the KDE with sigma = 0.2 itself: the search must pick 0.2."""
    g = torch.Generator().manual_seed(2)
    centres = torch.randn(300, 6, generator=g) * 3
    true = 0.2

    def draw(n):
        return centres[torch.randint(0, 300, (n,), generator=g)] + true * torch.randn(n, 6, generator=g)

    grid = [0.05, 0.1, 0.2, 0.4, 0.8]
    out = parzen(centres, draw(4000), draw(2000), grid)
    assert out["sigma"] == true
    # well-separated centres: E log p = -log 300 - (d/2) log(2 pi e sigma^2)
    expected = -math.log(300) - 0.5 * 6 * math.log(2 * math.pi * math.e * true**2)
    assert abs(out["log_likelihood"] - expected) < 0.1 and out["std_error"] > 0


def test_frechet_distance():
    g = np.random.default_rng(0)
    a, b = g.normal(size=(4000, 4)), g.normal(size=(4000, 4))
    assert frechet_distance(a, b) < 0.05
    assert frechet_distance(a, b + 2.0) == pytest.approx(16.0, rel=0.05)


@pytest.mark.slow
def test_evaluate_run_writes_eval_json(tiny_data, tmp_path, monkeypatch):
    import json

    import aae.evaluate as ev

    run = tmp_path / "run"
    Trainer(tiny_config(epochs=1), run, quiet=True).fit()  # digits, 8x8
    out = evaluate(run, ["prior_fit", "parzen"], command="test")
    assert set(out) == {"prior_fit", "parzen"}
    saved = json.loads((run / "eval.json").read_text())
    assert saved["parzen"]["n_samples"] == 10000 and saved["parzen"]["command"] == "test"
    assert 0 < saved["prior_fit"]["mmd_test"]["p_value"] <= 1
    out = evaluate(run, ["quality"])
    assert set(out) == {"prior_fit", "parzen", "quality"}  # merged, not replaced
    assert out["quality"]["classifier"]["test_accuracy"] > 0.85
    assert sum(out["quality"]["class_histogram"]) == 10000
    assert ev.METRICS  # the registry later variants extend


def test_classifier_is_cached_verified_and_deterministic(tmp_path):
    from aae import classifier, data

    d = data.load("digits")
    m1, info1 = classifier.get_classifier(d)
    folder = data.cache_dir() / "classifier"
    (wpath,) = folder.glob("*.safetensors")
    stamp = wpath.stat().st_mtime_ns
    m2, info2 = classifier.get_classifier(d)  # from the cache: same file, same weights
    assert info2 == info1 and wpath.stat().st_mtime_ns == stamp
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    wpath.write_bytes(b"damaged")  # a damaged cache is retrained, to the same weights
    m3, info3 = classifier.get_classifier(d)
    assert info3["sha256"] == info1["sha256"] and info1["test_accuracy"] > 0.9
