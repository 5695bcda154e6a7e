"""Datasets as in-memory tensors: loaded once per process, normalised, split by a seeded rule.

Trials never touch a DataLoader: the splits stay resident (on the trial's device) and training
indexes them in place. Sources stored as bytes stay bytes (a quarter of float32) and are scaled and
standardised per batch as they are indexed. The test split is only read by `sweetspot export`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sweetspot.config import DataConfig, did_you_mean
from sweetspot.core import datasets
from sweetspot.core.datasets import Raw
from sweetspot.errors import DataError
from sweetspot.trusted_imports import is_import_path, load_callable


@dataclass(frozen=True)
class Inputs:
    """A split's inputs as held: uint8 bytes with their per-channel mean and std (of the inputs
    scaled to [0, 1]), or float32 already standardised. Indexing answers standardised float32, as
    a float32 tensor indexed the same way would (bit for bit), so that training code indexes inputs
    in place whatever they are held as; ``take`` selects examples and keeps them as held."""

    stored: torch.Tensor
    mean: torch.Tensor | None = None  # for uint8: input-shaped, of x / 255 on the training split
    std: torch.Tensor | None = None

    def __getitem__(self, index: Any) -> torch.Tensor:
        batch = self.stored[index]
        if self.mean is None or self.std is None:
            return batch
        return (batch.float() / 255.0 - self.mean) / self.std

    def __len__(self) -> int:
        return len(self.stored)

    def take(self, index: torch.Tensor) -> Inputs:
        return Inputs(self.stored[index], self.mean, self.std)

    def to(self, device: torch.device | str) -> Inputs:
        moved = [t.to(device) if t is not None else None for t in (self.stored, self.mean, self.std)]
        return Inputs(*moved)

    @property
    def shape(self) -> torch.Size:
        return self.stored.shape

    @property
    def device(self) -> torch.device:
        return self.stored.device

    @property
    def dtype(self) -> torch.dtype:
        """What indexing answers (float32), not what is held (``stored.dtype``)."""
        return torch.float32 if self.mean is not None else self.stored.dtype

    @property
    def nbytes(self) -> int:
        return self.stored.element_size() * self.stored.nelement()


Examples = torch.Tensor | Inputs  # what training and prediction index: held inputs, or a tensor


@dataclass(frozen=True)
class Splits:
    """Train / validation / test inputs (``Inputs``, answering float32) and int64 labels of one dataset."""

    name: str
    n_classes: int
    x_train: Inputs
    y_train: torch.Tensor
    x_val: Inputs
    y_val: torch.Tensor
    x_test: Inputs
    y_test: torch.Tensor
    input_mean: torch.Tensor  # standardisation of raw inputs in [0, 1] (per channel, fitted on train), input-shaped
    input_std: torch.Tensor
    digest: str = ""  # of the data as read (before any split): workers of one study must hold the same

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device | str) -> Splits:
        moved = {k: v.to(device) for k, v in self.__dict__.items() if isinstance(v, (torch.Tensor, Inputs))}
        return Splits(name=self.name, n_classes=self.n_classes, digest=self.digest, **moved)

    @property
    def nbytes(self) -> int:
        """Bytes held by the splits' inputs and labels (what a trial keeps resident)."""
        held = [v for v in self.__dict__.values() if isinstance(v, (torch.Tensor, Inputs))]
        return sum(v.nbytes if isinstance(v, Inputs) else v.element_size() * v.nelement() for v in held)

    def evaluation(self, split: str) -> tuple[Inputs, torch.Tensor]:
        """The (x, y) a trial is scored on: ``val`` while searching, ``test`` once at export."""
        if split == "val":
            return self.x_val, self.y_val
        if split == "test":
            return self.x_test, self.y_test
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")


