"""Datasets as whole tensors.

An AAE on MNIST is small enough that the whole training set fits in memory (60 000 x 784 float32 =
188 MB) and on the training device, so batches are index lookups into one tensor: no ``Dataset``,
no ``DataLoader``, no per-sample Python work.

Sources:

* ``mnist``, ``fashion-mnist``: the standard IDX files (``.gz`` or raw), looked up in ``--data-dir``,
  ``$AAE_DATA_DIR/<name>/``, ``~/.cache/aae/<name>/``, ``/usr/share/datasets/<name>/``; otherwise
  downloaded from the official mirrors, MD5-verified and written atomically into the cache.
* ``cifar10``: the binary version (``cifar-10-binary.tar.gz`` or its ``cifar-10-batches-bin``
  folder), looked up and downloaded like MNIST.
* ``celeba``: the aligned and cropped faces (``img_align_celeba.zip`` or the extracted folder, with
  ``list_eval_partition.txt`` for the official split), looked up like MNIST; never downloaded (it is
  published on Google Drive only).
* ``digits``: scikit-learn's bundled 8x8 digits, for fully offline runs.
* a path: a ``.npy``/``.npz`` array (N x H x W or N x C x H x W, optional labels; in a ``.npz``
  optionally ``x_test``/``y_test`` as the test split) or a folder of images (one sub-folder per
  class, optional), read with Pillow.

Every file is validated by structure, and every fault is an :class:`AAEError` naming the file.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import math
import os
import struct
import tarfile
import tokenize
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import AAEError
from .fileio import atomic_write_bytes

# Official mirrors and the MD5 of each published archive. Local copies may have been re-encoded
# losslessly (another gzip level), so local files are validated by structure, downloads by
# checksum.
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ],
    "svhn": ["http://ufldl.stanford.edu/housenumbers/"],
    "cifar10": ["https://www.cs.toronto.edu/~kriz/"],
}
MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83fd310",
    },
    "svhn": {  # the cropped-digits format (Netzer et al. 2011), as published
        "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
        "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
    },
    "cifar10": {"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},  # binary version
}
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CLASS_NAMES = {
    "fashion-mnist": ["T-shirt", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"],
}
BUILTIN = ("mnist", "fashion-mnist", "colored-mnist", "svhn", "digits", "cifar10", "celeba")
MAX_IDX_BYTES = 2**31  # larger than any image set this library is meant for: refuse, don't allocate
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass
class ImageData:
    """Images as float32 in [0, 1], shape (N, C, H, W); labels int64 (N,) or None."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor | None
    test_x: torch.Tensor
    test_y: torch.Tensor | None
    class_names: list[str] | None = None
    source: str = ""
    val_x: torch.Tensor | None = None  # held out of training (data.validation), for model selection
    val_y: torch.Tensor | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        ys = [y for y in (self.train_y, self.test_y) if y is not None and len(y)]
        return int(max(int(y.max()) for y in ys)) + 1 if ys else 0

    def to(self, device: torch.device | str) -> ImageData:
        mv = lambda t: None if t is None else t.to(device)  # noqa: E731
        return ImageData(self.name, mv(self.train_x), mv(self.train_y), mv(self.test_x),
                         mv(self.test_y), self.class_names, self.source, mv(self.val_x),
                         mv(self.val_y))


# ---------------------------------------------------------------------------------------------
# IDX


