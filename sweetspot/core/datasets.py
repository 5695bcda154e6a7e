"""Reading the datasets from disk, through torchvision's dataset classes, into numpy arrays.

Every file is checked before it is used (format, shape, sizes, label range): a truncated, corrupt or
wrongly shaped file is a DataError naming it, never a silently wrong dataset. A missing dataset is a
DataError saying which files are expected where, and how to get them.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sweetspot.core.atomic_files import atomic_file
from sweetspot.errors import DataError, FileError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")


@dataclass(frozen=True)
class Raw:
    """A dataset as read: inputs (N, C, H, W) images or (N, D) features, as uint8 where the source
    stores bytes (0..255, a quarter of float32's memory; scaled and standardised per batch, see
    data.Inputs) or float32 (images in [0, 1]); labels int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None  # None: no official test split (it is carved from the data)
    y_test: np.ndarray | None
    n_classes: int
    class_names: tuple[str, ...] | None = None  # where the source names its classes (an image folder's folders)


def default_root() -> Path:
    """Where datasets are looked for and downloaded: $SWEETSPOT_DATA, else ~/.cache/sweetspot."""
    return Path(os.environ.get("SWEETSPOT_DATA") or Path.home() / ".cache" / "sweetspot")


def load_digits() -> Raw:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = (bunch.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    return Raw(x, bunch.target.astype(np.int64), None, None, 10)


def check_idx(path: Path, ndim: int, shape: tuple[int, ...] | None = None) -> int:
    """Check an IDX file's header and size against what the MNIST family must hold; returns N."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from exc
    if len(data) < 4 + 4 * ndim or data[:3] != b"\x00\x00\x08" or data[3] != ndim:
        raise DataError(f"{path}: not an IDX file of unsigned bytes with {ndim} dimension(s)")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if shape is not None and dims[1:] != shape:
        raise DataError(f"{path}: images are {dims[1:]}, expected {shape}")
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if len(data) != expected:
        raise DataError(f"{path}: {len(data)} bytes, expected {expected} for shape {dims} (truncated or corrupt)")
    return dims[0]


def _find_idx(raw: Path, candidates: list[Path]) -> None:
    """Make the four uncompressed IDX files torchvision reads exist in ``raw``, unpacking gzipped
    copies found in ``candidates`` (a data directory, Debian's package) when needed. Each is unpacked
    beside its place and renamed into it: the workers of one run start at once, and one of them
    read another's half-unpacked file as truncated."""
    for name in IDX_FILES:
        if (raw / name).is_file():
            continue
        for folder in candidates:
            packed = folder / f"{name}.gz"
            if packed.is_file():
                raw.mkdir(parents=True, exist_ok=True)
                with (
                    atomic_file(raw / name) as unpacked,
                    gzip.open(packed, "rb") as source,
                    open(unpacked, "wb") as target,
                ):
                    shutil.copyfileobj(source, target)
                break


def load_mnist_family(name: str, class_name: str, data_dir: str | None, download: bool) -> Raw:
    """MNIST or Fashion-MNIST through torchvision: 28 x 28 grey images, 10 classes, official test split."""
    import torchvision.datasets

    root = Path(data_dir) if data_dir else default_root()
    raw = root / class_name / "raw"
    candidates = [raw, root, root / class_name]
    if class_name == "FashionMNIST":
        candidates.append(DEBIAN_FASHION_MNIST)
    _find_idx(raw, candidates)
    missing = [n for n in IDX_FILES if not (raw / n).is_file()]
    if missing and not download:
        hint = " or install Debian's dataset-fashion-mnist" if class_name == "FashionMNIST" else ""
        raise DataError(
            f"{name}: files not found: {', '.join(missing)} in {raw} (or gzipped in {root}); "
            f"pass --data-dir DIR, --download to let torchvision fetch them{hint}"
        )
    cls = getattr(torchvision.datasets, class_name)
    arrays = []
    for train in (True, False):
        if not missing:
            prefix = "train" if train else "t10k"
            n_images = check_idx(raw / f"{prefix}-images-idx3-ubyte", 3, (28, 28))
            n_labels = check_idx(raw / f"{prefix}-labels-idx1-ubyte", 1)
            if n_images != n_labels:
                raise DataError(f"{raw / prefix}-*: {n_images} images but {n_labels} labels")
        try:
            dataset = cls(str(root), train=train, download=download)
        except Exception as exc:  # torchvision raises plain errors for absent or bad files
            raise DataError(f"{name}: cannot load {raw}: {str(exc).splitlines()[0]}") from exc
        x = dataset.data.numpy()[:, None]  # uint8
        y = dataset.targets.numpy().astype(np.int64)
        arrays += [x, _check_labels(y, 10, raw)]
    return Raw(*arrays, n_classes=10)


def load_cifar10(data_dir: str | None, download: bool) -> Raw:
    """CIFAR-10 through torchvision (the python pickle batches): 32 x 32 colour images, 10 classes."""
    import torchvision.datasets

    class CIFAR10(torchvision.datasets.CIFAR10):
        # torchvision checks every batch against the official checksums; sweetspot checks shapes,
        # sizes and labels itself, so that the loader can be tested on small files of the same format
        def _check_integrity(self) -> bool:
            return all((Path(self.root) / self.base_folder / f).is_file() for f in CIFAR_FILES)

        def _load_meta(self) -> None:
            with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as handle:
                self.classes = pickle.load(handle, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    root = Path(data_dir) if data_dir else default_root()
    folder = root / "cifar-10-batches-py"
    missing = [f for f in CIFAR_FILES if not (folder / f).is_file()]
    if missing and not download:
        raise DataError(
            f"cifar10: files not found: {', '.join(missing)} in {folder} (the python version of CIFAR-10, "
            "cifar-10-python.tar.gz, unpacked); pass --data-dir DIR, or --download to let torchvision fetch it"
        )
    arrays = []
    for train in (True, False):
        try:
            dataset = CIFAR10(str(root), train=train, download=download)
        except Exception as exc:  # unpickling and reshaping raise many kinds
            raise DataError(
                f"cifar10: cannot read the batches in {folder}: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            ) from exc
        x = np.asarray(dataset.data)
        if x.ndim != 4 or x.shape[1:] != (32, 32, 3) or x.dtype != np.uint8:
            raise DataError(f"cifar10: images in {folder} are {x.shape} {x.dtype}, expected (N, 32, 32, 3) uint8")
        y = np.asarray(dataset.targets, dtype=np.int64)
        if len(y) != len(x):
            raise DataError(f"cifar10: {len(x)} images but {len(y)} labels in {folder}")
        arrays += [np.ascontiguousarray(x.transpose(0, 3, 1, 2)), _check_labels(y, 10, folder)]
    return Raw(*arrays, n_classes=10)


def _check_labels(y: np.ndarray, n_classes: int, where: Path) -> np.ndarray:
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise DataError(f"{where}: labels outside 0..{n_classes - 1} (found {y.min()}..{y.max()})")
    return y


def load_imported(path: str) -> Raw:
    """The user's dataset: the callable an import path names (see imports.py), called without
    arguments, returning ``(x, y)`` (validation and test are carved from it) or ``(x_train, y_train,
    x_test, y_test)``, either optionally followed by the class names (one string per class).
    Inputs: images N x C x H x W or N x H x W, or features N x D; uint8 (kept as bytes, scaled to
    [0, 1] per batch) or floats (taken as they are). Labels: integers 0 to C - 1, every class in the
    training data. Arrays or tensors. Every departure is one line naming it."""
    from sweetspot.trusted_imports import load_callable

    load = load_callable(path, "data.name")
    try:
        result = load()
    except Exception as exc:  # the user's code: one line, the chain under --debug
        raise DataError(f"data.name: {path!r} failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(result, (tuple, list)) or len(result) not in (2, 3, 4, 5):
        got = f"{len(result)} values" if isinstance(result, (tuple, list)) else f"a {type(result).__name__}"
        raise DataError(f"data.name: {path!r} must return (x, y) or (x_train, y_train, x_test, y_test), optionally "
                        f"followed by the class names, got {got}")
    result, class_names = (result[:-1], result[-1]) if len(result) in (3, 5) else (result, None)
    names = ("x", "y") if len(result) == 2 else ("x_train", "y_train", "x_test", "y_test")
    arrays = {name: np.asarray(value) for name, value in zip(names, result)}
    pairs = [(arrays[names[0]], arrays[names[1]], names[:2])]
    if len(result) == 4:
        pairs.append((arrays["x_test"], arrays["y_test"], names[2:]))
    checked = [_checked_pair(path, x, y, where) for x, y, where in pairs]
    shapes = {x.shape[1:] for x, _ in checked}
    if len(shapes) > 1:
        raise DataError(f"data.name: {path!r}: x_train and x_test have different example shapes {sorted(shapes)}")
    if len({x.dtype for x, _ in checked}) > 1:  # bytes and floats: both as floats in [0, 1]
        checked = [(x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x, y) for x, y in checked]
    n_classes = int(max(y.max() for _, y in checked)) + 1
    missing = sorted(set(range(n_classes)) - set(checked[0][1].tolist()))
    if missing:
        raise DataError(f"data.name: {path!r}: labels must be 0 to {n_classes - 1} with every class in the training "
                        f"data; classes {missing[:5]} have no example")
    (x_train, y_train), *test = checked
    return Raw(x_train, y_train, *(test[0] if test else (None, None)), n_classes,
               _class_names(path, class_names, n_classes))


def _class_names(path: str, names: object, n_classes: int) -> tuple[str, ...] | None:
    """A dataset function's class names: one string per class, in label order."""
    if names is None:
        return None
    if isinstance(names, (str, bytes)) or not isinstance(names, (tuple, list)) or not all(
        isinstance(n, str) for n in names
    ):
        raise DataError(f"data.name: {path!r}: the class names (its last value) must be a list of strings, "
                        f"got {type(names).__name__}")
    if len(names) != n_classes:
        raise DataError(f"data.name: {path!r}: {len(names)} class names for {n_classes} classes (labels 0 to "
                        f"{n_classes - 1}); give one name per class")
    return tuple(names)


def _checked_pair(path: str, x: np.ndarray, y: np.ndarray, where: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = where
    if x.ndim == 3:
        x = x[:, None]  # N x H x W: one channel
    if x.ndim not in (2, 4) or len(x) == 0:
        raise DataError(f"data.name: {path!r}: {xs} must be N x C x H x W, N x H x W or N x D with N > 0, "
                        f"got shape {x.shape}")
    if x.dtype == np.uint8:
        pass  # kept as bytes, scaled per batch
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
        if not np.isfinite(x).all():
            raise DataError(f"data.name: {path!r}: {xs} has values that are not finite")
    else:
        raise DataError(f"data.name: {path!r}: {xs} must be uint8 or floating point, got {x.dtype}")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"data.name: {path!r}: {ys} must be one label per example ({len(x)}), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
        raise DataError(f"data.name: {path!r}: {ys} must be integers 0 to C - 1, got {y.dtype} from {y.min()}")
    return x, y.astype(np.int64)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def load_imagefolder(root: str, image_size: int | None) -> Raw:
    """A folder of class folders of images, as torchvision's ``ImageFolder`` reads it (class k: the
    k-th folder name in sorted order), with an optional ``test`` folder of the same classes as the
    test split. Decoded once: the uint8 arrays are cached in ``$SWEETSPOT_DATA/imagefolder/``,
    keyed by every file's path, size and modification time and by ``image_size``. Grayscale images
    stay one channel; any other mode becomes RGB."""
    folder = Path(root)
    if not folder.is_dir():
        raise DataError(f"data.root: {root!r} is not a folder (give a folder with one folder of images per class)")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name != "test" and not p.name.startswith("."))
    if not classes:
        raise DataError(f"data.root: {root!r} has no class folders (expected {root}/CLASS/IMAGE.png, ...)")
    parts = [_image_files(folder, classes)]
    if (folder / "test").is_dir():
        parts.append(_image_files(folder / "test", classes))
    key = hashlib.blake2b(repr((image_size, [(str(p), p.stat().st_size, p.stat().st_mtime_ns, k)
                                              for files in parts for p, k in files])).encode(), digest_size=16)
    cache = default_root() / "imagefolder" / f"{key.hexdigest()}.npz"
    if cache.is_file():
        with np.load(cache) as stored:
            arrays = [(stored[f"x{i}"], stored[f"y{i}"]) for i in range(len(parts))]
    else:
        arrays = [_decode(files, image_size) for files in parts]
        _store(cache, arrays)
    shapes = {x.shape[1:] for x, _ in arrays}
    if len(shapes) > 1:
        raise DataError(f"data.root: {root!r}: the training and test images differ in shape {sorted(shapes)}; "
                        "set data.image_size")
    (x, y), *test = arrays
    return Raw(x, y, *(test[0] if test else (None, None)), len(classes), tuple(classes))


def _image_files(folder: Path, classes: list[str]) -> list[tuple[Path, int]]:
    files = []
    for k, name in enumerate(classes):
        found = sorted(p for p in (folder / name).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if (
            folder / name).is_dir() else []
        if not found:
            raise DataError(f"data.root: {str(folder / name)!r} has no images ({', '.join(IMAGE_SUFFIXES)})")
        files += [(p, k) for p in found]
    return files


def _decode(files: list[tuple[Path, int]], image_size: int | None) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    images = []
    for path, _ in files:
        try:
            with Image.open(path) as image:
                image.load()
                image = image.convert("L" if image.mode in ("L", "1", "I;16", "I") else "RGB")
                if image_size is not None:
                    image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
                images.append(np.asarray(image, dtype=np.uint8))
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"data.root: cannot read image {str(path)!r} ({exc})") from exc
    modes = {a.ndim for a in images}
    if len(modes) > 1:  # some grayscale, some colour: all colour
        images = [np.repeat(a[..., None], 3, axis=-1) if a.ndim == 2 else a for a in images]
    sizes = {a.shape[:2] for a in images}
    if len(sizes) > 1:
        shown = ", ".join(f"{h}x{w}" for h, w in sorted(sizes)[:3])
        raise DataError(f"data.root: the images differ in size ({shown}, ...); set data.image_size to resize them")
    x = np.stack(images)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # N x C x H x W
    return np.ascontiguousarray(x), np.array([k for _, k in files], dtype=np.int64)


def _store(cache: Path, arrays: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """The decoded arrays, written whole or not at all (a cache that cannot be written is skipped)."""
    from sweetspot.core.atomic_files import atomic_file

    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(cache) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **{f"{n}{i}": a for i, pair in enumerate(arrays) for n, a in zip("xy", pair)})
    except (OSError, FileError):
        pass  # decoding again next time is slower, not wrong
