"""One trial, outside any study: train the teacher -> soft labels once -> distil -> score.

No Optuna here: ``objective.py`` wraps this for ``study.optimize``; ``sweetspot trial``, ``export``
(which rescored trials on the test split) and the benchmarks call it directly.
"""

from __future__ import annotations

import dataclasses
import json
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sweetspot.config import NetConfig, StudyConfig, batch_size_choices
from sweetspot.config.metric_registry import ENTROPY_GRID, STUDENT_METRICS, trains_students
from sweetspot.core.checkpoints import CheckpointStore, path_key
from sweetspot.core.metrics import (
    accuracy,
    agreement,
    bias_shift,
    class_accuracy,
    expected_calibration_error,
    nontarget_entropy,
    normalized_entropy,
    off_target_mass,
    shifted,
    soft_labels_by_class,
)
from sweetspot.core.models import check_net, check_outputs
from sweetspot.core.seeds import derive_seed, path_seed
from sweetspot.core.splits import (
    Splits,
    check_classes,
    check_dataset,
    heldout_part,
    labelled_part,
    load_splits,
    transfer_indices,
)
from sweetspot.core.students import seeded_for_students, train_students
from sweetspot.core.teacher_paths import Watch, seeded_runs
from sweetspot.core.training import predict_logits
from sweetspot.errors import ConfigError, TrainingDiverged


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

    def t(self, config: StudyConfig) -> float:
        """The temperature of the soft labels: the searched one, else the config's."""
        return self.temperature or config.distill.temperature


def params_from_dict(params: dict[str, Any]) -> TeacherParams:
    """The inverse of ``asdict``-style trial params (as stored by Optuna or in an export)."""
    return TeacherParams(
        batch_size=int(params["batch_size"]),
        epochs=int(params["epochs"]),
        teacher_lr=params.get("teacher_lr"),
        temperature=params.get("temperature"),
    )


class TeacherStopped(Exception):
    """An early-stop rule or pruner ended the teacher's training: the trial is pruned, not scored."""

    def __init__(self, reason: str, record: dict[str, Any]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.record = record  # teacher_epochs and teacher_curve, stored on the pruned trial


@dataclass(frozen=True)
class TransferSet:
    """Who learns from what: the split the teacher trains on, the transfer examples the students
    distil on (indices into the training split) and which of them keep their hard label."""

    teacher_splits: Splits
    index: torch.Tensor
    labelled: torch.Tensor  # over ``index``: True where the example's hard label is used


def transfer_set(config: StudyConfig, splits: Splits) -> TransferSet:
    """The study's transfer set, the same in every trial. ``distill.transfer: heldout`` keeps a
    seeded, stratified share of the training split from the teacher and distils on it; ``train``
    distils on the teacher's own training examples. Withheld classes and ``examples_per_class`` apply
    within it, and ``labels_per_class`` picks (seeded) the examples that keep their hard label."""
    d = config.distill
    pool = torch.arange(len(splits.y_train), device=splits.y_train.device)
    teacher_splits = splits
    if d.transfer == "heldout":
        held = heldout_part(splits.y_train, d.heldout_fraction, derive_seed(config.seed, 8, 0, 1))
        own = pool[~held]
        pool = pool[held]
        teacher_splits = dataclasses.replace(splits, x_train=splits.x_train.take(own), y_train=splits.y_train[own])
    index = pool[transfer_indices(splits.y_train[pool], d.withheld_classes, d.examples_per_class, config.seed)]
    labelled = labelled_part(splits.y_train[index], d.labels_per_class, derive_seed(config.seed, 8, 0, 2))
    return TransferSet(teacher_splits, index, labelled)


@dataclass
class TrialOutcome:
    metrics: dict[str, Any]  # TRIAL_METRICS (floats, or None) and the grouped RECORD_ATTRS (dicts)
    teacher: torch.nn.Module
    soft_labels_by_class: torch.Tensor  # C x C mean soft labels at T per class, on the scored split


def missing_classes(config: StudyConfig, n_classes: int) -> tuple[int, ...]:
    """The classes that get a k-less student: ``all`` but the withheld ones, or the config's list."""
    chosen = config.distill.missing_classes
    if isinstance(chosen, str):
        return tuple(k for k in range(n_classes) if k not in config.distill.withheld_classes)
    return tuple(chosen)


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA if present, else CPU), ``cpu``, ``cuda`` or ``cuda:i``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if re.fullmatch(r"cuda(:\d+)?", name):
        index = int(name.partition(":")[2] or 0)
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise ConfigError(f"{name!r} is not available here ({torch.cuda.device_count()} CUDA devices)")
        return torch.device(name)
    raise ConfigError(f"unknown device {name!r} (allowed: auto, cpu, cuda, cuda:N)")