def _read_maybe_gz(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_IDX_BYTES + 64:
            raise AAEError(f"{path}: larger than {MAX_IDX_BYTES} bytes; refusing it")
        raw = path.read_bytes()
    except OSError as e:
        raise AAEError(f"{path}: cannot be read ({e.strerror or e})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            # bounded decompression: a gzip bomb must not exhaust memory
            d = gzip.GzipFile(fileobj=io.BytesIO(raw))
            out = d.read(MAX_IDX_BYTES + 1)
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise AAEError(f"{path}: corrupt or truncated gzip data ({e})") from None
        if len(out) > MAX_IDX_BYTES:
            raise AAEError(f"{path}: larger than {MAX_IDX_BYTES} bytes uncompressed; refusing it")
        return out
    return raw


def parse_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """Parse IDX bytes (unsigned-byte data only, as in MNIST) into an array, checking every field."""
    if len(data) < 4:
        raise AAEError(f"{name}: too short to be an IDX file ({len(data)} bytes)")
    zero, dtype_code, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00" or dtype_code != 0x08 or not 1 <= ndim <= 4:
        raise AAEError(
            f"{name}: bad IDX magic number 0x{data[:4].hex()} (expected 0x0000080N, unsigned "
            "bytes with N = 1..4 dimensions)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise AAEError(f"{name}: truncated IDX header ({len(data)} of {header} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if 0 in dims:
        raise AAEError(f"{name}: IDX dimensions {dims} hold no data; expected every size > 0")
    count = math.prod(dims)  # exact: a product of 32-bit sizes can exceed 64 bits
    if count > MAX_IDX_BYTES:
        raise AAEError(f"{name}: IDX dimensions {dims} describe {count} bytes; refusing it")
    if len(data) - header != count:
        what = "truncated" if len(data) - header < count else "has trailing bytes"
        raise AAEError(
            f"{name}: {what}: dimensions {dims} need {count} data bytes, found {len(data) - header}"
        )
    return np.frombuffer(data, dtype=np.uint8, count=count, offset=header).reshape(dims)


def read_idx(path: str | Path) -> np.ndarray:
    path = Path(path)
    return parse_idx(_read_maybe_gz(path), str(path))


def _find_file(folder: Path, stem: str) -> Path | None:
    for cand in (folder / stem, folder / f"{stem}.gz"):
        if cand.is_file():
            return cand
    return None


def search_dirs(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """Where IDX files of ``name`` are looked for, in order."""
    dirs = []
    if data_dir:
        dirs += [Path(data_dir) / name, Path(data_dir)]
    if os.environ.get("AAE_DATA_DIR"):
        dirs.append(Path(os.environ["AAE_DATA_DIR"]) / name)
    dirs.append(cache_dir() / name)
    dirs.append(Path("/usr/share/datasets") / name)
    return dirs


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aae"


def _complete_dir(folder: Path) -> dict[str, Path] | None:
    found = {k: _find_file(folder, stem) for k, stem in IDX_FILES.items()}
    return found if all(found.values()) else None  # type: ignore[return-value]


def download(name: str, dest: Path, mirrors: list[str] | None = None, timeout: float = 20.0) -> None:
    """Fetch the four archives of ``name`` into ``dest``, verifying each MD5; atomic per file."""
    mirrors = mirrors or _mirrors(name)
    for fname, md5 in MD5[name].items():
        if (dest / fname).is_file():
            continue
        errors = []
        for base in mirrors:
            url = base.rstrip("/") + "/" + fname
            try:
                with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (fixed hosts)
                    blob = r.read(MAX_IDX_BYTES)
            except (urllib.error.URLError, OSError, ValueError) as e:
                errors.append(f"{url}: {getattr(e, 'reason', e)}")
                continue
            got = hashlib.md5(blob).hexdigest()  # noqa: S324 (the published checksums are MD5)
            if got != md5:
                errors.append(f"{url}: MD5 {got} does not match the published {md5}")
                continue
            atomic_write_bytes(dest / fname, blob)
            break
        else:
            raise AAEError(f"cannot download {name} file {fname}: " + "; ".join(errors))


def _mirrors(name: str) -> list[str]:
    env = os.environ.get("AAE_MIRRORS")  # a comma-separated override, e.g. a local mirror
    return [m for m in env.split(",") if m] if env else MIRRORS[name]


def _find_or_fetch(name: str, data_dir, allow_download: bool, find, hint: str,
                   timeout: float = 20.0):
    """``find(folder)`` on each look-up folder of ``name``, then on the cache after an
    MD5-verified download (unless downloads are off, or ``name`` has none); a one-line error
    naming every folder."""
    dirs = search_dirs(name, data_dir)
    found = next((f for d in dirs if (f := find(d))), None)
    if found is not None:
        return found
    offline = os.environ.get("AAE_OFFLINE", "") not in ("", "0")
    problem = "it has no automatic download" if name not in MD5 else (
        "downloads are off (data.download = false)" if not allow_download else (
            "downloads are off (AAE_OFFLINE is set)" if offline else ""))
    if not problem:
        try:
            download(name, cache_dir() / name, timeout=timeout)
            found = find(cache_dir() / name)
        except AAEError as e:
            problem = str(e)
    if found is None:
        raise AAEError(f"dataset {name!r} not found in {', '.join(map(str, dirs))}, and "
                       f"{problem or 'the download is incomplete'}; {hint}")
    return found


def load_idx_dataset(name: str, data_dir: str | Path | None = None, allow_download: bool = True
                     ) -> ImageData:
    files = _find_or_fetch(name, data_dir, allow_download, _complete_dir,
                           "put the four IDX files in one of those folders, set AAE_DATA_DIR or "
                           "pass --data-dir")
    arrays = {k: read_idx(p) for k, p in files.items()}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        xp, yp = files[f"{split}_images"], files[f"{split}_labels"]
        if x.ndim != 3:
            raise AAEError(f"{xp}: expected 3 dimensions (N, H, W), found {x.shape}")
        if y.ndim != 1:
            raise AAEError(f"{yp}: expected 1 dimension (N,), found {y.shape}")
        if len(x) != len(y):
            raise AAEError(f"{xp} holds {len(x)} images but {yp} holds {len(y)} labels")
        if len(y) and y.max() > 9:
            raise AAEError(f"{yp}: label {int(y.max())} out of range 0..9")
    to_x = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0).unsqueeze(1)  # noqa: E731
    to_y = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    return ImageData(name, to_x(arrays["train_images"]), to_y(arrays["train_labels"]),
                     to_x(arrays["test_images"]), to_y(arrays["test_labels"]),
                     CLASS_NAMES.get(name), source=str(files["train_images"].parent))


# ---------------------------------------------------------------------------------------------
# SVHN (MATLAB files)


def read_svhn_mat(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, 32, 32) in [0, 1] and labels 0..9 of one SVHN ``*_32x32.mat`` file (the
    file stores X as 32 x 32 x 3 x N uint8 and y as N x 1 in 1..10, 10 meaning the digit 0)."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        m = loadmat(path)
    except (MatReadError, OSError, ValueError, TypeError, NotImplementedError) as e:
        raise AAEError(f"{path}: not a readable MATLAB file ({e})") from None
    x, y = m.get("X"), m.get("y")
    if x is None or y is None:
        raise AAEError(f"{path}: expected arrays X and y (the SVHN cropped-digits format)")
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise AAEError(f"{path}: X should be 32 x 32 x 3 x N uint8, found {x.shape} {x.dtype}")
    y = np.asarray(y).ravel()
    if len(y) != x.shape[3]:
        raise AAEError(f"{path}: {x.shape[3]} images but {len(y)} labels")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise AAEError(f"{path}: labels should be 1..10, found {int(y.min())}..{int(y.max())}")
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)).astype(np.float32) / 255)
    return images, torch.from_numpy((y % 10).astype(np.int64))


def load_svhn(data_dir: str | Path | None = None, allow_download: bool = True) -> ImageData:
    names = tuple(MD5["svhn"])
    folder = _find_or_fetch("svhn", data_dir, allow_download,
                            lambda d: d if all((d / f).is_file() for f in names) else None,
                            f"put {' and '.join(names)} in one of those folders", timeout=120.0)
    train_x, train_y = read_svhn_mat(folder / names[0])
    test_x, test_y = read_svhn_mat(folder / names[1])
    return ImageData("svhn", train_x, train_y, test_x, test_y, None, source=str(folder))


# ---------------------------------------------------------------------------------------------
# CIFAR-10 (binary version)

CIFAR_DIR = "cifar-10-batches-bin"
CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST = "test_batch.bin"
CIFAR_RECORD = 1 + 3 * 32 * 32  # a label byte, then the red, green and blue 32x32 planes


def parse_cifar(blob: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) of one CIFAR-10 binary batch, checked."""
    if not blob or len(blob) % CIFAR_RECORD:
        raise AAEError(f"{name}: {len(blob)} bytes is not a whole number of {CIFAR_RECORD}-byte "
                       "CIFAR-10 records (a label byte and 3072 pixel bytes); truncated?")
    records = np.frombuffer(blob, dtype=np.uint8).reshape(-1, CIFAR_RECORD)
    labels = records[:, 0]
    if labels.max() > 9:
        i = int(np.argmax(labels > 9))
        raise AAEError(f"{name}: record {i} has label {int(labels[i])}; expected 0..9")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def _find_cifar(folder: Path) -> Path | None:
    """The extracted batches folder or the archive in ``folder``, or None."""
    for cand in (folder / CIFAR_DIR, folder):
        if all((cand / f).is_file() for f in (*CIFAR_TRAIN, CIFAR_TEST)):
            return cand
    archive = folder / CIFAR_ARCHIVE
    return archive if archive.is_file() else None


def _cifar_batches(src: Path) -> dict[str, bytes]:
    """The bytes of the six batch files, from the folder or the ``.tar.gz`` (read in memory,
    nothing extracted to disk)."""
    names = (*CIFAR_TRAIN, CIFAR_TEST)
    if src.is_dir():
        return {n: _read_maybe_gz(src / n) for n in names}
    out = {}
    try:
        with tarfile.open(src, "r:*") as tar:
            for i, m in enumerate(tar):  # the published archive has 8 members
                if i > 1000:
                    raise AAEError(f"{src}: more than 1000 members; not the CIFAR-10 archive")
                n = m.name[len(CIFAR_DIR) + 1:]
                if m.name == f"{CIFAR_DIR}/{n}" and n in names and m.isfile() \
                        and m.size <= MAX_IDX_BYTES:
                    out[n] = tar.extractfile(m).read()  # type: ignore[union-attr]
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise AAEError(f"{src}: not a readable tar archive ({e})") from None
    missing = next((n for n in names if n not in out), None)
    if missing is not None:
        raise AAEError(f"{src}: no member {CIFAR_DIR}/{missing} (a file of at most "
                       f"{MAX_IDX_BYTES} bytes); expected the binary CIFAR-10 archive, "
                       f"{CIFAR_ARCHIVE}")
    return out


def load_cifar10(data_dir: str | Path | None = None, allow_download: bool = True) -> ImageData:
    """CIFAR-10: 50 000 training and 10 000 test images (3 x 32 x 32), labels 0..9. In memory
    as float32: 737 MB, plus the 184 MB of file bytes while it is read."""
    src = _find_or_fetch("cifar10", data_dir, allow_download, _find_cifar,
                         f"put {CIFAR_ARCHIVE} or its {CIFAR_DIR} folder in one of those folders",
                         timeout=120.0)
    batches = _cifar_batches(src)
    where = lambda n: f"{src}/{n}" if src.is_dir() else f"{src}:{CIFAR_DIR}/{n}"  # noqa: E731
    train = [parse_cifar(batches.pop(n), where(n)) for n in CIFAR_TRAIN]
    test_x, test_y = parse_cifar(batches.pop(CIFAR_TEST), where(CIFAR_TEST))
    to_x = lambda a: torch.from_numpy(a.astype(np.float32)).div_(255.0)  # noqa: E731
    to_y = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    return ImageData("cifar10", to_x(np.concatenate([x for x, _ in train])),
                     to_y(np.concatenate([y for _, y in train])), to_x(test_x), to_y(test_y),
                     CLASS_NAMES["cifar10"], source=str(src))


# ---------------------------------------------------------------------------------------------
# scikit-learn digits, user arrays, image folders


def load_digits() -> ImageData:
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.from_numpy((d.images / 16.0).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    # a fixed, class-stratified split: every 6th image of each class is a test image
    order = np.argsort(d.target, kind="stable")
    test = np.zeros(len(y), dtype=bool)
    test[order[::6]] = True
    t = torch.from_numpy(test)
    return ImageData("digits", x[~t], y[~t], x[t], y[t], source="sklearn.datasets.load_digits")


def _as_images(a: np.ndarray, where: str) -> torch.Tensor:
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4 or 0 in a.shape:
        raise AAEError(f"{where}: expected images shaped N x H x W or N x C x H x W with no size "
                       f"0, got {a.shape}")
    if a.shape[1] not in (1, 3) and a.shape[3] in (1, 3):  # N x H x W x C
        a = a.transpose(0, 3, 1, 2)
    if a.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32) / 255.0)
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise AAEError(f"{where}: expected numeric pixel values, got dtype {a.dtype}")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise AAEError(f"{where}: holds NaN or infinite pixel values")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0 or hi > 1:
        if lo < 0 or hi > 255 or not (a == np.round(a)).all():
            raise AAEError(
                f"{where}: pixel values span [{lo:g}, {hi:g}]; expected floats in [0, 1] or "
                "integers in [0, 255]"
            )
        a = a / 255.0
    return torch.from_numpy(np.ascontiguousarray(a))


def _as_labels(a: np.ndarray | None, n: int, where: str) -> torch.Tensor | None:
    if a is None:
        return None
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise AAEError(f"{where}: expected a 1-D integer label array, got {a.dtype} {a.shape}")
    if len(a) != n:
        raise AAEError(f"{where}: {len(a)} labels for {n} images")
    if len(a) and a.min() < 0:
        raise AAEError(f"{where}: negative label {int(a.min())}")
    if len(a) and a.max() > 2**31 - 1:
        raise AAEError(f"{where}: label {int(a.max())} is too large; expected class numbers")
    return torch.from_numpy(a.astype(np.int64))


def _test_indices(n: int, test_fraction: float) -> tuple[list[int], list[int]]:
    """Training and test positions of a fixed, seed-independent hold-out of ``n`` items."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(1234))
    n_test = max(1, int(round(n * test_fraction))) if n > 1 else 0
    return perm[n_test:].tolist(), perm[:n_test].tolist()


def _split(name: str, x: torch.Tensor, y: torch.Tensor | None, source: str,
           class_names: list[str] | None = None, test_fraction: float = 0.1) -> ImageData:
    """Hold out a fixed, seed-independent ``test_fraction`` of a user's data (``data.test_fraction``,
    a tenth by default) as the test split."""
    tr, te = (torch.tensor(i, dtype=torch.int64) for i in _test_indices(len(x), test_fraction))
    pick = lambda t, i: None if t is None else t[i]  # noqa: E731
    return ImageData(name, x[tr], pick(y, tr), x[te], pick(y, te), class_names, source)


# what numpy raises on damaged .npy/.npz files (zip, zlib and short-read faults, unparsable
# headers; MemoryError for a header that claims more than there is memory)
_ARRAY_FAULTS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, MemoryError,
                 RuntimeError, NotImplementedError, SyntaxError, tokenize.TokenError)


