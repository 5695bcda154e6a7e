"""How much of a trial's score is noise: the student-seed and teacher-seed standard deviation of every
candidate objective, at three teachers (barely trained, calibrated, over-trained), per dataset and
student learning rate. The noise table (docs/concepts/noise.md) and the default objectives come from its output.

    .venv/bin/python benchmarks/noise.py [--datasets digits fashion-mnist] [--lrs 0.01 0.001]
        [--student-seeds 5] [--teacher-seeds 3] [--json noise.json] [--data-dir DIR]
    .venv/bin/python benchmarks/noise.py --datasets fashion-mnist --config studies/fashion-mnist-mlp.yaml
        --teachers calibrated=1024x3 fixed=256x20 --student-seeds 1 --teacher-seeds 3 --split test

Student noise: one teacher (the trial's own seed), ``--student-seeds`` values of ``student.seed``.
Teacher noise: ``--teacher-seeds`` teacher seeds, student seed 0. Both on the validation split, T = 9,
every class missing in turn (``distill.missing_classes: all``, nothing withheld). Teachers are trained
once per seed and shared through a temporary checkpoint folder, so each student seed costs only its
students.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from machine import describe

from sweetspot.config import config_from_dict, load_config
from sweetspot.core.checkpoints import CheckpointStore
from sweetspot.core.seeds import derive_seed
from sweetspot.core.trial import TeacherParams, prepare, run_trial, trial_seed

REPO = Path(__file__).resolve().parents[1]
# dataset -> (config, {teacher label: (batch size, epochs)})
SETUPS = {
    "digits": (None, {"barely trained": (1024, 1), "calibrated": (64, 2), "over-trained": (16, 100)}),
    "fashion-mnist": (REPO / "studies" / "fashion-mnist-mlp.yaml",
                      {"barely trained": (8192, 1), "calibrated": (1024, 3), "over-trained": (256, 20)}),
}
METRICS = ("missing_class_recall", "missing_class_recall_corrected", "missing_class_acc", "student_val_acc",
           "class0_recall", "teacher_entropy")
SHORT = {"missing_class_recall": "recall", "missing_class_recall_corrected": "recall corr.",
         "missing_class_acc": "k-less acc", "student_val_acc": "student acc", "class0_recall": "class-0 recall",
         "teacher_entropy": "H(9)"}


def scores(metrics: dict) -> dict[str, float]:
    picked = {m: metrics[m] for m in METRICS if m in metrics}
    picked["class0_recall"] = metrics["missing_class_recall_by_class"]["0"]  # one class: the old objective's kind
    return picked


def sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--lrs", nargs="+", type=float, default=[1e-2, 1e-3])
    parser.add_argument("--student-seeds", type=int, default=5)
    parser.add_argument("--teacher-seeds", type=int, default=3)
    parser.add_argument("--loss", choices=("hinton", "paper"), default="hinton")
    parser.add_argument("--config", help="the study config to start from (default: the dataset's, above)")
    parser.add_argument("--teachers", nargs="+", metavar="LABEL=BATCHxEPOCHS",
                        help="teachers instead of the dataset's three, e.g. calibrated=1024x3")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--json", help="also write every run's scores here")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    print(describe())
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        store = CheckpointStore(Path(tmp), 8 * 2**30)
        for dataset in args.datasets:
            path, teachers = SETUPS[dataset]
            if args.teachers:
                teachers = {label: tuple(map(int, spec.split("x"))) for label, _, spec in
                            (t.partition("=") for t in args.teachers)}
            raw = load_config(args.config or path).to_dict()
            raw["distill"].update(withheld_classes=[], missing_classes="all", loss=args.loss)
            raw["objectives"] = {"missing_class_recall": "maximize"}
            if args.data_dir:
                raw["data"]["data_dir"] = args.data_dir
            base = config_from_dict(raw)
            splits = prepare(base, torch.device("cpu"))
            for lr in args.lrs:
                for label, (batch, epochs) in teachers.items():
                    params = TeacherParams(batch, epochs)
                    own = trial_seed(base, 0, params)
                    teacher_seeds = [own, *(derive_seed(own, 100 + i) for i in range(1, args.teacher_seeds))]
                    cells = [(s, own) for s in range(args.student_seeds)] + [(0, t) for t in teacher_seeds[1:]]
                    for student, teacher in cells:
                        config = replace(base, student=replace(base.student, lr=lr, seed=student))
                        start = time.perf_counter()
                        outcome = run_trial(config, splits, params, teacher, checkpoints=store, split=args.split)
                        runs.append({"dataset": dataset, "lr": lr, "teacher": label, "batch": batch, "epochs": epochs,
                                     "student_seed": student, "teacher_seed": teacher,
                                     "seconds": round(time.perf_counter() - start, 2), **scores(outcome.metrics)})
                        print(json.dumps(runs[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    print_table(runs, args)


def print_table(runs: list[dict], args: argparse.Namespace) -> None:
    over = "student" if args.student_seeds > 1 else "teacher"
    print(f"\nmean over the {over} seeds (student-seed sd, n={args.student_seeds}; teacher-seed sd, "
          f"n={args.teacher_seeds}), {args.split} split, T = 9, loss {args.loss}\n")
    print("| dataset | student lr | teacher | " + " | ".join(SHORT[m] for m in METRICS) + " |")
    print("|---|---|---|" + "---|" * len(METRICS))
    keys = list(dict.fromkeys((r["dataset"], r["lr"], r["teacher"]) for r in runs))
    for dataset, lr, teacher in keys:
        mine = [r for r in runs if (r["dataset"], r["lr"], r["teacher"]) == (dataset, lr, teacher)]
        own = mine[0]["teacher_seed"]
        by_student = [r for r in mine if r["teacher_seed"] == own]
        by_teacher = [r for r in mine if r["student_seed"] == 0]
        cells = []
        for m in METRICS:
            values = [r[m] for r in by_student] if len(by_student) > 1 else [r[m] for r in by_teacher]
            cells.append(f"{statistics.mean(values):.3f} ({sd([r[m] for r in by_student]):.3f}; "
                         f"{sd([r[m] for r in by_teacher]):.3f})")
        print(f"| {dataset} | {lr:g} | {teacher} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
