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

from sweetspot.data import transfer_indices
from sweetspot.experiments.common import Setup, Tick, markdown_table, pct, train_student, transfer_logits, write_outputs
from sweetspot.metrics import accuracy
from sweetspot.training import predict_logits

COUNTS = (5, 10, 20, 50, 100, 200, 500, 1000, 2000)  # the paper's range: 5 to 2000 per class
WITHIN = 0.01  # "reaches the full transfer set": within 1 accuracy point of it
NAME = "examples-per-class"


def counts(setup: Setup) -> list[int | None]:
    """The sizes below the smallest class of the transfer set, then None: the full transfer set."""
    full = transfer_indices(setup.splits.y_train, setup.config.distill.withheld_classes, None, setup.config.seed)
    smallest = min(n for n in setup.splits.y_train[full].bincount().tolist() if n > 0)
    return [n for n in COUNTS if n < smallest] + [None]


def work(setup: Setup) -> int:
    return len(setup.teachers) * len(counts(setup))


def run(setup: Setup, out: Path, tick: Tick) -> list[Path]:
    config, splits = setup.config, setup.splits
    withheld = config.distill.withheld_classes
    x_eval, y_eval = splits.evaluation(setup.split)
    full = transfer_indices(splits.y_train, withheld, None, config.seed)
    steps = config.student.epochs * math.ceil(len(full) / config.student.batch_size)
    rows = []
    for spec in setup.teachers:
        logits = transfer_logits(config, splits, spec)
        for n in counts(setup):
            index = transfer_indices(splits.y_train, withheld, n, config.seed)
            student = train_student(config, splits, index, logits, config.distill.temperature, steps=steps)
            rows.append(
                {
                    "teacher": spec.label,
                    "examples_per_class": "all" if n is None else n,
                    "transfer_examples": len(index),
                    "student_acc": round(accuracy(predict_logits(student, x_eval), y_eval), 6),
                }
            )
            tick()
    teachers = list(dict.fromkeys(r["teacher"] for r in rows))
    return write_outputs(
        out, NAME, rows, _markdown(rows, teachers, setup.split), lambda fig: _draw(fig, rows, teachers), (6.5, 4.2)
    )


def enough(rows: list[dict[str, Any]]) -> int | str | None:
    """The smallest examples-per-class whose accuracy is within WITHIN of the full transfer set's."""
    full = next(r["student_acc"] for r in rows if r["examples_per_class"] == "all")
    return next((r["examples_per_class"] for r in rows if r["student_acc"] >= full - WITHIN), None)


def _markdown(rows: list[dict[str, Any]], teachers: list[str], split: str) -> str:
    sizes = list(dict.fromkeys(r["examples_per_class"] for r in rows))
    table = []
    for teacher in teachers:
        mine = [r for r in rows if r["teacher"] == teacher]
        table.append([teacher, *(pct(r["student_acc"]) for r in mine), enough(mine)])
    return (
        f"Student accuracy (%) on the {split} split by transfer examples per class; the last column is the "
        f"smallest number within {100 * WITHIN:.0f} point of the full transfer set.\n\n"
        + markdown_table(["teacher", *map(str, sizes), "enough"], table)
    )


def _draw(fig: Any, rows: list[dict[str, Any]], teachers: list[str]) -> None:
    ax = fig.subplots()
    for teacher in teachers:
        mine = [r for r in rows if r["teacher"] == teacher]
        sized = [r for r in mine if r["examples_per_class"] != "all"]
        (line,) = ax.plot(
            [r["examples_per_class"] for r in sized], [100 * r["student_acc"] for r in sized], marker="o", label=teacher
        )
        ax.axhline(100 * mine[-1]["student_acc"], color=line.get_color(), linestyle=":", linewidth=1)
    ax.set(
        xscale="log",
        xlabel="transfer examples per class",
        ylabel="student accuracy (%)",
        title="dotted: the full transfer set",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
