"""Dataset loaders on small files the tests write in each real format, and on the real Fashion-MNIST."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from sweetspot.config import DataConfig
from sweetspot.core.datasets import DEBIAN_FASHION_MNIST, load_cifar10, load_mnist_family
from sweetspot.core.splits import load_splits
from sweetspot.errors import DataError


def write_idx(path: Path, array: np.ndarray, packed: bool = False) -> Path:
    """An IDX file of unsigned bytes, as the MNIST family ships them."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = header + array.astype(np.uint8).tobytes()
    if packed:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_mnist(folder: Path, n_train: int = 60, n_test: int = 20, packed: bool = False, image=(28, 28)) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, *image)), packed)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, packed)


def write_cifar(folder: Path, per_batch: int = 10, columns: int = 3072) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            "data": rng.integers(0, 256, (per_batch, columns), dtype=np.uint8),
            "labels": list(np.arange(per_batch) % 10),
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))


def test_mnist_loads_from_torchvisions_layout(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw")
    raw = load_mnist_family("mnist", "MNIST", str(tmp_path), download=False)
    assert raw.x_train.shape == (60, 1, 28, 28) and raw.x_test.shape == (20, 1, 28, 28)
    assert raw.x_train.dtype == np.uint8  # bytes as the files hold them: a quarter of float32
    assert raw.y_train.tolist() == [i % 10 for i in range(60)]


def test_fashion_mnist_loads_gzipped_idx_files(tmp_path):
    write_mnist(tmp_path, packed=True)  # as Debian's package and the original site ship them
    raw = load_mnist_family("fashion-mnist", "FashionMNIST", str(tmp_path), download=False)
    assert raw.x_train.shape == (60, 1, 28, 28) and raw.y_test.shape == (20,)


def test_a_worker_starting_while_another_unpacks_reads_whole_files(tmp_path, monkeypatch):
    """The workers of one run start at once; one read another's half-unpacked IDX file as
    truncated (seen with 8 workers on Debian's Fashion-MNIST). Here a second loader runs while the
    first is half-way through its first file: both load the whole dataset."""
    import shutil

    import sweetspot.core.datasets

    write_mnist(tmp_path, packed=True)
    real_copy, loaded, started = shutil.copyfileobj, [], []

    def copy_with_another_worker_in_between(source, target, *args):
        target.write(source.read(1000))
        target.flush()
        if not started:  # once: the other worker, while this file is half-written
            started.append(True)
            loaded.append(load_mnist_family("fashion-mnist", "FashionMNIST", str(tmp_path), download=False))
        real_copy(source, target, *args)

    monkeypatch.setattr(sweetspot.core.datasets.shutil, "copyfileobj", copy_with_another_worker_in_between)
    first = load_mnist_family("fashion-mnist", "FashionMNIST", str(tmp_path), download=False)
    assert first.x_train.shape == loaded[0].x_train.shape == (60, 1, 28, 28)
    assert np.array_equal(first.x_train, loaded[0].x_train)
    assert not [p.name for p in (tmp_path / "FashionMNIST" / "raw").iterdir() if p.name.startswith(".")]


def test_load_splits_keeps_the_official_test_split(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", n_train=100, n_test=30)
    s = load_splits(DataConfig(name="mnist", data_dir=str(tmp_path), val_fraction=0.2), seed=0)
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (80, 20, 30)
    assert s.input_shape == (1, 28, 28)


def test_a_missing_dataset_says_what_is_expected_where(tmp_path):
    with pytest.raises(DataError) as info:
        load_mnist_family("mnist", "MNIST", str(tmp_path), download=False)
    text = str(info.value)
    assert "train-images-idx3-ubyte" in text and str(tmp_path / "MNIST" / "raw") in text
    assert "--data-dir" in text and "--download" in text


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:-100]), "truncated or corrupt"),
        (lambda p: p.write_bytes(b"\x00\x00\x09\x03" + p.read_bytes()[4:]), "not an IDX file"),
        (lambda p: p.write_bytes(b"junk"), "not an IDX file"),
    ],
)
def test_a_damaged_idx_file_is_named(tmp_path, damage, message):
    write_mnist(tmp_path / "MNIST" / "raw")
    target = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    damage(target)
    with pytest.raises(DataError, match=message) as info:
        load_mnist_family("mnist", "MNIST", str(tmp_path), download=False)
    assert str(target) in str(info.value)


