"""Shared fixtures: tiny synthetic data and configs, and the real data when ../shared is beside us."""

from __future__ import annotations

import contextlib
import gzip
import http.server
import os
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from aae.config import Config
from aae.data import ImageData

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AAE_DATA_DIR") or ROOT.parent / "shared" / "data")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path_factory):
    """No test reads the user's cache or waits on the network."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("AAE_OFFLINE", "1")
    monkeypatch.delenv("AAE_MIRRORS", raising=False)
    torch.set_num_threads(min(2, os.cpu_count() or 1))


def make_images(n: int, side: int = 8, seed: int = 0, classes: int = 3):
    """Labelled toy images: class k is a bright bar at row band k, plus noise, in [0, 1]."""
    g = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = g.uniform(0, 0.2, size=(n, 1, side, side)).astype(np.float32)
    band = side // classes
    for k in range(classes):
        x[y == k, :, k * band:(k + 1) * band, :] += 0.7
    return np.clip(x, 0, 1), y


def toy_data(n_train: int = 240, n_test: int = 60, validation: int = 0) -> ImageData:
    """Toy images as an ImageData; ``validation`` more images held out as a validation split."""
    x, y = make_images(n_train + validation)
    xt, yt = make_images(n_test, seed=1)
    t = torch.from_numpy
    data = ImageData("toy", t(x[:n_train]), t(y[:n_train]).long(), t(xt), t(yt).long())
    if validation:
        data.val_x, data.val_y = t(x[n_train:]), t(y[n_train:]).long()
    return data


@pytest.fixture
def tiny_data() -> ImageData:
    return toy_data()


@pytest.fixture
def split_data() -> ImageData:
    return toy_data(240, 60, validation=60)


def train_toy_cli(tmp_path: Path, *sets: str) -> Path:
    """``aae train`` on 400 toy images saved as .npz (small networks, 2 epochs); returns the run."""
    import subprocess
    import sys

    x, y = make_images(400)
    np.savez(tmp_path / "toy.npz", x=x, y=y)
    run = tmp_path / "run"
    args = ["train", "--dataset", str(tmp_path / "toy.npz"), "--epochs", "2", "--batch-size", "16",
            "--out", str(run), "--quiet", "--set", "model.encoder_hidden=[32]",
            "--set", "model.decoder_hidden=[32]", "--set", "model.disc_hidden=[16]",
            "--set", "train.tsne_points=0", *sets]
    r = subprocess.run([sys.executable, "-m", "aae", *args], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return run


def tiny_config(**train) -> Config:
    d = {
        "data": {"dataset": "digits"},
        "model": {"code_dim": 2, "encoder_hidden": [32], "decoder_hidden": [32],
                  "disc_hidden": [16]},
        "train": {"epochs": 2, "batch_size": 16, "seed": 0, "device": "cpu", "tsne_points": 0,
                  "sample_epochs": [0, 1], **train},
    }
    return Config.from_dict(d).validate()


def weights_after_steps(cfg: Config, data: ImageData, step, steps: int = 4) -> dict:
    """The weights of the seed-0 model after ``step(model, optimizers, i, generator)`` for i in
    range(``steps``), with one prior generator (seed 1) throughout."""
    from aae.optim import build_optimizers
    from aae.runs import build_model

    torch.manual_seed(0)
    model = build_model(cfg, data.image_shape)
    opts = build_optimizers(model, cfg.optim)
    gen = torch.Generator().manual_seed(1)
    for i in range(steps):
        step(model, opts, i, gen)
    return model.state_dict()


def train_step(model, opts, x, prior_gen, labels=None, classify=None, **options):
    """One :class:`aae.step.Step` with ``options`` (:class:`aae.step.StepOptions` fields)."""
    from aae.step import Step, StepOptions

    return Step(model, opts, prior_gen, StepOptions(**options))(x, labels, classify)


@pytest.fixture
def tiny_cfg() -> Config:
    return tiny_config()


def idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr, dtype=np.uint8)
    return bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_idx_set(folder: Path, n_train: int = 20, n_test: int = 10, gz: bool = True) -> Path:
    """A valid MNIST-shaped IDX set (28x28, labels 0..9) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(0)
    parts = {
        "train-images-idx3-ubyte": g.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": g.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    for stem, arr in parts.items():
        blob = idx_bytes(arr)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(blob, mtime=0))
        else:
            (folder / stem).write_bytes(blob)
    return folder


def has_real_mnist() -> bool:
    return (SHARED_DATA / "mnist" / "train-images-idx3-ubyte.gz").is_file()


def assert_train_refuses(tmp_path: Path, args: list[str], needle: str) -> None:
    """``aae train`` on the bundled digits with ``args`` exits 2 with one line naming ``needle``
    and leaves no run directory."""
    import subprocess
    import sys

    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "aae", "train", "--dataset", "digits", "--epochs", "1",
                        "--batch-size", "16", "--out", str(out), "--quiet", *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr
    assert not out.exists()


def pytest_collection_modifyitems(items):
    """The longest tests first: with one worker per core (pytest-xdist), a minutes-long test
    started last would keep one core busy after the other has finished."""
    first = ("test_golden.py", "test_golden_boundary.py", "test_distributed.py")
    items.sort(key=lambda it: it.fspath.basename not in first)


@contextlib.contextmanager
def http_folder(folder: Path):
    """An HTTP server on ``folder`` (a mirror for download tests); yields its URL."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(folder), **kw)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/"
    finally:
        srv.shutdown()


def poison_recon_loss(monkeypatch, model, after: int = 20) -> None:
    """From the ``after``-th call on, the model's reconstruction loss is NaN."""
    real, calls = model.recon_loss, []

    def poisoned(*a, **kw):
        calls.append(1)
        out = real(*a, **kw)
        return out * float("nan") if len(calls) >= after else out

    monkeypatch.setattr(model, "recon_loss", poisoned)
