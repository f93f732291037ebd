"""The picture and JSON artifacts of a run, written atomically from a model and its data.

Shared by ``aae train`` (during and after training) and ``aae plot`` (redraws from a checkpoint).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import torch

from . import plots
from .data import ImageData
from .fileio import atomic_write_bytes, atomic_write_json
from .metrics import latent_fit
from .model import AAE


@torch.no_grad()
def write_samples(run: Path, model: AAE, noise: torch.Tensor, epoch: int) -> Path:
    """Decode the fixed prior samples; write ``samples/epoch_NNNN.png`` and refresh progress.png."""
    was = model.training
    model.eval()
    images = model.decode({"z": noise.to(next(model.parameters()).device)}).float().cpu().numpy()
    model.train(was)
    path = run / "samples" / f"epoch_{epoch:04d}.png"
    atomic_write_bytes(path, plots.grid_png(images))
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
        with Image.open(p) as im:
            grids.append((e, np.asarray(im.convert("L"))))
    if grids:
        title = "decoder samples from the same 100 prior draws"
        atomic_write_bytes(run / "samples" / "progress.png", plots.progress_png(grids, title))


def write_latent(run: Path, model: AAE, data: ImageData, seed: int, tsne_points: int) -> dict:
    """tsne.png, latent.png and latent.json from the test set's codes. Returns the fit dict."""
    reg = model.regularizers[0]
    device = next(model.parameters()).device
    codes = model.encode_all(data.test_x.to(device))[reg.code].float().cpu()
    labels = None if data.test_y is None else data.test_y.cpu().numpy()
    fit = latent_fit(codes, reg.prior, seed=seed)
    fit["split"] = "test"
    pdfs = [reg.prior.marginal_pdf(j) for j in range(codes.shape[1])]
    atomic_write_bytes(run / "latent.png", plots.latent_png(
        codes.numpy(), fit, pdfs, title=f"test codes of {data.name} (n = {len(codes)})"))
    if tsne_points and len(codes) >= 10:
        n = min(tsne_points, len(codes))
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
    atomic_write_json(run / "latent.json", fit)
    return fit
