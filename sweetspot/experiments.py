"""The paper's experiments as commands: each writes a CSV, a markdown table and a PNG figure.

Teachers come from ``--teacher`` specs (an architecture with explicit batch size and epochs) and
from an export (``--export``: its best teacher, the one a study calibrated). Seeds are fixed, so
repeated runs agree.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from sweetspot.config import StudyConfig
from sweetspot.data import Splits
from sweetspot.errors import ConfigError
from sweetspot.metrics import normalized_entropy
from sweetspot.models import ARCHITECTURES, build_model
from sweetspot.training import make_optimizer, predict_logits, train_classifier

TEMPERATURES = (1, 3, 6, 9, 12, 15, 20)  # the paper's Figs. 3 and 6


@dataclass(frozen=True)
class TeacherSpec:
    """A teacher to train: architecture (None: the config's), batch size, epochs, seed."""

    label: str
    arch: str | None
    batch_size: int
    epochs: int
    seed: int = 0


def parse_teacher(text: str) -> TeacherSpec:
    """``[LABEL=][ARCH:]BATCH:EPOCHS``, e.g. ``large=paper-mnist-large:4096:50`` or ``64:10``."""
    label, _, spec = text.rpartition("=")
    parts = spec.split(":")
    try:
        arch = parts[0] if len(parts) == 3 else None
        batch_size, epochs = int(parts[-2]), int(parts[-1])
    except (ValueError, IndexError):
        raise ConfigError(f"--teacher: {text!r} is not [LABEL=][ARCH:]BATCH:EPOCHS (e.g. large=mlp:16:100)") from None
    if len(parts) not in (2, 3) or batch_size < 1 or epochs < 1:
        raise ConfigError(f"--teacher: {text!r} is not [LABEL=][ARCH:]BATCH:EPOCHS with positive numbers")
    if arch is not None and arch not in ARCHITECTURES:
        raise ConfigError(f"--teacher: unknown architecture {arch!r} (available: {', '.join(ARCHITECTURES)})")
    return TeacherSpec(label or spec, arch, batch_size, epochs)


def teacher_from_export(document: dict[str, Any]) -> TeacherSpec:
    """The best teacher of a `sweetspot export` file, with its recipe's seed."""
    best = next(t for t in document["teachers"] if t["best"])
    recipe = best["recipe"]
    return TeacherSpec(f"calibrated (trial {best['trial']})", recipe["arch"], recipe["batch_size"], recipe["epochs"], recipe["seed"])


def transfer_logits(config: StudyConfig, splits: Splits, spec: TeacherSpec) -> torch.Tensor:
    """Train the teacher ``spec`` describes on the training split; its logits on that split."""
    net = config.teacher if spec.arch is None else replace(config.teacher, arch=spec.arch, options={})
    torch.manual_seed(spec.seed)
    teacher = build_model(net, splits.input_shape, splits.n_classes).to(splits.x_train.device)
    train_classifier(
        teacher, splits.x_train, splits.y_train, optimizer=make_optimizer(net.optimizer, teacher, net.lr),
        batch_size=spec.batch_size, epochs=spec.epochs, generator=torch.Generator().manual_seed(spec.seed),
    )
    return predict_logits(teacher, splits.x_train)


def around(value: int, factors: Iterable[float], low: int, high: int) -> list[int]:
    """``value`` scaled by each factor, kept within [low, high], without repeats, in order."""
    return sorted({min(high, max(low, round(value * f))) for f in factors})


def entropy_vs_temperature(
    config: StudyConfig, splits: Splits, teachers: list[TeacherSpec], out: Path, tick: Callable[[], None] = lambda: None
) -> list[Path]:
    """Figs. 3 and 6: mean normalised soft-label entropy at each T of TEMPERATURES for each teacher;
    then, for the first teacher, the same with its batch size varied (epochs fixed) and its epochs
    varied (batch size fixed)."""
    rows = []
    for group, spec in temperature_variants(teachers, len(splits.y_train)):
        logits = transfer_logits(config, splits, spec)
        for t in TEMPERATURES:
            rows.append({"group": group, "teacher": spec.label, "batch_size": spec.batch_size, "epochs": spec.epochs,
                         "temperature": t, "entropy": round(normalized_entropy(logits, t), 6)})
        tick()
    out.mkdir(parents=True, exist_ok=True)
    stem = out / "entropy-vs-temperature"
    with open(stem.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    stem.with_suffix(".md").write_text(_markdown(rows))
    _plot(rows, stem.with_suffix(".png"))
    return [stem.with_suffix(s) for s in (".csv", ".md", ".png")]


def temperature_variants(teachers: list[TeacherSpec], n_train: int) -> list[tuple[str, TeacherSpec]]:
    """The teachers, then the first one at 1/4 to 4x its batch size and at 1/4 to 4x its epochs."""
    first = teachers[0]
    scales = (0.25, 0.5, 1, 2, 4)
    return (
        [("teachers", t) for t in teachers]
        + [("batch size", replace(first, label=f"batch {b}", batch_size=b)) for b in around(first.batch_size, scales, 1, n_train)]
        + [("epochs", replace(first, label=f"{e} epochs", epochs=e)) for e in around(first.epochs, scales, 1, 10**6)]
    )


def _markdown(rows: list[dict[str, Any]]) -> str:
    lines = []
    for group in dict.fromkeys(r["group"] for r in rows):
        lines += [f"### {group}", "", "| teacher | " + " | ".join(f"T={t}" for t in TEMPERATURES) + " |",
                  "|---|" + "---|" * len(TEMPERATURES)]
        for teacher in dict.fromkeys(r["teacher"] for r in rows if r["group"] == group):
            values = [r["entropy"] for r in rows if r["group"] == group and r["teacher"] == teacher]
            lines.append(f"| {teacher} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
        lines.append("")
    return "\n".join(lines)


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(r["group"] for r in rows))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.6), sharey=True)
    for ax, group in zip(axes if len(groups) > 1 else [axes], groups):
        for teacher in dict.fromkeys(r["teacher"] for r in rows if r["group"] == group):
            points = [(r["temperature"], r["entropy"]) for r in rows if r["group"] == group and r["teacher"] == teacher]
            ax.plot(*zip(*points), marker="o", label=teacher)
        ax.set_title(group)
        ax.set_xlabel("temperature T")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    (axes[0] if len(groups) > 1 else axes).set_ylabel("mean normalised entropy")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
