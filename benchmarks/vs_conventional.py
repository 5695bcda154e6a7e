"""One distillation trial run by sweetspot and by a conventional pipeline: wall times and accuracies.

The trial (issue 6): Fashion-MNIST; teacher an MLP of 6 hidden layers of 512, Adam 1e-3, batch 256,
5 epochs; student a single linear layer (Adam 1e-2, batch 256), 10 epochs, class 0 withheld from
the transfer set, T = 9, alpha = 0.99 on the soft term; both scored on the official test images.

The conventional pipeline (``benchmarks/conventional.py``) is written the way most distillation code
is: torchvision's dataset with a ``ToTensor`` + ``Normalize`` transform, ``DataLoader``s (shuffled,
batch 256), the teacher's forward pass on every distillation step, on as many training images as
sweetspot's training split. Both timings include loading the data.
Target: sweetspot at least 4x faster at equal accuracy (within 1 point).

The accuracy on a withheld class swings by tens of points from one seed to the next (it rests on
small logits of a class the student never saw), so both pipelines run ``--seeds`` seeds and the
comparison is of the means, with their standard deviations beside them. sweetspot runs twice per
seed: float32, and with the teacher's training steps in bfloat16 autocast (``teacher.precision``).

    .venv/bin/python benchmarks/vs_conventional.py [--data-dir DIR] [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import conventional
import torch

from sweetspot.config import DistillConfig, StudentConfig, StudyConfig, config_from_dict

TEACHER_EPOCHS, STUDENT_EPOCHS, BATCH, T, ALPHA, WITHHELD = 5, 10, 256, 9.0, 0.99, 0


def trial_config(data_dir: str | None, precision: str = "float32") -> StudyConfig:
    config = config_from_dict(
        {"data": {"name": "fashion-mnist", "data_dir": data_dir}, "teacher": {"precision": precision}}
    )
    student = StudentConfig(arch="linear", optimizer="adam", lr=0.01, epochs=STUDENT_EPOCHS, batch_size=BATCH)
    return replace(
        config, student=student,
        # one student, as the conventional pipeline trains: no k-less students
        distill=DistillConfig(temperature=T, alpha=ALPHA, withheld_classes=(WITHHELD,), missing_classes=()),
    )


def sweetspot_trial(config: StudyConfig, seed: int) -> tuple[float, float, float]:
    from sweetspot.core.splits import load_splits
    from sweetspot.core.trial import TeacherParams, run_trial

    start = time.perf_counter()
    load_splits.cache_clear()
    splits = load_splits(config.data, config.seed)
    metrics = run_trial(config, splits, TeacherParams(BATCH, TEACHER_EPOCHS), seed, split="test").metrics
    return time.perf_counter() - start, metrics["student_val_acc"], metrics["student_withheld_acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="where the Fashion-MNIST files are (default: as sweetspot finds them)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per pipeline (default: 3)")
    args = parser.parse_args()
    from sweetspot.core.datasets import default_root, load_mnist_family

    load_mnist_family("fashion-mnist", "FashionMNIST", args.data_dir, False)  # files checked, unpacked where needed
    root = args.data_dir or str(default_root())
    print(
        f"torch threads {torch.get_num_threads()}; teacher 6 x 512 MLP, batch {BATCH}, {TEACHER_EPOCHS} epochs; "
        f"linear student, {STUDENT_EPOCHS} epochs, class {WITHHELD} withheld, T = {T:g}, alpha = {ALPHA}"
    )
    configs = {"sweetspot": trial_config(args.data_dir), "sweetspot bf16": trial_config(args.data_dir, "bfloat16")}
    runs: dict[str, list[tuple[float, float, float]]] = {"sweetspot": [], "sweetspot bf16": [], "conventional": []}
    print(f"{'pipeline':<15} {'seed':>4} {'wall s':>7} {'student acc':>12} {'acc class 0':>12}")
    for seed in range(args.seeds):
        for name, config in configs.items():
            runs[name].append(sweetspot_trial(config, seed))
        runs["conventional"].append(
            conventional.run(root, conventional.Trial(BATCH, TEACHER_EPOCHS, STUDENT_EPOCHS, BATCH), seed)
        )
        for name in runs:
            seconds, acc, acc_0 = runs[name][-1]
            print(f"{name:<15} {seed:>4} {seconds:>7.1f} {acc:>12.4f} {acc_0:>12.4f}", flush=True)
    mean = {name: [statistics.mean(column) for column in zip(*rows)] for name, rows in runs.items()}
    sd = {
        name: [statistics.stdev(column) if len(rows) > 1 else 0.0 for column in zip(*rows)]
        for name, rows in runs.items()
    }
    for name in runs:
        print(
            f"{name:<15} mean {mean[name][0]:>7.1f} {mean[name][1]:>7.4f} (sd {sd[name][1]:.4f}) "
            f"{mean[name][2]:>7.4f} (sd {sd[name][2]:.4f})"
        )
    theirs = mean["conventional"]
    for name in configs:
        ours = mean[name]
        print(
            f"{name}: ratio {theirs[0] / ours[0]:.2f} (conventional / sweetspot wall time; target >= 4); "
            f"accuracy difference of the means {100 * (ours[1] - theirs[1]):+.2f} points overall, "
            f"{100 * (ours[2] - theirs[2]):+.2f} on class 0 "
            "(target: within 1 point)"
        )


if __name__ == "__main__":
    main()
