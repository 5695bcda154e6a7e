"""One trial: suggest -> train the teacher -> soft labels once -> distil -> score -> record."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import FrozenTrial, TrialState
from optuna_dashboard import save_note
from torch import nn

from sweetspot.artifacts import save_trial_artifacts
from sweetspot.checkpoints import CheckpointStore, trajectory_key
from sweetspot.config import ENTROPY_GRID, StudyConfig, batch_size_choices, derive_seed, trajectory_seed
from sweetspot.data import Splits, check_classes, check_dataset, class_name, load_splits, transfer_indices
from sweetspot.early_stop import CURVE_POINT, rule_reason
from sweetspot.errors import ConfigError, TrainingDiverged
from sweetspot.metrics import (
    accuracy,
    agreement,
    class_accuracy,
    expected_calibration_error,
    nontarget_entropy,
    normalized_entropy,
    off_target_mass,
    soft_labels_by_class,
)
from sweetspot.models import build_model, check_net
from sweetspot.notes import trial_note
from sweetspot.study import STORAGE_ERRORS, worker_id
from sweetspot.training import distill, make_optimizer, make_scheduler, predict_logits
from sweetspot.trajectories import Watch, run_teacher

T = TypeVar("T")


@dataclass(frozen=True)
class TeacherParams:
    """The searched variables of one trial; the config supplies everything else."""

    batch_size: int
    epochs: int
    teacher_lr: float | None = None  # None: the config's teacher.lr
    temperature: float | None = None  # None: the config's distill.temperature

    def lr(self, config: StudyConfig) -> float:
        """The teacher's learning rate: the searched one, else the config's."""
        return self.teacher_lr or config.teacher.lr


class TeacherStopped(Exception):
    """An early-stop rule or pruner ended the teacher's training: the trial is pruned, not scored."""

    def __init__(self, reason: str, record: dict[str, Any]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.record = record  # teacher_epochs and teacher_curve, stored on the pruned trial


@dataclass
class TrialOutcome:
    metrics: dict[str, Any]  # TRIAL_METRICS (floats, or None) and the grouped RECORD_ATTRS (dicts)
    teacher: nn.Module
    student: nn.Module
    soft_labels_by_class: torch.Tensor  # C x C mean soft labels at T per class, on the scored split


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA if present, else CPU), ``cpu``, ``cuda`` or ``cuda:i``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if re.fullmatch(r"cuda(:\d+)?", name):
        index = int(name.partition(":")[2] or 0)
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise ConfigError(f"--device: {name!r} is not available here ({torch.cuda.device_count()} CUDA devices)")
        return torch.device(name)
    raise ConfigError(f"--device: unknown device {name!r} (allowed: auto, cpu, cuda, cuda:N)")


def prepare(config: StudyConfig, device: torch.device) -> Splits:
    """Everything a trial needs that does not depend on the trial: checks the names the config
    uses against the registries, loads the splits onto ``device``, checks the classes and the batch
    range against the data. Runs before any storage is opened, so bad input writes nothing."""
    check_dataset(config.data.name)
    check_net("teacher", config.teacher)
    check_net("student", config.student)
    splits = load_splits(config.data, config.seed)
    check_classes(config.distill.withheld_classes, splits.n_classes)
    for net in (config.teacher, config.student):  # options that do not fit the data fail here, not mid-trial
        build_model(net, splits.input_shape, splits.n_classes)
    n_train = len(splits.y_train)
    largest = max(batch_size_choices(config.search.batch_size))
    if largest > n_train:
        raise ConfigError(
            f"search.batch_size: {largest} is larger than the training split ({n_train} examples of "
            f"{config.data.name}); lower the upper bound to at most {n_train}"
        )
    return splits.to(device)


def suggest_params(trial: optuna.Trial, config: StudyConfig) -> TeacherParams:
    search = config.search
    batch_size = trial.suggest_categorical("batch_size", batch_size_choices(search.batch_size))
    epochs = trial.suggest_int("epochs", *search.epochs, log=True)
    lr = trial.suggest_float("teacher_lr", *search.teacher_lr, log=True) if search.teacher_lr else None
    t = trial.suggest_float("temperature", *search.temperature) if search.temperature else None
    return TeacherParams(int(batch_size), epochs, lr, t)


def params_from_dict(params: dict[str, Any]) -> TeacherParams:
    """The inverse of ``asdict``-style trial params (as stored by Optuna or in an export)."""
    return TeacherParams(
        batch_size=int(params["batch_size"]),
        epochs=int(params["epochs"]),
        teacher_lr=params.get("teacher_lr"),
        temperature=params.get("temperature"),
    )


