"""Tests of smashc.runtime.data: IDX and CIFAR parsing on tiny files made here, the real
Fashion-MNIST (where the Debian package is installed), splits, and seeded resumable batching."""

from __future__ import annotations

import dataclasses
import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from smashc.diagnostics import SmashError
from smashc.runtime.data import (
    FASHION_MNIST_DIR,
    Batches,
    Dataset,
    Subset,
    channel_stats,
    default_pad,
    load,
    read_idx,
    split,
)

# ---------------------------------------------------------------------------------------------
# helpers


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    array = np.asarray(array)
    dtype = np.dtype(">i4") if array.dtype.kind == "i" and array.itemsize == 4 else array.dtype
    header = bytes([0, 0, codes[dtype], array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    payload = header + array.astype(dtype).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def fake_fashion(folder: Path, n_train: int = 20, n_test: int = 8, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(
            folder / f"{prefix}-images-idx3-ubyte",
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            gz,
        )
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10, gz)
    return folder


def expect_error(code: str, *fragments: object):
    """Context manager: a SmashError with `code` whose message contains every fragment."""

    class _Check:
        def __enter__(self):
            self.raises = pytest.raises(SmashError)
            self.info = self.raises.__enter__()
            return self.info

        def __exit__(self, *exc):
            result = self.raises.__exit__(*exc)
            err = self.info.value
            assert [d.code for d in err.diagnostics] == [code], str(err)
            text = str(err)
            for fragment in fragments:
                assert str(fragment) in text, text
            return result

    return _Check()


def id_dataset(n: int = 103, shape: tuple[int, int, int] = (1, 4, 4), flip: bool = False):
    """A dataset whose label is the example's index and whose images are all distinct."""
    x = torch.randint(0, 256, (n, *shape), generator=torch.Generator().manual_seed(1))
    x = x.to(torch.uint8)
    y = torch.arange(n)
    mean, std = channel_stats(x)
    return Dataset("ids", x, y, x[:5], y[:5], n, tuple(map(str, range(n))), flip, mean, std)


# ---------------------------------------------------------------------------------------------
# IDX / Fashion-MNIST


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path: Path, gz: bool) -> None:
    images = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    path = write_idx(tmp_path / "images", images, gz)
    assert np.array_equal(read_idx(path), images)
    ints = np.array([[1, -2], [300000, 7]], dtype=np.int32)
    path = write_idx(tmp_path / "ints", ints, gz)
    got = read_idx(path)
    assert np.array_equal(got, ints) and got.dtype.isnative


@pytest.mark.parametrize("gz", [False, True])
def test_fashion_from_folder(tmp_path: Path, gz: bool) -> None:
    folder = fake_fashion(tmp_path / "fm", gz=gz)
    ds = load("fashion-mnist", folder)
    assert ds.name == "fashion-mnist" and ds.shape == (1, 28, 28)
    assert ds.train_x.shape == (20, 1, 28, 28) and ds.train_x.dtype == torch.uint8
    assert ds.test_y.tolist() == [i % 10 for i in range(8)] and ds.test_y.dtype == torch.int64
    assert ds.classes == 10 and ds.class_names[0] == "T-shirt/top" and ds.flip
    # the parent of a folder named fashion-mnist works too
    assert torch.equal(load("fashion_mnist", tmp_path / "fm").train_x, ds.train_x)
    folder2 = fake_fashion(tmp_path / "parent" / "fashion-mnist", gz=gz)
    assert len(load("fashion-mnist", folder2.parent).train_y) == 20


def _bad_idx_cases(tmp_path: Path) -> dict[str, tuple[bytes, str]]:
    good = bytes([0, 0, 8, 1]) + (4).to_bytes(4, "big") + bytes(4)
    return {
        "bad_magic": (b"\x12\x34\x08\x01" + good[4:], "bad magic 0x12340801"),
        "bad_type": (bytes([0, 0, 0x42, 1]) + good[4:], "bad magic"),
        "short_header": (b"\x00\x00", "truncated header"),
        "short_dims": (bytes([0, 0, 8, 3]) + (4).to_bytes(4, "big"), "truncated header"),
        "truncated": (good[:-1], "truncated"),
        "trailing": (good + b"\x00", "trailing bytes"),
    }


@pytest.mark.parametrize(
    "case", ["bad_magic", "bad_type", "short_header", "short_dims", "truncated", "trailing"]
)
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_malformed(tmp_path: Path, case: str, gz: bool) -> None:
    payload, fragment = _bad_idx_cases(tmp_path)[case]
    path = tmp_path / ("f.gz" if gz else "f")
    path.write_bytes(gzip.compress(payload) if gz else payload)
    with expect_error("E0702", path, fragment, "IDX") as info:
        read_idx(path)
    assert info.value.diagnostics[0].span.file == str(path)


def test_bad_gzip(tmp_path: Path) -> None:
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(b"\x00" * 100)[:15])
    with expect_error("E0702", path, "gzip"):
        read_idx(path)


