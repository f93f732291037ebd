"""The run directory: its layout, the checks before one is created, and loading a model back.

Layout of ``RUN/``::

    config.toml            the fully resolved config
    metrics.jsonl          one JSON object per epoch
    checkpoints/           STEM.safetensors + STEM.json pairs (see aae.checkpoint); damaged ones
                           a writer found, kept aside as STEM.damaged[.N].json/.safetensors
    samples/epoch_NNNN.png decoder output for one fixed set of 100 prior samples
    samples/progress.png   those grids side by side
    tsne.png, latent.png, latent.json
    tb/                    TensorBoard event files
"""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from . import checkpoint as ckpt
from .config import PHASES, Config, load_toml
from .errors import AAEError
from .model import AAE
from .priors import build_prior, has_density

# What aae writes into a run folder, by name: --force removes these and nothing else. Inside
# its sub-folders only files of the names aae gives are removed; a folder left empty goes too.
FILES = ("config.toml", "metrics.jsonl", "tsne.png", "latent.png", "latent.json",
         "latent_scatter.png", "manifold.png", "style.png", "clusters.png",
         "clusters_confident.png", "eval.json", "report.html")
FOLDERS = {"checkpoints": re.compile(r"epoch_\d{4,}(_step_\d{6,})?(\.damaged(\.\d+)?)?"
                                     r"\.(json|safetensors)|\..*\.tmp"),
           "samples": re.compile(r"epoch_\d+\.png|progress\.png"),
           "best": re.compile(r"best\.(json|safetensors)|\..*\.tmp"),
           "tb": re.compile(r"events\.out\.tfevents\..*")}


def is_run(path: Path) -> bool:
    """Whether ``path`` holds an aae run: its config.toml is an aae config, or its checkpoints
    folder holds aae checkpoints."""
    cfg = path / "config.toml"
    if cfg.is_file():
        try:
            Config.from_dict(load_toml(cfg))
            return True
        except AAEError:
            pass
    ck = path / "checkpoints"
    return ck.is_dir() and any(FOLDERS["checkpoints"].fullmatch(p.name) for p in ck.iterdir())


def remove_run_files(out: Path) -> None:
    """Remove what aae wrote into the run folder ``out`` (:data:`FILES`, and in each of
    :data:`FOLDERS` the files of aae's names, recursively for tb/), leaving anything else."""
    for name in FILES:
        (out / name).unlink(missing_ok=True)
    for folder, names in FOLDERS.items():
        root = out / folder
        if not root.is_dir():
            continue
        for p in sorted(root.rglob("*"), key=lambda q: len(q.parts), reverse=True):
            if p.is_file() and names.fullmatch(p.name):
                p.unlink()
            elif p.is_dir() and not any(p.iterdir()):
                p.rmdir()
        if not any(root.iterdir()):
            root.rmdir()


class RunLock:
    """One writer per run: an exclusive ``flock`` on ``RUN/.lock``, held while a process trains
    the run and released by the kernel when it exits however it exits (SIGKILL included). The
    file holds the holder's PID, so a second writer can say who it waits for. Readers (sample,
    evaluate, report) take no lock."""

    held: weakref.WeakSet[RunLock] = weakref.WeakSet()  # the locks this process holds

    def __init__(self, run: Path):
        import fcntl

        self.run, self.path = Path(run).resolve(), run / ".lock"
        try:
            self.file = open(self.path, "a+")  # noqa: SIM115 (held until release)
        except OSError as e:
            raise AAEError(f"{run}: cannot open its lock file ({e.strerror or e})") from None
        try:
            fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            holder = self.file.read().strip() or "unknown"
            self.file.close()
            raise AAEError(f"{run}: another process (PID {holder}) is training this run; wait "
                           "for it to finish or stop it first") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(str(os.getpid()))
        self.file.flush()
        RunLock.held.add(self)

    @staticmethod
    def holds(run: Path) -> bool:
        """Whether this process holds ``run``'s lock (is its writer)."""
        return any(lk.run == Path(run).resolve() and not lk.file.closed for lk in RunLock.held)

    def release(self) -> None:
        if not self.file.closed:
            self.file.close()  # closing the descriptor drops the flock