def read_array(path: Path, extra: tuple[str, ...] = ()) -> tuple[torch.Tensor, torch.Tensor | None,
                                                                  dict[str, np.ndarray]]:
    """Images, labels (or None) and any ``extra`` named arrays of a .npy/.npz file, in order."""
    if not Path(path).is_file():  # a pipe would block
        raise AAEError(f"{path}: not found, or not a regular file")
    try:
        obj = np.load(path, allow_pickle=False)  # never unpickle a user's file
        if isinstance(obj, np.ndarray):
            return _as_images(obj, str(path)), None, {}
        with obj:
            keys = set(obj.files)
            xk = next((k for k in ("x", "images", "x_train", "arr_0") if k in keys), None)
            if xk is None:
                raise AAEError(f"{path}: no image array; expected a key named x or images, found "
                               f"{', '.join(sorted(keys)) or 'nothing'}")
            x = _as_images(obj[xk], f"{path}[{xk}]")
            yk = next((k for k in ("y", "labels", "y_train") if k in keys), None)
            y = _as_labels(obj[yk], len(x), f"{path}[{yk}]") if yk else None
            return x, y, {k: obj[k] for k in extra if k in keys}
    except _ARRAY_FAULTS as e:
        if "allow_pickle" in str(e):
            raise AAEError(f"{path}: cannot be loaded without pickle ({e}); save plain "
                           "numeric arrays") from None
        raise AAEError(f"{path}: not a readable .npy/.npz file ({type(e).__name__}: "
                       f"{e or 'no details'})") from None


