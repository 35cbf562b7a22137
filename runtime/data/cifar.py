"""Datasets from local files only: Fashion-MNIST, CIFAR-10/100, synthetic; splits, augmentation,
seeded resumable batching.

Nothing is ever downloaded. Fashion-MNIST is read from the IDX files of the Debian package
``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``) or any folder holding the same
four files, gzipped or plain. CIFAR-10/100 are read from the standard "python version" pickle
trees (``cifar-10-batches-py/``, ``cifar-100-python/``) that the user extracts themselves.
``synthetic`` is a tiny deterministic dataset that needs no files, for tests and smoke runs.

Every image tensor is ``uint8`` of shape ``N x C x H x W``, every label tensor ``int64`` of
shape ``N``. :class:`Batches` turns a :class:`Subset` into float32 mini-batches normalised with
the dataset's per-channel mean/std, optionally shuffled and augmented (random crop with zero
padding, plus a horizontal flip where the dataset allows it). All randomness of epoch ``e`` comes
from one ``torch.Generator`` seeded from ``(seed, e)`` and is drawn up front, so epoch ``e`` is the
same in every run and a run resumed at batch ``k`` sees exactly the remaining batches.

User errors are :class:`~smashc.diagnostics.SmashError` s with codes

* ``E0701``: a dataset file or folder is missing;
* ``E0702``: a dataset file is malformed (bad magic, truncated, wrong shape, bad pickle...);
* ``E0703``: unknown dataset name;
* ``E0704``: an invalid data option (synthetic size, validation size, batch size).
"""

from __future__ import annotations

import gzip
import math
import pickle
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from smashc.diagnostics import SmashError, Span, error

__all__ = [
    "DATASETS",
    "FASHION_MNIST_DIR",
    "Batches",
    "Dataset",
    "Subset",
    "default_pad",
    "load",
    "read_idx",
    "split",
]

DATASETS = ("fashion-mnist", "cifar10", "cifar100", "synthetic")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
# CIFAR has no Debian package; by default look for the extracted trees under here.
CIFAR_DIR = Path("/usr/share/datasets")

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

_CMDLINE = "<command line>"


def _fail(code: str, message: str, where: str | Path) -> SmashError:
    return SmashError([error(code, message, Span(str(where), 1, 1, 1, 1))])


# --------------------------------------------------------------------------------------------
# Dataset, Subset


