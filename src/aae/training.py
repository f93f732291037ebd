"""The training loop: epochs of steps, and hooks between them.

Everything else a run needs is an object the trainer holds: the model and its :class:`~aae.step.Step`
(which owns the optimizers), the named random streams, the epoch's sums, the checkpoints, and the
end-of-epoch hooks (:mod:`aae.hooks`: evaluation, metrics, samples, TensorBoard, report).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

from . import artifacts, distributed, hooks, optim
from . import data as data_mod
from .checkpoint import Checkpoints, Training
from .config import Config, to_toml
from .errors import AAEError, DivergenceError, Interrupted
from .fileio import atomic_write_text, read_jsonl
from .groups import epoch_order
from .runs import RunLock, build_model, is_run, prepare_new, resume_config
from .step import EpochSums, Runner, Step
from .streams import Streams, generator, stream_seed

SYNC_EVERY = 50  # steps between the host's looks at the device (progress, divergence, stop)


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise AAEError(f"option train.device (--device): {name!r} asked for, but no CUDA device is "
                       "available; use --device cpu or auto")
    return torch.device(name)


class Trainer:
    """Trains one run into the folder ``out``: builds its parts, then :meth:`fit` loops."""

    def __init__(self, cfg: Config, out: str | Path, data: data_mod.ImageData | None = None,
                 resume: bool = False, force: bool = False, quiet: bool = False):
        self.out, self.quiet = Path(out), quiet
        self.shard, self.device = distributed.setup(select_device(cfg.train.device))
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        # one writer per run: a resumed run is locked before anything of it is read
        self.lock = RunLock(self.out) if resume and self.shard.main and is_run(self.out) else None
        cfg, saved = (resume_config(self.out, cfg, warn=lambda m: self.log(f"warning: {m}"))
                      if resume else (cfg, None))
        self.cfg = cfg
        # everything that can fail on user input happens before the run folder is touched
        data = data_mod.from_config(cfg.data) if data is None else data
        data_mod.check_training_data(cfg, data, self.shard.world)
        self.data = data.to(self.device)
        torch.manual_seed(cfg.train.seed)
        self.model = build_model(cfg, data.image_shape).to(self.device)
        if cfg.train.compile:
            self.model.compile_networks()
        streams = Streams.seeded(cfg.train.seed, self.device)
        self.step = Step.from_config(self.model, cfg, streams.prior, self.shard)
        labels = data_mod.training_labels(cfg, self.model.caps, self.data)
        # a new run's folder until its first checkpoint: what a failure before it removes
        self.unsaved: bool | None = None  # True: this run created the folder itself
        if not resume and self.shard.main:  # only rank 0 writes
            existed = self.out.exists()
            self.lock = prepare_new(self.out, force)
            self.unsaved = not existed
        try:
            self._build(cfg, data, streams, labels, saved)
        except BaseException:
            self.discard_unsaved()
            self.release()
            raise

    def _build(self, cfg: Config, data, streams: Streams, labels, saved) -> None:
        """The run's state, checkpoints, step runner and hooks (a new run's config written)."""
        if self.unsaved is not None:
            atomic_write_text(self.out / "config.toml", to_toml(cfg))
        self.shard.barrier()
        noise = self.model.prior.sample(100, generator=generator(cfg.train.seed, "sample_noise"))
        self.t = Training(cfg, self.model, self.step.opts, streams,
                          EpochSums(cfg.model.code_dim, self.device), noise, labels,
                          data.image_shape)
        self.checkpoints = Checkpoints(self.out / "checkpoints", cfg.train.checkpoint_every)
        if saved is not None:
            self.checkpoints.restore(self.t, *saved, main=self.shard.main)
            if self.shard.main:  # a resume may extend the run's epochs
                hooks.truncate_metrics(self.out / "metrics.jsonl", self.t.state.epoch)
                atomic_write_text(self.out / "config.toml", to_toml(cfg))
        self.labelled = (None if not self.model.caps.classify
                         else (self.t.labels >= 0).nonzero().flatten())
        self.runner = Runner(self.step, self.data.train_x, self.t.labels,
                             precision=cfg.train.precision, cuda_graph=cfg.train.cuda_graph,
                             log=self.log)
        self.hooks = hooks.default_hooks(self) if self.shard.main else []
        self._stop: int | None = None
        if self.shard.main:
            self.log(start_line(self))

    def discard_unsaved(self) -> None:
        """A new run that failed before its first checkpoint leaves nothing behind: the files it
        wrote go (by name, as --force removes them), and the folder too if it made it."""
        if self.unsaved is None:
            return
        from .runs import remove_run_files

        remove_run_files(self.out)
        (self.out / ".lock").unlink(missing_ok=True)
        if self.unsaved and self.out.is_dir() and not any(self.out.iterdir()):
            self.out.rmdir()
        self.unsaved = None

    def log(self, msg: str) -> None:
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        self._stop = signum

    def fit(self) -> dict[str, Any]:
        """Train to ``train.epochs``; returns the last epoch's metrics line."""
        s = self.t.state
        old = self._handle_signals(self._on_signal)  # a signal stops at the next step, saved
        last: dict[str, Any] = {}
        try:
            if self.shard.main and s.epoch == 0 and s.step_in_epoch == 0 \
                    and not (self.out / "samples").is_dir():
                artifacts.write_samples(self.out, self.model, self.t.sample_noise, 0)
                self.checkpoints.save(self.t)
            self.unsaved = None  # from here on the run resumes from its checkpoints
            while s.epoch < self.cfg.train.epochs:
                last = self._epoch()
            if not last and s.epoch:  # nothing left to train: report the latest logged epoch
                lines = read_jsonl(self.out / "metrics.jsonl")
                last = lines[-1] if lines else {}
            # after training, a signal stops the plots and report at once (the run is saved)
            self._handle_signals(self._stop_after_training)
            for h in self.hooks:
                h.run_end(self)
        except Interrupted:
            # every rank waits for rank 0's checkpoint, then the group is torn down on all of
            # them: a rank that exits with the gloo group alive aborts (SIGABRT)
            self.shard.barrier()
            distributed.teardown(self.shard)
            self.release()  # saved: the run is free for the next writer
            raise
        except BaseException:
            for h in self.hooks:  # TensorBoard's and MLflow's writers, before their files go
                h.close()
            self.discard_unsaved()  # failed before the first checkpoint: nothing half-written
            self.release()  # failed (a divergence, say): the run is free again
            raise
        finally:
            for sig, h in old.items():
                signal.signal(sig, h)
            for h in self.hooks:
                h.close()
        # every rank waits for rank 0's plots and report: a process group torn down on one rank
        # while the other still runs aborts the whole job (gloo)
        self.shard.barrier()
        distributed.teardown(self.shard)
        self.release()
        return last

    @staticmethod
    def _handle_signals(handler) -> dict:
        """Route SIGINT and SIGTERM to ``handler``; returns the previous handlers (none are set
        outside the main thread, where Python cannot set them)."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _stop_after_training(self, signum, frame) -> None:  # noqa: ARG002
        raise Interrupted(f"{signal.Signals(signum).name} after training: the run is trained and "
                          f"saved; its plots and report are not finished (draw them with: "
                          f"aae plot {self.out} && aae report {self.out})", signum)

    def release(self) -> None:
        """Give the run's lock back (the process's exit does it too)."""
        if self.lock is not None:
            self.lock.release()

    def _begin_epoch(self, epoch: int) -> tuple[torch.Tensor, int]:
        """Set the epoch's learning rates and example order; returns (order, steps)."""
        cfg, t = self.cfg, self.t
        for ph, opt in t.opts.items():
            lr = optim.lr_at(cfg.optim[ph], epoch, cfg.train.epochs)
            for g in opt.param_groups:
                if g["lr"] != lr:
                    g["lr"] = lr
                    self.runner.reset()  # a captured step holds the old rate
        if t.state.step_in_epoch == 0:
            t.streams.data_epoch = t.streams.data.get_state()
            t.sums.zero_()
            t.state.epoch_seconds = 0.0
        else:  # resuming mid-epoch: replay the same permutation
            t.streams.data.set_state(t.streams.data_epoch)
        m = cfg.model
        shards = m.disc_groups > 1 and m.group_split == "shard"
        perm, steps = epoch_order(len(self.data.train_x), cfg.train.batch_size, t.streams.data,
                                  m.disc_groups, stream_seed(cfg.train.seed, "shards") if shards else None)
        return perm.to(self.device), steps

    def _epoch(self) -> dict[str, Any]:
        t, s = self.t, self.t.state
        epoch = s.epoch + 1
        perm, steps = self._begin_epoch(epoch)
        t0 = time.perf_counter()
        bad = self._steps(epoch, perm, steps)
        dt = time.perf_counter() - t0
        s.epoch_seconds += dt
        s.elapsed += dt
        check_finite(self.shard.all_max(bad), epoch, self.out, self.cfg)
        if self._stop is not None and s.step_in_epoch < steps:
            # the partial epoch's sums of every rank go into the checkpoint (rank 0 writes their
            # total; on resume rank 0 takes it and the others start from zero)
            t.sums.t = self.shard.all_sum(t.sums.t)
            if self.shard.main:
                self.checkpoints.save(t)
            self._interrupted(f"saved epoch {epoch} at step {s.step_in_epoch}/{steps}")
        s.epoch, s.step_in_epoch = epoch, 0
        line = metrics_line(self.t, self.shard, epoch, steps * self.cfg.train.batch_size)
        for h in self.hooks:
            h.epoch_end(self, line)
        if self.shard.world > 1 and self.shard.any(self._stop is not None, self.device):
            self._stop = self._stop or signal.SIGTERM
        if self._stop is not None:
            self._interrupted(f"saved epoch {epoch}")
        return line

    def _steps(self, epoch: int, perm: torch.Tensor, steps: int) -> torch.Tensor:
        """Run the epoch's steps from where it stands; returns, per loss, the first step at which
        it was not finite (-1: none). Stops early at a signal or a non-finite loss."""
        t, s, b, shard = self.t, self.t.state, self.cfg.train.batch_size, self.shard
        bad = torch.full((3,), -1, dtype=torch.long, device=self.device)
        bar = _progress(steps, epoch, self.cfg.train.epochs, s.step_in_epoch,
                        self.quiet or not shard.main)
        self.model.train()
        for i in range(s.step_in_epoch, steps):
            j = None
            if self.labelled is not None:  # a labelled mini-batch (with replacement)
                j = self.labelled[torch.randint(len(self.labelled), (b,), device=self.device,
                                                generator=t.streams.label_batches)]
            scalars, z = self.runner(perm[i * b:(i + 1) * b], j)
            fin = torch.isfinite(scalars[:3])
            bad = torch.where((bad < 0) & ~fin, torch.full_like(bad, s.global_step + 1), bad)
            t.sums.add(scalars, z)
            s.global_step, s.step_in_epoch = s.global_step + 1, i + 1
            synced = (i + 1) % SYNC_EVERY == 0
            if bar is not None and (synced or i + 1 == steps):
                m = t.sums.means()
                acc = (m["disc_acc_prior"] + m["disc_acc_code"]) / 2
                bar.set_postfix(rec=f"{m['loss_recon']:.4f}", d=f"{m['loss_disc']:.3f}",
                                g=f"{m['loss_gen']:.3f}", acc=f"{acc:.2f}", refresh=False)
                bar.update((i + 1) - bar.n)
            if synced and shard.any(int(bad.max()) >= 0, self.device):
                break
            if shard.world == 1 and self._stop is not None:
                break
            if shard.world > 1 and synced and shard.any(self._stop is not None, self.device):
                self._stop = self._stop or signal.SIGTERM  # every rank stops at the same step
                break
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        if bar is not None:
            bar.close()
        return bad

    def _interrupted(self, what: str) -> None:
        name = signal.Signals(self._stop).name
        raise Interrupted(f"{name}: {what} to {self.out / 'checkpoints'}; continue with: "
                          f"aae train --resume {self.out}", self._stop)


