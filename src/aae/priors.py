"""Priors p(z): anything with ``dim`` and ``sample(n, labels=None, generator=None)``.

A prior is what an adversarial regularizer matches the aggregated posterior q(z) to.

What a prior must provide (checked by :func:`check_prior` before a model is built, so that a
wrong prior fails at once with one line instead of after training):

* ``sample(n, labels=None, generator=None)``: ``n`` draws as a ``torch.Tensor`` of shape
  ``(n, dim)`` in torch's default float dtype (float32), all finite. It must draw with the given
  ``generator`` (a ``torch.Generator``) so that runs are reproducible and resume bit for bit. A
  numpy array is refused (``torch.from_numpy(a).float()`` converts one): the training step puts
  the draws beside the codes on the codes' device without converting them.
* ``dim`` (optional but recommended): the code size; when present it must equal
  ``model.code_dim``.

What a prior may provide; :class:`Prior` holds the default used when it does not, and the
functions :func:`moments`, :func:`marginal_cdf`, :func:`marginal_pdf`, :func:`log_prob` and
:func:`assign` apply that default to any object, a :class:`Prior` subclass or not:

* ``moments()``: per-dimension mean and std (latent.json, latent.png, the 2-D manifold).
  Default: estimated from 100 000 draws of ``sample`` with a generator seeded 0.
* ``marginal_cdf(j)`` / ``marginal_pdf(j)``: dimension ``j``'s CDF and density as callables on
  numpy arrays. Default: None; the KS statistics are then null in latent.json and latent.png
  draws the codes' histograms without the prior's density.
* ``log_prob(z)``: the log-density. Default: raises ``NotImplementedError``; the features that
  need a density (``model.reject_quantile``, ``aae score``'s ``neg_log_prior``) are refused or
  left out.
* ``num_components`` and ``assign(z)``: priors made of labelled parts (mixture components, swiss
  roll segments): ``sample(n, labels)`` draws each labelled row from its label's part (label -1:
  the whole prior), and ``assign`` says which part a code belongs to. Default: no components.

A user's own prior is any object with ``sample`` (and ``dim``), named in the config as
``prior.name = "package.module:attribute"`` (a prior object, or a callable taking ``dim``).
Subclassing :class:`Prior` is optional; it gives the defaults above as methods.
"""

from __future__ import annotations

import importlib
import inspect
import math

import torch

from .config import PriorConfig
from .errors import AAEError


def _device(generator: torch.Generator | None) -> torch.device | None:
    return generator.device if generator is not None else None


