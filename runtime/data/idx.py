"""Fashion-MNIST from IDX files (gzipped or plain): the IDX parser and the four-file layout."""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np

from smashc.runtime.data import bounded
from smashc.runtime.data.dataset import Dataset, make_dataset
from smashc.runtime.data.errors import fail

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


# The most bytes an IDX file may hold once gunzipped (Fashion-MNIST's largest: 47 MB); its
# header's dimensions are checked against this before anything is expanded.
MAX_IDX_BYTES = 2**30
_MAX_NDIM = 16
_FORMAT = (
    "expected an IDX file: magic 0x00000801 (labels) or 0x00000803 (images), then one "
    "big-endian uint32 per dimension, then the data"
)


def _read_raw(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise fail("E0701", f"file not found: {path}", path) from None
    except OSError as exc:
        raise fail("E0701", f"cannot read {path}: {exc.strerror or exc}", path) from None


def _gunzip(raw: bytes, path: Path, limit: int, prefix: bool = False) -> bytes:
    try:
        return bounded.gunzip(raw, limit, prefix)
    except (EOFError, zlib.error) as exc:
        raise fail(
            "E0702", f"{path} is not a valid gzip file ({exc}); expected a gzipped IDX file", path
        ) from None


def _header(head: bytes, path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """The dimensions, dtype and header length an IDX file's first bytes ``head`` give."""
    if len(head) < 4:
        raise fail("E0702", f"malformed IDX file {path}: truncated header; {_FORMAT}", path)
    magic = int.from_bytes(head[:4], "big")
    type_code, ndim = head[2], head[3]
    if head[0] != 0 or head[1] != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise fail("E0702", f"malformed IDX file {path}: bad magic 0x{magic:08x}; {_FORMAT}", path)
    if ndim > _MAX_NDIM:
        msg = f"malformed IDX file {path}: {ndim} dimensions, more than {_MAX_NDIM}; {_FORMAT}"
        raise fail("E0702", msg, path)
    header = 4 + 4 * ndim
    if len(head) < header:
        raise fail(
            "E0702",
            f"malformed IDX file {path}: truncated header ({len(head)} bytes, "
            f"{ndim} dimensions need {header}); {_FORMAT}",
            path,
        )
    dims = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return dims, _IDX_DTYPES[type_code], header


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one IDX file (gzipped or plain): magic ``00 00 TYPE NDIM``, NDIM big-endian uint32
    dimensions, then the data, big-endian. Any mismatch is an ``E0702`` naming the file. A
    gzip is expanded no further than its header's dimensions say (at most
    ``MAX_IDX_BYTES``), so a small file cannot ask for gigabytes."""
    path = Path(path)
    raw = _read_raw(path)
    gz = raw[:2] == b"\x1f\x8b"
    head = _gunzip(raw, path, 4 + 4 * 255, prefix=True) if gz else raw[: 4 + 4 * 255]
    dims, dtype, header = _header(head, path)
    shown = "x".join(map(str, dims))
    expected = math.prod(dims) * dtype.itemsize
    if header + expected > MAX_IDX_BYTES:
        raise fail(
            "E0702",
            f"malformed IDX file {path}: dimensions {shown} need {expected:,} bytes of data, "
            f"more than the {MAX_IDX_BYTES:,} a dataset file may hold",
            path,
        )
    try:
        data = _gunzip(raw, path, header + expected) if gz else raw
    except bounded.TooLarge:
        raise fail(
            "E0702",
            f"malformed IDX file {path}: trailing bytes: dimensions {shown} need {expected} "
            "bytes of data, and its gzip expands to more",
            path,
        ) from None
    actual = len(data) - header
    if actual != expected:
        what = "truncated" if actual < expected else "trailing bytes"
        raise fail(
            "E0702",
            f"malformed IDX file {path}: {what}: dimensions {shown} need "
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


def load_fashion_mnist(data_dir: Path) -> Dataset:
    """Fashion-MNIST from ``data_dir`` or its ``fashion-mnist`` subfolder."""
    folder = data_dir
    if not all(_find_idx(folder, b) for b in _FASHION_FILES) and (
        (data_dir / "fashion-mnist").is_dir()
    ):
        folder = data_dir / "fashion-mnist"
    hint = "install the Debian package dataset-fashion-mnist or pass --data-dir"
    expected = ", ".join(f"{b}.gz" for b in _FASHION_FILES)
    if not folder.is_dir():
        what = "is not a directory" if folder.exists() else "does not exist"
        raise fail(
            "E0701",
            f"Fashion-MNIST not found: {folder} {what}; expected {expected} (gzipped or plain) "
            f"in it ({hint})",
            folder,
        )
    paths = {b: _find_idx(folder, b) for b in _FASHION_FILES}
    missing = [b for b, p in paths.items() if p is None]
    if missing:
        raise fail(
            "E0701",
            f"Fashion-MNIST not found: expected {', '.join(m + '.gz' for m in missing)} "
            f"(gzipped or plain) in {folder} ({hint})",
            folder,
        )

    def images(path: Path) -> np.ndarray:
        array = read_idx(path)
        if array.ndim != 3 or array.dtype != np.uint8:
            raise fail(
                "E0702",
                f"malformed Fashion-MNIST images {path}: expected unsigned bytes of N x H x W "
                f"(IDX magic 0x00000803), got {array.dtype} of shape {array.shape}",
                path,
            )
        if len(array) == 0:
            raise fail("E0702", f"malformed Fashion-MNIST images {path}: no images", path)
        return array[:, None, :, :]

    def labels(path: Path, n: int, image_path: Path) -> np.ndarray:
        array = read_idx(path)
        if array.ndim != 1 or array.dtype != np.uint8:
            raise fail(
                "E0702",
                f"malformed Fashion-MNIST labels {path}: expected unsigned bytes of N "
                f"(IDX magic 0x00000801), got {array.dtype} of shape {array.shape}",
                path,
            )
        if len(array) != n:
            raise fail(
                "E0702",
                f"malformed Fashion-MNIST labels {path}: {len(array)} labels for the {n} "
                f"images of {image_path}",
                path,
            )
        if len(array) and int(array.max()) >= len(FASHION_MNIST_CLASSES):
            raise fail(
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
        raise fail(
            "E0702",
            f"malformed Fashion-MNIST images {p[_FASHION_FILES[2]]}: test images are "
            f"{test_x.shape[2]}x{test_x.shape[3]} but training images "
            f"{train_x.shape[2]}x{train_x.shape[3]}",
            p[_FASHION_FILES[2]],  # type: ignore[arg-type]
        )
    return make_dataset(
        "fashion-mnist", (train_x, train_y), (test_x, test_y), FASHION_MNIST_CLASSES, True
    )
