"""Fast in-memory training loops: the teacher on hard labels, the student by distillation.

Data are resident tensors indexed by a seeded permutation per epoch; no DataLoader, no copies of
the dataset. The teacher's logits on the transfer set are computed once per trial by the caller and
passed in, so distillation never runs the teacher.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from sweetspot.errors import TrainingDiverged

if TYPE_CHECKING:
    from sweetspot.core.splits import Examples

LossOfBatch = Callable[[torch.Tensor], torch.Tensor]  # batch indices (B, or S x B) -> scalar loss
Generators = torch.Generator | Sequence[torch.Generator]  # batch order: one, or one per stacked copy
EpochHook = Callable[[int], bool]  # epoch number (1-based) -> True to stop training after it


@dataclass
class Loop:
    """How a training loop runs, handed whole from the caller that set it up to the step loop: the
    optimizer and its schedule, the batches (size, epochs, seeded order), the precision of the steps,
    and for a resumed run its first epoch and what to do after each epoch."""

    optimizer: torch.optim.Optimizer
    batch_size: int
    epochs: int
    generator: Generators  # batch order: one, or one per stacked copy
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    precision: str = "float32"
    first_epoch: int = 1  # the number of the first epoch (a resumed run continues the count)
    after_epoch: EpochHook | None = None  # may evaluate the model; True stops training after this epoch


@dataclass(frozen=True)
class KD:
    """The distillation loss: soft labels at ``temperature``, the soft term weighted by ``alpha`` (one
    for every student, or one per stacked student), ``convention`` hinton (times T^2) or paper (Eq. 4)."""

    temperature: float
    alpha: float | Sequence[float]
    convention: str = "hinton"


def make_optimizer(name: str, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """Fused Adam/AdamW: one kernel per step instead of one per tensor (about 4 ms less per step
    of the default 6 x 512 teacher on 2 CPU cores, which dominates small-batch trials)."""
    params = model.parameters()
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, fused=True)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, fused=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    raise ValueError(f"unknown optimizer {name!r}")  # config validation makes this unreachable


def make_scheduler(
    name: str, optimizer: torch.optim.Optimizer, epochs: int, lr_decay: float
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-epoch learning-rate schedule (``None``: constant). Only ``cosine`` reads ``epochs``."""
    if name == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=lr_decay)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    return None


def _streams(generator: Generators) -> list[torch.Generator]:
    """One batch-order generator per copy (a single network: one)."""
    return [generator] if isinstance(generator, torch.Generator) else list(generator)


def train_loop(model: nn.Module, n_examples: int, loss_of_batch: LossOfBatch, loop: Loop, what: str) -> list[float]:
    """Minibatch SGD over ``range(n_examples)``: one seeded permutation per epoch, the last batch
    kept even if short (as a DataLoader with ``drop_last=False``). Returns the mean loss of each
    epoch; raises TrainingDiverged as soon as an epoch's loss is not finite.

    With one generator per copy of a stacked model, each copy walks its own permutation: the batch
    indices are S x B, and the loss is the sum over the copies of each one's mean loss (so each copy
    gets the gradient it would get alone); the history then holds that sum.

    ``loop.first_epoch`` numbers the epochs of a resumed run; ``loop.after_epoch(epoch)`` runs after
    each epoch (it may evaluate the model) and stops training by returning True."""
    device = next(model.parameters()).device
    optimizer, batch_size, generator = loop.optimizer, loop.batch_size, loop.generator
    autocast = precision_context(loop.precision, device)  # made once: the step loop is the hot path
    channels_last(model)
    match_state_layouts(optimizer)
    model.train()
    history = []
    streams = _streams(generator)
    for epoch in range(loop.first_epoch, loop.first_epoch + loop.epochs):
        order = torch.stack([torch.randperm(n_examples, generator=g) for g in streams]).to(device)
        if isinstance(generator, torch.Generator):
            order = order[0]
        total = torch.zeros((), device=device)
        for start in range(0, n_examples, batch_size):
            index = order[..., start : start + batch_size]
            with autocast:  # forward and loss only, as autocast is meant
                loss = loss_of_batch(index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * index.shape[-1]
        mean = total.item() / n_examples  # one sync per epoch
        if not math.isfinite(mean):
            raise TrainingDiverged(f"{what} loss became {mean} in epoch {epoch}")
        history.append(mean)
        if loop.scheduler is not None:
            loop.scheduler.step()
        if loop.after_epoch is not None:
            stop = loop.after_epoch(epoch)
            model.train()  # the hook may have evaluated it
            if stop:
                break
    model.eval()
    return history


def channels_last(model: nn.Module) -> None:
    """A network with 2-d convolutions in the channels-last layout, on the CPU (oneDNN's fast path:
    the Fashion-MNIST small teacher's step 1.5 x as fast at batch 256, the General student's 1.8 x,
    benchmarks/conv_speed.py). A stacked model (5-d weights) keeps the layout ``Stacked`` gave it; a
    network on a GPU keeps its own, where cuDNN chooses."""
    params = list(model.parameters())
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()) or any(p.dim() > 4 for p in params):
        return
    if params[0].device.type == "cpu":
        model.to(memory_format=torch.channels_last)