def start_line(t: Trainer) -> str:
    """What a run is about to do, in one line: device, data, model size, where it writes, and the
    options that differ from the defaults."""
    from .report import config_diff

    n = sum(p.numel() for p in t.model.parameters())
    diff = ", ".join(f"{k}={v}" for k, v in config_diff(t.cfg.to_dict()))
    d = t.data
    return (f"training on {t.device} ({torch.get_num_threads()} threads): {d.name}, "
            f"{len(d.train_x)} training images of {'x'.join(map(str, d.image_shape))}; "
            f"{t.model.caps.description}, {n / 1e6:.2f} M parameters; writing {t.out}"
            + (f"; options: {diff}" if diff else ""))


def check_finite(bad: torch.Tensor, epoch: int, run: Path, cfg: Config) -> None:
    """Raise :class:`DivergenceError` naming the first phase whose loss was not finite (``bad``:
    the first such step per phase, -1 for none) and the command that continues with its
    optimizer's learning rate a tenth as large."""
    phases = (("reconstruction", "recon"), ("discriminator", "disc"), ("encoder (generator)", "gen"))
    for (phase, key), step in zip(phases, bad.tolist()):
        if step >= 0:
            lr = cfg.optim[key].lr / 10
            raise DivergenceError(
                f"the {phase} loss became NaN or infinite at epoch {epoch}, step {step}; "
                f"the last good checkpoint in {run / 'checkpoints'} is kept; continue from it "
                f"with a lower rate: aae train --resume {run} --set optim.{key}.lr={lr:.3g}")


