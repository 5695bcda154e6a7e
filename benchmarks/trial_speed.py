"""Teacher-training speed of the default study's teacher (6 x 512 MLP) against the machine's matmul.

Prints, per batch size, examples/s and achieved GFLOP/s of sweetspot's own training loop
(`training.train_classifier`, fused Adam), next to the machine's matmul GFLOP/s measured in the same
run, and their ratio, for float32 training and for bfloat16 autocast (`teacher.precision`), each
against the matmul of its own precision. Targets (issue 6): on CPU at least 0.8 at batch 256 and
above, at least 0.5 at batch 64.

    .venv/bin/python benchmarks/trial_speed.py [--batch-sizes 64 256 1024] [--seeds 1 3] [--repeats 5] [--device cpu]

``--seeds``: each row for one teacher seed and for N seeds trained as one stacked model
(``search.teacher_seeds``); examples/s are per seed, GFLOP/s of all the seeds together.

FLOPs are counted for the Linear layers only (forward, weight gradients and input gradients but the
first layer's), so the ratio understates the work done (ReLUs, loss, optimizer are not counted).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from machine import describe

from sweetspot.config import StudyConfig
from sweetspot.core.models import build_model, training_flops_per_example
from sweetspot.core.stacking import Stacked, get_rng
from sweetspot.core.training import Loop, make_optimizer, train_classifier


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(
    device: torch.device, n: int, k: int, m: int, repeats: int, dtype: torch.dtype = torch.float32
) -> float:
    """Best-of-``repeats`` GFLOP/s of an (n x k) @ (k x m) matmul."""
    a, b = torch.randn(n, k, device=device, dtype=dtype), torch.randn(k, m, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    inner = max(1, int(2e10 // (2 * n * k * m)))  # about 20 GFLOP per timing
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        for _ in range(inner):
            a @ b
        _sync(device)
        best = min(best, (time.perf_counter() - start) / inner)
    return 2 * n * k * m / best / 1e9


def training_speed(
    device: torch.device, batch_size: int, n_examples: int, epochs: int, repeats: int, precision: str,
    n_seeds: int = 1,
) -> tuple[list[float], float]:
    """examples/s per seed of each repeat of ``epochs`` epochs, and FLOPs per example (per seed).
    ``n_seeds`` > 1: that many teachers trained as one stacked model, each with its own batch order
    and initial weights, as a trial of ``search.teacher_seeds`` trains them; 1: one plain network."""
    config = StudyConfig()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_examples, 64, generator=g).to(device)
    y = torch.randint(0, 10, (n_examples,), generator=g).to(device)
    models = []
    for seed in range(n_seeds):
        torch.manual_seed(seed)
        models.append(build_model(config.teacher, (64,), 10).to(device))
    model = models[0] if n_seeds == 1 else Stacked(models, [get_rng(device) for _ in models])
    optimizer = make_optimizer(config.teacher.optimizer, model, config.teacher.lr)
    generators = [torch.Generator().manual_seed(seed) for seed in range(n_seeds)]
    order = generators[0] if n_seeds == 1 else generators

    def train(n: int) -> None:
        train_classifier(model, x, y, Loop(optimizer, batch_size, n, order, precision=precision))

    train(1)  # warm-up
    rates = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        train(epochs)
        _sync(device)
        rates.append(n_examples * epochs / (time.perf_counter() - start))
    return rates, training_flops_per_example(models[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    parser.add_argument(
        "--examples", type=int, default=16384, help="synthetic examples per epoch (digits' 64 features)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 3],
                        help="teacher seeds trained together (search.teacher_seeds; default: 1 and 3)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(describe())

    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
        "teacher mlp 6x512 on 64 features"
    )
    for precision in args.precisions:
        dtype = getattr(torch, precision)
        peak = max(
            matmul_gflops(device, 1024, 512, 512, args.repeats, dtype),  # the teacher's own layer shape at batch 1024
            matmul_gflops(device, 2048, 2048, 2048, args.repeats, dtype),  # a large square matmul
        )
        print(f"\n{precision}: machine matmul (best of the layer shape and 2048^3): {peak:.1f} GFLOP/s")
        print(f"{'batch':>6} {'seeds':>5} {'examples/s/seed':>16} {'sd':>8} {'GFLOP/s':>9} {'ratio':>6}   "
              f"(n={args.repeats} repeats; GFLOP/s of all seeds together)")
        for batch_size in args.batch_sizes:
            epochs = max(1, min(20, int(2e5 * batch_size / 1024 // args.examples)))
            for n in args.seeds:
                rates, flops = training_speed(device, batch_size, args.examples, epochs, args.repeats, precision, n)
                mean = statistics.mean(rates)
                sd = statistics.stdev(rates) if len(rates) > 1 else 0.0
                gflops = n * mean * flops / 1e9
                print(f"{batch_size:>6} {n:>5} {mean:>16.0f} {sd:>8.0f} {gflops:>9.1f} {gflops / peak:>6.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
