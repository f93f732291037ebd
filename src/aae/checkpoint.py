"""Checkpoints that are safe to open and exact to resume from.

A checkpoint is a pair of files with one stem in ``RUN/checkpoints/``:

* ``STEM.safetensors``: every tensor (weights, optimizer moments, RNG states, the fixed sample noise,
  the partial-epoch statistics). safetensors holds raw tensors only, so loading runs no code.
* ``STEM.json``: everything else (counters, the resolved config, optimizer hyper-parameters, the
  Python and NumPy RNG states), the SHA-256 of the tensor file (``sha256``) and the SHA-256 of the
  canonical JSON of all its other fields (``meta_sha256``, :func:`meta_hash`).

The tensor file is written first, then the JSON; both atomically. A checkpoint counts only when its
JSON exists, both hashes match and every field has the type and range training writes, so a crash
at any moment leaves the previous checkpoint usable and an edited or damaged file is never
trusted. Format 1 (written before the JSON was hashed) has no ``meta_sha256`` and still loads.

A damaged checkpoint newer than the one used is named in one :class:`CheckpointWarning`; the run's
writer (``aae train --resume``) also keeps it aside as ``STEM.damaged.json`` /
``STEM.damaged.safetensors`` (``STEM.damaged.N.*`` when that name is taken), where no later
checkpoint overwrites it and :func:`prune` leaves it. Nothing on this path uses pickle.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import warnings
from collections.abc import Callable
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

FORMAT = 2  # 2: the JSON carries meta_sha256
READABLE = (1, 2)  # 1: written before the JSON was hashed
STEM = re.compile(r"epoch_(\d{4,})(_step_\d{6,})?")  # the names training gives checkpoints
SET_ASIDE = re.compile(r".+\.damaged(\.\d+)?")  # the stem of a damaged pair kept aside
MAX_COUNT = 2**53  # counters above this (epochs, steps) were not written by training
MAX_DEPTH = 32  # the deepest nesting a checkpoint's JSON has is 6


class CheckpointWarning(UserWarning):
    """A damaged checkpoint was skipped (and, by the run's writer, kept aside)."""


class Damaged(AAEError):
    """A checkpoint that does not verify: ``path`` is the file at fault, ``why`` the fault."""

    def __init__(self, path: Path, why: str):
        super().__init__(f"checkpoint {path}: {why}")
        self.path, self.why = path, " ".join(str(why).split())


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


def _kind(v: Any) -> Any:
    """What a reader of an optimizer option relies on: number, flag, list of which, or type."""
    if isinstance(v, bool):
        return bool
    if isinstance(v, (int, float)):
        return float
    if isinstance(v, (list, tuple)):
        return tuple(_kind(x) for x in v)
    return type(v)


def _misfit(opt: torch.optim.Optimizer, state: dict[int, dict], groups: list[dict]) -> str | None:
    """Why saved optimizer groups and state do not fit ``opt`` (None: they do): the number of
    groups and of their parameters, the kind of each option ``opt`` has (null there: any), the
    shape of each non-scalar state tensor."""
    if len(groups) != len(opt.param_groups):
        return f"{len(groups)} parameter groups saved, the optimizer has {len(opt.param_groups)}"
    for i, (g, own) in enumerate(zip(groups, opt.param_groups)):
        if len(g["params"]) != len(own["params"]):
            return f"group {i} holds {len(g['params'])} parameters, the optimizer's {len(own['params'])}"
        for k, v in own.items():
            if (k in g and k != "params" and k not in RUNTIME_FLAGS and v is not None
                    and _kind(g[k]) != _kind(v)):
                return f"group {i}: {k} is {g[k]!r}, expected a value like {v!r}"
    params = [p for g in opt.param_groups for p in g["params"]]
    for idx, st in state.items():
        for k, v in st.items():
            if torch.is_tensor(v) and v.dim() and (idx >= len(params) or v.shape != params[idx].shape):
                return f"state {idx}.{k} has shape {tuple(v.shape)}, not its parameter's"
    return None


def restore_optimizer(opt: torch.optim.Optimizer, prefix: str, tensors: dict, plain: dict) -> None:
    """Load a saved state (``tensors`` under ``prefix``, ``plain`` from the JSON) into ``opt``;
    AAEError if it does not fit ``opt``."""
    runtime = [{k: g[k] for k in RUNTIME_FLAGS if k in g} for g in opt.param_groups]
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "."):
            idx, _, k = key[len(prefix) + 1:].partition(".")
            if not (re.fullmatch(r"[0-9]{1,9}", idx) and k):
                raise AAEError(f"{prefix}: unexpected tensor {key}")
            state.setdefault(int(idx), {})[k] = v
    for idx, st in plain.get("state", {}).items():
        state.setdefault(int(idx), {}).update(st)
    groups = [{**g, **flags} for g, flags in zip(plain["param_groups"], runtime)]
    why = _misfit(opt, state, plain["param_groups"])
    if why:
        raise AAEError(f"{prefix}: {why}")
    opt.load_state_dict({"state": state, "param_groups": groups})