def _user_array(path: Path, test_fraction: float) -> ImageData:
    """A user's .npy/.npz: its ``x_test``/``y_test`` as the test split where it has them, else a
    ``test_fraction`` hold-out."""
    x, y, extra = read_array(path, ("x_test", "y_test"))
    if "x_test" not in extra:
        return _split(path.stem, x, y, str(path), test_fraction=test_fraction)
    xt = _as_images(extra["x_test"], f"{path}[x_test]")
    yt = _as_labels(extra.get("y_test"), len(xt), f"{path}[y_test]")
    if (y is None) != (yt is None):
        raise AAEError(f"{path}: labels for the {'training' if yt is None else 'test'} images "
                       "only; give y_test with y (or y_train), or neither")
    return ImageData(path.stem, x, y, xt, yt, None, str(path))


def read_folder(path: Path, size: tuple[int, int] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None, list[str] | None, list[Path]]:
    """Images (in file order), labels and class names (one sub-folder per class, or None), files.
    With ``size`` (H, W) every image is resized to it (antialiased), so a folder of mixed sizes
    loads; without, they must share one size. Grey, colour, palette, CMYK, 16-bit and float
    images mix: any colour image makes all of them RGB (see :func:`decode_image`)."""
    groups, loose = _image_files(path)
    if groups and loose:
        raise AAEError(f"{path}: mixes images and class sub-folders; use one or the other")
    if not groups and not loose:
        raise AAEError(f"{path}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    files = [(f, i) for i, (_, fs) in enumerate(groups) for f in fs] or [(f, -1) for f in loose]
    images: list[np.ndarray] = []
    for f, _ in files:
        if not f.is_file():  # a pipe would block, a broken link has nothing to read
            raise AAEError(f"{f}: not a regular file (a broken link, a pipe or a device)")
        a = decode_image(f, str(f), size)
        if images and a.shape[:2] != images[0].shape[:2]:
            (h, w), (h0, w0) = a.shape[:2], images[0].shape[:2]
            raise AAEError(f"{f}: size {w}x{h} differs from the first image's {w0}x{h0}; set "
                           "data.image_size = [H, W] to resize them on load")
        images.append(a)
    y = torch.tensor([i for _, i in files]) if groups else None
    return _stack_images(images), y, [n for n, _ in groups] if groups else None, [f for f, _ in files]


# faults Pillow raises on damaged or hostile files (OSError covers UnidentifiedImageError and
# truncated data; the others come from malformed headers and chunks)
_IMAGE_FAULTS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError,
                 TypeError, ZeroDivisionError, MemoryError, zlib.error)


