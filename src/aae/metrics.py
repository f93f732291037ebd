"""Metrics as pure functions on tensors and arrays (no files, no plots)."""

from __future__ import annotations

import numpy as np
import torch

from . import priors
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


def code_problem(codes: torch.Tensor | np.ndarray, what: str = "test codes") -> str | None:
    """Why ``codes`` (N, d) have no spread to embed or plot, or None when they do: some value is
    NaN or infinite, or every row is the same point (an encoder that collapsed)."""
    codes = torch.as_tensor(codes)
    if len(codes) == 0:
        return f"there are no {what}"
    finite = torch.isfinite(codes)
    if not finite.all():
        rows = int((~finite.all(1)).sum())
        return f"{rows} of the {len(codes)} {what} hold NaN or infinite values"
    if len(codes) > 1 and bool((codes == codes[0]).all()):
        return f"the {len(codes)} {what} are all the same point (the encoder's output is constant)"
    return None


def latent_fit(codes: torch.Tensor, prior: Prior, mmd_points: int = 2000, seed: int = 0) -> dict:
    """Per-dimension mean/std/KS of ``codes`` against ``prior``'s marginals, and MMD^2 overall.
    Codes with NaN or infinite values get null KS statistics and a NaN MMD^2 (and ``nonfinite``,
    the count of such rows); a prior without marginal CDFs gets null KS statistics."""
    from scipy.stats import kstest

    codes = codes.detach().float().cpu()
    pm, ps = priors.moments(prior)
    out: dict = {
        "n": len(codes),
        "mean": codes.mean(0).tolist(),
        "std": codes.std(0).tolist(),
        "prior_mean": pm.tolist(),
        "prior_std": ps.tolist(),
    }
    finite = bool(torch.isfinite(codes).all())
    ks = []
    for j in range(codes.shape[1]):
        cdf = priors.marginal_cdf(prior, j) if finite else None
        ks.append(float(kstest(codes[:, j].numpy(), cdf).statistic) if cdf else None)
    out["ks"] = ks
    g = torch.Generator().manual_seed(seed)
    sub = codes[torch.randperm(len(codes), generator=g)[:mmd_points]]
    ref = prior.sample(len(sub), generator=g).detach().float().cpu()
    out["mmd2"] = mmd2_unbiased(sub, ref) if finite else float("nan")
    out["mmd_points"] = len(sub)
    if not finite:
        out["nonfinite"] = int((~torch.isfinite(codes).all(1)).sum())
    return out


def summarize_fit(fit: dict) -> str:
    """One line: the fit's headline numbers, then what was not drawn and why (``fit["skipped"]``)."""
    mean = np.abs(np.asarray(fit["mean"]) - np.asarray(fit["prior_mean"]))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.asarray(fit["std"]) / np.asarray(fit["prior_std"])
    ks = [k for k in fit["ks"] if k is not None]
    line = (f"max |mean - prior| {mean.max():.3f}, std/prior in [{ratio.min():.2f}, "
            f"{ratio.max():.2f}], max KS {max(ks) if ks else float('nan'):.3f}, "
            f"MMD^2 {fit['mmd2']:.4f}")
    skipped = fit.get("skipped") or {}
    if skipped:
        line += "; not drawn: " + "; ".join(f"{f} ({why})" for f, why in skipped.items())
    return line


def kid(real: torch.Tensor, fake: torch.Tensor, subsets: int = 10, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018) in any feature space: the unbiased MMD^2
    with the cubic polynomial kernel (a.b / dim + 1)^3, averaged over random subsets; returns
    (mean, std over subsets). Unlike the Frechet distance it is unbiased in the sample size."""
    real, fake = real.double(), fake.double()
    m = min(subset_size, len(real), len(fake))
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(subsets):
        a = real[torch.randperm(len(real), generator=g)[:m]]
        b = fake[torch.randperm(len(fake), generator=g)[:m]]
        z = torch.cat([a, b])
        k = (z @ z.T / z.shape[1] + 1).pow(3)
        vals.append(float(_mmd2_from_kernel(k, m)))
    return float(np.mean(vals)), float(np.std(vals))


def prdc(real: torch.Tensor, fake: torch.Tensor, k_pr: int = 3, k_dc: int = 5) -> dict:
    """Improved precision and recall (Kynkaanniemi et al. 2019, k = ``k_pr``) and density and
    coverage (Naeem et al. 2020, k = ``k_dc``, robust to outliers in the real sample), from the
    k-nearest-neighbour balls of each sample in feature space."""
    real, fake = real.float(), fake.float()

    def radii(x: torch.Tensor, k: int) -> torch.Tensor:  # distance to the k-th neighbour (not self)
        return torch.cdist(x, x).kthvalue(k + 1, dim=1).values

    d_fr = torch.cdist(fake, real)  # (fake, real)
    r_real_pr, r_fake_pr, r_real_dc = radii(real, k_pr), radii(fake, k_pr), radii(real, k_dc)
    inside_pr = d_fr <= r_real_pr.unsqueeze(0)
    inside_dc = d_fr <= r_real_dc.unsqueeze(0)
    return {
        "precision": float(inside_pr.any(1).float().mean()),
        "recall": float((d_fr <= r_fake_pr.unsqueeze(1)).any(0).float().mean()),
        "density": float(inside_dc.float().sum() / (k_dc * len(fake))),
        "coverage": float((d_fr.min(0).values <= r_real_dc).float().mean()),
    }
