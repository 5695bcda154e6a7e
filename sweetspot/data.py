"""Datasets as in-memory tensors: loaded once per process, normalised, split by a seeded rule.

Trials never touch a DataLoader: the splits stay resident (on the trial's device) and training
indexes them in place. The test split is only read by `sweetspot export`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from sweetspot import sources
from sweetspot.config import DataConfig, did_you_mean
from sweetspot.errors import DataError
from sweetspot.imports import is_import_path, load_callable
from sweetspot.sources import Raw


@dataclass(frozen=True)
class Splits:
    """Train / validation / test tensors of one dataset; ``x`` is float32, ``y`` int64."""

    name: str
    n_classes: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    input_mean: torch.Tensor  # standardisation of raw inputs in [0, 1] (per channel, fitted on train), input-shaped
    input_std: torch.Tensor
    digest: str = ""  # of the data as read (before any split): workers of one study must hold the same

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device | str) -> Splits:
        moved = {k: v.to(device) for k, v in self.__dict__.items() if isinstance(v, torch.Tensor)}
        return Splits(name=self.name, n_classes=self.n_classes, digest=self.digest, **moved)

    def evaluation(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The (x, y) a trial is scored on: ``val`` while searching, ``test`` once at export."""
        if split == "val":
            return self.x_val, self.y_val
        if split == "test":
            return self.x_test, self.y_test
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")


# name -> loader(data_dir, download) -> Raw
DATASETS: dict[str, Callable[[str | None, bool], Raw]] = {
    "digits": lambda data_dir, download: sources.load_digits(),
    "mnist": lambda data_dir, download: sources.load_mnist_family("mnist", "MNIST", data_dir, download),
    "fashion-mnist": lambda data_dir, download: sources.load_mnist_family(
        "fashion-mnist", "FashionMNIST", data_dir, download
    ),
    "cifar10": sources.load_cifar10,
}


# Class names for tables and figures; datasets not listed are named by class number.
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}


def class_name(dataset: str, k: int) -> str:
    names = CLASS_NAMES.get(dataset)
    return names[k] if names and k < len(names) else str(k)


def check_dataset(name: str) -> None:
    """A built-in dataset, or an import path that is allowed and names a callable (see imports.py)."""
    if is_import_path(name):
        load_callable(name, "data.name")
        return
    if name not in DATASETS and name != "imagefolder":
        raise DataError(
            f"data.name: unknown dataset {name!r}{did_you_mean(name, DATASETS)} (available: "
            f"{', '.join(DATASETS)}, imagefolder, or your own as an import path package.module:callable)"
        )


@functools.lru_cache(maxsize=4)
def load_splits(config: DataConfig, seed: int) -> Splits:
    """Load ``config.name`` and split it, stratified and seeded; each channel standardised on train.

    A dataset with an official test split keeps it as the test split and carves the validation
    split (``val_fraction`` of its training data) from the rest; one without (digits) carves both
    from all its examples. Cached per process: every trial of a worker reuses the same tensors.
    """
    check_dataset(config.name)
    if is_import_path(config.name):
        raw = sources.load_imported(config.name)
    elif config.name == "imagefolder":
        assert config.root is not None  # config validation
        raw = sources.load_imagefolder(config.root, config.image_size)
    else:
        raw = DATASETS[config.name](config.data_dir, config.download)
    if raw.x_test is None or raw.y_test is None:
        index = np.arange(len(raw.y_train))
        what = f"carve a test split from {config.name!r}"
        rest, test = _stratified(index, config.test_fraction, seed, raw.y_train, what)
        val_share = config.val_fraction / (1.0 - config.test_fraction)
        x, y = raw.x_train, raw.y_train
    else:
        x = np.concatenate([raw.x_train, raw.x_test])
        y = np.concatenate([raw.y_train, raw.y_test])
        rest, test = np.arange(len(raw.y_train)), np.arange(len(raw.y_train), len(y))
        val_share = config.val_fraction
    train, val = _stratified(rest, val_share, seed, y[rest], f"split {config.name!r} into train, validation and test")
    # per channel, as torchvision's Normalize: per-pixel statistics would blow rare border pixels up
    # to 160 standard deviations on Fashion-MNIST (and cost its students 21 points on a withheld class)
    channel_axes = (0, *range(2, x.ndim))
    mean = np.broadcast_to(x[train].mean(axis=channel_axes, keepdims=True), (1, *x.shape[1:]))[0].copy()
    std = np.broadcast_to(x[train].std(axis=channel_axes, keepdims=True), (1, *x.shape[1:]))[0].copy()
    std[std == 0] = 1.0  # a constant channel stays at zero
    x = (x - mean) / std

    def tensors(ix: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.ascontiguousarray(x[ix], dtype=np.float32)), torch.from_numpy(y[ix])

    if raw.class_names is not None:  # for tables, figures and notes (class_name)
        CLASS_NAMES[config.name] = raw.class_names
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = tensors(train), tensors(val), tensors(test)
    stats = (torch.from_numpy(np.asarray(mean, dtype=np.float32)), torch.from_numpy(np.asarray(std, dtype=np.float32)))
    return Splits(config.name, raw.n_classes, x_tr, y_tr, x_va, y_va, x_te, y_te, *stats, digest=data_digest(raw))


def _stratified(
    index: np.ndarray, share: float, seed: int, labels: np.ndarray, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """``index`` split in two, ``share`` of it second, stratified by ``labels`` and seeded; a class
    with too few examples for that is one line."""
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(index, test_size=share, random_state=seed, stratify=labels)
    except ValueError as exc:
        raise DataError(f"data: cannot {what} by class: {exc}") from exc


def data_digest(raw: Raw) -> str:
    """A digest of a dataset as read (inputs scaled to [0, 1], labels), independent of any split or
    standardisation: the same files or the same function's arrays give the same digest anywhere."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (raw.x_train, raw.y_train, raw.x_test, raw.y_test):
        if array is not None:
            digest.update(str((array.shape, array.dtype.str)).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    return "blake2b:" + digest.hexdigest()


def check_classes(classes: tuple[int, ...], n_classes: int, where: str = "distill.withheld_classes") -> None:
    bad = [c for c in classes if not 0 <= c < n_classes]
    if bad:
        raise DataError(f"{where}: {bad} not in the dataset (classes are 0 to {n_classes - 1})")
    if len(classes) >= n_classes:
        raise DataError(f"{where}: leaving out all {n_classes} classes leaves no transfer set")


def transfer_indices(
    y: torch.Tensor, withheld: tuple[int, ...], examples_per_class: int | None, seed: int
) -> torch.Tensor:
    """Indices of the distillation examples in ``y``: withheld classes masked out, optionally only
    ``examples_per_class`` seeded examples of each remaining class."""
    keep = torch.ones_like(y, dtype=torch.bool)
    for c in withheld:
        keep &= y != c
    index = torch.nonzero(keep).flatten()
    if examples_per_class is not None:
        generator = torch.Generator().manual_seed(seed)
        order = index[torch.randperm(len(index), generator=generator).to(index.device)]
        chosen = [order[y[order] == c][:examples_per_class] for c in torch.unique(y[order]).tolist()]
        index = torch.sort(torch.cat(chosen)).values
    return index
