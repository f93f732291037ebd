"""The picture and JSON artifacts of a run, written atomically from a model and its data.

Shared by ``aae train`` (during and after training) and ``aae plot`` (redraws from a checkpoint).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import torch

from . import plots, priors
from .data import ImageData
from .fileio import atomic_write_bytes, atomic_write_json
from .metrics import code_problem, latent_fit
from .model import AAE


def samples_path(run: Path, epoch: int) -> Path:
    return run / "samples" / f"epoch_{epoch:04d}.png"


@torch.no_grad()
def write_samples(run: Path, model: AAE, noise: torch.Tensor, epoch: int) -> Path:
    """Decode the fixed prior samples; write ``samples/epoch_NNNN.png`` and refresh progress.png."""
    was = model.training
    model.eval()
    noise = noise.to(next(model.parameters()).device)
    nrow = 10
    if not model.caps.class_conditional:
        codes = {"z": noise}
    else:  # rows: one z each (the style); columns: the classes (paper figures 7 and 9)
        k = nrow = model.classes
        z = noise[:10].repeat_interleave(k, 0)
        codes = model.prior_codes(z, classes=torch.arange(k, device=z.device).repeat(10))
    images = model.decode(codes).float().cpu().numpy()
    model.train(was)
    path = samples_path(run, epoch)
    png = plots.grid_png(images, nrow=nrow)
    atomic_write_bytes(path, png)
    if model.caps.class_conditional:
        atomic_write_bytes(run / "style.png", png)  # the newest style grid
    write_progress(run)
    return path


def write_progress(run: Path) -> None:
    from PIL import Image

    found = []
    for p in (run / "samples").glob("epoch_*.png"):
        m = re.fullmatch(r"epoch_(\d+)\.png", p.name)
        if m:
            found.append((int(m.group(1)), p))
    found.sort()
    grids = []
    for e, p in found:
        with Image.open(p) as im:  # greyscale stays L, colour stays RGB
            grids.append((e, np.asarray(im.convert("L" if im.mode in ("L", "1") else "RGB"))))
    if grids:
        title = "decoder samples from the same 100 prior draws"
        atomic_write_bytes(run / "samples" / "progress.png", plots.progress_png(grids, title))


def write_latent(run: Path, model: AAE, data: ImageData, seed: int, tsne_points: int) -> dict:
    """tsne.png, latent.png and latent.json from the test set's codes. Returns the fit dict.

    Codes without spread are not embedded or plotted where that needs spread: codes all at one
    point (a collapsed encoder; openTSNE would crash the process) skip the t-SNE; codes with NaN or
    infinite values also skip latent.png, the 2-D scatter and the component assignment.
    ``fit["skipped"]`` maps each file (or ``assignment``) left out to the reason, and a file of
    that name left from an earlier drawing is removed, so the run never shows stale pictures."""
    reg = model.regularizers[0]
    device = next(model.parameters()).device
    codes = model.encode_all(data.test_x.to(device))[reg.code].float().cpu()
    labels = None if data.test_y is None else data.test_y.cpu().numpy()
    fit = latent_fit(codes, reg.prior, seed=seed)
    fit["split"] = "test"
    problem = code_problem(codes)
    broken = problem if "nonfinite" in fit else None  # no finite values to histogram or assign
    skipped: dict[str, str] = {}
    if getattr(reg.prior, "num_components", 0) and labels is not None:
        why = broken or _assign_or_why(fit, codes, labels, reg.prior)
        if why:
            skipped["assignment"] = why
    if _skip(run, "latent.png", broken, skipped):
        pdfs = [priors.marginal_pdf(reg.prior, j) for j in range(codes.shape[1])]
        atomic_write_bytes(run / "latent.png", plots.latent_png(
            codes.numpy(), fit, pdfs, title=f"test codes of {data.name} (n = {len(codes)})"))
    if tsne_points and len(codes) >= 10 and _skip(run, "tsne.png", problem, skipped):
        write_tsne(run, codes, data, min(tsne_points, len(codes)), seed, fit)
    if codes.shape[1] == 2:
        skipped.update(write_latent_2d(run, model, data, codes))
    if skipped:
        fit["skipped"] = skipped
    atomic_write_json(run / "latent.json", fit)
    return fit


def _skip(run: Path, name: str, why: str | None, skipped: dict[str, str]) -> bool:
    """True when ``name`` is to be drawn; else records why not and removes a stale copy."""
    if why is None:
        return True
    skipped[name] = why
    (run / name).unlink(missing_ok=True)
    return False


def _assign_or_why(fit: dict, codes: torch.Tensor, labels: np.ndarray, prior) -> str | None:
    """``fit["assignment"]`` from the prior's ``assign``, or why there is none."""
    try:
        fit["assignment"] = component_assignment(codes, torch.from_numpy(labels), prior)
    except NotImplementedError:
        return "the prior has num_components but no assign(z)"
    return None


