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
from pathlib import Path
from typing import Any

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
