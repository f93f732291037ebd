"""Grouped discriminators: the original report's question as configuration of one regularizer.

The batch is split into N groups; discriminator k is trained only on group k's codes (against its
own prior samples), and the encoder's adversarial loss combines the N per-group losses with an
aggregation rule (mean, GMAN's softmax, max, median, trimmed mean, Dropout-GAN's random subset).

The N discriminators are one module whose weights are stacked along a leading axis, so the whole
group runs as a few batched matrix products (``torch.baddbmm``) rather than a Python loop over N
small networks: N = 16 adds no Python work and no extra FLOPs per image over N = 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import AGGREGATES

__all__ = ["AGGREGATES", "StackedMLP", "aggregate", "group_means", "to_groups"]


class StackedMLP(nn.Module):
    """N independent MLPs of the same sizes, evaluated together.

    Input (N, B, in) -> output (N, B, out): row k of the input goes through network k only.
    Initialised like ``nn.Linear`` (or N(0, init_std^2) weights and zero biases), independently per
    network.
    """

    def __init__(self, n: int, sizes: list[int], init_std: float = 0.0):
        super().__init__()
        self.n = n
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(sizes[:-1], sizes[1:]):
            w = torch.empty(n, a, b)
            bias = torch.empty(n, 1, b)
            if init_std > 0:
                nn.init.normal_(w, 0.0, init_std)
                nn.init.zeros_(bias)
            else:  # nn.Linear's default: U(-1/sqrt(in), 1/sqrt(in)) for weights and biases
                bound = 1 / math.sqrt(a)
                nn.init.uniform_(w, -bound, bound)
                nn.init.uniform_(bias, -bound, bound)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = torch.relu(x)
        return x

    def member(self, k: int) -> nn.Sequential:
        """Network k as a plain ``nn.Sequential`` of ``nn.Linear`` (for tests and inspection)."""
        layers: list[nn.Module] = []
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            lin = nn.Linear(w.shape[1], w.shape[2])
            with torch.no_grad():
                lin.weight.copy_(w[k].T)
                lin.bias.copy_(b[k, 0])
            layers.append(lin)
            if i < last:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)


def to_groups(t: torch.Tensor, n: int, fill: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, ...) -> ((n, g, ...), mask (n, g)) with g = ceil(B / n): position p of the batch goes
    to group p % n, so group sizes differ by at most one (a batch built shard by shard puts shard
    k at positions k, k + n, ...). Missing entries are ``fill``; ``mask`` marks the real ones."""
    b = len(t)
    g = -(-b // n)
    pad = n * g - b
    mask = torch.ones(n * g, dtype=torch.bool, device=t.device)
    if pad:
        t = torch.cat([t, t.new_full((pad, *t.shape[1:]), fill)])
        mask[b:] = False
    return t.view(g, n, *t.shape[1:]).transpose(0, 1), mask.view(g, n).T


def group_means(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (n, g) ``values`` over the real entries of each group -> (n,)."""
    m = mask.to(values.dtype)
    return (values * m).sum(1) / m.sum(1).clamp_min(1)


def aggregate(losses: torch.Tensor, rule: str, temperature: float = 1.0, trim: float = 0.25,
              keep: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Combine N per-group losses (N,) into the encoder's one adversarial loss.

    * mean: the plain average (in expectation, the gradient of one discriminator);
    * softmax: GMAN's soft mean, weights softmax(temperature * L_k) held constant; temperature 0 is
      the mean, large temperatures approach the max;
    * max: the group the discriminators find most fake;
    * median: the median group (the average of the two middle ones for even N), median-of-means;
    * trimmed: the mean after dropping floor(trim * N) groups at each end;
    * dropout: the mean over a random subset, each group kept with probability ``keep`` (at least
      one), as Dropout-GAN.
    """
    n = len(losses)
    if rule == "mean" or n == 1:
        return losses.mean()
    if rule == "softmax":
        w = torch.softmax(temperature * losses.detach(), 0)
        return (w * losses).sum()
    if rule == "max":
        return losses.max()
    s = torch.sort(losses).values
    if rule == "median":
        return s[(n - 1) // 2: n // 2 + 1].mean()
    if rule == "trimmed":
        k = int(math.floor(trim * n))
        return s[k:n - k].mean()
    if rule == "dropout":
        u = torch.rand(n, generator=generator, device=generator.device if generator else None)
        kept = (u < keep).to(losses.device)
        kept[torch.argmin(u).to(losses.device)] = True  # never an empty subset
        return (losses * kept).sum() / kept.sum()
    raise ValueError(f"unknown aggregate {rule!r}")  # config validation names the option first


def epoch_order(n: int, b: int, data_gen: torch.Generator, groups: int = 1,
                shard_seed: int | None = None) -> tuple[torch.Tensor, int]:
    """An epoch's example order and number of steps (the last partial batch is dropped: every
    step sees a full batch of ``b``).

    With ``shard_seed`` (``model.group_split = "shard"``) the training set is cut once, by that
    seed, into ``groups`` fixed shards; every batch takes b / groups examples of each shard, shard
    k at batch positions k, k + groups, ..., which :func:`to_groups` maps to group k:
    discriminator k only ever sees shard k."""
    if shard_seed is None:
        return torch.randperm(n, generator=data_gen), n // b
    k = groups
    fixed = torch.randperm(n, generator=torch.Generator().manual_seed(shard_seed))
    shards = fixed[:n // k * k].view(k, n // k)
    shuffled = shards.gather(1, torch.rand(shards.shape, generator=data_gen).argsort(1))
    g = b // k
    steps = shards.shape[1] // g
    return shuffled[:, :steps * g].reshape(k, steps, g).permute(1, 2, 0).reshape(-1), steps
