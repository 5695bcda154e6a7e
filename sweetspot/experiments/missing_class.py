"""``missing-class`` (the paper's Tables 4-6): distil without class k, then ask the student about k.

A teacher rich in similarity information teaches a class the student never saw; one without it
does not. For every class k and temperature T the student is distilled from the teacher's logits
with every example of k removed from the transfer set, and scored on the examples of k.

Hinton et al. (2015) also raise the missing class's output bias, which the hard-label term keeps
pushing down because k is never a label. Hinton chose the shift by hand; here it is chosen without
labels: the smallest shift (never negative) after which the student predicts k on as many
validation inputs as the teacher does. Both figures are reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sweetspot.data import class_name, transfer_indices
from sweetspot.experiments.common import Setup, Tick, markdown_table, pct, train_student, train_teacher, write_outputs
from sweetspot.metrics import class_accuracy, normalized_entropy
from sweetspot.training import predict_logits

TEMPERATURES = (3, 6, 9, 12, 15, 20)  # the paper's Tables 4-6
NAME = "missing-class"


def classes(setup: Setup) -> tuple[int, ...]:
    return setup.classes if setup.classes is not None else tuple(range(setup.splits.n_classes))


def work(setup: Setup) -> int:
    return len(setup.teachers) * len(classes(setup)) * len(TEMPERATURES)


def bias_shift(student_logits: torch.Tensor, teacher_logits: torch.Tensor, k: int) -> float:
    """The smallest b >= 0 such that adding b to the student's logit of class k makes it predict k
    on as many of these inputs as the teacher does (Hinton's bias correction, chosen without labels).

    An input is predicted k after the shift iff b exceeds its margin ``max_{j != k} z_j - z_k``;
    so b is the margin just above the n-th smallest, n the teacher's count of k."""
    wanted = int((teacher_logits.argmax(dim=1) == k).sum())
    if wanted == 0:
        return 0.0
    others = student_logits.clone()
    others[:, k] = float("-inf")
    margins = torch.sort(others.max(dim=1).values - student_logits[:, k]).values
    return max(0.0, float(margins[wanted - 1]) + 1e-4)


def run(setup: Setup, out: Path, tick: Tick) -> list[Path]:
    config, splits = setup.config, setup.splits
    x_eval, y_eval = splits.evaluation(setup.split)
    rows = []
    for spec in setup.teachers:
        teacher = train_teacher(config, splits, spec)
        logits = predict_logits(teacher, splits.x_train)
        teacher_val = predict_logits(teacher, splits.x_val)  # reference for the bias shift: no labels used
        teacher_eval = predict_logits(teacher, x_eval)
        for k in classes(setup):
            index = transfer_indices(splits.y_train, (k,), config.distill.examples_per_class, config.seed)
            for t in TEMPERATURES:
                student = train_student(config, splits, index, logits, t)
                shift = bias_shift(predict_logits(student, splits.x_val), teacher_val, k)
                student_eval = predict_logits(student, x_eval)
                corrected = student_eval.clone()
                corrected[:, k] += shift
                rows.append({
                    "teacher": spec.label, "class": k, "class_name": class_name(splits.name, k), "temperature": t,
                    "teacher_entropy": round(normalized_entropy(logits, t), 6),
                    "teacher_acc_on_class": round(class_accuracy(teacher_eval, y_eval, (k,)) or 0.0, 6),
                    "student_acc_on_class": round(class_accuracy(student_eval, y_eval, (k,)) or 0.0, 6),
                    "bias_shift": round(shift, 4),
                    "corrected_acc_on_class": round(class_accuracy(corrected, y_eval, (k,)) or 0.0, 6),
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
