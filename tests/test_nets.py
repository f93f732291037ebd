"""Networks as parts: the convolutional family, a user's own modules, colour and image sizes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aae.config import resolve
from aae.data import ImageData, colored_mnist, conform
from aae.errors import AAEError
from aae.runs import build_model, load_run
from aae.training import Trainer

from conftest import make_images, tiny_config, toy_data

TESTS = Path(__file__).resolve().parent


def _conv_cfg(**over):
    d = tiny_config(epochs=4).to_dict()
    d["model"].update(arch="conv", conv_widths=[8, 16], **over)
    return resolve(d)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64), (1, 7, 9)])
def test_conv_family_maps_images_to_codes_and_back(shape):
    cfg = resolve(None, None, ["model.arch=conv", "model.conv_widths=[8, 16]"])
    torch.manual_seed(0)
    m = build_model(cfg, shape)
    x = torch.rand(5, *shape)
    codes = m.encode(x)
    assert codes["z"].shape == (5, 8) and m.decode(codes).shape == (5, *shape)
    assert any(isinstance(mod, torch.nn.Conv2d) for mod in m.encoder.modules())


def test_conv_hidden_layers_sit_between_the_features_and_the_code():
    cfg = resolve(None, None, ["model.arch=conv", "model.conv_widths=[8, 16]",
                               "model.conv_hidden=[64, 32]"])
    m = build_model(cfg, (1, 28, 28))
    enc = [mod.out_features for mod in m.encoder.head if isinstance(mod, torch.nn.Linear)]
    dec = [mod.out_features for mod in m.decoder.fc if isinstance(mod, torch.nn.Linear)]
    assert enc == [64, 32, 8] and dec == [32, 64, 16 * 7 * 7]  # mirrored
    x = torch.rand(3, 1, 28, 28)
    assert m.decode(m.encode(x)).shape == x.shape
    plain = build_model(resolve(None, None, ["model.arch=conv", "model.conv_widths=[8, 16]"]),
                        (1, 28, 28))
    assert isinstance(plain.encoder.head, torch.nn.Linear)  # [] keeps one linear layer each way


def test_conv_refuses_images_too_small_for_its_stages():
    cfg = resolve(None, None, ["model.arch=conv", "model.conv_widths=[8, 8, 8, 8]"])
    with pytest.raises(AAEError, match="model.conv_widths: 4 stride-2 stages"):
        build_model(cfg, (1, 8, 8))


@pytest.mark.slow
def test_conv_run_learns_saves_and_loads_bit_for_bit(tmp_path):
    t = Trainer(_conv_cfg(), tmp_path / "run", data=toy_data(), quiet=True)
    t.fit()
    lines = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["loss_recon"] < 0.7 * lines[0]["loss_recon"]
    _, model, _ = load_run(tmp_path / "run")
    for k, v in t.model.state_dict().items():
        assert torch.equal(v.cpu(), model.state_dict()[k]), k


def test_colour_run_keeps_its_colour(tmp_path):
    x, y = make_images(120, side=16)
    rgb = np.concatenate([x, 0.5 * x, 1 - x], axis=1)  # three different channels
    t = torch.from_numpy
    data = ImageData("rgb", t(rgb[:96]), t(y[:96]).long(), t(rgb[96:]), t(y[96:]).long())
    Trainer(_conv_cfg(), tmp_path / "run", data=data, quiet=True).fit()
    from PIL import Image

    for name in ("samples/epoch_0004.png", "samples/progress.png"):
        with Image.open(tmp_path / "run" / name) as im:
            assert im.mode in ("RGB", "RGBA"), name
            a = np.asarray(im.convert("RGB")).astype(int)
        assert np.abs(a[..., 0] - a[..., 2]).max() > 50, name  # not grey


def _cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.run([sys.executable, "-m", "aae", *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=cwd)


@pytest.mark.slow
def test_user_networks_train_save_load_in_a_fresh_process_and_sample(tmp_path):
    x, y = make_images(200)
    np.savez(tmp_path / "toy.npz", x=x, y=y)
    run = tmp_path / "run"
    r = _cli("train", "--dataset", str(tmp_path / "toy.npz"), "--epochs", "2", "--batch-size", "16",
             "--out", str(run), "--quiet", "--set", "model.encoder=custom_nets:encoder",
             "--set", "model.decoder=custom_nets:decoder",
             "--set", "model.discriminator=custom_nets:discriminator",
             "--set", "train.tsne_points=0")
    assert r.returncode == 0, r.stderr
    assert 'encoder = "custom_nets:encoder"' in (run / "config.toml").read_text()
    r = _cli("sample", str(run), "--n", "16", "--out", str(tmp_path / "s.png"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "s.png").stat().st_size > 0
    # the weights hold the user's layers, by the user's names
    sys.path.insert(0, str(TESTS))
    try:
        _, model, _ = load_run(run)
    finally:
        sys.path.remove(str(TESTS))
    assert type(model.encoder).__name__ == "TinyConvEncoder"


@pytest.mark.slow
@pytest.mark.parametrize("value,needle", [
    ("nowhere.module:encoder", "cannot import 'nowhere.module:encoder'"),
    ("custom_nets:missing", "cannot import 'custom_nets:missing'"),
    ("custom_nets:wrong_width", "the network returned (2, 9)"),
    ("custom_nets:not_a_module", "returned str, expected a torch.nn.Module"),
    ("no_colon", "package.module:factory"),
])
def test_a_broken_factory_is_one_line_and_writes_nothing(tmp_path, value, needle):
    out = tmp_path / "run"
    r = _cli("train", "--dataset", "digits", "--epochs", "1", "--out", str(out), "--quiet",
             "--set", f"model.encoder={value}")
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr
    assert "model.encoder" in r.stderr and not out.exists()


def test_module_instances_from_python():
    sys.path.insert(0, str(TESTS))
    try:
        import custom_nets
    finally:
        sys.path.remove(str(TESTS))
    cfg = tiny_config()
    enc = custom_nets.encoder((1, 8, 8), 2)
    m = build_model(cfg, (1, 8, 8), parts={"encoder": enc})
    assert m.encoder is enc and m.encode(torch.rand(3, 1, 8, 8))["z"].shape == (3, 2)


def test_folder_of_mixed_sizes_needs_and_takes_image_size(tmp_path):
    from PIL import Image

    from aae.data import from_config

    folder = tmp_path / "imgs"
    folder.mkdir()
    g = np.random.default_rng(0)
    for i in range(12):
        w, h = (64, 64) if i % 2 else (100, 80)
        Image.fromarray(g.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    cfg = resolve(None, None, [f"data.dataset={folder}"])
    with pytest.raises(AAEError, match="data.image_size"):
        from_config(cfg.data)
    cfg = resolve(None, None, [f"data.dataset={folder}", "data.image_size=[64, 64]",
                               "data.test_fraction=0.25"])
    d = from_config(cfg.data)
    assert d.train_x.shape == (9, 3, 64, 64) and d.test_x.shape == (3, 3, 64, 64)


def test_conform_resizes_and_converts_channels():
    x = torch.rand(4, 3, 20, 30)
    data = conform(ImageData("x", x.clone(), None, x[:2].clone(), None), (10, 15), 1)
    assert data.train_x.shape == (4, 1, 10, 15) and data.test_x.shape == (2, 1, 10, 15)
    assert 0 <= float(data.train_x.min()) and float(data.train_x.max()) <= 1
    grey = conform(ImageData("g", torch.rand(2, 1, 8, 8), None, torch.rand(1, 1, 8, 8), None),
                   None, 3)
    assert grey.train_x.shape == (2, 3, 8, 8) and torch.equal(grey.train_x[:, 0], grey.train_x[:, 2])


def test_colored_mnist_is_deterministic_per_image_and_keeps_the_digit():
    x, y = make_images(10, side=28)
    t = torch.from_numpy
    a = colored_mnist(ImageData("m", t(x), t(y), t(x[:4]), t(y[:4])))
    b = colored_mnist(ImageData("m", t(x[:6]), t(y[:6]), t(x[:4]), t(y[:4])))
    assert a.train_x.shape == (10, 3, 32, 32) and a.test_x.shape == (4, 3, 32, 32)
    assert torch.equal(a.train_x[:6], b.train_x)  # image i's colours depend on i alone
    assert not torch.equal(a.train_x[0], a.test_x[0])  # train and test draw their own colours
    # the digit stays visible: stroke and background differ in luminance by at least 0.3 times
    # the stroke's own contrast, in every image
    xp = torch.from_numpy(np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2))))
    luma = (a.train_x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)
    for img, m, xi in zip(luma, xp[:, 0] > 0.5, xp[:, 0]):
        contrast = float(xi[m].mean() - xi[~m].mean())
        assert abs(float(img[m].mean() - img[~m].mean())) >= 0.3 * contrast - 1e-4


@pytest.mark.slow
def test_a_64x64_colour_conv_checkpoint_is_small(tmp_path):
    """The conv family at its default widths on 64x64x3 images: every checkpoint (weights and the
    optimizers' moments) under 50 MB, where the paper's MLP over 12 288 pixels would need 418 MB."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(24, 3, 64, 64, generator=g)
    data = ImageData("rgb64", x[:20], None, x[20:], None)
    cfg = resolve(None, None, ["model.arch=conv", "train.epochs=1", "train.batch_size=10",
                               "train.tsne_points=0", "train.device=cpu", "train.sample_epochs=[]"])
    Trainer(cfg, tmp_path / "run", data=data, quiet=True).fit()
    sizes = [p.stat().st_size for p in (tmp_path / "run" / "checkpoints").glob("*.safetensors")]
    assert sizes and max(sizes) < 50e6, sizes


def test_a_model_too_large_for_memory_is_refused_before_allocation():
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cfg = resolve(None, None, ["model.encoder_hidden=[1048576, 1048576]"])  # 10^12 weights
    with pytest.raises(AAEError, match=r"GiB to train with Adam, more than this machine's"):
        build_model(cfg, (1, 28, 28))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing built