def test_wrongly_shaped_images_or_mismatched_labels_are_refused(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", image=(27, 28))
    with pytest.raises(DataError, match=r"images are \(27, 28\), expected \(28, 28\)"):
        load_mnist_family("mnist", "MNIST", str(tmp_path), download=False)
    write_mnist(tmp_path / "MNIST" / "raw")
    write_idx(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte", np.arange(59) % 10)
    with pytest.raises(DataError, match="60 images but 59 labels"):
        load_mnist_family("mnist", "MNIST", str(tmp_path), download=False)
    write_idx(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte", np.full(60, 12))
    with pytest.raises(DataError, match=r"labels outside 0..9"):
        load_mnist_family("mnist", "MNIST", str(tmp_path), download=False)


def test_cifar10_loads_the_python_batches(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    raw = load_cifar10(str(tmp_path), download=False)
    assert raw.x_train.shape == (50, 3, 32, 32) and raw.x_test.shape == (10, 3, 32, 32)
    assert raw.x_train.dtype == np.uint8 and raw.x_train.flags.c_contiguous
    assert raw.y_train.tolist() == list(range(10)) * 5


def test_cifar10_missing_truncated_or_misshaped_batches_are_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    with pytest.raises(DataError, match="files not found: data_batch_1"):
        load_cifar10(str(tmp_path), download=False)
    write_cifar(folder)
    (folder / "data_batch_3").write_bytes((folder / "data_batch_3").read_bytes()[:50])
    with pytest.raises(DataError, match="cannot read the batches"):
        load_cifar10(str(tmp_path), download=False)
    write_cifar(folder, columns=3000)
    with pytest.raises(DataError, match="cannot read the batches"):
        load_cifar10(str(tmp_path), download=False)


def test_the_real_fashion_mnist_of_debians_package(tmp_path):
    if not DEBIAN_FASHION_MNIST.is_dir():
        reason = f"Debian's dataset-fashion-mnist is not installed ({DEBIAN_FASHION_MNIST})"
        if os.environ.get("SWEETSPOT_REQUIRE_DATA"):
            pytest.fail(reason)
        pytest.skip(reason)
    s = load_splits(DataConfig(name="fashion-mnist", data_dir=str(tmp_path)), seed=0)
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (48000, 12000, 10000)
    assert s.input_shape == (1, 28, 28) and s.n_classes == 10
    assert np.bincount(s.y_test.numpy()).tolist() == [1000] * 10


def _image_folder(root: Path, sizes=((10, 12),), mode: str = "L", test: bool = True) -> Path:
    """3 classes x 6 images (a test folder with 2 per class), each class a different brightness."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("", 6), ("test", 2)) if test else (("", 6),):
        for k, name in enumerate(("cat", "dog", "emu")):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                h, w = sizes[i % len(sizes)]
                pixels = rng.integers(0, 60, (h, w, 3) if mode == "RGB" else (h, w)) + 90 * k
                Image.fromarray(pixels.astype(np.uint8), mode).save(folder / f"{i}.png")
    return root


def test_an_image_folder_loads_with_its_test_split_and_is_cached(tmp_path, monkeypatch):
    from sweetspot.core.datasets import load_imagefolder

    monkeypatch.setenv("SWEETSPOT_DATA", str(tmp_path / "cache"))
    root = _image_folder(tmp_path / "pets", sizes=((10, 12), (14, 9)), mode="RGB")
    raw = load_imagefolder(str(root), 8)
    assert raw.x_train.shape == (18, 3, 8, 8) and raw.x_test.shape == (6, 3, 8, 8) and raw.n_classes == 3
    assert raw.y_train.tolist() == [0] * 6 + [1] * 6 + [2] * 6  # classes in sorted folder order
    assert raw.x_train.dtype == np.uint8
    assert raw.x_train[raw.y_train == 2].mean() > raw.x_train[raw.y_train == 0].mean()  # brighter class
    cached = list((tmp_path / "cache" / "imagefolder").glob("*.npz"))
    assert len(cached) == 1
    with np.load(cached[0]) as stored:
        assert stored["x0"].dtype == np.uint8 and stored["x0"].shape == (18, 3, 8, 8)
        tampered = {k: stored[k].copy() for k in stored.files}
    tampered["x0"][:] = 0
    np.savez(cached[0], **tampered)
    assert load_imagefolder(str(root), 8).x_train.max() == 0  # read from the cache, not decoded again
    assert load_imagefolder(str(root), 6).x_train.shape == (18, 3, 6, 6)  # another size: another cache entry


def test_a_grayscale_image_folder_runs_a_trial(cli, write_config, tmp_path, monkeypatch):
    monkeypatch.setenv("SWEETSPOT_DATA", str(tmp_path / "cache"))
    root = _image_folder(tmp_path / "gray", test=False)
    config = write_config({"data.name": "imagefolder", "data.root": str(root), "distill.withheld_classes": [],
                           "data.val_fraction": 0.3, "data.test_fraction": 0.3, "search.batch_size": [2, 4]})
    code, out, err = cli("trial", config, "--batch-size", "4", "--epochs", "1", "--format", "json")
    assert code == 0, err
    assert '"missing_class_recall"' in out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root.mkdir(), "has no class folders"),
        (lambda root: (root / "cat").mkdir(parents=True), "has no images"),
        (lambda root: (_image_folder(root, test=False) / "cat" / "bad.png").write_bytes(b"not a png"),
         "cannot read image"),
        (lambda root: _image_folder(root, sizes=((10, 12), (14, 9)), test=False), "the images differ in size"),
    ],
    ids=["empty", "no-images", "unreadable", "sizes-differ"],
)
def test_a_bad_image_folder_is_one_line(tmp_path, monkeypatch, make, message):
    from sweetspot.core.datasets import load_imagefolder

    monkeypatch.setenv("SWEETSPOT_DATA", str(tmp_path / "cache"))
    make(tmp_path / "pets")
    with pytest.raises(DataError, match=message) as caught:
        load_imagefolder(str(tmp_path / "pets"), None)
    assert "\n" not in str(caught.value)


def test_imagefolder_needs_a_root(write_config, cli):
    code, _, err = cli("trial", write_config({"data.name": "imagefolder"}), "--batch-size", "8", "--epochs", "1")
    assert code == 2 and "data.root imagefolder needs data.root" in err and err.count("\n") == 1


def test_an_image_folders_class_names_are_its_folder_names(tmp_path, monkeypatch):
    from sweetspot.core.splits import class_name

    monkeypatch.setenv("SWEETSPOT_DATA", str(tmp_path / "cache"))
    root = _image_folder(tmp_path / "pets", test=False)
    splits = load_splits(DataConfig(name="imagefolder", root=str(root), val_fraction=0.3, test_fraction=0.3), 0)
    assert [class_name(splits.name, k) for k in range(3)] == ["cat", "dog", "emu"]
