"""One training step: a table of phases over the model's named losses.

The paper's table (section 2, figure 1), per mini-batch:

1. ``recon``: encoder + decoder step on the reconstruction loss;
2. ``disc``: for every regularizer, a discriminator step on prior samples (positive) against the
   updated encoder's codes (negative, detached);
3. ``gen``: an encoder step that makes the (frozen) discriminators call those codes prior samples,
   plus the model's consistency terms;
4. ``classify``: the semi-supervised classification step on a labelled mini-batch (models whose
   :class:`~aae.model.Capabilities` say ``classify``).

The joint table (``train.schedule = "joint"``) replaces 1-3 by ``joint``: one encoder pass, one
pass of each discriminator, and both updates at once (the discriminators on their loss, the
autoencoder on reconstruction + ``train.adv_weight`` x the adversarial loss).

:class:`Step` is the only step: the trainer, the CUDA-graph :class:`Runner`, torchrun and every
benchmark build it from a config (:meth:`Step.from_config`), so none can drop an option. Losses
and accuracies stay on the device (:data:`SCALARS`, by name); nothing here waits for the host.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import torch

from . import optim
from .config import Config, TrainConfig
from .distributed import SINGLE, Shard
from .model import AAE
from .regularizers import DiscLosses, Regularizer
from .streams import stream_seed

# what a step returns, in this order
SCALARS = ("loss_recon", "loss_disc", "loss_gen", "disc_acc_prior", "disc_acc_code",
           "loss_classify")
TABLES = {"paper": ("recon", "disc", "gen", "classify"), "joint": ("joint", "classify")}


@dataclass(frozen=True)
class StepOptions:
    """What the step computes beyond the model: the train options it reads."""

    schedule: str = "paper"  # a key of TABLES
    recon_loss: str = "mse"
    input_noise: float = 0.0  # std of Gaussian noise on every encoder input
    adv_weight: float = 0.01  # joint: weight of the adversarial loss

    @classmethod
    def of(cls, t: TrainConfig) -> StepOptions:
        return cls(t.schedule, t.recon_loss, t.input_noise, t.adv_weight)


@dataclass
class _Batch:
    """One mini-batch's working state as it goes through the phases."""

    x: torch.Tensor
    x_in: torch.Tensor
    labels: torch.Tensor | None  # the global batch's labels (-1: none)
    classify: tuple[torch.Tensor, torch.Tensor] | None
    codes: dict[str, torch.Tensor] = field(default_factory=dict)
    keep: torch.Tensor | None = None
    adversarial: list[tuple[Regularizer, torch.Tensor, torch.Tensor | None]] = field(
        default_factory=list)  # (regularizer, its codes, its labels) for the encoder phase
    out: dict[str, torch.Tensor] = field(default_factory=dict)

    def add_disc(self, d: DiscLosses) -> torch.Tensor:
        o = self.out
        o["loss_disc"] = o["loss_disc"] + d.log
        o["disc_acc_prior"] = o["disc_acc_prior"] + d.acc_prior
        o["disc_acc_code"] = o["disc_acc_code"] + d.acc_code
        return d.loss


