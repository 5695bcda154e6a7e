"""The Optuna objective: suggest a trial's parameters, run it (``trial.py``), record every metric.

Storage calls go through the one retry policy (``retry.py``): a dropped connection delays a trial
instead of failing it.
"""

from __future__ import annotations

import math

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import FrozenTrial, TrialState
from optuna_dashboard import save_note

from sweetspot.config import StudyConfig, batch_size_choices
from sweetspot.core.checkpoints import CheckpointStore
from sweetspot.core.splits import Splits, class_name
from sweetspot.core.teacher_paths import Watch
from sweetspot.core.trial import TeacherParams, TeacherStopped, run_trial, trial_seed
from sweetspot.errors import TrainingDiverged
from sweetspot.service.artifacts import save_trial_artifacts
from sweetspot.service.early_stop import CURVE_POINT, rule_reason
from sweetspot.service.notes import trial_note
from sweetspot.service.study import worker_id


def suggest_params(trial: optuna.Trial, config: StudyConfig) -> TeacherParams:
    search = config.search
    batch_size = trial.suggest_categorical("batch_size", batch_size_choices(search.batch_size))
    epochs = trial.suggest_int("epochs", *search.epochs, log=True)
    lr = trial.suggest_float("teacher_lr", *search.teacher_lr, log=True) if search.teacher_lr else None
    t = trial.suggest_float("temperature", *search.temperature) if search.temperature else None
    return TeacherParams(int(batch_size), epochs, lr, t)


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
        params = suggest_params(trial, self.config)
        temperature = params.t(self.config)
        # a retried trial (its worker died) keeps the seed it was first given
        seed = trial.user_attrs["seed"] if "seed" in trial.user_attrs else trial_seed(self.config, trial.number, params)
        trial.set_user_attr("worker", worker_id())
        twin = None if self.config.search.repeats else _finished_twin(trial)
        if twin is not None:  # its seed comes along, so that an export retrains the same teacher
            metrics = {k: v for k, v in twin.user_attrs.items() if k not in ("worker", "queued_by", "fail_reason")}
            metrics["reused_from"] = twin.number
            metrics["teacher_epochs"] = {"trained": 0, "reused": params.epochs}
        else:
            trial.set_user_attr("seed", seed)
            try:
                watches = [self._watch(trial, temperature, report=s == 0)
                           for s in range(self.config.search.teacher_seeds)]
                outcome = run_trial(self.config, self.splits, params, seed, checkpoints=self.checkpoints,
                                    watch=watches)
            except TrainingDiverged as exc:
                trial.set_user_attr("fail_reason", str(exc))
                return tuple(math.nan for _ in self.config.objectives)
            except TeacherStopped as stop:
                for key, value in {**stop.record, "pruned_reason": stop.reason}.items():
                    trial.set_user_attr(key, value)
                raise optuna.TrialPruned(stop.reason) from stop
            metrics = outcome.metrics
            if self.artifacts is not None:
                names = [class_name(self.splits.name, k) for k in range(self.splits.n_classes)]
                save_trial_artifacts(self.artifacts, trial, outcome.teacher,
                             outcome.soft_labels_by_class, names, temperature)
        for key, value in metrics.items():
            trial.set_user_attr(key, value)
        note = trial_note(trial.params, metrics, temperature)
        save_note(trial, note)
        values = [metrics[m] for m in self.config.objectives]
        return tuple(math.nan if v is None else float(v) for v in values)

    def _watch(self, trial: optuna.Trial, temperature: float, report: bool = True) -> Watch | None:
        """The early-stop rule and Optuna's pruner, applied to each epoch of the teacher. With several
        teacher seeds the rule watches each, the pruner only the trial's own (``report``): Optuna
        takes one value per epoch."""
        rule = self.config.early_stop
        if not rule.active:
            return None
        curve_key = CURVE_POINT[rule.curve]

        def watch(point: dict[str, float]) -> str | None:
            reason = rule_reason(rule, point, temperature)
            if reason is None and rule.pruner != "none" and report:
                epoch = int(point["epoch"])
                trial.report(point[curve_key], epoch)
                if trial.should_prune():
                    reason = f"Optuna's {rule.pruner} pruner after epoch {epoch} ({rule.curve} {point[curve_key]:.4f})"
            return reason

        return watch


def _finished_twin(trial: optuna.Trial) -> FrozenTrial | None:
    """A finished trial of the same study with exactly these parameters (another worker may have
    trained this teacher already: its result is reused instead of training again)."""
    for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if other.params == trial.params and "reused_from" not in other.user_attrs:
            return other
    return None