@dataclass(frozen=True, eq=False)
class Subset:
    """Some images (``uint8 N x C x H x W``) with their labels (``int64 N``)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True, eq=False)
class Dataset:
    """A whole dataset in memory. ``mean``/``std`` are per channel, over ``train_x / 255``."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: int
    class_names: tuple[str, ...]
    flip: bool
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.train_x.shape[1:]
        return (int(c), int(h), int(w))

    @property
    def train(self) -> Subset:
        return Subset(self.train_x, self.train_y)

    @property
    def test(self) -> Subset:
        return Subset(self.test_x, self.test_y)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.train_y)}, test={len(self.test_y)}, "
            f"shape={self.shape}, classes={self.classes})"
        )


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and (population) std of ``uint8 x / 255``, via histograms."""
    values = torch.arange(256, dtype=torch.float64)
    means, stds = [], []
    for c in range(x.shape[1]):
        counts = torch.bincount(x[:, c].reshape(-1), minlength=256).to(torch.float64)
        n = counts.sum()
        mean = (counts * values).sum() / n
        var = (counts * (values - mean) ** 2).sum() / n
        means.append(float(mean) / 255.0)
        stds.append(max(math.sqrt(float(var)) / 255.0, 1e-6))
    return tuple(means), tuple(stds)


def _make(
    name: str,
    train: tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor],
    test: tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor],
    class_names: Sequence[str],
    flip: bool,
) -> Dataset:
    def tensors(x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x)
        y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
        return x.to(torch.uint8).contiguous(), y.to(torch.int64).contiguous()

    train_x, train_y = tensors(*train)
    test_x, test_y = tensors(*test)
    mean, std = channel_stats(train_x)
    return Dataset(
        name=name,
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        classes=len(class_names),
        class_names=tuple(class_names),
        flip=flip,
        mean=mean,
        std=std,
    )


# --------------------------------------------------------------------------------------------
# load


def load(
    name: str,
    data_dir: str | Path | None = None,
    synthetic_size: int = 512,
    *,
    synthetic_shape: tuple[int, int, int] = (3, 16, 16),
) -> Dataset:
    """Load dataset ``name`` (one of :data:`DATASETS`) from local files.

    ``data_dir`` defaults to ``/usr/share/datasets/fashion-mnist`` for Fashion-MNIST and to
    ``/usr/share/datasets`` for CIFAR; for CIFAR it may be the extracted folder itself
    (``cifar-10-batches-py``/``cifar-100-python``) or its parent. ``synthetic`` ignores it and
    makes ``synthetic_size`` training and ``max(1, synthetic_size // 4)`` test images of
    ``synthetic_shape``.
    """
    key = name.strip().lower().replace("_", "-")
    key = {"fashion": "fashion-mnist", "fmnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
           "cifar-10": "cifar10", "cifar-100": "cifar100"}.get(key, key)  # fmt: skip
    if key == "fashion-mnist":
        return _load_fashion_mnist(Path(data_dir) if data_dir is not None else FASHION_MNIST_DIR)
    if key in ("cifar10", "cifar100"):
        return _load_cifar(key, Path(data_dir) if data_dir is not None else CIFAR_DIR)
    if key == "synthetic":
        return _synthetic(synthetic_size, synthetic_shape)
    raise _fail(
        "E0703",
        f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}",
        _CMDLINE,
    )


# --------------------------------------------------------------------------------------------
# IDX (Fashion-MNIST)

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped if it starts with the gzip magic (whatever its name)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _fail("E0701", f"file not found: {path}", path) from None
    except OSError as exc:
        raise _fail("E0701", f"cannot read {path}: {exc.strerror or exc}", path) from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise _fail(
                "E0702",
                f"{path} is not a valid gzip file ({exc}); expected a gzipped IDX file",
                path,
            ) from None
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one IDX file (gzipped or plain): magic ``00 00 TYPE NDIM``, NDIM big-endian uint32
    dimensions, then the data, big-endian. Any mismatch is an ``E0702`` naming the file."""
    path = Path(path)
    data = _read_bytes(path)
    fmt = (
        "expected an IDX file: magic 0x00000801 (labels) or 0x00000803 (images), then one "
        "big-endian uint32 per dimension, then the data"
    )
    if len(data) < 4:
        raise _fail("E0702", f"malformed IDX file {path}: truncated header; {fmt}", path)
    magic = int.from_bytes(data[:4], "big")
    type_code, ndim = data[2], data[3]
    if data[0] != 0 or data[1] != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise _fail("E0702", f"malformed IDX file {path}: bad magic 0x{magic:08x}; {fmt}", path)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise _fail(
            "E0702",
            f"malformed IDX file {path}: truncated header ({len(data)} bytes, "
            f"{ndim} dimensions need {header}); {fmt}",
            path,
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[type_code]
    expected = math.prod(dims) * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        what = "truncated" if actual < expected else "trailing bytes"
        raise _fail(
            "E0702",
            f"malformed IDX file {path}: {what}: dimensions {'x'.join(map(str, dims))} need "
            f"{expected} bytes of data, found {actual}",
            path,
        )
    array = np.frombuffer(data, dtype=dtype, offset=header, count=math.prod(dims))
    return array.reshape(dims).astype(dtype.newbyteorder("="), copy=True)


_FASHION_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _find_idx(folder: Path, base: str) -> Path | None:
    dotted = base.replace("-idx", ".idx")  # the Kaggle/torchvision-style spelling
    for candidate in (f"{base}.gz", base, f"{dotted}.gz", dotted):
        path = folder / candidate
        if path.is_file():
            return path
    return None


def _load_fashion_mnist(data_dir: Path) -> Dataset:
    folder = data_dir
    if not all(_find_idx(folder, b) for b in _FASHION_FILES) and (
        (data_dir / "fashion-mnist").is_dir()
    ):
        folder = data_dir / "fashion-mnist"
    hint = "install the Debian package dataset-fashion-mnist or pass --data-dir"
    expected = ", ".join(f"{b}.gz" for b in _FASHION_FILES)
    if not folder.is_dir():
        what = "is not a directory" if folder.exists() else "does not exist"
        raise _fail(
            "E0701",
            f"Fashion-MNIST not found: {folder} {what}; expected {expected} (gzipped or plain) "
            f"in it ({hint})",
            folder,
        )
    paths = {b: _find_idx(folder, b) for b in _FASHION_FILES}
    missing = [b for b, p in paths.items() if p is None]
    if missing:
        raise _fail(
            "E0701",
            f"Fashion-MNIST not found: expected {', '.join(m + '.gz' for m in missing)} "
            f"(gzipped or plain) in {folder} ({hint})",
            folder,
        )

    def images(path: Path) -> np.ndarray:
        array = read_idx(path)
        if array.ndim != 3 or array.dtype != np.uint8:
            raise _fail(
                "E0702",
                f"malformed Fashion-MNIST images {path}: expected unsigned bytes of N x H x W "
                f"(IDX magic 0x00000803), got {array.dtype} of shape {array.shape}",
                path,
            )
        return array[:, None, :, :]

    def labels(path: Path, n: int, image_path: Path) -> np.ndarray:
        array = read_idx(path)
        if array.ndim != 1 or array.dtype != np.uint8:
            raise _fail(
                "E0702",
                f"malformed Fashion-MNIST labels {path}: expected unsigned bytes of N "
                f"(IDX magic 0x00000801), got {array.dtype} of shape {array.shape}",
                path,
            )
        if len(array) != n:
            raise _fail(
                "E0702",
                f"malformed Fashion-MNIST labels {path}: {len(array)} labels for the {n} "
                f"images of {image_path}",
                path,
            )
        if len(array) and int(array.max()) >= len(FASHION_MNIST_CLASSES):
            raise _fail(
                "E0702",
                f"malformed Fashion-MNIST labels {path}: label {int(array.max())} out of range "
                f"0..{len(FASHION_MNIST_CLASSES) - 1}",
                path,
            )
        return array

    p = paths
    train_x = images(p[_FASHION_FILES[0]])  # type: ignore[arg-type]
    train_y = labels(p[_FASHION_FILES[1]], len(train_x), p[_FASHION_FILES[0]])  # type: ignore[arg-type]
    test_x = images(p[_FASHION_FILES[2]])  # type: ignore[arg-type]
    test_y = labels(p[_FASHION_FILES[3]], len(test_x), p[_FASHION_FILES[2]])  # type: ignore[arg-type]
    if train_x.shape[1:] != test_x.shape[1:]:
        raise _fail(
            "E0702",
            f"malformed Fashion-MNIST images {p[_FASHION_FILES[2]]}: test images are "
            f"{test_x.shape[2]}x{test_x.shape[3]} but training images "
            f"{train_x.shape[2]}x{train_x.shape[3]}",
            p[_FASHION_FILES[2]],  # type: ignore[arg-type]
        )
    return _make("fashion-mnist", (train_x, train_y), (test_x, test_y), FASHION_MNIST_CLASSES, True)


# --------------------------------------------------------------------------------------------
# CIFAR

# What a CIFAR "python version" pickle may reference: numpy arrays (as pickled by numpy 1 and 2)
# and the bytes helper of protocol-2 pickles written by Python 3. Nothing else is ever loaded.
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


@dataclass(frozen=True)
class _CifarLayout:
    title: str
    folder: str
    train: tuple[str, ...]
    test: str
    meta: str
    label_key: str
    names_key: str
    classes: int
    archive: str


_CIFAR = {
    "cifar10": _CifarLayout(
        "CIFAR-10", "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test_batch", "batches.meta", "labels", "label_names", 10, "cifar-10-python.tar.gz",
    ),
    "cifar100": _CifarLayout(
        "CIFAR-100", "cifar-100-python", ("train",), "test", "meta", "fine_labels",
        "fine_label_names", 100, "cifar-100-python.tar.gz",
    ),
}  # fmt: skip


def _unpickle(path: Path, title: str) -> dict[Any, Any]:
    try:
        with path.open("rb") as f:
            obj = _SafeUnpickler(f, encoding="bytes").load()
    except OSError as exc:
        raise _fail("E0701", f"cannot read {path}: {exc.strerror or exc}", path) from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a malformed file
        raise _fail(
            "E0702",
            f"malformed {title} file {path}: not a readable pickle ({exc}); expected the "
            f"'python version' of {title}",
            path,
        ) from None
    if not isinstance(obj, dict):
        raise _fail(
            "E0702",
            f"malformed {title} file {path}: expected a pickled dict, got {type(obj).__name__}",
            path,
        )
    return obj


def _get(d: dict[Any, Any], key: str) -> Any:
    if key.encode() in d:
        return d[key.encode()]
    return d.get(key)


def _load_cifar(key: str, data_dir: Path) -> Dataset:
    lay = _CIFAR[key]
    files = (*lay.train, lay.test)
    howto = (
        f"smashc does not download datasets: get {lay.archive} (the 'python version' from "
        f"https://www.cs.toronto.edu/~kriz/cifar.html), extract it with "
        f"`tar xzf {lay.archive}` and pass --data-dir pointing at {lay.folder} or its parent"
    )
    if (data_dir / lay.folder).is_dir():
        folder = data_dir / lay.folder
    elif data_dir.is_dir() and any((data_dir / f).exists() for f in (*files, lay.meta)):
        folder = data_dir
    else:
        raise _fail(
            "E0701",
            f"{lay.title} not found: expected {lay.folder}/ ({', '.join(files)}, {lay.meta}) "
            f"in {data_dir}; {howto}",
            data_dir,
        )
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise _fail(
            "E0701",
            f"{lay.title} incomplete: {', '.join(missing)} missing in {folder}; {howto}",
            folder,
        )

    def batch(name: str) -> tuple[np.ndarray, np.ndarray]:
        path = folder / name
        d = _unpickle(path, lay.title)
        data, labels = _get(d, "data"), _get(d, lay.label_key)
        if data is None or labels is None:
            raise _fail(
                "E0702",
                f"malformed {lay.title} file {path}: expected keys 'data' and "
                f"'{lay.label_key}', found {', '.join(sorted(repr(k) for k in d)) or 'none'}",
                path,
            )
        data = np.asarray(data)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.dtype != np.uint8:
            raise _fail(
                "E0702",
                f"malformed {lay.title} file {path}: 'data' must be uint8 of shape N x 3072 "
                f"(3x32x32 images, channel-major), got {data.dtype} of shape {data.shape}",
                path,
            )
        try:
            labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        except (TypeError, ValueError):
            raise _fail(
                "E0702",
                f"malformed {lay.title} file {path}: '{lay.label_key}' must be integers",
                path,
            ) from None
        if len(labels) != len(data):
            raise _fail(
                "E0702",
                f"malformed {lay.title} file {path}: {len(labels)} labels for {len(data)} images",
                path,
            )
        if len(labels) and (labels.min() < 0 or labels.max() >= lay.classes):
            raise _fail(
                "E0702",
                f"malformed {lay.title} file {path}: label {int(labels.max())} out of range "
                f"0..{lay.classes - 1}",
                path,
            )
        return data.reshape(-1, 3, 32, 32), labels

    train = [batch(f) for f in lay.train]
    train_x = np.concatenate([x for x, _ in train])
    train_y = np.concatenate([y for _, y in train])
    test_x, test_y = batch(lay.test)

    names: tuple[str, ...]
    meta_path = folder / lay.meta
    if meta_path.is_file():
        meta = _unpickle(meta_path, lay.title)
        raw = _get(meta, lay.names_key)
        if not isinstance(raw, (list, tuple)) or len(raw) != lay.classes:
            raise _fail(
                "E0702",
                f"malformed {lay.title} file {meta_path}: expected '{lay.names_key}', a list of "
                f"{lay.classes} class names",
                meta_path,
            )
        names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in raw)
    elif key == "cifar10":
        names = CIFAR10_CLASSES
    else:
        names = tuple(str(i) for i in range(lay.classes))
    return _make(key, (train_x, train_y), (test_x, test_y), names, True)


# --------------------------------------------------------------------------------------------
# synthetic

_PALETTE = ((255, 40, 40), (40, 255, 40), (40, 40, 255), (255, 255, 40), (40, 255, 255))
_COLOUR_NAMES = ("red", "green", "blue", "yellow", "cyan")
_LEVELS = (80, 120, 160, 200, 240)


def _seed_from(*words: int) -> int:
    """A well-mixed 63-bit seed from some integers (negative ones are taken modulo 2**64)."""
    state = np.random.SeedSequence([w % 2**64 for w in words]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def _synthetic(size: int, shape: tuple[int, int, int]) -> Dataset:
    """Ten classes = 5 colours x 2 stripe orientations (horizontal for 0-4, vertical for 5-9).

    Each image is dim noise plus stripes of period 4 with a random phase in the class colour at
    a random brightness, so the class survives crops, flips and shifts and a small conv net
    learns it in a few hundred steps. Always the same images (fixed seed).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise _fail("E0704", f"synthetic dataset size must be a positive integer, got {size!r}",
                    _CMDLINE)  # fmt: skip
    c, h, w = (int(v) for v in shape)
    if c < 1 or h < 4 or w < 4:
        raise _fail("E0704", f"synthetic image shape must be C x H x W with C >= 1 and H, W >= 4, "
                    f"got {tuple(shape)}", _CMDLINE)  # fmt: skip
    if c == 3:
        colours = torch.tensor(_PALETTE, dtype=torch.float32)
        colour_names = _COLOUR_NAMES
    else:
        colours = torch.tensor(
            [[_LEVELS[(k + j) % 5] for j in range(c)] for k in range(5)], dtype=torch.float32
        )
        colour_names = tuple(f"level{k}" for k in range(5))
    names = tuple(f"{n}-{o}" for o in ("horizontal", "vertical") for n in colour_names)

    def make(n: int, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(_seed_from(0x5E7, stream))
        y = (torch.arange(n) % 10)[torch.randperm(n, generator=gen)]
        phase = torch.randint(0, 4, (n, 1, 1), generator=gen)
        rows = torch.arange(h).view(1, h, 1)
        cols = torch.arange(w).view(1, 1, w)
        vertical = (y >= 5).view(n, 1, 1)
        coord = torch.where(vertical, cols.expand(n, h, w), rows.expand(n, h, w))
        on = (((coord + phase) % 4) < 2).to(torch.float32).unsqueeze(1)  # n x 1 x h x w
        bright = 0.85 + 0.15 * torch.rand(n, 1, 1, 1, generator=gen)
        colour = colours[y % 5].view(n, c, 1, 1)
        noise = 40.0 * torch.rand(n, c, h, w, generator=gen)
        x = (noise + on * colour * bright).clamp(0, 255).round().to(torch.uint8)
        return x, y

    return _make("synthetic", make(size, 1), make(max(1, size // 4), 2), names, False)


# --------------------------------------------------------------------------------------------
# split


def split(ds: Dataset, val_size: int, seed: int) -> tuple[Subset, Subset]:
    """``(train, val)``: hold out ``val_size`` training examples chosen by a seeded random
    permutation (``torch.randperm`` on a generator seeded from ``seed``), so the same seed always
    gives the same split. Each part keeps the original order of its examples. ``val_size == 0``
    gives an empty validation set."""
    n = len(ds.train_y)
    if isinstance(val_size, bool) or not isinstance(val_size, int) or not 0 <= val_size < n:
        raise _fail(
            "E0704",
            f"validation size must be an integer in 0..{n - 1} for {ds.name} "
            f"({n} training images), got {val_size!r}",
            _CMDLINE,
        )
    gen = torch.Generator().manual_seed(_seed_from(seed, 0x5B117))
    perm = torch.randperm(n, generator=gen)
    val_idx = perm[:val_size].sort().values
    train_idx = perm[val_size:].sort().values
    return (
        Subset(ds.train_x[train_idx], ds.train_y[train_idx]),
        Subset(ds.train_x[val_idx], ds.train_y[val_idx]),
    )


# --------------------------------------------------------------------------------------------
# batching


def default_pad(shape: tuple[int, int, int]) -> int:
    """Crop padding: 4 for 32x32 and larger images (CIFAR), 2 below (28x28 Fashion-MNIST)."""
    return 4 if min(shape[1], shape[2]) >= 32 else 2


class Batches:
    """Seeded, resumable mini-batches ``(x, y)`` of a :class:`Subset`.

    ``x`` is float32 ``B x C x H x W``, ``(x / 255 - mean) / std`` with the dataset's stats, ``y``
    int64, both on ``device``. With ``shuffle`` each epoch visits the examples in a fresh random
    order; with ``augment`` each image is zero-padded by ``pad`` pixels (raw 0, i.e. black,
    before normalisation), randomly cropped back to ``H x W`` and, when ``ds.flip``, flipped
    horizontally with probability 1/2.

    All of epoch ``e``'s randomness (order, crop offsets, flips) is drawn up front from a
    ``torch.Generator`` seeded from ``(seed, e)``: epoch ``e`` is identical in every run, and
    ``epoch(e, start=k)`` yields exactly the batches ``k, k+1, ...`` of an uninterrupted epoch.
    """

    def __init__(
        self,
        ds: Dataset,
        data: Subset,
        batch_size: int,
        seed: int = 0,
        *,
        shuffle: bool = True,
        augment: bool = False,
        drop_last: bool = False,
        pad: int | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise _fail("E0704", f"batch size must be a positive integer, got {batch_size!r}",
                        _CMDLINE)  # fmt: skip
        if data.x.shape[1:] != ds.train_x.shape[1:]:
            raise ValueError(f"subset images {tuple(data.x.shape[1:])} do not match {ds.shape}")
        self.ds = ds
        self.data = data
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.augment = augment
        self.drop_last = drop_last
        self.pad = default_pad(ds.shape) if pad is None else int(pad)
        if self.pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        c = ds.shape[0]
        self._mean = torch.tensor(ds.mean, dtype=torch.float32, device=self.device).view(1, c, 1, 1)
        self._std = torch.tensor(ds.std, dtype=torch.float32, device=self.device).view(1, c, 1, 1)

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def examples(self) -> int:
        """How many examples one epoch yields (fewer than the subset with ``drop_last``)."""
        return min(len(self.data), len(self) * self.batch_size)

    def epoch(self, e: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of epoch ``e`` (>= 0) from batch ``start`` (0 <= start <= len) on."""
        if e < 0:
            raise ValueError(f"epoch must be >= 0, got {e}")
        if not 0 <= start <= len(self):
            raise ValueError(f"start must be in 0..{len(self)}, got {start}")
        n = len(self.data)
        gen = torch.Generator().manual_seed(_seed_from(self.seed, e, 0xBA7C4))
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        offsets = flips = None
        if self.augment:
            offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=gen)
            if self.ds.flip:
                flips = torch.rand(n, generator=gen) < 0.5
        return self._iterate(order, offsets, flips, start)

    def _iterate(
        self,
        order: torch.Tensor,
        offsets: torch.Tensor | None,
        flips: torch.Tensor | None,
        start: int,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        b = self.batch_size
        for i in range(start, len(self)):
            pos = slice(i * b, min((i + 1) * b, len(order)))
            idx = order[pos]
            x = self.data.x[idx]
            y = self.data.y[idx]
            if offsets is not None:
                x = self._crop(x, offsets[pos])
            if flips is not None:
                f = flips[pos]
                x = torch.where(f.view(-1, 1, 1, 1), x.flip(-1), x)
            x = x.to(self.device, non_blocking=True).to(torch.float32).div_(255.0)
            x = x.sub_(self._mean).div_(self._std)
            yield x, y.to(self.device, non_blocking=True)

    def _crop(self, x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        p = self.pad
        if p == 0:
            return x
        n, c, h, w = x.shape
        padded = torch.nn.functional.pad(x, (p, p, p, p))  # zeros
        rows = (offsets[:, 0:1] + torch.arange(h)).view(n, 1, h, 1)
        cols = (offsets[:, 1:2] + torch.arange(w)).view(n, 1, 1, w)
        return padded[
            torch.arange(n).view(n, 1, 1, 1), torch.arange(c).view(1, c, 1, 1), rows, cols
        ]