class Step:
    """One mini-batch over the phase table of ``options.schedule``.

    ``step(x, labels, classify)``: ``x`` is this rank's slice of the global batch; ``labels`` the
    global batch's labels (or None), which condition the regularizers that take labels and are
    the decoder's class input in the supervised AAE; ``classify`` = (images, labels) of this
    rank's slice of a labelled mini-batch. Returns (:data:`SCALARS` stacked, z codes), unsynced.
    Under data parallelism prior samples are drawn for the global batch and sliced the same way,
    so K ranks compute what one process would.
    """

    def __init__(self, model: AAE, opts: dict[str, torch.optim.Optimizer],
                 prior_gen: torch.Generator, options: StepOptions = StepOptions(),
                 shard: Shard = SINGLE):
        self.model, self.opts, self.prior_gen = model, opts, prior_gen
        self.options, self.shard = options, shard
        self.table = tuple(p for p in TABLES[options.schedule]
                           if p != "classify" or model.caps.classify)
        self._phases = [getattr(self, f"_{p}") for p in self.table]

    @classmethod
    def from_config(cls, model: AAE, cfg: Config, prior_gen: torch.Generator | None = None,
                    shard: Shard = SINGLE) -> Step:
        """The step a run of ``cfg`` trains with: its optimizers, options and prior stream."""
        device = next(model.parameters()).device
        if prior_gen is None:
            prior_gen = torch.Generator(device=device).manual_seed(
                stream_seed(cfg.train.seed, "prior"))
        capturable = cfg.train.cuda_graph and device.type == "cuda"
        opts = optim.build_optimizers(model, cfg.optim, capturable)
        return cls(model, opts, prior_gen, StepOptions.of(cfg.train), shard)

    def __call__(self, x: torch.Tensor, labels: torch.Tensor | None = None,
                 classify: tuple[torch.Tensor, torch.Tensor] | None = None):
        noise = self.options.input_noise
        x_in = x if noise <= 0 else x + noise * torch.randn_like(x)
        zero = x.new_zeros(())
        b = _Batch(x, x_in, labels, classify, out={k: zero for k in SCALARS})
        for phase in self._phases:
            phase(b)
        k = len(self.model.regularizers)
        o = b.out
        scalars = torch.stack([o["loss_recon"].detach(), o["loss_disc"].detach(),
                               o["loss_gen"].detach(), o["disc_acc_prior"] / k,
                               o["disc_acc_code"] / k, o["loss_classify"].detach()])
        return scalars, b.codes["z"].detach()

    # -- the phases -------------------------------------------------------------------------------
    def _update(self, phase: str, loss: torch.Tensor) -> None:
        opt = self.opts[phase]
        optim.clear_grads(opt)
        loss.backward()
        self.shard.average_grads([p for g in opt.param_groups for p in g["params"]])
        optim.step(opt)

    def _reconstruct(self, b: _Batch) -> torch.Tensor:
        dec = self.shard.slice(b.labels) if self.model.caps.label_decoder else None
        r = self.model.reconstruction(b.x, b.x_in, self.options.recon_loss, dec)
        b.codes, b.keep, b.out["loss_recon"] = r.codes, r.keep, r.loss
        return r.total

    def _prior_batch(self, reg: Regularizer, b: _Batch):
        """The regularizer's codes, this rank's slice of prior samples drawn for the global batch
        (labelled rows from their label's part of the prior), and its slice of the labels."""
        z = b.codes[reg.code]
        y = b.labels if reg.num_labels else None
        n = len(z) * self.shard.world
        zp = self.shard.slice(reg.prior.sample(n, labels=y, generator=self.prior_gen))
        y = None if y is None else self.shard.slice(y)
        return z, zp.to(z.device, non_blocking=True), y

    def _recon(self, b: _Batch) -> None:
        self._update("recon", self._reconstruct(b))

    def _disc(self, b: _Batch) -> None:
        b.codes = self.model.encode(b.x_in)  # the updated encoder's codes serve both updates
        loss = b.out["loss_disc"]
        for reg in self.model.regularizers:
            z, zp, y = self._prior_batch(reg, b)
            loss = loss + b.add_disc(reg.disc_losses(zp, z.detach(), y, b.keep))
            b.adversarial.append((reg, z, y))
        self._update("disc", loss)

    def _gen(self, b: _Batch) -> None:
        disc_params = self.model.discriminator_parameters()
        for p in disc_params:  # the encoder step needs gradients w.r.t. the codes only
            p.requires_grad_(False)
        g = b.out["loss_gen"]
        for reg, z, y in b.adversarial:
            g = g + reg.gen_loss(z, y, b.keep, self.prior_gen)
        g = b.out["loss_gen"] = g + self.model.consistency_loss(b.x_in, b.codes)
        self._update("gen", g)
        for p in disc_params:
            p.requires_grad_(True)

    def _joint(self, b: _Batch) -> None:
        """One encoder pass, one pass of each discriminator over prior samples and codes, then
        both updates at once: the discriminators on their loss (the codes count as data: no
        gradient reaches the encoder), the encoder and decoder on reconstruction + adv_weight x
        the adversarial loss (no gradient reaches the discriminators). Unlike the paper's table
        the adversarial loss sees the codes before this step's reconstruction update. About 34
        instead of 45 MFLOP per image at the paper's MNIST sizes (bench/flops.py)."""
        rec_total = self._reconstruct(b)
        d_loss, g = b.out["loss_disc"], b.out["loss_gen"]
        for reg in self.model.regularizers:
            z, zp, y = self._prior_batch(reg, b)
            d, gen = reg.joint_losses(zp, z, y, b.keep, self.prior_gen)
            d_loss, g = d_loss + b.add_disc(d), g + gen
        g = b.out["loss_gen"] = g + self.model.consistency_loss(b.x_in, b.codes)
        disc, ae = self.opts["disc"], self.opts["recon"]
        disc_params = [p for grp in disc.param_groups for p in grp["params"]]
        ae_params = [p for grp in ae.param_groups for p in grp["params"]]
        optim.clear_grads(disc)
        optim.clear_grads(ae)
        # ``inputs`` restricts each backward pass to its own networks, so autograd computes
        # neither the discriminators' weight gradients for the encoder's loss nor the codes'
        # gradient for the discriminators' loss
        d_loss.backward(inputs=disc_params, retain_graph=True)
        (rec_total + self.options.adv_weight * g).backward(inputs=ae_params)
        self.shard.average_grads(disc_params)
        self.shard.average_grads(ae_params)
        optim.step(disc)
        optim.step(ae)

    def _classify(self, b: _Batch) -> None:
        if b.classify is None:
            return
        xl, yl = b.classify
        if self.options.input_noise > 0:
            xl = xl + self.options.input_noise * torch.randn_like(xl)
        b.out["loss_classify"] = cls = self.model.classify_loss(xl, yl)
        self._update("classify", cls)