def path_key(config: StudyConfig, params: TeacherParams, seed: int, device: torch.device) -> str:
    """Names the teacher's training path: everything that decides it except the epochs. The device
    type and thread count are in it because they change the floating-point sums."""
    data = config.fingerprint()["data"]
    return trajectory_key({
        "teacher": config.to_dict()["teacher"], "lr": params.lr(config),
        "batch_size": params.batch_size, "seed": seed, "data": data, "split_seed": config.seed,
        "device": device.type, "threads": torch.get_num_threads(), "torch": torch.__version__,
    })


def run_trial(
    config: StudyConfig,
    splits: Splits,
    params: TeacherParams,
    seed: int,
    *,
    split: str = "val",
    checkpoints: CheckpointStore | None = None,
    watch: Watch | None = None,
) -> TrialOutcome:
    """Train a teacher with ``params``, distil the student from it, and score both on ``split``.

    ``splits`` must already be on the device to use. Deterministic on CPU for a fixed seed and
    thread count; ``checkpoints`` (a shared prefix of the teacher's path) changes nothing but the
    time. Raises TrainingDiverged if a loss becomes NaN or infinite, TeacherStopped if ``watch``
    stops the teacher.
    """
    device = splits.x_train.device
    temperature = params.temperature or config.distill.temperature
    withheld = config.distill.withheld_classes
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # initial weights and dropout masks
    timings: dict[str, float] = {}

    start = time.perf_counter()
    run = run_teacher(
        config.teacher, splits, params.batch_size, params.epochs, params.lr(config), generator,
        store=checkpoints, key=path_key(config, params, seed, device) if checkpoints else None, watch=watch, temperature=temperature,
    )
    timings["teacher"] = time.perf_counter() - start
    record: dict[str, Any] = {"teacher_epochs": {"trained": run.epochs_trained, "reused": run.epochs_reused}}
    if run.curve is not None:
        record["teacher_curve"] = run.curve
    if run.stopped is not None:
        raise TeacherStopped(run.stopped, record)
    teacher = run.teacher

    start = time.perf_counter()
    index = transfer_indices(splits.y_train, withheld, config.distill.examples_per_class, seed)
    x_transfer, y_transfer = splits.x_train[index], splits.y_train[index]
    transfer_logits = predict_logits(teacher, x_transfer)  # once; reused by every student epoch
    x_eval, y_eval = splits.evaluation(split)
    teacher_eval_logits = predict_logits(teacher, x_eval)
    timings["soft_labels"] = time.perf_counter() - start
    if not torch.isfinite(transfer_logits).all():
        raise TrainingDiverged("teacher logits are not finite")

    start = time.perf_counter()
    student = build_model(config.student, splits.input_shape, splits.n_classes).to(device)
    optimizer = make_optimizer(config.student.optimizer, student, config.student.lr)
    distill(
        student, x_transfer, transfer_logits, y_transfer,
        temperature=temperature, alpha=config.distill.alpha, optimizer=optimizer,
        batch_size=config.student.batch_size, epochs=config.student.epochs, generator=generator,
        scheduler=make_scheduler(config.student.schedule, optimizer, config.student.epochs, config.student.lr_decay),
        precision=config.student.precision,
    )
    student_eval_logits = predict_logits(student, x_eval)
    timings["student"] = time.perf_counter() - start

    metrics: dict[str, Any] = {
        "teacher_val_acc": accuracy(teacher_eval_logits, y_eval),
        "teacher_entropy": normalized_entropy(transfer_logits, temperature),
        "teacher_nontarget_entropy": nontarget_entropy(transfer_logits, y_transfer, temperature),
        "teacher_gamma": off_target_mass(transfer_logits, y_transfer, temperature),
        "teacher_ece": expected_calibration_error(teacher_eval_logits, y_eval),
        "student_val_acc": accuracy(student_eval_logits, y_eval),
        "student_withheld_acc": class_accuracy(student_eval_logits, y_eval, withheld) if withheld else None,
        "student_teacher_agreement": agreement(student_eval_logits, teacher_eval_logits),
        "teacher_entropy_by_T": {str(t): normalized_entropy(transfer_logits, t) for t in ENTROPY_GRID},
        "time_s": {**timings, "total": sum(timings.values())},
        **record,
    }
    return TrialOutcome(metrics, teacher, student, soft_labels_by_class(teacher_eval_logits, y_eval, temperature))


