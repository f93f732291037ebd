"""The bit-for-bit record of what training computes: every preset and variant, 3 steps each.

Run as a script, it trains each case on a fixed toy slice with a fixed seed and prints one JSON
object: case name -> {tensor name -> SHA-256 of its bytes}, over every weight (``model.*``) and
optimizer tensor (``optim.*``) of the case's newest checkpoint. ``tests/test_golden.py`` runs it in a
subprocess with the CPU kernels held to one thread and to AVX2 (MKL_CBWR, ATEN_CPU_CAPABILITY,
ONEDNN_MAX_CPU_ISA), so that the bits do not depend on which x86-64 host runs it, and compares the
result with ``tests/fixtures/golden.json``.

    python tests/golden_cases.py --record   # rewrite the fixture (only when behaviour may change)

It drives training through ``Trainer(cfg, out, data=..., quiet=True).fit()`` and reads the
checkpoint files, the two interfaces that stay put while the code behind them changes.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
GOLDEN = FIXTURES / "golden.json"
BOUNDARY_RECORD = FIXTURES / "golden_boundary.json"
OLD_RUN = FIXTURES / "old_run"  # a run written by the code before the redesign, stopped mid-epoch

# every case shrinks the networks and the data (3 steps of 16 images, 8x8) and skips the plots;
# what a case computes per step is the preset's or variant's own
SLICE = {
    "model": {"encoder_hidden": [24], "decoder_hidden": [24], "disc_hidden": [12]},
    "train": {"epochs": 1, "batch_size": 16, "seed": 7, "device": "cpu", "tsne_points": 0,
              "sample_epochs": [], "threads": 1, "cuda_graph": False},
}
N_TRAIN, N_VAL, N_TEST = 48, 16, 16

# variants beyond the presets, each over the default (unsupervised) config
VARIANTS: dict[str, dict] = {
    "posterior-gaussian": {"model": {"posterior": "gaussian"}},
    "posterior-universal": {"model": {"posterior": "universal", "noise_dim": 3, "eval_draws": 2}},
    "joint": {"train": {"schedule": "joint", "adv_weight": 0.05}},
    "joint-semi": {"model": {"class_input": "y", "classes": 3, "code_dim": 3},
                   "data": {"labelled": 12, "validation": N_VAL},
                   "train": {"schedule": "joint"}},
    **{f"groups-{agg}": {"model": {"disc_groups": 4, "disc_aggregate": agg}}
       for agg in ("mean", "softmax", "max", "median", "trimmed", "dropout")},
    "groups-shard": {"model": {"disc_groups": 4, "group_split": "shard"}},
    "groups-full-input": {"model": {"disc_groups": 4, "disc_input": "full"}},
    "groups-shared": {"model": {"disc_groups": 4, "disc_shared": True, "disc_aggregate": "median"}},
    "groups-each": {"model": {"disc_groups": 3, "disc_budget": "each"}},
    "groups-joint": {"model": {"disc_groups": 4}, "train": {"schedule": "joint"}},
    "reject": {"model": {"reject_quantile": 0.25}},
    "reject-joint": {"model": {"reject_quantile": 0.25}, "train": {"schedule": "joint"}},
    "reject-groups": {"model": {"reject_quantile": 0.25, "disc_groups": 2}},
    "label-conditioning": {"model": {"label_conditioning": True, "code_dim": 2},
                           "prior": {"name": "mixture", "components": 3}, "data": {"labelled": 12}},
    "input-noise": {"train": {"input_noise": 0.3}},
    "bce-init": {"train": {"recon_loss": "bce"}, "model": {"init_std": 0.01}},
    "linear-sgd": {"model": {"output": "linear"}, "optim": {"disc": {"name": "sgd"}}},
    "uniform-prior": {"prior": {"name": "uniform"}},
    "supervised-joint": {"model": {"class_input": "label", "classes": 3},
                         "train": {"schedule": "joint"}},
    "heads-warp": {"model": {"class_input": "heads", "classes": 4, "code_dim": 2,
                             "y_consistency": 1.0, "y_balance": 1.0},
                   "data": {"labelled": 0, "validation": N_VAL}},
}


# cases over two epochs (6 steps), with samples, 2-D latent plots and in-loop evaluation at the
# epoch boundary: what runs between epochs must leave the random streams as it found them
BOUNDARY: dict[str, dict] = {
    "semi-universal": {"model": {"class_input": "y", "classes": 3, "code_dim": 3,
                                 "posterior": "universal", "noise_dim": 2, "eval_draws": 2},
                       "data": {"labelled": 12, "validation": N_VAL},
                       "train": {"input_noise": 0.3}},
    "cluster-universal": {"model": {"class_input": "y", "classes": 4, "code_dim": 2,
                                    "posterior": "universal", "noise_dim": 2, "y_balance": 1.0},
                          "data": {"labelled": 0, "validation": N_VAL}},
    "reduce-gaussian": {"model": {"class_input": "heads", "classes": 4, "code_dim": 2,
                                  "posterior": "gaussian"},
                        "data": {"labelled": 12, "validation": N_VAL}},
    "fig3-universal": {"model": {"label_conditioning": True, "code_dim": 2,
                                 "posterior": "universal", "noise_dim": 2},
                       "prior": {"name": "mixture", "components": 3}, "data": {"labelled": 12}},
    "supervised-groups": {"model": {"class_input": "label", "classes": 3, "disc_groups": 2,
                                    "disc_aggregate": "dropout"}},
}
TWO_EPOCHS = {"train": {"epochs": 2, "sample_epochs": [1, 2], "checkpoint_every": 1}}


def toy_split(validation: bool):
    """48 training, 16 validation (when asked) and 16 test images of 8x8, labels 0..2."""
    from aae.data import ImageData

    g = np.random.default_rng(123)
    n = N_TRAIN + N_VAL + N_TEST
    y = np.arange(n) % 3
    x = g.uniform(0, 0.2, size=(n, 1, 8, 8)).astype(np.float32)
    for k in range(3):
        x[y == k, :, 2 * k:2 * k + 3, :] += 0.7
    x = np.clip(x, 0, 1)
    t = torch.from_numpy
    tr, va = slice(0, N_TRAIN), slice(N_TRAIN, N_TRAIN + N_VAL)
    te = slice(N_TRAIN + N_VAL, n)
    data = ImageData("toy", t(x[tr]), t(y[tr]).long(), t(x[te]), t(y[te]).long())
    if validation:
        data.val_x, data.val_y = t(x[va]), t(y[va]).long()
    return data


def _fit_slice(d: dict) -> dict:
    """Bring a preset's data options down to the slice: held-out and labelled counts that fit."""
    from aae.config import merge

    d = merge(d, SLICE)
    data = d.setdefault("data", {})
    if data.get("validation", 0) > 0:
        data["validation"] = N_VAL
    if data.get("labelled", -1) > 0:
        data["labelled"] = 12
    data["dataset"] = "toy"
    return d


