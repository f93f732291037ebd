"""Datasets as whole tensors.

An AAE on MNIST is small enough that the whole training set fits in memory (60 000 x 784 float32 =
188 MB) and on the training device, so batches are index lookups into one tensor: no ``Dataset``,
no ``DataLoader``, no per-sample Python work.

Sources:

* ``mnist``, ``fashion-mnist``: the standard IDX files (``.gz`` or raw), looked up in ``--data-dir``,
  ``$AAE_DATA_DIR/<name>/``, ``~/.cache/aae/<name>/``, ``/usr/share/datasets/<name>/``; otherwise
  downloaded from the official mirrors, MD5-verified and written atomically into the cache.
* ``digits``: scikit-learn's bundled 8x8 digits, for fully offline runs.
* a path: a ``.npy``/``.npz`` array (N x H x W or N x C x H x W, optional labels) or a folder of
  images (one sub-folder per class, optional), read with Pillow.

Every file is validated by structure, and every fault is an :class:`AAEError` naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import AAEError
from .fileio import atomic_write_bytes

# Official mirrors and the MD5 of each published archive. The files in ../shared/data were
# re-encoded losslessly, so local files are validated by structure, downloads by checksum.
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ],
    "svhn": ["http://ufldl.stanford.edu/housenumbers/"],
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
}
BUILTIN = ("mnist", "fashion-mnist", "colored-mnist", "svhn", "digits")
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
        except (OSError, EOFError, gzip.BadGzipFile) as e:
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
    count = int(np.prod(dims, dtype=np.int64))
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
    MD5-verified download (unless downloads are off); a one-line error naming every folder."""
    dirs = search_dirs(name, data_dir)
    found = next((f for d in dirs if (f := find(d))), None)
    if found is not None:
        return found
    offline = os.environ.get("AAE_OFFLINE", "") not in ("", "0")
    problem = "downloads are off (data.download = false)" if not allow_download else (
        "downloads are off (AAE_OFFLINE is set)" if offline else "")
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
    if a.ndim != 4 or a.shape[0] == 0:
        raise AAEError(f"{where}: expected images shaped N x H x W or N x C x H x W, got {a.shape}")
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
    return torch.from_numpy(a.astype(np.int64))


def _split(name: str, x: torch.Tensor, y: torch.Tensor | None, source: str,
           class_names: list[str] | None = None, test_fraction: float = 0.1) -> ImageData:
    """Hold out a fixed, seed-independent ``test_fraction`` of a user's data (``data.test_fraction``,
    a tenth by default) as the test split."""
    n = len(x)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(1234))
    n_test = max(1, int(round(n * test_fraction))) if n > 1 else 0
    te, tr = perm[:n_test], perm[n_test:]
    pick = lambda t, i: None if t is None else t[i]  # noqa: E731
    return ImageData(name, x[tr], pick(y, tr), x[te], pick(y, te), class_names, source)


def read_array(path: Path, extra: tuple[str, ...] = ()) -> tuple[torch.Tensor, torch.Tensor | None,
                                                                  dict[str, np.ndarray]]:
    """Images, labels (or None) and any ``extra`` named arrays of a .npy/.npz file, in order."""
    try:
        obj = np.load(path, allow_pickle=False)  # never unpickle a user's file
    except ValueError as e:
        raise AAEError(f"{path}: cannot be loaded without pickle ({e}); save plain arrays") from None
    except (OSError, EOFError) as e:
        raise AAEError(f"{path}: not a readable .npy/.npz file ({e})") from None
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


def read_folder(path: Path, size: tuple[int, int] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None, list[str] | None, list[Path]]:
    """Images (in file order), labels and class names (one sub-folder per class, or None), files.
    With ``size`` (H, W) every image is resized to it (antialiased), so a folder of mixed sizes
    loads; without, they must share one size."""
    from PIL import Image, UnidentifiedImageError

    subdirs = sorted(p for p in path.iterdir() if p.is_dir())
    groups = [(d.name, sorted(f for f in d.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES))
              for d in subdirs]
    groups = [(n, fs) for n, fs in groups if fs]
    loose = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if groups and loose:
        raise AAEError(f"{path}: mixes images and class sub-folders; use one or the other")
    if not groups and not loose:
        raise AAEError(f"{path}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    files = [(f, i) for i, (_, fs) in enumerate(groups) for f in fs] or [(f, -1) for f in loose]
    images, first, mode = [], None, None
    for f, _ in files:
        try:
            with Image.open(f) as im:
                im.load()
                m = "L" if im.mode in ("1", "L", "I;16", "I", "F", "LA") else "RGB"
                mode = mode or m
                im = im.convert(mode)
                if size is not None and im.size != (size[1], size[0]):
                    im = im.resize((size[1], size[0]), Image.Resampling.LANCZOS)
                if first is None:
                    first = im.size
                elif im.size != first:
                    raise AAEError(f"{f}: size {im.size[0]}x{im.size[1]} differs from the first "
                                   f"image's {first[0]}x{first[1]}; set data.image_size = [H, W] "
                                   "to resize them on load")
                images.append(np.asarray(im))
        except (UnidentifiedImageError, OSError) as e:
            raise AAEError(f"{f}: not a readable image ({e})") from None
    x = _as_images(np.stack(images), str(path))
    y = torch.tensor([i for _, i in files]) if groups else None
    return x, y, [n for n, _ in groups] if groups else None, [f for f, _ in files]


def _source(dataset: str, data_dir: str | Path | None, allow_download: bool, dc=None) -> ImageData:
    """The dataset by name or path, split into train and test as it comes (files of a user's
    own: ``data.test_fraction`` of them held out)."""
    frac = 0.1 if dc is None else dc.test_fraction
    size = None if dc is None or not dc.image_size else tuple(dc.image_size)
    if dataset in ("mnist", "fashion-mnist"):
        return load_idx_dataset(dataset, data_dir, allow_download)
    if dataset == "colored-mnist":
        return colored_mnist(load_idx_dataset("mnist", data_dir, allow_download))
    if dataset == "svhn":
        return load_svhn(data_dir, allow_download)
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
        x, y, _ = read_array(path)
        return _split(path.stem, x, y, str(path), test_fraction=frac)
    raise AAEError(f"dataset {path}: expected a .npy/.npz file or a folder of images")


def _holdout(data: ImageData, validation: int, limit: int) -> ImageData:
    """Hold the last ``validation`` training images out, then keep the first ``limit``."""
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
    return _holdout(_source(dataset, data_dir, allow_download), validation, limit)


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
    data = _source(dc.dataset, data_dir or dc.data_dir or None, dc.download, dc)
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
