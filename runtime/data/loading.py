"""Loading a dataset by name: the known names, the default folders and the dispatch."""

from __future__ import annotations

from pathlib import Path

from smashc.runtime.data.cifar import load_cifar
from smashc.runtime.data.dataset import Dataset
from smashc.runtime.data.errors import CMDLINE, fail
from smashc.runtime.data.idx import load_fashion_mnist
from smashc.runtime.data.synthetic import synthetic

DATASETS = ("fashion-mnist", "cifar10", "cifar100", "synthetic")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
# CIFAR has no Debian package; by default look for the extracted trees under here.
CIFAR_DIR = Path("/usr/share/datasets")


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
        return load_fashion_mnist(Path(data_dir) if data_dir is not None else FASHION_MNIST_DIR)
    if key in ("cifar10", "cifar100"):
        return load_cifar(key, Path(data_dir) if data_dir is not None else CIFAR_DIR)
    if key == "synthetic":
        return synthetic(synthetic_size, synthetic_shape)
    raise fail(
        "E0703",
        f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}",
        CMDLINE,
    )