def meta_hash(meta: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces, ASCII) of every field but
    ``meta_sha256`` itself: what ``meta_sha256`` holds."""
    rest = {k: v for k, v in meta.items() if k != "meta_sha256"}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def save(folder: Path, stem: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write one checkpoint; returns the JSON path."""
    blob = st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    atomic_write_bytes(folder / f"{stem}.safetensors", blob)
    meta = {**meta, "format": FORMAT, "tensors": f"{stem}.safetensors",
            "sha256": hashlib.sha256(blob).hexdigest()}
    meta = json.loads(json.dumps(meta))  # hashed as a reader parses it (tuples as lists, ...)
    meta["meta_sha256"] = meta_hash(meta)
    atomic_write_json(folder / f"{stem}.json", meta)
    return folder / f"{stem}.json"


# -- what a checkpoint's JSON may hold --------------------------------------------------------------


def _int(v: Any, lo: int, hi: int) -> bool:
    return type(v) is int and lo <= v <= hi


def _num(v: Any, lo: float = -math.inf, hi: float = math.inf) -> bool:
    """A finite number (not a bool) in [lo, hi]; an int too large for a float is not."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    if isinstance(v, int) and abs(v) > MAX_COUNT:
        return False
    return math.isfinite(v) and lo <= v <= hi


def _words(v: Any, n: int) -> bool:
    """A list of ``n`` unsigned 32-bit ints (a Mersenne Twister state)."""
    return isinstance(v, list) and len(v) == n and all(_int(x, 0, 2**32 - 1) for x in v)


def _plain(v: Any) -> bool:
    """An optimizer option: null, a flag, a name, a finite number, or a flat list of them."""
    if isinstance(v, list):
        return all(not isinstance(x, (list, dict)) and _plain(x) for x in v)
    return v is None or isinstance(v, (bool, str)) or _num(v)


_GROUP_NUMBERS = ("lr", "eps", "weight_decay", "momentum", "dampening", "initial_lr")


def _group_ok(g: Any) -> bool:
    """One optimizer parameter group: parameter indices, non-negative rates, betas in [0, 1]."""
    if not (isinstance(g, dict) and isinstance(g.get("params"), list)
            and all(_int(i, 0, 2**31) for i in g["params"])):
        return False
    for k, v in g.items():
        if k in _GROUP_NUMBERS and not _num(v, 0.0):
            return False
        if k == "betas" and not (isinstance(v, list) and len(v) == 2
                                 and all(_num(b, 0.0, 1.0) for b in v)):
            return False
        if k != "params" and not _plain(v):
            return False
    return True


def _optim_ok(v: Any) -> bool:
    """Per phase: ``param_groups`` (a list of groups) and ``state`` (parameter index -> options)."""
    if not isinstance(v, dict):
        return False
    for phase in v.values():
        if not (isinstance(phase, dict) and isinstance(phase.get("param_groups"), list)
                and all(_group_ok(g) for g in phase["param_groups"])):
            return False
        state = phase.get("state", {})
        if not (isinstance(state, dict) and all(
                re.fullmatch(r"[0-9]{1,9}", i) and isinstance(st, dict)
                and all(_plain(x) for x in st.values()) for i, st in state.items())):
            return False
    return True


def _rng_ok(v: Any) -> bool:
    """Python's ``random.getstate()`` and NumPy's legacy MT19937 state, as training saves them."""
    if not (isinstance(v, dict) and isinstance(v.get("python"), list)
            and isinstance(v.get("numpy"), list)):
        return False
    p, n = v["python"], v["numpy"]
    return (len(p) == 3 and _int(p[0], 3, 3) and _words(p[1], 625) and p[1][-1] <= 624
            and (p[2] is None or _num(p[2]))
            and len(n) == 5 and n[0] == "MT19937" and _words(n[1], 624) and _int(n[2], 0, 624)
            and _int(n[3], 0, 1) and _num(n[4]))


def _real(v: Any) -> bool:
    """A float (inf and nan too: the hooks only compare them) or an int of float range."""
    return isinstance(v, float) or _num(v)


def _extra_ok(v: Any) -> bool:
    """What the end-of-epoch hooks keep: the best validation error, the recent discriminator
    accuracies, whether the balance warning was given (any other key: any JSON)."""
    return (isinstance(v, dict) and _real(v.get("best_val_error", 0.0))
            and isinstance(v.get("recent_disc_acc", []), list)
            and all(_real(x) for x in v.get("recent_disc_acc", []))
            and isinstance(v.get("warned", False), bool))


_COUNT = (lambda v: _int(v, 0, MAX_COUNT), "a whole number from 0 to 2^53")
_SECONDS = (lambda v: _num(v, 0.0, 1e12), "seconds (a finite number >= 0)")
FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "sha256": (lambda v: isinstance(v, str) and re.fullmatch("[0-9a-f]{64}", v) is not None,
               "a SHA-256 in hexadecimal"),
    "tensors": (lambda v: isinstance(v, str) and Path(v).name == v and v.endswith(".safetensors"),
                "the name of a .safetensors file beside it"),
    "epoch": _COUNT, "global_step": _COUNT, "step_in_epoch": _COUNT,
    "elapsed": _SECONDS, "epoch_seconds": _SECONDS,
    "image_shape": (lambda v: isinstance(v, list) and len(v) == 3
                    and all(_int(x, 1, 2**16) for x in v), "C, H, W: 3 whole numbers of 1..65536"),
    "config": (lambda v: isinstance(v, dict) and all(isinstance(s, dict) for s in v.values()),
               "a table of config sections"),
    "optim": (_optim_ok, "the optimizer states of the training phases"),
    "rng": (_rng_ok, "the Python and NumPy generator states"),
    "extra": (_extra_ok, "a table of the hooks' state"),
    "val_error": (lambda v: v is None or _num(v, 0.0, 1.0), "an error rate in 0..1 or null"),
    "test_error": (lambda v: v is None or _num(v, 0.0, 1.0), "an error rate in 0..1 or null"),
    "torch_version": (lambda v: isinstance(v, str), "a string"),
}
REQUIRED = ("sha256", "tensors", "epoch", "global_step", "image_shape", "config")
# a checkpoint that holds a training state (not only weights) has all of these too
TRAINING = ("step_in_epoch", "elapsed", "epoch_seconds", "optim", "rng")


def _depth(obj: Any) -> int:
    """How deeply lists and tables nest in ``obj`` (without recursion)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (list, dict)):
            deepest = max(deepest, d)
            if d > MAX_DEPTH:
                break
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def fault(meta: dict[str, Any]) -> str | None:
    """What is wrong with the fields of a checkpoint's JSON (None: nothing): each field a reader
    uses must be present where required and of the type and range training writes."""
    need = REQUIRED + (TRAINING if "optim" in meta or "rng" in meta else ())
    missing = [k for k in need if k not in meta]
    if missing:
        return f"field {missing[0]} is missing"
    for key, (ok, expected) in FIELDS.items():
        if key in meta and not ok(meta[key]):
            shown = json.dumps(meta[key])
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            return f"field {key}: expected {expected}, got {shown}"
    return None