def test_fashion_malformed_file_named(tmp_path: Path) -> None:
    folder = fake_fashion(tmp_path / "fm")
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    data = gzip.decompress(labels.read_bytes())
    labels.write_bytes(gzip.compress(data[:-3]))  # truncated
    with expect_error("E0702", labels, "truncated"):
        load("fashion-mnist", folder)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(7, np.uint8), True)  # 7 labels, 8 images
    with expect_error("E0702", labels, "7 labels for the 8 images"):
        load("fashion-mnist", folder)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.full(8, 10, np.uint8), True)
    with expect_error("E0702", labels, "out of range"):
        load("fashion-mnist", folder)
    # labels where images should be: right magic, wrong rank
    write_idx(folder / "train-images-idx3-ubyte", np.zeros(20, np.uint8), True)
    with expect_error("E0702", folder / "train-images-idx3-ubyte.gz", "N x H x W"):
        load("fashion-mnist", folder)


def test_fashion_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with expect_error("E0701", missing, "dataset-fashion-mnist", "--data-dir") as info:
        load("fashion-mnist", missing)
    assert info.value.diagnostics[0].span.file == str(missing)
    folder = fake_fashion(tmp_path / "fm")
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with expect_error("E0701", folder, "t10k-images-idx3-ubyte.gz", "dataset-fashion-mnist"):
        load("fashion-mnist", folder)


def test_unknown_dataset() -> None:
    with expect_error("E0703", "'imagenet'", "fashion-mnist", "cifar10", "synthetic"):
        load("imagenet")


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist() -> None:
    ds = load("fashion-mnist")
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert ds.classes == 10 and len(ds.class_names) == 10
    assert torch.bincount(ds.train_y).tolist() == [6000] * 10
    assert torch.bincount(ds.test_y).tolist() == [1000] * 10
    assert ds.mean[0] == pytest.approx(0.2860, abs=1e-3)
    assert ds.std[0] == pytest.approx(0.3530, abs=1e-3)


# ---------------------------------------------------------------------------------------------
# CIFAR


