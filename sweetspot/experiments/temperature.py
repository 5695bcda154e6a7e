"""``entropy-vs-temperature`` (the paper's Figs. 3 and 6): how much similarity information each
teacher's soft labels carry at each temperature, and how batch size and epochs move it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from sweetspot.core.metrics import normalized_entropy
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
    transfer_logits,
    write_outputs,
)

TEMPERATURES = (1, 3, 6, 9, 12, 15, 20)  # the paper's Figs. 3 and 6
NAME = "entropy-vs-temperature"


def around(value: int, factors: Iterable[float], low: int, high: int) -> list[int]:
    """``value`` scaled by each factor, kept within [low, high], without repeats, in order."""
    return sorted({min(high, max(low, round(value * f))) for f in factors})


def variants(teachers: list[TeacherSpec] | tuple[TeacherSpec, ...], n_train: int) -> list[tuple[str, TeacherSpec]]:
    """The teachers, then the first one at 1/4 to 4x its batch size and at 1/4 to 4x its epochs."""
    first = teachers[0]
    scales = (0.25, 0.5, 1, 2, 4)
    return (
        [("teachers", t) for t in teachers]
        + [
            ("batch size", replace(first, label=f"batch {b}", batch_size=b))
            for b in around(first.batch_size, scales, 1, n_train)
        ]
        + [
            ("epochs", replace(first, label=f"{e} epoch{'s' * (e != 1)}", epochs=e))
            for e in around(first.epochs, scales, 1, 10**6)
        ]
    )


def work(setup: Setup) -> int:
    return len(variants(list(setup.teachers), len(setup.splits.y_train))) * setup.teacher_seeds


def run(setup: Setup, out: Path, tick: Tick) -> list[Path]:
    """Mean normalised soft-label entropy at each T of TEMPERATURES for each teacher; then, for the
    first teacher (the calibrated one when an export is given), the same with its batch size varied
    (epochs fixed) and its epochs varied (batch size fixed). Each at every teacher seed."""
    rows = []
    for group, spec in variants(list(setup.teachers), len(setup.splits.y_train)):
        for seeded in setup.seeded(spec):
            logits = transfer_logits(setup, seeded)
            for t in TEMPERATURES:
                rows.append(
                    {
                        "group": group,
                        "teacher": spec.label,
                        "teacher_seed": seeded.seed,
                        "batch_size": spec.batch_size,
                        "epochs": spec.epochs,
                        "temperature": t,
                        "entropy": round(normalized_entropy(logits, t), 6),
                    }
                )
            tick()
    groups = list(dict.fromkeys(r["group"] for r in rows))
    note = seeds_note(setup.teacher_seeds)
    markdown = f"Mean normalised entropy of the soft labels on the training split ({note}).\n\n"
    return write_outputs(
        out,
        NAME,
        rows,
        markdown + _markdown(rows, groups),
        lambda fig: _draw(fig, rows, groups),
        (4.5 * len(groups), 3.6),
    )


def _curves(rows: list[dict[str, Any]], group: str) -> dict[str, list[dict[str, Any]]]:
    curves: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["group"] == group:
            curves.setdefault(r["teacher"], []).append(r)
    return curves


def _markdown(rows: list[dict[str, Any]], groups: list[str]) -> str:
    parts = []
    for group in groups:
        table = [
            [name, *(spread(column(by(curve, temperature=t), "entropy"), 1, 3) for t in TEMPERATURES)]
            for name, curve in _curves(rows, group).items()
        ]
        parts.append(f"### {group}\n\n" + markdown_table(["teacher", *(f"T={t}" for t in TEMPERATURES)], table))
    return "\n".join(parts)


def _draw(fig: Any, rows: list[dict[str, Any]], groups: list[str]) -> None:
    axes = fig.subplots(1, len(groups), sharey=True, squeeze=False)[0]
    for ax, group in zip(axes, groups):
        for name, curve in _curves(rows, group).items():
            stats = [mean_sd(column(by(curve, temperature=t), "entropy")) for t in TEMPERATURES]
            ax.errorbar(TEMPERATURES, [m for m, _ in stats], yerr=[sd for _, sd in stats], marker="o", capsize=2,
                        label=name)
        ax.set_title(group)
        ax.set_xlabel("temperature T")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("mean normalised entropy")
