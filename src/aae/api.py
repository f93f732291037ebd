"""The library's face: an adversarial autoencoder as one Python object.

    import numpy as np
    from aae import AAE

    model = AAE.from_preset("unsupervised", train={"epochs": 5})
    model.fit(images)                      # uint8 or float, N x H x W, N x H x W x C or N x C x H x W
    samples = model.sample(16, seed=0)     # numpy in, numpy out; torch in, torch out
    z = model.encode(images[:100])
    again = model.reconstruct(images[:100])
    model.save("runs/mine"); model = AAE.load("runs/mine")

Everything a user passes is checked as the CLI checks it: a bad array or option is one
:class:`~aae.errors.AAEError` naming what was expected, raised before anything is written.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoint as ckpt
from . import data as data_mod
from . import hooks
from .config import Config, merge, to_toml
from .errors import AAEError
from .fileio import atomic_write_text

Array = Any  # numpy.ndarray or torch.Tensor


def _images(x: Array, where: str) -> torch.Tensor:
    """Images as float32 (N, C, H, W) in [0, 1] from a numpy array or tensor."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise AAEError(f"{where}: expected a numpy array or torch tensor of images, got "
                       f"{type(x).__name__}")
    return data_mod._as_images(x, where)


def _labels(y: Array | None, n: int, where: str) -> torch.Tensor | None:
    if y is None:
        return None
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    return data_mod._as_labels(np.asarray(y), n, where)


def _like(t: torch.Tensor, ref: Array) -> Array:
    """``t`` as numpy when the caller passed numpy (or nothing), else as a tensor."""
    return t if isinstance(ref, torch.Tensor) else t.detach().cpu().numpy()