def _dump(path: Path, obj: object, protocol: int = 2) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def fake_cifar(root: Path, kind: str, n: int = 4, n_test: int = 3) -> Path:
    rng = np.random.default_rng(0)
    if kind == "cifar10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        for i in range(1, 6):
            _dump(
                folder / f"data_batch_{i}",
                {
                    b"batch_label": b"training batch",
                    b"labels": [(i + j) % 10 for j in range(n)],
                    b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                    b"filenames": [b"x.png"] * n,
                },
            )
        _dump(
            folder / "test_batch",
            {b"labels": list(range(n_test)), b"data": np.full((n_test, 3072), 7, np.uint8)},
        )
        _dump(folder / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        for name, m in (("train", n), ("test", n_test)):
            _dump(
                folder / name,
                {
                    "fine_labels": [99 - j for j in range(m)],  # str keys, protocol 4 also work
                    "coarse_labels": [0] * m,
                    "data": rng.integers(0, 256, (m, 3072), dtype=np.uint8),
                },
                protocol=4,
            )
        _dump(
            folder / "meta",
            {b"fine_label_names": [f"f{i}".encode() for i in range(100)]},
        )
    return folder


def test_cifar10_fake(tmp_path: Path) -> None:
    folder = fake_cifar(tmp_path, "cifar10")
    ds = load("cifar10", tmp_path)
    assert ds.shape == (3, 32, 32) and ds.classes == 10 and ds.flip
    assert ds.train_x.shape == (20, 3, 32, 32) and ds.test_x.shape == (3, 3, 32, 32)
    assert ds.train_y[:4].tolist() == [1, 2, 3, 4] and ds.test_y.tolist() == [0, 1, 2]
    assert ds.class_names == tuple(f"c{i}" for i in range(10))
    # channel-major rows: R plane, G plane, B plane, each row-major
    row = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="bytes")[b"data"][0]
    assert ds.train_x[0, 0, 0, 1] == row[1] and ds.train_x[0, 1, 0, 0] == row[1024]
    assert ds.train_x[0, 2, 31, 31] == row[3071] and ds.train_x[0, 0, 1, 0] == row[32]
    # the folder itself works too
    assert torch.equal(load("CIFAR-10", folder).train_x, ds.train_x)


def test_cifar100_fake(tmp_path: Path) -> None:
    folder = fake_cifar(tmp_path, "cifar100")
    for where in (tmp_path, folder):
        ds = load("cifar100", where)
        assert ds.classes == 100 and ds.class_names[99] == "f99"
        assert ds.train_y.tolist() == [99, 98, 97, 96] and len(ds.test_y) == 3


def test_cifar_missing(tmp_path: Path) -> None:
    with expect_error("E0701", tmp_path, "cifar-10-batches-py", "tar xzf", "--data-dir"):
        load("cifar10", tmp_path)
    with expect_error("E0701", tmp_path / "nope", "cifar-100-python.tar.gz"):
        load("cifar100", tmp_path / "nope")
    folder = fake_cifar(tmp_path, "cifar10")
    (folder / "data_batch_3").unlink()
    with expect_error("E0701", folder, "data_batch_3", "tar xzf"):
        load("cifar10", tmp_path)


def test_cifar_without_meta_uses_standard_names(tmp_path: Path) -> None:
    folder = fake_cifar(tmp_path, "cifar10")
    (folder / "batches.meta").unlink()
    assert load("cifar10", folder).class_names[0] == "airplane"


@pytest.mark.parametrize(
    "obj, fragment",
    [
        ({b"data": np.zeros((2, 3072), np.uint8)}, "expected keys 'data' and 'labels'"),
        ({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}, "N x 3072"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "1 labels for 2 images"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "out of range"),
        ([1, 2, 3], "expected a pickled dict"),
    ],
)
def test_cifar_malformed(tmp_path: Path, obj: object, fragment: str) -> None:
    folder = fake_cifar(tmp_path, "cifar10")
    _dump(folder / "data_batch_2", obj)
    with expect_error("E0702", folder / "data_batch_2", fragment):
        load("cifar10", tmp_path)


def test_cifar_not_a_pickle_and_unsafe_pickle(tmp_path: Path) -> None:
    folder = fake_cifar(tmp_path, "cifar10")
    (folder / "test_batch").write_bytes(b"not a pickle at all")
    with expect_error("E0702", folder / "test_batch", "not a readable pickle"):
        load("cifar10", tmp_path)
    marker = tmp_path / "pwned"
    (folder / "test_batch").write_bytes(
        pickle.dumps(_Evil(str(marker)), protocol=2)
    )  # would run os.system if unpickled naively
    with expect_error("E0702", folder / "test_batch", "refusing to load"):
        load("cifar10", tmp_path)
    assert not marker.exists()


