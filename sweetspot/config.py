"""Study configs: frozen dataclasses whose defaults are the default study (digits).

A config file is YAML read with ``yaml.safe_load`` (no tags, no code). Every key is checked:
unknown keys get a did-you-mean, wrong types and out-of-range values name the field and what is
allowed. Architecture and dataset names are checked against their registries by the modules that
own them (``models.py``, ``data.py``) once torch is imported, still before any storage is touched.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import struct
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sweetspot.errors import ConfigError
from sweetspot.trusted_imports import name_for, trust_file

# Every metric a trial stores as a user attribute; objectives are chosen among these.
# Name -> what it is: the scalar metrics, one user attribute each. Besides these, a trial stores
# RECORD_ATTRS (grouped, to keep a trial's storage writes few: each attribute is one transaction).
ENTROPY_GRID: tuple[int, ...] = (1, 2, 4, 8, 16, 20)
TRIAL_METRICS: dict[str, str] = {
    "teacher_val_acc": "teacher accuracy on the validation split",
    "teacher_entropy": "mean normalised entropy of the soft labels at the study's T (transfer set)",
    "teacher_nontarget_entropy": "normalised entropy over the non-target classes at T",
    "teacher_gamma": "off-target mass, the matching label-smoothing factor (Mueller et al.)",
    "teacher_ece": "expected calibration error at T=1, 15 bins (validation split)",
    "student_val_acc": "accuracy of the student distilled on the whole transfer set (validation split, all classes)",
    "student_withheld_acc": "that student's accuracy on the withheld classes (validation split)",
    "student_teacher_agreement": "top-1 agreement of that student and the teacher (validation split)",
    "label_student_val_acc": "accuracy of the same student trained on the labels alone: same examples, schedule "
    "and random numbers, alpha 0 (validation split)",
    "kd_gain": "student_val_acc minus label_student_val_acc: what distilling from this teacher bought",
    "missing_class_recall": "mean over the missing classes k of the k-less student's recall on k (Table 5's mean)",
    "missing_class_recall_corrected": "the same after Hinton's bias correction of k (a shift chosen without labels)",
    "missing_class_acc": "mean over the missing classes k of the k-less student's accuracy on all classes",
}
# What a teacher alone gives. A study whose objectives are all of these trains no student: a trial costs
# its teacher only, and the student metrics are recorded as null. (The teacher's validation accuracy
# predicted the student's with Spearman's rho 0.90 on Fashion-MNIST with 50 labels per class: docs/results.md.)
TEACHER_METRICS = ("teacher_val_acc", "teacher_entropy", "teacher_nontarget_entropy", "teacher_gamma", "teacher_ece")
STUDENT_METRICS = tuple(m for m in TRIAL_METRICS if m not in TEACHER_METRICS)
RECORD_ATTRS: dict[str, str] = {
    "teacher_entropy_by_T": 'normalised soft-label entropy at each T of ENTROPY_GRID: {"1": ..., "20": ...}',
    "time_s": 'wall time of each phase: {"teacher", "soft_labels", "student", "total"}',
    "seed": "the trial's seed",
    "teacher_epochs": 'teacher epochs trained by this trial and reused from a stored checkpoint: {"trained", "reused"}',
    "missing_class_recall_by_class": "recall of each missing class k by the k-less student: {\"0\": ..., \"9\": ...}",
    "missing_class_recall_corrected_by_class": 'the same after the bias correction: {"0": ..., "9": ...}',
    "teacher_seeds": 'with search.teacher_seeds N > 1 only: the N seeds (the trial\'s own first), each scalar '
    'metric\'s value per seed and their sd (the metric itself is their mean): {"seeds", "values", "sd"}',
}
DIRECTIONS = ("maximize", "minimize")
SAMPLERS = ("tpe", "random", "nsga2")
OPTIMIZERS = ("adam", "adamw", "sgd")
# constant: lr throughout; exponential: lr * lr_decay^epoch; cosine: to zero over the run's epochs
# (cosine depends on the total number of epochs, so trials with different epochs cannot share a path)
SCHEDULES = ("constant", "exponential", "cosine")
# float32, or bfloat16 autocast for the training steps (weights, optimizer and every metric stay float32):
# 2 to 3.5 times the throughput on CPUs with AVX512-BF16 and on recent GPUs, slower on CPUs without
PRECISIONS = ("float32", "bfloat16")
AUGMENTS = ("none", "flip-crop")  # flip-crop: random 4-pixel-padded crop and horizontal flip, per batch
# distill.loss: hinton, (1 - alpha) CE + alpha T^2 KL; paper, the paper's Eq. 4 as printed (no T^2)
KD_LOSSES = ("hinton", "paper")
# distill.transfer: train, the soft labels of the teacher's own training examples; heldout, of a part of
# the training split the teacher never trained on (distill.heldout_fraction of it, stratified and seeded)
TRANSFERS = ("train", "heldout")
MAX_TEACHER_SEEDS = 64
PRUNERS = ("none", "median", "successive-halving", "hyperband")
CURVES = ("teacher_entropy", "teacher_val_acc")


@dataclass(frozen=True)
class DataConfig:
    name: str = "digits"  # dataset registry key: see data.py
    val_fraction: float = 0.2  # share of the examples carved (seeded) for validation
    test_fraction: float = 0.2  # share held out (datasets without an official test split); read only by export
    data_dir: str | None = None  # where the files are (default: $SWEETSPOT_DATA, else ~/.cache/sweetspot)
    download: bool = False  # let torchvision fetch a missing dataset
    root: str | None = None  # imagefolder: the folder of class folders (relative: to the working directory)
    image_size: int | None = None  # imagefolder: resize every image to this square size (None: as they are)


@dataclass(frozen=True)
class NetConfig:
    """A network and how it is optimised. Keys other than the training ones go to the architecture."""

    arch: str = "mlp"  # architecture registry key: see models.py
    options: dict[str, Any] = field(default_factory=dict)  # the architecture's keyword arguments
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-3  # learning rate
    schedule: str = "constant"  # constant | exponential | cosine, stepped once per epoch
    lr_decay: float = 0.95  # exponential schedule: the factor per epoch
    precision: str = "float32"  # float32 | bfloat16 (autocast of the training steps)
    augment: str = "none"  # none | flip-crop (teacher only: images, per batch, seeded by its batch order)


@dataclass(frozen=True)
class StudentConfig(NetConfig):
    arch: str = "linear"  # a single linear layer: the paper's "baseline" student
    lr: float = 1e-3  # with 120 epochs: the least student-seed noise measured (README, "How noisy is a trial")
    epochs: int = 120  # distillation epochs over the transfer set
    batch_size: int = 64
    seed: int = 0  # with the study seed: every student's initial weights and batch order, the same in every trial


@dataclass(frozen=True)
class DistillConfig:
    temperature: float = 9.0  # T of the soft labels softmax(z / T)
    alpha: float = 0.99  # weight of the soft (KL) term; 1 - alpha weights the hard CE term
    loss: str = "hinton"  # hinton: the soft term times T^2 | paper: Eq. 4 as printed, without it
    withheld_classes: tuple[int, ...] = ()  # removed from the transfer set of every student
    missing_classes: str | tuple[int, ...] = "all"  # "all" or a list: one k-less student each ([]: none)
    examples_per_class: int | None = None  # keep only this many transfer examples per class
    labels_per_class: int | None = None  # only this many transfer examples per class keep their hard label
    transfer: str = "train"  # train | heldout: soft labels on examples the teacher trained on, or did not
    heldout_fraction: float = 0.5  # transfer: heldout: the share of the training split kept from the teacher


@dataclass(frozen=True)
class SearchConfig:
    batch_size: tuple[int, int] = (16, 1024)  # powers of two between these bounds
    epochs: tuple[int, int] = (1, 100)  # integers, log scale
    teacher_lr: tuple[float, float] | None = None  # optional, log scale
    temperature: tuple[float, float] | None = None  # optional, linear scale
    repeats: bool = False  # train again, with the trial's own seed, when a finished trial has the same parameters
    teacher_seeds: int = 1  # teachers per trial, stacked; every metric is then their mean (and sd, per seed)


@dataclass(frozen=True)
class EarlyStopConfig:
    """Stop a trial's teacher as soon as it has left the useful region (the trial is PRUNED).

    The rule reads the teacher after every epoch on the validation inputs: its entropy at the
    trial's T and its accuracy. ``pruner`` adds one of Optuna's pruners on that epoch curve (single
    objective only: Optuna cannot prune multi-objective studies through ``trial.report``).
    """

    entropy_floor: float | None = None  # stop once the entropy at T is below this (label-smoothing region)
    accuracy_ceiling: float | None = None  # stop once validation accuracy is above this (over-trained)
    pruner: str = "none"  # none | median | successive-halving | hyperband
    curve: str = "teacher_entropy"  # what the pruner reads: teacher_entropy | teacher_val_acc

    @property
    def active(self) -> bool:
        return self.entropy_floor is not None or self.accuracy_ceiling is not None or self.pruner != "none"


@dataclass(frozen=True)
class ReferenceConfig:
    """The teacher a practitioner would train without sweetspot, trained once per study as its
    baseline: this batch size, stopped at its best validation accuracy."""

    batch_size: int | None = 128  # null: no reference teacher
    patience: int = 5  # epochs without a better validation accuracy before its training stops


@dataclass(frozen=True)
class StudyConfig:
    name: str = "digits"  # default study name
    seed: int = 0  # splits, sampler and (derived) every trial's seed
    n_trials: int = 25  # trials added by one `sweetspot run`
    sampler: str = "tpe"  # tpe | random | nsga2
    # the first decides the best teacher: the student's accuracy, which ranked teachers within noise of the
    # practitioner's reference in 15 of 16 cells of docs/results.md (issue 22), where missing_class_recall
    # cost the student 1.5 to 15 points in all; the paper's diagnostic stays second, on the Pareto front
    objectives: dict[str, str] = field(
        default_factory=lambda: {"student_val_acc": "maximize", "missing_class_recall": "maximize"}
    )
    data: DataConfig = field(default_factory=DataConfig)
    teacher: NetConfig = field(default_factory=lambda: NetConfig(options={"width": 512, "depth": 6}))
    student: StudentConfig = field(default_factory=StudentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    early_stop: EarlyStopConfig = field(default_factory=EarlyStopConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict: the form stored in the study and written to exports."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def fingerprint(self) -> dict[str, Any]:
        """What must match for two runs to share a study (everything but the run length)."""
        science = self.to_dict()
        science.pop("n_trials")
        for where in ("data_dir", "download", "root"):  # where the same files are, not what they are
            science["data"].pop(where)
        return science


def load_config(path: str | Path | None) -> StudyConfig:
    """Read and validate a YAML study config; ``None`` gives the default (digits) study."""
    if path is None:
        return StudyConfig()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found (give a YAML file, e.g. studies/digits.yaml)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from exc
    if raw is None:
        raw = {}
    config = config_from_dict(raw, source=str(path))
    trust_file(path, (config.teacher.arch, config.student.arch, config.data.name))  # the user passed this file
    return config


def config_from_dict(raw: Any, source: str = "config") -> StudyConfig:
    """Build a validated config from plain data (a parsed file, or a study's stored config)."""
    config = _build(StudyConfig, raw, source, "")
    _check_ranges(config, source)
    return config


# The fields that may hold a Python callable instead of a name (from Python, not from a file).
CALLABLE_FIELDS = ("data.name", "teacher.arch", "student.arch")


def named_objects(config: StudyConfig) -> StudyConfig:
    """``config`` with a callable given for a network or the dataset replaced by its name
    (``trusted_imports.name_for``), so that it is stored, compared and followed like any other."""
    return dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, name=name_for(config.data.name, "data.name")),
        teacher=dataclasses.replace(config.teacher, arch=name_for(config.teacher.arch, "teacher.arch")),
        student=dataclasses.replace(config.student, arch=name_for(config.student.arch, "student.arch")),
    )


