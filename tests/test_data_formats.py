"""CIFAR-10 and CelebA on tiny files of their real formats, and odd or hostile inputs to every
reader in aae.data: each gives data of the right shape and scale or a one-line AAEError."""

import gzip
import hashlib
import io
import os
import resource
import struct
import tarfile
import zipfile
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from aae import data
from aae.config import Config
from aae.errors import AAEError

from conftest import http_folder, idx_bytes, write_idx_set


def one_line_error(fn, *args, match: str, **kw) -> str:
    """The message of the AAEError ``fn`` raises: one line, containing ``match``."""
    with pytest.raises(AAEError) as e:
        fn(*args, **kw)
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg
    assert match in msg, msg
    return msg


# ---------------------------------------------------------------------------------------------
# CIFAR-10, binary version


def cifar_batch(n: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """``n`` records: a label byte, then the red, green and blue 32x32 planes."""
    g = np.random.default_rng(seed)
    x = g.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    y = g.integers(0, 10, n, dtype=np.uint8)
    blob = b"".join(bytes([y[i]]) + x[i].tobytes() for i in range(n))
    return blob, x, y


def write_cifar(folder, n=3, n_test=4):
    """A cifar-10-batches-bin folder in ``folder``; returns the train and test arrays."""
    d = folder / data.CIFAR_DIR
    d.mkdir(parents=True)
    train = [cifar_batch(n, i) for i in range(5)]
    for name, (blob, _, _) in zip(data.CIFAR_TRAIN, train):
        (d / name).write_bytes(blob)
    test = cifar_batch(n_test, 9)
    (d / data.CIFAR_TEST).write_bytes(test[0])
    return (np.concatenate([x for _, x, _ in train]), np.concatenate([y for _, _, y in train]),
            test[1], test[2])


def tar_folder(src, archive):
    """``src``'s cifar-10-batches-bin folder as the published ``.tar.gz``, at ``archive``."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / data.CIFAR_DIR, arcname=data.CIFAR_DIR)
    return archive


def test_cifar10_folder_and_archive(tmp_path, monkeypatch):
    x, y, xt, yt = write_cifar(tmp_path / "cifar10")
    d = data.load("cifar10", tmp_path)
    assert d.train_x.shape == (15, 3, 32, 32) and d.test_x.shape == (4, 3, 32, 32)
    assert d.train_x.dtype == torch.float32 and d.train_y.dtype == torch.int64
    assert torch.equal(d.train_x, torch.from_numpy(x).float() / 255)  # R, G, B planes in order
    assert d.train_y.tolist() == y.tolist() and d.test_y.tolist() == yt.tolist()
    assert torch.equal(d.test_x * 255, torch.from_numpy(xt).float())
    assert d.class_names == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                             "horse", "ship", "truck"]
    # the published .tar.gz, found through AAE_DATA_DIR/cifar10/, gives the same tensors
    tar_folder(tmp_path / "cifar10", tmp_path / "env" / "cifar10" / data.CIFAR_ARCHIVE)
    monkeypatch.setenv("AAE_DATA_DIR", str(tmp_path / "env"))
    a = data.load("cifar10")
    assert a.source.endswith(data.CIFAR_ARCHIVE)
    assert torch.equal(a.train_x, d.train_x) and torch.equal(a.test_y, d.test_y)
    # and --data-dir may name the batches folder itself
    assert torch.equal(data.load("cifar10", tmp_path / "cifar10" / data.CIFAR_DIR).test_x, d.test_x)


def test_cifar10_published_checksum():
    assert data.MD5["cifar10"] == {"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"}
    assert data.MIRRORS["cifar10"] == ["https://www.cs.toronto.edu/~kriz/"]


@pytest.mark.parametrize("damage, match", [
    (lambda b: b[:-5], "not a whole number of 3073-byte"),  # a truncated record
    (lambda b: b"", "not a whole number of 3073-byte"),
    (lambda b: b[:3073] + bytes([12]) + b[3074:], "record 1 has label 12; expected 0..9"),
])
def test_cifar10_bad_batch(tmp_path, damage, match):
    write_cifar(tmp_path)
    f = tmp_path / data.CIFAR_DIR / "data_batch_3.bin"
    f.write_bytes(damage(f.read_bytes()))
    msg = one_line_error(data.load, "cifar10", tmp_path, match=match)
    assert str(f) in msg
    tar_folder(tmp_path, tmp_path / "t" / data.CIFAR_ARCHIVE)
    msg = one_line_error(data.load, "cifar10", tmp_path / "t", match=match)
    assert "cifar-10-binary.tar.gz:cifar-10-batches-bin/data_batch_3.bin" in msg


def test_cifar10_bad_archive(tmp_path):
    (tmp_path / data.CIFAR_ARCHIVE).write_bytes(gzip.compress(b"not a tar file" * 100))
    one_line_error(data.load, "cifar10", tmp_path, match="not a readable tar archive")
    with tarfile.open(tmp_path / data.CIFAR_ARCHIVE, "w:gz") as tar:  # the python version's names
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        tar.addfile(info, io.BytesIO())
    one_line_error(data.load, "cifar10", tmp_path, match="no member cifar-10-batches-bin/data_batch_1.bin")


def test_cifar10_not_found_lists_places(tmp_path, monkeypatch):
    monkeypatch.delenv("AAE_DATA_DIR", raising=False)
    msg = one_line_error(data.load, "cifar10", tmp_path / "none", match="not found in")
    assert str(tmp_path / "none" / "cifar10") in msg and str(data.cache_dir() / "cifar10") in msg
    assert "AAE_OFFLINE" in msg and "cifar-10-binary.tar.gz" in msg


@pytest.fixture
def serve(tmp_path):
    """An HTTP server on a folder; yields (folder, url)."""
    served = tmp_path / "served"
    served.mkdir()
    with http_folder(served) as url:
        yield served, url


@pytest.mark.parametrize("good_sum", [True, False])
def test_cifar10_download_is_checksummed(tmp_path, monkeypatch, serve, good_sum):
    served, url = serve
    write_cifar(tmp_path / "src")
    archive = tar_folder(tmp_path / "src", served / data.CIFAR_ARCHIVE)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest() if good_sum else "0" * 32
    monkeypatch.setitem(data.MD5, "cifar10", {data.CIFAR_ARCHIVE: md5})
    monkeypatch.setenv("AAE_MIRRORS", url)
    monkeypatch.delenv("AAE_OFFLINE")
    monkeypatch.delenv("AAE_DATA_DIR", raising=False)
    cached = data.cache_dir() / "cifar10"
    if good_sum:
        assert len(data.load("cifar10", tmp_path / "none").train_x) == 15
        assert [p.name for p in cached.iterdir()] == [data.CIFAR_ARCHIVE]
    else:
        one_line_error(data.load, "cifar10", tmp_path / "none", match="does not match")
        assert not any(cached.glob("*"))


# ---------------------------------------------------------------------------------------------
# CelebA, aligned and cropped


def face(i: int) -> bytes:
    """A 178x218 JPEG: red 20-row bands at top and bottom, the central 178x178 square blue with
    green = 20 i (which image it is)."""
    a = np.zeros((218, 178, 3), np.uint8)
    a[:20, :, 0] = a[198:, :, 0] = 255
    a[20:198, :, 2], a[20:198, :, 1] = 255, 20 * i
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=95)
    return buf.getvalue()


PARTITION = "000001.jpg 0\n000002.jpg 0\n000003.jpg 0\n000004.jpg 1\n000005.jpg 2\n000006.jpg 2\n"


def write_celeba(folder, n=6, as_zip=False, partition=PARTITION):
    folder.mkdir(parents=True, exist_ok=True)
    if as_zip:
        with zipfile.ZipFile(folder / "img_align_celeba.zip", "w") as z:
            for i in range(1, n + 1):
                z.writestr(f"img_align_celeba/{i:06d}.jpg", face(i))
    else:
        (folder / "img_align_celeba").mkdir()
        for i in range(1, n + 1):
            (folder / "img_align_celeba" / f"{i:06d}.jpg").write_bytes(face(i))
    if partition is not None:
        (folder / "list_eval_partition.txt").write_text(partition)
    return folder


def which(x: torch.Tensor) -> list[int]:
    """The image numbers ``face`` drew, read back from the green channel's middle."""
    h, w = x.shape[2:]
    middle = x[:, 1, h // 4:h - h // 4, w // 4:w - w // 4]
    return [round(float(v) * 255 / 20) for v in middle.mean((1, 2))]


def test_celeba_folder_with_partition(tmp_path):
    write_celeba(tmp_path / "celeba")
    d = data.load("celeba", tmp_path)
    assert d.train_x.shape == (4, 3, 64, 64) and d.test_x.shape == (2, 3, 64, 64)
    assert d.train_y is None and d.test_y is None and d.name == "celeba"
    assert d.train_x.dtype == torch.float32 and 0 <= d.train_x.min() and d.train_x.max() <= 1
    assert which(d.train_x) == [1, 2, 3, 4] and which(d.test_x) == [5, 6]  # partition 0, 1 | 2
    # the central square, 20 rows from the top, was kept: no red band inside the image
    assert float(d.train_x[:, 0, 2:62].max()) < 0.15 and float(d.train_x[:, 2].min()) > 0.8


def test_celeba_zip_gives_the_folders_images(tmp_path, monkeypatch):
    folder = data.load("celeba", write_celeba(tmp_path / "a"))
    monkeypatch.setenv("AAE_DATA_DIR", str(tmp_path / "env"))
    write_celeba(tmp_path / "env" / "celeba", as_zip=True)
    d = data.load("celeba")
    assert d.source.endswith("img_align_celeba.zip")
    assert torch.allclose(d.train_x, folder.train_x) and torch.allclose(d.test_x, folder.test_x)


def test_celeba_image_size_limit_and_validation(tmp_path):
    write_celeba(tmp_path / "celeba")
    cfg = Config.from_dict({"data": {"dataset": "celeba", "data_dir": str(tmp_path),
                                     "image_size": [32, 24], "limit": 2, "validation": 1}})
    d = data.from_config(cfg.data)
    assert d.train_x.shape == (2, 3, 32, 24) and d.val_x.shape == (1, 3, 32, 24)
    assert which(d.train_x) == [1, 2] and which(d.val_x) == [4]  # the official validation image
    assert d.test_x.shape == (2, 3, 32, 24)


def test_celeba_without_partition_holds_out_a_fraction(tmp_path):
    write_celeba(tmp_path / "celeba", n=8, partition=None)
    cfg = Config.from_dict({"data": {"dataset": "celeba", "data_dir": str(tmp_path),
                                     "test_fraction": 0.25, "image_size": [16, 16]}})
    d = data.from_config(cfg.data)
    assert len(d.train_x) == 6 and len(d.test_x) == 2
    assert sorted(which(d.train_x) + which(d.test_x)) == list(range(1, 9))


def test_celeba_not_found_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("AAE_DATA_DIR", raising=False)
    msg = one_line_error(data.load, "celeba", tmp_path, match="not found in")
    assert str(tmp_path / "celeba") in msg and str(data.cache_dir() / "celeba") in msg
    assert "no automatic download" in msg and data.CELEBA_PAGE in msg
    assert "img_align_celeba.zip" in msg and "list_eval_partition.txt" in msg


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (178, 218)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("member, content, match", [
    ("000002.jpg", png_bytes(), "zip:img_align_celeba/000002.jpg: a PNG image; expected JPEG"),
    ("000002.jpg", b"\xff\xd8\xff\xe0 not a JPEG", "zip:img_align_celeba/000002.jpg: not a readable"),
    ("000002.jpg", face(2)[:400], "zip:img_align_celeba/000002.jpg: not a readable"),  # truncated
    ("000004.jpg", face(4), "list_eval_partition.txt: no line for image 000004.jpg"),
])
def test_celeba_bad_member(tmp_path, member, content, match):
    with zipfile.ZipFile(tmp_path / "img_align_celeba.zip", "w") as z:
        z.writestr("img_align_celeba/000001.jpg", face(1))
        z.writestr("img_align_celeba/000003.jpg", face(3))
        z.writestr("img_align_celeba/notes.txt", "not an image, not read")
        z.writestr(f"img_align_celeba/{member}", content)
    (tmp_path / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 0\n000003.jpg 2\n")
    one_line_error(data.load, "celeba", tmp_path, match=match)


@pytest.mark.parametrize("partition, match", [
    ("000001.jpg 7\n", "line 1: expected an image name and a partition 0, 1 or 2"),
    ("000001.jpg\n", "line 1: expected"),
    ("\xff\xfe", "cannot be read as text"),
])
def test_celeba_bad_partition(tmp_path, partition, match):
    write_celeba(tmp_path, n=2, partition=None)
    (tmp_path / "list_eval_partition.txt").write_bytes(partition.encode("latin-1"))
    msg = one_line_error(data.load, "celeba", tmp_path, match=match)
    assert "list_eval_partition.txt" in msg


def test_celeba_kaggle_layout_and_corrupt_zip(tmp_path):
    # Kaggle's copy: img_align_celeba/img_align_celeba/*.jpg and a CSV partition with a header
    (tmp_path / "k" / "img_align_celeba" / "img_align_celeba").mkdir(parents=True)
    for i in (1, 2, 3):
        (tmp_path / "k" / "img_align_celeba" / "img_align_celeba" / f"{i:06d}.jpg").write_bytes(
            face(i))
    (tmp_path / "k" / "list_eval_partition.csv").write_text(
        "image_id,partition\n000001.jpg,0\n000002.jpg,2\n000003.jpg,0\n")
    d = data.load("celeba", tmp_path / "k")
    assert which(d.train_x) == [1, 3] and which(d.test_x) == [2]
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "img_align_celeba.zip").write_bytes(b"PK\x03\x04 broken")
    one_line_error(data.load, "celeba", tmp_path / "z", match="not a readable zip archive")


# ---------------------------------------------------------------------------------------------
# image files: bit depths, modes, bombs, odd folders


def load_folder(folder) -> torch.Tensor:
    x, _, _, _ = data.read_folder(folder)
    return x


def test_16bit_png_is_scaled_by_its_range(tmp_path):
    ramp = (np.arange(64 * 64, dtype=np.uint32) * 16).reshape(64, 64).astype(np.uint16)
    (tmp_path / "a").mkdir()
    Image.fromarray(ramp).save(tmp_path / "a" / "ramp.png")
    assert Image.open(tmp_path / "a" / "ramp.png").mode == "I;16"
    x = load_folder(tmp_path / "a")
    assert x.shape == (1, 1, 64, 64)
    assert np.allclose(x[0, 0].numpy(), ramp / 65535, atol=1e-7)
    assert float((x == 1).float().mean()) == 0  # not clipped: no pixel reaches 65535


def test_32bit_integer_tiff(tmp_path):
    (tmp_path / "a").mkdir()
    v = np.array([[0, 1000], [30000, 65535]], dtype=np.int32)
    Image.fromarray(v, mode="I").save(tmp_path / "a" / "i.tif")
    assert Image.open(tmp_path / "a" / "i.tif").mode == "I"
    assert np.allclose(load_folder(tmp_path / "a")[0, 0].numpy(), v / 65535)
    Image.fromarray(v * 2, mode="I").save(tmp_path / "a" / "i.tif")
    one_line_error(load_folder, tmp_path / "a", match="i.tif: integer pixel values span [0, 131070]")


def test_float_tiff_in_unit_range_is_kept_and_others_refused(tmp_path):
    (tmp_path / "a").mkdir()
    f = np.linspace(0, 1, 30, dtype=np.float32).reshape(5, 6)
    Image.fromarray(f).save(tmp_path / "a" / "f.tif")
    assert Image.open(tmp_path / "a" / "f.tif").mode == "F"
    assert np.array_equal(load_folder(tmp_path / "a")[0, 0].numpy(), f)
    for bad in (f * 2, np.full((5, 6), np.nan, np.float32), f - 0.5):
        Image.fromarray(bad.astype(np.float32)).save(tmp_path / "a" / "f.tif")
        msg = one_line_error(load_folder, tmp_path / "a", match="expected values in [0, 1]")
        assert str(tmp_path / "a" / "f.tif") in msg


def test_deep_images_resize_and_mix_with_8bit(tmp_path):
    (tmp_path / "a").mkdir()
    Image.fromarray(np.full((10, 10), 65535, np.uint16)).save(tmp_path / "a" / "1.png")
    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(tmp_path / "a" / "2.tif")
    Image.fromarray(np.full((7, 7), 51, np.uint8)).save(tmp_path / "a" / "3.png")
    x, _, _, _ = data.read_folder(tmp_path / "a", size=(6, 6))
    assert x.shape == (3, 1, 6, 6)
    assert np.allclose(x[:, 0].mean((1, 2)).numpy(), [1.0, 0.5, 0.2], atol=1e-6)


def image_modes(folder):
    """One image per mode that needs converting; returns what each should load as (RGB)."""
    folder.mkdir()
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = (200, 100, 50), [[0], [255], [128], [255]]
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    Image.new("LA", (4, 4), (200, 128)).save(folder / "la.png")
    Image.new("CMYK", (4, 4), (0, 255, 0, 0)).save(folder / "cmyk.jpg", quality=100)
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.save(folder / "pal.png")
    Image.new("1", (4, 4), 1).save(folder / "bw.bmp")
    alpha = rgba[..., 3:4] / 255
    return {
        "bw.bmp": np.full((4, 4, 3), 255.0),
        "cmyk.jpg": np.broadcast_to([255.0, 0, 255], (4, 4, 3)),
        "la.png": np.full((4, 4, 3), np.round(200 * 128 / 255)),
        "pal.png": np.broadcast_to([10.0, 200, 30], (4, 4, 3)),
        "rgba.png": np.round(rgba[..., :3] * alpha),  # over black
    }


def test_modes_are_converted(tmp_path):
    want = image_modes(tmp_path / "m")
    x, _, _, files = data.read_folder(tmp_path / "m")
    assert x.shape == (5, 3, 4, 4) and [f.name for f in files] == sorted(want)
    for i, f in enumerate(files):
        got = x[i].permute(1, 2, 0).numpy() * 255
        assert np.abs(got - want[f.name]).max() < (3 if f.suffix == ".jpg" else 1e-3), f.name


def test_grey_first_then_colour_loads_as_colour(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("L", (3, 3), 100).save(tmp_path / "a" / "0.png")
    Image.new("RGB", (3, 3), (250, 0, 0)).save(tmp_path / "a" / "1.png")
    Image.new("L", (3, 3), 50).save(tmp_path / "a" / "2.gif")  # a grey palette stays grey
    x = load_folder(tmp_path / "a")
    assert x.shape == (3, 3, 3, 3)
    assert np.allclose(x[:, :, 0, 0].numpy() * 255, [[100] * 3, [250, 0, 0], [50] * 3])
    (tmp_path / "b").mkdir()
    Image.new("L", (3, 3), 50).save(tmp_path / "b" / "2.gif")
    assert load_folder(tmp_path / "b").shape == (1, 1, 3, 3)


def test_exif_orientation_is_applied(tmp_path):
    (tmp_path / "a").mkdir()
    im = Image.new("RGB", (8, 4), (0, 0, 0))
    im.paste((255, 255, 255), (0, 0, 2, 4))  # white on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    im.save(tmp_path / "a" / "r.jpg", exif=exif, quality=100)
    x = load_folder(tmp_path / "a")
    assert x.shape == (1, 3, 8, 4)  # upright: 4 wide, 8 high
    assert float(x[0, :, :2].mean()) > 0.9 and float(x[0, :, 4:].mean()) < 0.1  # white on top


def bomb_png(side: int) -> bytes:
    """A valid 1-bit PNG of side x side pixels, all black, compressed to kilobytes."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    z = zlib.compressobj(9)
    row = bytes(1 + (side + 7) // 8)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [20000, 10000])  # past Pillow's error, past its warning
def test_decompression_bomb_is_refused_undecoded(tmp_path, monkeypatch, side):
    from PIL import ImageFile

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "bomb.png").write_bytes(bomb_png(side))
    assert (tmp_path / "a" / "bomb.png").stat().st_size < 100_000
    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load",
                        lambda self: decoded.append(self) or real_load(self))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    msg = one_line_error(load_folder, tmp_path / "a", match="refused without decoding it")
    assert str(tmp_path / "a" / "bomb.png") in msg and f"{side * side} pixels" in msg
    assert not decoded
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # kB


def test_odd_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    one_line_error(load_folder, tmp_path / "empty", match="no images found")
    a = tmp_path / "a"
    (a / "x.png").mkdir(parents=True)  # a folder named like an image
    (a / ".ipynb_checkpoints").mkdir()
    Image.new("L", (3, 3), 9).save(a / ".ipynb_checkpoints" / "c.png")
    (a / "._y.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS metadata, hidden
    Image.new("L", (3, 3), 255).save(a / "y.png")
    x, y, names, files = data.read_folder(a)
    assert x.shape == (1, 1, 3, 3) and y is None and names is None
    assert [f.name for f in files] == ["y.png"]
    (a / "z.png").symlink_to(a / "missing.png")
    one_line_error(load_folder, a, match="z.png: not a regular file")
    (a / "z.png").unlink()
    os.mkfifo(a / "p.png")  # opening it would block
    one_line_error(load_folder, a, match="p.png: not a regular file")
    (a / "p.png").unlink()
    (a / "t.png").write_text("text, not an image")
    one_line_error(load_folder, a, match="t.png: not a readable image")


def test_class_folders_skip_hidden_ones(tmp_path):
    for cls in ("cat", "dog", ".ipynb_checkpoints"):
        (tmp_path / cls).mkdir()
        Image.new("L", (2, 2), 1).save(tmp_path / cls / "0.png")
    _, y, names, _ = data.read_folder(tmp_path)
    assert names == ["cat", "dog"] and y.tolist() == [0, 1]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_image(tmp_path):
    Image.new("L", (2, 2)).save(tmp_path / "u.png")
    (tmp_path / "u.png").chmod(0)
    one_line_error(load_folder, tmp_path, match="u.png: not a readable image")


# ---------------------------------------------------------------------------------------------
# IDX and .npy/.npz


@pytest.mark.parametrize("dims, match", [
    ((65536, 65536, 65536, 65536), "refusing"),  # 2**64 bytes: wraps to 0 in 64-bit arithmetic
    ((4294967295,) * 4, "refusing"),
    ((0, 28, 28), "hold no data"),
    ((5, 0, 28), "hold no data"),
    ((0,), "hold no data"),
])
def test_idx_dimensions_overflow_or_zero(dims, match):
    blob = b"\x00\x00\x08" + bytes([len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    one_line_error(data.parse_idx, blob, "f.idx", match=f"f.idx: IDX dimensions {dims}")
    one_line_error(data.parse_idx, blob, "f.idx", match=match)


def test_idx_set_with_zero_images(tmp_path):
    write_idx_set(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros((0, 28, 28)))))
    one_line_error(data.load, "mnist", tmp_path, match="t10k-images-idx3-ubyte.gz: IDX dimensions")


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


GOOD_NPZ = npz_bytes(x=np.arange(4 * 8 * 8, dtype=np.uint8).reshape(4, 8, 8) * 3,
                     y=np.arange(4))


def npy_bytes(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def flip_middle(blob: bytes) -> bytes:
    b = bytearray(blob)
    for i in range(len(b) // 3, len(b) // 3 + 20):
        b[i] ^= 0xFF
    return bytes(b)


def npy_header(text: str) -> bytes:
    """A version 1.0 .npy header around ``text``, with no data after it."""
    h = text.encode() + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h


def zipped(name: str, blob: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, blob)
    return buf.getvalue()


HUGE = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }"  # 3.6 TiB


@pytest.mark.parametrize("name, blob, match", [
    ("obj.npz", npz_bytes(x=np.array([{"a": 1}] * 4, dtype=object)), "without pickle"),
    ("cut.npz", GOOD_NPZ[: len(GOOD_NPZ) // 2], "not a readable .npy/.npz file"),
    ("flip.npz", flip_middle(GOOD_NPZ), "not a readable .npy/.npz file"),
    ("cut.npy", npy_bytes(np.zeros((4, 8, 8), np.float32))[:-7], "not a readable .npy/.npz"),
    ("empty.npy", b"", "not a readable .npy/.npz file"),
    ("header.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': 'zz'}", "not a readable .npy/.npz"),
    ("zero.npy", npy_bytes(np.zeros((5, 0, 0), np.float32)), "with no size 0"),
    ("zero.npz", npz_bytes(x=np.zeros((0, 4, 4), np.uint8)), "with no size 0"),
    ("big.npz", npz_bytes(x=np.zeros((2, 3, 3), np.uint8), y=np.array([1, 2**63], np.uint64)),
     "too large"),
    ("open.npy", npy_header("{'descr': '<f4', 'shape': (5,"), "not a readable .npy/.npz file"),
    ("huge.npy", npy_header(HUGE), "MemoryError"),
    ("huge.npz", zipped("x.npy", npy_header(HUGE)),
     "MemoryError"),
])
def test_bad_array_files(tmp_path, name, blob, match):
    (tmp_path / name).write_bytes(blob)
    msg = one_line_error(data.load, str(tmp_path / name), match=match)
    assert str(tmp_path / name) in msg


def test_array_path_that_is_a_pipe(tmp_path):
    os.mkfifo(tmp_path / "p.npz")  # np.load would wait on it for ever
    one_line_error(data.load, str(tmp_path / "p.npz"), match="p.npz: not found, or not a regular")


def test_npz_test_split_of_another_size(tmp_path):
    g = np.random.default_rng(0)
    x, xt = g.random((20, 8, 8)).astype(np.float32), g.random((5, 6, 6)).astype(np.float32)
    np.savez(tmp_path / "k.npz", x_train=x, y_train=np.arange(20) % 3, x_test=xt,
             y_test=np.arange(5) % 3)
    msg = one_line_error(data.load, str(tmp_path / "k.npz"),
                         match="the test images are 1x6x6 but the training images are 1x8x8")
    assert str(tmp_path / "k.npz") in msg
    cfg = Config.from_dict({"data": {"dataset": str(tmp_path / "k.npz"), "image_size": [6, 6]}})
    d = data.from_config(cfg.data)  # resized on load: both splits fit
    assert d.train_x.shape == (20, 1, 6, 6) and torch.allclose(d.test_x, torch.from_numpy(xt)[:, None])
    np.savez(tmp_path / "k.npz", x_train=x, y_train=np.arange(20) % 3, x_test=x[:5])
    one_line_error(data.load, str(tmp_path / "k.npz"), match="labels for the training images only")


def test_npz_test_split_is_used_as_given(tmp_path):
    x = np.random.default_rng(0).random((20, 4, 4)).astype(np.float32)
    np.savez(tmp_path / "k.npz", x_train=x[:15], y_train=np.arange(15) % 3, x_test=x[15:],
             y_test=np.arange(5))
    d = data.load(str(tmp_path / "k.npz"))
    assert torch.equal(d.train_x[:, 0], torch.from_numpy(x[:15]))
    assert torch.equal(d.test_x[:, 0], torch.from_numpy(x[15:])) and d.test_y.tolist() == [0, 1, 2, 3, 4]


def test_idx_test_images_of_another_size(tmp_path):
    write_idx_set(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros((10, 20, 20)))))
    one_line_error(data.load, "mnist", tmp_path,
                   match="the test images are 1x20x20 but the training images are 1x28x28")
