"""A small feature classifier for sample-quality metrics, trained once and cached.

Inception-based FID means little on 28x28 digits and needs weights that cannot be downloaded on
an offline machine, so the Frechet distance here is computed in the penultimate layer of an MLP
trained on the run's own dataset. Training is deterministic (fixed seed, fixed order, one thread
count), so the same data gives the same weights; they are cached under ``~/.cache/aae/classifier``
with their SHA-256, verified on every load, and retrained if the file is damaged.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from .data import ImageData, cache_dir
from .fileio import atomic_write_bytes, atomic_write_json

VERSION = 1
HIDDEN = (512, 256)
EPOCHS = 4


class FeatureClassifier(nn.Module):
    def __init__(self, in_dim: int, classes: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_dim, HIDDEN[0]), nn.ReLU(),
                                  nn.Linear(HIDDEN[0], HIDDEN[1]), nn.ReLU())
        self.head = nn.Linear(HIDDEN[1], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x.flatten(1)))

    @torch.no_grad()
    def features(self, x: torch.Tensor, batch: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
        """(penultimate features, class probabilities) for a tensor of images."""
        self.eval()
        feats, probs = [], []
        for i in range(0, len(x), batch):
            h = self.body(x[i:i + batch].flatten(1).float())
            feats.append(h)
            probs.append(F.softmax(self.head(h), dim=1))
        return torch.cat(feats), torch.cat(probs)


def _fingerprint(data: ImageData) -> str:
    h = hashlib.sha256()
    for t in (data.train_x, data.train_y):
        h.update(np.ascontiguousarray(t.cpu().numpy()).tobytes())
    return h.hexdigest()[:16]


def train_classifier(data: ImageData, seed: int = 0) -> FeatureClassifier:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x, y = data.train_x.cpu(), data.train_y.cpu()
    model = FeatureClassifier(x[0].numel(), data.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(EPOCHS):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 128):
            idx = perm[i:i + 128]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


def get_classifier(data: ImageData) -> tuple[FeatureClassifier, dict]:
    """The cached classifier for this exact training set, training it on first use."""
    key = f"{data.name}-v{VERSION}-{_fingerprint(data)}"
    folder = cache_dir() / "classifier"
    wpath, jpath = folder / f"{key}.safetensors", folder / f"{key}.json"
    model = FeatureClassifier(data.train_x[0].numel(), data.num_classes)
    if wpath.is_file() and jpath.is_file():
        try:
            info = json.loads(jpath.read_text())
            blob = wpath.read_bytes()
            if hashlib.sha256(blob).hexdigest() == info["sha256"]:
                model.load_state_dict(st_load(blob))
                return model.eval(), info
        except (OSError, ValueError, KeyError, RuntimeError):
            pass  # damaged cache: train again below
    model = train_classifier(data)
    _, probs = model.features(data.test_x.cpu())
    acc = float((probs.argmax(1) == data.test_y.cpu()).float().mean())
    blob = st_save({k: v.contiguous() for k, v in model.state_dict().items()})
    info = {"key": key, "sha256": hashlib.sha256(blob).hexdigest(), "test_accuracy": acc,
            "architecture": f"MLP {data.train_x[0].numel()}-{HIDDEN[0]}-{HIDDEN[1]}-{data.num_classes}",
            "epochs": EPOCHS, "features": HIDDEN[1]}
    atomic_write_bytes(wpath, blob)
    atomic_write_json(jpath, info)
    return model, info


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between two feature samples.

    Tr((S_a S_b)^(1/2)) is the sum of the square roots of the eigenvalues of S_a S_b, which are
    real and non-negative for covariance matrices; this avoids scipy's sqrtm, which warns and loses
    accuracy when dead ReLU units make the covariances singular.
    """
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ev = np.linalg.eigvals(sa @ sb)
    tr_sqrt = float(np.sqrt(np.clip(ev.real, 0, None)).sum())
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * tr_sqrt)
