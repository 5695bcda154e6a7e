"""``examples-per-class`` (the paper's Figs. 4 and 8): how few transfer examples a teacher needs.

A teacher whose soft labels carry similarity information teaches many classes with each example,
so its student reaches the full transfer set's accuracy with few examples per class. Every size
gets the same number of optimizer steps as the full transfer set (the config's student epochs over
it), so that a small set is not simply under-trained.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sweetspot.core.metrics import accuracy
from sweetspot.core.splits import transfer_indices
from sweetspot.core.training import predict_logits
from sweetspot.experiments.common import (
    Setup,
    Tick,
    by,
    column,
    markdown_table,
    mean_sd,
    seeds_note,
    spread,
    train_student,
    transfer_logits,
    write_outputs,
)

COUNTS = (5, 10, 20, 50, 100, 200, 500, 1000, 2000)  # the paper's range: 5 to 2000 per class
WITHIN = 0.01  # "reaches the full transfer set": within 1 accuracy point of it
NAME = "examples-per-class"


def counts(setup: Setup) -> list[int | None]:
    """The sizes below the smallest class of the transfer set, then None: the full transfer set."""
    full = transfer_indices(setup.splits.y_train, setup.config.distill.withheld_classes, None, setup.config.seed)
    smallest = min(n for n in setup.splits.y_train[full].bincount().tolist() if n > 0)
    return [n for n in COUNTS if n < smallest] + [None]


def work(setup: Setup) -> int:
    return len(setup.teachers) * setup.teacher_seeds * len(counts(setup))


def run(setup: Setup, out: Path, tick: Tick) -> list[Path]:
    config, splits = setup.config, setup.splits
    withheld = config.distill.withheld_classes
    x_eval, y_eval = splits.evaluation(setup.split)
    full = transfer_indices(splits.y_train, withheld, None, config.seed)
    steps = config.student.epochs * math.ceil(len(full) / config.student.batch_size)
    rows = []
    for spec in setup.teachers:
        for seeded in setup.seeded(spec):
            logits = transfer_logits(setup, seeded)
            for n in counts(setup):
                index = transfer_indices(splits.y_train, withheld, n, config.seed)
                student = train_student(config, splits, index, logits, config.distill.temperature, steps=steps)
                rows.append(
                    {
                        "teacher": spec.label,
                        "teacher_seed": seeded.seed,
                        "examples_per_class": "all" if n is None else n,
                        "transfer_examples": len(index),
                        "student_acc": round(accuracy(predict_logits(student, x_eval), y_eval), 6),
                    }
                )
                tick()
    teachers = list(dict.fromkeys(r["teacher"] for r in rows))
    return write_outputs(
        out, NAME, rows, _markdown(rows, teachers, setup), lambda fig: _draw(fig, rows, teachers), (6.5, 4.2)
    )


def _curve(rows: list[dict[str, Any]]) -> dict[int | str, list[float]]:
    """One teacher's accuracies by examples per class, one value per teacher seed."""
    return {n: column(by(rows, examples_per_class=n), "student_acc") for n in dict.fromkeys(
        column(rows, "examples_per_class"))}


def enough(rows: list[dict[str, Any]]) -> int | str | None:
    """The smallest examples-per-class whose mean accuracy (over the teacher seeds) is within WITHIN
    of the full transfer set's."""
    means = {n: mean_sd(accs)[0] for n, accs in _curve(rows).items()}
    return next((n for n, acc in means.items() if acc >= means["all"] - WITHIN), None)


def _markdown(rows: list[dict[str, Any]], teachers: list[str], setup: Setup) -> str:
    sizes = list(dict.fromkeys(r["examples_per_class"] for r in rows))
    table = []
    for teacher in teachers:
        mine = by(rows, teacher=teacher)
        table.append([teacher, *(spread(accs) for accs in _curve(mine).values()), enough(mine)])
    return (
        f"Student accuracy (%) on the {setup.split} split by transfer examples per class "
        f"({seeds_note(setup.teacher_seeds)}); the "
        f"last column is the smallest number whose mean is within {100 * WITHIN:.0f} point of the full transfer "
        "set's.\n\n" + markdown_table(["teacher", *map(str, sizes), "enough"], table)
    )


def _draw(fig: Any, rows: list[dict[str, Any]], teachers: list[str]) -> None:
    ax = fig.subplots()
    for i, teacher in enumerate(teachers):
        curve = {n: mean_sd(accs) for n, accs in _curve(by(rows, teacher=teacher)).items()}
        sized = [n for n in curve if n != "all"]
        ax.errorbar(sized, [100 * curve[n][0] for n in sized], yerr=[100 * curve[n][1] for n in sized], marker="o",
                    capsize=2, color=f"C{i}", label=teacher)
        ax.axhline(100 * curve["all"][0], color=f"C{i}", linestyle=":", linewidth=1)
    ax.set(
        xscale="log",
        xlabel="transfer examples per class",
        ylabel="student accuracy (%)",
        title="dotted: the full transfer set",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