def prepare_new(out: Path, force: bool) -> RunLock:
    """Check that ``out`` may receive a new run, then create it and take its lock (before any
    file of an earlier run there is removed). Raises before writing anything."""
    if out.exists() and not out.is_dir():
        raise AAEError(f"--out {out}: exists and is not a folder")
    lock = None
    if out.is_dir() and is_run(out):
        if not force:
            raise AAEError(f"--out {out}: already holds a run; pass --resume to continue it or "
                           "--force to replace it")
        lock = RunLock(out)
        remove_run_files(out)
    elif out.is_dir() and any(p.name != ".lock" for p in out.iterdir()):
        raise AAEError(f"--out {out}: the folder holds files and is not an aae run; choose a new "
                       "or empty folder (--force replaces only a run)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AAEError(f"--out {out}: cannot create the folder ({e.strerror or e})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise AAEError(f"--out {out}: the folder is not writable")
    return lock or RunLock(out)


# train options that say how and where a run trains, not what it computes: --resume may change them
RUNTIME_KEYS = ("epochs", "device", "threads", "precision", "compile", "cuda_graph")


# the learning rates may change too: lowering them is how a diverged run continues
_RUNTIME = frozenset(f"train.{k}" for k in RUNTIME_KEYS) | {f"optim.{ph}.lr" for ph in PHASES}
_MISSING = "(missing)"


def first_difference(a: dict, b: dict, skip: frozenset[str] = frozenset(),
                     prefix: str = "") -> tuple[str, Any, Any] | None:
    """The first dotted key (in ``a``'s order, then ``b``'s) whose value differs between the
    nested tables ``a`` and ``b``, with both values; keys in ``skip`` are not compared."""
    for k in [*a, *(k for k in b if k not in a)]:
        key = f"{prefix}{k}"
        if key in skip:
            continue
        va, vb = a.get(k, _MISSING), b.get(k, _MISSING)
        if isinstance(va, dict) and isinstance(vb, dict):
            found = first_difference(va, vb, skip, key + ".")
            if found:
                return found
        elif va != vb:
            return key, va, vb
    return None


def check_resume_config(saved: Config, given: Config, run: Path) -> None:
    """On --resume only the length of training (and where and how it runs) may change."""
    diff = first_difference(saved.to_dict(), given.to_dict(), _RUNTIME)
    if diff:
        key, v, w = diff
        raise AAEError(f"--resume {run}: option {key} is {v!r} in the saved run but {w!r} was "
                       "given; drop it or start a new run")


def checkpoint_config(meta: dict[str, Any], json_name: str) -> Config:
    """The config a checkpoint was written under (AAEError naming it if it does not load)."""
    try:
        return Config.from_dict(meta["config"]).validate()
    except AAEError as e:
        raise AAEError(f"checkpoint {json_name}: its config does not load here ({e})") from None


def resume_config(run: Path, given: Config, warn: Callable[[str], None] | None = None,
                  ) -> tuple[Config, tuple[dict, dict]]:
    """The config to resume ``run`` with and its newest verified checkpoint (tensors, meta).
    The checkpoint's config is the run's; ``config.toml`` is a view of it and must agree with it
    (but for :data:`RUNTIME_KEYS`), and ``given`` may change only those. A damaged newer
    checkpoint is skipped with a warning (``warn``); the process holding the run's lock (its
    writer) also keeps it aside (:func:`aae.checkpoint.latest`)."""
    shown = load_config(run)
    folder = run / "checkpoints"
    tensors, meta = ckpt.latest(folder, set_aside=RunLock.holds(run), warn=warn)
    if not isinstance(meta.get("optim"), dict) or "rng" not in meta:
        raise AAEError(f"--resume {run}: its checkpoint holds the model's weights only (as "
                       "AAE.save writes them), not a training state to continue")
    name = meta["tensors"].removesuffix(".safetensors") + ".json"
    saved = checkpoint_config(meta, str(folder / name))
    diff = first_difference(shown.to_dict(), saved.to_dict(), _RUNTIME)
    if diff:
        key, v, w = diff
        raise AAEError(f"run {run}: config.toml differs from the checkpoint's config at {key} "
                       f"({v!r} in config.toml, {w!r} in {name}); restore config.toml or start "
                       "a new run")
    check_resume_config(saved, given, run)
    d = saved.to_dict()
    d["train"].update({k: getattr(given.train, k) for k in RUNTIME_KEYS})
    for ph, opt in d["optim"].items():
        opt["lr"] = given.optim[ph].lr
    return Config.from_dict(d).validate(), (tensors, meta)


def load_config(run: Path) -> Config:
    if not (run / "config.toml").is_file():
        raise AAEError(f"{run}: not a run directory (no config.toml)")
    return Config.from_dict(load_toml(run / "config.toml"), str(run / "config.toml")).validate()


def build_model(cfg: Config, image_shape: tuple[int, ...],
                parts: dict[str, torch.nn.Module] | None = None) -> AAE:
    """The model a config describes, for images of ``image_shape`` (C, H, W). ``parts``: network
    instances to use instead of the config's (keys ``encoder``, ``decoder``)."""
    m = cfg.model
    if m.arch == "conv" and not (m.encoder and m.decoder):
        h, w = image_shape[1:]
        k = len(m.conv_widths)
        if min(h, w) // 2**k < 1:
            raise AAEError(f"option model.conv_widths: {k} stride-2 stages need images of at least "
                           f"{2**k}x{2**k} pixels; these are {h}x{w}")
    prior = build_prior(cfg.prior, cfg.model.code_dim)
    labels = getattr(prior, "num_components", 0)
    if cfg.model.label_conditioning and not labels:
        raise AAEError(f"option model.label_conditioning: the {cfg.prior.name} prior has no "
                       "components to put each label on; use prior.name = mixture or swiss_roll")
    if cfg.model.reject_quantile > 0:
        if not has_density(prior, cfg.model.code_dim):
            raise AAEError(f"option model.reject_quantile: the {cfg.prior.name} prior has no "
                           "density to reject unlikely codes by; use a gaussian, uniform or "
                           "mixture prior")
    if not (parts or m.encoder or m.decoder or m.discriminator):  # user code is built once
        check_size(AAE, (image_shape, cfg.model, prior, labels), cfg.data.labelled)
    return AAE(image_shape, cfg.model, prior, labels, labelled=cfg.data.labelled, parts=parts)


# bytes per parameter in training: the weight, its gradient and Adam's two moments (float32)
TRAINING_BYTES = 16


def check_size(cls, args: tuple, labelled: int) -> None:
    """Refuse a model whose training state would not fit in this machine's memory, before any of
    it is allocated (it is first built on the ``meta`` device, which holds shapes only): an
    oversized layer would otherwise be killed by the kernel's out-of-memory killer, unexplained."""
    with torch.device("meta"):
        n = sum(p.numel() for p in cls(*args, labelled=labelled).parameters())
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not every platform says
        return
    if n * TRAINING_BYTES > memory:
        raise AAEError(f"options model.*: the model has {n / 1e6:,.0f} M parameters, "
                       f"{n * TRAINING_BYTES / 2**30:,.1f} GiB to train with Adam, more than this "
                       f"machine's {memory / 2**30:,.1f} GiB of memory; use smaller layers "
                       "(model.encoder_hidden, decoder_hidden, disc_hidden, conv_widths, code_dim)")


def load_weights(model: AAE, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Copy ``model.*`` tensors into ``model``; any missing, extra or mis-shaped one is refused."""
    own = model.state_dict()
    got = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    missing = sorted(set(own) - set(got))
    extra = sorted(set(got) - set(own))
    if missing or extra:
        what = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
        raise AAEError(f"{source}: does not match the model built from its config ({what})")
    for k, v in got.items():
        if v.shape != own[k].shape:
            raise AAEError(f"{source}: {k} has shape {tuple(v.shape)}, the config's model needs "
                           f"{tuple(own[k].shape)}")
    model.load_state_dict(got)


def check_images(expected: tuple[int, ...], got: tuple[int, ...], source: str) -> None:
    """Refuse data whose image size differs from what the run's model was built for."""
    if tuple(got) != tuple(expected):
        fmt = lambda s: "x".join(map(str, s))  # noqa: E731
        raise AAEError(f"{source}: images are {fmt(got)} (C x H x W) but the run's model takes "
                       f"{fmt(expected)}")


def load_run(run: str | Path, device: str | torch.device = "cpu") -> tuple[Config, AAE, dict]:
    """Config, model (eval mode, newest verified checkpoint) and checkpoint metadata of a run."""
    run = Path(run)
    cfg = load_config(run)
    tensors, meta = ckpt.latest(run / "checkpoints")
    shape = tuple(meta.get("image_shape", ()))
    if len(shape) != 3:
        raise AAEError(f"{run}: checkpoint lacks a valid image_shape")
    model = build_model(cfg, shape)
    load_weights(model, tensors, str(run / "checkpoints" / meta["tensors"]))
    return cfg, model.to(device).eval(), meta
