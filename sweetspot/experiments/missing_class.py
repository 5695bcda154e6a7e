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

from pathlib import Path
from typing import Any

from sweetspot.data import class_name
from sweetspot.experiments.common import (
    Setup,
    Tick,
    markdown_table,
    pct,
    train_missing_class_students,
    train_teacher,
    write_outputs,
)
from sweetspot.metrics import accuracy, bias_shift, class_accuracy, normalized_entropy, shifted
from sweetspot.training import predict_logits

TEMPERATURES = (3, 6, 9, 12, 15, 20)  # the paper's Tables 4-6
NAME = "missing-class"


def classes(setup: Setup) -> tuple[int, ...]:
    return setup.classes if setup.classes is not None else tuple(range(setup.splits.n_classes))


def work(setup: Setup) -> int:
    return len(setup.teachers) * len(TEMPERATURES)


def run(setup: Setup, out: Path, tick: Tick) -> list[Path]:
    config, splits = setup.config, setup.splits
    x_eval, y_eval = splits.evaluation(setup.split)
    rows = []
    ks = classes(setup)
    for spec in setup.teachers:
        teacher = train_teacher(config, splits, spec)
        logits = predict_logits(teacher, splits.x_train)
        teacher_val = predict_logits(teacher, splits.x_val)  # reference for the bias shift: no labels used
        teacher_eval = predict_logits(teacher, x_eval)
        for t in TEMPERATURES:
            students = train_missing_class_students(config, splits, logits, ks, t)  # one per k, at once
            students_val, students_eval = predict_logits(students, splits.x_val), predict_logits(students, x_eval)
            for k, student_val, student_eval in zip(ks, students_val, students_eval):
                shift = bias_shift(student_val, teacher_val, k)
                corrected = class_accuracy(shifted(student_eval, k, shift), y_eval, (k,))
                rows.append({
                    "teacher": spec.label, "class": k, "class_name": class_name(splits.name, k), "temperature": t,
                    "loss": config.distill.loss,
                    "teacher_entropy": round(normalized_entropy(logits, t), 6),
                    "teacher_acc_on_class": round(class_accuracy(teacher_eval, y_eval, (k,)) or 0.0, 6),
                    "student_acc_on_class": round(class_accuracy(student_eval, y_eval, (k,)) or 0.0, 6),
                    "bias_shift": round(shift, 4),
                    "corrected_acc_on_class": round(corrected or 0.0, 6),
                    "student_acc": round(accuracy(student_eval, y_eval), 6),
                })
            tick()
    teachers = list(dict.fromkeys(r["teacher"] for r in rows))
    return write_outputs(
        out,
        NAME,
        rows,
        _markdown(rows, teachers, setup.split),
        lambda fig: _draw(fig, rows, teachers),
        (4.2 * (len(teachers) + 1), 3.8),
    )


def _cell(rows: list[dict[str, Any]], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows)


def _markdown(rows: list[dict[str, Any]], teachers: list[str], split: str) -> str:
    intro = (f"Student accuracy (%) on the class missing from the transfer set ({split} split): "
             "raw / with Hinton's bias correction.\n")
    parts = [intro]
    for teacher in teachers:
        mine = [r for r in rows if r["teacher"] == teacher]
        table = []
        for k in dict.fromkeys(r["class"] for r in mine):
            cells = [r for r in mine if r["class"] == k]
            table.append(
                [
                    cells[0]["class_name"],
                    *(f"{pct(r['student_acc_on_class'])} / {pct(r['corrected_acc_on_class'])}" for r in cells),
                ]
            )
        by_t = [[r for r in mine if r["temperature"] == t] for t in TEMPERATURES]
        table.append(
            [
                "**mean**",
                *(
                    f"**{pct(_cell(c, 'student_acc_on_class'))} / {pct(_cell(c, 'corrected_acc_on_class'))}**"
                    for c in by_t
                ),
            ]
        )
        table.append(["entropy at T", *(f"{c[0]['teacher_entropy']:.3f}" for c in by_t)])
        parts.append(f"### {teacher}\n\n" + markdown_table(["missing class", *(f"T={t}" for t in TEMPERATURES)], table))
    return "\n".join(parts)


def _draw(fig: Any, rows: list[dict[str, Any]], teachers: list[str]) -> None:
    axes = fig.subplots(1, len(teachers) + 1, squeeze=False)[0]
    summary = axes[0]
    for teacher in teachers:
        mine = [r for r in rows if r["teacher"] == teacher]
        raw = [100 * _cell([r for r in mine if r["temperature"] == t], "student_acc_on_class") for t in TEMPERATURES]
        fixed = [
            100 * _cell([r for r in mine if r["temperature"] == t], "corrected_acc_on_class") for t in TEMPERATURES
        ]
        (line,) = summary.plot(TEMPERATURES, raw, marker="o", label=f"{teacher}")
        summary.plot(
            TEMPERATURES, fixed, marker="x", linestyle="--", color=line.get_color(), label=f"{teacher}, bias-corrected"
        )
    summary.set(
        title="mean over missing classes", xlabel="temperature T", ylabel="accuracy on missing class (%)", ylim=(0, 100)
    )
    summary.grid(alpha=0.3)
    summary.legend(fontsize=6)
    for ax, teacher in zip(axes[1:], teachers):
        mine = [r for r in rows if r["teacher"] == teacher]
        ks = list(dict.fromkeys(r["class"] for r in mine))
        grid = [[100 * r["student_acc_on_class"] for r in mine if r["class"] == k] for k in ks]
        image = ax.imshow(grid, vmin=0, vmax=100, cmap="viridis", aspect="auto")
        ax.set(
            title=teacher,
            xlabel="temperature T",
            xticks=range(len(TEMPERATURES)),
            xticklabels=TEMPERATURES,
            yticks=range(len(ks)),
            yticklabels=[next(r["class_name"] for r in mine if r["class"] == k) for k in ks],
        )
        fig.colorbar(image, ax=ax, label="raw accuracy (%)")
