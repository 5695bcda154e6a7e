"""Resident memory of each built-in dataset as a trial holds it: the bytes of its split tensors, and
the process's resident set before and after loading (the loader's own temporaries included).

    .venv/bin/python benchmarks/dataset_memory.py [--datasets digits fashion-mnist mnist cifar10] [--data-dir DIR]

A dataset whose files are not here is reported as missing (nothing is downloaded). Each dataset is
loaded in a fresh process, so that one's memory does not count toward the next.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from machine import describe

CHILD = """
import json, resource, sys
from sweetspot.config import DataConfig
from sweetspot.data import load_splits
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
tensors = [v for v in vars(splits).values() if hasattr(v, "element_size")]
held = sum(t.element_size() * t.nelement() for t in tensors)
x = splits.x_train
print(json.dumps({"held_mb": held / 2**20, "rss_before_mb": before, "rss_after_mb": rss_mb(),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "dtype": str(x.dtype), "examples": len(splits.y_train) + len(splits.y_val) + len(splits.y_test),
                  "shape": list(x.shape[1:])}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "fashion-mnist", "mnist", "cifar10"])
    parser.add_argument("--data-dir", default="")
    args = parser.parse_args()
    print(describe())
    print(f"{'dataset':<14} {'examples':>9} {'shape':>12} {'dtype':>14} {'held MB':>8} {'RSS +MB':>8} {'peak MB':>8}")
    for name in args.datasets:
        done = subprocess.run([sys.executable, "-c", CHILD, name, args.data_dir], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{name:<14} failed: {done.stderr.strip().splitlines()[-1]}")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        if "missing" in row:
            print(f"{name:<14} not here ({row['missing'][:80]}...)")
            continue
        shape = "x".join(map(str, row["shape"]))
        print(f"{name:<14} {row['examples']:>9} {shape:>12} {row['dtype']:>14} {row['held_mb']:>8.1f} "
              f"{row['rss_after_mb'] - row['rss_before_mb']:>8.1f} {row['peak_mb']:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