def read_meta(json_path: Path) -> dict[str, Any]:
    """The verified JSON of one checkpoint; :class:`Damaged` naming the file on any fault."""
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except OSError as e:
        raise Damaged(json_path, f"cannot be read ({e.strerror or e})") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # RecursionError: deep nesting
        raise Damaged(json_path, f"not readable JSON ({str(e)[:80]})") from None
    if not isinstance(meta, dict) or type(meta.get("format")) is not int \
            or meta["format"] not in READABLE:
        raise Damaged(json_path, f"not an aae checkpoint (format {' or '.join(map(str, READABLE))} "
                                 "expected)")
    if _depth(meta) > MAX_DEPTH:
        raise Damaged(json_path, f"nested more than {MAX_DEPTH} levels deep")
    if meta["format"] >= 2 and meta.get("meta_sha256") != meta_hash(meta):
        raise Damaged(json_path, "its fields do not match their SHA-256 (meta_sha256); the file "
                                 "is damaged or was edited")
    why = fault(meta)
    if why:
        raise Damaged(json_path, why)
    return meta


def load(json_path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify one checkpoint; raises :class:`Damaged` naming the file on any fault."""
    meta = read_meta(json_path)
    tpath = json_path.parent / meta["tensors"]
    try:
        blob = tpath.read_bytes()
    except OSError as e:
        raise Damaged(tpath, f"cannot be read ({e.strerror or e})") from None
    if hashlib.sha256(blob).hexdigest() != meta["sha256"]:
        raise Damaged(tpath, f"SHA-256 does not match {json_path.name}; the file is damaged or "
                             "was replaced")
    try:
        tensors = st_load(blob)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise Damaged(tpath, f"not a valid safetensors file ({e})") from None
    return tensors, meta


def _scan(folder: Path) -> tuple[list[Path], list[Damaged]]:
    """The checkpoint JSONs of ``folder`` whose fields verify, newest (highest global step)
    first, and the faults of those of training's names that do not (a file gone meanwhile is
    neither)."""
    good, bad = [], []
    for p in folder.glob("*.json"):
        if SET_ASIDE.fullmatch(p.stem):
            continue
        try:
            good.append((read_meta(p)["global_step"], p))
        except Damaged as e:
            if p.exists() and STEM.fullmatch(p.stem):  # another program's JSON: not ours to judge
                bad.append(e)
    return [p for _, p in sorted(good, key=lambda t: (t[0], t[1].name), reverse=True)], bad


def candidates(folder: Path) -> list[Path]:
    """Checkpoint JSON files in ``folder`` whose fields verify, newest (highest global step)
    first; damaged ones and those kept aside are left out."""
    return _scan(folder)[0]


def _first_good(folder: Path) -> tuple[Path | None, Any, list[Damaged], bool]:
    """The newest checkpoint that verifies (path, (tensors, meta)), the faults of the damaged
    ones seen, and whether one went away while it was read (pruned by a training run)."""
    good, bad = _scan(folder)
    gone = False
    for p in good:
        try:
            return p, load(p), bad, gone
        except Damaged as e:
            if p.exists():
                bad.append(Damaged(p, f"{e.path.name}: {e.why}" if e.path != p else e.why))
            else:
                gone = True
    return None, None, bad, gone


def _warn(message: str) -> None:
    """One line on stderr (``aae:0: CheckpointWarning: ...``); ``--quiet`` and the warnings
    filters silence it."""
    warnings.warn_explicit(message, CheckpointWarning, "aae", 0, module="aae.checkpoint")


def latest(folder: Path, set_aside: bool = False, warn: Callable[[str], None] | None = None,
           ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The newest checkpoint that verifies. Each damaged one seen on the way (newer than it, or
    whose JSON does not verify) is named in one warning (``warn``, by default a
    :class:`CheckpointWarning`) and skipped; with ``set_aside`` (the run's writer only) it is also
    renamed by :func:`keep_aside`, so that no later checkpoint overwrites it."""
    for _ in range(3):  # a reader beside a training run: look again if a file was pruned meanwhile
        path, found, bad, gone = _first_good(folder)
        if path is not None or not gone:
            break
    if path is None:
        detail = f" ({'; '.join(str(e) for e in bad)})" if bad else ""
        raise AAEError(f"no usable checkpoint in {folder}{detail}")
    for e in bad:
        what = f"checkpoint {e.path} is damaged ({e.why}); "
        if set_aside and STEM.fullmatch(e.path.stem):  # a file training may write again
            kept = keep_aside(e.path)
            what += f"kept aside as {kept.name} (and {kept.stem}.safetensors); "
        (warn or _warn)(what + f"using {path.name}")
    return found


