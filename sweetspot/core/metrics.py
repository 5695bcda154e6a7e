"""What a teacher's soft labels carry, and how well a network classifies: one function per metric.

All take logits (not probabilities) so that the temperature is applied in exactly one place.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def soft_labels(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``p_T = softmax(z / T)``."""
    return F.softmax(logits / temperature, dim=1)


def soft_labels_by_class(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """C x C: row k is the mean soft-label vector over the examples of class k (the paper's Tables
    2 and 3); NaN where a class has no example."""
    p = soft_labels(logits, temperature)
    n_classes = logits.shape[1]
    rows = [
        p[labels == k].mean(dim=0) if (labels == k).any() else torch.full((n_classes,), float("nan"), device=p.device)
        for k in range(n_classes)
    ]
    return torch.stack(rows)


def normalized_entropy(logits: torch.Tensor, temperature: float) -> float:
    """``H(T) = mean_i(-sum_k p_ik log p_ik) / log C``: 1 for uniform soft labels, 0 for one-hot."""
    log_p = F.log_softmax(logits / temperature, dim=1)
    entropy = -(log_p.exp() * log_p).sum(dim=1)
    return float(entropy.mean() / math.log(logits.shape[1]))


def nontarget_entropy(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    """Normalised entropy of the soft labels over the C - 1 non-target classes, renormalised:
    how evenly the teacher spreads its similarity mass (1: like label smoothing)."""
    n_classes = logits.shape[1]
    others = ~F.one_hot(labels, n_classes).bool()
    masked = (logits / temperature).masked_fill(~others, float("-inf"))
    log_q = F.log_softmax(masked, dim=1)
    entropy = -(log_q.exp() * log_q.masked_fill(~others, 0.0)).sum(dim=1)
    return float(entropy.mean() / math.log(n_classes - 1))


def off_target_mass(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    """Mueller et al.'s ``gamma = mean_i(sum_{k != y_i} p_ik) * C / (C - 1)``: the label-smoothing
    factor that would give the same confidence in the true class."""
    p = soft_labels(logits, temperature)
    n_classes = p.shape[1]
    off = 1.0 - p.gather(1, labels[:, None]).squeeze(1)
    return float(off.mean() * n_classes / (n_classes - 1))


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """ECE at T = 1: sum over equal-width confidence bins of |accuracy - confidence| x bin share."""
    confidence, predicted = F.softmax(logits, dim=1).max(dim=1)
    correct = (predicted == labels).float()
    edges = torch.linspace(0, 1, bins + 1, device=logits.device)
    which = torch.bucketize(confidence, edges[1:-1], right=True)
    ece = torch.zeros((), device=logits.device)
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.float().mean() * (correct[in_bin].mean() - confidence[in_bin].mean()).abs()
    return float(ece)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(dim=1) == labels).float().mean())


def class_accuracy(logits: torch.Tensor, labels: torch.Tensor, classes: tuple[int, ...]) -> float | None:
    """Accuracy over the examples of ``classes`` only (the missing-class test); None if none."""
    mask = torch.zeros_like(labels, dtype=torch.bool)
    for c in classes:
        mask |= labels == c
    if not mask.any():
        return None
    return accuracy(logits[mask], labels[mask])


def agreement(logits_a: torch.Tensor, logits_b: torch.Tensor) -> float:
    """Share of examples on which two networks predict the same class."""
    return float((logits_a.argmax(dim=1) == logits_b.argmax(dim=1)).float().mean())


def bias_shift(student_logits: torch.Tensor, teacher_logits: torch.Tensor, k: int) -> float:
    """Hinton's bias correction of a missing class k, chosen without labels: the shift b of the
    student's logit for k after which it predicts k on exactly as many of these inputs as the
    teacher does. b may be negative: a student that predicts k too often is corrected down.

    An input is predicted k after the shift iff b exceeds its margin ``max_{j != k} z_j - z_k``;
    with the margins sorted and n the teacher's count, b lies between the n-th and the (n+1)-th:
    the midpoint (just below the smallest margin for n = 0, just above the largest for n = N)."""
    wanted = int((teacher_logits.argmax(dim=1) == k).sum())
    others = student_logits.clone()
    others[:, k] = float("-inf")
    margins = torch.sort(others.max(dim=1).values - student_logits[:, k]).values
    if wanted == 0:
        return float(margins[0]) - 1e-4
    if wanted >= len(margins):
        return float(margins[-1]) + 1e-4
    return float(margins[wanted - 1] + margins[wanted]) / 2


def shifted(logits: torch.Tensor, k: int, shift: float) -> torch.Tensor:
    """``logits`` with ``shift`` added to class k's column."""
    out = logits.clone()
    out[:, k] += shift
    return out
