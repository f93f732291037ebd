"""Every prior, the three posteriors, and labels in the regularization (paper sections 2-3)."""

import math

import pytest
import torch

from aae.config import PriorConfig, resolve
from aae.data import balanced_subset
from aae.errors import AAEError
from aae.priors import Categorical, GaussianMixture2D, SwissRoll2D, Uniform, build_prior
from aae.runs import build_model
from aae.training import Trainer

from conftest import tiny_config

G = lambda s=0: torch.Generator().manual_seed(s)  # noqa: E731


def test_uniform_support_and_moments():
    p = Uniform(3, half_width=2.0)
    z = p.sample(100_000, generator=G())
    assert z.abs().max() <= 2.0 and torch.allclose(z.std(0), torch.full((3,), 2 / math.sqrt(3)),
                                                   rtol=0.01)
    assert torch.isinf(p.log_prob(torch.tensor([[3.0, 0, 0]]))).all()


def test_mixture_layout_and_labels():
    p = GaussianMixture2D(k=10, radius=1.4, std_radial=0.5, std_tangential=0.05)
    labels = torch.arange(10).repeat(2000)
    z = p.sample(len(labels), labels=labels, generator=G())
    for k in range(10):  # each component centred on its ray at the radius, elongated radially
        zk = z[labels == k]
        radial = zk @ p.dirs[k]
        tangential = zk @ p.perp[k]
        assert abs(float(radial.mean()) - 1.4) < 0.05 and abs(float(radial.std()) - 0.5) < 0.03
        assert abs(float(tangential.std()) - 0.05) < 0.005
    assert (p.assign(z) == labels).float().mean() > 0.95
    unl = p.sample(20000, labels=torch.full((20000,), -1), generator=G(1))
    counts = torch.bincount(p.assign(unl), minlength=10).float() / 20000
    assert torch.allclose(counts, torch.full((10,), 0.1), atol=0.02)
    # log_prob integrates to ~1 over a grid
    g = torch.linspace(-4, 4, 401)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    mass = p.log_prob(torch.stack([xx, yy], -1).reshape(-1, 2)).exp().sum() * (8 / 400) ** 2
    assert abs(float(mass) - 1) < 0.02


def test_swiss_roll_segments():
    p = SwissRoll2D(k=10)
    labels = torch.arange(10).repeat(500)
    z = p.sample(len(labels), labels=labels, generator=G())
    assert (p.assign(z) == labels).float().mean() > 0.99
    assert float(z.norm(dim=1).max()) <= 3.0 + 1e-5
    # prior.roll_noise widens the curve into a band: the distance to the curve grows with it
    wide = build_prior(PriorConfig(name="swiss_roll", roll_noise=0.1), 2)
    zw = wide.sample(len(labels), labels=labels, generator=G())
    u = (torch.arange(4000) + 0.5) / 4000
    dist = torch.cdist(zw, wide.point(u)).min(1).values
    assert 0.05 < float(dist.mean()) < 0.12 and (wide.assign(zw) == labels).float().mean() > 0.85
    with pytest.raises(AAEError, match="prior.roll_noise"):
        resolve(None, None, ["prior.roll_noise=-1"])


def test_categorical():
    p = Categorical(4)
    z = p.sample(8000, generator=G())
    assert torch.equal(z.sum(1), torch.ones(8000)) and set(z.unique().tolist()) == {0.0, 1.0}
    assert torch.allclose(z.mean(0), torch.full((4,), 0.25), atol=0.02)
    assert torch.equal(p.sample(3, labels=torch.tensor([2, 0, 1]), generator=G()).argmax(1),
                       torch.tensor([2, 0, 1]))


def test_two_d_priors_need_two_d_codes():
    with pytest.raises(AAEError, match="model.code_dim"):
        build_prior(PriorConfig(name="mixture"), 8)


