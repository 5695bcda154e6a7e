"""What every experiment shares: teachers named on the command line, teacher and student training
with fixed seeds, and writing the CSV, markdown and PNG that each experiment produces."""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sweetspot.config import NetConfig, StudyConfig
from sweetspot.core.checkpoints import CheckpointStore
from sweetspot.core.models import architecture
from sweetspot.core.splits import Splits
from sweetspot.core.students import seeded_for_students, train_students
from sweetspot.core.students import train_student as fit_student
from sweetspot.core.teacher_paths import seeded_run
from sweetspot.core.teacher_paths import train_teacher as fit_teacher
from sweetspot.core.training import predict_logits
from sweetspot.core.trial import teacher_path_key, teacher_seeds
from sweetspot.errors import ConfigError
from sweetspot.results.teachers import net_from_recipe
from sweetspot.trusted_imports import is_import_path, trust_command_line

Tick = Callable[[], None]  # advances the progress bar by one unit of work


@dataclass(frozen=True)
class TeacherSpec:
    """A teacher to train: architecture (None: the config's), batch size, epochs, seed; ``net``
    (from an export) fixes the architecture's options, optimizer and learning rate as well."""

    label: str
    arch: str | None
    batch_size: int
    epochs: int
    seed: int = 0
    net: NetConfig | None = None


@dataclass(frozen=True)
class Setup:
    """Everything an experiment reads: the config (its student, distillation and transfer-set
    settings), the data on the device, the teachers, the split students are scored on, and the
    classes an experiment is asked to look at (None: its default), and how many teacher seeds each
    teacher is trained with (its figures are then means and sds over them)."""

    config: StudyConfig
    splits: Splits
    teachers: Sequence[TeacherSpec]
    split: str = "val"
    classes: tuple[int, ...] | None = None
    teacher_seeds: int = 1
    checkpoints: CheckpointStore | None = None  # where teachers are kept between experiments (None: nowhere)
    seed_indices: tuple[int, ...] | None = None  # which of the teacher seeds this run trains (None: all)
    temperatures: tuple[float, ...] | None = None  # missing-class's temperatures (None: the paper's)

    def seeded(self, spec: TeacherSpec) -> list[TeacherSpec]:
        """``spec`` once per teacher seed: its own seed first, then the seeds ``export --confirm``
        gives the same teacher (``trial.teacher_seeds``); only those of ``seed_indices`` where given,
        so that one experiment's seeds can run in several processes and be combined afterwards."""
        seeds = teacher_seeds(spec.seed, self.teacher_seeds)
        chosen = range(len(seeds)) if self.seed_indices is None else self.seed_indices
        return [replace(spec, seed=seeds[i]) for i in chosen]


def parse_teacher(text: str) -> TeacherSpec:
    """``[LABEL=][ARCH:]BATCH:EPOCHS``, e.g. ``large=paper-mnist-large:4096:50``, ``64:10``, or with an
    import path or a torchvision model, ``mine=my_nets:cnn:64:10``, ``torchvision:resnet18:128:5``.
    An import path given here is the user's own (trusted, as in a config file they pass)."""
    label, _, spec = text.rpartition("=")
    parts = spec.split(":")
    try:
        arch = ":".join(parts[:-2]) or None
        batch_size, epochs = int(parts[-2]), int(parts[-1])
    except (ValueError, IndexError) as exc:
        raise ConfigError(f"{text!r} is not [LABEL=][ARCH:]BATCH:EPOCHS (e.g. large=mlp:16:100)") from exc
    if batch_size < 1 or epochs < 1:
        raise ConfigError(f"{text!r} is not [LABEL=][ARCH:]BATCH:EPOCHS with positive numbers")
    if arch is not None:
        if is_import_path(arch):
            trust_command_line(arch)
        architecture(arch, "--teacher")  # unknown, not allowed or not importable: one line now
    return TeacherSpec(label or spec, arch, batch_size, epochs)


def teacher_from_export(document: dict[str, Any], dataset: str | None = None) -> TeacherSpec:
    """The best teacher of a `sweetspot export` file (as ``files.read_export`` checked it), exactly as
    its study trained it (architecture options, optimizer, learning rate, batch size, epochs, seed)."""
    best = next(t for t in document["teachers"] if t["best"])
    recipe = best["recipe"]
    if dataset is not None and recipe["dataset"] != dataset:
        raise ConfigError(f"its teacher was calibrated on {recipe['dataset']!r}, this experiment runs on {dataset!r}")
    net = net_from_recipe(recipe)
    return TeacherSpec(
        f"calibrated (trial {best['trial']})", net.arch, recipe["batch_size"], recipe["epochs"], recipe["seed"], net
    )


