"""Teacher-training speed of the default study's teacher (6 x 512 MLP) against the machine's matmul.

Prints, per batch size, examples/s and achieved GFLOP/s of sweetspot's own training loop
(`training.train_classifier`, fused Adam), next to the machine's matmul GFLOP/s measured in the same
run, and their ratio, for float32 training and for bfloat16 autocast (`teacher.precision`), each
against the matmul of its own precision. Targets (issue 6): on CPU at least 0.8 at batch 256 and
above, at least 0.5 at batch 64.

    .venv/bin/python benchmarks/trial_speed.py [--batch-sizes 64 256 1024] [--repeats 5] [--device cpu]

FLOPs are counted for the Linear layers only (forward, weight gradients and input gradients but the
first layer's), so the ratio understates the work done (ReLUs, loss, optimizer are not counted).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sweetspot.config import StudyConfig
from sweetspot.models import build_model, training_flops_per_example
from sweetspot.training import make_optimizer, train_classifier


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
    device: torch.device, batch_size: int, n_examples: int, epochs: int, repeats: int, precision: str
) -> tuple[list[float], float]:
    """examples/s of each repeat of ``epochs`` epochs, and FLOPs per example."""
    config = StudyConfig()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_examples, 64, generator=g).to(device)
    y = torch.randint(0, 10, (n_examples,), generator=g).to(device)
    torch.manual_seed(0)
    model = build_model(config.teacher, (64,), 10).to(device)
    optimizer = make_optimizer(config.teacher.optimizer, model, config.teacher.lr)
    generator = torch.Generator().manual_seed(0)
    rates = []
    train_classifier(
        model, x, y, optimizer=optimizer, batch_size=batch_size, epochs=1, generator=generator, precision=precision
    )  # warm-up
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        train_classifier(
            model,
            x,
            y,
            optimizer=optimizer,
            batch_size=batch_size,
            epochs=epochs,
            generator=generator,
            precision=precision,
        )
        _sync(device)
        rates.append(n_examples * epochs / (time.perf_counter() - start))
    return rates, training_flops_per_example(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    parser.add_argument(
        "--examples", type=int, default=16384, help="synthetic examples per epoch (digits' 64 features)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)

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
        print(f"{'batch':>6} {'examples/s':>12} {'sd':>8} {'GFLOP/s':>9} {'ratio':>6}   (n={args.repeats} repeats)")
        for batch_size in args.batch_sizes:
            epochs = max(1, min(20, int(2e5 * batch_size / 1024 // args.examples)))
            rates, flops = training_speed(device, batch_size, args.examples, epochs, args.repeats, precision)
            mean = statistics.mean(rates)
            sd = statistics.stdev(rates) if len(rates) > 1 else 0.0
            gflops = mean * flops / 1e9
            print(f"{batch_size:>6} {mean:>12.0f} {sd:>8.0f} {gflops:>9.1f} {gflops / peak:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