# name -> loader(data_dir, download) -> Raw
DATASETS: dict[str, Callable[[str | None, bool], Raw]] = {
    "digits": lambda data_dir, download: datasets.load_digits(),
    "mnist": lambda data_dir, download: datasets.load_mnist_family("mnist", "MNIST", data_dir, download),
    "fashion-mnist": lambda data_dir, download: datasets.load_mnist_family(
        "fashion-mnist", "FashionMNIST", data_dir, download
    ),
    "cifar10": datasets.load_cifar10,
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
        raw = datasets.load_imported(config.name)
    elif config.name == "imagefolder":
        assert config.root is not None  # config validation
        raw = datasets.load_imagefolder(config.root, config.image_size)
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
    mean, std = _channel_stats(x[train])
    stats = torch.from_numpy(mean), torch.from_numpy(std)
    if x.dtype != np.uint8:  # floats: standardised once, here
        x = (x - mean) / std

    def split(ix: np.ndarray) -> tuple[Inputs, torch.Tensor]:
        if x.dtype == np.uint8:
            inputs = Inputs(torch.from_numpy(np.ascontiguousarray(x[ix])), *stats)
        else:
            inputs = Inputs(torch.from_numpy(np.ascontiguousarray(x[ix], dtype=np.float32)))
        return inputs, torch.from_numpy(y[ix])

    if raw.class_names is not None:  # for tables, figures and notes (class_name)
        CLASS_NAMES[config.name] = raw.class_names
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = split(train), split(val), split(test)
    return Splits(config.name, raw.n_classes, x_tr, y_tr, x_va, y_va, x_te, y_te, *stats, digest=data_digest(raw))


def _channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of the training inputs (uint8 read as x / 255), input-shaped float32.

    Per channel, as torchvision's Normalize: per-pixel statistics would blow rare border pixels up to
    160 standard deviations on Fashion-MNIST (and cost its students 21 points on a withheld class).
    Bytes are counted, not converted: a histogram of each channel's 256 values gives both exactly,
    without a float copy of the training images."""
    axes = (0, *range(2, x.ndim))  # images: all but the channel; features: each its own
    if x.dtype == np.uint8:
        counts = _byte_counts(x.reshape(len(x), x.shape[1], -1))  # channel x value
        values = np.arange(256) / 255.0
        share = counts / counts.sum(axis=1, keepdims=True)
        mean = share @ values
        std = np.sqrt((share * (values[None] - mean[:, None]) ** 2).sum(axis=1))
        keep = (slice(None), *([None] * (x.ndim - 2)))
        mean, std = (np.broadcast_to(v[keep], x.shape[1:]) for v in (mean, std))
    else:
        mean = np.broadcast_to(x.mean(axis=axes, keepdims=True), (1, *x.shape[1:]))[0]
        std = np.broadcast_to(x.std(axis=axes, keepdims=True), (1, *x.shape[1:]))[0]
    mean, std = np.array(mean, dtype=np.float32), np.array(std, dtype=np.float32)
    std[std == 0] = 1.0  # a constant channel stays at zero
    return mean, std


def _byte_counts(x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """How often each of the 256 byte values occurs in each channel of ``x`` (N x K x M uint8), in
    chunks of examples (np.bincount widens what it counts to 8 bytes a value)."""
    counts = np.zeros((x.shape[1], 256), dtype=np.int64)
    for start in range(0, len(x), chunk):
        part = x[start : start + chunk]
        for k in range(x.shape[1]):
            counts[k] += np.bincount(part[:, k].ravel(), minlength=256)
    return counts


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
        if array is None:
            continue
        if array.dtype == np.uint8:  # digested as the float32 x / 255 it stands for, in chunks
            digest.update(str((array.shape, np.dtype(np.float32).str)).encode())
            for start in range(0, len(array), 4096):
                digest.update((array[start : start + 4096].astype(np.float32) / 255.0).tobytes())
        else:
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


def heldout_part(y: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """True for the examples of ``y`` kept from the teacher (``distill.transfer: heldout``): in each
    class, a seeded ``fraction`` of its examples (at least one, and at least one left to the teacher
    where the class has two)."""
    generator = torch.Generator().manual_seed(seed)
    held = torch.zeros(len(y), dtype=torch.bool)
    labels = y.cpu()
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n = min(max(1, round(fraction * len(members))), max(1, len(members) - 1))
        held[members[:n]] = True
    return held.to(y.device)


def labelled_part(y: torch.Tensor, per_class: int | None, seed: int) -> torch.Tensor:
    """True for the transfer examples that keep their hard label (``distill.labels_per_class``): a
    seeded ``per_class`` of each class, every example when ``per_class`` is None."""
    if per_class is None:
        return torch.ones(len(y), dtype=torch.bool, device=y.device)
    generator = torch.Generator().manual_seed(seed)
    labelled = torch.zeros(len(y), dtype=torch.bool)
    labels = y.cpu()
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        labelled[members[torch.randperm(len(members), generator=generator)[:per_class]]] = True
    return labelled.to(y.device)
