"""Metrics as pure functions on tensors and arrays (no files, no plots)."""

from __future__ import annotations

import numpy as np
import torch

from .priors import Prior


def median_bandwidth(x: torch.Tensor, y: torch.Tensor, max_points: int = 2000) -> float:
    """The median heuristic: the median pairwise distance in the pooled sample."""
    z = torch.cat([x[:max_points], y[:max_points]]).double()
    d = torch.cdist(z, z)
    return float(d[torch.triu(torch.ones_like(d, dtype=torch.bool), 1)].median())


def _mmd2_from_kernel(k: torch.Tensor, m: int) -> torch.Tensor:
    """Unbiased MMD^2 from the pooled kernel matrix whose first ``m`` rows are the x sample."""
    n = len(k) - m
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return sxx + syy - 2 * kxy.mean()


def _pooled_kernel(x: torch.Tensor, y: torch.Tensor, sigma: float | None) -> tuple[torch.Tensor, float]:
    x, y = x.double(), y.double()
    sigma = sigma or median_bandwidth(x, y)
    z = torch.cat([x, y])
    return torch.exp(-0.5 / sigma**2 * torch.cdist(z, z).pow(2)), sigma


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, sigma: float | None = None) -> float:
    """Unbiased MMD^2 (Gretton et al. 2012) with a Gaussian kernel exp(-|a-b|^2 / (2 sigma^2)),
    sigma by the median heuristic unless given. Near zero (possibly slightly negative) when x and y
    come from one distribution."""
    k, _ = _pooled_kernel(x, y, sigma)
    return float(_mmd2_from_kernel(k, len(x)))


def mmd2_test(x: torch.Tensor, y: torch.Tensor, permutations: int = 200, seed: int = 0,
              sigma: float | None = None) -> dict:
    """MMD^2 with a permutation p-value: the share of random relabellings of the pooled sample
    whose MMD^2 reaches the observed one (with the usual +1 correction)."""
    k, sigma = _pooled_kernel(x, y, sigma)
    m = len(x)
    observed = _mmd2_from_kernel(k, m)
    g = torch.Generator().manual_seed(seed)
    hits = 0
    for _ in range(permutations):
        p = torch.randperm(len(k), generator=g)
        hits += int(_mmd2_from_kernel(k[p][:, p], m) >= observed)
    return {"mmd2": float(observed), "p_value": (hits + 1) / (permutations + 1),
            "sigma": sigma, "permutations": permutations, "n": [m, len(k) - m]}


def latent_fit(codes: torch.Tensor, prior: Prior, mmd_points: int = 2000, seed: int = 0) -> dict:
    """Per-dimension mean/std/KS of ``codes`` against ``prior``'s marginals, and MMD^2 overall."""
    from scipy.stats import kstest

    codes = codes.detach().float().cpu()
    pm, ps = prior.moments()
    out: dict = {
        "n": len(codes),
        "mean": codes.mean(0).tolist(),
        "std": codes.std(0).tolist(),
        "prior_mean": pm.tolist(),
        "prior_std": ps.tolist(),
    }
    ks = []
    for j in range(codes.shape[1]):
        cdf = prior.marginal_cdf(j)
        ks.append(float(kstest(codes[:, j].numpy(), cdf).statistic) if cdf else None)
    out["ks"] = ks
    g = torch.Generator().manual_seed(seed)
    sub = codes[torch.randperm(len(codes), generator=g)[:mmd_points]]
    ref = prior.sample(len(sub), generator=g)
    out["mmd2"] = mmd2_unbiased(sub, ref)
    out["mmd_points"] = len(sub)
    return out


def summarize_fit(fit: dict) -> str:
    mean = np.abs(np.asarray(fit["mean"]) - np.asarray(fit["prior_mean"]))
    ratio = np.asarray(fit["std"]) / np.asarray(fit["prior_std"])
    ks = [k for k in fit["ks"] if k is not None]
    return (f"max |mean - prior| {mean.max():.3f}, std/prior in [{ratio.min():.2f}, "
            f"{ratio.max():.2f}], max KS {max(ks) if ks else float('nan'):.3f}, "
            f"MMD^2 {fit['mmd2']:.4f}")
