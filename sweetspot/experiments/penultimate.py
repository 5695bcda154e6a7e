"""``penultimate`` (the paper's Figs. 5 and 7): Müller, Kornblith and Hinton's (2019) picture.

Take three classes, the plane through their last-layer templates (the rows of the classifier's
weight matrix), and project the penultimate-layer activations of examples of those classes onto
it. Tight clusters: a teacher that has lost the similarity between classes (what label smoothing
does, and what an over-trained teacher does: thin clusters stretched along their own template);
clusters that reach toward each other: one that keeps it. Their width and elongation are measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from sweetspot.core.metrics import normalized_entropy
from sweetspot.core.splits import class_name
from sweetspot.core.training import predict_logits
from sweetspot.errors import ConfigError
from sweetspot.experiments.common import (
    Setup,
    Tick,
    by,
    column,
    markdown_table,
    seeds_note,
    spread,
    train_teacher,
    write_outputs,
)

PER_CLASS = 300  # examples per class, as in the paper
NAME = "penultimate"


def classes(setup: Setup) -> tuple[int, int, int]:
    chosen = setup.classes if setup.classes is not None else (0, 1, 2)
    if len(set(chosen)) != 3:
        raise ConfigError(f"penultimate needs three different classes, got {','.join(map(str, chosen))}")
    return chosen  # type: ignore[return-value]


def work(setup: Setup) -> int:
    classes(setup)  # checked before any teacher trains
    return len(setup.teachers) * setup.teacher_seeds


def split_at_classifier(model: nn.Module) -> tuple[nn.Module, nn.Linear]:
    """(everything before the last layer, the last layer): the penultimate activations and the templates."""
    if not isinstance(model, nn.Sequential) or not isinstance(model[-1], nn.Linear):
        raise ConfigError("penultimate: the teacher must be a sequential network ending in a linear classifier")
    return model[:-1], model[-1]


def project(activations: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
    """Coordinates of ``activations`` (N x D) in an orthonormal basis of the plane through the three
    ``templates`` (3 x D), with the first template at the origin."""
    origin = templates[0]
    u = templates[1] - origin
    u = u / u.norm()
    v = templates[2] - origin
    v = v - (v @ u) * u
    v = v / v.norm()
    return (activations - origin) @ torch.stack([u, v], dim=1)


def cluster_shape(points: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(width, elongation) of the projected class clusters. Width: the spread across each cluster's
    main axis (the square root of its covariance's smaller eigenvalue), averaged over the classes,
    over the mean distance between class centroids: how far a class reaches sideways, toward the
    others. Elongation: major over minor axis. An over-confident network stretches each class along
    its own template (its confidence) and keeps it thin across (no similarity): a small width, a
    large elongation."""
    ks = labels.unique()
    centroids = torch.stack([points[labels == k].mean(dim=0) for k in ks])
    axes = torch.stack([torch.linalg.eigvalsh(torch.cov(points[labels == k].T)).clamp(min=0).sqrt() for k in ks])
    width = float(axes[:, 0].mean() / torch.pdist(centroids).mean())
    elongation = float((axes[:, 1] / axes[:, 0].clamp(min=1e-12)).mean())
    return width, elongation


def run(setup: Setup, out: Path, tick: Tick) -> list[Path]:
    config, splits = setup.config, setup.splits
    chosen = classes(setup)
    x_eval, y_eval = splits.evaluation(setup.split)
    generator = torch.Generator().manual_seed(config.seed)
    picks = []
    for k in chosen:
        members = torch.nonzero(y_eval == k).flatten()
        picks.append(members[torch.randperm(len(members), generator=generator)[:PER_CLASS].to(members.device)])
    index = torch.cat(picks)
    x, y = x_eval[index], y_eval[index]
    rows, shapes = [], []
    for spec in setup.teachers:
        for seeded in setup.seeded(spec):
            teacher = train_teacher(setup, seeded)
            body, classifier = split_at_classifier(teacher)
            with torch.no_grad():
                points = project(predict_logits(body, x), classifier.weight[list(chosen)]).cpu()
            rows += [{"teacher": spec.label, "teacher_seed": seeded.seed, "class": int(k),
                      "class_name": class_name(splits.name, int(k)), "x": round(float(p[0]), 5),
                      "y": round(float(p[1]), 5)} for p, k in zip(points, y.tolist())]
            width, elongation = cluster_shape(points, y.cpu())
            entropy = normalized_entropy(predict_logits(teacher, splits.x_train), config.distill.temperature)
            shapes.append({"teacher": spec.label, "width": width, "elongation": elongation, "entropy": entropy})
            tick()
    summary = [
        [
            teacher,
            spread(column(mine, "width"), 1, 3),
            spread(column(mine, "elongation"), 1, 1),
            spread(column(mine, "entropy"), 1, 3),
        ]
        for teacher in dict.fromkeys(column(shapes, "teacher"))
        for mine in [by(shapes, teacher=teacher)]
    ]
    names = ", ".join(class_name(splits.name, k) for k in chosen)
    sizes = "/".join(str(len(p)) for p in picks)
    markdown = (
        f"Penultimate-layer activations of {sizes} {setup.split} examples of {names}, projected on the "
        "plane through their templates. Width: a cluster's spread across its main axis over the distance between "
        "centroids (larger: the class reaches toward the others, similarity kept); elongation: its major over "
        "minor axis (large: stretched along its own template only). "
        f"{seeds_note(setup.teacher_seeds).capitalize()}; the "
        "figure shows each teacher's first seed.\n\n"
        + markdown_table(["teacher", "width", "elongation", f"entropy at T={config.distill.temperature:g}"], summary)
    )
    return write_outputs(out, NAME, rows, markdown, lambda fig: _draw(fig, rows, summary), (4.0 * len(summary), 4.0))


def _draw(fig: Any, rows: list[dict[str, Any]], summary: list[list[str]]) -> None:
    axes = fig.subplots(1, len(summary), squeeze=False)[0]
    for ax, (teacher, width, elongation, _) in zip(axes, summary):
        mine = by(rows, teacher=teacher)
        mine = by(mine, teacher_seed=mine[0]["teacher_seed"])
        for k in dict.fromkeys(r["class"] for r in mine):
            pts = [r for r in mine if r["class"] == k]
            ax.scatter([r["x"] for r in pts], [r["y"] for r in pts], s=4, alpha=0.5, label=pts[0]["class_name"])
        ax.set(title=f"{teacher}\nwidth {width}, elongation {elongation}", xticks=[], yticks=[])
        ax.legend(fontsize=7, markerscale=3)
