import math

import pytest
import torch
from scipy.stats import norm

from aae.config import PriorConfig
from aae.errors import AAEError
from aae.metrics import latent_fit, mmd2_unbiased
from aae.priors import Gaussian, build_prior


def test_gaussian_moments_and_reproducibility():
    p = Gaussian(4, std=[1.0, 2.0, 0.5, 5.0])
    z = p.sample(200_000, generator=torch.Generator().manual_seed(0))
    assert z.shape == (200_000, 4)
    assert torch.allclose(z.mean(0), torch.zeros(4), atol=0.03)
    assert torch.allclose(z.std(0), torch.tensor([1.0, 2.0, 0.5, 5.0]), rtol=0.01)
    again = p.sample(200_000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, z)


def test_gaussian_log_prob_matches_scipy():
    p = Gaussian(3, std=2.0)
    z = torch.tensor([[0.0, 1.0, -3.0]])
    expected = sum(norm(0, 2).logpdf(v) for v in (0.0, 1.0, -3.0))
    assert math.isclose(float(p.log_prob(z)), expected, rel_tol=1e-5)


def test_unknown_prior():
    with pytest.raises(AAEError, match="unknown prior 'banana'; expected one of categorical, gaussian"):
        build_prior(PriorConfig(name="banana"), 2)


def test_mmd_same_vs_shifted():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1000, 3, generator=g), torch.randn(1000, 3, generator=g)
    same = mmd2_unbiased(a, b)
    shifted = mmd2_unbiased(a, b + 1.0)
    assert abs(same) < 0.005 and shifted > 0.1


def test_latent_fit_reports_mismatch():
    p = Gaussian(2)
    g = torch.Generator().manual_seed(1)
    good = latent_fit(p.sample(5000, generator=g), p)
    bad = latent_fit(p.sample(5000, generator=g) * 3 + 1, p)
    assert max(good["ks"]) < 0.03 and min(bad["ks"]) > 0.2
    assert good["mmd2"] < 0.005 < bad["mmd2"]
    assert all(abs(m) < 0.05 for m in good["mean"]) and all(abs(m - 1) < 0.1 for m in bad["mean"])


def test_mmd_permutation_test():
    from aae.metrics import mmd2_test

    p = Gaussian(2)
    g = torch.Generator().manual_seed(3)
    same = mmd2_test(p.sample(300, generator=g), p.sample(300, generator=g), permutations=100)
    shifted = mmd2_test(p.sample(300, generator=g) + 0.5, p.sample(300, generator=g),
                        permutations=100)
    assert abs(same["mmd2"]) < 0.01 and same["p_value"] > 0.05
    assert shifted["mmd2"] > 0.02 and shifted["p_value"] < 0.02
