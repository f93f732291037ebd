"""The one AAE model that every variant configures.

* an encoder with named heads (today ``z``; later a softmax ``y`` beside it),
* a decoder fed the concatenation of named codes (``decoder_inputs``),
* a list of adversarial regularizers, each = (the code it watches, a prior, a discriminator).

The training step in :mod:`aae.training` runs the paper's phases over this structure, so a new variant
adds heads or regularizers here, not a new loop.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import ModelConfig
from .priors import Prior


def mlp(sizes: list[int], init_std: float = 0.0) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them and a linear output."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(a, b)
        if init_std > 0:  # the paper's N(0, 0.01^2) initialisation (appendix A, check)
            nn.init.normal_(lin.weight, 0.0, init_std)
            nn.init.zeros_(lin.bias)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Regularizer(nn.Module):
    """One adversarial regularizer: matches the aggregated posterior of ``code`` to ``prior``."""

    def __init__(self, code: str, prior: Prior, discriminator: nn.Module):
        super().__init__()
        self.code = code
        self.prior = prior
        self.discriminator = discriminator

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Discriminator logits (N,): positive means 'a prior sample'."""
        return self.discriminator(z).squeeze(-1)


class AAE(nn.Module):
    def __init__(self, image_shape: tuple[int, ...], cfg: ModelConfig, prior: Prior):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.cfg = cfg
        in_dim = math.prod(self.image_shape)
        d = cfg.code_dim
        # encoder: trunk + one linear head per code; the trunk's last layer is the head itself
        self.encoder = mlp([in_dim, *cfg.encoder_hidden, d], cfg.init_std)
        self.decoder = mlp([d, *cfg.decoder_hidden, in_dim], cfg.init_std)
        self.decoder_inputs = ["z"]
        self.regularizers = nn.ModuleList(
            [Regularizer("z", prior, mlp([d, *cfg.disc_hidden, 1], cfg.init_std))]
        )

    # -- forward pieces -------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images (N, C, H, W) -> named codes, e.g. {"z": (N, d)}."""
        return {"z": self.encoder(x.flatten(1))}

    def decode_logits(self, codes: dict[str, torch.Tensor]) -> torch.Tensor:
        """Named codes -> pre-activation outputs (N, C*H*W)."""
        h = torch.cat([codes[k] for k in self.decoder_inputs], dim=-1)
        return self.decoder(h)

    def output(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.cfg.output == "sigmoid" else logits

    def decode(self, codes: dict[str, torch.Tensor]) -> torch.Tensor:
        """Named codes -> images (N, C, H, W)."""
        return self.output(self.decode_logits(codes)).view(-1, *self.image_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    # -- parameter groups, one per optimizer phase ---------------------------------------------
    def autoencoder_parameters(self) -> list[nn.Parameter]:
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return [p for r in self.regularizers for p in r.discriminator.parameters()]

    def generator_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())

    @torch.no_grad()
    def encode_all(self, x: torch.Tensor, batch: int = 2000) -> dict[str, torch.Tensor]:
        """Encode a whole tensor in chunks (evaluation mode, no graph)."""
        was = self.training
        self.eval()
        parts = [self.encode(x[i:i + batch]) for i in range(0, len(x), batch)]
        self.train(was)
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]} if parts else {}
