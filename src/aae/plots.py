"""Figures. Each function takes arrays and returns PNG bytes; callers decide where they go.

matplotlib runs on the Agg backend (no display needed). Figures are closed after rendering.
"""

from __future__ import annotations

import io

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def image_grid(images: np.ndarray, nrow: int = 10, pad: int = 2, scale: int = 0) -> np.ndarray:
    """(N, C, H, W) floats in [0, 1] -> one uint8 image (rows of ``nrow``) with a white border,
    enlarged by whole pixels (``scale``; default: tiles of at least 56 pixels)."""
    images = np.clip(np.asarray(images, dtype=np.float32), 0, 1)
    n, c, h, w = images.shape
    scale = scale or max(1, -(-56 // max(h, w)))
    ncol = nrow
    nrows = -(-n // ncol)
    grid = np.ones((c, nrows * (h + pad) + pad, ncol * (w + pad) + pad), dtype=np.float32)
    for i in range(n):
        r, q = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, y:y + h, x:x + w] = images[i]
    grid = (grid * 255 + 0.5).astype(np.uint8)
    grid = grid.repeat(scale, axis=1).repeat(scale, axis=2)
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


def grid_png(images: np.ndarray, nrow: int = 10) -> bytes:
    """A sample grid as PNG bytes, pixel-exact (no resampling by a plotting library)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image_grid(images, nrow)).save(buf, format="PNG")
    return buf.getvalue()


def ranked_rows_png(rows: list[np.ndarray], row_titles: list[str], cell_labels: list[list[str]],
                    flagged: list[list[bool]], row_flagged: list[bool], title: str = "") -> bytes:
    """One row of images per entry, left to right as ranked: ``rows[i]`` (n, C, H, W) in [0, 1],
    each image captioned by ``cell_labels[i][j]`` (red where ``flagged[i][j]``), each row titled
    on its left (red where ``row_flagged[i]``). Used for each cluster's most confident images."""
    plt = _plt()
    ncol = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncol + 1, figsize=(0.62 * ncol + 2.2, 0.72 * len(rows)),
                             dpi=100, squeeze=False,
                             gridspec_kw={"width_ratios": [3.2] + [1] * ncol})
    for i, row in enumerate(rows):
        head = axes[i, 0]
        head.axis("off")
        head.text(1.0, 0.5, row_titles[i], ha="right", va="center", fontsize=8,
                  color="tab:red" if row_flagged[i] else "black", transform=head.transAxes)
        for j in range(ncol):
            ax = axes[i, j + 1]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(row):
                ax.axis("off")
                continue
            img = np.clip(np.asarray(row[j], dtype=np.float32), 0, 1)
            ax.imshow(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0), cmap="gray",
                      vmin=0, vmax=1, interpolation="nearest")
            red = flagged[i][j]
            ax.set_title(cell_labels[i][j], fontsize=7, pad=1.5, color="tab:red" if red else "black")
            for side in ax.spines.values():
                side.set_color("tab:red" if red else "0.7")
                side.set_linewidth(1.6 if red else 0.5)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(h_pad=0.25, w_pad=0.1)
    return _png(fig)


def progress_png(grids: list[tuple[int, np.ndarray]], title: str = "") -> bytes:
    """Sample grids side by side, each titled with its epoch (the original report's 0 / 100 /
    500 table); greyscale (H, W) or colour (H, W, 3) uint8."""
    plt = _plt()
    k = len(grids)
    # one panel per grid at (close to) its own pixel size, so digits are not resampled away
    side = min(max(g.shape[0] for _, g in grids) / 150, 4.0)
    fig, axes = plt.subplots(1, k, figsize=(side * k, side + 0.6), dpi=150, squeeze=False)
    for ax, (epoch, g) in zip(axes[0], grids):
        ax.imshow(g, cmap="gray" if g.ndim == 2 else None, vmin=0, vmax=255,
                  interpolation="nearest")  # (H, W) greyscale or (H, W, 3) colour
        ax.set_title(f"epoch {epoch}", fontsize=12)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return _png(fig)


def scatter_png(points: np.ndarray, labels: np.ndarray | None, title: str,
                class_names: list[str] | None = None, background: np.ndarray | None = None,
                axes: tuple[str, str] = ("", "")) -> bytes:
    """2-D points coloured by class with a legend (t-SNE, 2-D codes); optional grey background;
    ``axes``: the x and y axis labels."""
    plt = _plt()
    size = float(np.clip(3000 / max(len(points), 1), 2, 16))  # visible dots for small sets
    fig, ax = plt.subplots(figsize=(7.2, 6.4), dpi=110)
    if background is not None:
        ax.scatter(background[:, 0], background[:, 1], s=2, c="0.8", alpha=0.5, linewidths=0,
                   label="prior samples", rasterized=True)
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=size, c="tab:blue", alpha=0.6, linewidths=0,
                   rasterized=True)
    else:
        classes = np.unique(labels)
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for i, c in enumerate(classes):
            m = labels == c
            name = class_names[c] if class_names and c < len(class_names) else str(c)
            ax.scatter(points[m, 0], points[m, 1], s=size, color=cmap(i % cmap.N), alpha=0.7,
                       linewidths=0, label=name, rasterized=True)
        ax.legend(markerscale=max(1.0, 12 / size), fontsize=9, loc="center left", bbox_to_anchor=(1.0, 0.5),
                  frameon=False, title="class")
    ax.set_title(title)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_aspect("equal", adjustable="datalim")
    return _png(fig)