def prepare(config: StudyConfig, device: torch.device) -> Splits:
    """Everything a trial needs that does not depend on the trial: checks the names the config
    uses against the registries, loads the splits onto ``device``, checks the classes and the batch
    range against the data. Runs before any storage is opened, so bad input writes nothing."""
    check_dataset(config.data.name)
    check_net("teacher", config.teacher)
    check_net("student", config.student)
    splits = load_splits(config.data, config.seed)
    check_classes(config.distill.withheld_classes, splits.n_classes)
    if not isinstance(config.distill.missing_classes, str):
        check_classes(config.distill.missing_classes, splits.n_classes, "distill.missing_classes")
    if config.teacher.augment != "none" and len(splits.input_shape) != 3:
        raise ConfigError(f"teacher.augment: {config.teacher.augment} needs images (C, H, W); {config.data.name} "
                          f"gives inputs of shape {splits.input_shape}")
    for section, net in (("teacher", config.teacher), ("student", config.student)):
        check_outputs(section, net, splits.x_train[:2], splits.n_classes)  # fails here, not mid-trial
    n_train = len(transfer_set(config, splits).teacher_splits.y_train)
    held = config.distill.transfer == "heldout"
    largest = max(batch_size_choices(config.search.batch_size))
    if largest > n_train:
        raise ConfigError(
            f"search.batch_size: {largest} is larger than the training split ({n_train} examples of "
            f"{config.data.name}{' left to the teacher by distill.transfer: heldout' * held}); "
            f"lower the upper bound to at most {n_train}"
        )
    return splits.to(device)


def trial_seed(config: StudyConfig, number: int, params: TeacherParams) -> int:
    """The path's seed (trials differing only in epochs share a teacher path), or with
    ``search.repeats`` the trial's own (repeats are meant to differ)."""
    if config.search.repeats:
        return derive_seed(config.seed, number)
    return path_seed(config, params.batch_size, params.lr(config))


def teacher_seeds(own: int, n: int) -> list[int]:
    """``n`` teacher seeds for one teacher: its own first, then seeds derived from it. Shared by
    ``export --confirm`` and ``experiment --teacher-seeds``, so the same teacher gets the same seeds."""
    return [own, *(derive_seed(own, 4, i) for i in range(1, n))]


def trial_path_key(config: StudyConfig, params: TeacherParams, seed: int, device: torch.device) -> str:
    """Names a trial teacher's training path (``teacher_path_key`` of the config's teacher)."""
    d = config.distill
    part = d.heldout_fraction if d.transfer == "heldout" else None
    return teacher_path_key(config, config.teacher, params.lr(config), params.batch_size, seed, device, part)