class Objective:
    """The callable handed to ``study.optimize``: one trial in, the configured objectives out.

    Every metric is stored as a user attribute. A diverging trial records ``fail_reason`` and
    returns NaN, which Optuna records as a failed trial without stopping the study.
    """

    def __init__(
        self, config: StudyConfig, splits: Splits, artifacts: FileSystemArtifactStore | None = None,
        checkpoints: CheckpointStore | None = None,
    ) -> None:
        self.config = config
        self.splits = splits
        self.artifacts = artifacts  # where each trial's teacher weights and soft-label picture go
        self.checkpoints = checkpoints  # shared teacher paths (None: every trial trains from scratch)

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        params = with_retries(suggest_params, trial, self.config)
        temperature = params.temperature or self.config.distill.temperature
        # a retried trial (its worker died) keeps the seed it was first given
        seed = trial.user_attrs["seed"] if "seed" in trial.user_attrs else trial_seed(self.config, trial.number, params)
        with_retries(trial.set_user_attr, "worker", worker_id())
        twin = None if self.config.search.repeats else with_retries(_finished_twin, trial)
        if twin is not None:  # its seed comes along, so that an export retrains the same teacher
            metrics = {k: v for k, v in twin.user_attrs.items() if k != "worker"}
            metrics["reused_from"] = twin.number
            metrics["teacher_epochs"] = {"trained": 0, "reused": params.epochs}
        else:
            with_retries(trial.set_user_attr, "seed", seed)
            try:
                outcome = run_trial(self.config, self.splits, params, seed, checkpoints=self.checkpoints,
                                    watch=self._watch(trial, temperature))
            except TrainingDiverged as exc:
                with_retries(trial.set_user_attr, "fail_reason", str(exc))
                return tuple(math.nan for _ in self.config.objectives)
            except TeacherStopped as stop:
                for key, value in {**stop.record, "pruned_reason": stop.reason}.items():
                    with_retries(trial.set_user_attr, key, value)
                raise optuna.TrialPruned(stop.reason) from None
            except KeyboardInterrupt:
                trial.set_user_attr("fail_reason", "interrupted")
                raise
            metrics = outcome.metrics
            if self.artifacts is not None:
                names = [class_name(self.splits.name, k) for k in range(self.splits.n_classes)]
                with_retries(save_trial_artifacts, self.artifacts, trial, outcome.teacher, outcome.soft_labels_by_class, names, temperature)
        for key, value in metrics.items():
            with_retries(trial.set_user_attr, key, value)
        note = trial_note(trial.params, metrics, temperature)
        with_retries(save_note, trial, note)
        values = [metrics[m] for m in self.config.objectives]
        return tuple(math.nan if v is None else float(v) for v in values)

    def _watch(self, trial: optuna.Trial, temperature: float) -> Watch | None:
        """The early-stop rule and Optuna's pruner, applied to each epoch of the teacher."""
        rule = self.config.early_stop
        if not rule.active:
            return None
        curve_key = CURVE_POINT[rule.curve]

        def watch(point: dict[str, float]) -> str | None:
            reason = rule_reason(rule, point, temperature)
            if reason is None and rule.pruner != "none":
                epoch = int(point["epoch"])
                with_retries(trial.report, point[curve_key], epoch)
                if with_retries(trial.should_prune):
                    reason = f"Optuna's {rule.pruner} pruner after epoch {epoch} ({rule.curve} {point[curve_key]:.4f})"
            return reason

        return watch


def trial_seed(config: StudyConfig, number: int, params: TeacherParams) -> int:
    """The path's seed (trials differing only in epochs share a teacher path), or with
    ``search.repeats`` the trial's own (repeats are meant to differ)."""
    if config.search.repeats:
        return derive_seed(config.seed, number)
    return trajectory_seed(config, params.batch_size, params.lr(config))


def with_retries(call: Callable[..., T], *args: Any, attempts: int = 5, pause: float = 0.5) -> T:
    """``call(*args)``, tried again when the database connection was lost (a server restart, a
    dropped connection): the pool replaces the connection, and the trial need not fail for it."""
    for attempt in range(1, attempts + 1):
        try:
            return call(*args)
        except STORAGE_ERRORS:
            if attempt == attempts:
                raise
            time.sleep(pause * attempt)
    raise AssertionError("unreachable")


def _finished_twin(trial: optuna.Trial) -> FrozenTrial | None:
    """A finished trial of the same study with exactly these parameters (another worker may have
    trained this teacher already: its result is reused instead of training again)."""
    for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if other.params == trial.params and "reused_from" not in other.user_attrs:
            return other
    return None
