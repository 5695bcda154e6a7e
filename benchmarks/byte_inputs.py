"""What holding a dataset as bytes costs in speed: one teacher epoch on inputs held as uint8 (scaled
and standardised per batch, as sweetspot holds byte sources) against the same inputs held as float32
standardised once (as it held them before), with the default 6 x 512 MLP teacher.

    .venv/bin/python benchmarks/byte_inputs.py [--dataset fashion-mnist] [--batch-sizes 64 1024] [--repeats 3]
        [--device cpu]

Both runs see bit-identical batches (checked before timing), so the difference is the per-batch
conversion alone. Prints examples/s as mean ± sd over the repeats, alternating the two.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from machine import describe

from sweetspot.config import DataConfig, StudyConfig
from sweetspot.core.models import build_model
from sweetspot.core.splits import Inputs, load_splits
from sweetspot.core.training import Loop, make_optimizer, train_classifier


def epoch_rate(x: Inputs, y: torch.Tensor, batch_size: int, device: torch.device) -> float:
    """Examples/s of one epoch of the default teacher, from the same initial weights and batch order."""
    config = StudyConfig()
    torch.manual_seed(0)
    model = build_model(config.teacher, tuple(x.shape[1:]), 10).to(device)
    optimizer = make_optimizer(config.teacher.optimizer, model, config.teacher.lr)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    train_classifier(model, x, y, Loop(optimizer, batch_size, 1, torch.Generator().manual_seed(0)))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return len(y) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(describe())
    splits = load_splits(DataConfig(name=args.dataset), 0).to(device)
    held = {"uint8": splits.x_train, "float32": Inputs(splits.x_train[:])}
    if held["uint8"].stored.dtype != torch.uint8:
        raise SystemExit(f"{args.dataset} is not held as bytes; nothing to compare")
    assert torch.equal(held["uint8"][:4096], held["float32"][:4096])  # the same batches, bit for bit
    print(f"{args.dataset} on {device}: {len(splits.y_train)} training examples held as uint8 "
          f"({held['uint8'].nbytes / 2**20:.1f} MB) or float32 ({held['float32'].nbytes / 2**20:.1f} MB)")
    print(f"{'batch':>6} {'uint8 ex/s':>16} {'float32 ex/s':>16} {'ratio':>6}   (mean ± sd, n={args.repeats})")
    for batch_size in args.batch_sizes:
        epoch_rate(held["uint8"], splits.y_train, batch_size, device)  # warm-up
        rates: dict[str, list[float]] = {"uint8": [], "float32": []}
        for _ in range(args.repeats):
            for kind, x in held.items():
                rates[kind].append(epoch_rate(x, splits.y_train, batch_size, device))
        cells = [f"{statistics.mean(r):>8.0f} ± {statistics.stdev(r) if len(r) > 1 else 0:>5.0f}"
                 for r in rates.values()]
        ratio = statistics.mean(rates["uint8"]) / statistics.mean(rates["float32"])
        print(f"{batch_size:>6} {cells[0]:>16} {cells[1]:>16} {ratio:>6.3f}", flush=True)


if __name__ == "__main__":
    main()
