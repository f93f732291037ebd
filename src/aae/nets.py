"""Networks as parts: the paper's MLPs."""

from __future__ import annotations

from torch import nn


def mlp(sizes: list[int], init_std: float = 0.0) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them and a linear output."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(a, b)
        if init_std > 0:  # the paper's N(0, 0.01^2) initialisation (appendix A)
            nn.init.normal_(lin.weight, 0.0, init_std)
            nn.init.zeros_(lin.bias)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