def cases() -> dict[str, dict]:
    from aae.presets import PRESETS

    out = {f"preset-{name}": _fit_slice(p.overrides) for name, p in PRESETS.items()}
    out.update({f"variant-{name}": _fit_slice(v) for name, v in VARIANTS.items()})
    return out


def tensor_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 (its first 64 bits) of every model and optimizer tensor in the newest checkpoint
    of ``folder``."""
    from safetensors.torch import load_file

    newest = max(folder.glob("*.json"), key=lambda p: json.loads(p.read_text())["global_step"])
    meta = json.loads(newest.read_text())
    tensors = load_file(str(folder / meta["tensors"]))
    return {k: hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest()[:16]
            for k, v in sorted(tensors.items()) if k.startswith(("model.", "optim."))}


def run_case(overrides: dict, out: Path) -> dict[str, str]:
    from aae.config import resolve
    from aae.training import Trainer

    cfg = resolve(overrides)
    data = toy_split(cfg.data.validation > 0)
    Trainer(cfg, out, data=data, quiet=True).fit()
    return tensor_hashes(out / "checkpoints")


def boundary_cases() -> dict[str, dict]:
    from aae.config import merge

    return {name: merge(_fit_slice(v), TWO_EPOCHS) for name, v in BOUNDARY.items()}


def run_all(names: list[str] | None = None, todo: dict | None = None) -> dict[str, dict[str, str]]:
    torch.set_num_threads(1)
    todo = todo or cases()
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, over in todo.items():
            if names and name not in names:
                continue
            result[name] = run_case(over, Path(tmp) / name)
    return result


def resume_old_run() -> dict[str, str]:
    """Resume the committed old run (stopped mid-epoch 1 of 2) to its end; the hashes of its last
    checkpoint."""
    import shutil

    from aae.config import resolve
    from aae.runs import load_config
    from aae.training import Trainer

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(OLD_RUN, run)
        cfg = resolve(load_config(run).to_dict())
        Trainer(cfg, run, data=toy_split(cfg.data.validation > 0), resume=True, quiet=True).fit()
        return {"hashes": tensor_hashes(run / "checkpoints"),
                "metrics": (run / "metrics.jsonl").read_text().count("\n")}


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--resume-old"]:
        print(json.dumps(resume_old_run()))
    elif args[:1] == ["--boundary"]:
        print(json.dumps(run_all(todo=boundary_cases())))
    elif args[:1] == ["--record-boundary"]:
        got = run_all(todo=boundary_cases())
        BOUNDARY_RECORD.write_text(json.dumps({"torch": torch.__version__, "cases": got},
                                              indent=1, sort_keys=True) + "\n")
        print(f"{len(got)} cases recorded in {BOUNDARY_RECORD}")
    elif args[:1] == ["--record"]:
        got = run_all()
        GOLDEN.write_text(json.dumps({"torch": torch.__version__, "cases": got,
                                      "old_run": resume_old_run()}, indent=1, sort_keys=True) + "\n")
        print(f"{len(got)} cases recorded in {GOLDEN}")
    else:
        print(json.dumps(run_all(args or None)))
