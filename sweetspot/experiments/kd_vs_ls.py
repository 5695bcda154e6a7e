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

from sweetspot.data import transfer_indices
from sweetspot.experiments.common import Setup, Tick, markdown_table, pct, train_student, transfer_logits, write_outputs
from sweetspot.metrics import accuracy, class_accuracy, normalized_entropy, off_target_mass
from sweetspot.training import label_smoothing_targets, predict_logits

SIDE_MARGIN = 0.01  # KD side: the KD student beats the LS student by more than 1 point overall
NAME = "kd-vs-ls"


def work(setup: Setup) -> int:
    return len(setup.teachers)


def smoothing_logits(labels: torch.Tensor, n_classes: int, gamma: float, temperature: float) -> torch.Tensor:
    """Logits whose softmax at ``temperature`` is exactly the label-smoothing target with factor
    ``gamma``: so the LS student goes through the very same KD loss, teacher swapped for LS."""
    targets = label_smoothing_targets(labels, n_classes, min(max(gamma, 1e-6), 1.0))
    return temperature * targets.log()


def run(setup: Setup, out: Path, tick: Tick) -> list[Path]:
    config, splits = setup.config, setup.splits
    withheld, t = config.distill.withheld_classes, config.distill.temperature
    x_eval, y_eval = splits.evaluation(setup.split)
    index = transfer_indices(splits.y_train, withheld, config.distill.examples_per_class, config.seed)
    rows = []
    for spec in setup.teachers:
        logits = transfer_logits(config, splits, spec)
        gamma = off_target_mass(logits[index], splits.y_train[index], t)
        ls_logits = smoothing_logits(splits.y_train, splits.n_classes, gamma, t)
        row: dict[str, Any] = {
            "teacher": spec.label,
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
        row["side"] = "KD" if row["gap"] > SIDE_MARGIN else "LS"
        rows.append(row)
        tick()
    return write_outputs(
        out, NAME, rows, _markdown(rows, setup.split, t), lambda fig: _draw(fig, rows, bool(withheld)), (6.5, 4.5)
    )


def _markdown(rows: list[dict[str, Any]], split: str, t: float) -> str:
    table = [
        [
            r["teacher"],
            f"{r['teacher_entropy']:.3f}",
            f"{r['gamma']:.3f}",
            pct(r["kd_seen_acc"]),
            pct(r["ls_seen_acc"]),
            pct(r["gap"]),
            pct(r["kd_withheld_acc"]),
            pct(r["ls_withheld_acc"]),
            pct(r["withheld_gap"]),
            r["side"],
        ]
        for r in rows
    ]
    return (
        f"Student accuracy (%) on the {split} split after KD from each teacher at T={t:g} and after label smoothing at "
        "the teacher's matched gamma; side: KD when KD beats LS by more than "
        f"{100 * SIDE_MARGIN:.0f} point on the classes both students saw (LS can never teach a withheld class, "
        "so the withheld classes are reported apart and decide nothing).\n\n"
        + markdown_table(
            ["teacher", "entropy", "gamma", "KD seen", "LS seen", "gap", "KD withheld", "LS withheld", "withheld gap",
             "side"],
            table,
        )
    )


def _draw(fig: Any, rows: list[dict[str, Any]], withheld: bool) -> None:
    ax = fig.subplots()
    for r in rows:
        ax.scatter(r["teacher_entropy"], 100 * r["gap"], color="tab:blue" if r["side"] == "KD" else "tab:red")
        ax.annotate(
            r["teacher"], (r["teacher_entropy"], 100 * r["gap"]), fontsize=7, xytext=(4, 4), textcoords="offset points"
        )
        if withheld:
            ax.scatter(r["teacher_entropy"], 100 * r["withheld_gap"], marker="x", color="grey")
    ax.axhline(100 * SIDE_MARGIN, color="grey", linestyle="--", linewidth=1)
    ax.text(
        0.01,
        0.98,
        "KD side (blue) above the line, LS side (red) below" + ("; x: on the withheld classes" if withheld else ""),
        transform=ax.transAxes,
        fontsize=7,
        va="top",
    )
    ax.set(xlabel="teacher entropy at T", ylabel="student accuracy: KD - LS (points)")
    ax.grid(alpha=0.3)
