"""Networks a user might bring (the factories of tests/test_nets.py), following aae.nets' protocol."""

from __future__ import annotations

import math

from torch import nn


class TinyConvEncoder(nn.Module):
    def __init__(self, image_shape, out_dim):
        super().__init__()
        c, h, w = image_shape
        self.body = nn.Sequential(nn.Conv2d(c, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                                  nn.Linear(8 * h * w, out_dim))

    def forward(self, x):
        return self.body(x)


def encoder(image_shape, out_dim):
    return TinyConvEncoder(image_shape, out_dim)


def decoder(in_dim, image_shape):
    return nn.Sequential(nn.Linear(in_dim, 32), nn.ReLU(), nn.Linear(32, math.prod(image_shape)))


def discriminator(in_dim):
    return nn.Sequential(nn.Linear(in_dim, 16), nn.ReLU(), nn.Linear(16, 1))


def wrong_width(image_shape, out_dim):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(image_shape), out_dim + 1))


def not_a_module(image_shape, out_dim):
    return "a string"
