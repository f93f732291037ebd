import gzip
import hashlib

import numpy as np
import pytest
import torch

from aae import data
from aae.errors import AAEError

from conftest import SHARED_DATA, has_real_mnist, http_folder, idx_bytes, write_idx_set


def test_parse_idx_roundtrip():
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(data.parse_idx(idx_bytes(a)), a)


@pytest.mark.parametrize("blob, message", [
    (b"\x00\x00", "too short"),
    (b"\x00\x00\x0d\x03" + b"\x00" * 12, "bad IDX magic"),  # float data, not unsigned bytes
    (b"\x01\x00\x08\x01\x00\x00\x00\x02ab", "bad IDX magic"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
    (idx_bytes(np.zeros((3, 4, 4)))[:-5], "truncated"),
    (idx_bytes(np.zeros((3, 4, 4))) + b"xx", "trailing bytes"),
    (b"\x00\x00\x08\x03" + b"\xff\xff\xff\xff" * 3, "refusing"),  # dims claim ~2^96 bytes
])
def test_parse_idx_rejects(blob, message):
    with pytest.raises(AAEError, match=message):
        data.parse_idx(blob, "f.idx")


def test_read_idx_corrupt_gzip(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(idx_bytes(np.zeros((10, 4, 4))))[:-8])
    with pytest.raises(AAEError, match=str(p)):
        data.read_idx(p)


def test_load_idx_dataset_from_data_dir(tmp_path):
    write_idx_set(tmp_path / "mnist", n_train=30, n_test=10)
    d = data.load("mnist", tmp_path)
    assert d.train_x.shape == (30, 1, 28, 28) and d.test_x.shape == (10, 1, 28, 28)
    assert d.train_x.dtype == torch.float32 and 0 <= d.train_x.min() and d.train_x.max() <= 1
    assert d.train_y.tolist() == [i % 10 for i in range(30)]
    assert data.load("mnist", tmp_path, limit=7).train_x.shape[0] == 7


def test_raw_idx_files_and_env_lookup(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "env" / "fashion-mnist", gz=False)
    monkeypatch.setenv("AAE_DATA_DIR", str(tmp_path / "env"))
    d = data.load("fashion-mnist")
    assert d.class_names[0] == "T-shirt" and len(d.train_x) == 20


def test_count_mismatch_and_label_range(tmp_path):
    f = write_idx_set(tmp_path / "mnist")
    (f / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(19))))
    with pytest.raises(AAEError, match="20 images but .* 19 labels"):
        data.load("mnist", tmp_path)
    (f / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.full(20, 12))))
    with pytest.raises(AAEError, match="label 12 out of range"):
        data.load("mnist", tmp_path)


def test_not_found_offline_lists_places(tmp_path, monkeypatch):
    monkeypatch.delenv("AAE_DATA_DIR", raising=False)
    with pytest.raises(AAEError) as e:
        data.load("mnist", tmp_path / "empty")
    msg = str(e.value)
    assert "not found in" in msg and str(tmp_path / "empty") in msg and "AAE_OFFLINE" in msg
    assert "\n" not in msg


def test_limit_larger_than_data(tmp_path):
    write_idx_set(tmp_path / "mnist", n_train=5)
    with pytest.raises(AAEError, match="--limit"):
        data.load("mnist", tmp_path, limit=6)


@pytest.fixture
def http_server(tmp_path):
    served = tmp_path / "served"
    write_idx_set(served)
    with http_folder(served) as url:
        yield served, url


def test_download_verifies_checksum(http_server, monkeypatch, tmp_path):
    monkeypatch.delenv("AAE_DATA_DIR", raising=False)
    served, url = http_server
    sums = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in served.iterdir()}
    monkeypatch.setitem(data.MD5, "mnist", sums)
    monkeypatch.setenv("AAE_MIRRORS", "http://127.0.0.1:9/," + url)  # first mirror refuses
    monkeypatch.delenv("AAE_OFFLINE")
    d = data.load("mnist", tmp_path / "nothing-here")
    assert len(d.train_x) == 20
    cached = data.cache_dir() / "mnist"
    assert sorted(p.name for p in cached.iterdir()) == sorted(sums)  # no temporary files left


