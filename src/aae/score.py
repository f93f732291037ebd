"""Per-image outlier scores of a trained AAE (``aae score``).

``score_images`` gives three scores per image (reconstruction error, latent density under the
prior, the discriminators' verdict); ``write_scores`` writes them as CSV and ``auroc`` says how well
each finds known outliers.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch

from . import priors
from .fileio import atomic_write_text
from .model import AAE


@torch.no_grad()
def score_images(model: AAE, x: torch.Tensor, batch: int = 2000) -> dict[str, np.ndarray]:
    """Outlier scores (higher = more unusual) for images (N, C, H, W):

    * ``recon_error``: mean squared reconstruction error per pixel;
    * ``neg_log_prior``: -log p(E(x)) under the prior (absent where the prior has no density);
    * ``disc_score``: 1 - the discriminators' probability that E(x) is a prior sample, averaged
      over the groups' discriminators.
    """
    model.eval()
    reg = model.regularizers[0]
    out: dict[str, list[np.ndarray]] = {"recon_error": [], "neg_log_prior": [], "disc_score": []}
    has_density = True
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        codes = model.encode(xb)
        z = codes[reg.code]
        rec = model.decode(codes)
        out["recon_error"].append((rec - xb).pow(2).flatten(1).mean(1).cpu().numpy())
        if has_density:
            try:
                out["neg_log_prior"].append((-priors.log_prob(reg.prior, z)).cpu().numpy())
            except NotImplementedError:
                has_density = False
        labels = None if not reg.num_labels else torch.full((len(z),), -1, device=z.device)
        out["disc_score"].append((1 - reg.score(z, labels)).cpu().numpy())
    result = {k: np.concatenate(v) for k, v in out.items() if v}
    if not has_density:
        result.pop("neg_log_prior", None)
    return result


def auroc(scores: dict[str, np.ndarray], is_outlier: np.ndarray) -> dict[str, float]:
    """AUROC of finding the outliers by each score (scikit-learn); empty with one class only."""
    from sklearn.metrics import roc_auc_score

    if is_outlier.all() or not is_outlier.any():
        return {}
    return {k: float(roc_auc_score(is_outlier, v)) for k, v in scores.items()}


def write_scores(path: Path, names: list[str], scores: dict[str, np.ndarray],
                 is_outlier: np.ndarray | None = None) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = list(scores)
    w.writerow(["image", *cols, *(["is_outlier"] if is_outlier is not None else [])])
    for i, name in enumerate(names):
        row = [name, *(f"{scores[c][i]:.6g}" for c in cols)]
        if is_outlier is not None:
            row.append(int(is_outlier[i]))
        w.writerow(row)
    atomic_write_text(path, buf.getvalue())
