"""Several teacher seeds at the price of one: N seeds of the default teacher (6 x 512 MLP on the
digits' 64 features) trained as one stacked model (``stacking.Stacked``, as ``search.teacher_seeds``
trains a trial's teachers), against one seed.

Prints, per batch size and N: examples per second per seed, the GFLOP/s of all N seeds together and
their fraction of the machine's matmul rate (measured in the same run, as in trial_speed.py), and
the time of N seeds over the time of one, as ``ratio N=3 vs N=1 at batch 64: X``. Targets (issue 13,
2 CPU cores): N = 3 at most 2x one seed at batch 64 and at most 2.7x at batch 1024; one seed at
batch 64 at least 0.5 of the matmul rate.

    .venv/bin/python benchmarks/teacher_seeds.py [--batch-sizes 64 256 1024] [--seeds 1 3 5] [--repeats 3]

Each timing is the mean of ``--repeats`` runs of whole epochs over synthetic data (after a warm-up
epoch); the sd is printed beside it.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from machine import describe
from trial_speed import matmul_gflops, training_speed

from sweetspot.config import StudyConfig
from sweetspot.core.models import build_model, training_flops_per_example


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--examples", type=int, default=16384, help="synthetic examples per epoch (64 features)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(describe())
    flops = training_flops_per_example(build_model(StudyConfig().teacher, (64,), 10))
    peak = max(matmul_gflops(device, 1024, 512, 512, args.repeats), matmul_gflops(device, 2048, 2048, 2048, 3))
    print(f"teacher mlp 6 x 512 on 64 features, float32, {args.examples} examples per epoch; "
          f"machine matmul: {peak:.1f} GFLOP/s")
    print(f"{'batch':>6} {'N':>3} {'s/epoch':>9} {'sd':>7} {'examples/s/seed':>16} {'GFLOP/s':>8} {'of matmul':>10} "
          f"{'N vs 1':>7}   (n={args.repeats} repeats)")
    ratios = []
    for batch_size in args.batch_sizes:
        epochs = max(1, min(5, int(2e5 * batch_size / 1024 // args.examples)))
        one = None
        for n in args.seeds:
            rates, _ = training_speed(device, batch_size, args.examples, epochs, args.repeats, "float32", n)
            times = [args.examples / r for r in rates]  # seconds per epoch
            mean, sd = statistics.mean(times), statistics.stdev(times) if len(times) > 1 else 0.0
            one = mean if n == 1 else one
            rate = args.examples / mean
            gflops = n * rate * flops / 1e9
            ratio = mean / one if one else float("nan")
            print(f"{batch_size:>6} {n:>3} {mean:>9.3f} {sd:>7.3f} {rate:>16.0f} {gflops:>8.1f} {gflops / peak:>10.2f} "
                  f"{ratio:>7.2f}", flush=True)
            if n != 1 and one:
                ratios.append(f"ratio N={n} vs N=1 at batch {batch_size}: {ratio:.2f}")
    print()
    print("\n".join(ratios))


if __name__ == "__main__":
    main()
