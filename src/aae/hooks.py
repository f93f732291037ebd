"""What the trainer calls at the end of each epoch and of the run.

A hook has ``epoch_end(trainer, line)`` (``line``: the epoch's metrics, by name, which a hook may
add to) and ``run_end(trainer)``; either may be a no-op. :func:`default_hooks` returns the list a
run uses, in order: in-loop evaluation, the metrics file, the balance warning, sample grids,
TensorBoard, the checkpoint, the epoch's log line; after the last epoch the latent plots, cluster
grids and the report; with ``train.mlflow_uri``, :class:`aae.tracking.MLflow` last. Only the
main process (rank 0) calls them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import artifacts
from . import checkpoint as ckpt
from .fileio import append_line, atomic_write_text, read_jsonl
from .metrics import summarize_fit

if TYPE_CHECKING:  # pragma: no cover
    from .training import Trainer

SCALAR_KEYS = ("loss_recon", "loss_disc", "loss_gen", "disc_acc_prior", "disc_acc_code",
               "images_per_s", "loss_classify", "val_error", "test_error", "cluster_error",
               "cluster_error_majority")


class Hook:
    def epoch_end(self, t: Trainer, line: dict[str, Any]) -> None:  # noqa: B027
        """Called after each epoch with its metrics line."""

    def run_end(self, t: Trainer) -> None:  # noqa: B027
        """Called once after training."""

    def close(self) -> None:  # noqa: B027
        """Called when the trainer stops, finished or not."""


class ClassificationEval(Hook):
    """Validation and test error of q(y|x) each epoch; the weights with the best validation error
    so far are kept in RUN/best/ (the paper's model selection)."""

    def epoch_end(self, t: Trainer, line: dict[str, Any]) -> None:
        from .evaluate import classification_error

        data, state = t.data, t.t.state
        for split, x, y in (("val", data.val_x, data.val_y), ("test", data.test_x, data.test_y)):
            if x is not None and y is not None and len(y):
                line[f"{split}_error"] = classification_error(t.model.predict(x), y)
        best = state.extra.get("best_val_error", float("inf"))
        val = line.get("val_error")
        if val is not None and val < best:
            best = state.extra["best_val_error"] = val
            tensors = {f"model.{k}": v for k, v in t.model.state_dict().items()}
            meta = {"epoch": line["epoch"], "global_step": state.global_step, "val_error": val,
                    "test_error": line.get("test_error"), "image_shape": list(data.image_shape),
                    "config": t.cfg.to_dict()}
            ckpt.save(t.out / "best", "best", tensors, meta)
        line["best_val_error"] = None if best == float("inf") else best


class ClusterEval(Hook):
    """The clustering error each epoch (paper's rule and majority vote), as ``aae evaluate
    --cluster`` computes it, where the data has labels to score with."""

    def epoch_end(self, t: Trainer, line: dict[str, Any]) -> None:
        from .evaluate import cluster_error

        c = cluster_error(t.model, t.data)
        if c is not None:
            sc = c.scores
            line.update({"cluster_error": sc["paper_error"],
                         "cluster_error_majority": sc["majority_error"], "nmi": sc["nmi"],
                         "clusters_used": int(sum(s > 0 for s in sc["sizes"]))})


class MetricsFile(Hook):
    """RUN/metrics.jsonl: one line per epoch."""

    def epoch_end(self, t: Trainer, line: dict[str, Any]) -> None:
        append_line(t.out / "metrics.jsonl", json.dumps(line))


def truncate_metrics(path: Path, epoch: int) -> None:
    """On resume, drop the lines of epochs after the checkpoint (they will be trained again)."""
    lines = [ln for ln in read_jsonl(path) if ln.get("epoch", 0) <= epoch]
    atomic_write_text(path, "".join(json.dumps(ln) + "\n" for ln in lines))


class BalanceWarning(Hook):
    """Users' most common failure: one side of the game wins for good. Say so, once."""

    def epoch_end(self, t: Trainer, line: dict[str, Any]) -> None:
        extra = t.t.state.extra
        accs = extra.setdefault("recent_disc_acc", [])  # kept in memory and checkpoints
        accs.append(line["disc_acc"])
        del accs[:-3]
        if len(accs) < 3 or extra.get("warned"):
            return
        if min(accs) > 0.97:
            t.log("warning: the discriminator has been winning (accuracy > 0.97) for 3 epochs: "
                  "the codes do not match the prior; lower optim.disc.lr")
            extra["warned"] = True


def is_sample_epoch(cfg, epoch: int) -> bool:
    return epoch in cfg.train.sample_epochs or epoch == cfg.train.epochs


class Samples(Hook):
    """The decoder's grid of the fixed prior draws at ``train.sample_epochs`` and the last epoch
    (and, for 2-D codes, the latent scatter and manifold)."""

    def epoch_end(self, t: Trainer, line: dict[str, Any]) -> None:
        epoch = line["epoch"]
        if not is_sample_epoch(t.cfg, epoch):
            return
        artifacts.write_samples(t.out, t.model, t.t.sample_noise, epoch)
        if t.cfg.model.code_dim == 2:
            artifacts.write_latent_2d(t.out, t.model, t.data, epoch=epoch)


def new_grids(out: Path, logged: set[int], epoch: int) -> list[tuple[int, Path]]:
    """The sample grids up to ``epoch`` not in ``logged`` yet (epoch 0's, or a resumed run's)."""
    return [(e, p) for e in range(epoch + 1)
            if e not in logged and (p := artifacts.samples_path(out, e)).is_file()]


class TensorBoard(Hook):
    """RUN/tb/: per-epoch losses, accuracies, evaluation metrics and learning rates, every sample
    grid (epoch 0's too) in the data's channels, and at the end the run's hyper-parameters (the
    options that differ from the defaults) beside its final metrics."""

    def __init__(self, folder: Path, purge_step: int):
        self.logged: set[int] = set()
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is a dependency, but the loop must not need it
            self.writer = None
            return
        self.writer = SummaryWriter(str(folder), purge_step=purge_step or None)

    def epoch_end(self, t: Trainer, line: dict[str, Any]) -> None:
        if self.writer is None:
            return
        epoch = line["epoch"]
        for k in SCALAR_KEYS:
            if k in line:
                self.writer.add_scalar(k, line[k], epoch)
        for phase, lr in line.get("lr", {}).items():
            self.writer.add_scalar(f"lr/{phase}", lr, epoch)
        for e, path in new_grids(t.out, self.logged, epoch):
            self._image(path, e)

    def _image(self, path: Path, epoch: int) -> None:
        from PIL import Image

        with Image.open(path) as im:  # the data's channels
            grid = np.asarray(im.convert("L" if im.mode in ("L", "1") else "RGB"))
        self.writer.add_image("samples", grid, epoch, dataformats="HW" if grid.ndim == 2 else "HWC")
        self.logged.add(epoch)

    def run_end(self, t: Trainer) -> None:
        if self.writer is None:
            return
        from .report import config_diff

        last = read_jsonl(t.out / "metrics.jsonl")[-1:] or [{}]
        params = {k: v if isinstance(v, (int, float, str, bool)) else str(v)
                  for k, v in config_diff(t.cfg.to_dict())}
        metrics = {f"final/{k}": last[0][k] for k in SCALAR_KEYS if k in last[0]}
        self.writer.add_hparams(params or {"defaults": "yes"}, metrics, run_name=".")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Checkpoint(Hook):
    def epoch_end(self, t: Trainer, line: dict[str, Any]) -> None:  # noqa: ARG002
        t.checkpoints.save(t.t)


class EpochLog(Hook):
    def epoch_end(self, t: Trainer, line: dict[str, Any]) -> None:
        t.log(f"epoch {line['epoch']}/{t.cfg.train.epochs}  rec {line['loss_recon']:.4f}  "
              f"disc {line['loss_disc']:.3f}  gen {line['loss_gen']:.3f}  "
              f"D acc {line['disc_acc']:.2f}  {line['images_per_s']:.0f} img/s")


class FinalArtifacts(Hook):
    """After training: the test codes' fit and plots, the cluster grid, the report."""

    def run_end(self, t: Trainer) -> None:
        n = min(t.cfg.train.tsne_points, len(t.data.test_x))
        t.log(f"after training: the test codes' fit{f', a t-SNE of {n} codes' if n else ''}, "
              "plots and the report (Ctrl-C skips them) ...")
        fit = artifacts.write_latent(t.out, t.model, t.data, t.cfg.train.seed,
                                     t.cfg.train.tsne_points)
        t.log(f"test codes vs prior: {summarize_fit(fit)}")
        if t.model.caps.y_head:
            artifacts.write_clusters(t.out, t.model, t.data)
        from .report import write_report

        write_report(t.out)
        t.log(f"run written to {t.out} (open report.html)")


def default_hooks(t: Trainer) -> list[Hook]:
    caps = t.model.caps
    evals: list[Hook] = [ClassificationEval()] if caps.classify else (
        [ClusterEval()] if caps.cluster else [])
    out = [*evals, MetricsFile(), BalanceWarning(), Samples(),
           TensorBoard(t.out / "tb", t.t.state.global_step), Checkpoint(), EpochLog(),
           FinalArtifacts()]
    if t.cfg.train.mlflow_uri:  # last: it logs the grids and files the others wrote
        from .tracking import MLflow

        out.append(MLflow(t))
    return out
