"""``kd-vs-ls`` (the paper's Figs. 2 and 10, the distillation hypothesis): is a teacher still doing
knowledge distillation, or only label smoothing?

For each teacher two students are trained the same way from the same transfer set: one on the
teacher's soft labels at T (KD), one on label-smoothed labels whose smoothing factor is the
teacher's own off-target mass gamma at T (Müller et al.'s matched factor: the same confidence in
the true class, with the rest spread evenly instead of by similarity). The students differ only in
the similarity information, so the accuracy gap on the classes both saw says on which side of the
hypothesis the teacher stands; the gap on the withheld classes (which label smoothing can never
teach, so they would hand KD the verdict) is reported beside it and decides nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sweetspot.core.metrics import accuracy, class_accuracy, normalized_entropy, off_target_mass
from sweetspot.core.splits import transfer_indices
from sweetspot.core.training import label_smoothing_targets, predict_logits
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
    train_student,
    transfer_logits,
    write_outputs,
)

SIDE_MARGIN = 0.01  # KD side: the KD student beats the LS student by more than 1 point on the seen classes
NAME = "kd-vs-ls"


def work(setup: Setup) -> int:
    return len(setup.teachers) * setup.teacher_seeds


def smoothing_logits(labels: torch.Tensor, n_classes: int, gamma: float, temperature: float) -> torch.Tensor:
    """Logits whose softmax at ``temperature`` is exactly the label-smoothing target with factor
    ``gamma``: so the LS student goes through the very same KD loss, teacher swapped for LS."""
    targets = label_smoothing_targets(labels, n_classes, min(max(gamma, 1e-6), 1.0))
    return temperature * targets.log()


def side(gaps: list[float]) -> str:
    """KD when the mean gap (over the teacher seeds) is above SIDE_MARGIN and above twice its sd; LS
    when it is not above SIDE_MARGIN; unclear in between (above the margin, within the noise)."""
    mean, sd = mean_sd(gaps)
    if mean <= SIDE_MARGIN:
        return "LS"
    return "KD" if mean > 2 * sd else "unclear"


def run(setup: Setup, out: Path, tick: Tick) -> list[Path]:
    rows = []
    for spec in setup.teachers:
        for seeded in setup.seeded(spec):
            rows.append(_pair(setup, seeded))
            tick()
    withheld = bool(setup.config.distill.withheld_classes)
    return write_outputs(
        out, NAME, rows, _markdown(rows, setup), lambda fig: _draw(fig, rows, withheld), (6.5, 4.5)
    )


def _pair(setup: Setup, spec: TeacherSpec) -> dict[str, Any]:
    """One teacher at one seed: its KD student and its matched LS student, scored."""
    config, splits = setup.config, setup.splits
    withheld, t = config.distill.withheld_classes, config.distill.temperature
    x_eval, y_eval = splits.evaluation(setup.split)
    index = transfer_indices(splits.y_train, withheld, config.distill.examples_per_class, config.seed)
    logits = transfer_logits(setup, spec)
    gamma = off_target_mass(logits[index], splits.y_train[index], t)
    ls_logits = smoothing_logits(splits.y_train, splits.n_classes, gamma, t)
    row: dict[str, Any] = {
        "teacher": spec.label,
        "teacher_seed": spec.seed,
        "batch_size": spec.batch_size,
        "epochs": spec.epochs,
        "teacher_entropy": round(normalized_entropy(logits[index], t), 6),
        "gamma": round(gamma, 6),
    }
    seen = tuple(k for k in range(splits.n_classes) if k not in withheld)
    for kind, soft in (("kd", logits), ("ls", ls_logits)):
        student_eval = predict_logits(train_student(config, splits, index, soft, t), x_eval)
        row[f"{kind}_acc"] = round(accuracy(student_eval, y_eval), 6)
        row[f"{kind}_seen_acc"] = round(class_accuracy(student_eval, y_eval, seen), 6)
        row[f"{kind}_withheld_acc"] = round(class_accuracy(student_eval, y_eval, withheld), 6) if withheld else None
    # decided where both students saw the classes: LS cannot teach a withheld class by construction
    row["gap"] = round(row["kd_seen_acc"] - row["ls_seen_acc"], 6)
    row["withheld_gap"] = round(row["kd_withheld_acc"] - row["ls_withheld_acc"], 6) if withheld else None
    row["side"] = side([row["gap"]])
    return row


def _markdown(rows: list[dict[str, Any]], setup: Setup) -> str:
    keys = ("kd_seen_acc", "ls_seen_acc", "gap", "kd_withheld_acc", "ls_withheld_acc", "withheld_gap")
    table = []
    for teacher in dict.fromkeys(column(rows, "teacher")):
        mine = by(rows, teacher=teacher)
        table.append([
            teacher,
            spread(column(mine, "teacher_entropy"), 1, 3),
            spread(column(mine, "gamma"), 1, 3),
            *(spread(column(mine, key)) for key in keys),
            side(column(mine, "gap")),
        ])
    t = setup.config.distill.temperature
    return (
        f"Student accuracy (%) on the {setup.split} split after KD from each teacher at T={t:g} and after label "
        f"smoothing at the teacher's matched gamma ({seeds_note(setup.teacher_seeds)}); side: KD when KD beats LS "
        "on the classes "
        f"both students saw by more than {100 * SIDE_MARGIN:.0f} point and by more than twice the sd, LS when by "
        "no more than that point, unclear in between. LS can never teach a withheld class, so the withheld "
        "classes are reported apart and decide nothing.\n\n"
        + markdown_table(
            ["teacher", "entropy", "gamma", "KD seen", "LS seen", "gap", "KD withheld", "LS withheld", "withheld gap",
             "side"],
            table,
        )
    )


def _draw(fig: Any, rows: list[dict[str, Any]], withheld: bool) -> None:
    ax = fig.subplots()
    colours = {"KD": "tab:blue", "LS": "tab:red", "unclear": "tab:grey"}
    for teacher in dict.fromkeys(column(rows, "teacher")):
        mine = by(rows, teacher=teacher)
        (h, h_sd), (g, g_sd) = mean_sd(column(mine, "teacher_entropy")), mean_sd(column(mine, "gap"))
        ax.errorbar(h, 100 * g, xerr=h_sd, yerr=100 * g_sd, marker="o", capsize=2,
                    color=colours[side(column(mine, "gap"))])
        ax.annotate(teacher, (h, 100 * g), fontsize=7, xytext=(4, 4), textcoords="offset points")
        if withheld:
            ax.scatter(h, 100 * mean_sd(column(mine, "withheld_gap"))[0], marker="x", color="grey")
    ax.axhline(100 * SIDE_MARGIN, color="grey", linestyle="--", linewidth=1)
    ax.text(
        0.01,
        0.98,
        "KD side (blue) above the line and 2 sd above 0, LS side (red) below, unclear (grey)"
        + ("; x: on the withheld classes" if withheld else ""),
        transform=ax.transAxes,
        fontsize=7,
        va="top",
    )
    ax.set(xlabel="teacher entropy at T", ylabel="student accuracy: KD - LS (points)")
    ax.grid(alpha=0.3)