class Runner:
    """Runs a :class:`Step` on a batch named by indices into device-resident data.

    ``precision = "bf16"``: the step's forward passes under autocast (bfloat16 matrix products;
    losses, weights and optimizer states stay float32); it pays on GPUs and on CPUs with bfloat16
    matrix units (AMX), and costs on others. ``cuda_graph``: the first :attr:`warmup` steps run
    eagerly on a side stream (they initialise optimizer states and cuBLAS); the next step is
    captured as one CUDA graph (every phase: forwards, backwards, optimizer steps) and every later
    step replays it, after copying its batch indices into the graph's static inputs. The paper's
    MLPs at batch 100 are a few hundred small kernels per step, so on a GPU the eager step is
    bound by Python and kernel launches, not by arithmetic. A learning-rate change (the captured
    optimizer steps hold the rates) calls :meth:`reset`, and the next step is captured anew. If
    capture fails (a custom prior that copies from the host, say), the run goes on eagerly and
    says so once.
    """

    warmup = 3

    def __init__(self, step: Step, x_all: torch.Tensor, labels: torch.Tensor | None, *,
                 precision: str = "fp32", cuda_graph: bool = False, log=None):
        self.step, self.x_all, self.labels, self.precision = step, x_all, labels, precision
        self.shard = step.shard
        # under torchrun the gradient all-reduce runs between the phases: no capture
        self.cuda_graph = cuda_graph and x_all.device.type == "cuda" and step.shard.world == 1
        self.log = log or (lambda msg: None)
        self.steps = 0  # steps run by this runner (the warm-up counts)
        self.graph: Any = None
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
            return self.step(x, y, cls)

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
            graph.register_generator_state(self.step.prior_gen)
            with torch.cuda.graph(graph):
                out = self._body(s_idx, s_j)
        except (RuntimeError, AttributeError) as e:
            for p in self.step.model.parameters():  # a failed capture may have left some frozen
                p.requires_grad_(True)
            self.cuda_graph = False
            self.log(f"warning: train.cuda_graph: the step could not be captured ({e}); "
                     "training continues without CUDA graphs")
            return
        self.graph, self.static = graph, (s_idx, s_j, out)


class EpochSums:
    """The current epoch's sums, on the device, by name: steps, every :data:`SCALARS` entry, and
    the sum and the sum of squares of each z dimension (the codes' mean and std per epoch). One
    tensor, so a step adds in two kernels; checkpoints hold it by name (:meth:`tensors`)."""

    def __init__(self, code_dim: int, device: torch.device | str = "cpu"):
        self.names = ("steps", *SCALARS)
        self.d = code_dim
        self.t = torch.zeros(len(self.names) + 2 * code_dim, device=device, dtype=torch.float64)

    def add(self, scalars: torch.Tensor, z: torch.Tensor) -> None:
        n = len(self.names)
        self.t[0] += 1
        self.t[1:n] += scalars
        self.t[n:n + self.d] += z.sum(0)
        self.t[n + self.d:] += z.pow(2).sum(0)

    def zero_(self) -> None:
        self.t.zero_()

    def means(self, t: torch.Tensor | None = None) -> dict[str, float]:
        """The mean of each scalar over the epoch's steps (of ``t``, a copy summed over ranks)."""
        t = self.t if t is None else t
        n = len(self.names)
        steps = max(float(t[0]), 1.0)
        return dict(zip(SCALARS, (t[1:n] / steps).tolist()))

    def code_moments(self, t: torch.Tensor, count: float) -> tuple[list[float], list[float]]:
        """Per-dimension mean and (unbiased) std of the ``count`` codes summed in ``t``."""
        n, d = len(self.names), self.d
        mean = t[n:n + d] / count
        var = (t[n + d:] / count - mean.pow(2)).clamp_min(0) * count / max(count - 1, 1)
        return mean.tolist(), var.sqrt().tolist()

    def tensors(self) -> dict[str, torch.Tensor]:
        n = len(self.names)
        out = {f"sums.{k}": self.t[i:i + 1].clone() for i, k in enumerate(self.names)}
        out["sums.z"], out["sums.z2"] = self.t[n:n + self.d].clone(), self.t[n + self.d:].clone()
        return out

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        """From a checkpoint: by name (a name the checkpoint lacks starts at zero), or, for a
        checkpoint written before the sums had names, from its positional ``acc`` tensor."""
        n = len(self.names)
        t = torch.zeros_like(self.t)
        if "acc" in tensors:
            acc = tensors["acc"].to(t.device, t.dtype)
            # [steps, 5 scalars, (loss_classify, from the semi-supervised AAE on), z, z^2]
            k = len(acc) - 2 * self.d
            t[:k] = acc[:k]
            t[n:] = acc[k:]
        else:
            for i, name in enumerate(self.names):
                if f"sums.{name}" in tensors:
                    t[i] = tensors[f"sums.{name}"].to(t.device, t.dtype)[0]
            t[n:n + self.d] = tensors["sums.z"].to(t.device, t.dtype)
            t[n + self.d:] = tensors["sums.z2"].to(t.device, t.dtype)
        self.t = t