def test_download_refuses_bad_checksum(http_server, monkeypatch, tmp_path):
    monkeypatch.delenv("AAE_DATA_DIR", raising=False)
    served, url = http_server
    sums = {p.name: "0" * 32 for p in served.iterdir()}
    monkeypatch.setitem(data.MD5, "mnist", sums)
    monkeypatch.setenv("AAE_MIRRORS", url)
    monkeypatch.delenv("AAE_OFFLINE")
    with pytest.raises(AAEError, match="does not match the published"):
        data.load("mnist", tmp_path / "nothing-here")
    assert not any((data.cache_dir() / "mnist").glob("*"))  # nothing unverified was kept


def test_digits_offline():
    d = data.load("digits")
    assert d.image_shape == (1, 8, 8) and d.num_classes == 10
    assert len(d.train_x) + len(d.test_x) == 1797
    assert 0 <= float(d.train_x.min()) and float(d.train_x.max()) <= 1


def test_npz_and_npy(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (50, 12, 10), dtype=np.uint8)
    y = np.arange(50) % 5
    np.savez(tmp_path / "a.npz", x=x, y=y)
    d = data.load(str(tmp_path / "a.npz"))
    assert d.image_shape == (1, 12, 10) and len(d.train_x) + len(d.test_x) == 50
    assert set(d.train_y.tolist()) <= set(range(5))
    np.save(tmp_path / "c.npy", np.random.default_rng(0).random((20, 3, 6, 6)).astype(np.float32))
    assert data.load(str(tmp_path / "c.npy")).image_shape == (3, 6, 6)


@pytest.mark.parametrize("arr, message", [
    (np.full((4, 5, 5), np.nan, dtype=np.float32), "NaN"),
    (np.full((4, 5, 5), 3.5, dtype=np.float32), "pixel values span"),
    (np.full((4, 5, 5), -1, dtype=np.int32), "pixel values span"),
    (np.zeros((4, 5)), "expected images shaped"),
])
def test_bad_user_arrays(tmp_path, arr, message):
    np.save(tmp_path / "bad.npy", arr)
    with pytest.raises(AAEError, match=message):
        data.load(str(tmp_path / "bad.npy"))


def test_npz_label_count_mismatch(tmp_path):
    np.savez(tmp_path / "m.npz", x=np.zeros((5, 4, 4), np.uint8), y=np.zeros(4, np.int64))
    with pytest.raises(AAEError, match="4 labels for 5 images"):
        data.load(str(tmp_path / "m.npz"))


def test_pickled_npy_is_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(AAEError, match="without pickle"):
        data.load(str(tmp_path / "obj.npy"))


def test_image_folder(tmp_path):
    from PIL import Image

    g = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(g.integers(0, 256, (9, 7, 3), dtype=np.uint8)).save(
                tmp_path / "imgs" / cls / f"{i}.png")
    d = data.load(str(tmp_path / "imgs"))
    assert d.image_shape == (3, 9, 7) and d.class_names == ["cat", "dog"]
    assert sorted(d.train_y.tolist() + d.test_y.tolist()) == [0] * 6 + [1] * 6
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "imgs" / "dog" / "odd.png")
    with pytest.raises(AAEError, match="differs from the first"):
        data.load(str(tmp_path / "imgs"))


def test_unknown_dataset_lists_choices():
    with pytest.raises(AAEError, match="mnist, fashion-mnist, colored-mnist, svhn, digits"):
        data.load("cifar-1000")


@pytest.mark.skipif(not has_real_mnist(), reason="no real MNIST in ../shared/data")
def test_real_mnist_structure():
    d = data.load("mnist", SHARED_DATA, limit=2000)
    assert d.train_x.shape == (2000, 1, 28, 28) and d.test_x.shape == (10000, 1, 28, 28)
    assert abs(float(d.test_x.mean()) - 0.1325) < 1e-3  # the shared copy's documented test mean
