"""Networks as parts: the paper's MLPs, a convolutional family, or a user's own modules.

``model.arch`` picks the encoder and decoder family: ``mlp`` (the paper's, over flattened pixels)
or ``conv`` (DCGAN-style: stride-2 convolutions down, stride-2 transposed convolutions up, the
channels of each stage in ``model.conv_widths``, and fully connected layers of ``model.conv_hidden``
between the last feature map and the code). The discriminators on codes stay MLPs.

Your own networks: ``model.encoder``, ``model.decoder`` and ``model.discriminator`` name a factory
as ``"package.module:factory"``, imported when the model is built (and again when a saved run is
loaded: the path is part of the run's config, never pickled code). The protocol:

* encoder: ``factory(image_shape, out_dim)`` -> a module mapping images (N, C, H, W) to (N, out_dim);
  ``out_dim`` holds every head (z, its log-variance for the gaussian posterior, and the y logits);
* decoder: ``factory(in_dim, image_shape)`` -> a module mapping codes (N, in_dim) to pre-activation
  outputs (N, C, H, W) or (N, C*H*W) (``model.output`` applies the sigmoid);
* discriminator: ``factory(in_dim)`` -> a module mapping codes (N, in_dim) to logits (N, 1) or (N,).

``image_shape`` is (C, H, W). From Python, module instances can be given directly
(:func:`aae.runs.build_model`'s ``parts``).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable

import torch
from torch import nn

from .errors import AAEError


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


def conv_sizes(image_shape: tuple[int, ...], stages: int) -> list[tuple[int, int]]:
    """(H, W) before the first stage and after each stride-2 stage (kernel 4, padding 1)."""
    _, h, w = image_shape
    sizes = [(h, w)]
    for _ in range(stages):
        h, w = h // 2, w // 2
        sizes.append((h, w))
    return sizes


class ConvEncoder(nn.Module):
    """Stride-2 convolutions (kernel 4, LeakyReLU 0.2), then linear layers to ``out_dim``: one, or
    through the ``hidden`` sizes (ReLU between)."""

    def __init__(self, image_shape: tuple[int, ...], out_dim: int, widths: list[int],
                 hidden: list[int] | None = None):
        super().__init__()
        c = image_shape[0]
        layers: list[nn.Module] = []
        for width in widths:
            layers += [nn.Conv2d(c, width, 4, 2, 1), nn.LeakyReLU(0.2)]
            c = width
        h, w = conv_sizes(image_shape, len(widths))[-1]
        self.features = nn.Sequential(*layers)
        self.head = mlp([c * h * w, *hidden, out_dim]) if hidden else nn.Linear(c * h * w, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))  # (N, C, H, W) -> (N, out_dim)


class ConvDecoder(nn.Module):
    """Linear layers to the smallest feature map (one, or through the ``hidden`` sizes in reverse),
    then stride-2 transposed convolutions (kernel 4, ReLU) back to the image's size; the
    encoder's stages mirrored."""

    def __init__(self, in_dim: int, image_shape: tuple[int, ...], widths: list[int],
                 hidden: list[int] | None = None):
        super().__init__()
        sizes = conv_sizes(image_shape, len(widths))
        self.start = (widths[-1], *sizes[-1])
        size = math.prod(self.start)
        self.fc = mlp([in_dim, *reversed(hidden), size]) if hidden else nn.Linear(in_dim, size)
        chans = [*reversed(widths), image_shape[0]]
        layers: list[nn.Module] = []
        for i in range(len(widths)):
            (h, w), (th, tw) = sizes[-1 - i], sizes[-2 - i]
            # a transposed convolution doubles the size; output_padding adds the odd pixel back
            layers.append(nn.ConvTranspose2d(chans[i], chans[i + 1], 4, 2, 1,
                                             output_padding=(th - 2 * h, tw - 2 * w)))
            if i < len(widths) - 1:
                layers.append(nn.ReLU())
        self.up = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.up(torch.relu(self.fc(z)).view(-1, *self.start))  # (N, d) -> (N, C, H, W)


def load_factory(path: str, option: str) -> Callable[..., nn.Module]:
    """The callable named ``"package.module:attribute"``; a one-line error naming ``option``."""
    mod_name, sep, attr = path.partition(":")
    if not sep or not mod_name or not attr:
        raise AAEError(f"option {option}: expected package.module:factory, got {path!r}")
    try:
        obj = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as e:
        raise AAEError(f"option {option}: cannot import {path!r} ({e})") from None
    if not callable(obj):
        raise AAEError(f"option {option}: {path!r} is not callable")
    return obj


def build_part(option: str, path: str, *args) -> nn.Module:
    """A user's network from its factory, checked to be an ``nn.Module``."""
    try:
        net = load_factory(path, option)(*args)
    except AAEError:
        raise
    except Exception as e:  # the user's code: any failure is theirs to fix, said in one line
        raise AAEError(f"option {option}: {path}{args} raised {type(e).__name__}: {e}") from None
    if not isinstance(net, nn.Module):
        raise AAEError(f"option {option}: {path} returned {type(net).__name__}, expected a "
                       "torch.nn.Module")
    return net


@torch.no_grad()
def check_output(net: nn.Module, option: str, x: torch.Tensor, expected: tuple[int, ...]) -> None:
    """Run a user's network once on ``x`` (eval mode) and check the shape of what it returns."""
    was = net.training
    net.eval()
    try:
        out = net(x)
    except Exception as e:  # the user's code
        raise AAEError(f"option {option}: the network failed on an input of shape "
                       f"{tuple(x.shape)} ({type(e).__name__}: {e})") from None
    finally:
        net.train(was)
    if not isinstance(out, torch.Tensor) or math.prod(out.shape[1:]) != math.prod(expected) \
            or out.shape[0] != x.shape[0]:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise AAEError(f"option {option}: the network returned {got} for an input of shape "
                       f"{tuple(x.shape)}; expected ({x.shape[0]}, {', '.join(map(str, expected))})")
