"""``missing-class`` (the paper's Tables 4-6): distil without class k, then ask the student about k.

A teacher rich in similarity information teaches a class the student never saw; one without it
does not. For every class k and temperature T the student is distilled from the teacher's logits
with every example of k removed from the transfer set, and scored on the examples of k.

The students of one teacher and T are trained at once, as a trial trains them (``students.py``):
the same initial weights and batch order, each masking its class. Hinton et al. (2015) also shift
the missing class's output bias, which the hard-label term keeps pushing down because k is never a
label. Hinton chose the shift by hand; here it is chosen without labels (``metrics.bias_shift``):
the shift, up or down, after which the student predicts k on as many validation inputs as the
teacher does. Both figures are reported.
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path
from typing import Any

from sweetspot.core.metrics import accuracy, bias_shift, class_accuracy, normalized_entropy, shifted
from sweetspot.core.splits import class_name
from sweetspot.core.training import predict_logits
from sweetspot.experiments.common import (
    Setup,
    TeacherSpec,
    Tick,
    by,
    column,
    markdown_table,
    mean_sd,
    seeds_note,
    spread,
    train_missing_class_students,
    train_teacher,
    write_outputs,
)

TEMPERATURES = (3, 6, 9, 12, 15, 20)  # the paper's Tables 4-6
NAME = "missing-class"


def classes(setup: Setup) -> tuple[int, ...]:
    return setup.classes if setup.classes is not None else tuple(range(setup.splits.n_classes))


def temperatures(setup: Setup) -> tuple[float, ...]:
    return setup.temperatures if setup.temperatures is not None else TEMPERATURES


def work(setup: Setup) -> int:
    return len(setup.teachers) * len(setup.seeded(setup.teachers[0])) * len(temperatures(setup))


def run(setup: Setup, out: Path, tick: Tick) -> list[Path]:
    rows = []
    ks = classes(setup)
    for spec in setup.teachers:
        for seeded in setup.seeded(spec):
            rows += teacher_rows(setup, seeded, ks, temperatures(setup), tick)
    return write(out, rows, setup.split)


def write(out: Path, rows: list[dict[str, Any]], split: str) -> list[Path]:
    """The CSV, markdown and figure of ``rows``: one run's, or several runs' of the same teachers
    and settings on different teacher seeds, put together (``benchmarks/paper_table5.py --combine``)."""
    teachers = list(dict.fromkeys(r["teacher"] for r in rows))
    return write_outputs(
        out,
        NAME,
        rows,
        _markdown(rows, teachers, split),
        lambda fig: _draw(fig, rows, teachers),
        (4.2 * (len(teachers) + 1), 3.8),
    )


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``missing-class.csv`` as ``run`` made them (numbers as numbers)."""
    kinds = {"teacher_seed": int, "class": int, "temperature": _number}
    text = ("teacher", "class_name", "loss")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: v if k in text else kinds.get(k, float)(v) for k, v in row.items()} for row in rows]


def _number(text: str) -> float:
    """A temperature as it was written: 9 for "9", 4.5 for "4.5"."""
    value = float(text)
    return int(value) if value.is_integer() else value


def teacher_rows(setup: Setup, spec: TeacherSpec, ks: tuple[int, ...], temperatures: tuple[float, ...],
                 tick: Tick) -> list[dict[str, Any]]:
    """One teacher at one seed: at each T, its K students (one per missing class, trained at once),
    a row per class, scored on ``setup.split``."""
    config, splits = setup.config, setup.splits
    x_eval, y_eval = splits.evaluation(setup.split)
    rows = []
    teacher = train_teacher(setup, spec)
    logits = predict_logits(teacher, splits.x_train)
    teacher_val = predict_logits(teacher, splits.x_val)  # reference for the bias shift: no labels used
    teacher_eval = predict_logits(teacher, x_eval)
    for t in temperatures:
        students = train_missing_class_students(config, splits, logits, ks, t)  # one per k, at once
        students_val, students_eval = predict_logits(students, splits.x_val), predict_logits(students, x_eval)
        for k, student_val, student_eval in zip(ks, students_val, students_eval):
            shift = bias_shift(student_val, teacher_val, k)
            corrected = class_accuracy(shifted(student_eval, k, shift), y_eval, (k,))
            rows.append({
                "teacher": spec.label, "teacher_seed": spec.seed,
                "class": k, "class_name": class_name(splits.name, k), "temperature": t,
                "loss": config.distill.loss,
                "teacher_entropy": round(normalized_entropy(logits, t), 6),
                "teacher_acc_on_class": round(class_accuracy(teacher_eval, y_eval, (k,)) or 0.0, 6),
                "student_acc_on_class": round(class_accuracy(student_eval, y_eval, (k,)) or 0.0, 6),
                "bias_shift": round(shift, 4),
                "corrected_acc_on_class": round(corrected or 0.0, 6),
                "student_acc": round(accuracy(student_eval, y_eval), 6),
            })
        tick()
    return rows