def teacher_path_key(
    config: StudyConfig, net: NetConfig, lr: float, batch_size: int, seed: int, device: torch.device,
    heldout: float | None = None,
) -> str:
    """Names a teacher's training path: everything that decides it except the epochs, so that runs
    of the same path continue each other's checkpoints (trials, and experiments given a checkpoint
    folder). The device type and thread count are in it because they change the floating-point sums.
    ``heldout``: the share of the training split kept from the teacher (``distill.transfer: heldout``)."""
    data = config.fingerprint()["data"]
    kept = {} if heldout is None else {"heldout": heldout}  # absent otherwise: older keys stay valid
    return path_key({**kept,
        "teacher": json.loads(json.dumps(dataclasses.asdict(net))), "lr": lr,
        "batch_size": batch_size, "seed": seed, "data": data, "split_seed": config.seed,
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
    watch: Watch | Sequence[Watch | None] | None = None,
    seeds: Sequence[int] | None = None,
) -> TrialOutcome:
    """Train a teacher with ``params``, distil the students from it, and score both on ``split``.

    ``search.teacher_seeds`` N teachers (``teacher_seeds(seed, N)``: the trial's own seed first,
    each on its own path) train (stacked on CUDA: ``teacher_paths.seeded_runs``), their students train
    as one stacked model, and every metric is their mean, with its
    values per seed and its sd beside it (``teacher_seeds``); ``watch`` is one watch for every seed or
    one per seed.
    ``seeds`` names the teacher seeds instead (``export --confirm``: the seeds a trial lacks).

    ``splits`` must already be on the device to use. Deterministic on CPU for a fixed seed and
    thread count; ``checkpoints`` (a shared prefix of the teacher's path) changes nothing but the
    time. Raises TrainingDiverged if a loss becomes NaN or infinite, TeacherStopped if a watch
    stops a teacher.
    """
    device = splits.x_train.device
    temperature = params.t(config)
    seeds = list(seeds) if seeds is not None else teacher_seeds(seed, config.search.teacher_seeds)
    watches = list(watch) if isinstance(watch, Sequence) else [watch] * len(seeds)
    timings: dict[str, float] = {}

    start = time.perf_counter()
    chosen = transfer_set(config, splits)
    keys = [trial_path_key(config, params, s, device) for s in seeds] if checkpoints else None
    runs = seeded_runs(config.teacher, chosen.teacher_splits, params.batch_size, params.epochs, params.lr(config),
                       seeds, store=checkpoints, keys=keys, watches=watches, temperature=temperature)
    timings["teacher"] = time.perf_counter() - start
    record: dict[str, Any] = {"teacher_epochs": {"trained": sum(r.epochs_trained for r in runs),
                                                 "reused": sum(r.epochs_reused for r in runs)}}
    if runs[0].curve is not None:
        record["teacher_curve"] = runs[0].curve  # the trial's own seed: the curve a pruner was shown
    stopped = next((r.stopped for r in runs if r.stopped is not None), None)
    if stopped is not None:
        raise TeacherStopped(stopped, record)

    start = time.perf_counter()
    # the transfer set, like the students' random numbers, depends on the study and not on the trial
    x_transfer, y_transfer = splits.x_train.take(chosen.index), splits.y_train[chosen.index]
    x_eval, y_eval = splits.evaluation(split)
    transfer = torch.stack([predict_logits(r.teacher, x_transfer) for r in runs])  # M x N x C, once per trial
    teacher_eval = torch.stack([predict_logits(r.teacher, x_eval) for r in runs])
    if split == "val":
        teacher_val = teacher_eval
    else:
        teacher_val = torch.stack([predict_logits(r.teacher, splits.x_val) for r in runs])
    timings["soft_labels"] = time.perf_counter() - start
    if not torch.isfinite(transfer).all():
        raise TrainingDiverged("teacher logits are not finite")

    if not trains_students(config.objectives):  # every objective is the teacher's: no student to pay for
        by_seed = [_teacher_metrics(transfer[m], y_transfer, teacher_eval[m], y_eval, temperature)
                   | dict.fromkeys(STUDENT_METRICS) for m in range(len(runs))]
    else:
        by_seed = _with_students(config, splits, chosen, (x_transfer, y_transfer), (x_eval, y_eval), len(runs),
                                 transfer, teacher_eval, teacher_val, split, temperature, timings)
    metrics = _over_seeds(by_seed, seeds)
    metrics |= {"time_s": {**timings, "total": sum(timings.values())}, **record}
    return TrialOutcome(metrics, runs[0].teacher, soft_labels_by_class(teacher_eval[0], y_eval, temperature))


def _with_students(
    config: StudyConfig, splits: Splits, chosen: TransferSet, transfer_xy: tuple[Any, torch.Tensor],
    eval_xy: tuple[Any, torch.Tensor], n_teachers: int, transfer: torch.Tensor, teacher_eval: torch.Tensor,
    teacher_val: torch.Tensor, split: str, temperature: float, timings: dict[str, float],
) -> list[dict[str, Any]]:
    """Every teacher seed's metrics with its students': the full student and the k-less ones of each
    seed, and the labels-only student, trained as one stacked model (on the transfer examples and the
    scored split ``run_trial`` already took)."""
    start = time.perf_counter()
    (x_transfer, y_transfer), (x_eval, y_eval) = transfer_xy, eval_xy
    missing = missing_classes(config, splits.n_classes)
    per_teacher = 1 + len(missing)  # the full student, then one per missing class
    masks = torch.stack([torch.ones_like(y_transfer, dtype=torch.bool), *(y_transfer != k for k in missing)])
    # the labels-only student last: alpha 0, on the labelled examples, from the same random numbers
    masks = torch.cat([masks.repeat(n_teachers, 1), chosen.labelled[None]])
    alphas = [config.distill.alpha] * (len(masks) - 1) + [0.0]
    teacher_of = [m for m in range(n_teachers) for _ in range(per_teacher)] + [0]
    labelled = None if config.distill.labels_per_class is None else chosen.labelled.expand(len(masks), -1)
    generator = seeded_for_students(config)  # common random numbers: the same in every trial and teacher seed
    students = train_students(
        config.student, x_transfer, transfer if n_teachers > 1 else transfer[0], y_transfer, splits.n_classes,
        masks, temperature=temperature, alpha=alphas, generator=generator, convention=config.distill.loss,
        teacher_of=teacher_of, labelled=labelled,
    )
    students_eval = predict_logits(students, x_eval)
    label_eval = students_eval[-1]
    students_eval = students_eval[:-1].unflatten(0, (n_teachers, per_teacher))
    students_val = students_eval if split == "val" else predict_logits(students, splits.x_val)[:-1].unflatten(
        0, (n_teachers, per_teacher))
    timings["student"] = time.perf_counter() - start
    return [
        _teacher_metrics(transfer[m], y_transfer, teacher_eval[m], y_eval, temperature)
        | _student_metrics(teacher_eval[m], teacher_val[m], students_eval[m], students_val[m], label_eval, y_eval,
                           config.distill.withheld_classes, missing)
        for m in range(n_teachers)
    ]


def _teacher_metrics(transfer: torch.Tensor, y_transfer: torch.Tensor, teacher_eval: torch.Tensor,
                     y_eval: torch.Tensor, temperature: float) -> dict[str, Any]:
    """One teacher seed's own metrics, from its logits on the transfer set and the scored split."""
    return {
        "teacher_val_acc": accuracy(teacher_eval, y_eval),
        "teacher_entropy": normalized_entropy(transfer, temperature),
        "teacher_nontarget_entropy": nontarget_entropy(transfer, y_transfer, temperature),
        "teacher_gamma": off_target_mass(transfer, y_transfer, temperature),
        "teacher_ece": expected_calibration_error(teacher_eval, y_eval),
        "teacher_entropy_by_T": {str(t): normalized_entropy(transfer, t) for t in ENTROPY_GRID},
    }


def _student_metrics(
    teacher_eval: torch.Tensor, teacher_val: torch.Tensor, students_eval: torch.Tensor, students_val: torch.Tensor,
    label_eval: torch.Tensor, y_eval: torch.Tensor, withheld: tuple[int, ...], missing: tuple[int, ...],
) -> dict[str, Any]:
    """One teacher seed's students' metrics (the full student first, then the k-less ones) and the
    labels-only student's."""
    student_eval = students_eval[0]
    label_acc = accuracy(label_eval, y_eval)
    return {
        "student_val_acc": accuracy(student_eval, y_eval),
        "student_withheld_acc": class_accuracy(student_eval, y_eval, withheld) if withheld else None,
        "student_teacher_agreement": agreement(student_eval, teacher_eval),
        "label_student_val_acc": label_acc,
        "kd_gain": accuracy(student_eval, y_eval) - label_acc,
        **missing_class_scores(teacher_val, students_eval[1:], students_val[1:], y_eval, missing),
    }


def _over_seeds(by_seed: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """The metrics of the teacher seeds as one trial's: each scalar (and each entry of a per-class or
    per-T dict) their mean, exactly the value itself for one seed; with several seeds, under
    ``teacher_seeds`` the seeds, the scalars' values per seed and their sd: one attribute, one storage
    write (one seed has none: its values are the metrics themselves)."""
    out: dict[str, Any] = {}
    values: dict[str, list[float]] = {}
    for name, first in by_seed[0].items():
        if isinstance(first, dict):
            out[name] = {k: _mean(m[name][k] for m in by_seed) for k in first}
        elif first is None:
            out[name] = None
        else:
            values[name] = [m[name] for m in by_seed]
            out[name] = statistics.fmean(values[name])
    if len(seeds) > 1:
        out["teacher_seeds"] = {
            "seeds": seeds,
            "values": values,
            "sd": {name: statistics.stdev(v) for name, v in values.items()},
        }
    return out


def missing_class_scores(
    teacher_val: torch.Tensor, missing_eval: torch.Tensor, missing_val: torch.Tensor, y_eval: torch.Tensor,
    missing: tuple[int, ...],
) -> dict[str, Any]:
    """The paper's Table 5 for one teacher: each k-less student's recall on k (raw and after the
    bias correction) and accuracy on all classes, with their means over k. ``missing_eval`` holds the
    k-less students' logits on the scored split (K x N x C), ``missing_val`` on the validation
    inputs, ``teacher_val`` the teacher's. The bias shift is chosen on the validation inputs without
    their labels (the teacher's predictions set it), also when the test split is scored."""
    if not missing:
        return dict.fromkeys(("missing_class_recall", "missing_class_recall_corrected", "missing_class_acc"))
    recall, corrected, acc = {}, {}, []
    for logits, val_logits, k in zip(missing_eval, missing_val, missing):
        recall[str(k)] = class_accuracy(logits, y_eval, (k,))
        shift = bias_shift(val_logits, teacher_val, k)
        corrected[str(k)] = class_accuracy(shifted(logits, k, shift), y_eval, (k,))
        acc.append(accuracy(logits, y_eval))
    return {
        "missing_class_recall": _mean(recall.values()),
        "missing_class_recall_corrected": _mean(corrected.values()),
        "missing_class_acc": sum(acc) / len(acc),
        "missing_class_recall_by_class": recall,
        "missing_class_recall_corrected_by_class": corrected,
    }


def _mean(values: Any) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None