def write_tsne(run: Path, codes: torch.Tensor, data: ImageData, n: int, seed: int,
               fit: dict) -> None:
    """tsne.png: ``n`` of the test ``codes`` (drawn with ``seed``), by class; a t-SNE unless they
    are 2-D. The codes must have spread (:func:`aae.metrics.code_problem`)."""
    labels = None if data.test_y is None else data.test_y.cpu().numpy()
    pick = torch.randperm(len(codes), generator=torch.Generator().manual_seed(seed))[:n]
    pick = pick.sort().values.numpy()
    t0 = time.perf_counter()
    emb = codes.numpy()[pick] if codes.shape[1] == 2 else plots.tsne_embed(
        codes.numpy()[pick], seed=seed)
    fit["tsne_seconds"] = round(time.perf_counter() - t0, 2)
    what = "t-SNE of" if codes.shape[1] != 2 else "2-D"
    atomic_write_bytes(run / "tsne.png", plots.scatter_png(
        emb, None if labels is None else labels[pick],
        f"{what} test codes z (d = {codes.shape[1]}, n = {n})", data.class_names))


def component_assignment(codes: torch.Tensor, labels: torch.Tensor, prior) -> dict:
    """For each class c, the share of its codes that the prior assigns to part c (the mixture
    component of highest responsibility, or the swiss-roll segment)."""
    assigned = priors.assign(prior, codes)
    per_class = []
    for c in range(prior.num_components):
        m = labels == c
        per_class.append(float((assigned[m] == c).float().mean()) if m.any() else None)
    seen = [v for v in per_class if v is not None]
    return {"per_class": per_class, "min": min(seen) if seen else None,
            "overall": float((assigned == labels).float().mean())}


@torch.no_grad()
def write_latent_2d(run: Path, model: AAE, data: ImageData, codes: torch.Tensor | None = None,
                    epoch: int | None = None) -> dict[str, str]:
    """latent_scatter.png (test codes by class over prior samples) and manifold.png (the decoder
    over the prior's support), for 2-D codes. Codes with NaN or infinite values are not
    scattered; returns ``{"latent_scatter.png": why}`` then, else {}."""
    reg = model.regularizers[0]
    device = next(model.parameters()).device
    labels = None if data.test_y is None else data.test_y.cpu().numpy()
    when = "" if epoch is None else f", epoch {epoch}"
    skipped: dict[str, str] = {}
    if model.caps.representation == "r":  # the reduced representation r = W y + z is shown
        r = model.encode_all(data.test_x.to(device))["r"].float().cpu()
        if _skip(run, "latent_scatter.png", _nonfinite(r, "test representations"), skipped):
            atomic_write_bytes(run / "latent_scatter.png", plots.scatter_png(
                r.numpy(), labels, f"test representations W y + z{when}", data.class_names,
                axes=("r[0]", "r[1]")))
        return skipped
    if codes is None:
        codes = model.encode_all(data.test_x.to(device))[reg.code].float().cpu()
    if _skip(run, "latent_scatter.png", _nonfinite(codes), skipped):
        ref = reg.prior.sample(5000, generator=torch.Generator().manual_seed(0)).cpu().numpy()
        atomic_write_bytes(run / "latent_scatter.png", plots.scatter_png(
            codes.numpy(), labels, f"test codes over prior samples{when}", data.class_names,
            background=ref, axes=("z[0]", "z[1]")))
    write_manifold(run, model, reg.prior)
    return skipped


def _nonfinite(points: torch.Tensor, what: str = "test codes") -> str | None:
    """:func:`aae.metrics.code_problem` where ``points`` hold NaN or infinite values, else None."""
    return None if bool(torch.isfinite(points).all()) else code_problem(points, what)


