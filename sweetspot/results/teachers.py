"""Calibrated teachers out of a study, for use in anyone's distillation code.

``sweetspot teacher FILE`` takes a teacher of an export: its weights from the study's artifact
store when they are there, else retrained from the recipe; checks that it gives the figures the
export recorded; and writes a state dict of the teacher behind its input standardisation, so that it
takes raw images scaled to [0, 1] (what torchvision's ``ToTensor`` gives). ``sweetspot.load_teacher``
reads it back with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sweetspot.config import NetConfig, StudyConfig, config_from_dict
from sweetspot.core.atomic_files import atomic_file
from sweetspot.core.metrics import accuracy, normalized_entropy
from sweetspot.core.models import build_model
from sweetspot.core.splits import Splits, transfer_indices
from sweetspot.core.teacher_paths import train_teacher
from sweetspot.core.training import predict_logits
from sweetspot.core.trial import TeacherParams, params_from_dict
from sweetspot.errors import ConfigError
from sweetspot.service.artifacts import cpu_state_dict, load_weights

if TYPE_CHECKING:  # optuna only for the annotation: loading an exported teacher needs no Optuna
    from optuna.trial import FrozenTrial

TOLERANCE = 1e-3  # largest difference from the export's figures accepted (same device type: exact)
CHECKED = ("teacher_val_acc", "teacher_entropy")


class Standardize(nn.Module):
    """``(x - mean) / std`` with the training split's statistics, as buffers of the state dict."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def teacher_recipe(config: StudyConfig, trial: FrozenTrial) -> dict[str, Any]:
    """Everything needed to retrain this trial's teacher bit for bit (on the same device type)."""
    return {
        "dataset": config.data.name,
        "split": {"val_fraction": config.data.val_fraction, "test_fraction": config.data.test_fraction,
                  "seed": config.seed},
        "arch": config.teacher.arch,
        "options": dict(config.teacher.options),
        "optimizer": config.teacher.optimizer,
        "lr": params_from_dict(trial.params).lr(config),
        "schedule": config.teacher.schedule,
        "lr_decay": config.teacher.lr_decay,
        "precision": config.teacher.precision,
        "augment": config.teacher.augment,
        "batch_size": trial.params["batch_size"],
        "epochs": trial.params["epochs"],
        "seed": trial.user_attrs["seed"],
    }


def net_from_recipe(recipe: dict[str, Any]) -> NetConfig:
    """The teacher network and its optimisation, as ``teacher_recipe`` wrote them (a key an older
    export lacks keeps NetConfig's default)."""
    given = {f.name: recipe[f.name] for f in dataclasses.fields(NetConfig) if f.name in recipe}
    given["options"] = dict(given.get("options") or {})
    return NetConfig(**given)


@dataclass(frozen=True)
class ExportedTeacher:
    """One teacher of an export document: which trial, its config and the figures it recorded."""

    trial: int
    config: StudyConfig
    net: NetConfig
    params: TeacherParams  # the trial's searched variables
    seed: int
    recorded: dict[str, Any]

    @property
    def temperature(self) -> float:
        return self.params.t(self.config)


def pick_teacher(document: dict[str, Any], trial: int | None = None) -> ExportedTeacher:
    """The best teacher of an export (as ``files.read_export`` checked it), or the one of trial ``trial``."""
    teachers = document["teachers"]
    entry = next((t for t in teachers if (t["best"] if trial is None else t["trial"] == trial)), None)
    if entry is None:
        numbers = ", ".join(str(t["trial"]) for t in teachers)
        raise ConfigError(f"trial {trial} is not in this export (its teachers: trials {numbers})")
    recipe = entry["recipe"]
    config = config_from_dict(document["config"], source="the export's config")
    params = params_from_dict(
        {**(entry["params"] or {}), "batch_size": recipe["batch_size"], "epochs": recipe["epochs"]}
    )
    return ExportedTeacher(entry["trial"], config, net_from_recipe(recipe), params, recipe["seed"], entry["metrics"])


def retrain(chosen: ExportedTeacher, splits: Splits) -> nn.Module:
    """The teacher trained again from its recipe, seeded as its trial seeded it (no student)."""
    return train_teacher(chosen.net, splits, chosen.params.batch_size, chosen.params.epochs, chosen.net.lr, chosen.seed)


def wrap(teacher: nn.Module, splits: Splits) -> nn.Sequential:
    """The teacher behind the standardisation of raw inputs that its training data had."""
    return nn.Sequential(Standardize(splits.input_mean, splits.input_std).to(splits.x_train.device), teacher).eval()


def figures(teacher: nn.Module, config: StudyConfig, splits: Splits, temperature: float) -> dict[str, float]:
    """What an export records about a teacher that needs no student: validation accuracy, and the
    soft-label entropy at the trial's T on the transfer set."""
    d = config.distill
    index = transfer_indices(splits.y_train, d.withheld_classes, d.examples_per_class, config.seed)
    return {
        "teacher_val_acc": accuracy(predict_logits(teacher, splits.x_val), splits.y_val),
        "teacher_entropy": normalized_entropy(predict_logits(teacher, splits.x_train.take(index)), temperature),
    }


def check_figures(found: dict[str, float], recorded: dict[str, Any], trial: int) -> None:
    """Raise when the teacher does not give the figures the export recorded (within TOLERANCE)."""
    off = [
        f"{k} {found[k]:.4f} (export: {recorded[k]:.4f})"
        for k in CHECKED
        if recorded.get(k) is not None and abs(found[k] - recorded[k]) > TOLERANCE
    ]
    if off:
        raise ConfigError(
            f"trial {trial}'s teacher does not reproduce the export: {'; '.join(off)}; nothing written "
            "(another device type or thread count can change results: use the study's)"
        )


def save_weights(model: nn.Module, path: Path) -> None:
    """The state dict, written to a temporary file and renamed: never half a file."""
    with atomic_file(path) as tmp:
        torch.save(cpu_state_dict(model), tmp)


def teacher_from_weights(chosen: ExportedTeacher, weights_file: Path) -> nn.Module:
    """The teacher ``chosen`` with the weights `sweetspot teacher` wrote, in eval mode."""
    state = load_weights(weights_file)
    shape = tuple(state["0.mean"].shape)
    n_classes = list(state.values())[-1].shape[0]  # the classifier's bias comes last
    model = nn.Sequential(Standardize(state["0.mean"], state["0.std"]), build_model(chosen.net, shape, n_classes))
    model.load_state_dict(state)
    return model.eval()
