"""Training: the paper's phases, in one loop, over the one model.

Per mini-batch (paper section 2, figure 1):

1. reconstruction: encoder + decoder step on the reconstruction loss;
2. regularization, for every regularizer: a discriminator step on prior samples (positive) against
   the codes (negative), then an encoder step that makes the discriminator call the codes prior
   samples.

The updated encoder is run once after the reconstruction step and its codes feed both adversarial
updates (detached for the discriminator), which is exactly the paper's algorithm with no repeated
forward pass. Losses and accuracies are accumulated on the device and read once per log interval,
so the loop never waits for the host.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import artifacts, distributed, optim
from . import checkpoint as ckpt
from . import data as data_mod
from .config import PHASES, Config, OptimConfig, to_toml
from .distributed import SINGLE, Shard
from .errors import AAEError, DivergenceError, Interrupted
from .fileio import append_line, atomic_write_text, read_jsonl
from .metrics import summarize_fit
from .model import AAE
from .runs import build_model, check_images, load_config, load_weights, prepare_new

# accumulated per step, on the device:
# [steps, loss_recon, loss_disc, loss_gen, acc_prior, acc_code, loss_classify]
LOSSES = ("loss_recon", "loss_disc", "loss_gen")
# train options that say how and where a run trains, not what it computes: --resume may change them
RUNTIME_KEYS = ("epochs", "device", "threads", "precision", "compile", "cuda_graph")
N_SCALARS = 7


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise AAEError(f"option train.device (--device): {name!r} asked for, but no CUDA device is "
                       "available; use --device cpu or auto")
    return torch.device(name)


def build_optimizer(params: list[torch.nn.Parameter], o: OptimConfig,
                    capturable: bool = False) -> torch.optim.Optimizer:
    """Adam or SGD, fused (one kernel over all parameters) where torch has it for the device:
    on 2 CPU cores fused Adam steps the 3.6 M autoencoder parameters in 1.4 ms against 8.5 ms for
    the multi-tensor version (see docs/performance.md). ``capturable``: Adam keeps its step count
    on the device, so that a CUDA graph can hold the optimizer step."""
    kind, kw = (torch.optim.Adam, {"betas": tuple(o.betas)}) if o.name == "adam" else (
        torch.optim.SGD, {"momentum": o.momentum})
    if capturable and o.name == "adam":
        kw["capturable"] = True
    try:
        return kind(params, lr=o.lr, weight_decay=o.weight_decay, fused=True, **kw)
    except (RuntimeError, ValueError, TypeError):  # no fused kernel for this device or dtype
        return kind(params, lr=o.lr, weight_decay=o.weight_decay, foreach=True, **kw)


def lr_at(o: OptimConfig, epoch: int, epochs: int) -> float:
    """The learning rate during ``epoch`` (1-based) of ``epochs``: multiplied by gamma once per
    milestone passed (milestones are fractions of the run: 0.75 of 20 epochs is epoch 15)."""
    return o.lr * o.gamma ** sum(epoch > round(m * epochs) for m in o.milestones)


def build_optimizers(model: AAE, cfg: Config) -> dict[str, torch.optim.Optimizer]:
    """One optimizer per phase the model has (the classification phase only with a y head)."""
    groups = {"recon": model.autoencoder_parameters(), "disc": model.discriminator_parameters(),
              "gen": model.generator_parameters(), "classify": model.generator_parameters()}
    phases = [ph for ph in PHASES if ph != "classify" or model.class_input in ("y", "heads")]
    on_cuda = next(model.parameters()).device.type == "cuda"
    capturable = cfg.train.cuda_graph and on_cuda  # Adam's step count on the GPU, for capture
    return {ph: build_optimizer(groups[ph], cfg.optim[ph], capturable) for ph in phases}


def recon_loss(model: AAE, logits: torch.Tensor, x: torch.Tensor, kind: str,
               keep: torch.Tensor | None = None) -> torch.Tensor:
    """Mean reconstruction loss; with ``keep`` (B,) bool, the mean over the kept examples."""
    target = x.flatten(1)
    red = "mean" if keep is None else "none"
    if kind == "bce":
        loss = F.binary_cross_entropy_with_logits(logits, target, reduction=red)
    else:
        loss = F.mse_loss(model.output(logits), target, reduction=red)
    if keep is None:
        return loss
    w = keep.to(loss.dtype)
    return (loss.mean(1) * w).sum() / w.sum()


def reject(model: AAE, codes: dict[str, torch.Tensor], quantile: float) -> torch.Tensor | None:
    """Likelihood rejection (Beggel et al. 2019): keep the examples whose codes are at least as
    likely under the first regularizer's prior as the ``quantile`` of this batch. None: keep all."""
    if quantile <= 0:
        return None
    reg = model.regularizers[0]
    logp = reg.prior.log_prob(codes[reg.code].detach())
    return logp >= torch.quantile(logp, quantile)


def _step(opt: torch.optim.Optimizer, loss: torch.Tensor, shard: Shard) -> None:
    optim.clear_grads(opt)
    loss.backward()
    shard.average_grads([p for g in opt.param_groups for p in g["params"]])
    optim.step(opt)


