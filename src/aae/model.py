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
from .groups import StackedMLP, aggregate, group_means, to_groups
from .priors import Categorical, Prior


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


def random_warp(x: torch.Tensor, shift: float, degrees: float, scale: float) -> torch.Tensor:
    """Each image of ``x`` (N, C, H, W) under its own random affine warp: a shift of up to
    ``shift`` pixels along each axis, a rotation of up to ``degrees`` and a change of scale of up
    to ``scale``, all uniform, bilinear, edges repeated. Draws from torch's global generator (which
    checkpoints save); one batched ``affine_grid`` + ``grid_sample``, so it runs on any device and
    inside a CUDA graph."""
    n, _, h, w = x.shape
    u = torch.rand(n, 4, device=x.device, dtype=x.dtype) * 2 - 1
    angle = u[:, 0] * math.radians(degrees)
    s = 1 + u[:, 1] * scale
    cos, sin = torch.cos(angle) * s, torch.sin(angle) * s
    # affine_grid's coordinates run from -1 to 1 across the image: one pixel is 2 / size
    tx, ty = u[:, 2] * (2 * shift / w), u[:, 3] * (2 * shift / h)
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class Regularizer(nn.Module):
    """One adversarial regularizer: matches the aggregated posterior of ``code`` to ``prior``.

    With ``num_labels`` = K > 0 the discriminator also sees a one-hot label of K + 1 slots, the
    last meaning "no label" (paper section 2.3, figure 3).

    With ``cfg.disc_groups`` = N > 1 the batch is split into N groups (:mod:`aae.groups`): by
    default N independent discriminators (one stacked module), discriminator k trained on group k
    only, and the encoder's loss an aggregate of the N per-group losses. ``disc_input = "full"``
    shows every discriminator the whole batch; ``disc_shared`` keeps one discriminator and
    aggregates its per-group losses (median-of-means). N = 1 is the plain AAE, op for op.
    """

    def __init__(self, code: str, prior: Prior, dim: int, cfg: ModelConfig, num_labels: int = 0):
        super().__init__()
        self.code = code
        self.prior = prior
        self.num_labels = num_labels
        self.groups = cfg.disc_groups
        self.cfg = cfg
        n_in = dim + (num_labels + 1 if num_labels else 0)
        self.stacked = self.groups > 1 and not cfg.disc_shared
        if self.stacked:
            hidden = cfg.disc_hidden
            if cfg.disc_budget == "total":  # N discriminators with about the parameters of one
                hidden = [max(1, round(h / math.sqrt(self.groups))) for h in hidden]
            self.discriminator: nn.Module = StackedMLP(self.groups, [n_in, *hidden, 1], cfg.init_std)
        else:
            self.discriminator = mlp([n_in, *cfg.disc_hidden, 1], cfg.init_std)

    def _input(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if self.num_labels:
            slot = torch.where(labels >= 0, labels, torch.full_like(labels, self.num_labels))
            z = torch.cat([z, F.one_hot(slot, self.num_labels + 1).to(z.dtype)], dim=-1)
        return z

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Discriminator logits, positive meaning 'a prior sample'. Plain or shared: (B, d) ->
        (B,). Stacked: (N, g, d) -> (N, g), group k through discriminator k; a (B, d) input goes
        through all N discriminators -> (N, B)."""
        h = self._input(z, labels)
        if self.stacked and h.dim() == 2:
            h = h.expand(self.groups, *h.shape)
        return self.discriminator(h).squeeze(-1)

    def _grouped(self, t: torch.Tensor | None, fill: float = 0.0):
        return (None, None) if t is None else to_groups(t, self.groups, fill)

    def disc_losses(self, zp: torch.Tensor, z: torch.Tensor, labels: torch.Tensor | None = None,
                    keep: torch.Tensor | None = None):
        """The discriminator phase on prior samples ``zp`` and (detached) codes ``z``.

        Returns (loss to step on, loss to log, accuracy on prior samples, accuracy on codes).
        ``keep`` (B,) bool drops examples (likelihood rejection) from the code side."""
        y2 = None if labels is None else torch.cat([labels, labels])
        if not self.stacked and keep is None:
            # one pass over prior samples and codes together (larger products)
            d_real, d_fake = self(torch.cat([zp, z]), y2).chunk(2)
            loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
            return loss, loss, (d_real > 0).float().mean(), (d_fake < 0).float().mean()
        if not self.stacked:
            d_real, d_fake = self(torch.cat([zp, z]), y2).chunk(2)
            w = keep.to(z.dtype)
            loss = F.softplus(-d_real).mean() + (F.softplus(d_fake) * w).sum() / w.sum()
            return loss, loss, (d_real > 0).float().mean(), ((d_fake < 0).float() * w).sum() / w.sum()
        if self.cfg.disc_input == "full":  # every discriminator judges the whole batch
            out = self(torch.cat([zp, z]), y2)  # (N, 2B)
            d_real, d_fake = out.chunk(2, dim=1)
            mask = torch.ones_like(d_fake, dtype=torch.bool)
            mask_c = mask if keep is None else mask & keep
        else:
            gp, mask = self._grouped(zp)
            gz, _ = self._grouped(z)
            gy, _ = self._grouped(labels, -1)
            g = gp.shape[1]
            out = self(torch.cat([gp, gz], 1), None if gy is None else torch.cat([gy, gy], 1))
            d_real, d_fake = out[:, :g], out[:, g:]
            mask_c = mask if keep is None else mask & self._grouped(keep, False)[0]
        per = group_means(F.softplus(-d_real), mask) + group_means(F.softplus(d_fake), mask_c)
        acc_p = group_means((d_real > 0).float(), mask).mean()
        acc_c = group_means((d_fake < 0).float(), mask_c).mean()
        # each discriminator steps on its own loss; the log shows their mean
        return per.sum(), per.mean(), acc_p, acc_c

    def gen_loss(self, z: torch.Tensor, labels: torch.Tensor | None = None,
                 keep: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """The encoder's adversarial loss on codes ``z`` (the discriminators frozen), plus, for a
        categorical code with ``model.y_balance`` > 0, that weight times the balance term."""
        return self._with_balance(self._adversarial_loss(z, labels, keep, generator), z)

    def _with_balance(self, loss: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if isinstance(self.prior, Categorical) and self.cfg.y_balance > 0:
            loss = loss + self.cfg.y_balance * balance_kl(z)
        return loss

    def _adversarial_loss(self, z, labels, keep, generator) -> torch.Tensor:
        if self.groups == 1:
            if keep is None:
                return F.softplus(-self(z, labels)).mean()
            w = keep.to(z.dtype)
            return (F.softplus(-self(z, labels)) * w).sum() / w.sum()
        c = self.cfg
        if self.stacked and c.disc_input == "full":
            vals = F.softplus(-self(z, labels))  # (N, B)
            mask = torch.ones_like(vals, dtype=torch.bool) if keep is None else keep.expand_as(vals)
        elif self.stacked:
            gz, mask = self._grouped(z)
            gy, _ = self._grouped(labels, -1)
            vals = F.softplus(-self(gz, gy))
        else:  # one shared discriminator, its per-example losses grouped
            vals, mask = self._grouped(F.softplus(-self(z, labels)))
        if keep is not None and c.disc_input != "full":
            mask = mask & self._grouped(keep, False)[0]
        return aggregate(group_means(vals, mask), c.disc_aggregate, c.disc_temperature,
                         c.disc_trim, c.disc_keep, generator)

    def joint_losses(self, zp: torch.Tensor, z: torch.Tensor, labels: torch.Tensor | None = None,
                     keep: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """The joint schedule's losses from one discriminator pass over the prior samples ``zp``
        and one over the codes ``z`` (not detached): (discriminator loss to step on, its log
        value, accuracy on prior samples, accuracy on codes, the encoder's adversarial loss). The
        caller back-propagates the first into the discriminator only and the last into the
        encoder only.

        A plain discriminator sees prior samples and codes in two passes of B rows (one of 2B
        rows would make the encoder's backward pass through the discriminator twice as large);
        grouped discriminators and likelihood rejection take the paper schedule's two functions
        (:meth:`disc_losses` on detached codes, :meth:`gen_loss`)."""
        if self.groups > 1 or keep is not None:
            loss, log, acc_p, acc_c = self.disc_losses(zp, z.detach(), labels, keep)
            return loss, log, acc_p, acc_c, self.gen_loss(z, labels, keep, generator)
        d_real, d_fake = self(zp, labels), self(z, labels)
        loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        gen = self._with_balance(F.softplus(-d_fake).mean(), z)
        return loss, loss, (d_real > 0).float().mean(), (d_fake < 0).float().mean(), gen

    @torch.no_grad()
    def score(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Per-code probability of 'a prior sample', averaged over the discriminators (B,)."""
        p = torch.sigmoid(self(z, labels))
        return p.mean(0) if self.stacked else p


class AAE(nn.Module):
    """The one model. ``cfg.class_input`` selects what the decoder gets beside z:

    * ``none``: z only (the unsupervised AAE, paper sections 2-3);
    * ``label``: the one-hot label of the data (the supervised style/content AAE, section 4);
    * ``y``: a softmax head q(y|x) over ``cfg.classes`` classes, regularized to a categorical
      prior by a second discriminator (semi-supervised classification and clustering, sections
      5-6); codes are then {"z", "y", "y_logits"}.
    """

    def __init__(self, image_shape: tuple[int, ...], cfg: ModelConfig, prior: Prior,
                 num_labels: int = 0):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.cfg = cfg
        in_dim = math.prod(self.image_shape)
        d = cfg.code_dim
        self.classes = cfg.classes if cfg.class_input != "none" else 0
        y_head = cfg.class_input in ("y", "heads")
        # q(z|x) (paper section 2.1): deterministic; gaussian (the head predicts mean and
        # log-variance, reparameterised); universal (noise appended to the encoder's input)
        self.posterior = cfg.posterior
        self.z_out = 2 * d if cfg.posterior == "gaussian" else d
        head = self.z_out + (self.classes if y_head else 0)
        extra = cfg.noise_dim if cfg.posterior == "universal" else 0
        # the heads share the trunk: one output layer holds the z and the y units
        self.encoder = mlp([in_dim + extra, *cfg.encoder_hidden, head], cfg.init_std)
        concat = self.classes if cfg.class_input in ("y", "label") else 0
        self.decoder = mlp([d + concat, *cfg.decoder_hidden, in_dim], cfg.init_std)
        self.class_input = None if cfg.class_input == "none" else cfg.class_input
        self.decoder_inputs = {None: ["z"], "label": ["label", "z"], "y": ["y", "z"],
                               "heads": ["r"]}[self.class_input]
        if cfg.class_input == "heads":
            # dimensionality reduction (section 7): the representation r = W y + z, one learned
            # cluster head (a row of W) per cluster, kept apart by head_penalty
            self.heads = nn.Parameter(torch.randn(self.classes, d) * cfg.head_init)
        labels = num_labels if cfg.label_conditioning else 0
        regs = [Regularizer("z", prior, d, cfg, labels)]
        if y_head:  # q(y) against a uniform categorical (paper figure 8)
            regs.append(Regularizer("y", Categorical(self.classes), self.classes, cfg))
        self.regularizers = nn.ModuleList(regs)

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
            out = torch.stack(outs).mean(0)
        else:
            out = self.encoder(h)
        codes: dict[str, torch.Tensor] = {}
        if self.class_input in ("y", "heads"):
            out, logits = out[:, :self.z_out], out[:, self.z_out:]
            codes["y_logits"] = logits
            codes["y"] = torch.softmax(logits, dim=-1)
        if self.posterior == "gaussian":
            mean, logvar = out.chunk(2, dim=-1)
            codes["z"] = mean if not self.training else (
                mean + torch.exp(0.5 * logvar) * torch.randn_like(mean))
        else:
            codes["z"] = out
        if self.class_input == "heads":
            codes["r"] = codes["y"] @ self.heads + codes["z"]
        return codes

    def with_classes(self, codes: dict[str, torch.Tensor],
                     classes: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Add the decoder's class input (one-hot ``classes``) to ``codes`` where it takes one;
        for ``y`` the encoder's own y is kept unless classes are given."""
        key = "r" if self.class_input == "heads" else self.class_input
        if self.class_input is None or (classes is None and key in codes):
            return codes
        if classes is None:
            raise ValueError("this model's decoder needs the class of every code")
        onehot = F.one_hot(classes.long(), self.classes).to(codes["z"].dtype)
        if self.class_input == "heads":
            return {**codes, "y": onehot, "r": onehot @ self.heads + codes["z"]}
        return {**codes, self.class_input: onehot}

    def prior_codes(self, z: torch.Tensor, generator: torch.Generator | None = None,
                    classes: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Codes to decode from prior samples ``z``: with a class input, classes drawn uniformly
        (or the given ones)."""
        if self.class_input is not None and classes is None:
            classes = torch.randint(self.classes, (len(z),), generator=generator,
                                    device=generator.device if generator else None).to(z.device)
        return self.with_classes({"z": z}, classes)

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
        heads = [self.heads] if self.class_input == "heads" else []
        return [*self.encoder.parameters(), *self.decoder.parameters(), *heads]

    def head_penalty(self) -> torch.Tensor:
        """Sum over pairs of cluster heads of max(0, eta - distance): zero for heads farther apart
        than ``model.head_eta``, growing linearly as two come closer (paper section 7)."""
        d = torch.pdist(self.heads)
        return F.relu(self.cfg.head_eta - d).sum()

    def consistency_loss(self, x_in: torch.Tensor, codes: dict[str, torch.Tensor]) -> torch.Tensor:
        """The encoder's consistency terms on q(y|x), with q(y|x) (from ``codes``, the encoder's
        output on ``x_in``) held fixed as the target. ``model.y_consistency`` x KL(q(y|x) ||
        q(y|T(x))), T a random warp (:func:`random_warp`): the cluster of an image should not
        change when it is shifted or turned a little. ``model.y_mixup`` x KL(lam q(y|x_i) +
        (1 - lam) q(y|x_j) || q(y|lam x_i + (1 - lam) x_j)), random pairs of the batch, lam
        uniform in [0, 1]: predictions should change gradually between images, so that no image
        far from the rest is more confident than a cluster's typical members (docs/clustering.md).
        ``model.y_vat`` x KL(q(y|x) || q(y|x + r)), r of norm ``model.vat_eps`` in the direction
        that changes q(y|x) most (:meth:`vat_perturbation`). Zero without any of the terms."""
        c = self.cfg
        loss = codes["z"].new_zeros(())
        if c.y_consistency <= 0 and c.y_mixup <= 0 and c.y_vat <= 0:  # (and a model without a y
            return loss  # head has no codes["y"])
        x_in = x_in.reshape(-1, *self.image_shape)
        target = codes["y"].detach()
        if c.y_consistency > 0:
            warped = self.encode(random_warp(x_in, c.warp_shift, c.warp_degrees, c.warp_scale))
            loss = loss + c.y_consistency * F.kl_div(torch.log_softmax(warped["y_logits"], -1),
                                                     target, reduction="batchmean")
        if c.y_mixup > 0:  # interpolation consistency (ICT, Verma et al. 2019)
            perm = torch.randperm(len(x_in), device=x_in.device)
            lam = torch.rand(len(x_in), 1, device=x_in.device)
            mixed = self.encode(lam.view(-1, 1, 1, 1) * x_in + (1 - lam.view(-1, 1, 1, 1)) * x_in[perm])
            loss = loss + c.y_mixup * F.kl_div(torch.log_softmax(mixed["y_logits"], -1),
                                               lam * target + (1 - lam) * target[perm],
                                               reduction="batchmean")
        if c.y_vat > 0:
            adv = self.encode(x_in + self.vat_perturbation(x_in, target))
            loss = loss + c.y_vat * F.kl_div(torch.log_softmax(adv["y_logits"], -1), target,
                                             reduction="batchmean")
        return loss

    def vat_perturbation(self, x: torch.Tensor, target: torch.Tensor, xi: float = 0.1) -> torch.Tensor:
        """Per image, the perturbation of L2 norm ``model.vat_eps`` that most increases
        KL(target || q(y|x + r)), by one power iteration from a random direction (Miyato et al.
        2018, algorithm 1): the gradient of that KL at a step of norm ``xi`` along the random
        direction, normalised. Hand-written (a few lines; none of the libraries used here has
        it). Only the direction needs the gradient: the encoder's weights get none from this
        pass, and the result is detached."""
        def unit(v: torch.Tensor) -> torch.Tensor:
            return v / v.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (v.dim() - 1))

        d = (xi * unit(torch.randn_like(x))).requires_grad_(True)
        with torch.enable_grad():
            kl = F.kl_div(torch.log_softmax(self.encode(x + d)["y_logits"], -1), target.detach(),
                          reduction="batchmean")
            (grad,) = torch.autograd.grad(kl, d)
        return self.cfg.vat_eps * unit(grad.detach())

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return [p for r in self.regularizers for p in r.discriminator.parameters()]

    def generator_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch: int = 2000) -> torch.Tensor:
        """The most likely class under q(y|x) for each image (models with a y head)."""
        return self.encode_all(x, batch)["y_logits"].argmax(1)

    @torch.no_grad()
    def encode_all(self, x: torch.Tensor, batch: int = 2000) -> dict[str, torch.Tensor]:
        """Encode a whole tensor in chunks (evaluation mode, no graph)."""
        was = self.training
        self.eval()
        parts = [self.encode(x[i:i + batch]) for i in range(0, len(x), batch)]
        self.train(was)
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]} if parts else {}
