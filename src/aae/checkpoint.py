"""Checkpoints that are safe to open and exact to resume from.

A checkpoint is a pair of files with one stem in ``RUN/checkpoints/``:

* ``STEM.safetensors``: every tensor (weights, optimizer moments, RNG states, the fixed sample noise,
  the partial-epoch statistics). safetensors holds raw tensors only, so loading runs no code.
* ``STEM.json``: everything else (counters, the resolved config, optimizer hyper-parameters, the
  Python and NumPy RNG states) and the SHA-256 of the tensor file.

The tensor file is written first, then the JSON; both atomically. A checkpoint counts only when its
JSON exists and the hash matches, so a crash at any moment leaves the previous checkpoint usable.
Nothing on this path uses pickle.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import AAEError
from .fileio import atomic_write_bytes, atomic_write_json

FORMAT = 1


def flatten_optimizer(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict, dict]:
    """Split an optimizer's state dict into tensors (for safetensors) and plain values (JSON)."""
    sd = opt.state_dict()
    tensors, plain = {}, {"param_groups": sd["param_groups"], "state": {}}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{prefix}.{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                plain["state"].setdefault(str(idx), {})[k] = v
    return tensors, plain


# how an optimizer runs on this device, not where training stands: the receiving optimizer keeps its
# own (a run saved on a CPU and resumed on a GPU takes the CUDA-graph-capturable Adam, and back)
RUNTIME_FLAGS = ("capturable", "fused", "foreach")


def restore_optimizer(opt: torch.optim.Optimizer, prefix: str, tensors: dict, plain: dict) -> None:
    runtime = [{k: g[k] for k in RUNTIME_FLAGS if k in g} for g in opt.param_groups]
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "."):
            idx, k = key[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(idx), {})[k] = v
    for idx, st in plain.get("state", {}).items():
        state.setdefault(int(idx), {}).update(st)
    groups = [{**g, **flags} for g, flags in zip(plain["param_groups"], runtime)]
    opt.load_state_dict({"state": state, "param_groups": groups})