def decode_image(src, where: str, size: tuple[int, int] | None = None, crop: bool = False,
                 fmt: str | None = None) -> np.ndarray:
    """One image (a path or a binary file object) as H x W (grey) or H x W x 3 (colour): uint8,
    or float32 in [0, 1] for 16-bit and floating-point images; turned upright by its EXIF
    orientation; transparent pixels composited over black. With ``size`` (H, W) resized to it
    (Lanczos, antialiased), ``crop`` first cutting the largest centred region of that aspect
    ratio. ``fmt`` (a Pillow format name, "JPEG") is the only format accepted. More pixels than
    Pillow's ``Image.MAX_IMAGE_PIXELS`` (a decompression bomb) are refused before decoding."""
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(src)
        with im:
            if fmt and im.format != fmt:
                raise AAEError(f"{where}: a {im.format} image; expected {fmt}")
            im.load()
            im = _standard_mode(ImageOps.exif_transpose(im), where)
            if size is not None:
                im = _resize(im, size, crop)
            a = np.asarray(im)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise AAEError(f"{where}: refused without decoding it: {e}") from None
    except _IMAGE_FAULTS as e:
        raise AAEError(f"{where}: not a readable image ({e})") from None
    return np.clip(a, 0, 1) if a.dtype == np.float32 else a  # Lanczos overshoots a little


def _standard_mode(im, where: str):
    """``im`` in mode L or RGB (8 bits), or F (grey, floats in [0, 1]) for deeper images."""
    from PIL import Image

    if im.mode == "F" or im.mode.startswith("I"):  # I;16*, I (32-bit integers), F (floats)
        return Image.fromarray(_deep_pixels(np.asarray(im), where))
    grey = _is_grey(im)
    if not ("A" in im.mode or "a" in im.mode or "transparency" in im.info):
        return im if im.mode in ("L", "RGB") else im.convert("L" if grey else "RGB")
    a = np.asarray(im.convert("LA" if grey else "RGBA"), dtype=np.float32)
    out = np.round(a[..., :-1] * (a[..., -1:] / 255.0)).astype(np.uint8)  # over black
    return Image.fromarray(out[..., 0] if grey else out)


def _is_grey(im) -> bool:
    """Whether ``im`` has no colour: a grey mode, or a palette whose used entries are grey."""
    if im.mode in ("1", "L", "LA", "La"):
        return True
    if im.mode not in ("P", "PA"):
        return False
    pal = np.asarray(im.getpalette("RGB") or [0, 0, 0], dtype=np.uint8).reshape(-1, 3)
    idx = np.unique(np.asarray(im.getchannel(0)))
    used = pal[idx[idx < len(pal)]]
    return bool((used == used[:, :1]).all())


def _deep_pixels(a: np.ndarray, where: str) -> np.ndarray:
    """16-bit, 32-bit integer or floating-point pixels as float32 in [0, 1]: unsigned integers
    scaled by their type's maximum (65535 for 16 bits), 32-bit integers (Pillow's mode I) taken
    as 16-bit values, floats as they are (they must lie in [0, 1])."""
    if a.dtype.kind == "u":
        return a.astype(np.float32) / np.float32(np.iinfo(a.dtype).max)
    if a.dtype.kind == "i":
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 65535:
            raise AAEError(f"{where}: integer pixel values span [{lo}, {hi}]; expected 16-bit "
                           "values 0..65535")
        return a.astype(np.float32) / np.float32(65535)
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise AAEError(f"{where}: holds NaN or infinite pixel values; expected values in [0, 1]")
    if a.min() < 0 or a.max() > 1:
        raise AAEError(f"{where}: floating-point pixel values span [{a.min():g}, {a.max():g}]; "
                       "expected values in [0, 1]")
    return a


def _resize(im, size: tuple[int, int], crop: bool):
    """``im`` resized to ``size`` (H, W), antialiased; ``crop``: from its largest centred region
    of that aspect ratio (the central square for a square size)."""
    from PIL import Image

    (h, w), box = size, None
    if crop:
        s = min(im.width / w, im.height / h)
        cw, ch = w * s, h * s
        box = ((im.width - cw) / 2, (im.height - ch) / 2, (im.width + cw) / 2,
               (im.height + ch) / 2)
    if box is None and im.size == (w, h):
        return im
    return im.resize((w, h), Image.Resampling.LANCZOS, box=box)


def _stack_images(arrays: list[np.ndarray]) -> torch.Tensor:
    """Decoded images of one size as float32 (N, C, H, W) in [0, 1]: C = 3 when any of them has
    colour (grey ones repeated), else 1."""
    c = 3 if any(a.ndim == 3 for a in arrays) else 1
    h, w = arrays[0].shape[:2]
    out = np.empty((len(arrays), c, h, w), dtype=np.float32)
    for i, a in enumerate(arrays):
        v = a.astype(np.float32) / np.float32(255) if a.dtype == np.uint8 else a
        out[i] = v.reshape(h, w, -1).transpose(2, 0, 1)
    return torch.from_numpy(out)


