"""A trained model's encoder or decoder as a standalone file: ONNX (for onnxruntime and every
runtime that reads ONNX) or a ``torch.export`` program (``.pt2``, for PyTorch without this
library).

What the exported graphs take and return (N, the batch, is dynamic):

* ``decoder``: ``z`` float32 (N, code_dim) [+ ``classes`` int64 (N,) for a decoder that takes a
  class] -> ``images`` float32 (N, C, H, W), in [0, 1] for a sigmoid output.
* ``encoder``: ``images`` float32 (N, C, H, W) in [0, 1] -> ``z`` float32 (N, code_dim)
  [+ ``y`` (N, classes), the softmax of q(y|x), for a model with a y head]. The gaussian
  posterior gives its mean, as :meth:`aae.AAE.encode` does; the universal posterior draws noise
  and is not exported.

The ONNX file carries the run's image shape, code size and this library's version as metadata.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import AAEError
from .model import AAE

PARTS = ("encoder", "decoder")
FORMATS = ("onnx", "pt2")
OPSET = 18


class DecoderGraph(nn.Module):
    """z [, classes] -> images, through the model's own decoder and output."""

    def __init__(self, model: AAE):
        super().__init__()
        self.model = model
        self.takes_classes = model.caps.class_conditional

    def forward(self, z: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        m = self.model
        return m.decode(m.with_classes({"z": z}, classes if self.takes_classes else None))


class EncoderGraph(nn.Module):
    """images -> z [, y], the model's encoder in evaluation mode."""

    def __init__(self, model: AAE):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        codes = self.model.encode(images)
        return (codes["z"], codes["y"]) if self.model.caps.y_head else (codes["z"],)


def graph(model: AAE, part: str) -> tuple[nn.Module, tuple[torch.Tensor, ...], list[str], list[str]]:
    """The module to export, example inputs (batch of 2), input names and output names."""
    model = model.eval()
    if part == "decoder":
        z = torch.zeros(2, model.cfg.code_dim)
        if model.caps.class_conditional:
            return DecoderGraph(model), (z, torch.zeros(2, dtype=torch.long)), ["z", "classes"], \
                ["images"]
        return DecoderGraph(model), (z,), ["z"], ["images"]
    if model.posterior == "universal":
        raise AAEError("export --part encoder: the universal posterior draws noise inside the "
                       "encoder; export its decoder, or train with model.posterior=deterministic "
                       "or gaussian")
    outs = ["z", "y"] if model.caps.y_head else ["z"]
    return EncoderGraph(model), (torch.rand(2, *model.image_shape),), ["images"], outs


def _dynamic(names: list[str]) -> dict[str, dict[int, torch.export.Dim]]:
    batch = torch.export.Dim("batch", min=1)
    return {n: {0: batch} for n in names}


def _program(module: nn.Module, args: tuple, names: list[str]) -> torch.export.ExportedProgram:
    # the forward's parameter names are the input names, so dynamic_shapes can be keyed by them
    return torch.export.export(module, args, dynamic_shapes=_dynamic(names), strict=False)


def _write_onnx(module: nn.Module, args: tuple, ins: list[str], outs: list[str],
                path: Path, meta: dict[str, str]) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise AAEError("export --format onnx needs onnx and onnxscript: "
                       "pip install 'aae[export]'") from None
    program = _program(module, args, ins)
    onnx_program = torch.onnx.export(program, args, input_names=ins, output_names=outs,
                                     opset_version=OPSET, dynamo=True, verbose=False)
    proto = onnx_program.model_proto
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(proto)
    _atomic(path, lambda f: onnx.save_model(proto, f))


def _write_pt2(module: nn.Module, args: tuple, ins: list[str], path: Path) -> None:
    program = _program(module, args, ins)
    _atomic(path, lambda f: torch.export.save(program, f))


@contextlib.contextmanager
def _quiet():
    """The exporters' progress lines, notices and log records, which say nothing to a user."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _atomic(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename: no half-written file."""
    # the suffix stays the format's: torch.export.save expects a name ending in .pt2
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export(model: AAE, part: str, fmt: str, path: str | Path, force: bool = False) -> Path:
    """Write ``model``'s ``part`` ("encoder" or "decoder") to ``path`` as ``fmt`` ("onnx" or
    "pt2"); an existing file is kept unless ``force``."""
    from . import __version__

    if part not in PARTS:
        raise AAEError(f"export: --part must be one of {', '.join(PARTS)}, got {part!r}")
    if fmt not in FORMATS:
        raise AAEError(f"export: --format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    path = Path(path)
    if path.exists() and (path.is_dir() or not force):
        raise AAEError(f"export: {path} already exists; choose another --out or pass --force")
    if not path.parent.is_dir():
        raise AAEError(f"export: the folder {path.parent} does not exist")
    module, args, ins, outs = graph(model.cpu(), part)
    meta = {"aae_version": __version__, "part": part, "image_shape": json.dumps(
        list(model.image_shape)), "code_dim": str(model.cfg.code_dim), "inputs": ",".join(ins),
        "outputs": ",".join(outs), "output": model.cfg.output}
    try:
        with torch.no_grad(), _quiet():
            if fmt == "onnx":
                _write_onnx(module, args, ins, outs, path, meta)
            else:
                _write_pt2(module, args, ins, path)
    except AAEError:
        raise
    except Exception as e:  # a user-defined network the exporter cannot trace, for example
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AAEError(f"export of the {part} to {fmt} failed: {first}") from None
    return path