def train_step(model: AAE, opts: dict[str, torch.optim.Optimizer], x: torch.Tensor,
               prior_gen: torch.Generator, recon_kind: str = "mse", shard: Shard = SINGLE,
               labels: torch.Tensor | None = None,
               classify: tuple[torch.Tensor, torch.Tensor] | None = None,
               input_noise: float = 0.0, schedule: str = "paper",
               adv_weight: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """One mini-batch of the paper's algorithm. Returns (scalars (6,), z codes) without syncing.

    Under data parallelism ``x`` is this rank's slice of the global batch; prior samples are drawn
    for the global batch and sliced the same way, so K ranks compute what one process would.
    ``labels`` (global batch, -1 = unlabelled) condition the regularizers that take labels (a
    labelled code is compared with samples of its label's part of the prior) and are the
    decoder's class input in the supervised AAE. ``classify`` = (images, labels) of a labelled
    mini-batch (this rank's slice) adds the semi-supervised classification phase.
    ``input_noise`` > 0 adds Gaussian noise of that std to every encoder input.
    ``schedule = "joint"`` replaces phases 1 and 2 with :func:`_joint_phases`.
    """
    x_in = x if input_noise <= 0 else x + input_noise * torch.randn_like(x)
    dec_classes = shard.slice(labels) if model.class_input == "label" else None
    if schedule == "joint":
        rec, d_log, g_loss, acc_p, acc_c, codes = _joint_phases(
            model, opts, x, x_in, prior_gen, recon_kind, shard, labels, dec_classes, adv_weight)
        return _classification_phase(model, opts, x, rec, d_log, g_loss, acc_p, acc_c, codes,
                                     shard, classify, input_noise)
    # 1. reconstruction phase
    codes, keep, rec, rec_total = _reconstruction(model, x, x_in, recon_kind, dec_classes)
    _step(opts["recon"], rec_total, shard)

    # 2. regularization phase: the updated encoder's codes serve both adversarial updates
    codes = model.encode(x_in)
    d_loss = d_log = g_loss = acc_p = acc_c = x.new_zeros(())
    fakes, ys = [], []
    for reg in model.regularizers:
        z, zp, y = _prior_batch(reg, codes, labels, prior_gen, shard)
        loss, log, a_p, a_c = reg.disc_losses(zp, z.detach(), y, keep)
        d_loss, d_log = d_loss + loss, d_log + log
        acc_p, acc_c = acc_p + a_p, acc_c + a_c
        ys.append(y)
        fakes.append(z)
    _step(opts["disc"], d_loss, shard)

    disc_params = model.discriminator_parameters()
    for p in disc_params:  # the encoder step needs gradients w.r.t. the codes only
        p.requires_grad_(False)
    for reg, z, y in zip(model.regularizers, fakes, ys):
        g_loss = g_loss + reg.gen_loss(z, y, keep, prior_gen)
    g_loss = g_loss + model.consistency_loss(x_in, codes)
    _step(opts["gen"], g_loss, shard)
    for p in disc_params:
        p.requires_grad_(True)

    return _classification_phase(model, opts, x, rec, d_log, g_loss, acc_p, acc_c, codes, shard,
                                 classify, input_noise)


def _reconstruction(model: AAE, x: torch.Tensor, x_in: torch.Tensor, recon_kind: str,
                    dec_classes: torch.Tensor | None):
    """Encode, reject (likelihood rejection), decode: (codes, keep, reconstruction loss, the loss
    the autoencoder steps on: with the head penalty that keeps the cluster heads apart)."""
    codes = model.encode(x_in)
    keep = reject(model, codes, model.cfg.reject_quantile)
    logits = model.decode_logits(model.with_classes(codes, dec_classes))
    rec = recon_loss(model, logits, x, recon_kind, keep)
    total = rec + model.cfg.head_weight * model.head_penalty() if model.class_input == "heads" \
        else rec
    return codes, keep, rec, total


def _prior_batch(reg, codes: dict[str, torch.Tensor], labels: torch.Tensor | None,
                 prior_gen: torch.Generator, shard: Shard):
    """The regularizer's codes, this rank's slice of prior samples drawn for the global batch
    (labelled rows from their label's part of the prior), and its slice of the labels it takes."""
    z = codes[reg.code]
    y = labels if reg.num_labels else None
    zp = shard.slice(reg.prior.sample(len(z) * shard.world, labels=y, generator=prior_gen))
    y = None if y is None else shard.slice(y)
    return z, zp.to(z.device, non_blocking=True), y


def _classification_phase(model, opts, x, rec, d_log, g_loss, acc_p, acc_c, codes, shard,
                          classify, input_noise) -> tuple[torch.Tensor, torch.Tensor]:
    """3. the semi-supervised classification phase (paper section 5): q(y|x) on labelled data;
    then the step's scalars (6,) and codes."""
    cls = x.new_zeros(())
    if classify is not None:
        xl, yl = classify
        if input_noise > 0:
            xl = xl + input_noise * torch.randn_like(xl)
        cls = F.cross_entropy(model.encode(xl)["y_logits"], yl)
        _step(opts["classify"], cls, shard)

    k = len(model.regularizers)
    scalars = torch.stack([rec.detach(), d_log.detach(), g_loss.detach(), acc_p / k, acc_c / k,
                           cls.detach()])
    return scalars, codes["z"].detach()


class StepRunner:
    """Runs :func:`train_step` on a batch named by indices into device-resident data.

    ``precision = "bf16"``: the step's forward passes under autocast (bfloat16 matrix products;
    losses, weights and optimizer states stay float32); it pays on GPUs and on CPUs with bfloat16
    matrix units (AMX), and costs on others. ``cuda_graph``: the first
    ``warmup`` steps run eagerly on a side stream (they initialise optimizer states and cuBLAS);
    the next step is captured as one CUDA graph (every phase: forwards, backwards, optimizer steps)
    and every later step replays it, after copying its batch indices into the graph's static
    inputs. The paper's MLPs at batch 100 are a few hundred small kernels per step, so on a GPU
    the eager step is bound by Python and kernel launches, not by arithmetic. A learning-rate
    change (the captured optimizer steps hold the rates) calls :meth:`reset`, and the next step is
    captured anew. If capture fails (a custom prior that copies from the host, say), the run goes
    on eagerly and says so once.
    """

    def __init__(self, model: AAE, opts: dict[str, torch.optim.Optimizer], x_all: torch.Tensor,
                 labels: torch.Tensor | None, prior_gen: torch.Generator, *,
                 recon_kind: str = "mse", shard: Shard = SINGLE, input_noise: float = 0.0,
                 precision: str = "fp32", cuda_graph: bool = False, warmup: int = 3,
                 schedule: str = "paper", adv_weight: float = 0.01, log=None):
        self.model, self.opts, self.x_all, self.labels = model, opts, x_all, labels
        self.prior_gen, self.recon_kind, self.shard = prior_gen, recon_kind, shard
        self.input_noise, self.precision, self.warmup = input_noise, precision, warmup
        self.schedule, self.adv_weight = schedule, adv_weight
        self.cuda_graph = cuda_graph and x_all.device.type == "cuda"
        self.log = log or (lambda msg: None)
        self.steps = 0  # steps run by this runner (the warm-up counts)
        self.graph = None
        self.static: tuple | None = None  # (idx, j or None, outputs)

    def _body(self, idx: torch.Tensor, j: torch.Tensor | None):
        shard, labels = self.shard, self.labels
        x = self.x_all[shard.slice(idx)]
        y = None if labels is None else labels[idx]
        cls = None
        if j is not None:
            j = shard.slice(j)
            cls = (self.x_all[j], labels[j])
        # no cast cache: it is kept for the whole region, and the step updates the weights in
        # place between its phases (a cached cast would hand the next phase the old weights)
        ctx = (torch.autocast(self.x_all.device.type, dtype=torch.bfloat16, cache_enabled=False)
               if self.precision == "bf16" else contextlib.nullcontext())
        with ctx:
            return train_step(self.model, self.opts, x, self.prior_gen, self.recon_kind, shard, y,
                              cls, self.input_noise, self.schedule, self.adv_weight)

    def reset(self) -> None:
        """Forget the captured graph (the learning rates changed); the next step captures anew."""
        self.graph = self.static = None

    def __call__(self, idx: torch.Tensor, j: torch.Tensor | None = None):
        """One training step on examples ``idx`` (global batch) and, for the classification
        phase, labelled examples ``j``. Returns (scalars, z) without syncing."""
        self.steps += 1
        if not self.cuda_graph:
            return self._body(idx, j)
        if self.steps <= self.warmup:
            side = torch.cuda.Stream(device=idx.device)
            side.wait_stream(torch.cuda.current_stream(idx.device))
            with torch.cuda.stream(side):
                out = self._body(idx, j)
            torch.cuda.current_stream(idx.device).wait_stream(side)
            return out
        if self.graph is None:
            self._capture(idx, j)
            if self.graph is None:  # capture failed: this and every later step run eagerly
                return self._body(idx, j)
        s_idx, s_j, out = self.static
        s_idx.copy_(idx)
        if s_j is not None:
            s_j.copy_(j)
        self.graph.replay()
        return out

    def _capture(self, idx: torch.Tensor, j: torch.Tensor | None) -> None:
        s_idx, s_j = idx.clone(), None if j is None else j.clone()
        graph = torch.cuda.CUDAGraph()
        try:
            # the prior's draws must advance with every replay (torch >= 2.5)
            graph.register_generator_state(self.prior_gen)
            with torch.cuda.graph(graph):
                out = self._body(s_idx, s_j)
        except (RuntimeError, AttributeError) as e:
            for p in self.model.parameters():  # the failed capture may have left some frozen
                p.requires_grad_(True)
            self.cuda_graph = False
            self.log(f"warning: train.cuda_graph: the step could not be captured ({e}); "
                     "training continues without CUDA graphs")
            return
        self.graph, self.static = graph, (s_idx, s_j, out)


def _joint_phases(model: AAE, opts: dict[str, torch.optim.Optimizer], x: torch.Tensor,
                  x_in: torch.Tensor, prior_gen: torch.Generator, recon_kind: str, shard: Shard,
                  labels: torch.Tensor | None, dec_classes: torch.Tensor | None,
                  adv_weight: float):
    """Phases 1 and 2 of the joint schedule (``train.schedule = "joint"``): one encoder pass, one
    pass of each discriminator over prior samples and codes, then both updates at once: the
    discriminators on their loss (the codes count as data: no gradient reaches the encoder), the
    encoder and decoder on reconstruction + ``adv_weight`` x the adversarial loss (no gradient
    reaches the discriminators). Unlike the paper's schedule the adversarial loss sees the codes
    before this step's reconstruction update, and the discriminators the encoder before it.
    About 34 instead of 45 MFLOP per image at the paper's MNIST sizes (bench/flops.py)."""
    codes, keep, rec, rec_total = _reconstruction(model, x, x_in, recon_kind, dec_classes)
    d_loss = d_log = g_loss = acc_p = acc_c = x.new_zeros(())
    for reg in model.regularizers:
        z, zp, y = _prior_batch(reg, codes, labels, prior_gen, shard)
        loss, log, a_p, a_c, gen = reg.joint_losses(zp, z, y, keep, prior_gen)
        d_loss, d_log, g_loss = d_loss + loss, d_log + log, g_loss + gen
        acc_p, acc_c = acc_p + a_p, acc_c + a_c
    g_loss = g_loss + model.consistency_loss(x_in, codes)
    disc, ae = opts["disc"], opts["recon"]
    disc_params = [p for g in disc.param_groups for p in g["params"]]
    ae_params = [p for g in ae.param_groups for p in g["params"]]
    optim.clear_grads(disc)
    optim.clear_grads(ae)
    # ``inputs`` restricts each backward pass to its own networks, so autograd computes neither
    # the discriminators' weight gradients for the encoder's loss nor the codes' gradient for the
    # discriminators' loss
    d_loss.backward(inputs=disc_params, retain_graph=True)
    (rec_total + adv_weight * g_loss).backward(inputs=ae_params)
    shard.average_grads(disc_params)
    shard.average_grads(ae_params)
    optim.step(disc)
    optim.step(ae)
    return rec, d_log, g_loss, acc_p, acc_c, codes


@dataclass
class RunState:
    """Everything that changes during training and must survive a resume."""

    epoch: int = 0  # completed epochs
    step_in_epoch: int = 0  # completed steps of the current epoch (non-zero only if interrupted)
    global_step: int = 0
    elapsed: float = 0.0  # training seconds so far (excluding plots)
    epoch_seconds: float = 0.0  # seconds spent in the current, unfinished epoch
    extra: dict[str, Any] = field(default_factory=dict)


def _rng_python_numpy() -> dict[str, Any]:
    st = np.random.get_state()
    return {"python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
            "numpy": [st[0], st[1].tolist(), int(st[2]), int(st[3]), float(st[4])]}


def _set_rng_python_numpy(d: dict[str, Any]) -> None:
    v, s, g = d["python"]
    random.setstate((v, tuple(s), g))
    n = d["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))


class Trainer:
    """Owns one run: its model, optimizers, generators, data and run directory."""

    def __init__(self, cfg: Config, out: str | Path, data: data_mod.ImageData | None = None,
                 resume: bool = False, force: bool = False, quiet: bool = False):
        self.out = Path(out)
        self.quiet = quiet
        self.shard, self.device = distributed.setup(select_device(cfg.train.device))
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        if resume:
            saved = load_config(self.out)
            _check_resume_config(saved, cfg, self.out)
            d = saved.to_dict()
            d["train"].update({k: getattr(cfg.train, k) for k in RUNTIME_KEYS})
            cfg = Config.from_dict(d).validate()
            tensors, meta = ckpt.latest(self.out / "checkpoints")
        self.cfg = cfg
        # everything that can fail on user input happens before the run directory is touched
        if data is None:
            data = data_mod.from_config(cfg.data)
        n = len(data.train_x)
        if cfg.train.batch_size > n:
            raise AAEError(f"option train.batch_size: {cfg.train.batch_size} is larger than the "
                           f"{n} training images")
        if cfg.model.disc_groups > 1 and self.shard.world > 1:
            raise AAEError("option model.disc_groups (--disc-groups): grouped discriminators run "
                           "in one process; under torchrun use disc_groups = 1")
        if cfg.train.batch_size % self.shard.world:
            raise AAEError(f"option train.batch_size: {cfg.train.batch_size} does not split evenly "
                           f"over {self.shard.world} processes")
        t = cfg.train
        self.data = data.to(self.device)
        torch.manual_seed(cfg.train.seed)
        self.model = build_model(cfg, data.image_shape).to(self.device)
        if t.compile:  # in place: parameter names (and so checkpoints) stay the same
            for net in (self.model.encoder, self.model.decoder,
                        *(r.discriminator for r in self.model.regularizers)):
                net.compile()
        self.opts = build_optimizers(self.model, cfg)
        m = cfg.model
        # the semi-supervised classification phase; with labelled = 0 a y head clusters instead
        self.classify = m.class_input in ("y", "heads") and cfg.data.labelled != 0
        self.cluster = m.class_input in ("y", "heads") and not self.classify
        needs_labels = bool(self.model.regularizers[0].num_labels) or self.classify or (
            m.class_input == "label")
        self.train_labels = self._label_subset() if needs_labels else None
        if m.class_input == "label" and cfg.data.labelled != -1:
            raise AAEError("option data.labelled (--labelled): the supervised AAE "
                           "(model.class_input = label) needs every label; use -1")
        if m.class_input != "none" and self.train_labels is not None and len(self.train_labels) \
                and int(self.train_labels.max()) >= m.classes:
            raise AAEError(f"option model.classes: {m.classes} classes, but dataset "
                           f"{cfg.data.dataset} has labels up to {int(self.train_labels.max())}")
        self.labelled_idx = None if not self.classify else (self.train_labels >= 0).nonzero().flatten()
        if self.labelled_idx is not None and not len(self.labelled_idx):
            raise AAEError("option data.labelled (--labelled): no labelled examples for the "
                           "classification phase")
        if not resume and self.shard.main:  # only now, with every input checked, is the run
            prepare_new(self.out, force)      # directory touched, and only by rank 0
            atomic_write_text(self.out / "config.toml", to_toml(cfg))
        self.shard.barrier()
        self.data_gen = torch.Generator().manual_seed(cfg.train.seed)
        self.prior_gen = torch.Generator(device=self.device).manual_seed(cfg.train.seed + 1)
        # the labelled mini-batches of the classification phase
        self.label_gen = torch.Generator(device=self.device).manual_seed(cfg.train.seed + 5)
        self.best_val = float("inf")
        noise_gen = torch.Generator().manual_seed(cfg.train.seed + 2)
        self.sample_noise = self.model.regularizers[0].prior.sample(100, generator=noise_gen)
        self.epoch_data_state = self.data_gen.get_state()
        d = cfg.model.code_dim
        self.acc = torch.zeros(N_SCALARS + 2 * d, device=self.device, dtype=torch.float64)
        self.state = RunState()
        if resume:
            self._restore(tensors, meta)
            if self.shard.main:  # a resume may extend the run's epochs
                atomic_write_text(self.out / "config.toml", to_toml(cfg))
        self._stop: int | None = None
        self.runner = StepRunner(self.model, self.opts, self.data.train_x, self.train_labels,
                                 self.prior_gen, recon_kind=t.recon_loss, shard=self.shard,
                                 input_noise=t.input_noise, precision=t.precision,
                                 # under torchrun the gradient all-reduce runs between the phases
                                 cuda_graph=t.cuda_graph and self.shard.world == 1,
                                 schedule=t.schedule, adv_weight=t.adv_weight, log=self._log)

    def _label_subset(self) -> torch.Tensor:
        """Training labels for label conditioning: all of them, or (data.labelled = N) N
        class-balanced ones chosen by the seed, the rest -1 ("no label"). Saved in checkpoints."""
        y = self.data.train_y
        if y is None:
            raise AAEError(f"option model.label_conditioning: dataset {self.cfg.data.dataset} "
                           "has no labels")
        n = self.cfg.data.labelled
        if n < 0:
            return y.clone()
        if n > len(y):
            raise AAEError(f"option data.labelled (--labelled): {n} labelled examples asked for, "
                           f"but the training set has {len(y)}")
        return balanced_subset(y, n, self.cfg.train.seed)

    # -- checkpoints -----------------------------------------------------------------------------
    def _tensors(self, optim_tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        t = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        t.update(optim_tensors)
        t["rng.data"] = self.data_gen.get_state()
        t["rng.data_epoch"] = self.epoch_data_state
        t["rng.prior"] = self.prior_gen.get_state()
        t["rng.label"] = self.label_gen.get_state()
        t["rng.torch"] = torch.get_rng_state()
        t["sample_noise"] = self.sample_noise
        t["acc"] = self.acc
        if self.train_labels is not None:
            t["labels.train"] = self.train_labels
        return t

    def save_checkpoint(self) -> Path:
        s = self.state
        folder = self.out / "checkpoints"
        stem = f"epoch_{s.epoch:04d}" + (f"_step_{s.step_in_epoch:06d}" if s.step_in_epoch else "")
        optim_tensors, optim_plain = {}, {}
        for ph, opt in self.opts.items():
            optim_tensors_ph, optim_plain[ph] = ckpt.flatten_optimizer(opt, f"optim.{ph}")
            optim_tensors.update(optim_tensors_ph)
        meta = {
            "epoch": s.epoch, "step_in_epoch": s.step_in_epoch, "global_step": s.global_step,
            "elapsed": s.elapsed, "epoch_seconds": s.epoch_seconds, "extra": s.extra,
            "image_shape": list(self.data.image_shape), "config": self.cfg.to_dict(),
            "optim": optim_plain,
            "rng": _rng_python_numpy(), "torch_version": torch.__version__,
        }
        path = ckpt.save(folder, stem, self._tensors(optim_tensors), meta)
        every = self.cfg.train.checkpoint_every
        keep = {stem} | {p.stem for p in folder.glob("epoch_*.json")
                         if p.stem.count("_") == 1 and int(p.stem[6:]) % every == 0}
        ckpt.prune(folder, keep)
        return path

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        src = str(self.out / "checkpoints" / meta["tensors"])
        check_images(tuple(meta.get("image_shape", ())), self.data.image_shape,
                     f"dataset {self.cfg.data.dataset}")
        load_weights(self.model, tensors, src)
        for ph, opt in self.opts.items():
            ckpt.restore_optimizer(opt, f"optim.{ph}", tensors, meta["optim"][ph])
        self.data_gen.set_state(tensors["rng.data"])
        self.epoch_data_state = tensors["rng.data_epoch"]
        self.prior_gen.set_state(tensors["rng.prior"])
        if "rng.label" in tensors:  # absent in checkpoints of runs before the semi-supervised AAE
            self.label_gen.set_state(tensors["rng.label"])
        torch.set_rng_state(tensors["rng.torch"])
        self.sample_noise = tensors["sample_noise"]
        acc = tensors["acc"].to(self.device)
        if len(acc) == len(self.acc) - 1:  # saved before the classification loss was tracked
            acc = torch.cat([acc[:N_SCALARS - 1], acc.new_zeros(1), acc[N_SCALARS - 1:]])
        # the checkpoint holds the partial epoch's sums over all ranks: rank 0 carries them
        self.acc = acc if self.shard.main else torch.zeros_like(acc)
        if self.train_labels is not None:
            self.train_labels = tensors["labels.train"].to(self.device)
        _set_rng_python_numpy(meta["rng"])
        self.state = RunState(meta["epoch"], meta["step_in_epoch"], meta["global_step"],
                              meta["elapsed"], meta["epoch_seconds"], meta.get("extra", {}))
        self.best_val = self.state.extra.get("best_val_error", float("inf"))
        _truncate_metrics(self.out / "metrics.jsonl", self.state.epoch)

    # -- the loop ---------------------------------------------------------------------------------
    def _log(self, msg: str) -> None:
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        self._stop = signum

    def fit(self) -> dict[str, Any]:
        """Train to ``cfg.train.epochs``; returns the last epoch's metrics line."""
        cfg, s = self.cfg, self.state
        handlers = {}
        if threading_main():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, self._on_signal)
        main = self.shard.main
        tb = _tensorboard(self.out / "tb", s.global_step) if main else None
        last: dict[str, Any] = {}
        try:
            if main and s.epoch == 0 and s.step_in_epoch == 0 and not (self.out / "samples").is_dir():
                artifacts.write_samples(self.out, self.model, self.sample_noise, 0)
                self.save_checkpoint()
            while s.epoch < cfg.train.epochs:
                last = self._epoch(tb)
        except Interrupted:
            # every rank waits for rank 0's checkpoint, then the group is torn down on all of
            # them: a rank that exits with the gloo group alive aborts (SIGABRT)
            self.shard.barrier()
            distributed.teardown(self.shard)
            raise
        finally:
            for sig, h in handlers.items():
                signal.signal(sig, h)
            if tb is not None:
                tb.close()
        if not last and s.epoch:  # nothing left to train: report the latest logged epoch
            last = _last_metrics(self.out / "metrics.jsonl")
        if main:
            self._finish()
        # every rank waits for rank 0's plots and report: a process group torn down on one rank
        # while the other still runs aborts the whole job (gloo)
        self.shard.barrier()
        distributed.teardown(self.shard)
        return last

    def _epoch(self, tb) -> dict[str, Any]:
        cfg, s, model = self.cfg, self.state, self.model
        epoch = s.epoch + 1
        for ph, opt in self.opts.items():
            for g in opt.param_groups:
                lr = lr_at(cfg.optim[ph], epoch, cfg.train.epochs)
                if g["lr"] != lr:
                    g["lr"] = lr
                    self.runner.reset()  # a captured step holds the old rate
        x_all = self.data.train_x
        b = cfg.train.batch_size
        if s.step_in_epoch == 0:
            self.epoch_data_state = self.data_gen.get_state()
            self.acc.zero_()
            s.epoch_seconds = 0.0
        else:  # resuming mid-epoch: replay the same permutation
            self.data_gen.set_state(self.epoch_data_state)
        perm, steps = self._order(len(x_all), b)
        perm = perm.to(self.device)
        bad = torch.full((3,), -1, dtype=torch.long, device=self.device)  # first non-finite step
        d = cfg.model.code_dim
        shard = self.shard
        bar = _progress(steps, epoch, cfg.train.epochs, s.step_in_epoch,
                        self.quiet or not shard.main)
        model.train()
        t0 = time.perf_counter()
        sync_every = 50
        first = s.step_in_epoch
        for i in range(first, steps):
            j = None
            if self.labelled_idx is not None:  # a labelled mini-batch (with replacement)
                j = self.labelled_idx[torch.randint(len(self.labelled_idx), (b,), device=self.device,
                                                    generator=self.label_gen)]
            scalars, z = self.runner(perm[i * b:(i + 1) * b], j)
            fin = torch.isfinite(scalars[:3])
            bad = torch.where((bad < 0) & ~fin, torch.full_like(bad, s.global_step + 1), bad)
            self.acc[0] += 1
            self.acc[1:N_SCALARS] += scalars
            self.acc[N_SCALARS:N_SCALARS + d] += z.sum(0)
            self.acc[N_SCALARS + d:] += z.pow(2).sum(0)
            s.global_step += 1
            s.step_in_epoch = i + 1
            if bar is not None and ((i + 1) % sync_every == 0 or i + 1 == steps):
                m = (self.acc[1:N_SCALARS] / self.acc[0]).tolist()
                bar.set_postfix(rec=f"{m[0]:.4f}", d=f"{m[1]:.3f}", g=f"{m[2]:.3f}",
                                acc=f"{(m[3] + m[4]) / 2:.2f}", refresh=False)
                bar.update((i + 1) - bar.n)
            if (i + 1) % sync_every == 0 and shard.any(int(bad.max()) >= 0, self.device):
                break
            if shard.world == 1 and self._stop is not None:
                break
            if shard.world > 1 and (i + 1) % sync_every == 0 and shard.any(
                    self._stop is not None, self.device):  # every rank stops at the same step
                self._stop = self._stop or signal.SIGTERM
                break
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        s.epoch_seconds += dt
        s.elapsed += dt
        bad = shard.all_max(bad)
        self._check_divergence(bad, epoch)
        if self._stop is not None and s.step_in_epoch < steps:
            # the partial epoch's sums of every rank go into the checkpoint (rank 0 writes their
            # total; on resume rank 0 takes it and the others start from zero)
            self.acc = shard.all_sum(self.acc)
            if shard.main:
                self.save_checkpoint()
            signame = signal.Signals(self._stop).name
            raise Interrupted(
                f"{signame}: saved epoch {epoch} at step {s.step_in_epoch}/{steps} to "
                f"{self.out / 'checkpoints'}; continue with: aae train --resume {self.out}",
                self._stop)
        s.epoch, s.step_in_epoch = epoch, 0
        line = self._metrics_line(epoch, steps * b)
        if shard.main:
            self._write_epoch(line, tb)
        if shard.world > 1 and shard.any(self._stop is not None, self.device):
            self._stop = self._stop or signal.SIGTERM
        if self._stop is not None:
            signame = signal.Signals(self._stop).name
            raise Interrupted(f"{signame}: saved epoch {epoch} to {self.out / 'checkpoints'}; "
                              f"continue with: aae train --resume {self.out}", self._stop)
        return line

    def _order(self, n: int, b: int) -> tuple[torch.Tensor, int]:
        """This epoch's example order and number of steps (the last partial batch is dropped:
        every step sees a full batch).

        With ``group_split = "shard"`` the training set is cut once (by the seed) into N fixed
        shards; every batch takes b / N examples of each shard, shard k at batch positions k,
        k + N, ..., which :func:`aae.groups.to_groups` maps to group k: discriminator k only ever
        sees shard k."""
        m = self.cfg.model
        if m.disc_groups == 1 or m.group_split == "random":
            return torch.randperm(n, generator=self.data_gen), n // b
        k = m.disc_groups
        fixed = torch.randperm(n, generator=torch.Generator().manual_seed(self.cfg.train.seed + 4))
        shards = fixed[:n // k * k].view(k, n // k)
        shuffled = shards.gather(1, torch.rand(shards.shape, generator=self.data_gen).argsort(1))
        g = b // k
        steps = shards.shape[1] // g
        return shuffled[:, :steps * g].reshape(k, steps, g).permute(1, 2, 0).reshape(-1), steps

    def _write_epoch(self, line: dict[str, Any], tb) -> None:
        """Rank 0's work at the end of an epoch: log, samples, checkpoint."""
        cfg, epoch = self.cfg, line["epoch"]
        if self.classify:
            self._classification_errors(line)
        elif self.cluster:
            self._cluster_errors(line)
        append_line(self.out / "metrics.jsonl", json.dumps(line))
        if tb is not None:
            for k in (*LOSSES, "disc_acc_prior", "disc_acc_code", "images_per_s", "loss_classify",
                      "val_error", "test_error", "cluster_error", "cluster_error_majority"):
                if k in line:
                    tb.add_scalar(k, line[k], epoch)
        self._warn_balance(line)
        if epoch in cfg.train.sample_epochs or epoch == cfg.train.epochs:
            path = artifacts.write_samples(self.out, self.model, self.sample_noise, epoch)
            if cfg.model.code_dim == 2:
                artifacts.write_latent_2d(self.out, self.model, self.data, epoch=epoch)
            if tb is not None:
                from PIL import Image

                with Image.open(path) as im:
                    tb.add_image("samples", np.asarray(im.convert("L")), epoch, dataformats="HW")
        self.save_checkpoint()
        self._log(f"epoch {epoch}/{cfg.train.epochs}  rec {line['loss_recon']:.4f}  "
                  f"disc {line['loss_disc']:.3f}  gen {line['loss_gen']:.3f}  "
                  f"D acc {line['disc_acc']:.2f}  {line['images_per_s']:.0f} img/s")

    def _classification_errors(self, line: dict[str, Any]) -> None:
        """Validation and test error of q(y|x) into the metrics line; the weights with the best
        validation error so far are kept in RUN/best/ (the paper's model selection)."""
        data = self.data
        for split, x, y in (("val", data.val_x, data.val_y), ("test", data.test_x, data.test_y)):
            if x is not None and y is not None and len(y):
                line[f"{split}_error"] = float((self.model.predict(x) != y).float().mean())
        val = line.get("val_error")
        if val is not None and val < self.best_val:
            self.best_val = self.state.extra["best_val_error"] = val
            t = {f"model.{k}": v for k, v in self.model.state_dict().items()}
            meta = {"epoch": line["epoch"], "global_step": self.state.global_step,
                    "val_error": val, "test_error": line.get("test_error"),
                    "image_shape": list(data.image_shape), "config": self.cfg.to_dict()}
            ckpt.save(self.out / "best", "best", t, meta)
        line["best_val_error"] = None if self.best_val == float("inf") else self.best_val

    def _cluster_errors(self, line: dict[str, Any]) -> None:
        """The clustering error (paper's rule and majority vote, mappings chosen on the validation
        split) of the test set, where both splits have labels."""
        from .clustering import cluster_scores, log_odds

        d = self.data
        if d.val_x is None or d.val_y is None or d.test_y is None:
            return
        # log-odds, not q(y|x): q rounds to 1.0 (clustering.paper_rule_mapping)
        scores = [log_odds(self.model.encode_all(x)["y_logits"].cpu().numpy())
                  for x in (d.val_x, d.test_x)]
        sc = cluster_scores(scores[0], d.val_y.cpu().numpy(), scores[1], d.test_y.cpu().numpy())
        line.update({"cluster_error": sc["paper_error"], "cluster_error_majority":
                     sc["majority_error"], "nmi": sc["nmi"], "clusters_used": int(
                         sum(s > 0 for s in sc["sizes"]))})

    def _check_divergence(self, bad: torch.Tensor, epoch: int) -> None:
        b = bad.tolist()
        for phase, step in zip(("reconstruction", "discriminator", "encoder (generator)"), b):
            if step >= 0:
                raise DivergenceError(
                    f"the {phase} loss became NaN or infinite at epoch {epoch}, step {step}; "
                    f"the last good checkpoint in {self.out / 'checkpoints'} is kept; lower the "
                    "learning rates and resume or start again")

    def _metrics_line(self, epoch: int, images: int) -> dict[str, Any]:
        d, shard = self.cfg.model.code_dim, self.shard
        a = shard.all_sum(self.acc).double().cpu()  # summed over ranks: a[0] = world x steps
        steps = max(a[0].item(), 1.0)
        m = (a[1:N_SCALARS] / steps).tolist()
        count = steps * (self.cfg.train.batch_size // shard.world)
        mean = a[N_SCALARS:N_SCALARS + d] / count
        var = (a[N_SCALARS + d:] / count - mean.pow(2)).clamp_min(0) * count / max(count - 1, 1)
        s = self.state
        return {
            "epoch": epoch, "step": s.global_step,
            "loss_recon": m[0], "loss_disc": m[1], "loss_gen": m[2],
            "disc_acc_prior": m[3], "disc_acc_code": m[4], "disc_acc": (m[3] + m[4]) / 2,
            "seconds": s.epoch_seconds, "images_per_s": images / max(s.epoch_seconds, 1e-9),
            "elapsed": s.elapsed, "code_mean": mean.tolist(), "code_std": var.sqrt().tolist(),
            "lr": {ph: opt.param_groups[0]["lr"] for ph, opt in self.opts.items()},
            **({"loss_classify": m[5]} if self.classify else {}),
            **({"processes": shard.world, "replicas_equal": shard.replicas_equal(self.model)}
               if shard.world > 1 else {}),
        }

    def _warn_balance(self, line: dict[str, Any]) -> None:
        """Users' most common failure: one side of the game wins for good. Say so, once."""
        accs = self.state.extra.setdefault("recent_disc_acc", [])  # kept in memory and checkpoints
        accs.append(line["disc_acc"])
        del accs[:-3]
        if len(accs) < 3 or self.state.extra.get("warned"):
            return
        if min(accs) > 0.97:
            self._log("warning: the discriminator has been winning (accuracy > 0.97) for 3 "
                      "epochs: the codes do not match the prior; lower optim.disc.lr")
            self.state.extra["warned"] = True

    def _finish(self) -> None:
        fit = artifacts.write_latent(self.out, self.model, self.data, self.cfg.train.seed,
                                     self.cfg.train.tsne_points)
        self._log(f"test codes vs prior: {summarize_fit(fit)}")
        if self.model.class_input in ("y", "heads"):
            artifacts.write_clusters(self.out, self.model, self.data)
        from .report import write_report

        write_report(self.out)
        self._log(f"run written to {self.out} (open report.html)")


def balanced_subset(y: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Keep the labels of ``n`` examples, as equal a number per class as the data allows, chosen
    at random by ``seed``; every other label becomes -1."""
    g = torch.Generator().manual_seed(seed + 3)
    yc = y.cpu()
    classes = torch.unique(yc).tolist()
    pools = {c: (yc == c).nonzero().flatten() for c in classes}
    pools = {c: p[torch.randperm(len(p), generator=g)] for c, p in pools.items()}
    take = {c: 0 for c in classes}
    left = n
    while left:  # round-robin over classes that still have examples: balanced, exact count
        progressed = False
        for c in classes:
            if left and take[c] < len(pools[c]):
                take[c] += 1
                left -= 1
                progressed = True
        if not progressed:
            break
    keep = torch.cat([pools[c][:take[c]] for c in classes])
    out = torch.full_like(yc, -1)
    out[keep] = yc[keep]
    return out.to(y.device)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _check_resume_config(saved: Config, given: Config, run: Path) -> None:
    """On --resume only the length of training (and where it runs) may change."""
    a, b = saved.to_dict(), given.to_dict()
    for section, keys in a.items():
        for k, v in keys.items():
            if section == "train" and k in RUNTIME_KEYS:
                continue
            if b[section][k] != v:
                raise AAEError(f"--resume {run}: option {section}.{k} is {v!r} in the saved run "
                               f"but {b[section][k]!r} was given; drop it or start a new run")


def _tensorboard(folder: Path, purge_step: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but the loop must not need it
        return None
    return SummaryWriter(str(folder), purge_step=purge_step or None)


def _progress(steps: int, epoch: int, epochs: int, start: int, quiet: bool):
    if quiet:
        return None
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (logs keep the one line per epoch)
    return tqdm(total=steps, initial=start, desc=f"epoch {epoch}/{epochs}", unit="step",
                leave=False, mininterval=0.5, dynamic_ncols=True, file=sys.stderr, disable=None)


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    return read_jsonl(path)  # a line cut by a crash ends the usable log


def _last_metrics(path: Path) -> dict[str, Any]:
    lines = _read_metrics(path)
    return lines[-1] if lines else {}


def _truncate_metrics(path: Path, epoch: int) -> None:
    """On resume, drop lines of epochs after the checkpoint (they will be trained again)."""
    lines = [ln for ln in _read_metrics(path) if ln.get("epoch", 0) <= epoch]
    atomic_write_text(path, "".join(json.dumps(ln) + "\n" for ln in lines))


def train(cfg: Config, out: str | Path, **kw) -> dict[str, Any]:
    """Train a run from a resolved config; the five-line Python API."""
    return Trainer(cfg, out, **kw).fit()


__all__ = ["Trainer", "train", "train_step", "DivergenceError", "Interrupted"]