def _image_files(path: Path) -> tuple[list[tuple[str, list[Path]]], list[Path]]:
    """The class sub-folders of ``path`` with their image files, and its loose image files.
    Hidden names (``.ipynb_checkpoints``, ``._x.png``) and folders named like images are
    skipped."""
    def is_image(f: Path, top: Path) -> bool:
        hidden = any(p.startswith(".") for p in f.relative_to(top).parts)
        return f.suffix.lower() in IMAGE_SUFFIXES and not hidden and not f.is_dir()

    try:
        entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        groups = [(d.name, sorted(f for f in d.rglob("*") if is_image(f, d)))
                  for d in entries if d.is_dir()]
    except OSError as e:
        raise AAEError(f"{path}: cannot be listed ({e.strerror or e})") from None
    return [(n, fs) for n, fs in groups if fs], [f for f in entries if is_image(f, path)]


# ---------------------------------------------------------------------------------------------
# CelebA (aligned and cropped faces)

CELEBA_IMAGES = ("img_align_celeba.zip", "img_align_celeba", "Img/img_align_celeba.zip",
                 "Img/img_align_celeba")
CELEBA_PARTITION = ("list_eval_partition.txt", "Eval/list_eval_partition.txt",
                    "list_eval_partition.csv")
CELEBA_SIZE = (64, 64)  # (H, W) when data.image_size is not set
CELEBA_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
MAX_JPEG_BYTES = 2**24  # per archive member; CelebA's are about 10 kB


def _find_celeba(folder: Path) -> tuple[Path, Path | None] | None:
    """The image folder or zip in ``folder``, with the partition file beside it (or None)."""
    cands = [folder / c for c in CELEBA_IMAGES]
    images = next((c for c in cands if c.is_dir() or (c.suffix == ".zip" and c.is_file())), None)
    if images is None:
        return None
    return images, next((folder / c for c in CELEBA_PARTITION if (folder / c).is_file()), None)


def read_partition(path: Path) -> dict[str, int]:
    """``list_eval_partition.txt`` (lines ``000001.jpg 0``; or the .csv with a header) as image
    name -> 0 (train), 1 (validation) or 2 (test)."""
    try:
        if path.stat().st_size > 2**26:
            raise AAEError(f"{path}: larger than 64 MB; not a CelebA partition list")
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise AAEError(f"{path}: cannot be read as text ({e})") from None
    out = {}
    for i, line in enumerate(lines, 1):
        fields = line.replace(",", " ").split()
        if not fields or (i == 1 and fields[-1] == "partition"):
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise AAEError(f"{path}: line {i}: expected an image name and a partition 0, 1 or 2, "
                           f"found {line.strip()[:60]!r}")
        out[fields[0]] = int(fields[1])
    return out


def _is_jpeg_name(name: str) -> bool:
    return name.lower().endswith((".jpg", ".jpeg")) and not name.startswith(".")


@contextlib.contextmanager
def _celeba_files(src: Path):
    """The sorted JPEG names of ``src`` (the folder, or a nested one as in Kaggle's copy, or the
    zip) and a function giving, for a name, what Pillow opens and the name used in errors."""
    if src.is_dir():
        nested = src / "img_align_celeba"
        folder = nested if nested.is_dir() and not any(src.glob("*.jpg")) else src
        try:
            files = {p.name: p for p in folder.iterdir() if _is_jpeg_name(p.name) and p.is_file()}
        except OSError as e:
            raise AAEError(f"{folder}: cannot be listed ({e.strerror or e})") from None
        yield sorted(files), lambda n: (files[n], str(files[n]))
        return
    try:
        archive = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError) as e:
        raise AAEError(f"{src}: not a readable zip archive ({e})") from None
    with archive:
        infos: dict[str, zipfile.ZipInfo] = {}
        for info in archive.infolist():
            base = info.filename.rsplit("/", 1)[-1]
            if not info.is_dir() and _is_jpeg_name(base) and "__MACOSX" not in info.filename:
                infos.setdefault(base, info)
        yield sorted(infos), lambda n: _zip_member(archive, infos[n], src)


def _zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, src: Path):
    where = f"{src}:{info.filename}"
    if info.file_size > MAX_JPEG_BYTES:
        raise AAEError(f"{where}: {info.file_size} bytes uncompressed; expected a small JPEG")
    try:
        return io.BytesIO(archive.read(info)), where
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, RuntimeError,
            NotImplementedError) as e:
        raise AAEError(f"{where}: cannot be read from the archive ({e})") from None


def _celeba_split(names: list[str], partition: Path | None, test_fraction: float
                  ) -> tuple[list[str], list[str]]:
    """Training names (partition 0, then 1) and test names (partition 2), or without a partition
    file a fixed ``test_fraction`` hold-out."""
    if partition is None:
        tr, te = _test_indices(len(names), test_fraction)
        return [names[i] for i in tr], [names[i] for i in te]
    part = read_partition(partition)
    missing = next((n for n in names if n not in part), None)
    if missing is not None:
        raise AAEError(f"{partition}: no line for image {missing}; expected one for every image")
    return [n for p in (0, 1) for n in names if part[n] == p], [n for n in names if part[n] == 2]


def _read_faces(names: list[str], get, size: tuple[int, int]) -> torch.Tensor:
    out = np.empty((len(names), 3, *size), dtype=np.float32)
    for i, n in enumerate(names):
        a = decode_image(*get(n), size=size, crop=True, fmt="JPEG")
        out[i] = a.reshape(*size, -1).transpose(2, 0, 1) / np.float32(255)  # grey: repeated
    return torch.from_numpy(out)


