"""Calibrated teachers out of a study, for use in anyone's distillation code.

``sweetspot teacher FILE`` takes a teacher of an export: its weights from the study's artifact
store when they are there, else retrained from the recipe; checks that it gives the figures the
export recorded; and writes a state dict of the teacher behind its input standardisation, so that it
takes raw images scaled to [0, 1] (what torchvision's ``ToTensor`` gives). ``load_teacher`` reads it
back with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sweetspot.artifacts import cpu_state_dict, load_weights
from sweetspot.config import NetConfig, StudyConfig, config_from_dict
from sweetspot.data import Splits, transfer_indices
from sweetspot.errors import ConfigError
from sweetspot.export import atomic_file, load_export, net_from_recipe
from sweetspot.metrics import accuracy, normalized_entropy
from sweetspot.models import build_model
from sweetspot.training import predict_logits
from sweetspot.trajectories import train_teacher

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


@dataclass(frozen=True)
class ExportedTeacher:
    """One teacher of an export document: which trial, its config and the figures it recorded."""

    trial: int
    config: StudyConfig
    net: NetConfig
    batch_size: int
    epochs: int
    seed: int
    temperature: float | None  # searched T of the trial (None: the config's)
    recorded: dict[str, Any]


def pick_teacher(document: dict[str, Any], trial: int | None = None) -> ExportedTeacher:
    """The best teacher of an export, or the one of trial ``trial``."""
    try:
        teachers = document["teachers"]
        entry = next(t for t in teachers if (t["best"] if trial is None else t["trial"] == trial))
    except StopIteration:
        numbers = ", ".join(str(t["trial"]) for t in document["teachers"])
        raise ConfigError(f"--trial: trial {trial} is not in this export (its teachers: trials {numbers})") from None
    except (KeyError, TypeError):
        raise ConfigError("FILE: not a `sweetspot export` file (it has no teachers list)") from None
    recipe = entry["recipe"]
    net = net_from_recipe(recipe)
    config = config_from_dict(document["config"], source="the export's config")
    temperature = (entry.get("params") or {}).get("temperature")
    return ExportedTeacher(entry["trial"], config, net, recipe["batch_size"], recipe["epochs"], recipe["seed"], temperature, entry["metrics"])


def retrain(chosen: ExportedTeacher, splits: Splits) -> nn.Module:
    """The teacher trained again from its recipe, seeded as its trial seeded it (no student)."""
    torch.manual_seed(chosen.seed)
    return train_teacher(chosen.net, splits, chosen.batch_size, chosen.epochs, chosen.net.lr, torch.Generator().manual_seed(chosen.seed))


def wrap(teacher: nn.Module, splits: Splits) -> nn.Sequential:
    """The teacher behind the standardisation of raw inputs that its training data had."""
    return nn.Sequential(Standardize(splits.input_mean, splits.input_std).to(splits.x_train.device), teacher).eval()


def figures(teacher: nn.Module, config: StudyConfig, splits: Splits, temperature: float | None = None) -> dict[str, float]:
    """What an export records about a teacher that needs no student: validation accuracy, and the
    soft-label entropy at T (the trial's, else the config's) on the transfer set."""
    index = transfer_indices(splits.y_train, config.distill.withheld_classes, config.distill.examples_per_class, config.seed)
    return {
        "teacher_val_acc": accuracy(predict_logits(teacher, splits.x_val), splits.y_val),
        "teacher_entropy": normalized_entropy(predict_logits(teacher, splits.x_train[index]), temperature or config.distill.temperature),
    }


def check_figures(found: dict[str, float], recorded: dict[str, Any], trial: int) -> None:
    """Raise when the teacher does not give the figures the export recorded (within TOLERANCE)."""
    off = [f"{k} {found[k]:.4f} (export: {recorded[k]:.4f})" for k in CHECKED
           if recorded.get(k) is not None and abs(found[k] - recorded[k]) > TOLERANCE]
    if off:
        raise ConfigError(f"trial {trial}'s teacher does not reproduce the export: {'; '.join(off)}; nothing written "
                          "(another device type or thread count can change results: use the study's)")


def save_weights(model: nn.Module, path: Path) -> None:
    """The state dict, written to a temporary file and renamed: never half a file."""
    with atomic_file(path) as tmp:
        torch.save(cpu_state_dict(model), tmp)


def load_teacher(export_file: str | Path, weights_file: str | Path, trial: int | None = None) -> nn.Module:
    """The teacher ``sweetspot teacher`` wrote, in eval mode: it takes raw inputs in [0, 1]."""
    chosen = pick_teacher(load_export(export_file), trial)
    state = load_weights(Path(weights_file))
    shape = tuple(state["0.mean"].shape)
    n_classes = list(state.values())[-1].shape[0]  # the classifier's bias comes last
    model = nn.Sequential(Standardize(state["0.mean"], state["0.std"]), build_model(chosen.net, shape, n_classes))
    model.load_state_dict(state)
    return model.eval()
