"""The study's reference: the teacher a practitioner would train without sweetspot.

It has the config's ``reference.batch_size`` and trains until its validation accuracy has not
improved for ``reference.patience`` epochs (at most the search's largest number of epochs); the epoch
of its best validation accuracy is its number of epochs. Its students are then trained and scored
as a trial's are (``run_trial``), with the teacher seeds a trial of that batch size gets and the
students' common random numbers, so that the best trial, the reference and the labels-only student
differ in their teacher and nothing else. The teacher walks the trials' shared path of its batch
size, so a checkpoint store makes the second pass (to the best epoch) and any trial of that batch
size cheap.
"""

from __future__ import annotations

import statistics
from typing import Any

from sweetspot.config import StudyConfig
from sweetspot.config.metric_registry import TRIAL_METRICS
from sweetspot.core.checkpoints import CheckpointStore
from sweetspot.core.seeds import path_seed
from sweetspot.core.splits import Splits
from sweetspot.core.teacher_paths import Point, seeded_run
from sweetspot.core.trial import TeacherParams, run_trial, teacher_seeds, transfer_set, trial_path_key
from sweetspot.errors import TrainingDiverged


class BestEpoch:
    """A watch that remembers the epoch of the best validation accuracy (the first of equals) and
    stops the run ``patience`` epochs after it."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.epoch = 0
        self.accuracy = -1.0

    def __call__(self, point: Point) -> str | None:
        epoch = int(point["epoch"])
        if point["accuracy"] > self.accuracy:
            self.epoch, self.accuracy = epoch, point["accuracy"]
        if epoch - self.epoch >= self.patience:
            return f"no better validation accuracy for {self.patience} epochs after epoch {self.epoch}"
        return None


def best_epochs(config: StudyConfig, splits: Splits, seeds: list[int],
                checkpoints: CheckpointStore | None = None) -> list[int]:
    """Each teacher seed's epoch of best validation accuracy at the reference batch size."""
    batch_size = config.reference.batch_size
    assert batch_size is not None  # callers check
    params = TeacherParams(batch_size, config.search.epochs[1])
    teacher_splits = transfer_set(config, splits).teacher_splits
    device = splits.x_train.device
    epochs = []
    for seed in seeds:
        watch = BestEpoch(config.reference.patience)
        key = trial_path_key(config, params, seed, device) if checkpoints else None
        seeded_run(config.teacher, teacher_splits, batch_size, params.epochs, config.teacher.lr, seed,
                   store=checkpoints, key=key, watch=watch)
        epochs.append(watch.epoch)
    return epochs


def run_reference(config: StudyConfig, splits: Splits, checkpoints: CheckpointStore | None = None,
                  split: str = "val") -> dict[str, Any]:
    """The reference teacher over the study's teacher seeds, as stored with the study: its batch
    size, each seed's epochs, and per scalar metric the values per seed, their mean and (several
    seeds) their sd."""
    batch_size = config.reference.batch_size
    assert batch_size is not None
    own = path_seed(config, batch_size, config.teacher.lr)  # a trial's of this batch size (without repeats)
    seeds = teacher_seeds(own, config.search.teacher_seeds)
    stored: dict[str, Any] = {"batch_size": batch_size, "patience": config.reference.patience, "teacher_seeds": seeds,
                              "split": split}
    try:
        epochs = best_epochs(config, splits, seeds, checkpoints)
        runs = [run_trial(config, splits, TeacherParams(batch_size, e), seed, seeds=[seed], checkpoints=checkpoints,
                          split=split).metrics for seed, e in zip(seeds, epochs)]
    except TrainingDiverged as exc:  # recorded, as a trial's is: the study goes on without its baseline
        return stored | {"failed": str(exc), "epochs": [], "values": {}, "mean": {}, "sd": {}}
    values = {m: [r[m] for r in runs] for m in TRIAL_METRICS if all(r.get(m) is not None for r in runs)}
    return stored | {
        "epochs": epochs,
        "values": values,
        "mean": {m: statistics.fmean(v) for m, v in values.items()},
        "sd": {m: statistics.stdev(v) for m, v in values.items()} if len(seeds) > 1 else {},
    }