def load_celeba(data_dir: str | Path | None = None, size: tuple[int, int] = CELEBA_SIZE,
                test_fraction: float = 0.1, limit: int = 0, validation: int = 0) -> ImageData:
    """CelebA's aligned and cropped faces, unlabelled. Each 178 x 218 JPEG is cut to its largest
    centred region of ``size``'s aspect ratio (for a square size the central 178 x 178, 20 rows
    from the top) and resized to ``size`` (H, W) with antialiasing. The split is
    ``list_eval_partition.txt``'s: training = partition 0 then 1 (so ``data.validation = 19867``
    holds out exactly the official validation partition), test = partition 2; without that file a
    fixed ``test_fraction`` hold-out. Memory: 12 x H x W bytes per image (float32), about 10 GB
    for all 202 599 at 64 x 64, 2.5 GB at 32 x 32; decoding takes about 1 ms per image on one
    core. With ``limit`` only the first ``limit`` and the last ``validation`` training images are
    decoded (what ``data.limit`` and ``data.validation`` keep), and all the test images."""
    src, partition = _find_or_fetch(
        "celeba", data_dir, False, _find_celeba,
        f"get img_align_celeba.zip and list_eval_partition.txt from {CELEBA_PAGE} (Google Drive) "
        "and put them in one of those folders, set AAE_DATA_DIR or pass --data-dir")
    with _celeba_files(src) as (names, get):
        if not names:
            raise AAEError(f"{src}: no JPEG images (expected CelebA's 000001.jpg ...)")
        train, test = _celeba_split(names, partition, test_fraction)
        if limit and limit + validation < len(train):
            train = train[:limit] + train[len(train) - validation:]
        train_x, test_x = _read_faces(train, get, size), _read_faces(test, get, size)
    return ImageData("celeba", train_x, None, test_x, None, source=str(src))


def _source(dataset: str, data_dir: str | Path | None, allow_download: bool, dc=None,
            keep: tuple[int, int] = (0, 0)) -> ImageData:
    """The dataset by name or path, split into train and test as it comes (files of a user's
    own: ``data.test_fraction`` of them held out). ``keep`` = (limit, validation) lets a large
    set (CelebA) decode only the training images those keep."""
    frac = 0.1 if dc is None else dc.test_fraction
    size = None if dc is None or not dc.image_size else tuple(dc.image_size)
    if dataset in ("mnist", "fashion-mnist"):
        return load_idx_dataset(dataset, data_dir, allow_download)
    if dataset == "colored-mnist":
        return colored_mnist(load_idx_dataset("mnist", data_dir, allow_download))
    if dataset == "svhn":
        return load_svhn(data_dir, allow_download)
    if dataset == "cifar10":
        return load_cifar10(data_dir, allow_download)
    if dataset == "celeba":
        return load_celeba(data_dir, size or CELEBA_SIZE, frac, *keep)
    if dataset == "digits":
        return load_digits()
    path = Path(dataset)
    if not path.exists():
        raise AAEError(f"unknown dataset {dataset!r}: expected one of {', '.join(BUILTIN)}, "
                       "or a path to a .npy/.npz file or an image folder")
    if path.is_dir():
        x, y, names, _ = read_folder(path, size)
        return _split(path.name, x, y, str(path), names, frac)
    if path.suffix in (".npy", ".npz"):
        return _user_array(path, frac)
    raise AAEError(f"dataset {path}: expected a .npy/.npz file or a folder of images")


def check_splits(data: ImageData) -> None:
    """The test and validation images must have the training images' shape (C x H x W), and the
    test split must hold at least one image (the run's plots, report and metrics use it)."""
    shape = lambda x: "x".join(map(str, x.shape[1:]))  # noqa: E731
    if not len(data.test_x):
        raise AAEError(f"{data.source or data.name}: {len(data.train_x)} image(s) leave none for "
                       "the test split; expected at least 2 images")
    for what, x in (("test", data.test_x), ("validation", data.val_x)):
        if x is not None and len(x) and x.shape[1:] != data.train_x.shape[1:]:
            raise AAEError(f"{data.source or data.name}: the {what} images are {shape(x)} but the "
                           f"training images are {shape(data.train_x)}; expected one size "
                           "(data.image_size and data.channels convert both on load)")


def _holdout(data: ImageData, validation: int, limit: int) -> ImageData:
    """Hold the last ``validation`` training images out, then keep the first ``limit``."""
    check_splits(data)
    if validation:
        n = len(data.train_x)
        if validation >= n:
            raise AAEError(f"option data.validation: {validation} held-out images leave none of "
                           f"the {n} training images of {data.name} to train on")
        data.val_x, data.train_x = data.train_x[n - validation:], data.train_x[:n - validation]
        if data.train_y is not None:
            data.val_y, data.train_y = data.train_y[n - validation:], data.train_y[:n - validation]
    if limit:
        if limit > len(data.train_x):
            raise AAEError(f"option data.limit (--limit): {limit} exceeds the {len(data.train_x)} "
                           f"training images of {data.name}")
        data.train_x = data.train_x[:limit]
        data.train_y = None if data.train_y is None else data.train_y[:limit]
    return data


def load(dataset: str, data_dir: str | Path | None = None, limit: int = 0,
         allow_download: bool = True, validation: int = 0) -> ImageData:
    """Load a dataset by name or path. ``validation`` holds the last N training images out as a
    validation split; ``limit`` then keeps the first N of the remaining training images."""
    return _holdout(_source(dataset, data_dir, allow_download, keep=(limit, validation)),
                    validation, limit)


def conform(data: ImageData, size: tuple[int, int] | None, channels: int) -> ImageData:
    """Every split at ``size`` (H, W; resized with antialiasing) and ``channels`` (1: luminance,
    ITU-R 601 weights; 3: greyscale repeated); None / 0 keep what the data has."""
    def fit(x: torch.Tensor | None) -> torch.Tensor | None:
        if x is None or not len(x):
            return x
        if size is not None and tuple(x.shape[2:]) != size:
            x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", antialias=True,
                                                align_corners=False).clamp_(0, 1)
        if channels == 3 and x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        elif channels == 1 and x.shape[1] == 3:
            w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
            x = (x * w).sum(1, keepdim=True)
        return x

    data.train_x, data.test_x, data.val_x = fit(data.train_x), fit(data.test_x), fit(data.val_x)
    return data