def config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ, with both values: for the mismatched-study message."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: {json.dumps(va)} -> {json.dumps(vb)}")
    return out


# --- building -------------------------------------------------------------------------------------

_TRAINING_KEYS = {"arch", "optimizer", "lr", "schedule", "lr_decay", "precision", "epochs", "batch_size", "seed"}


def _build(cls: type, raw: Any, source: str, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {where.rstrip('.') or 'the config'} must be a mapping, got {_kind(raw)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in raw.items():
        key = str(key)
        if key == "options" and issubclass(cls, NetConfig):
            extra.update(_coerce(dict[str, Any], value, source, where + key))  # the stored form
            continue
        if key not in names:
            if issubclass(cls, NetConfig) and key not in _TRAINING_KEYS:
                extra[key] = value  # architecture options, checked against the registry later
                continue
            raise ConfigError(f"{source}: unknown key {where + key!r}{did_you_mean(key, names)}")
        if where + key in CALLABLE_FIELDS:
            value = name_for(value, where + key)
        kwargs[key] = _coerce(hints[key], value, source, where + key)
    if issubclass(cls, NetConfig):
        kwargs["options"] = extra
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, source: str, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, where + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(inner[0], value, source, where)
        for choice in inner:  # str | tuple: the first type the value has
            if isinstance(value, str) == (choice is str):
                return _coerce(choice, value, source, where)
        raise ConfigError(f"{source}: {where} must be a string or a list, got {_kind(value)}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {where} must be a list, got {_kind(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, source, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{source}: {where} must be a list of {len(args)} values [low, high], got {value!r}")
        return tuple(_coerce(a, v, source, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {where} must be a mapping, got {_kind(value)}")
        return {str(k): _coerce(args[1], v, source, f"{where}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {where} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {hint!r}")  # a bug in this module, not user input


def _check_ranges(c: StudyConfig, source: str) -> None:
    def fail(where: str, message: str) -> None:
        raise ConfigError(f"{source}: {where} {message}")

    if not c.name or not c.name.replace("-", "").replace("_", "").isalnum():
        fail("name", f"must be letters, digits, '-' or '_', got {c.name!r}")
    if c.seed < 0:
        fail("seed", f"must be >= 0, got {c.seed}")
    if c.n_trials < 1:
        fail("n_trials", f"must be >= 1, got {c.n_trials}")
    _check_choice("sampler", c.sampler, SAMPLERS, source)
    if not c.objectives:
        fail("objectives", "must name at least one metric")
    for metric, direction in c.objectives.items():
        _check_choice("objectives", metric, tuple(TRIAL_METRICS), source)
        _check_choice(f"objectives.{metric}", direction, DIRECTIONS, source)
    if "student_withheld_acc" in c.objectives and not c.distill.withheld_classes:
        fail("objectives", "uses student_withheld_acc, which needs distill.withheld_classes")
    missing = [m for m in c.objectives if m.startswith("missing_class_")]
    if missing and not c.distill.missing_classes:
        fail("objectives", f"uses {missing[0]}, which needs distill.missing_classes (all, or a list of classes)")
    d = c.data
    if d.name == "imagefolder" and not d.root:
        fail("data.root", "imagefolder needs data.root: a folder with one folder of images per class")
    if d.image_size is not None and d.image_size < 1:
        fail("data.image_size", f"must be a positive number of pixels or null, got {d.image_size}")
    for key in ("val_fraction", "test_fraction"):
        if not 0.0 < getattr(d, key) < 1.0:
            fail(f"data.{key}", f"must be between 0 and 1 (exclusive), got {getattr(d, key)}")
    if d.val_fraction + d.test_fraction >= 0.9:
        fail(
            "data",
            "val_fraction + test_fraction must leave at least 10% for training, "
            f"got {d.val_fraction + d.test_fraction:.2f}",
        )
    for section in ("teacher", "student"):
        net: NetConfig = getattr(c, section)
        _check_choice(f"{section}.optimizer", net.optimizer, OPTIMIZERS, source)
        if not net.lr > 0 or not math.isfinite(net.lr):
            fail(f"{section}.lr", f"must be a positive number, got {net.lr}")
        _check_choice(f"{section}.schedule", net.schedule, SCHEDULES, source)
        _check_choice(f"{section}.precision", net.precision, PRECISIONS, source)
        _check_choice(f"{section}.augment", net.augment, AUGMENTS, source)
        if not 0.0 < net.lr_decay <= 1.0:
            fail(f"{section}.lr_decay", f"must be within (0, 1], got {net.lr_decay}")
    if c.student.augment != "none":
        fail("student.augment", "only the teacher trains on augmented images; the student learns the teacher's "
             "soft labels of the images as they are (set teacher.augment)")
    if c.student.epochs < 1:
        fail("student.epochs", f"must be >= 1, got {c.student.epochs}")
    if c.student.batch_size < 1:
        fail("student.batch_size", f"must be >= 1, got {c.student.batch_size}")
    k = c.distill
    if not k.temperature > 0 or not math.isfinite(k.temperature):
        fail("distill.temperature", f"must be > 0, got {k.temperature}")
    if not 0.0 <= k.alpha <= 1.0:
        fail("distill.alpha", f"must be within [0, 1], got {k.alpha}")
    if len(set(k.withheld_classes)) != len(k.withheld_classes):
        fail("distill.withheld_classes", f"has duplicates: {list(k.withheld_classes)}")
    _check_choice("distill.loss", k.loss, KD_LOSSES, source)
    if isinstance(k.missing_classes, str):
        if k.missing_classes != "all":
            fail("distill.missing_classes", f"must be all or a list of classes, got {k.missing_classes!r}")
    elif len(set(k.missing_classes)) != len(k.missing_classes):
        fail("distill.missing_classes", f"has duplicates: {list(k.missing_classes)}")
    elif set(k.missing_classes) & set(k.withheld_classes):
        fail("distill.missing_classes", f"{sorted(set(k.missing_classes) & set(k.withheld_classes))} are withheld "
             "from every student already")
    if k.examples_per_class is not None and k.examples_per_class < 1:
        fail("distill.examples_per_class", f"must be >= 1 or null, got {k.examples_per_class}")
    if k.labels_per_class is not None and k.labels_per_class < 1:
        fail("distill.labels_per_class", f"must be >= 1 or null, got {k.labels_per_class}")
    _check_choice("distill.transfer", k.transfer, TRANSFERS, source)
    if not 0.0 < k.heldout_fraction < 1.0:
        fail("distill.heldout_fraction", f"must be between 0 and 1 (exclusive), got {k.heldout_fraction}")
    s = c.search
    low, high = s.batch_size
    if low < 1 or high < 1:
        fail("search.batch_size", f"must be positive, got [{low}, {high}]")
    if low > high:
        fail("search.batch_size", f"must be [low, high] with low <= high, got [{low}, {high}]")
    if not batch_size_choices(s.batch_size):
        fail("search.batch_size", f"contains no power of two: [{low}, {high}]")
    low, high = s.epochs
    if low < 1 or high < 1:
        fail("search.epochs", f"must be positive, got [{low}, {high}]")
    if low > high:
        fail("search.epochs", f"must be [low, high] with low <= high, got [{low}, {high}]")
    if s.teacher_lr is not None and not 0 < s.teacher_lr[0] <= s.teacher_lr[1]:
        fail("search.teacher_lr", f"must be [low, high] with 0 < low <= high, got {list(s.teacher_lr)}")
    if s.temperature is not None and not 0 < s.temperature[0] <= s.temperature[1]:
        fail("search.temperature", f"must be [low, high] with 0 < low <= high, got {list(s.temperature)}")
    if not 1 <= s.teacher_seeds <= MAX_TEACHER_SEEDS:
        fail("search.teacher_seeds", f"must be an integer from 1 to {MAX_TEACHER_SEEDS}, got {s.teacher_seeds}")
    r = c.reference
    if r.batch_size is not None and r.batch_size < 1:
        fail("reference.batch_size", f"must be a positive number of examples or null, got {r.batch_size}")
    if r.patience < 1:
        fail("reference.patience", f"must be >= 1 epoch, got {r.patience}")
    e = c.early_stop
    if e.entropy_floor is not None and not 0.0 < e.entropy_floor < 1.0:
        fail(
            "early_stop.entropy_floor", f"must be between 0 and 1 (normalised entropy), or null; got {e.entropy_floor}"
        )
    if e.accuracy_ceiling is not None and not 0.0 < e.accuracy_ceiling <= 1.0:
        fail("early_stop.accuracy_ceiling", f"must be within (0, 1], or null; got {e.accuracy_ceiling}")
    _check_choice("early_stop.pruner", e.pruner, PRUNERS, source)
    _check_choice("early_stop.curve", e.curve, CURVES, source)
    if e.pruner != "none" and len(c.objectives) > 1:
        fail(
            "early_stop.pruner",
            f"needs a single objective (this study has {len(c.objectives)}: Optuna cannot prune "
            "multi-objective studies); use entropy_floor / accuracy_ceiling, which work with any number",
        )


def trajectory_seed(config: StudyConfig, batch_size: int, lr: float) -> int:
    """The seed of a teacher's training path: a function of what defines the path and nothing else
    (not the epochs, not the trial number), so that trials differing only in epochs walk one path
    and a longer one can continue a shorter one's checkpoint."""
    lr_bits = int.from_bytes(struct.pack("<d", lr), "little")
    return derive_seed(config.seed, 2, batch_size, lr_bits)


def student_seed(config: StudyConfig) -> int:
    """The seed of every student of every trial of a study: a function of the study seed and
    ``student.seed`` only, so that trials differ in their teacher and nothing else (common random
    numbers: the same initial weights, dropout masks and batch order)."""
    return derive_seed(config.seed, 3, config.student.seed)


def trains_students(config: StudyConfig) -> bool:
    """Whether a trial distils students: only when an objective needs one (``TEACHER_METRICS``)."""
    return any(metric not in TEACHER_METRICS for metric in config.objectives)


def missing_classes(config: StudyConfig, n_classes: int) -> tuple[int, ...]:
    """The classes that get a k-less student: ``all`` but the withheld ones, or the config's list."""
    chosen = config.distill.missing_classes
    if isinstance(chosen, str):
        return tuple(k for k in range(n_classes) if k not in config.distill.withheld_classes)
    return tuple(chosen)


def derive_seed(*entropy: int) -> int:
    """A 31-bit seed that is a pure function of ``entropy``: (seed, trial number) for a trial,
    (seed, trials so far, 1) for a sampler. Independent streams, reproducible anywhere."""
    import numpy as np

    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0] & 0x7FFFFFFF)


def batch_size_choices(bounds: tuple[int, int]) -> list[int]:
    """The powers of two within [low, high]: the batch sizes a study searches."""
    low, high = bounds
    return [2**i for i in range(31) if low <= 2**i <= high]


def _check_choice(where: str, value: str, allowed: tuple[str, ...], source: str) -> None:
    if value not in allowed:
        raise ConfigError(
            f"{source}: {where}: unknown value {value!r}{did_you_mean(value, allowed)} (allowed: {', '.join(allowed)})"
        )


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    """ " (did you mean 'x'?)" for the closest choice, or nothing: used by every name check."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
