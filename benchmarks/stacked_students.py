"""The price of a trial's students: the full one, C = 10 k-less ones and the labels-only one (alpha 0),
trained at once as one stacked model, against a single student, on the real Fashion-MNIST (48,000
transfer images; by default the linear baseline student of studies/fashion-mnist-mlp.yaml, ``--student
mlp`` a 1 x 128 MLP, ``--student general`` the paper's General conv student). Target (issue 12): the
stack at most 3x one student.

    .venv/bin/python benchmarks/stacked_students.py [--student linear] [--epochs 2] [--repeats 3]
        [--batch-sizes 64 256]

Teacher logits are random here: the cost of distillation does not depend on what they say.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch
from machine import describe

from sweetspot.config import load_config
from sweetspot.core.students import train_student, train_students
from sweetspot.core.trial import prepare

REPO = Path(__file__).resolve().parents[1]
STUDENTS = {"linear": ("linear", {}), "mlp": ("mlp", {"width": 128, "depth": 1}),
            "general": ("paper-fashion-mnist-general", {})}


def seconds(fn, repeats: int) -> list[float]:
    fn()  # warm-up: first-call allocations and kernel choices
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", choices=tuple(STUDENTS), default="linear")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    print(describe())
    config = load_config(REPO / "studies" / "fashion-mnist-mlp.yaml")
    if args.data_dir:
        config = replace(config, data=replace(config.data, data_dir=args.data_dir))
    splits = prepare(config, torch.device("cpu"))
    x, y = splits.x_train, splits.y_train
    logits = torch.randn(len(y), splits.n_classes, generator=torch.Generator().manual_seed(0)) * 3
    everything = torch.ones_like(y, dtype=torch.bool)
    masks = torch.stack([everything, *(y != k for k in range(splits.n_classes)), everything])
    alphas = [0.99] * (len(masks) - 1) + [0.0]  # the last: the labels-only student
    arch, options = STUDENTS[args.student]
    print(f"{len(y)} transfer images, student {arch} {options or ''}, {args.epochs} epochs, warm runs: "
          f"mean (sd) over {args.repeats}")
    for batch in args.batch_sizes:
        net = replace(config.student, arch=arch, options=options, epochs=args.epochs, batch_size=batch)

        def one(net=net) -> None:
            torch.manual_seed(0)
            train_student(net, x, logits, y, splits.n_classes, temperature=9.0, alpha=0.99,
                          generator=torch.Generator().manual_seed(0))

        def stacked(net=net) -> None:
            torch.manual_seed(0)
            train_students(net, x, logits, y, splits.n_classes, masks, temperature=9.0, alpha=alphas,
                           generator=torch.Generator().manual_seed(0))

        single, many = seconds(one, args.repeats), seconds(stacked, args.repeats)
        s, m = statistics.fmean(single), statistics.fmean(many)
        print(f"batch {batch}: one student {s:.2f} s (sd {statistics.pstdev(single):.2f}); {len(masks)} stacked "
              f"(full + 10 k-less + labels only) {m:.2f} s (sd {statistics.pstdev(many):.2f})")
        print(f"ratio {len(masks)} stacked vs one student at batch {batch}: {m / s:.2f} (target <= 3)")


if __name__ == "__main__":
    main()
