"""Students: distilled from a teacher's cached logits, the same way in trials and experiments.

A trial trains several students at once: one on the whole transfer set and one per missing class k
(the transfer set without k, the paper's Table 5). They share their architecture, initial weights and
batch order, so they are trained as one stacked model (``stacking.Stacked``: their weights stacked
along a first dimension, one batched forward pass); each student masks the examples it must not
see. Stacked training equals training the students one after another (``tests/core/test_students.py``),
at a fraction of the cost.

Initial weights (and dropout masks) come from torch's global RNG and the batch order from
``generator``: the caller seeds both.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from sweetspot.config import StudentConfig, StudyConfig
from sweetspot.core.models import build_model
from sweetspot.core.seeds import student_seed
from sweetspot.core.stacking import Stacked, stackable
from sweetspot.core.training import KD, Loop, distill, make_optimizer, make_scheduler

if TYPE_CHECKING:
    from sweetspot.core.splits import Examples


def seeded_for_students(config: StudyConfig) -> torch.Generator:
    """Seed torch's global RNG (the students' initial weights and dropout) and return the generator of
    their batch order, both from the study's student seed: the same in every trial and experiment
    (common random numbers)."""
    seed = student_seed(config)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def train_student(
    net: StudentConfig,
    x: Examples,
    teacher_logits: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    *,
    temperature: float,
    alpha: float,
    generator: torch.Generator,
    epochs: int | None = None,
    convention: str = "hinton",
    mask: torch.Tensor | None = None,
    labelled: torch.Tensor | None = None,
) -> nn.Module:
    """``net`` distilled on (x, y) from ``teacher_logits`` (the teacher's logits on x, computed
    once), with its optimizer, schedule and precision, for ``epochs`` (default: ``net.epochs``);
    ``mask`` (N) keeps it from the examples marked False, within the same batches; ``labelled`` (N)
    limits its hard term to the examples marked True."""
    epochs = net.epochs if epochs is None else epochs
    student = build_model(net, tuple(x.shape[1:]), n_classes).to(x.device)
    _distill(net, student, x, teacher_logits, y, KD(temperature, alpha, convention), generator, epochs, mask, labelled)
    return student


def train_students(
    net: StudentConfig,
    x: Examples,
    teacher_logits: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    masks: torch.Tensor,
    *,
    temperature: float,
    alpha: float | Sequence[float],
    generator: torch.Generator,
    epochs: int | None = None,
    convention: str = "hinton",
    teacher_of: Sequence[int] | None = None,
    labelled: torch.Tensor | None = None,
) -> nn.Module:
    """S students at once, student s on the examples ``masks[s]`` (S x N) keeps, all from the same
    initial weights in the same batch order: a ``Stacked`` model whose forward pass gives S x B x C.
    A network that cannot be stacked (batch norm) is trained one student after another, each from the
    same initial weights and batch order, and returned in the same stacked form.

    ``teacher_logits``: N x C, one teacher for all, or M x N x C, student s learning from teacher
    ``teacher_of[s]`` (a trial's teacher seeds, each with its full and its missing-class students).
    ``alpha``: one for all, or one per student (0: a student of the labels alone). ``labelled``
    (S x N): the examples whose hard label each student uses (default: all)."""
    epochs = net.epochs if epochs is None else epochs
    base = build_model(net, tuple(x.shape[1:]), n_classes).to(x.device)
    if stackable(base):
        stacked = Stacked([base] * len(masks))
        _distill(net, stacked, x, teacher_logits, y, KD(temperature, alpha, convention), generator, epochs, masks,
                 labelled, teacher_of)
        return stacked
    start, rng = generator.get_state(), torch.get_rng_state()
    students = []
    for s, mask in enumerate(masks):
        generator.set_state(start)
        torch.set_rng_state(rng)
        student = copy.deepcopy(base)
        own = teacher_logits[teacher_of[s] if teacher_of is not None else 0] if teacher_logits.dim() == 3 \
            else teacher_logits
        own_alpha = alpha if isinstance(alpha, float | int) else float(alpha[s])
        _distill(net, student, x, own, y, KD(temperature, own_alpha, convention), generator, epochs, mask,
                 None if labelled is None else labelled[s])
        students.append(student)
    return OneByOne(students)


class OneByOne(nn.Module):
    """Students trained one by one, answering like a Stacked model (S x B x C)."""

    def __init__(self, students: list[nn.Module]) -> None:
        super().__init__()
        self.students = nn.ModuleList(students)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([student(x) for student in self.students])

    def copy_of(self, s: int) -> nn.Module:
        return self.students[s]


def _distill(
    net: StudentConfig, student: nn.Module, x: Examples, teacher_logits: torch.Tensor, y: torch.Tensor, kd: KD,
    generator: torch.Generator, epochs: int, mask: torch.Tensor | None, labelled: torch.Tensor | None = None,
    teacher_of: Sequence[int] | None = None,
) -> None:
    """``student`` distilled under ``net``'s optimizer, schedule, batch size and precision."""
    optimizer = make_optimizer(net.optimizer, student, net.lr)
    loop = Loop(optimizer, net.batch_size, epochs, generator,
                make_scheduler(net.schedule, optimizer, epochs, net.lr_decay), net.precision)
    distill(
        student, x, teacher_logits, y, loop, kd, mask=mask, labelled=labelled, teacher_of=teacher_of,
    )
