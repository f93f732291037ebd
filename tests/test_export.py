"""aae export: the encoder and decoder as ONNX (checked against PyTorch with onnxruntime) and as
torch.export programs; existing files are kept; what cannot be exported is one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aae import AAE
from aae.cli import main

from conftest import make_images

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

SMALL = {"model": {"encoder_hidden": [32], "decoder_hidden": [32], "disc_hidden": [16],
                   "code_dim": 4},
         "train": {"epochs": 1, "batch_size": 16, "tsne_points": 0, "device": "cpu"}}


def fit(tmp_path, side: int = 8, **model) -> AAE:
    x, y = make_images(160, side=side)
    cfg = {**SMALL, "model": {**SMALL["model"], **model}}
    return AAE(**cfg).fit(x, labels=y, out=tmp_path / "run")


def onnx_run(path, feeds: dict) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_onnx_decoder_matches_pytorch(tmp_path, arch):
    side = 28 if arch == "conv" else 8
    extra = {"arch": "conv", "conv_widths": [8, 16]} if arch == "conv" else {}
    model = fit(tmp_path, side, **extra)
    assert main(["export", str(model.run)]) == 0
    path = model.run / "decoder.onnx"
    z = np.random.default_rng(0).standard_normal((100, 4)).astype(np.float32)
    (images,) = onnx_run(path, {"z": z})
    assert images.shape == (100, 1, side, side)
    assert np.abs(images - model.decode(z)).max() < 1e-5
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["image_shape"] == f"[1, {side}, {side}]" and meta["code_dim"] == "4"


def test_onnx_encoder_with_a_y_head_and_class_conditional_decoder(tmp_path):
    model = fit(tmp_path, class_input="y", classes=3)
    x, _ = make_images(100, seed=5)
    enc = model.export(tmp_path / "enc.onnx", part="encoder")
    z, y = onnx_run(enc, {"images": x})
    heads = model.encode(x, heads=True)
    assert np.abs(z - heads["z"]).max() < 1e-5 and np.abs(y - heads["y"]).max() < 1e-5
    dec = model.export(tmp_path / "dec.onnx")
    classes = np.arange(100) % 3
    (images,) = onnx_run(dec, {"z": z, "classes": classes.astype(np.int64)})
    assert np.abs(images - model.decode(z, classes=classes)).max() < 1e-5
    # the class input matters: another class gives other images
    (other,) = onnx_run(dec, {"z": z, "classes": ((classes + 1) % 3).astype(np.int64)})
    assert np.abs(images - other).max() > 1e-3


def test_pt2_program_runs_without_the_library(tmp_path):
    model = fit(tmp_path)
    assert main(["export", str(model.run), "--format", "pt2", "--part", "encoder"]) == 0
    program = torch.export.load(str(model.run / "encoder.pt2"))
    x, _ = make_images(30, seed=2)  # another batch size than the export's example
    (z,) = program.module()(torch.from_numpy(x))
    assert torch.allclose(z, torch.from_numpy(model.encode(x)), atol=1e-6)


def test_existing_file_is_kept_and_bad_requests_are_one_line(tmp_path, capsys):
    model = fit(tmp_path)
    out = tmp_path / "mine.onnx"
    out.write_bytes(b"the user's own file")
    assert main(["export", str(model.run), "--out", str(out)]) == 2
    assert out.read_bytes() == b"the user's own file"
    assert "already exists" in capsys.readouterr().err
    assert main(["export", str(model.run), "--out", str(out), "--force"]) == 0
    assert onnx_run(out, {"z": np.zeros((3, 4), np.float32)})[0].shape == (3, 1, 8, 8)
    assert main(["export", str(model.run), "--out", str(tmp_path / "nowhere" / "d.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*.tmp*"))  # nothing half-written


def test_universal_encoder_is_refused(tmp_path, capsys):
    model = fit(tmp_path, posterior="universal")
    assert main(["export", str(model.run), "--part", "encoder"]) == 2
    err = capsys.readouterr().err
    assert "universal posterior" in err and len(err.strip().splitlines()) == 1
    assert not (model.run / "encoder.onnx").exists()
    assert main(["export", str(model.run)]) == 0  # its decoder exports
