"""Is there a cheap teacher-side measure that predicts the student? Issue 22's part 7.

Over the teachers of a ``benchmarks/student_gain.py`` run (every teacher at every seed, read back
from its checkpoints: nothing is retrained), computes measures that need no student but the
missing-class probe, and their Spearman correlation with each cell's student test accuracy:

* ``val_nll_ts``: validation NLL after temperature scaling (T fitted on the validation split);
* ``val_ece``: expected calibration error at T = 1 on the validation split;
* ``entropy_train`` / ``entropy_val``: soft-label entropy at T = 9 on the transfer examples and on the
  validation split (the teacher's own examples against unseen ones);
* ``missing_class_recall``: the default probe (linear k-less students, as a trial trains them);
* ``teacher_val_acc``: the teacher's own validation accuracy (what a practitioner stops on).

A measure is offered as a student-free objective only where |rho| >= 0.8 and the teacher kind it would
choose (the best mean measure in the direction of rho) gives a student within 1 sd of the best kind's.

    .venv/bin/python benchmarks/teacher_predictors.py --rows OUT/student-gain.csv --work OUT/work \\
        --dataset fashion-mnist [--out OUT]

Several runs (each cell in its own process and ``--work``): ``--rows A.csv B.csv --work A/work B/work``.
A teacher missing from ``--work`` is trained again from its seed (the same teacher); ``--students cnn``
keeps the rows of one student.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from machine import describe
from scipy.stats import spearmanr
from student_gain import base_config, cell_config, fitted, read_rows

from sweetspot.core.checkpoints import CheckpointStore
from sweetspot.core.metrics import accuracy, expected_calibration_error, normalized_entropy
from sweetspot.core.seeds import path_seed
from sweetspot.core.training import predict_logits
from sweetspot.core.trial import TeacherParams, run_trial, teacher_seeds
from sweetspot.experiments.common import markdown_table, mean_sd

MEASURES = ("val_nll_ts", "val_ece", "entropy_train", "entropy_val", "missing_class_recall", "teacher_val_acc")
RHO_NEEDED = 0.8


def nll_after_scaling(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The validation NLL at the temperature that minimises it (a grid of 61 log-spaced T, 0.1 to 100)."""
    return min(float(F.cross_entropy(logits / t, labels)) for t in torch.logspace(-1, 2, 61).tolist())


def measures(config: Any, splits: Any, batch: int, epochs: int, seed: int, store: CheckpointStore) -> dict[str, float]:
    """The teacher ``batch x epochs`` at ``seed`` (restored from ``store``), measured."""
    outcome = run_trial(config, splits, TeacherParams(batch, epochs), seed, seeds=[seed], checkpoints=store)
    val = predict_logits(outcome.teacher, splits.x_val)
    return {
        "val_nll_ts": nll_after_scaling(val, splits.y_val),
        "val_ece": expected_calibration_error(val, splits.y_val),
        "entropy_train": outcome.metrics["teacher_entropy"],
        "entropy_val": normalized_entropy(val, 9.0),
        "missing_class_recall": outcome.metrics["missing_class_recall"],
        "teacher_val_acc": accuracy(val, splits.y_val),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=Path, nargs="+", required=True, help="student_gain.py CSVs")
    parser.add_argument("--work", type=Path, nargs="+", required=True,
                        help="their --work folders (the teachers' checkpoints), one per CSV")
    parser.add_argument("--dataset", choices=("digits", "fashion-mnist"), default="fashion-mnist")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--seeds", type=int, default=5, help="the run's --seeds")
    parser.add_argument("--out", type=Path, help="write STEM.md here")
    parser.add_argument("--stem", default="teacher-predictors", help="the output's name (default: %(default)s)")
    parser.add_argument("--students", nargs="+", help="only the rows of these students (default: every row)")
    args = parser.parse_args()
    if len(args.rows) != len(args.work):
        parser.error(f"--rows names {len(args.rows)} CSVs and --work {len(args.work)} folders: give one per CSV")
    print(describe())
    rows = [{**r, "work": work} for path, work in zip(args.rows, args.work) for r in read_rows(path)
            if r["batch_size"] is not None and (not args.students or r["student"] in args.students)]
    base = base_config("digits" if args.tiny else args.dataset, args.tiny)
    seen: dict[tuple[Any, ...], dict[str, float]] = {}
    for r in rows:
        store = CheckpointStore(r.pop("work") / "checkpoints", 2**40)
        key = (r["transfer"], r["labels_per_class"], r["batch_size"], r["epochs"], r["seed_index"])
        if key not in seen:
            labels = None if r["labels_per_class"] == "all" else int(r["labels_per_class"])
            config, splits = fitted(cell_config(base, "linear", labels, r["transfer"], args.tiny))
            own = path_seed(config, r["batch_size"], config.teacher.lr)
            seed = teacher_seeds(own, args.seeds)[r["seed_index"]]
            seen[key] = measures(config, splits, r["batch_size"], r["epochs"], seed, store)
        r.update(seen[key])
    table, offered = [], []
    for cell in dict.fromkeys((r["student"], r["labels_per_class"], r["transfer"]) for r in rows):
        mine = [r for r in rows if (r["student"], r["labels_per_class"], r["transfer"]) == cell]
        accs = [r["test_acc"] for r in mine]
        kinds = {k: [r for r in mine if r["teacher"] == k] for k in dict.fromkeys(r["teacher"] for r in mine)}
        best_kind = max(kinds, key=lambda k: mean_sd([r["test_acc"] for r in kinds[k]])[0])
        best_mean, best_sd = mean_sd([r["test_acc"] for r in kinds[best_kind]])
        cells = []
        for m in MEASURES:
            rho = spearmanr([r[m] for r in mine], accs).statistic
            if math.isnan(rho):
                cells.append("-")
                continue
            sign = 1 if rho >= 0 else -1  # the direction in which the measure predicts a better student
            pick = max(kinds, key=lambda k: sign * mean_sd([r[m] for r in kinds[k]])[0])
            close = mean_sd([r["test_acc"] for r in kinds[pick]])[0] >= best_mean - best_sd
            cells.append(f"{rho:.2f} ({pick}{', within 1 sd' if close else ''})")
            if abs(rho) >= RHO_NEEDED and close:
                offered.append(f"{m} ({cell[0]} student, {cell[1]} labels per class, {cell[2]})")
        table.append([*map(str, cell), str(len(mine)), *cells])
    text = ("Spearman's rho of each teacher-side measure with the student's test accuracy, over every teacher "
            "at every seed of the cell, and the teacher kind it would choose (the best mean measure in rho's "
            "direction; 'within 1 sd': its student is within 1 sd of the best kind's).\n\n"
            + markdown_table(["student", "labels/class", "transfer", "teachers", *MEASURES], table)
            + f"\nReaches |rho| >= {RHO_NEEDED} and chooses within 1 sd of the best: "
            + ("; ".join(offered) if offered else "**none**") + ".\n")
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{args.stem}.md").write_text(text)


if __name__ == "__main__":
    main()
