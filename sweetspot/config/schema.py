"""The study config: frozen dataclasses whose defaults are the default study (digits).

Every choice is a ``Literal`` type, declared once: the coercer (``coerce.py``) refuses any other value
with the allowed ones, and the CLI's ``choices`` read the same tuples. Each section checks its own
ranges (``check``); ``StudyConfig.check`` adds the rules that span sections.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sweetspot.config.metric_registry import TRIAL_METRICS

Fail = Callable[[str, str], None]  # fail(where, message): raises the one-line ConfigError

Direction = Literal["maximize", "minimize"]
Sampler = Literal["tpe", "random", "nsga2"]
Optimizer = Literal["adam", "adamw", "sgd"]
# constant: lr throughout; exponential: lr * lr_decay^epoch; cosine: to zero over the run's epochs
# (cosine depends on the total number of epochs, so trials with different epochs cannot share a path)
Schedule = Literal["constant", "exponential", "cosine"]
# float32, or bfloat16 autocast for the training steps (weights, optimizer and every metric stay float32):
# 2 to 3.5 times the throughput on CPUs with AVX512-BF16 and on recent GPUs, slower on CPUs without
Precision = Literal["float32", "bfloat16"]
Augment = Literal["none", "flip-crop"]  # flip-crop: random 4-pixel-padded crop and horizontal flip, per batch
# distill.loss: hinton, (1 - alpha) CE + alpha T^2 KL; paper, the paper's Eq. 4 as printed (no T^2)
KdLoss = Literal["hinton", "paper"]
# distill.transfer: train, the soft labels of the teacher's own training examples; heldout, of a part of
# the training split the teacher never trained on (distill.heldout_fraction of it, stratified and seeded)
Transfer = Literal["train", "heldout"]
Pruner = Literal["none", "median", "successive-halving", "hyperband"]
Curve = Literal["teacher_entropy", "teacher_val_acc"]

DIRECTIONS, SAMPLERS, OPTIMIZERS = typing.get_args(Direction), typing.get_args(Sampler), typing.get_args(Optimizer)
SCHEDULES, PRECISIONS, AUGMENTS = typing.get_args(Schedule), typing.get_args(Precision), typing.get_args(Augment)
KD_LOSSES, TRANSFERS = typing.get_args(KdLoss), typing.get_args(Transfer)
PRUNERS, CURVES = typing.get_args(Pruner), typing.get_args(Curve)
MAX_TEACHER_SEEDS = 64


@dataclass(frozen=True)
class DataConfig:
    """Where the examples come from and how they are split.

        >>> DataConfig(name="fashion-mnist", data_dir="/usr/share/datasets/fashion-mnist").val_fraction
        0.2
    """

    name: str = "digits"  # a built-in dataset (core/splits.py), imagefolder, an import path, or a callable
    val_fraction: float = 0.2  # share of the examples carved (seeded) for validation
    test_fraction: float = 0.2  # share held out (datasets without an official test split); read only by export
    data_dir: str | None = None  # where the files are (default: $SWEETSPOT_DATA, else ~/.cache/sweetspot)
    download: bool = False  # let torchvision fetch a missing dataset
    root: str | None = None  # imagefolder: the folder of class folders (relative: to the working directory)
    image_size: int | None = None  # imagefolder: resize every image to this square size (None: as they are)

    def check(self, fail: Fail, where: str = "data") -> None:
        if self.name == "imagefolder" and not self.root:
            fail(f"{where}.root", "imagefolder needs data.root: a folder with one folder of images per class")
        if self.image_size is not None and self.image_size < 1:
            fail(f"{where}.image_size", f"must be a positive number of pixels or null, got {self.image_size}")
        for key in ("val_fraction", "test_fraction"):
            if not 0.0 < getattr(self, key) < 1.0:
                fail(f"{where}.{key}", f"must be between 0 and 1 (exclusive), got {getattr(self, key)}")
        if self.val_fraction + self.test_fraction >= 0.9:
            fail(where, "val_fraction + test_fraction must leave at least 10% for training, "
                 f"got {self.val_fraction + self.test_fraction:.2f}")


@dataclass(frozen=True)
class NetConfig:
    """A network and how it is optimised. Keys other than the training ones go to the architecture.

        >>> NetConfig(arch="mlp", options={"width": 256, "depth": 3}, lr=3e-4).optimizer
        'adam'
    """

    arch: str = "mlp"  # an architecture of core/models.py, torchvision:NAME, an import path, or a callable
    options: dict[str, Any] = field(default_factory=dict)  # the architecture's keyword arguments
    optimizer: Optimizer = "adam"  # sgd: with momentum 0.9
    lr: float = 1e-3  # learning rate
    # per epoch: exponential, lr * lr_decay^epoch; cosine, to zero over the run (never shared)
    schedule: Schedule = "constant"
    lr_decay: float = 0.95  # exponential schedule: the factor per epoch
    # bfloat16: the steps' forward passes in autocast (weights, optimizer, metrics stay float32); faster only on CPUs
    # and GPUs with bfloat16 units
    precision: Precision = "float32"
    # flip-crop: each teacher batch cropped from a 4-pixel padded copy and half flipped, drawn from its batch order;
    # teacher and images only
    augment: Augment = "none"

    def check(self, fail: Fail, where: str) -> None:
        if not self.lr > 0 or not math.isfinite(self.lr):
            fail(f"{where}.lr", f"must be a positive number, got {self.lr}")
        if not 0.0 < self.lr_decay <= 1.0:
            fail(f"{where}.lr_decay", f"must be within (0, 1], got {self.lr_decay}")


@dataclass(frozen=True)
class StudentConfig(NetConfig):
    """The student every trial distils, and how: a network (``NetConfig``) with its epochs, batch and seed.

        >>> StudentConfig(epochs=20, batch_size=256).arch
        'linear'
    """

    arch: str = "linear"  # a single linear layer: the paper's "baseline" student
    lr: float = 1e-3  # with 120 epochs: the least student-seed noise measured (docs/concepts/noise.md)
    epochs: int = 120  # distillation epochs over the transfer set
    batch_size: int = 64
    # with the study seed: every student's initial weights and batch order, the same in every trial (common random
    # numbers); change it to measure student noise
    seed: int = 0

    def check(self, fail: Fail, where: str = "student") -> None:
        super().check(fail, where)
        if self.augment != "none":
            fail(f"{where}.augment", "only the teacher trains on augmented images; the student learns the teacher's "
                 "soft labels of the images as they are (set teacher.augment)")
        if self.epochs < 1:
            fail(f"{where}.epochs", f"must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            fail(f"{where}.batch_size", f"must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class DistillConfig:
    temperature: float = 9.0  # T of the soft labels softmax(z / T)
    alpha: float = 0.99  # weight of the soft (KL) term; 1 - alpha weights the hard CE term
    loss: KdLoss = "hinton"  # hinton: the soft term times T^2 | paper: Eq. 4 as printed, without it
    # removed from the transfer set of every student (the one-student form of the missing-class test)
    withheld_classes: tuple[int, ...] = ()
    missing_classes: str | tuple[int, ...] = "all"  # "all" or a list: one k-less student each ([]: none)
    examples_per_class: int | None = None  # keep only this many transfer examples per class
    # semi-supervised: every transfer example keeps its soft label, only this many per class (seeded) their hard label
    labels_per_class: int | None = None
    # heldout: soft labels on a seeded, stratified share of the training split the teacher never trains on
    transfer: Transfer = "train"
    heldout_fraction: float = 0.5  # transfer: heldout: the share of the training split kept from the teacher

    def check(self, fail: Fail, where: str = "distill") -> None:
        if not self.temperature > 0 or not math.isfinite(self.temperature):
            fail(f"{where}.temperature", f"must be > 0, got {self.temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            fail(f"{where}.alpha", f"must be within [0, 1], got {self.alpha}")
        if len(set(self.withheld_classes)) != len(self.withheld_classes):
            fail(f"{where}.withheld_classes", f"has duplicates: {list(self.withheld_classes)}")
        missing = self.missing_classes
        if isinstance(missing, str):
            if missing != "all":
                fail(f"{where}.missing_classes", f"must be all or a list of classes, got {missing!r}")
        elif len(set(missing)) != len(missing):
            fail(f"{where}.missing_classes", f"has duplicates: {list(missing)}")
        elif set(missing) & set(self.withheld_classes):
            fail(f"{where}.missing_classes", f"{sorted(set(missing) & set(self.withheld_classes))} are withheld "
                 "from every student already")
        for key in ("examples_per_class", "labels_per_class"):
            value = getattr(self, key)
            if value is not None and value < 1:
                fail(f"{where}.{key}", f"must be >= 1 or null, got {value}")
        if not 0.0 < self.heldout_fraction < 1.0:
            fail(f"{where}.heldout_fraction", f"must be between 0 and 1 (exclusive), got {self.heldout_fraction}")


@dataclass(frozen=True)
class SearchConfig:
    batch_size: tuple[int, int] = (16, 1024)  # powers of two between these bounds
    epochs: tuple[int, int] = (1, 100)  # integers, log scale
    teacher_lr: tuple[float, float] | None = None  # optional, log scale
    temperature: tuple[float, float] | None = None  # optional, linear scale
    repeats: bool = False  # train again, with the trial's own seed, when a finished trial has the same parameters
    teacher_seeds: int = 1  # teachers per trial, stacked; every metric is then their mean (and sd, per seed)

    def check(self, fail: Fail, where: str = "search") -> None:
        for key in ("batch_size", "epochs"):
            low, high = getattr(self, key)
            if low < 1 or high < 1:
                fail(f"{where}.{key}", f"must be positive, got [{low}, {high}]")
            if low > high:
                fail(f"{where}.{key}", f"must be [low, high] with low <= high, got [{low}, {high}]")
            if key == "batch_size" and not batch_size_choices(self.batch_size):
                fail(f"{where}.batch_size", f"contains no power of two: [{low}, {high}]")
        for key in ("teacher_lr", "temperature"):
            bounds = getattr(self, key)
            if bounds is not None and not 0 < bounds[0] <= bounds[1]:
                fail(f"{where}.{key}", f"must be [low, high] with 0 < low <= high, got {list(bounds)}")
        if not 1 <= self.teacher_seeds <= MAX_TEACHER_SEEDS:
            fail(f"{where}.teacher_seeds",
                 f"must be an integer from 1 to {MAX_TEACHER_SEEDS}, got {self.teacher_seeds}")


@dataclass(frozen=True)
class EarlyStopConfig:
    """Stop a trial's teacher as soon as it has left the useful region (the trial is PRUNED).

    The rule reads the teacher after every epoch on the validation inputs: its entropy at the
    trial's T and its accuracy. ``pruner`` adds one of Optuna's pruners on that epoch curve (single
    objective only: Optuna cannot prune multi-objective studies through ``trial.report``).
    """

    entropy_floor: float | None = None  # stop once the entropy at T is below this (label-smoothing region)
    accuracy_ceiling: float | None = None  # stop once validation accuracy is above this (over-trained)
    pruner: Pruner = "none"
    curve: Curve = "teacher_entropy"  # what the pruner reads

    @property
    def active(self) -> bool:
        return self.entropy_floor is not None or self.accuracy_ceiling is not None or self.pruner != "none"

    def check(self, fail: Fail, where: str = "early_stop") -> None:
        if self.entropy_floor is not None and not 0.0 < self.entropy_floor < 1.0:
            fail(f"{where}.entropy_floor",
                 f"must be between 0 and 1 (normalised entropy), or null; got {self.entropy_floor}")
        if self.accuracy_ceiling is not None and not 0.0 < self.accuracy_ceiling <= 1.0:
            fail(f"{where}.accuracy_ceiling", f"must be within (0, 1], or null; got {self.accuracy_ceiling}")


@dataclass(frozen=True)
class ReferenceConfig:
    """The teacher a practitioner would train without sweetspot, trained once per study as its
    baseline: this batch size, stopped at its best validation accuracy."""

    # the practitioner's teacher: this batch size, kept at its best validation accuracy; null: none
    batch_size: int | None = 128
    # epochs without a better validation accuracy before its training stops (at most the search's largest epochs)
    patience: int = 5

    def check(self, fail: Fail, where: str = "reference") -> None:
        if self.batch_size is not None and self.batch_size < 1:
            fail(f"{where}.batch_size", f"must be a positive number of examples or null, got {self.batch_size}")
        if self.patience < 1:
            fail(f"{where}.patience", f"must be >= 1 epoch, got {self.patience}")


@dataclass(frozen=True)
class StudyConfig:
    """A study: what is searched, on which data, which teacher and student, scored how.

        >>> config = StudyConfig(n_trials=10, search=SearchConfig(epochs=(1, 30)))
        >>> config.objectives
        {'student_val_acc': 'maximize', 'missing_class_recall': 'maximize'}
    """

    name: str = "digits"  # default study name
    seed: int = 0  # splits, sampler and (derived) every trial's seed
    n_trials: int = 25  # trials added by one `sweetspot run`
    sampler: Sampler = "tpe"  # tpe: Optuna's TPE, multivariate with a constant liar (parallel workers)
    # the first decides the best teacher: the student's accuracy, which ranked teachers within noise of the
    # practitioner's reference in 15 of 16 cells of docs/results.md's student-gain table, where missing_class_recall
    # cost the student 1.5 to 15 points in all; the paper's diagnostic stays second, on the Pareto front
    objectives: dict[str, Direction] = field(
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

    def check(self, fail: Fail, choice: Callable[[str, str, tuple[str, ...]], None]) -> None:
        """Every section's own ranges, then the rules across sections."""
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            fail("name", f"must be letters, digits, '-' or '_', got {self.name!r}")
        if self.seed < 0:
            fail("seed", f"must be >= 0, got {self.seed}")
        if self.n_trials < 1:
            fail("n_trials", f"must be >= 1, got {self.n_trials}")
        if not self.objectives:
            fail("objectives", "must name at least one metric")
        for metric in self.objectives:
            choice("objectives", metric, tuple(TRIAL_METRICS))
        if "student_withheld_acc" in self.objectives and not self.distill.withheld_classes:
            fail("objectives", "uses student_withheld_acc, which needs distill.withheld_classes")
        missing = [m for m in self.objectives if m.startswith("missing_class_")]
        if missing and not self.distill.missing_classes:
            fail("objectives", f"uses {missing[0]}, which needs distill.missing_classes (all, or a list of classes)")
        self.data.check(fail)
        self.teacher.check(fail, "teacher")
        self.student.check(fail)
        self.distill.check(fail)
        self.search.check(fail)
        self.reference.check(fail)
        self.early_stop.check(fail)
        if self.early_stop.pruner != "none" and len(self.objectives) > 1:
            fail("early_stop.pruner", f"needs a single objective (this study has {len(self.objectives)}: Optuna "
                 "cannot prune multi-objective studies); use entropy_floor / accuracy_ceiling, which work with any "
                 "number")


def batch_size_choices(bounds: tuple[int, int]) -> list[int]:
    """The powers of two within [low, high]: the batch sizes a study searches."""
    low, high = bounds
    return [2**i for i in range(31) if low <= 2**i <= high]