def save(folder: Path, stem: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write one checkpoint; returns the JSON path."""
    blob = st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    atomic_write_bytes(folder / f"{stem}.safetensors", blob)
    meta = {**meta, "format": FORMAT, "tensors": f"{stem}.safetensors",
            "sha256": hashlib.sha256(blob).hexdigest()}
    atomic_write_json(folder / f"{stem}.json", meta)
    return folder / f"{stem}.json"


def load(json_path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify one checkpoint; raises AAEError naming the file on any fault."""
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AAEError(f"checkpoint {json_path}: not readable JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "sha256" not in meta:
        raise AAEError(f"checkpoint {json_path}: not an aae checkpoint (format {FORMAT} expected)")
    name = str(meta.get("tensors", ""))
    if Path(name).name != name or not name.endswith(".safetensors"):
        raise AAEError(f"checkpoint {json_path}: bad tensor file name {name!r}")
    tpath = json_path.parent / name
    try:
        blob = tpath.read_bytes()
    except OSError as e:
        raise AAEError(f"checkpoint {tpath}: cannot be read ({e.strerror or e})") from None
    if hashlib.sha256(blob).hexdigest() != meta["sha256"]:
        raise AAEError(f"checkpoint {tpath}: SHA-256 does not match {json_path.name}; "
                       "the file is damaged or was replaced")
    try:
        tensors = st_load(blob)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise AAEError(f"checkpoint {tpath}: not a valid safetensors file ({e})") from None
    return tensors, meta


def candidates(folder: Path) -> list[Path]:
    """Checkpoint JSON files in ``folder``, newest (highest global step) first."""
    out = []
    for p in folder.glob("*.json"):
        try:
            step = int(json.loads(p.read_text(encoding="utf-8")).get("global_step", -1))
        except (OSError, ValueError, AttributeError, UnicodeDecodeError):
            continue
        out.append((step, p))
    return [p for _, p in sorted(out, key=lambda t: (t[0], t[1].name), reverse=True)]


def latest(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The newest checkpoint that verifies; a damaged newer one is skipped, not trusted."""
    errors = []
    for p in candidates(folder):
        try:
            return load(p)
        except AAEError as e:
            errors.append(str(e))
    detail = f" ({'; '.join(errors)})" if errors else ""
    raise AAEError(f"no usable checkpoint in {folder}{detail}")


def prune(folder: Path, keep: set[str]) -> None:
    """Delete checkpoint pairs whose stem is not in ``keep`` (JSON first, so none is half-valid)."""
    for p in folder.glob("*.json"):
        if p.stem not in keep:
            p.unlink(missing_ok=True)
            (folder / f"{p.stem}.safetensors").unlink(missing_ok=True)
    for p in folder.glob("*.safetensors"):
        if p.stem not in keep and not (folder / f"{p.stem}.json").exists():
            p.unlink(missing_ok=True)
    for p in folder.glob(".*.tmp"):  # left by a write that was killed half-way
        p.unlink(missing_ok=True)


@dataclass
class RunState:
    """Where training stands: everything that changes during training besides tensors."""

    epoch: int = 0  # completed epochs
    step_in_epoch: int = 0  # completed steps of the current epoch (non-zero only if interrupted)
    global_step: int = 0
    elapsed: float = 0.0  # training seconds so far (excluding plots)
    epoch_seconds: float = 0.0  # seconds spent in the current, unfinished epoch
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stem(self) -> str:
        """The checkpoint file name for this point of training."""
        mid = f"_step_{self.step_in_epoch:06d}" if self.step_in_epoch else ""
        return f"epoch_{self.epoch:04d}{mid}"


@dataclass
class Training:
    """Everything a training checkpoint holds, gathered in one place."""

    cfg: Any  # aae.config.Config
    model: torch.nn.Module
    opts: dict[str, torch.optim.Optimizer]
    streams: Any  # aae.streams.Streams
    sums: Any  # aae.step.EpochSums
    sample_noise: torch.Tensor  # the fixed prior draws every sample grid decodes
    labels: torch.Tensor | None  # the training labels the run uses (-1: none), or None
    image_shape: tuple[int, ...]
    state: RunState = field(default_factory=RunState)


def _rng_python_numpy() -> dict[str, Any]:
    st = np.random.get_state()
    v, s, g = random.getstate()
    return {"python": [v, list(s), g],
            "numpy": [st[0], st[1].tolist(), int(st[2]), int(st[3]), float(st[4])]}


def _set_rng_python_numpy(d: dict[str, Any]) -> None:
    v, s, g = d["python"]
    random.setstate((v, tuple(s), g))
    n = d["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))


class Checkpoints:
    """The training checkpoints of one run: writes them, keeps every ``every``-th epoch's and the
    newest, restores one."""

    def __init__(self, folder: Path, every: int):
        self.folder, self.every = folder, every

    def save(self, t: Training) -> Path:
        s = t.state
        tensors = {f"model.{k}": v for k, v in t.model.state_dict().items()}
        optim_plain = {}
        for ph, opt in t.opts.items():
            flat, optim_plain[ph] = flatten_optimizer(opt, f"optim.{ph}")
            tensors.update(flat)
        tensors.update(t.streams.tensors())
        tensors.update(t.sums.tensors())
        tensors["sample_noise"] = t.sample_noise
        if t.labels is not None:
            tensors["labels.train"] = t.labels
        meta = {"epoch": s.epoch, "step_in_epoch": s.step_in_epoch, "global_step": s.global_step,
                "elapsed": s.elapsed, "epoch_seconds": s.epoch_seconds, "extra": s.extra,
                "image_shape": list(t.image_shape), "config": t.cfg.to_dict(),
                "optim": optim_plain, "rng": _rng_python_numpy(),
                "torch_version": torch.__version__}
        path = save(self.folder, s.stem, tensors, meta)
        keep = {s.stem} | {p.stem for p in self.folder.glob("epoch_*.json")
                           if p.stem.count("_") == 1 and int(p.stem[6:]) % self.every == 0}
        prune(self.folder, keep)
        return path

    def restore(self, t: Training, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                main: bool = True) -> None:
        """Load a checkpoint into ``t`` in place. Under torchrun the checkpoint holds the partial
        epoch's sums over all ranks: rank 0 (``main``) carries them, the others start at zero."""
        from .runs import check_images, load_weights

        src = str(self.folder / meta["tensors"])
        check_images(tuple(meta.get("image_shape", ())), t.image_shape, f"dataset {t.cfg.data.dataset}")
        load_weights(t.model, tensors, src)
        for ph, opt in t.opts.items():
            restore_optimizer(opt, f"optim.{ph}", tensors, meta["optim"][ph])
        t.streams.load(tensors)
        t.sample_noise = tensors["sample_noise"]
        if main:
            t.sums.load(tensors)
        if t.labels is not None:
            t.labels = tensors["labels.train"].to(t.labels.device)
        _set_rng_python_numpy(meta["rng"])
        t.state = RunState(meta["epoch"], meta["step_in_epoch"], meta["global_step"],
                           meta["elapsed"], meta["epoch_seconds"], meta.get("extra", {}))
