"""Datasets from local files: the public names of the data package."""

from smashc.runtime.data.cifar import CIFAR10_CLASSES as CIFAR10_CLASSES
from smashc.runtime.data.cifar import CIFAR_DIR as CIFAR_DIR
from smashc.runtime.data.cifar import (
    DATASETS,
    FASHION_MNIST_DIR,
    Batches,
    Dataset,
    Subset,
    default_pad,
    load,
    read_idx,
    split,
)
from smashc.runtime.data.cifar import FASHION_MNIST_CLASSES as FASHION_MNIST_CLASSES
from smashc.runtime.data.cifar import channel_stats as channel_stats

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
