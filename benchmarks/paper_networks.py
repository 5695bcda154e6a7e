"""Training speed of the paper's Table 7 teachers on this machine: seconds per step and per epoch.

What a paper teacher costs on a CPU: one epoch of the paper's Fashion-MNIST conv teachers over
48,000 images is minutes long here (each laid out channels-last, as sweetspot trains a conv net).
Each network takes a few Adam steps on random images of its
dataset's shape; the first step (allocation) is not timed.

    .venv/bin/python benchmarks/paper_networks.py [--batch 256] [--steps 3] [--train 48000] [--only fashion-mnist]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from sweetspot.core.models import PAPER_NETWORKS, convnet, count_parameters, mlp
from sweetspot.core.training import channels_last

SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def seconds_per_step(model: torch.nn.Module, shape: tuple[int, ...], batch: int, steps: int) -> list[float]:
    optimizer = torch.optim.Adam(model.parameters(), fused=True)
    channels_last(model)  # as sweetspot's training loops lay out a conv net on the CPU
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument(
        "--train", type=int, default=48_000, help="training images per epoch (Fashion-MNIST's split: 48,000)"
    )
    parser.add_argument("--only", choices=tuple(SHAPES), help="only this dataset's networks")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(
        f"torch threads {torch.get_num_threads()}, batch {args.batch}, {args.steps} timed steps, "
        f"{args.train} images per epoch"
    )
    print(f"{'network':<30} {'parameters':>11} {'s/step':>8} {'min/epoch':>10}")
    networks = [
        (name, dataset, convnet(SHAPES[dataset], 10, **options))
        for name, (options, _) in PAPER_NETWORKS.items()
        if name.endswith(("large", "small")) and (dataset := name.removeprefix("paper-").rsplit("-", 1)[0])
    ]
    networks += [
        ("mlp 6 x 512", "fashion-mnist", mlp(SHAPES["fashion-mnist"], 10)),
        ("mlp-small 1 x 128", "fashion-mnist", mlp(SHAPES["fashion-mnist"], 10, width=128, depth=1)),
    ]
    for name, dataset, model in networks:
        if args.only and dataset != args.only:
            continue
        step = statistics.mean(seconds_per_step(model, SHAPES[dataset], args.batch, args.steps))
        print(
            f"{name:<30} {count_parameters(model):>11,} {step:>8.3f} {step * args.train / args.batch / 60:>10.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