def match_state_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Each tensor of the optimizer's state in its parameter's layout: a fused optimizer reads both as
    flat memory, so a state in another layout (from a checkpoint written before a network was laid
    out channels-last) would pair the wrong elements and train wrongly without an error."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.shape == param.shape and value.stride() != param.stride():
                    state[key] = torch.empty_like(param).copy_(value)


def train_classifier(model: nn.Module, x: Examples, y: torch.Tensor, loop: Loop, augment: str = "none") -> list[float]:
    """Cross-entropy training on hard labels (the teacher). With one generator per copy, ``model`` is
    a ``stacking.Stacked`` of teachers, each on its own batches. ``augment="flip-crop"``: each batch
    randomly cropped and flipped (``flip_crop``), drawn from the batch-order generator, so that a
    resumed run continues the same draws."""
    streams = _streams(loop.generator)

    def inputs(i: torch.Tensor, s: int = 0) -> torch.Tensor:
        return x[i] if augment == "none" else flip_crop(x[i], streams[s])

    def loss_of_batch(i: torch.Tensor) -> torch.Tensor:
        if i.dim() == 1:
            return F.cross_entropy(model(inputs(i)), y[i])
        batch = x[i] if augment == "none" else torch.stack([inputs(row, s) for s, row in enumerate(i)])
        logits = model(batch, per_copy=True)  # S x B x C
        return F.cross_entropy(logits.flatten(0, 1), y[i].flatten(), reduction="none").view(i.shape).mean(dim=1).sum()

    return train_loop(model, len(y), loss_of_batch, loop, "teacher")


PAD = 4  # pixels of padding around a random crop (as fast CIFAR-10 training code uses)


def flip_crop(x: torch.Tensor, generator: torch.Generator, pad: int = PAD) -> torch.Tensor:
    """A random crop of each image of ``x`` (N x C x H x W) from its ``pad``-pixel zero-padded copy,
    and a horizontal flip of half of them: on the batch's device, the draws from ``generator``. Zero
    is the channel mean of standardised inputs."""
    if x.dim() != 4:
        raise ValueError(f"flip-crop needs images N x C x H x W, got {tuple(x.shape)}")  # checked at config time
    n, c, h, w = x.shape
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    cropped = padded[torch.arange(n, device=x.device)[:, None, None, None], torch.arange(c, device=x.device)[
        None, :, None, None], rows, cols]
    return torch.where(flip[:, None, None, None], cropped.flip(-1), cropped)


@torch.no_grad()
def predict_logits(model: nn.Module, x: Examples, chunk: int = 8192) -> torch.Tensor:
    """Logits in eval mode and float32 (also inside a bfloat16 autocast: soft labels and metrics are
    read to 4 digits), in chunks so that large splits fit in memory. N x C, or S x N x C for a
    stacked model of S networks."""
    model.eval()
    with torch.autocast(x.device.type, enabled=False):
        return torch.cat([model(x[i : i + chunk]) for i in range(0, len(x), chunk)], dim=-2)


