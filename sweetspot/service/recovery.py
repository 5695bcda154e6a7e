"""Trials whose worker is gone: found, failed and queued again, each exactly once.

A worker that dies (killed, its machine lost, its connection dropped at the wrong moment) leaves its
trial RUNNING. Every live worker looks before it takes a trial and while it waits for others: a
trial whose heartbeat is older than the grace period, or that never beat though it started longer
ago than that, is claimed by exactly one worker (``QueueStorage.claim``), failed with a reason, and
queued again with the same parameters and seed (at most ``max_retry`` times in a row).

Each step may itself be cut short by a dropped connection or a killed worker, and each is safe to
repeat: a trial failed as stale but not yet queued again is claimed and queued by the next worker
that looks, ``grace`` seconds later, and a retry already queued (perhaps by a commit whose answer
was lost) is never queued twice.
"""

from __future__ import annotations

import logging

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweetspot.service.optuna_internals import QueueStorage, queue_storage
from sweetspot.service.retry import with_retries

log = logging.getLogger("sweetspot.service.workers")

STALE_REASON = "its worker stopped (no heartbeat for the grace period); queued again"
# user attributes a retry does not inherit: why its predecessor failed, and which run queued it
NOT_INHERITED = ("fail_reason", "queued_by")


def recover_stale(study: optuna.Study) -> list[int]:
    """Fail and queue again the study's trials whose worker is gone; returns their numbers. Does
    nothing on a storage without sweetspot's heartbeats (a study opened only to read)."""
    storage = queue_storage(study)
    if storage is None or storage.grace_period is None:
        return []
    study_id = storage.get_study_id_from_name(study.study_name)
    recovered = []
    for trial_id in storage.stale_candidates(study_id, storage.grace_period):
        if not storage.claim(trial_id, storage.grace_period):
            continue
        try:
            storage.set_trial_user_attr(trial_id, "fail_reason", STALE_REASON)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # its worker finished it after all
        trial = storage.get_trial(trial_id)
        log.warning("trial %d: %s", trial.number, STALE_REASON)
        _requeue(study, storage, trial)
        recovered.append(trial.number)
    # a recovery cut short between failing a trial and queueing it again, finished here
    trials = study.get_trials(deepcopy=False)
    retried = _retried(trials)
    for trial in trials:
        if (
            trial.state == TrialState.FAIL
            and trial.user_attrs.get("fail_reason") == STALE_REASON
            and trial.number not in retried
            and trial.number not in recovered
            and _retries_left(trial, storage)
            and storage.claim(_trial_id(storage, study_id, trial), storage.grace_period)
        ):
            log.warning("trial %d: failed as stale but not queued again; queueing it now", trial.number)
            _requeue(study, storage, trial)
            recovered.append(trial.number)
    return recovered


def _trial_id(storage: QueueStorage, study_id: int, trial: FrozenTrial) -> int:
    return storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)


def _retried(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of the trials that already have a retry (Optuna's ``retry_history`` convention)."""
    return {t.system_attrs["retry_history"][-1] for t in trials if t.system_attrs.get("retry_history")}


def _retries_left(trial: FrozenTrial, storage: QueueStorage) -> bool:
    return len(trial.system_attrs.get("retry_history", [])) < storage.max_retry


def _requeue(study: optuna.Study, storage: QueueStorage, trial: FrozenTrial) -> None:
    """A WAITING copy of ``trial``: its parameters, distributions and user attributes (its seed
    among them), with Optuna's ``failed_trial`` / ``retry_history`` system attributes, as Optuna's
    RetryHeartbeatStaleTrialCallback makes it. Not if a copy exists already, which is checked again
    before each retry of a dropped connection."""
    if not _retries_left(trial, storage):
        log.warning("trial %d: %d retries already; not queued again", trial.number, storage.max_retry)
        return
    history = [*trial.system_attrs.get("retry_history", []), trial.number]

    def once() -> None:
        if trial.number in _retried(study.get_trials(deepcopy=False)):
            return
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                user_attrs={k: v for k, v in trial.user_attrs.items() if k not in NOT_INHERITED},
                system_attrs={
                    **trial.system_attrs,
                    "failed_trial": trial.system_attrs.get("failed_trial", trial.number),
                    "retry_history": history,
                },
            )
        )

    with_retries(once)
