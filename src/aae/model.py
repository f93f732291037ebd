"""The one AAE model that every variant configures, and what it says of itself.

* an encoder with named heads (``z``; with a y head also a softmax ``y`` beside it),
* a decoder fed the concatenation of named codes (``decoder_inputs``),
* a list of adversarial regularizers (:mod:`aae.regularizers`), each = (the code it watches, a
  prior, one or more discriminators).

What a variant *is* (:class:`Capabilities`: its heads, what the decoder takes beside z, which labels
it needs, which phases its training step has) is decided once, here, from the config; training,
evaluation, artifacts and the CLI ask the model. The model returns the named losses of each phase;
:mod:`aae.step` runs a table of phases over them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .nets import ConvDecoder, ConvEncoder, build_part, check_output, mlp
from .priors import Categorical, Prior
from .regularizers import LikelihoodRejection, make_regularizer


@dataclass(frozen=True)
class Capabilities:
    """What a model is, stated once when it is built.

    ``class_input``: what the decoder takes beside z: None (the unsupervised AAE, paper sections
    2-3), ``"label"`` (the data's one-hot label: supervised style/content, section 4), ``"y"`` (the
    y head's q(y|x): semi-supervised classification and clustering, sections 5-6) or ``"heads"``
    (r = W y + z: dimensionality reduction, section 7). ``classify``: the step has the
    semi-supervised classification phase (a y head trained with labels); a y head without labels
    clusters.
    """

    class_input: str | None
    y_head: bool
    classes: int  # K of the class input (0 without one)
    label_conditioning: bool  # the first discriminator also sees the label (figure 3)
    classify: bool

    @classmethod
    def of(cls, cfg: ModelConfig, labelled: int = -1) -> Capabilities:
        ci = None if cfg.class_input == "none" else cfg.class_input
        y_head = ci in ("y", "heads")
        return cls(class_input=ci, y_head=y_head, classes=cfg.classes if ci else 0,
                   label_conditioning=cfg.label_conditioning,
                   classify=y_head and labelled != 0)

    @property
    def cluster(self) -> bool:
        """A y head trained without labels: its classes are clusters."""
        return self.y_head and not self.classify

    @property
    def class_conditional(self) -> bool:
        """The decoder takes a class beside z (a label, y, or a cluster head)."""
        return self.class_input is not None

    @property
    def label_decoder(self) -> bool:
        """The decoder takes the data's label (so training needs every label)."""
        return self.class_input == "label"

    @property
    def needs_labels(self) -> bool:
        """Training reads labels: for the decoder, the discriminator or the classification."""
        return self.label_decoder or self.classify or self.label_conditioning

    @property
    def representation(self) -> str:
        """The code that plots of the latent space show: z, or r = W y + z with cluster heads."""
        return "r" if self.class_input == "heads" else "z"

    @property
    def description(self) -> str:
        """What the variant is, in a few words (for reports)."""
        if self.representation == "r":
            return "dimensionality-reduction AAE (r = W y + z)"
        if self.y_head:
            return "semi-supervised AAE (y head)" if self.classify else "clustering AAE (y head)"
        if self.label_decoder:
            return "supervised AAE (label to the decoder)"
        return "AAE with labels in the prior" if self.label_conditioning else "unsupervised AAE"

    @property
    def phases(self) -> tuple[str, ...]:
        """The optimizer phases a training step has."""
        return ("recon", "disc", "gen", *(("classify",) if self.classify else ()))


def _encoder(cfg: ModelConfig, image_shape: tuple[int, ...], out_dim: int,
             part: nn.Module | None) -> tuple[nn.Module, bool]:
    """The encoder (images -> ``out_dim`` head units) and whether it takes flattened pixels."""
    if part is not None:
        return part, False
    if cfg.encoder:
        net = build_part("model.encoder", cfg.encoder, image_shape, out_dim)
        check_output(net, "model.encoder", torch.zeros(2, *image_shape), (out_dim,))
        return net, False
    if cfg.arch == "conv":
        return ConvEncoder(image_shape, out_dim, cfg.conv_widths, cfg.conv_hidden), False
    extra = cfg.noise_dim if cfg.posterior == "universal" else 0
    return mlp([math.prod(image_shape) + extra, *cfg.encoder_hidden, out_dim], cfg.init_std), True


def _decoder(cfg: ModelConfig, in_dim: int, image_shape: tuple[int, ...],
             part: nn.Module | None) -> nn.Module:
    """The decoder: codes (in_dim) -> pre-activation outputs of the image's size."""
    if part is not None:
        return part
    if cfg.decoder:
        net = build_part("model.decoder", cfg.decoder, in_dim, image_shape)
        check_output(net, "model.decoder", torch.zeros(2, in_dim), image_shape)
        return net
    if cfg.arch == "conv":
        return ConvDecoder(in_dim, image_shape, cfg.conv_widths, cfg.conv_hidden)
    return mlp([in_dim, *cfg.decoder_hidden, math.prod(image_shape)], cfg.init_std)


class Reconstruction(NamedTuple):
    """The reconstruction phase's outcome: the codes, the rejection mask (None: keep all), the
    reconstruction loss and the loss the autoencoder steps on (with the cluster-head penalty)."""

    codes: dict[str, torch.Tensor]
    keep: torch.Tensor | None
    loss: torch.Tensor
    total: torch.Tensor


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


class AAE(nn.Module):
    """The one model; ``caps`` (:class:`Capabilities`) says which variant it is."""

    def __init__(self, image_shape: tuple[int, ...], cfg: ModelConfig, prior: Prior,
                 num_labels: int = 0, labelled: int = -1,
                 parts: dict[str, nn.Module] | None = None):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.cfg = cfg
        self.caps = caps = Capabilities.of(cfg, labelled)
        d, self.classes = cfg.code_dim, caps.classes
        # q(z|x) (paper section 2.1): deterministic; gaussian (the head predicts mean and
        # log-variance, reparameterised); universal (noise appended to the encoder's input)
        self.posterior = cfg.posterior
        self.z_out = 2 * d if cfg.posterior == "gaussian" else d
        parts = parts or {}
        # the heads share the trunk: one output layer holds the z and the y units
        head = self.z_out + (self.classes if caps.y_head else 0)
        self.encoder, self.flat_input = _encoder(cfg, self.image_shape, head, parts.get("encoder"))
        self.decoder_inputs = {None: ["z"], "label": ["label", "z"], "y": ["y", "z"],
                               "heads": ["r"]}[caps.class_input]
        concat = self.classes if caps.class_input in ("y", "label") else 0
        self.decoder = _decoder(cfg, d + concat, self.image_shape, parts.get("decoder"))
        if caps.class_input == "heads":
            # dimensionality reduction (section 7): the representation r = W y + z, one learned
            # cluster head (a row of W) per cluster, kept apart by head_penalty
            self.heads = nn.Parameter(torch.randn(self.classes, d) * cfg.head_init)
        regs = [make_regularizer("z", prior, d, cfg, num_labels if caps.label_conditioning else 0)]
        if caps.y_head:  # q(y) against a uniform categorical (paper figure 8)
            regs.append(make_regularizer("y", Categorical(self.classes), self.classes, cfg))
        self.regularizers = nn.ModuleList(regs)
        self.rejection = LikelihoodRejection(cfg.reject_quantile) if cfg.reject_quantile > 0 \
            else None

    def compile_networks(self) -> None:
        """``torch.compile`` each network in place (parameter names, and so checkpoints, stay)."""
        for net in (self.encoder, self.decoder, *(r.discriminator for r in self.regularizers)):
            net.compile()

    @property
    def prior(self) -> Prior:
        """The prior of the main code z."""
        return self.regularizers[0].prior

    # -- forward pieces -------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images (N, C, H, W) -> named codes, e.g. {"z": (N, d)}.

        In training mode the stochastic posteriors draw one sample (torch's global RNG, which
        checkpoints save). In evaluation mode the gaussian posterior returns its mean and the
        universal one the average of ``model.eval_draws`` draws.
        """
        h = x.flatten(1) if self.flat_input else x
        if self.posterior == "universal":
            draws = 1 if self.training else self.cfg.eval_draws
            outs = [self.encoder(torch.cat([h, torch.randn(len(h), self.cfg.noise_dim,
                                                            device=h.device, dtype=h.dtype)], 1))
                    for _ in range(draws)]
            out = torch.stack(outs).mean(0)
        else:
            out = self.encoder(h)
        codes: dict[str, torch.Tensor] = {}
        if self.caps.y_head:
            out, logits = out[:, :self.z_out], out[:, self.z_out:]
            codes["y_logits"] = logits
            codes["y"] = torch.softmax(logits, dim=-1)
        if self.posterior == "gaussian":
            mean, logvar = out.chunk(2, dim=-1)
            codes["z"] = mean if not self.training else (
                mean + torch.exp(0.5 * logvar) * torch.randn_like(mean))
        else:
            codes["z"] = out
        if self.caps.class_input == "heads":
            codes["r"] = codes["y"] @ self.heads + codes["z"]
        return codes

    def with_classes(self, codes: dict[str, torch.Tensor],
                     classes: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Add the decoder's class input (one-hot ``classes``) to ``codes`` where it takes one;
        for ``y`` the encoder's own y is kept unless classes are given."""
        ci = self.caps.class_input
        key = "r" if ci == "heads" else ci
        if ci is None or (classes is None and key in codes):
            return codes
        if classes is None:
            raise ValueError("this model's decoder needs the class of every code")
        onehot = F.one_hot(classes.long(), self.classes).to(codes["z"].dtype)
        if ci == "heads":
            return {**codes, "y": onehot, "r": onehot @ self.heads + codes["z"]}
        return {**codes, ci: onehot}

    def prior_codes(self, z: torch.Tensor, generator: torch.Generator | None = None,
                    classes: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Codes to decode from prior samples ``z``: with a class input, classes drawn uniformly
        (or the given ones)."""
        if self.caps.class_conditional and classes is None:
            classes = torch.randint(self.classes, (len(z),), generator=generator,
                                    device=generator.device if generator else None).to(z.device)
        return self.with_classes({"z": z}, classes)

    def decode_logits(self, codes: dict[str, torch.Tensor]) -> torch.Tensor:
        """Named codes -> pre-activation outputs (N, C*H*W)."""
        h = torch.cat([codes[k] for k in self.decoder_inputs], dim=-1)
        return self.decoder(h).flatten(1)

    def output(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.cfg.output == "sigmoid" else logits

    def decode(self, codes: dict[str, torch.Tensor]) -> torch.Tensor:
        """Named codes -> images (N, C, H, W)."""
        return self.output(self.decode_logits(codes)).view(-1, *self.image_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    # -- the phases' losses and parameters ---------------------------------------------------
    def reconstruction(self, x: torch.Tensor, x_in: torch.Tensor, kind: str = "mse",
                       classes: torch.Tensor | None = None) -> Reconstruction:
        """Encode ``x_in`` (the input, with noise where configured), reject (likelihood
        rejection), decode with the decoder's class input (``classes``, for a decoder that takes
        the label) and score against ``x``."""
        codes = self.encode(x_in)
        keep = None if self.rejection is None else self.rejection(self.regularizers[0], codes)
        logits = self.decode_logits(self.with_classes(codes, classes))
        rec = self.recon_loss(logits, x, kind, keep)
        total = rec + self.cfg.head_weight * self.head_penalty() \
            if self.caps.class_input == "heads" else rec
        return Reconstruction(codes, keep, rec, total)

    def recon_loss(self, logits: torch.Tensor, x: torch.Tensor, kind: str = "mse",
                   keep: torch.Tensor | None = None) -> torch.Tensor:
        """Mean reconstruction loss (``mse`` on the outputs, the paper's Euclidean cost, or
        ``bce`` on the logits); with ``keep`` (B,) bool, the mean over the kept examples."""
        target = x.flatten(1)
        red = "mean" if keep is None else "none"
        if kind == "bce":
            loss = F.binary_cross_entropy_with_logits(logits, target, reduction=red)
        else:
            loss = F.mse_loss(self.output(logits), target, reduction=red)
        if keep is None:
            return loss
        w = keep.to(loss.dtype)
        return (loss.mean(1) * w).sum() / w.sum()

    def classify_loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The semi-supervised classification phase's loss: cross-entropy of q(y|x)."""
        return F.cross_entropy(self.encode(x)["y_logits"], labels)

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        """The parameters that ``phase``'s optimizer steps."""
        if phase == "recon":
            return self.autoencoder_parameters()
        if phase == "disc":
            return self.discriminator_parameters()
        return self.generator_parameters()  # gen and classify: the encoder

    def autoencoder_parameters(self) -> list[nn.Parameter]:
        heads = [self.heads] if self.caps.class_input == "heads" else []
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
        far from the rest is more confident than a cluster's typical members (experiments/clustering).
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
