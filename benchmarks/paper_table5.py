"""The paper's Table 5 on its own networks: Fashion-MNIST, its small and large conv teachers and the
large one calibrated by a short sweetspot study, each distilled into its General student with every
class missing in turn, at T = 3 to 20, with the paper's loss (Eq. 4, no T^2). Prints the mean row.

    .venv/bin/python benchmarks/paper_table5.py [--device cuda] [--trials 8] [--out table5]  # a GPU: ~10 min
    .venv/bin/python benchmarks/paper_table5.py --tiny                                       # CPU, seconds

The paper's mean row (its small / large teacher), computed from the ten rows of its Fashion-MNIST table
(the one whose rows are T-shirt ... Ankle boot; the text extraction in shared/paper puts it under the
caption "Table 4"): T=3 83.4 / 0.3, T=9 72.3 / 3.2, T=20 49.4 / 3.5. On 2 CPU cores the conv teachers take 10 to 20
minutes per epoch (benchmarks/paper_networks.py): this is for a lent GPU. ``--tiny`` swaps in the
digits, small convnets and a 3-trial study, so the whole path runs in the tests.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import optuna
import torch
from machine import describe

from sweetspot.config import config_from_dict
from sweetspot.experiments import EXPERIMENTS, Setup, TeacherSpec
from sweetspot.experiments.missing_class import TEMPERATURES
from sweetspot.export import ordered_front
from sweetspot.objective import Objective
from sweetspot.study import open_storage, open_study, queue_trials
from sweetspot.trial import prepare, resolve_device
from sweetspot.workers import drain

PAPER_MEAN_ROW = {  # the mean of the Fashion-MNIST table's ten rows (T-shirt ... Ankle boot)
    "small": dict(zip(TEMPERATURES, (83.4, 78.6, 72.3, 63.1, 55.1, 49.4))),
    "large": dict(zip(TEMPERATURES, (0.3, 1.5, 3.2, 3.5, 4.2, 3.5))),
}


def study_config(tiny: bool, trials: int) -> dict:
    """The short study that calibrates the large teacher (objective: the missing-class recall)."""
    if tiny:
        teacher = {"arch": "convnet", "channels": [8, 8], "pool": [1, 1]}
        student = {"arch": "convnet", "channels": [4], "pool": [1], "epochs": 3, "batch_size": 64, "lr": 0.01}
        data, batches, epochs = {"name": "digits"}, [64, 512], [1, 6]
    else:
        teacher = {"arch": "paper-fashion-mnist-large"}
        student = {"arch": "paper-fashion-mnist-general", "epochs": 10, "batch_size": 256, "lr": 0.001}
        data, batches, epochs = {"name": "fashion-mnist"}, [64, 4096], [1, 20]
    return {
        "name": "paper-table5", "n_trials": trials, "seed": 0,
        "objectives": {"missing_class_recall": "maximize"},
        "data": data, "teacher": {**teacher, "optimizer": "adam", "lr": 0.001},
        "student": {**student, "optimizer": "adam"},
        "distill": {"temperature": 9, "alpha": 0.99, "loss": "paper", "withheld_classes": [], "missing_classes": "all"},
        "search": {"batch_size": batches, "epochs": epochs},
    }


def calibrate(config, splits, folder: Path) -> TeacherSpec:
    """The large teacher's batch size and epochs by a short study: its best trial, as an export picks it."""
    storage = open_storage(f"sqlite:///{folder / 'table5.db'}")
    study = open_study(storage, config.name, config)
    queue_trials(study, config.n_trials)
    drain(study, Objective(config, splits))
    best = ordered_front(study)[0]
    return TeacherSpec(f"calibrated (trial {best.number})", None, best.params["batch_size"], best.params["epochs"],
                       best.user_attrs["seed"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="digits and small nets on the CPU (the tests)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--trials", type=int, default=8, help="trials of the calibrating study (default: 8)")
    parser.add_argument("--teacher-epochs", type=int, default=20, help="epochs of the small and large teachers")
    parser.add_argument("--out", default="table5", help="folder of the missing-class CSV, markdown and figure")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(describe())
    raw = study_config(args.tiny, 3 if args.tiny else args.trials)
    if args.data_dir:
        raw["data"]["data_dir"] = args.data_dir
    config = config_from_dict(raw)
    device = resolve_device(args.device)
    splits = prepare(config, device)
    epochs = 2 if args.tiny else args.teacher_epochs
    small = "convnet" if args.tiny else "paper-fashion-mnist-small"
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        calibrated = calibrate(config, splits, Path(tmp))
    print(f"calibrating study: {config.n_trials} trials in {time.perf_counter() - start:.0f} s; best: batch "
          f"{calibrated.batch_size}, {calibrated.epochs} epochs", flush=True)
    teachers = (TeacherSpec("small", small, 64, epochs), TeacherSpec("large", None, 64, epochs), calibrated)
    setup = Setup(config, splits, teachers, split="test")
    start = time.perf_counter()
    EXPERIMENTS["missing-class"].run(setup, Path(args.out), lambda: None)
    print(f"missing-class: {len(teachers)} teachers x {len(TEMPERATURES)} temperatures in "
          f"{time.perf_counter() - start:.0f} s on {device}; outputs in {args.out}/\n")
    rows = list(_rows(Path(args.out) / "missing-class.csv"))
    print("Table 5 mean row: student recall (%) on the missing class, mean over the classes, test split, loss paper")
    print("| teacher | " + " | ".join(f"T={t}" for t in TEMPERATURES) + " |")
    print("|---|" + "---|" * len(TEMPERATURES))
    for teacher in dict.fromkeys(r["teacher"] for r in rows):
        mine = [r for r in rows if r["teacher"] == teacher]
        means = [100 * statistics.fmean(float(r["student_acc_on_class"]) for r in mine if int(r["temperature"]) == t)
                 for t in TEMPERATURES]
        print(f"| {teacher} | " + " | ".join(f"{m:.1f}" for m in means) + " |")
    for name, row in PAPER_MEAN_ROW.items():
        print(f"| paper's {name} | " + " | ".join(f"{row[t]:.1f}" for t in TEMPERATURES) + " |")
    if device.type == "cuda":
        print(f"peak CUDA memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")


def _rows(path: Path):
    import csv

    with open(path, newline="") as handle:
        yield from csv.DictReader(handle)


if __name__ == "__main__":
    main()
