"""Adversarial regularizers: each matches the aggregated posterior of one code to one prior.

* :class:`Regularizer`: one discriminator (paper section 2), optionally seeing the label
  (section 2.3, figure 3);
* :class:`GroupedRegularizer`: the batch split into N groups, one discriminator each, the encoder's
  loss an aggregate of the N per-group losses (the original report's open question;
  :mod:`aae.groups`);
* :class:`LikelihoodRejection`: drops each step's least likely codes under the prior from the
  reconstruction and adversarial losses (Beggel et al. 2019).

Each regularizer answers the same three questions for the training step (:mod:`aae.step`): the
discriminator's losses (:meth:`Regularizer.disc_losses`), the encoder's adversarial loss
(:meth:`Regularizer.gen_loss`) and both from one pass (:meth:`Regularizer.joint_losses`). A
``keep`` mask (B,) bool, from likelihood rejection, drops examples from the code side.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .groups import StackedMLP, aggregate, group_means, to_groups
from .nets import build_part, check_output, mlp
from .priors import Categorical, Prior


class DiscLosses(NamedTuple):
    """A discriminator phase's outcome: the loss to step on, the loss to log (grouped: the mean
    over the groups), and the accuracies on prior samples and on codes."""

    loss: torch.Tensor
    log: torch.Tensor
    acc_prior: torch.Tensor
    acc_code: torch.Tensor


def wmean(v: torch.Tensor, keep: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """The mean of ``v`` over the examples that ``keep`` marks (all of them without a mask)."""
    if keep is None:
        return v.mean()
    w = keep.to(dtype)
    return (v * w).sum() / w.sum()


def balance_kl(y: torch.Tensor) -> torch.Tensor:
    """KL(mean of the rows of ``y`` || uniform): zero when a batch of class probabilities uses
    every class equally, log K when it puts everything in one.

    The categorical discriminator alone rarely revives an empty cluster: a one-hot code sits on a
    saturated softmax whose gradient is near zero, and the discriminator has never seen the points
    between two corners. This batch-level term (the marginal-entropy term of CatGAN, Springenberg
    2015) gives every class a gradient through the batch mean, which is never saturated. Under
    torchrun the mean is over each process's slice of the batch.
    """
    p = y.mean(0)
    return (p * p.clamp_min(1e-12).log()).sum() + math.log(y.shape[-1])


class Regularizer(nn.Module):
    """One discriminator on code ``code`` against ``prior``.

    With ``num_labels`` = K > 0 the discriminator also sees a one-hot label of K + 1 slots, the
    last meaning "no label" (paper section 2.3, figure 3). For a categorical prior with
    ``model.y_balance`` > 0 the encoder's loss adds that weight times :func:`balance_kl`.
    """

    groups = 1  # discriminators (one per group of the batch)
    stacked = False  # whether they are one stacked module

    def __init__(self, code: str, prior: Prior, dim: int, cfg: ModelConfig, num_labels: int = 0):
        super().__init__()
        self.code = code
        self.prior = prior
        self.num_labels = num_labels
        self.cfg = cfg
        self.balance = cfg.y_balance if isinstance(prior, Categorical) else 0.0
        self.discriminator = self._build(dim + (num_labels + 1 if num_labels else 0), cfg)

    def _build(self, n_in: int, cfg: ModelConfig) -> nn.Module:
        if cfg.discriminator:
            net = build_part("model.discriminator", cfg.discriminator, n_in)
            check_output(net, "model.discriminator", torch.zeros(2, n_in), (1,))
            return net
        return mlp([n_in, *cfg.disc_hidden, 1], cfg.init_std)

    def _input(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if self.num_labels:
            slot = torch.where(labels >= 0, labels, torch.full_like(labels, self.num_labels))
            z = torch.cat([z, F.one_hot(slot, self.num_labels + 1).to(z.dtype)], dim=-1)
        return z

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Discriminator logits (B, d) -> (B,), positive meaning 'a prior sample'."""
        return self.discriminator(self._input(z, labels)).squeeze(-1)

    def disc_losses(self, zp: torch.Tensor, z: torch.Tensor, labels: torch.Tensor | None = None,
                    keep: torch.Tensor | None = None) -> DiscLosses:
        """The discriminator phase on prior samples ``zp`` and (detached) codes ``z``, in one pass
        over both (larger products)."""
        y2 = None if labels is None else torch.cat([labels, labels])
        d_real, d_fake = self(torch.cat([zp, z]), y2).chunk(2)
        loss = F.softplus(-d_real).mean() + wmean(F.softplus(d_fake), keep, z.dtype)
        return DiscLosses(loss, loss, (d_real > 0).float().mean(),
                          wmean((d_fake < 0).float(), keep, z.dtype))

    def gen_loss(self, z: torch.Tensor, labels: torch.Tensor | None = None,
                 keep: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """The encoder's adversarial loss on codes ``z`` (the discriminators frozen)."""
        return self._with_balance(self._adversarial(z, labels, keep, generator), z)

    def _adversarial(self, z, labels, keep, generator) -> torch.Tensor:  # noqa: ARG002
        return wmean(F.softplus(-self(z, labels)), keep, z.dtype)

    def _with_balance(self, loss: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return loss + self.balance * balance_kl(z) if self.balance > 0 else loss

    def joint_losses(self, zp: torch.Tensor, z: torch.Tensor, labels: torch.Tensor | None = None,
                     keep: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """The joint schedule's losses from one discriminator pass over the prior samples ``zp``
        and one over the codes ``z`` (not detached): (:class:`DiscLosses`, the encoder's
        adversarial loss). The caller back-propagates the first into the discriminator only and
        the second into the encoder only. Two passes of B rows, not one of 2B: the encoder's
        backward pass goes through the code rows only. With rejection, the paper schedule's two
        functions on detached codes."""
        if keep is not None:
            return (self.disc_losses(zp, z.detach(), labels, keep),
                    self.gen_loss(z, labels, keep, generator))
        d_real, d_fake = self(zp, labels), self(z, labels)
        loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        gen = self._with_balance(F.softplus(-d_fake).mean(), z)
        return DiscLosses(loss, loss, (d_real > 0).float().mean(), (d_fake < 0).float().mean()), gen

    @torch.no_grad()
    def score(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Per-code probability of 'a prior sample' (B,)."""
        return torch.sigmoid(self(z, labels))


class GroupedRegularizer(Regularizer):
    """N = ``model.disc_groups`` discriminators, each on its group of the batch.

    By default N independent discriminators (one stacked module), discriminator k trained on group
    k only, and the encoder's loss an aggregate (``model.disc_aggregate``) of the N per-group
    losses. ``disc_input = "full"`` shows every discriminator the whole batch; ``disc_shared``
    keeps one discriminator, trained as the plain one, and aggregates its per-group losses
    (median-of-means).
    """

    def __init__(self, code: str, prior: Prior, dim: int, cfg: ModelConfig, num_labels: int = 0):
        self.groups = cfg.disc_groups
        self.stacked = not cfg.disc_shared
        super().__init__(code, prior, dim, cfg, num_labels)

    def _build(self, n_in: int, cfg: ModelConfig) -> nn.Module:
        if not self.stacked:
            return super()._build(n_in, cfg)
        hidden = cfg.disc_hidden
        if cfg.disc_budget == "total":  # N discriminators with about the parameters of one
            hidden = [max(1, round(h / math.sqrt(self.groups))) for h in hidden]
        return StackedMLP(self.groups, [n_in, *hidden, 1], cfg.init_std)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Stacked: (N, g, d) -> (N, g), group k through discriminator k; a (B, d) input goes
        through all N discriminators -> (N, B). Shared: (B, d) -> (B,)."""
        h = self._input(z, labels)
        if self.stacked and h.dim() == 2:
            h = h.expand(self.groups, *h.shape)
        return self.discriminator(h).squeeze(-1)

    def _grouped(self, t: torch.Tensor | None, fill: float = 0.0):
        return (None, None) if t is None else to_groups(t, self.groups, fill)

    def _code_mask(self, mask: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        return mask if keep is None else mask & self._grouped(keep, False)[0]

    def disc_losses(self, zp, z, labels=None, keep=None) -> DiscLosses:
        if not self.stacked:
            return super().disc_losses(zp, z, labels, keep)
        y2 = None if labels is None else torch.cat([labels, labels])
        if self.cfg.disc_input == "full":  # every discriminator judges the whole batch
            d_real, d_fake = self(torch.cat([zp, z]), y2).chunk(2, dim=1)  # (N, B) each
            mask = torch.ones_like(d_fake, dtype=torch.bool)
            mask_c = mask if keep is None else mask & keep
        else:
            gp, mask = self._grouped(zp)
            gz, _ = self._grouped(z)
            gy, _ = self._grouped(labels, -1)
            g = gp.shape[1]
            out = self(torch.cat([gp, gz], 1), None if gy is None else torch.cat([gy, gy], 1))
            d_real, d_fake = out[:, :g], out[:, g:]
            mask_c = self._code_mask(mask, keep)
        per = group_means(F.softplus(-d_real), mask) + group_means(F.softplus(d_fake), mask_c)
        acc_p = group_means((d_real > 0).float(), mask).mean()
        acc_c = group_means((d_fake < 0).float(), mask_c).mean()
        # each discriminator steps on its own loss; the log shows their mean
        return DiscLosses(per.sum(), per.mean(), acc_p, acc_c)

    def _adversarial(self, z, labels, keep, generator) -> torch.Tensor:
        c = self.cfg
        if self.stacked and c.disc_input == "full":
            vals = F.softplus(-self(z, labels))  # (N, B)
            mask = torch.ones_like(vals, dtype=torch.bool) if keep is None else keep.expand_as(vals)
        elif self.stacked:
            gz, mask = self._grouped(z)
            gy, _ = self._grouped(labels, -1)
            vals = F.softplus(-self(gz, gy))
            mask = self._code_mask(mask, keep)
        else:  # one shared discriminator, its per-example losses grouped
            vals, mask = self._grouped(F.softplus(-self(z, labels)))
            mask = self._code_mask(mask, keep)
        return aggregate(group_means(vals, mask), c.disc_aggregate, c.disc_temperature,
                         c.disc_trim, c.disc_keep, generator)

    def joint_losses(self, zp, z, labels=None, keep=None, generator=None):
        """Grouped discriminators take the paper schedule's two functions (detached codes for
        the discriminators)."""
        return (self.disc_losses(zp, z.detach(), labels, keep),
                self.gen_loss(z, labels, keep, generator))

    @torch.no_grad()
    def score(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Per-code probability of 'a prior sample', averaged over the discriminators (B,)."""
        p = torch.sigmoid(self(z, labels))
        return p.mean(0) if self.stacked else p


def make_regularizer(code: str, prior: Prior, dim: int, cfg: ModelConfig,
                     num_labels: int = 0) -> Regularizer:
    """The regularizer kind the config asks for: grouped with ``model.disc_groups`` > 1."""
    kind = GroupedRegularizer if cfg.disc_groups > 1 else Regularizer
    return kind(code, prior, dim, cfg, num_labels)


class LikelihoodRejection:
    """Keep the examples whose codes are at least as likely under ``reg``'s prior as the
    ``quantile`` of this batch (Beggel et al. 2019); the rest are left out of the step's
    reconstruction and adversarial losses."""

    def __init__(self, quantile: float):
        self.quantile = quantile

    def __call__(self, reg: Regularizer, codes: dict[str, torch.Tensor]) -> torch.Tensor:
        logp = reg.prior.log_prob(codes[reg.code].detach())
        return logp >= torch.quantile(logp, self.quantile)