def latent_png(codes: np.ndarray, fit: dict, pdfs: list, title: str = "") -> bytes:
    """Per-dimension mean and std against the prior's, and each dimension's histogram with the
    prior's marginal density drawn over it."""
    plt = _plt()
    d = codes.shape[1]
    shown = min(d, 16)
    ncol = min(4, shown)
    nrow = -(-shown // ncol)
    fig = plt.figure(figsize=(3.0 * max(ncol, 3), 3.2 + 2.3 * nrow), dpi=100)
    gs = fig.add_gridspec(nrow + 1, ncol, height_ratios=[1.3] + [1] * nrow)
    ax = fig.add_subplot(gs[0, :])
    idx = np.arange(d)
    ax.errorbar(idx - 0.1, fit["mean"], yerr=fit["std"], fmt="o", capsize=4, color="tab:blue",
                label="codes: mean +- std")
    ax.errorbar(idx + 0.1, fit["prior_mean"], yerr=fit["prior_std"], fmt="s", capsize=4,
                color="tab:red", alpha=0.7, label="prior: mean +- std")
    ax.set_xticks(idx)
    ax.set_xlabel("latent dimension")
    ax.set_title(f"q(z) against the prior: MMD^2 = {fit['mmd2']:.4f}")
    ax.legend(fontsize=9, loc="upper right")
    ax.axhline(0, color="0.6", lw=0.8)
    for j in range(shown):
        a = fig.add_subplot(gs[1 + j // ncol, j % ncol])
        x = codes[:, j]
        a.hist(x, bins=60, density=True, color="tab:blue", alpha=0.6, label="codes")
        if pdfs[j] is not None:
            lo, hi = np.percentile(x, [0.1, 99.9])
            pm, ps = fit["prior_mean"][j], fit["prior_std"][j]
            grid = np.linspace(min(lo, pm - 4 * ps), max(hi, pm + 4 * ps), 300)
            a.plot(grid, pdfs[j](grid), color="tab:red", lw=1.5, label="prior")
        ks = fit["ks"][j]
        a.set_title(f"z[{j}]  mean {fit['mean'][j]:+.2f}  std {fit['std'][j]:.2f}"
                    + (f"  KS {ks:.3f}" if ks is not None else ""), fontsize=8.5)
        a.tick_params(labelsize=7)
        if j == 0:
            a.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)


def tsne_embed(x: np.ndarray, seed: int = 0, n_jobs: int = 0) -> np.ndarray:
    """2-D t-SNE with openTSNE's FFT-accelerated gradients.

    Iterations tuned on 10 000 MNIST test codes (d = 8) on 2 cores: openTSNE's defaults (250
    early-exaggeration + 500 iterations) take 40 s for a final KL divergence of 2.77; 100 + 250
    take 12.5 s for 2.89, with the same clusters (experiments/performance). scikit-learn's Barnes-Hut
    TSNE takes about 48 s here.
    """
    import os

    from openTSNE import TSNE

    jobs = n_jobs or os.cpu_count() or 1
    return np.asarray(TSNE(n_components=2, perplexity=30, early_exaggeration_iter=100, n_iter=250,
                           n_jobs=jobs, negative_gradient_method="fft", random_state=seed).fit(
        tsne_input(x)))


def tsne_input(x: np.ndarray) -> np.ndarray:
    """``x`` centred and scaled to unit std, as float64: t-SNE's result does not depend on the
    scale (each point's kernel width is fitted to the perplexity), but openTSNE crashes the process
    (a segmentation fault) on points that are all the same, or spread by 1e-300 or by 1e30. Raises
    ``ValueError`` for points with NaN or infinite values or no spread."""
    x = np.array(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"t-SNE needs an (N >= 2, d) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("t-SNE needs finite points; these hold NaN or infinite values")
    for _ in range(2):  # into [-1, 1] (the mean and std cannot overflow), then centred likewise
        top = np.abs(x).max()
        if not top > 0:
            raise ValueError("t-SNE needs points with spread; these are all the same point")
        x = x / top
        x -= x.mean(0)
    return np.ascontiguousarray(x / x.std())


def curves_png(panels: list[tuple[str, str, dict[str, tuple[list, list]]]], xlabel: str,
               title: str = "", cols: int = 3) -> bytes:
    """Line plots, one panel per (title, y label, {series name: (x, y)}); series sharing a name
    keep one colour across panels (one run or one quantity per colour)."""
    plt = _plt()
    panels = [p for p in panels if any(len(x) for x, _ in p[2].values())]
    if not panels:
        panels = [("no data yet", "", {})]
    cols = min(cols, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.2 * rows), dpi=90, squeeze=False)
    names = list(dict.fromkeys(n for _, _, s in panels for n in s))
    colours = {n: plt.cm.tab10(i % 10) for i, n in enumerate(names)}
    for ax, (ptitle, ylabel, series) in zip(axes.flat, panels):
        for name, (x, y) in series.items():
            if len(x):
                ax.plot(x, y, label=name, color=colours[name], marker="o" if len(x) < 30 else None,
                        ms=3, lw=1.4)
        ax.set_title(ptitle, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if len(series) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _png(fig)