def from_config(dc, data_dir: str | Path | None = None) -> ImageData:
    """Load the data a run's ``[data]`` section describes (``data_dir`` overrides its folder)."""
    data = _source(dc.dataset, data_dir or dc.data_dir or None, dc.download, dc,
                   (dc.limit, dc.validation))
    size = tuple(dc.image_size) if dc.image_size else None
    if size is not None or dc.channels:
        data = conform(data, size, dc.channels)
    return _holdout(data, dc.validation, dc.limit)


# colored-mnist: a colour dataset built from real data, deterministic per image
COLOR_SEED = 20151118  # the paper's arXiv date: one fixed dataset, whatever the run's seed


def colored_mnist(mnist: ImageData) -> ImageData:
    """MNIST digits on colour: each image padded to 32x32 and drawn as ``bg * (1 - x) + fg * x``,
    its foreground and background colours uniform in RGB, drawn from a generator seeded with
    (COLOR_SEED, split, image index) and pulled apart where they are too alike: where their
    luminances differ by less than 0.3 the background is inverted, and where they still do, it
    becomes black or white. Labels are the digits'."""
    def paint(x: torch.Tensor, split: int) -> torch.Tensor:
        rgb = np.empty((len(x), 2, 3), dtype=np.float32)
        for i in range(len(x)):
            rgb[i] = np.random.default_rng([COLOR_SEED, split, i]).uniform(0, 1, (2, 3))
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        for fix in ("invert", "extreme"):  # at least 0.3 apart in luminance
            luma = rgb @ weights
            close = np.abs(luma[:, 0] - luma[:, 1]) < 0.3
            if fix == "invert":
                rgb[close, 1] = 1 - rgb[close, 1]
            else:  # still close: black behind a light digit, white behind a dark one
                rgb[close, 1] = (luma[close, 0] < 0.5).astype(np.float32)[:, None]
        c = torch.from_numpy(rgb)
        fg, bg = c[:, 0].view(-1, 3, 1, 1), c[:, 1].view(-1, 3, 1, 1)
        xp = torch.nn.functional.pad(x, (2, 2, 2, 2))  # (N, 1, 32, 32)
        return bg * (1 - xp) + fg * xp

    return ImageData("colored-mnist", paint(mnist.train_x, 0), mnist.train_y,
                     paint(mnist.test_x, 1), mnist.test_y, source=f"{mnist.source} (coloured)")


def balanced_subset(y: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Keep the labels of ``n`` examples, as equal a number per class as the data allows, chosen
    at random by ``seed`` (the run's seed; its ``labelled_subset`` stream); every other label
    becomes -1."""
    from .streams import generator

    g = generator(seed, "labelled_subset")
    yc = y.cpu()
    classes = torch.unique(yc).tolist()
    pools = {c: (yc == c).nonzero().flatten() for c in classes}
    pools = {c: p[torch.randperm(len(p), generator=g)] for c, p in pools.items()}
    take = {c: 0 for c in classes}
    left = n
    while left:  # round-robin over classes that still have examples: balanced, exact count
        progressed = False
        for c in classes:
            if left and take[c] < len(pools[c]):
                take[c] += 1
                left -= 1
                progressed = True
        if not progressed:
            break
    keep = torch.cat([pools[c][:take[c]] for c in classes])
    out = torch.full_like(yc, -1)
    out[keep] = yc[keep]
    return out.to(y.device)


def training_labels(cfg, caps, data: ImageData) -> torch.Tensor | None:
    """The training labels a run of ``cfg`` uses, for a model with capabilities ``caps``: None
    when it needs none; all of them; or (data.labelled = N) N class-balanced ones chosen by the
    seed, the rest -1 ("no label"). Checked against what the model needs."""
    if not caps.needs_labels:
        return None
    y, n = data.train_y, cfg.data.labelled
    if y is None:
        raise AAEError(f"option model.label_conditioning: dataset {cfg.data.dataset} has no labels")
    if n > len(y):
        raise AAEError(f"option data.labelled (--labelled): {n} labelled examples asked for, "
                       f"but the training set has {len(y)}")
    labels = y.clone() if n < 0 else balanced_subset(y, n, cfg.train.seed)
    if caps.label_decoder and n != -1:
        raise AAEError("option data.labelled (--labelled): the supervised AAE "
                       "(model.class_input = label) needs every label; use -1")
    if caps.classes and len(labels) and int(labels.max()) >= caps.classes:
        raise AAEError(f"option model.classes: {caps.classes} classes, but dataset "
                       f"{cfg.data.dataset} has labels up to {int(labels.max())}")
    if caps.classify and not (labels >= 0).any():
        raise AAEError("option data.labelled (--labelled): no labelled examples for the "
                       "classification phase")
    return labels


def check_training_data(cfg, data: ImageData, world: int) -> None:
    """What the data must satisfy for a run of ``cfg`` on ``world`` processes."""
    n = len(data.train_x)
    if cfg.train.batch_size > n:
        raise AAEError(f"option train.batch_size: {cfg.train.batch_size} is larger than the "
                       f"{n} training images")
    if cfg.model.disc_groups > 1 and world > 1:
        raise AAEError("option model.disc_groups: grouped discriminators run in one process; "
                       "under torchrun use disc_groups = 1")
    if cfg.train.batch_size % world:
        raise AAEError(f"option train.batch_size: {cfg.train.batch_size} does not split evenly "
                       f"over {world} processes")