class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


# ---------------------------------------------------------------------------------------------
# synthetic


def test_synthetic_deterministic_and_sized() -> None:
    a, b = load("synthetic", synthetic_size=100), load("synthetic", synthetic_size=100)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert a.train_x.shape == (100, 3, 16, 16) and len(a.test_y) == 25
    assert a.classes == 10 and len(a.class_names) == 10 and not a.flip
    assert torch.bincount(a.train_y, minlength=10).tolist() == [10] * 10
    c = load("synthetic", synthetic_size=8, synthetic_shape=(1, 12, 12))
    assert c.shape == (1, 12, 12) and len(c.test_y) == 2


def test_synthetic_classes_recoverable() -> None:
    """Colour (channel means) plus stripe orientation (which axis varies) give the class."""
    ds = load("synthetic", synthetic_size=200)
    x = ds.train_x.to(torch.float32)
    horizontal_var = x.mean(dim=3).var(dim=2).sum(1)  # rows differ: horizontal stripes
    vertical_var = x.mean(dim=2).var(dim=2).sum(1)
    orientation = (vertical_var > horizontal_var).long()
    colour = x.mean(dim=(2, 3))
    predicted_colour = torch.cdist(colour, torch.stack([colour[ds.train_y % 5 == k].mean(0)
                                                        for k in range(5)])).argmin(1)  # fmt: skip
    assert torch.equal(orientation * 5 + predicted_colour, ds.train_y)


def test_bad_options() -> None:
    with expect_error("E0704", "synthetic dataset size"):
        load("synthetic", synthetic_size=0)
    ds = load("synthetic", synthetic_size=20)
    with expect_error("E0704", "validation size", "0..19"):
        split(ds, 20, 0)
    with expect_error("E0704", "batch size"):
        Batches(ds, ds.train, 0)


# ---------------------------------------------------------------------------------------------
# split


def test_split_reproducible_disjoint() -> None:
    ds = id_dataset(103)
    train, val = split(ds, 30, seed=7)
    again_train, again_val = split(ds, 30, seed=7)
    assert torch.equal(train.y, again_train.y) and torch.equal(val.y, again_val.y)
    assert len(train) == 73 and len(val) == 30
    ids = set(train.y.tolist())
    assert not ids & set(val.y.tolist()) and ids | set(val.y.tolist()) == set(range(103))
    assert torch.equal(train.x, ds.train_x[train.y])  # images stay with their labels
    assert train.y.tolist() == sorted(train.y.tolist())  # original order kept
    assert val.y.tolist() != list(range(73, 103))  # a random choice, not the last ones
    assert not torch.equal(split(ds, 30, seed=8)[1].y, val.y)
    assert len(split(ds, 0, seed=0)[1]) == 0


# ---------------------------------------------------------------------------------------------
# Batches