class AAE:
    """An adversarial autoencoder: a config, and once fitted (or loaded) a trained model."""

    def __init__(self, config: Config | dict | None = None, **sections: dict):
        base = config.to_dict() if isinstance(config, Config) else (config or {})
        self.config = Config.from_dict(merge(Config().to_dict(), merge(base, sections)))
        self.config.validate()
        self.module: torch.nn.Module | None = None  # the trained aae.model.AAE
        self.run: Path | None = None  # where it was trained or loaded from

    @classmethod
    def from_preset(cls, name: str, **sections: dict) -> AAE:
        """A preset (``aae presets``), with sections overridden: ``train={"epochs": 5}``."""
        from .presets import get

        return cls(merge(get(name).overrides, sections))

    # -- training ---------------------------------------------------------------------------------
    def fit(self, data: Any = None, labels: Array | None = None, epochs: int | None = None,
            out: str | Path | None = None, quiet: bool = True) -> AAE:
        """Train. ``data``: images (numpy or torch; uint8 or float in [0, 1]; N x H x W,
        N x H x W x C or N x C x H x W) with optional ``labels``, a ``torch.utils.data.Dataset``
        of (image, label) or images, a dataset name or a path (``data.dataset``), or None for the
        config's dataset. ``out``: the run folder (a new one; without it, a temporary folder
        that is removed afterwards). Returns self."""
        from .training import Trainer

        cfg = self.config
        if epochs is not None:
            cfg = Config.from_dict(merge(cfg.to_dict(), {"train": {"epochs": epochs}})).validate()
        given = self._data(data, labels, cfg)
        if data is not None:  # the run's config says where its data came from
            name = str(data) if given is None else "<in-memory>"
            cfg = Config.from_dict(merge(cfg.to_dict(), {"data": {"dataset": name}})).validate()
        tmp = None if out is not None else Path(tempfile.mkdtemp(prefix="aae-fit-"))
        try:
            run = Path(out) if out is not None else tmp / "run"
            t = Trainer(cfg, run, data=given, quiet=quiet)
            if out is None:  # nobody will look at the temporary folder's pictures or report
                t.hooks = [h for h in t.hooks
                           if not isinstance(h, (hooks.Samples, hooks.FinalArtifacts))]
            t.fit()
            self.config, self.module = t.cfg, t.model.cpu().eval()
            self.run = run if out is not None else None
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        return self

    def _data(self, data: Any, labels: Array | None, cfg: Config):
        """In-memory data as ImageData (None for a name, a path or the config's dataset)."""
        if data is None or isinstance(data, (str, Path)):
            return None
        if isinstance(data, torch.utils.data.Dataset):
            items = [data[i] for i in range(len(data))]  # type: ignore[arg-type]
            if not items:
                raise AAEError("fit(data): the dataset is empty")
            pairs = isinstance(items[0], (tuple, list))
            xs = [torch.as_tensor(it[0] if pairs else it) for it in items]
            data = torch.stack(xs)
            if pairs and labels is None:
                labels = torch.as_tensor([int(it[1]) for it in items])
        x = _images(data, "fit(data)")
        y = _labels(labels, len(x), "fit(labels)")
        d = data_mod._split("array", x, y, "fit()", test_fraction=cfg.data.test_fraction)
        size = tuple(cfg.data.image_size) if cfg.data.image_size else None
        if size is not None or cfg.data.channels:
            d = data_mod.conform(d, size, cfg.data.channels)
        return data_mod._holdout(d, cfg.data.validation, cfg.data.limit)

    # -- using a trained model --------------------------------------------------------------------
    def _model(self):
        if self.module is None:
            raise AAEError("this AAE is not trained: call fit() or AAE.load(RUN) first")
        return self.module

    def encode(self, x: Array, heads: bool = False) -> Array | dict[str, Array]:
        """The codes z of images ``x`` (evaluation mode); ``heads=True``: every head by name
        (z, and y / y_logits where the model has a y head)."""
        m = self._model()
        codes = m.encode_all(self._check(_images(x, "encode(x)"), "encode(x)"))
        return {k: _like(v, x) for k, v in codes.items()} if heads else _like(codes["z"], x)

    def decode(self, z: Array, classes: Array | None = None) -> Array:
        """Images (N, C, H, W) in [0, 1] from codes ``z`` (N, code_dim); ``classes`` for a
        decoder that takes one (drawn at random where omitted)."""
        m = self._model()
        zt = torch.as_tensor(np.asarray(z) if not isinstance(z, torch.Tensor) else z,
                             dtype=torch.float32)
        if zt.dim() != 2 or zt.shape[1] != m.cfg.code_dim:
            raise AAEError(f"decode(z): expected codes shaped (N, {m.cfg.code_dim}), got "
                           f"{tuple(zt.shape)}")
        cls = None if classes is None else torch.as_tensor(np.asarray(classes)).long()
        with torch.no_grad():
            return _like(m.decode(m.prior_codes(zt, classes=cls)), z)

    def sample(self, n: int, classes: Array | None = None, seed: int | None = None) -> np.ndarray:
        """``n`` images decoded from prior samples (numpy, (n, C, H, W) in [0, 1])."""
        m = self._model()
        if not isinstance(n, int) or not 0 < n <= 10**6:
            raise AAEError(f"sample(n): expected an integer from 1 to 10^6, got {n!r}")
        if seed is not None and not (isinstance(seed, int) and 0 <= seed < 2**63):
            raise AAEError(f"sample(seed): expected an integer from 0 to 2^63 - 1, got {seed!r}")
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        z = m.prior.sample(n, generator=g)
        cls = None if classes is None else torch.as_tensor(np.asarray(classes)).long()
        with torch.no_grad():
            return m.decode(m.prior_codes(z, g, cls)).numpy()

    def reconstruct(self, x: Array, classes: Array | None = None) -> Array:
        """Images through the encoder and the decoder."""
        m = self._model()
        xt = self._check(_images(x, "reconstruct(x)"), "reconstruct(x)")
        cls = None if classes is None else torch.as_tensor(np.asarray(classes)).long()
        codes = m.encode_all(xt)
        with torch.no_grad():
            return _like(m.decode(m.with_classes(codes, cls)), x)

    def predict(self, x: Array) -> Array:
        """The most likely class (or cluster) under q(y|x), for models with a y head."""
        m = self._model()
        if not m.caps.y_head:
            raise AAEError("predict(): this model has no class head (model.class_input is not "
                           "y or heads)")
        return _like(m.predict(self._check(_images(x, "predict(x)"), "predict(x)")), x)

    def export(self, path: str | Path, part: str = "decoder", fmt: str | None = None,
               force: bool = False) -> Path:
        """Write the encoder or decoder as a standalone file: ONNX (``.onnx``, needs
        ``pip install 'aae[export]'``) or a ``torch.export`` program (``.pt2``); ``fmt`` defaults
        to the file's suffix. An existing file is kept unless ``force``. See :mod:`aae.export`
        for the graphs' inputs and outputs."""
        from .export import export

        path = Path(path)
        return export(self._model(), part, fmt or path.suffix.lstrip(".") or "onnx", path, force)

    def _check(self, x: torch.Tensor, where: str) -> torch.Tensor:
        from .runs import check_images

        check_images(self._model().image_shape, tuple(x.shape[1:]), where)
        return x

    # -- files ------------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write the model in the run format (config.toml and a verified safetensors checkpoint)
        into a new or empty folder; loads back with :meth:`load` and every ``aae`` command."""
        m = self._model()
        folder = Path(folder)
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise AAEError(f"save({folder}): expected a new or empty folder")
        (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "config.toml", to_toml(self.config))
        tensors = {f"model.{k}": v for k, v in m.state_dict().items()}
        meta = {"epoch": self.config.train.epochs, "step_in_epoch": 0, "global_step": 0,
                "image_shape": list(m.image_shape), "config": self.config.to_dict()}
        ckpt.save(folder / "checkpoints", "saved", tensors, meta)
        return folder

    @classmethod
    def load(cls, run: str | Path) -> AAE:
        """A trained model from a run folder (``aae train``'s or :meth:`save`'s)."""
        from .runs import load_run

        cfg, model, _ = load_run(run)
        obj = cls(cfg)
        obj.module, obj.run = model, Path(run)
        return obj

    def __repr__(self) -> str:
        state = "trained" if self.module is not None else "untrained"
        return f"AAE({self.config.model.arch}, code_dim={self.config.model.code_dim}, {state})"