def metrics_line(t: Training, shard, epoch: int, images: int) -> dict[str, Any]:
    """The epoch's metrics, by name, from its sums over every process."""
    s = t.state
    total = shard.all_sum(t.sums.t).double().cpu()  # summed over ranks: [0] = world x steps
    m = t.sums.means(total)
    count = max(float(total[0]), 1.0) * (t.cfg.train.batch_size // shard.world)
    mean, std = t.sums.code_moments(total, count)
    line = {"epoch": epoch, "step": s.global_step, **{k: m[k] for k in m if k != "loss_classify"},
            "disc_acc": (m["disc_acc_prior"] + m["disc_acc_code"]) / 2,
            "seconds": s.epoch_seconds, "images_per_s": images / max(s.epoch_seconds, 1e-9),
            "elapsed": s.elapsed, "code_mean": mean, "code_std": std,
            "lr": {ph: opt.param_groups[0]["lr"] for ph, opt in t.opts.items()}}
    if t.model.caps.classify:
        line["loss_classify"] = m["loss_classify"]
    if shard.world > 1:
        line.update(processes=shard.world, replicas_equal=shard.replicas_equal(t.model))
    return line


def _progress(steps: int, epoch: int, epochs: int, start: int, quiet: bool):
    if quiet:
        return None
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (logs keep the one line per epoch)
    return tqdm(total=steps, initial=start, desc=f"epoch {epoch}/{epochs}", unit="step",
                leave=False, mininterval=0.5, dynamic_ncols=True, file=sys.stderr, disable=None)


def train(cfg: Config, out: str | Path, **kw) -> dict[str, Any]:
    """Train a run from a resolved config; the five-line Python API."""
    return Trainer(cfg, out, **kw).fit()


__all__ = ["Trainer", "train", "select_device", "DivergenceError", "Interrupted"]