class Ring:
    dim = 2

    def sample(self, n, labels=None, generator=None):
        a = torch.rand(n, generator=generator) * 2 * math.pi
        return torch.stack([a.cos(), a.sin()], 1)


RING = Ring()


def test_custom_prior_from_config():
    p = build_prior(PriorConfig(name="test_priors_labels:RING"), 2)
    assert p is RING
    with pytest.raises(AAEError, match="cannot load"):
        build_prior(PriorConfig(name="no_such_module_xyz:thing"), 2)
    with pytest.raises(AAEError, match="has no sample"):
        build_prior(PriorConfig(name="math:pi"), 2)


@pytest.mark.parametrize("posterior", ["deterministic", "gaussian", "universal"])
def test_posteriors_shapes_and_gradients(tiny_data, posterior):
    cfg = resolve(tiny_config().to_dict(), None, [f"model.posterior={posterior}"])
    model = build_model(cfg, tiny_data.image_shape)
    x = tiny_data.train_x[:16]
    z = model.encode(x)["z"]
    assert z.shape == (16, 2)
    z.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.encoder.parameters())
    model.eval()
    a, b = model.encode(x)["z"], model.encode(x)["z"]
    if posterior == "universal":  # the average of draws: close, not equal
        assert not torch.equal(a, b) and (a - b).abs().max() < 1.0
    else:
        assert torch.equal(a, b)
    model.train()
    if posterior != "deterministic":  # training draws are stochastic
        assert not torch.equal(model.encode(x)["z"], model.encode(x)["z"])


def test_balanced_subset_is_balanced_and_reproducible():
    y = torch.arange(10).repeat(50)
    a, b = balanced_subset(y, 100, seed=3), balanced_subset(y, 100, seed=3)
    assert torch.equal(a, b) and not torch.equal(a, balanced_subset(y, 100, seed=4))
    kept = a[a >= 0]
    assert len(kept) == 100 and torch.equal(torch.bincount(kept), torch.full((10,), 10))
    assert torch.equal(a[a >= 0], y[a >= 0])
    uneven = balanced_subset(torch.tensor([0] * 3 + [1] * 20), 10, seed=0)
    assert torch.equal(torch.bincount(uneven[uneven >= 0]), torch.tensor([3, 7]))


def test_label_conditioned_training(tiny_data, tmp_path):
    cfg = resolve(tiny_config(epochs=2).to_dict(), None, [
        "prior.name=mixture", "prior.components=3", "model.label_conditioning=true",
        "data.labelled=30"])
    t = Trainer(cfg, tmp_path / "run", data=tiny_data, quiet=True)
    assert int((t.t.labels >= 0).sum()) == 30
    assert t.model.regularizers[0].discriminator[0].in_features == 2 + 4  # z + 3 labels + "none"
    t.fit()
    import json

    fit = json.loads((tmp_path / "run" / "latent.json").read_text())
    assert len(fit["assignment"]["per_class"]) == 3
    for f in ("latent_scatter.png", "manifold.png"):
        assert (tmp_path / "run" / f).stat().st_size > 1000
    resumed = Trainer(resolve(cfg.to_dict(), None, ["train.epochs=3"]), tmp_path / "run",
                      data=tiny_data, resume=True, quiet=True)
    assert torch.equal(resumed.t.labels, t.t.labels)


def test_conditioning_needs_components_and_labels(tiny_data, tmp_path):
    cfg = resolve(tiny_config().to_dict(), None, ["model.label_conditioning=true"])
    with pytest.raises(AAEError, match="no components"):
        Trainer(cfg, tmp_path / "a", data=tiny_data, quiet=True)
    cfg = resolve(tiny_config().to_dict(), None, ["prior.name=mixture", "prior.components=3",
                                                  "model.label_conditioning=true",
                                                  "data.labelled=100000"])
    with pytest.raises(AAEError, match="--labelled"):
        Trainer(cfg, tmp_path / "b", data=tiny_data, quiet=True)
    assert not (tmp_path / "b").exists()