class Prior:
    """Base class. ``sample`` must draw with the given ``generator`` so that runs are reproducible."""

    dim: int
    num_components: int = 0  # > 0: labels select parts of the prior (mixture components, segments)

    def sample(self, n: int, labels: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def _on(self, t: torch.Tensor, device: torch.device) -> torch.Tensor:
        """A constant of this prior on ``device``, copied there once: a step captured as a CUDA
        graph may not copy from host memory, and an uncaptured one need not copy every step."""
        if t.device == device:
            return t
        cache = self.__dict__.setdefault("_device_copies", {})
        key = (id(t), str(device))
        if key not in cache:
            cache[key] = (t, t.to(device))  # t kept alive so that its id is not reused
        return cache[key][1]

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no closed-form density")

    def assign(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no components")

    def marginal_cdf(self, dim: int):
        """The CDF of dimension ``dim`` as a callable on numpy arrays (for KS tests), or None."""
        return None

    def marginal_pdf(self, dim: int):
        """The density of dimension ``dim`` as a callable on numpy arrays (for plots), or None."""
        return None

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-dimension mean and std, estimated from 100 000 samples (generator seeded 0) unless a
        subclass knows them."""
        z = self.sample(100_000, generator=torch.Generator().manual_seed(0)).detach().cpu()
        return z.mean(0), z.std(0)


def _method(prior, name: str):
    """``prior``'s own method ``name``, or :class:`Prior`'s default bound to ``prior``."""
    own = getattr(prior, name, None)
    return own if callable(own) else getattr(Prior, name).__get__(prior)


def moments(prior) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std of any prior (its ``moments()``, or estimated from samples)."""
    mean, std = _method(prior, "moments")()
    return torch.as_tensor(mean).float().cpu(), torch.as_tensor(std).float().cpu()


def marginal_cdf(prior, dim: int):
    """Dimension ``dim``'s CDF (a callable on numpy arrays), or None where the prior has none."""
    return _method(prior, "marginal_cdf")(dim)


def marginal_pdf(prior, dim: int):
    """Dimension ``dim``'s density (a callable on numpy arrays), or None where the prior has none."""
    return _method(prior, "marginal_pdf")(dim)


def log_prob(prior, z: torch.Tensor) -> torch.Tensor:
    """log p(z); ``NotImplementedError`` where the prior has no density."""
    return _method(prior, "log_prob")(z)


def assign(prior, z: torch.Tensor) -> torch.Tensor:
    """The part of the prior each code belongs to; ``NotImplementedError`` where it has none."""
    return _method(prior, "assign")(z)


def has_density(prior, dim: int) -> bool:
    """Whether ``log_prob`` works (on one code of zeros)."""
    try:
        log_prob(prior, torch.zeros(1, dim))
    except NotImplementedError:
        return False
    return True


class Gaussian(Prior):
    """N(mean, diag(std^2)) in ``dim`` dimensions; N(0, I) is the original report's prior."""

    def __init__(self, dim: int, std: float | list[float] = 1.0, mean: float = 0.0):
        self.dim = dim
        self.std = torch.as_tensor(std, dtype=torch.float32).expand(dim).clone()
        self.mean = torch.full((dim,), float(mean))

    def sample(self, n, labels=None, generator=None):
        eps = torch.randn(n, self.dim, generator=generator, device=_device(generator))
        return self._on(self.mean, eps.device) + eps * self._on(self.std, eps.device)

    def log_prob(self, z):
        std, mean = self._on(self.std, z.device), self._on(self.mean, z.device)
        u = (z - mean) / std
        return (-0.5 * u.pow(2) - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)

    def moments(self):
        return self.mean.clone(), self.std.clone()

    def marginal_cdf(self, dim):
        from scipy.stats import norm

        return norm(float(self.mean[dim]), float(self.std[dim])).cdf

    def marginal_pdf(self, dim):
        from scipy.stats import norm

        return norm(float(self.mean[dim]), float(self.std[dim])).pdf


class Uniform(Prior):
    """Uniform on the box [-half_width, half_width]^dim."""

    def __init__(self, dim: int, half_width: float = 1.0):
        self.dim, self.a = dim, float(half_width)

    def sample(self, n, labels=None, generator=None):
        u = torch.rand(n, self.dim, generator=generator, device=_device(generator))
        return (2 * u - 1) * self.a

    def log_prob(self, z):
        inside = (z.abs() <= self.a).all(-1)
        lp = torch.full(z.shape[:-1], -self.dim * math.log(2 * self.a), device=z.device)
        return torch.where(inside, lp, torch.full_like(lp, -math.inf))

    def moments(self):
        return torch.zeros(self.dim), torch.full((self.dim,), self.a / math.sqrt(3))

    def marginal_cdf(self, dim):
        from scipy.stats import uniform

        return uniform(-self.a, 2 * self.a).cdf

    def marginal_pdf(self, dim):
        from scipy.stats import uniform

        return uniform(-self.a, 2 * self.a).pdf


def _pick_components(n: int, k: int, labels: torch.Tensor | None, generator, device) -> torch.Tensor:
    """Component index per row: the label where there is one (>= 0), else uniform at random."""
    comp = torch.randint(0, k, (n,), generator=generator, device=device)
    if labels is not None:
        labels = labels.to(comp.device)
        comp = torch.where(labels >= 0, labels % k, comp)
    return comp


class GaussianMixture2D(Prior):
    """K Gaussians spread evenly on a circle of ``radius``, each elongated along its radius
    (paper figures 2-4; the layout of the reimplementations noted in docs/paper.md)."""

    dim = 2

    def __init__(self, k: int = 10, radius: float = 1.4, std_radial: float = 0.5,
                 std_tangential: float = 0.05):
        self.num_components = self.k = k
        self.radius, self.sr, self.st = radius, std_radial, std_tangential
        ang = 2 * math.pi * torch.arange(k, dtype=torch.float32) / k
        self.dirs = torch.stack([ang.cos(), ang.sin()], 1)  # (k, 2) radial unit vectors
        self.perp = torch.stack([-ang.sin(), ang.cos()], 1)  # (k, 2) tangential unit vectors

    def sample(self, n, labels=None, generator=None):
        dev = _device(generator)
        comp = _pick_components(n, self.k, labels, generator, dev)
        e = torch.randn(n, 2, generator=generator, device=dev)
        d, p = self._on(self.dirs, e.device)[comp], self._on(self.perp, e.device)[comp]
        return d * (self.radius + self.sr * e[:, :1]) + p * (self.st * e[:, 1:])

    def _component_log_probs(self, z: torch.Tensor) -> torch.Tensor:
        d, p = self._on(self.dirs, z.device), self._on(self.perp, z.device)
        a = z @ d.T - self.radius  # (n, k) radial offset from each centre
        b = z @ p.T  # (n, k) tangential offset
        return (-0.5 * (a / self.sr) ** 2 - 0.5 * (b / self.st) ** 2
                - math.log(2 * math.pi * self.sr * self.st) - math.log(self.k))

    def log_prob(self, z):
        return torch.logsumexp(self._component_log_probs(z), dim=-1)

    def assign(self, z):
        """The component of highest responsibility for each code."""
        return self._component_log_probs(z).argmax(-1)


class SwissRoll2D(Prior):
    """A 2-D swiss roll: u ~ U(0, 1), radius ``scale`` * sqrt(u), angle ``turns`` * 2 pi * sqrt(u);
    label l draws u from the l-th of ``k`` equal segments (paper figures 2 and 4)."""

    dim = 2

    def __init__(self, k: int = 10, scale: float = 3.0, turns: float = 2.0, noise: float = 0.0):
        self.num_components = self.k = k
        self.scale, self.turns, self.noise = scale, turns, noise

    def point(self, u: torch.Tensor) -> torch.Tensor:
        s = u.sqrt()
        ang = 2 * math.pi * self.turns * s
        return torch.stack([ang.cos(), ang.sin()], -1) * (self.scale * s).unsqueeze(-1)

    def sample(self, n, labels=None, generator=None):
        dev = _device(generator)
        u = torch.rand(n, generator=generator, device=dev)
        if labels is not None:
            labels = labels.to(u.device)
            u = torch.where(labels >= 0, (labels % self.k + u) / self.k, u)
        z = self.point(u)
        if self.noise:
            z = z + self.noise * torch.randn(n, 2, generator=generator, device=dev)
        return z

    def assign(self, z):
        """The segment of the nearest point of the roll (on a fine grid of u)."""
        u = (torch.arange(4000, device=z.device, dtype=z.dtype) + 0.5) / 4000
        nearest = torch.cdist(z, self.point(u)).argmin(-1)
        return (u[nearest] * self.k).long().clamp_max(self.k - 1)


class Categorical(Prior):
    """One-hot vectors over ``k`` classes, uniform (a prior for a softmax y head); a label picks
    its own class."""

    def __init__(self, k: int):
        self.dim = self.num_components = self.k = k

    def sample(self, n, labels=None, generator=None):
        dev = _device(generator)
        comp = _pick_components(n, self.k, labels, generator, dev)
        return torch.nn.functional.one_hot(comp, self.k).float()

    def assign(self, z):
        return z.argmax(-1)

    def moments(self):
        p = 1.0 / self.k
        return torch.full((self.k,), p), torch.full((self.k,), math.sqrt(p * (1 - p)))


def _two_d(cfg: PriorConfig, dim: int, make):
    if dim != 2:
        raise AAEError(f"option prior.name: the {cfg.name} prior is 2-D, but model.code_dim is "
                       f"{dim}; set --set model.code_dim=2")
    return make()


PRIORS = {
    "gaussian": lambda cfg, dim: Gaussian(dim, cfg.std),
    "uniform": lambda cfg, dim: Uniform(dim, cfg.half_width),
    "mixture": lambda cfg, dim: _two_d(cfg, dim, lambda: GaussianMixture2D(
        cfg.components, cfg.radius, cfg.std_radial, cfg.std_tangential)),
    "swiss_roll": lambda cfg, dim: _two_d(cfg, dim, lambda: SwissRoll2D(cfg.components,
                                                                           noise=cfg.roll_noise)),
    "categorical": lambda cfg, dim: Categorical(dim),
}


def _load_user_prior(cfg: PriorConfig, dim: int) -> Prior:
    module, _, attr = cfg.name.partition(":")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise AAEError(f"option prior.name: cannot load {cfg.name!r} ({e})") from None
    if inspect.isclass(obj) or (callable(obj) and not hasattr(obj, "sample")):
        try:
            obj = obj(dim)
        except Exception as e:  # the user's code: any failure is one line naming the prior
            raise AAEError(f"option prior.name: {cfg.name}({dim}) raised "
                           f"{type(e).__name__}: {_first_line(e)}") from None
    return obj


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:300] if lines else "(no message)"


CHECK_ROWS = 7  # draws taken by check_prior: few, and unlikely to equal a code size by chance


def _describe(z) -> str | None:
    """What is wrong with ``z``'s type, dtype or values as draws of a prior, or None (the caller
    checks the shape)."""
    expected = torch.get_default_dtype()
    if not isinstance(z, torch.Tensor):
        hint = "; convert it with torch.from_numpy(a).float()" if type(z).__module__ == "numpy" else ""
        return f"a {type(z).__module__}.{type(z).__qualname__}; expected a torch.Tensor{hint}"
    if z.dtype != expected:
        return f"dtype {z.dtype}; expected {expected} (the codes' dtype; use .float())"
    if not torch.isfinite(z).all():
        return f"{int((~torch.isfinite(z)).sum())} NaN or infinite values; expected finite draws"
    return None


def _call_sample(prior, label: str, labels: torch.Tensor | None):
    call = "sample(7)" if labels is None else "sample(7, labels)"
    try:
        return prior.sample(CHECK_ROWS, labels=labels,
                            generator=torch.Generator().manual_seed(0)), call
    except Exception as e:  # the user's code: any failure is one line naming the prior
        raise AAEError(f"option prior.name: prior {label}: {call} raised {type(e).__name__}: "
                       f"{_first_line(e)}") from None


def check_prior(prior, dim: int, name: str | None = None) -> None:
    """Refuse, with one :class:`AAEError` line naming the prior, anything the training loop and
    the artifacts could not use: no ``sample(n, labels=None, generator=None)``, a ``dim`` other
    than ``dim``, or draws (7 of them, generator seeded 0; for a prior with components also 7
    with labels -1, 0, 1, ...) that are not a float tensor of shape (7, ``dim``) with finite
    values. An exception raised by ``sample`` becomes that line too."""
    label = repr(name or type(prior).__name__)
    sample = getattr(prior, "sample", None)
    if not callable(sample):
        raise AAEError(f"option prior.name: {label} has no sample(n, labels=None, generator=None) "
                       "method")
    try:
        inspect.signature(sample).bind(CHECK_ROWS, labels=None, generator=None)
    except TypeError:
        raise AAEError(f"option prior.name: prior {label}: sample{inspect.signature(sample)} does "
                       "not accept (n, labels=None, generator=None)") from None
    except ValueError:  # no signature to inspect (a builtin): calling it will tell
        pass
    if getattr(prior, "dim", dim) != dim:
        raise AAEError(f"option prior.name: {label} has dim {prior.dim}, but model.code_dim is {dim}")
    k = getattr(prior, "num_components", 0) or 0
    for labels in [None] + ([torch.arange(CHECK_ROWS) % (k + 1) - 1] if k else []):
        z, call = _call_sample(prior, label, labels)
        wrong = _describe(z)
        if wrong is None and tuple(z.shape) != (CHECK_ROWS, dim):
            wrong = (f"shape {tuple(z.shape)}; expected ({CHECK_ROWS}, {dim}): one row per draw, "
                     f"model.code_dim = {dim} columns")
        if wrong:
            raise AAEError(f"option prior.name: prior {label}: {call} returned {wrong}")


def build_prior(cfg: PriorConfig, dim: int) -> Prior:
    """The prior ``cfg`` names, for codes of ``dim`` dimensions, checked by :func:`check_prior`."""
    if ":" in cfg.name:
        prior = _load_user_prior(cfg, dim)
    else:
        try:
            make = PRIORS[cfg.name]
        except KeyError:
            raise AAEError(f"option prior.name: unknown prior {cfg.name!r}; expected one of "
                           f"{', '.join(sorted(PRIORS))}, or package.module:attribute") from None
        prior = make(cfg, dim)
    check_prior(prior, dim, cfg.name)
    return prior
