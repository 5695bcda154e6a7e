"""Resident memory of each built-in dataset as a trial holds it: the bytes of its split tensors
(inputs as held: uint8 for byte sources), and the process's resident set before and after loading
(the loader's own temporaries included).

    .venv/bin/python benchmarks/dataset_memory.py [--datasets digits fashion-mnist mnist cifar10] [--data-dir DIR]
        [--stand-ins]

A dataset whose files are not here is reported as missing (nothing is downloaded); with
``--stand-ins``, MNIST and CIFAR-10 are measured on full-size files of random bytes in their real
formats (60,000 + 10,000 images; 50,000 + 10,000), written to a temporary folder: memory depends on
the sizes, not on the pixels. Each dataset is loaded in a fresh process, so that one's memory does
not count toward the next.
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from machine import describe

CHILD = """
import json, resource, sys
from sweetspot.config import DataConfig
from sweetspot.core.splits import load_splits
from sweetspot.errors import DataError

def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

before = rss_mb()
try:
    splits = load_splits(DataConfig(name=sys.argv[1], data_dir=sys.argv[2] or None), 0)
except DataError as exc:
    print(json.dumps({"missing": str(exc)}))
    raise SystemExit(0)
x = splits.x_train
print(json.dumps({"held_mb": splits.nbytes / 2**20, "rss_before_mb": before, "rss_after_mb": rss_mb(),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "dtype": str(x.stored.dtype).removeprefix("torch."),
                  "examples": len(splits.y_train) + len(splits.y_val) + len(splits.y_test),
                  "shape": list(x.shape[1:])}))
"""


def write_stand_ins(root: Path, names: list[str]) -> None:
    """Full-size MNIST and CIFAR-10 files of random bytes, in torchvision's layouts (those in ``names``)."""
    rng = np.random.default_rng(0)
    mnist = root / "MNIST" / "raw"
    mnist.mkdir(parents=True)
    for prefix, n in (("train", 60_000), ("t10k", 10_000)) if "mnist" in names else ():
        for kind, array in (("images", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
                            ("labels", (np.arange(n) % 10).astype(np.uint8))):
            header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
            (mnist / f"{prefix}-{kind}-idx{array.ndim}-ubyte").write_bytes(header + array.tobytes())
    if "cifar10" not in names:
        return
    cifar = root / "cifar-10-batches-py"
    cifar.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (10_000, 3072), dtype=np.uint8), "labels": list(np.arange(10_000) % 10)}
        (cifar / name).write_bytes(pickle.dumps(batch))
    (cifar / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "fashion-mnist", "mnist", "cifar10"])
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--stand-ins", action="store_true", help="MNIST and CIFAR-10 as full-size random files")
    args = parser.parse_args()
    print(describe())
    stand_ins = tempfile.TemporaryDirectory(prefix="sweetspot-stand-ins-") if args.stand_ins else None
    if stand_ins is not None:
        write_stand_ins(Path(stand_ins.name), args.datasets)
    print(f"{'dataset':<24} {'examples':>9} {'shape':>12} {'held as':>8} {'held MB':>8} {'RSS +MB':>8} {'peak MB':>8}")
    for name in args.datasets:
        stand_in = stand_ins is not None and name in ("mnist", "cifar10")
        data_dir = stand_ins.name if stand_in else args.data_dir
        done = subprocess.run([sys.executable, "-c", CHILD, name, data_dir], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{name:<14} failed: {done.stderr.strip().splitlines()[-1]}")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        if "missing" in row:
            print(f"{name:<14} not here ({row['missing'][:80]}...)")
            continue
        shape = "x".join(map(str, row["shape"]))
        label = f"{name} (stand-in)" if stand_in else name
        print(f"{label:<24} {row['examples']:>9} {shape:>12} {row['dtype']:>8} {row['held_mb']:>8.1f} "
              f"{row['rss_after_mb'] - row['rss_before_mb']:>8.1f} {row['peak_mb']:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
