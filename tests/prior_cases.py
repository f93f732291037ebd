"""User priors for the tests: one written as the README documents (``dim`` and ``sample`` only) and
broken ones, each wrong in one way, named in configs as ``prior_cases:NAME``."""

import math

import numpy as np
import torch


class Ring:
    """The minimal prior: the unit circle in 2-D, or the unit sphere in ``dim`` dimensions."""

    def __init__(self, dim: int = 2):
        self.dim = dim

    def sample(self, n, labels=None, generator=None):
        z = torch.randn(n, self.dim, generator=generator)
        return z / z.norm(dim=1, keepdim=True)


RING = Ring(2)
SPHERE3 = Ring(3)


def sphere(dim):
    """A factory: the config names it, aae calls it with model.code_dim."""
    return Ring(dim)


class _Bad:
    dim = 2
    make = staticmethod(lambda n, g: torch.randn(n, 2, generator=g))

    def __init__(self, make=None):
        if make is not None:
            self.make = make

    def sample(self, n, labels=None, generator=None):
        return self.make(n, generator)


WIDE = _Bad(lambda n, g: torch.randn(n, 3, generator=g))  # width 3, dim says 2
SHORT = _Bad(lambda n, g: torch.randn(max(n - 1, 0), 2, generator=g))  # one row too few
LIST = _Bad(lambda n, g: torch.randn(n, 2, generator=g).tolist())
NUMPY = _Bad(lambda n, g: np.zeros((n, 2), dtype=np.float32))
INTS = _Bad(lambda n, g: torch.randint(0, 3, (n, 2), generator=g))
DOUBLE = _Bad(lambda n, g: torch.randn(n, 2, generator=g, dtype=torch.float64))
FLAT = _Bad(lambda n, g: torch.randn(n * 2, generator=g))
NAN = _Bad(lambda n, g: torch.full((n, 2), math.nan))
INF = _Bad(lambda n, g: torch.full((n, 2), math.inf))


def _raises(n, g):
    raise ValueError("radius must be positive\nsecond line of detail")


RAISES = _Bad(_raises)


class NoSample:
    dim = 2


NO_SAMPLE = NoSample()


class OldSignature:
    """``sample(n)`` only: the training step passes labels= and generator=."""

    dim = 2

    def sample(self, n):
        return torch.zeros(n, 2)


OLD_SIGNATURE = OldSignature()


class Parts:
    """Two labelled halves of a segment, whose labelled draws come out one column short."""

    dim = 2
    num_components = 2

    def sample(self, n, labels=None, generator=None):
        z = torch.rand(n, 2, generator=generator)
        return z if labels is None else z[:, :1]


PARTS = Parts()


def broken_factory(dim):
    raise RuntimeError(f"cannot build a {dim}-D prior")
