"""The student: distilled from a teacher's cached logits, the same way in trials and experiments.

Its initial weights come from torch's global RNG and its batch order from ``generator``: the caller
seeds both, so that a trial and an experiment that seed alike train the same student.
"""

from __future__ import annotations

import torch
from torch import nn

from sweetspot.config import StudentConfig
from sweetspot.models import build_model
from sweetspot.training import distill, make_optimizer, make_scheduler


def train_student(
    net: StudentConfig,
    x: torch.Tensor,
    teacher_logits: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    *,
    temperature: float,
    alpha: float,
    generator: torch.Generator,
    epochs: int | None = None,
) -> nn.Module:
    """``net`` distilled on (x, y) from ``teacher_logits`` (the teacher's logits on x, computed
    once), with its optimizer, schedule and precision, for ``epochs`` (default: ``net.epochs``)."""
    epochs = net.epochs if epochs is None else epochs
    student = build_model(net, tuple(x.shape[1:]), n_classes).to(x.device)
    optimizer = make_optimizer(net.optimizer, student, net.lr)
    distill(
        student, x, teacher_logits, y, temperature=temperature, alpha=alpha, optimizer=optimizer,
        batch_size=net.batch_size, epochs=epochs, generator=generator,
        scheduler=make_scheduler(net.schedule, optimizer, epochs, net.lr_decay), precision=net.precision,
    )
    return student