def precision_context(precision: str, device: torch.device) -> AbstractContextManager[Any]:
    """The autocast a network's ``precision`` asks for its forward passes (nothing for float32).
    Never around an optimizer step: autocast caches the low-precision copies of the weights."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bfloat16" else nullcontext()


def kd_loss_per_example(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    alpha: float,
    convention: str = "hinton",
) -> torch.Tensor:
    """The KD loss of each example (alpha weights the soft term, as design.md fixes it):

    ``hinton``: ``(1 - alpha) * CE(s, y) + alpha * T^2 * KL(softmax(t/T) || softmax(s/T))``;
    ``paper``:  the same without ``T^2``, the paper's Eq. 4 as printed.

    The KL is summed over classes. ``student_logits`` may carry leading dimensions (stacked
    students: S x B x C) over one batch of teacher logits and labels (B x C, B); the result has the
    student logits' shape without the class dimension. T^2 keeps the soft term's gradients on the
    scale of the hard term's as T grows; without it the hard labels weigh more at a high T.
    """
    log_p = F.log_softmax(teacher_logits / temperature, dim=-1)
    return kd_terms(student_logits, log_p, log_p.exp(), labels, temperature, alpha, convention)


def kd_terms(
    student_logits: torch.Tensor,
    teacher_log_p: torch.Tensor,
    teacher_p: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    alpha: float,
    convention: str,
) -> torch.Tensor:
    """``kd_loss_per_example`` from the teacher's soft labels at T (and their logarithm), which a
    training run computes once for the whole transfer set instead of at every step."""
    hard, soft = kd_parts(student_logits, teacher_log_p, teacher_p, labels, temperature)
    hard_weight, soft_weight = kd_weights(alpha, temperature, convention)
    return hard_weight * hard + soft_weight * soft


def kd_parts(
    student_logits: torch.Tensor, teacher_log_p: torch.Tensor, teacher_p: torch.Tensor, labels: torch.Tensor,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The hard term (cross-entropy with the label) and the soft term (KL at T, summed over classes)
    of each example, unweighted."""
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    soft = (teacher_p * (teacher_log_p - log_q)).sum(dim=-1)
    log_probs = F.log_softmax(student_logits, dim=-1)
    hard = -log_probs.gather(-1, labels.expand(student_logits.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    return hard, soft


def kd_weights(
    alpha: float | Sequence[float], temperature: float, convention: str, device: torch.device | None = None,
) -> tuple[Any, Any]:
    """The weights of the hard and the soft term, ``1 - alpha`` and ``alpha`` (times T^2 for hinton):
    floats for one alpha; for one per stacked student, S-vectors on ``device``, computed in float64
    and then rounded, so that each equals the float weight of its alpha alone."""
    scale = temperature * temperature if convention == "hinton" else 1.0
    if isinstance(alpha, float | int):
        return 1.0 - alpha, alpha * scale
    alpha64 = torch.tensor(list(alpha), dtype=torch.float64)
    return (1.0 - alpha64).float().to(device), (alpha64 * scale).float().to(device)


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    alpha: float,
    convention: str = "hinton",
) -> torch.Tensor:
    """``kd_loss_per_example`` averaged over the batch: the KL is ``reduction="batchmean"``."""
    return kd_loss_per_example(student_logits, teacher_logits, labels, temperature, alpha, convention).mean()


def masked_mean(losses: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The mean loss of the kept examples of each student, summed over students: ``losses`` is
    (..., B), ``mask`` (..., B) True where a student sees the example. A student whose batch keeps
    nothing adds 0 (its weights get no gradient from that step)."""
    return mean_kept(losses, mask).sum()


def mean_kept(losses: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Each student's mean loss over the examples of the batch its ``mask`` keeps (0 where none)."""
    if mask is None:
        return losses.mean(dim=-1)
    kept = mask.to(losses.dtype)
    return (losses * kept).sum(dim=-1) / kept.sum(dim=-1).clamp(min=1.0)


def distill(
    student: nn.Module,
    x: Examples,
    teacher_logits: torch.Tensor,
    y: torch.Tensor,
    loop: Loop,
    kd: KD,
    *,
    mask: torch.Tensor | None = None,
    labelled: torch.Tensor | None = None,
    teacher_of: Sequence[int] | None = None,
) -> list[float]:
    """Train ``student`` on (x, y) with the teacher's cached logits on the same examples.

    ``mask`` (N, or S x N for S stacked students) keeps some examples from some students: every
    student walks the same batches in the same order, and each averages its loss over the examples of
    the batch it keeps (a missing-class student: the transfer set without class k).

    ``labelled`` (N, or S x N) marks the examples whose hard label a student may use (semi-supervised
    distillation, ``distill.labels_per_class``): the hard term is then averaged over the kept labelled
    examples of the batch and the soft term over all kept ones. ``kd.alpha`` is one for every student or
    one per stacked student (a labels-only student: 0).

    ``teacher_logits`` is N x C (one teacher for every student) or M x N x C (M teachers: stacked
    student s learns from teacher ``teacher_of[s]``)."""
    temperature = kd.temperature
    log_p = F.log_softmax(teacher_logits / temperature, dim=-1)  # the soft labels, once for every epoch
    p = log_p.exp()
    device = log_p.device
    which = None if teacher_of is None else torch.as_tensor(list(teacher_of), device=device)
    hard_weight, soft_weight = kd_weights(kd.alpha, temperature, kd.convention, device)  # once, not per step
    if isinstance(hard_weight, torch.Tensor) and labelled is None:  # per student, against S x B losses
        hard_weight, soft_weight = hard_weight.unsqueeze(-1), soft_weight.unsqueeze(-1)

    def loss_of_batch(i: torch.Tensor) -> torch.Tensor:
        log_p_i, p_i = log_p[..., i, :], p[..., i, :]
        if which is not None and log_p.dim() == 3:  # each teacher's batch to its students, per batch only
            log_p_i, p_i = log_p_i[which], p_i[which]
        kept = None if mask is None else mask[..., i]
        hard, soft = kd_parts(student(x[i]), log_p_i, p_i, y[i], temperature)
        if labelled is None:
            return masked_mean(hard_weight * hard + soft_weight * soft, kept)
        with_label = labelled[..., i] if kept is None else labelled[..., i] & kept
        return (hard_weight * mean_kept(hard, with_label) + soft_weight * mean_kept(soft, kept)).sum()

    return train_loop(student, len(y), loss_of_batch, loop, "student")


def label_smoothing_targets(labels: torch.Tensor, n_classes: int, a: float) -> torch.Tensor:
    """``(1 - a) * onehot + a / C``: KD from a teacher with no similarity information (Table 1)."""
    return (1.0 - a) * F.one_hot(labels, n_classes).float() + a / n_classes
