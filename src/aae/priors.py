"""Priors p(z): anything with ``sample(n, labels=None, generator=None)`` and ``dim``.

A prior is what the adversarial regularizer matches the aggregated posterior q(z) to. The only
interface the training loop relies on is :class:`Prior`; ``log_prob`` and ``marginal_cdf`` are
optional and used by evaluation (latent density, Kolmogorov-Smirnov tests) where they exist.
"""

from __future__ import annotations

import math

import torch

from .config import PriorConfig
from .errors import AAEError


class Prior:
    """Base class. ``sample`` must draw with the given ``generator`` so that runs are reproducible."""

    dim: int

    def sample(self, n: int, labels: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no closed-form density")

    def marginal_cdf(self, dim: int):
        """The CDF of dimension ``dim`` as a callable on numpy arrays (for KS tests), or None."""
        return None

    def marginal_pdf(self, dim: int):
        """The density of dimension ``dim`` as a callable on numpy arrays (for plots), or None."""
        return None

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-dimension mean and std, estimated from samples unless a subclass knows them."""
        z = self.sample(100_000, generator=torch.Generator().manual_seed(0))
        return z.mean(0), z.std(0)


class Gaussian(Prior):
    """N(mean, diag(std^2)) in ``dim`` dimensions; N(0, I) is the seed's prior."""

    def __init__(self, dim: int, std: float | list[float] = 1.0, mean: float = 0.0):
        self.dim = dim
        self.std = torch.as_tensor(std, dtype=torch.float32).expand(dim).clone()
        self.mean = torch.full((dim,), float(mean))

    def sample(self, n, labels=None, generator=None):
        device = generator.device if generator is not None else None
        eps = torch.randn(n, self.dim, generator=generator, device=device)
        return self.mean.to(eps.device) + eps * self.std.to(eps.device)

    def log_prob(self, z):
        std, mean = self.std.to(z.device), self.mean.to(z.device)
        u = (z - mean) / std
        return (-0.5 * u.pow(2) - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)

    def moments(self):
        return self.mean.clone(), self.std.clone()

    def marginal_cdf(self, dim):
        from scipy.stats import norm

        return norm(float(self.mean[dim]), float(self.std[dim])).cdf

    def marginal_pdf(self, dim):
        from scipy.stats import norm

        return norm(float(self.mean[dim]), float(self.std[dim])).pdf


PRIORS = {"gaussian": lambda cfg, dim: Gaussian(dim, cfg.std)}


def build_prior(cfg: PriorConfig, dim: int) -> Prior:
    try:
        make = PRIORS[cfg.name]
    except KeyError:
        raise AAEError(f"option prior.name: unknown prior {cfg.name!r}; expected one of "
                       f"{', '.join(sorted(PRIORS))}") from None
    return make(cfg, dim)
