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
import torch.nn.functional as F
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
    """One adversarial regularizer: matches the aggregated posterior of ``code`` to ``prior``.

    With ``num_labels`` = K > 0 the discriminator also sees a one-hot label of K + 1 slots, the
    last meaning "no label" (paper section 2.3, figure 3).
    """

    def __init__(self, code: str, prior: Prior, discriminator: nn.Module, num_labels: int = 0):
        super().__init__()
        self.code = code
        self.prior = prior
        self.discriminator = discriminator
        self.num_labels = num_labels

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Discriminator logits (N,): positive means 'a prior sample'."""
        if self.num_labels:
            slot = torch.where(labels >= 0, labels, torch.full_like(labels, self.num_labels))
            z = torch.cat([z, F.one_hot(slot, self.num_labels + 1).to(z.dtype)], dim=-1)
        return self.discriminator(z).squeeze(-1)


class AAE(nn.Module):
    def __init__(self, image_shape: tuple[int, ...], cfg: ModelConfig, prior: Prior,
                 num_labels: int = 0):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.cfg = cfg
        in_dim = math.prod(self.image_shape)
        d = cfg.code_dim
        # q(z|x) (paper section 2.1): deterministic; gaussian (the head predicts mean and
        # log-variance, reparameterised); universal (noise appended to the encoder's input)
        self.posterior = cfg.posterior
        head = 2 * d if cfg.posterior == "gaussian" else d
        extra = cfg.noise_dim if cfg.posterior == "universal" else 0
        self.encoder = mlp([in_dim + extra, *cfg.encoder_hidden, head], cfg.init_std)
        self.decoder = mlp([d, *cfg.decoder_hidden, in_dim], cfg.init_std)
        self.decoder_inputs = ["z"]
        labels = num_labels if cfg.label_conditioning else 0
        self.regularizers = nn.ModuleList(
            [Regularizer("z", prior, mlp([d + (labels + 1 if labels else 0), *cfg.disc_hidden, 1],
                                         cfg.init_std), labels)]
        )

    # -- forward pieces -------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images (N, C, H, W) -> named codes, e.g. {"z": (N, d)}.

        In training mode the stochastic posteriors draw one sample (torch's global RNG, which
        checkpoints save). In evaluation mode the gaussian posterior returns its mean and the
        universal one the average of ``model.eval_draws`` draws.
        """
        h = x.flatten(1)
        if self.posterior == "universal":
            draws = 1 if self.training else self.cfg.eval_draws
            outs = [self.encoder(torch.cat([h, torch.randn(len(h), self.cfg.noise_dim,
                                                            device=h.device, dtype=h.dtype)], 1))
                    for _ in range(draws)]
            return {"z": torch.stack(outs).mean(0)}
        out = self.encoder(h)
        if self.posterior == "gaussian":
            mean, logvar = out.chunk(2, dim=-1)
            if not self.training:
                return {"z": mean}
            return {"z": mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)}
        return {"z": out}

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