@torch.no_grad()
def write_manifold(run: Path, model: AAE, prior) -> None:
    """manifold.png: the decoder over the 2-D prior's support (:func:`manifold_codes`)."""
    device = next(model.parameters()).device
    grid = manifold_codes(prior)
    was = model.training
    model.eval()
    grid = grid.to(device)
    # with a class input the manifold is the style space of class 0
    fixed = None if not model.caps.class_conditional else torch.zeros(len(grid), dtype=torch.long,
                                                                device=device)
    images = model.decode(model.prior_codes(grid, classes=fixed)).float().cpu().numpy()
    model.train(was)
    atomic_write_bytes(run / "manifold.png", plots.grid_png(images, nrow=20))


@torch.no_grad()
def write_clusters(run: Path, model: AAE, data: ImageData, members: int = 10, seed: int = 0) -> None:
    """clusters.png (paper figure 9): one row per cluster of the y head, the first image decoded
    from that y with z = 0, then random test images the encoder puts in the cluster (blank where
    a cluster has fewer)."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    k = model.classes
    z0 = torch.zeros(k, model.cfg.code_dim, device=device)
    heads = model.decode(model.prior_codes(z0, classes=torch.arange(k, device=device))).cpu()
    assigned = model.predict(data.test_x.to(device)).cpu()
    model.train(was)
    g = torch.Generator().manual_seed(seed)
    test_x = data.test_x.cpu()
    rows = []
    for c in range(k):
        idx = (assigned == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)[:members]]
        row = torch.zeros(members + 1, *heads.shape[1:])
        row[0] = heads[c]
        row[1:1 + len(idx)] = test_x[idx]
        rows.append(row)
    atomic_write_bytes(run / "clusters.png", plots.grid_png(torch.cat(rows).float().numpy(),
                                                            nrow=members + 1))


def write_confident(run: Path, images: torch.Tensor, labels: np.ndarray, scores: np.ndarray,
                    mappings: tuple[list[int], list[int]], top: int = 10) -> None:
    """clusters_confident.png: per cluster, its ``top`` held-out images in order of q(y = k|x)
    (``scores``, e.g. log-odds, (N, K)): the first is the one the paper's rule names the cluster
    from. ``mappings``: each cluster's name by the paper's rule and by majority vote. Rows whose
    two names differ are titled in red; images whose label is not the cluster's majority label
    are framed in red."""
    paper, majority = mappings
    rows, titles, captions, flags, row_flags = [], [], [], [], []
    for k in range(scores.shape[1]):
        order = np.argsort(-scores[:, k], kind="stable")[:top]
        rows.append(images[torch.as_tensor(order)].float().cpu().numpy())
        titles.append(f"cluster {k}: rule {paper[k]}, majority {majority[k]}")
        captions.append([str(int(labels[i])) for i in order])
        flags.append([int(labels[i]) != majority[k] for i in order])
        row_flags.append(paper[k] != majority[k])
    title = (f"each cluster's {top} most confident held-out images (label above; red: not the "
             "majority label)")
    atomic_write_bytes(run / "clusters_confident.png",
                       plots.ranked_rows_png(rows, titles, captions, flags, row_flags, title))


def manifold_codes(prior, n: int = 20) -> torch.Tensor:
    """Codes covering the prior's support, row by row: a regular grid (Gaussian: at the prior's
    quantiles; uniform: across the box), or along each component / segment."""
    from scipy.stats import norm

    from .priors import GaussianMixture2D, SwissRoll2D, Uniform

    if isinstance(prior, GaussianMixture2D):
        t = torch.linspace(-2, 2, n)
        rows = [prior.dirs[k] * (prior.radius + prior.sr * t).unsqueeze(1) for k in range(prior.k)]
        return torch.cat(rows)
    if isinstance(prior, SwissRoll2D):
        rows = [prior.point((k + (torch.arange(n) + 0.5) / n) / prior.k) for k in range(prior.k)]
        return torch.cat(rows)
    if isinstance(prior, Uniform):
        mean, std = torch.zeros(2), torch.full((2,), prior.a)
        axis = torch.linspace(-1, 1, n)
    else:
        mean, std = priors.moments(prior)
        axis = torch.from_numpy(norm.ppf((torch.arange(n).numpy() + 0.5) / n)).float()
    xs, ys = mean[0] + std[0] * axis, mean[1] - std[1] * axis  # top row: the largest z[1]
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy], -1).reshape(-1, 2)
