"""One default-study trial on the CPU and on CUDA: both wall times and both sets of figures, with one
teacher seed and with three stacked (``search.teacher_seeds``).

A short prepared check for when a GPU machine is at hand (this project's CI has none). It runs the
whole pipeline (teacher, soft labels, student, metrics) with the splits resident on each device,
once to warm up and ``--repeats`` times timed, and checks that the tensors really live on CUDA.
The figures differ between devices in the last digits (other kernels sum in another order); they
should agree to about a point of accuracy. For N stacked seeds it also trains each seed alone on
CUDA and prints the largest difference between a stacked seed's figures and its own alone. With a
config of a byte dataset (``--config studies/fashion-mnist-mlp.yaml``) it checks that the inputs stay
uint8 on the device and that a batch standardised there equals the CPU's.

    .venv/bin/python benchmarks/cuda_check.py [--batch-size 64] [--epochs 20] [--repeats 3] [--teacher-seeds 1 3]
        [--config FILE]

Exit code 1 (and one line) where no CUDA device is visible.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace

import torch

from sweetspot.config import load_config
from sweetspot.core.trial import TeacherParams, prepare, run_trial


def timed_trials(config, device: torch.device, params: TeacherParams, repeats: int) -> tuple[list[float], dict]:
    splits = prepare(config, device)
    assert splits.x_train.device.type == device.type, f"splits are on {splits.x_train.device}, not {device}"
    held = splits.x_train.stored
    print(f"{device.type}: inputs held as {held.dtype} ({splits.nbytes / 2**20:.1f} MB with labels)")
    if device.type == "cuda":
        on_cpu = prepare(config, torch.device("cpu")).x_train
        worst = (splits.x_train[:4096].cpu() - on_cpu[:4096]).abs().max().item()
        print(f"cuda: largest difference of a standardised batch from the CPU's: {worst:.2e}")
    run_trial(config, splits, params, seed=0)  # warm-up: kernels, allocator, cuBLAS handles
    times, metrics = [], {}
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        outcome = run_trial(config, splits, params, seed=0)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
        assert next(outcome.teacher.parameters()).device.type == device.type
        metrics = outcome.metrics
    return times, metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="study config YAML (default: the built-in digits study)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--teacher-seeds", type=int, nargs="+", default=[1, 3])
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("cuda_check: no CUDA device visible here; run it on a GPU machine", file=sys.stderr)
        return 1
    config = load_config(args.config)
    params = TeacherParams(args.batch_size, args.epochs)
    print(
        f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, CPU threads {torch.get_num_threads()}; "
        f"study {config.name!r}, trial batch {params.batch_size} x {params.epochs} epochs, {args.repeats} timed repeats"
    )
    keys = ("teacher_val_acc", "teacher_entropy", "student_val_acc", "missing_class_recall")
    for n in args.teacher_seeds:
        seeded = replace(config, search=replace(config.search, teacher_seeds=n))
        rows = {}
        for name in ("cpu", "cuda"):
            times, metrics = timed_trials(seeded, torch.device(name), params, args.repeats)
            rows[name] = statistics.mean(times)
            figures = "  ".join(f"{k} {metrics[k]:.4f}" for k in keys if metrics[k] is not None)
            print(
                f"N={n} {name:<5} {statistics.mean(times):7.2f} s "
                f"(sd {statistics.stdev(times) if len(times) > 1 else 0:.2f})  {figures}",
                flush=True,
            )
        print(f"N={n} speed-up cuda over cpu: {rows['cpu'] / rows['cuda']:.1f}x")
        if n > 1:
            single = replace(config, search=replace(config.search, teacher_seeds=1))
            splits = prepare(config, torch.device("cuda"))
            stacked = run_trial(seeded, splits, params, seed=0).metrics
            seeded = stacked["teacher_seeds"]
            alone = [run_trial(single, splits, params, seed=s).metrics for s in seeded["seeds"]]
            worst = max(abs(seeded["values"][k][i] - one[k])
                        for i, one in enumerate(alone) for k in keys if stacked[k] is not None)
            print(f"N={n} on cuda: largest difference between a stacked seed's figures and the seed alone: {worst:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
