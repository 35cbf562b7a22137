"""CIFAR-10/100 from the "python version" pickle trees, through a numpy-arrays-only unpickler."""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smashc.runtime.data import bounded
from smashc.runtime.data.dataset import Dataset, make_dataset
from smashc.runtime.data.errors import fail

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

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
    """The dict pickled in ``path``, loaded only once ``bounded.check_pickle`` found that
    what it builds stays in proportion to the file (CIFAR-100's train file, the largest,
    is 158 MB)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise fail("E0701", f"cannot read {path}: {exc.strerror or exc}", path) from None
    try:
        bounded.check_pickle(raw)
        obj = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a malformed file
        raise fail(
            "E0702",
            f"malformed {title} file {path}: not a readable pickle ({exc}); expected the "
            f"'python version' of {title}",
            path,
        ) from None
    if not isinstance(obj, dict):
        raise fail(
            "E0702",
            f"malformed {title} file {path}: expected a pickled dict, got {type(obj).__name__}",
            path,
        )
    return obj


def _get(d: dict[Any, Any], key: str) -> Any:
    if key.encode() in d:
        return d[key.encode()]
    return d.get(key)


def load_cifar(key: str, data_dir: Path) -> Dataset:
    """CIFAR ``key`` (``cifar10``/``cifar100``) from ``data_dir``, its extracted tree or parent."""
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
        raise fail(
            "E0701",
            f"{lay.title} not found: expected {lay.folder}/ ({', '.join(files)}, {lay.meta}) "
            f"in {data_dir}; {howto}",
            data_dir,
        )
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise fail(
            "E0701",
            f"{lay.title} incomplete: {', '.join(missing)} missing in {folder}; {howto}",
            folder,
        )

    def batch(name: str) -> tuple[np.ndarray, np.ndarray]:
        path = folder / name
        d = _unpickle(path, lay.title)
        data, labels = _get(d, "data"), _get(d, lay.label_key)
        if data is None or labels is None:
            raise fail(
                "E0702",
                f"malformed {lay.title} file {path}: expected keys 'data' and "
                f"'{lay.label_key}', found {', '.join(sorted(repr(k)[:40] for k in d)) or 'none'}",
                path,
            )
        if not isinstance(data, np.ndarray):  # as CIFAR pickles it; a list would be walked
            raise fail(
                "E0702",
                f"malformed {lay.title} file {path}: 'data' must be a numpy array of uint8 "
                f"(N x 3072), got a {type(data).__name__}",
                path,
            )
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.dtype != np.uint8:
            raise fail(
                "E0702",
                f"malformed {lay.title} file {path}: 'data' must be uint8 of shape N x 3072 "
                f"(3x32x32 images, channel-major), got {data.dtype} of shape {data.shape}",
                path,
            )
        try:
            labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        except (TypeError, ValueError):
            raise fail(
                "E0702",
                f"malformed {lay.title} file {path}: '{lay.label_key}' must be integers",
                path,
            ) from None
        if len(data) == 0:
            raise fail("E0702", f"malformed {lay.title} file {path}: no images", path)
        if len(labels) != len(data):
            raise fail(
                "E0702",
                f"malformed {lay.title} file {path}: {len(labels)} labels for {len(data)} images",
                path,
            )
        if len(labels) and (labels.min() < 0 or labels.max() >= lay.classes):
            raise fail(
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
            raise fail(
                "E0702",
                f"malformed {lay.title} file {meta_path}: expected '{lay.names_key}', a list of "
                f"{lay.classes} class names",
                meta_path,
            )
        if not all(isinstance(n, bytes | str) for n in raw):
            raise fail(
                "E0702",
                f"malformed {lay.title} file {meta_path}: '{lay.names_key}' must be strings",
                meta_path,
            )
        try:
            names = tuple(n.decode() if isinstance(n, bytes) else n for n in raw)
        except UnicodeDecodeError as exc:
            raise fail(
                "E0702",
                f"malformed {lay.title} file {meta_path}: a class name in '{lay.names_key}' "
                f"is not UTF-8 ({exc.reason} at byte {exc.start})",
                meta_path,
            ) from None
    elif key == "cifar10":
        names = CIFAR10_CLASSES
    else:
        names = tuple(str(i) for i in range(lay.classes))
    return make_dataset(key, (train_x, train_y), (test_x, test_y), names, True)