def _epoch(b: Batches, e: int, start: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(b.epoch(e, start=start))


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("augment", [False, True])
def test_batches_deterministic_and_resumable(augment: bool) -> None:
    ds = id_dataset(103, (3, 8, 8), flip=True)
    make = lambda seed: Batches(ds, ds.train, 10, seed, augment=augment)  # noqa: E731
    b = make(3)
    assert len(b) == 11
    e0, e1 = _epoch(b, 0), _epoch(b, 1)
    assert _same(e0, _epoch(make(3), 0)) and _same(e1, _epoch(make(3), 1))
    assert not _same(e0, e1) and not _same(e0, _epoch(make(4), 0))
    # every example exactly once per epoch, last batch short
    assert sorted(torch.cat([y for _, y in e0]).tolist()) == list(range(103))
    assert [len(y) for _, y in e0] == [10] * 10 + [3]
    for k in (0, 1, 5, 10, 11):
        assert _same(_epoch(make(3), 0, start=k), e0[k:])
    # epoch e does not depend on which epochs ran before
    fresh = make(3)
    assert _same(_epoch(fresh, 1), e1)
    with pytest.raises(ValueError):
        b.epoch(0, start=12)


def test_batches_drop_last_and_no_shuffle() -> None:
    ds = id_dataset(103)
    b = Batches(ds, ds.train, 10, 0, drop_last=True)
    batches = _epoch(b, 0)
    assert len(b) == len(batches) == 10 and all(len(y) == 10 for _, y in batches)
    ordered = Batches(ds, ds.train, 25, 0, shuffle=False)
    assert torch.cat([y for _, y in _epoch(ordered, 4)]).tolist() == list(range(103))


def test_normalisation() -> None:
    ds = load("synthetic", synthetic_size=64)
    mean = np.asarray(ds.train_x, dtype=np.float64).mean(axis=(0, 2, 3)) / 255
    std = np.asarray(ds.train_x, dtype=np.float64).std(axis=(0, 2, 3)) / 255
    assert np.allclose(ds.mean, mean) and np.allclose(ds.std, std)
    (x, y), = _epoch(Batches(ds, ds.train, 64, 0, shuffle=False), 0)  # fmt: skip
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (64, 3, 16, 16)
    m = torch.tensor(ds.mean).view(1, 3, 1, 1)
    s = torch.tensor(ds.std).view(1, 3, 1, 1)
    assert torch.allclose(x * s + m, ds.train_x.float() / 255, atol=1e-6)
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(x.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-5)


def _raw(b: Batches, batch: torch.Tensor) -> torch.Tensor:
    """Undo the normalisation: back to 0..255 pixel values."""
    c = batch.shape[1]
    m = torch.tensor(b.ds.mean).view(1, c, 1, 1)
    s = torch.tensor(b.ds.std).view(1, c, 1, 1)
    return ((batch * s + m) * 255).round()


@pytest.mark.parametrize("flip", [False, True])
def test_augmentation_crops_and_flips_only_when_allowed(flip: bool) -> None:
    base = id_dataset(64, (2, 6, 6))
    ds = dataclasses.replace(base, flip=flip)
    b = Batches(ds, ds.train, 64, 5, shuffle=False, augment=True, pad=2)
    (x, y), = _epoch(b, 0)  # fmt: skip
    assert x.shape == (64, 2, 6, 6)
    x = _raw(b, x)
    padded = torch.nn.functional.pad(ds.train_x.float(), (2, 2, 2, 2))
    flipped = shifted = 0
    for i in range(64):
        found = None
        for dy in range(5):
            for dx in range(5):
                crop = padded[i, :, dy : dy + 6, dx : dx + 6]
                if torch.equal(x[i], crop):
                    found = (dy, dx, False)
                elif torch.equal(x[i], crop.flip(-1)):
                    found = (dy, dx, True)
        assert found is not None, i
        flipped += found[2]
        shifted += found[:2] != (2, 2)
    assert shifted > 40
    if flip:
        assert 15 < flipped < 49
    else:
        assert flipped == 0
    # pad=0, no flip: augmentation is the identity
    plain = Batches(base, base.train, 64, 5, shuffle=False, augment=True, pad=0)
    assert torch.equal(_raw(plain, _epoch(plain, 0)[0][0]), base.train_x.float())


def test_default_pad() -> None:
    assert default_pad((3, 32, 32)) == 4 and default_pad((1, 28, 28)) == 2
    assert default_pad((3, 16, 16)) == 2


def test_subset_len_and_device() -> None:
    ds = load("synthetic", synthetic_size=16)
    assert len(Subset(ds.train_x, ds.train_y)) == 16 == len(ds.train)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        b = Batches(ds, ds.train, 8, 0, augment=True, device=device)
        x, y = next(b.epoch(0))
        assert x.device.type == y.device.type == torch.device(device).type