def keep_aside(json_path: Path) -> Path:
    """Rename the damaged pair STEM.json/STEM.safetensors to STEM.damaged.json/.safetensors
    (STEM.damaged.N.* for the first free N > 1), JSON first; returns the new JSON path."""
    folder, stem = json_path.parent, json_path.stem
    n = 1
    while True:
        tag = "damaged" if n == 1 else f"damaged.{n}"
        if not any((folder / f"{stem}.{tag}.{ext}").exists() for ext in ("json", "safetensors")):
            break
        n += 1
    target = folder / f"{stem}.{tag}.json"
    try:
        json_path.rename(target)
        if (folder / f"{stem}.safetensors").exists():
            (folder / f"{stem}.safetensors").rename(folder / f"{stem}.{tag}.safetensors")
    except OSError as e:
        raise AAEError(f"checkpoint {json_path}: damaged, and it cannot be renamed to keep it "
                       f"aside ({e.strerror or e})") from None
    return target


def prune(folder: Path, keep: set[str]) -> None:
    """Delete the checkpoint pairs of training's names (:data:`STEM`) whose stem is not in
    ``keep`` (JSON first, so none is half-valid); pairs kept aside as damaged and files of other
    names stay."""
    for p in folder.glob("*.json"):
        if p.stem not in keep and STEM.fullmatch(p.stem):
            p.unlink(missing_ok=True)
            (folder / f"{p.stem}.safetensors").unlink(missing_ok=True)
    for p in folder.glob("*.safetensors"):
        if (p.stem not in keep and STEM.fullmatch(p.stem)
                and not (folder / f"{p.stem}.json").exists()):
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
        ends = (STEM.fullmatch(p.stem) for p in self.folder.glob("epoch_*.json"))
        keep = {s.stem} | {m[0] for m in ends
                           if m and not m[2] and int(m[1]) % self.every == 0}
        prune(self.folder, keep)
        return path

    def restore(self, t: Training, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                main: bool = True) -> None:
        """Load a checkpoint into ``t`` in place. Under torchrun the checkpoint holds the partial
        epoch's sums over all ranks: rank 0 (``main``) carries them, the others start at zero.
        A checkpoint that is not a training state of this run raises AAEError naming it."""
        from .runs import check_images

        src = self.folder / str(meta.get("tensors", "?"))
        why = fault(meta) or (None if "optim" in meta else "holds weights only, no training state")
        if why:
            raise AAEError(f"checkpoint {src.with_suffix('.json')}: {why}")
        check_images(tuple(meta["image_shape"]), t.image_shape, f"dataset {t.cfg.data.dataset}")
        try:
            self._restore_tensors(t, tensors, meta, main)
        except KeyError as e:
            raise AAEError(f"checkpoint {src}: lacks the tensor {e.args[0]}") from None
        except (ValueError, RuntimeError, TypeError, IndexError) as e:
            raise AAEError(f"checkpoint {src}: does not fit this run ({e})") from None
        _set_rng_python_numpy(meta["rng"])
        t.state = RunState(meta["epoch"], meta["step_in_epoch"], meta["global_step"],
                           meta["elapsed"], meta["epoch_seconds"], meta.get("extra", {}))

    def _restore_tensors(self, t: Training, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                         main: bool) -> None:
        from .runs import load_weights

        load_weights(t.model, tensors, str(self.folder / meta["tensors"]))
        for ph, opt in t.opts.items():
            if ph not in meta["optim"]:
                raise AAEError(f"checkpoint {self.folder / meta['tensors']}: no optimizer state "
                               f"of the {ph} phase")
            try:
                restore_optimizer(opt, f"optim.{ph}", tensors, meta["optim"][ph])
            except AAEError as e:
                raise AAEError(f"checkpoint {self.folder / meta['tensors']}: {e}") from None
        t.streams.load(tensors)
        t.sample_noise = tensors["sample_noise"]
        if main:
            t.sums.load(tensors)
        if t.labels is not None:
            t.labels = tensors["labels.train"].to(t.labels.device)
