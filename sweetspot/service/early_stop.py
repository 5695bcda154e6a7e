"""When a trial's teacher has left the useful region: the entropy floor, the accuracy ceiling, and
Optuna's pruners on the teacher's epoch curve.

The rule needs nothing from other trials, so it works for multi-objective studies, which Optuna
cannot prune through ``trial.report``; the pruners (single objective only) compare the curve with
the other trials' curves at the same epoch.
"""

from __future__ import annotations

import optuna

from sweetspot.config import EarlyStopConfig

PRUNER_CLASSES = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "successive-halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
}
CURVE_POINT = {"teacher_entropy": "entropy", "teacher_val_acc": "accuracy"}  # early_stop.curve -> key of a point


def rule_reason(rule: EarlyStopConfig, point: dict[str, float], temperature: float) -> str | None:
    """Why the rule stops the teacher after this epoch, or None."""
    epoch = int(point["epoch"])
    if rule.entropy_floor is not None and point["entropy"] < rule.entropy_floor:
        return (f"teacher entropy at T={temperature:g} fell to {point['entropy']:.4f} after epoch {epoch}, "
                f"below early_stop.entropy_floor {rule.entropy_floor:g}")
    if rule.accuracy_ceiling is not None and point["accuracy"] > rule.accuracy_ceiling:
        return (f"teacher validation accuracy rose to {point['accuracy']:.4f} after epoch {epoch}, "
                f"above early_stop.accuracy_ceiling {rule.accuracy_ceiling:g}")
    return None


def make_pruner(rule: EarlyStopConfig) -> optuna.pruners.BasePruner:
    """Optuna's pruner for ``early_stop.pruner`` with its default settings."""
    return PRUNER_CLASSES[rule.pruner]()
