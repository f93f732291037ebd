"""A plain eager AAE step written straight from the paper, the baseline of bench/throughput.py.

Three phases, each with its own forward pass, as most public implementations write it:
reconstruction (encoder + decoder), discriminator (codes recomputed without a graph), generator
(encoder forward again, discriminator gradients computed and thrown away). Adam everywhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def mlp(sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ReferenceAAE:
    def __init__(self, in_dim=784, hidden=1000, code=8, lrs=(1e-3, 1e-4, 1e-4), device="cpu"):
        self.enc = mlp([in_dim, hidden, hidden, code]).to(device)
        self.dec = nn.Sequential(mlp([code, hidden, hidden, in_dim]), nn.Sigmoid()).to(device)
        self.disc = mlp([code, hidden, hidden, 1]).to(device)
        self.opt_ae = torch.optim.Adam([*self.enc.parameters(), *self.dec.parameters()], lr=lrs[0])
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=lrs[1])
        self.opt_g = torch.optim.Adam(self.enc.parameters(), lr=lrs[2])
        self.code = code

    def step(self, x: torch.Tensor) -> None:
        x = x.flatten(1)
        # reconstruction phase
        loss = F.mse_loss(self.dec(self.enc(x)), x)
        self.opt_ae.zero_grad()
        loss.backward()
        self.opt_ae.step()
        # regularization phase: discriminator
        with torch.no_grad():
            z_fake = self.enc(x)
        z_real = torch.randn(len(x), self.code, device=x.device)
        d_real, d_fake = self.disc(z_real), self.disc(z_fake)
        d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        self.opt_d.zero_grad()
        d_loss.backward()
        self.opt_d.step()
        # regularization phase: encoder as generator
        d_gen = self.disc(self.enc(x))
        g_loss = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
        self.opt_g.zero_grad()
        g_loss.backward()
        self.opt_g.step()
