"""Datasets from local files only (Fashion-MNIST, CIFAR-10/100, synthetic), split and batched.

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

from smashc.runtime.data.batches import Batches, default_pad
from smashc.runtime.data.cifar import CIFAR10_CLASSES as CIFAR10_CLASSES
from smashc.runtime.data.dataset import Dataset, Subset, split
from smashc.runtime.data.dataset import channel_stats as channel_stats
from smashc.runtime.data.idx import FASHION_MNIST_CLASSES as FASHION_MNIST_CLASSES
from smashc.runtime.data.idx import read_idx
from smashc.runtime.data.loading import CIFAR_DIR as CIFAR_DIR
from smashc.runtime.data.loading import DATASETS, FASHION_MNIST_DIR, load

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