def _class_means(rows: list[dict[str, Any]], key: str) -> list[float]:
    """Table 5's mean row at one T for one teacher: the mean over the missing classes, one value per
    teacher seed (so its sd is the teacher-seed sd of the mean, not of a single class)."""
    seeds = dict.fromkeys(r["teacher_seed"] for r in rows)
    return [statistics.fmean(column(by(rows, teacher_seed=s), key)) for s in seeds]


def _markdown(rows: list[dict[str, Any]], teachers: list[str], split: str) -> str:
    loss = rows[0]["loss"]
    ts = list(dict.fromkeys(column(rows, "temperature")))
    seeds = max(len(set(column(by(rows, teacher=t), "teacher_seed"))) for t in teachers)
    parts = [
        f"Student accuracy (%) on the class missing from the transfer set ({split} split, loss {loss}; "
        f"{seeds_note(seeds)}). Rows: the missing class (raw); the mean over the classes, raw and with Hinton's "
        "bias correction; the teacher's entropy at T.\n"
    ]
    for teacher in teachers:
        mine = by(rows, teacher=teacher)
        table = []
        for k in dict.fromkeys(column(mine, "class")):
            cells = by(mine, **{"class": k})
            table.append([cells[0]["class_name"],
                          *(spread(column(by(cells, temperature=t), "student_acc_on_class")) for t in ts)])
        at = [by(mine, temperature=t) for t in ts]
        table.append(["**mean**", *(f"**{spread(_class_means(c, 'student_acc_on_class'))}**" for c in at)])
        table.append(["mean, bias-corrected", *(spread(_class_means(c, "corrected_acc_on_class")) for c in at)])
        table.append(["entropy at T", *(spread(_class_means(c, "teacher_entropy"), 1, 3) for c in at)])
        parts.append(f"### {teacher}\n\n" + markdown_table(["missing class", *(f"T={t}" for t in ts)], table))
    return "\n".join(parts)


def _draw(fig: Any, rows: list[dict[str, Any]], teachers: list[str]) -> None:
    axes = fig.subplots(1, len(teachers) + 1, squeeze=False)[0]
    ts = list(dict.fromkeys(column(rows, "temperature")))
    summary = axes[0]
    for i, teacher in enumerate(teachers):
        mine = by(rows, teacher=teacher)
        for key, marker, style, suffix in (("student_acc_on_class", "o", "-", ""),
                                           ("corrected_acc_on_class", "x", "--", ", bias-corrected")):
            stats = [mean_sd(_class_means(by(mine, temperature=t), key)) for t in ts]
            summary.errorbar(ts, [100 * m for m, _ in stats], yerr=[100 * sd for _, sd in stats],
                             marker=marker, linestyle=style, capsize=2, color=f"C{i}", label=teacher + suffix)
    summary.set(
        title="mean over missing classes", xlabel="temperature T", ylabel="accuracy on missing class (%)", ylim=(0, 100)
    )
    summary.grid(alpha=0.3)
    summary.legend(fontsize=6)
    for ax, teacher in zip(axes[1:], teachers):
        mine = by(rows, teacher=teacher)
        ks = list(dict.fromkeys(column(mine, "class")))
        grid = [[100 * statistics.fmean(column(by(mine, temperature=t, **{"class": k}), "student_acc_on_class"))
                 for t in ts] for k in ks]
        image = ax.imshow(grid, vmin=0, vmax=100, cmap="viridis", aspect="auto")
        ax.set(
            title=teacher,
            xlabel="temperature T",
            xticks=range(len(ts)),
            xticklabels=ts,
            yticks=range(len(ks)),
            yticklabels=[by(mine, **{"class": k})[0]["class_name"] for k in ks],
        )
        fig.colorbar(image, ax=ax, label="raw accuracy (%), mean over teacher seeds")