def train_teacher(setup: Setup, spec: TeacherSpec) -> nn.Module:
    """The teacher ``spec`` describes, trained on the whole training split (every class), seeded as
    a trial seeds it. With a checkpoint folder, a teacher trained before on the same path (by another
    experiment, or by a study's trial) is continued from its longest stored prefix, not retrained."""
    config, splits = setup.config, setup.splits
    net = spec.net or config.teacher
    if spec.net is None and spec.arch not in (None, config.teacher.arch):
        net = replace(config.teacher, arch=spec.arch, options={})
    if setup.checkpoints is None:
        return fit_teacher(net, splits, spec.batch_size, spec.epochs, net.lr, spec.seed)
    key = teacher_path_key(config, net, net.lr, spec.batch_size, spec.seed, splits.x_train.device)
    run = seeded_run(net, splits, spec.batch_size, spec.epochs, net.lr, spec.seed, store=setup.checkpoints, key=key)
    return run.teacher


def transfer_logits(setup: Setup, spec: TeacherSpec) -> torch.Tensor:
    """The trained teacher's logits on the training split: computed once, indexed by every student."""
    return predict_logits(train_teacher(setup, spec), setup.splits.x_train)


def train_student(
    config: StudyConfig,
    splits: Splits,
    index: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float,
    *,
    steps: int | None = None,
) -> nn.Module:
    """The config's student (``students.train_student``, as in a trial) distilled on the training
    examples ``index`` from ``teacher_logits`` (the teacher's logits on the whole training split).
    ``steps``: train for this many optimizer steps instead of the config's epochs (so that small
    transfer sets get as many updates as the full one). Seeded as every trial seeds its students
    (``students.seeded_for_students``): the same call gives the same student."""
    epochs = None
    if steps is not None:
        epochs = max(1, math.ceil(steps / math.ceil(len(index) / config.student.batch_size)))
    return fit_student(config.student, splits.x_train.take(index), teacher_logits[index], splits.y_train[index],
                       splits.n_classes, temperature=temperature, alpha=config.distill.alpha,
                       generator=seeded_for_students(config), epochs=epochs, convention=config.distill.loss)


def train_missing_class_students(
    config: StudyConfig, splits: Splits, teacher_logits: torch.Tensor, classes: Sequence[int], temperature: float
) -> nn.Module:
    """One student per class k of ``classes``, each distilled on the training split without k, all at
    once (``students.train_students``, as a trial trains them): a stacked model answering K x N x C."""
    y = splits.y_train
    return train_students(config.student, splits.x_train, teacher_logits, y, splits.n_classes,
                          torch.stack([y != k for k in classes]), temperature=temperature, alpha=config.distill.alpha,
                          generator=seeded_for_students(config), convention=config.distill.loss)


def write_outputs(
    out: Path,
    name: str,
    rows: list[dict[str, Any]],
    markdown: str,
    draw: Callable[[Any], None],
    figsize: tuple[float, float],
) -> list[Path]:
    """``out/name.csv`` (the rows), ``out/name.md`` and ``out/name.png`` (drawn by ``draw(fig)``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    stem = out / name
    with open(stem.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    stem.with_suffix(".md").write_text(markdown)
    fig = plt.figure(figsize=figsize)
    draw(fig)
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=120)
    plt.close(fig)
    return [stem.with_suffix(s) for s in (".csv", ".md", ".png")]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def spread(values: Sequence[float | None], scale: float = 100, digits: int = 1) -> str:
    """``mean ± sd`` of ``values`` times ``scale`` (a percentage by default); the mean alone for one
    value; "-" where there is none."""
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    mean, sd = mean_sd(present)
    text = f"{scale * mean:.{digits}f}"
    return text if len(present) == 1 else f"{text} ± {scale * sd:.{digits}f}"


def by(rows: Sequence[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    """The rows whose fields equal ``match``."""
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def column(rows: Sequence[dict[str, Any]], key: str) -> list[Any]:
    return [r[key] for r in rows]


def seeds_note(teacher_seeds: int) -> str:
    """What a table's ± means, for its caption."""
    if teacher_seeds == 1:
        return "one teacher seed per teacher (no sd: run with --teacher-seeds 3 or more for mean ± sd)"
    return f"mean ± sd over {teacher_seeds} teacher seeds per teacher"
