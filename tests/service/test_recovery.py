"""Trials whose worker is gone, on real databases: failed and queued again exactly once, whatever
moment the connection drops at (reproduced with a connection closed at that exact statement)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

import sweetspot.service.retry
from sweetspot.service.optuna_internals import queue_storage
from sweetspot.service.recovery import STALE_REASON, recover_stale
from sweetspot.service.retry import STORAGE_RETRY, Retry
from sweetspot.service.study import Heartbeat, open_storage
from sweetspot.service.workers import drain
from tests.conftest import break_connection

BEAT = Heartbeat(interval=1, grace=2)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    return f"sqlite:///{tmp_path / 'r.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def _study(url: str, name: str) -> optuna.Study:
    return optuna.create_study(study_name=name, storage=open_storage(url, heartbeat=BEAT))


def _objective(trial: optuna.Trial) -> float:
    return float(trial.suggest_int("x", 0, 100))


def _taking_a_trial(statement: str, parameters) -> bool:
    """The statement that sets a WAITING trial RUNNING (Optuna's ``_pop_waiting_trial_id``)."""
    values = parameters.values() if isinstance(parameters, dict) else parameters or ()
    return statement.lstrip().upper().startswith("UPDATE TRIALS") and "RUNNING" in [str(v) for v in values]


def test_a_trial_that_lost_its_connection_before_its_first_heartbeat_is_run_again(url, study_name, quick_retries):
    """The connection drops just after a worker took the trial (it is RUNNING in the database) and
    before its heartbeat thread wrote a first beat, and stays down longer than the retry policy
    (a single drop is ridden out by the storage): no heartbeat ever goes stale. It must be failed
    and queued again once ``datetime_start + grace`` has passed, with the same parameters."""
    study = _study(url, study_name)
    for x in (7, 8, 9):
        study.enqueue_trial({"x": x})
    armed = [False]

    def after_taking(statement: str, parameters) -> bool:
        if _taking_a_trial(statement, parameters):
            armed[0] = True
            return False
        return armed[0]  # the first statement after the trial became RUNNING

    left = break_connection(queue_storage(study).engine, after_taking, times=STORAGE_RETRY.attempts)
    assert drain(study, _objective, poll=0.2) == 3
    assert left == [0]  # the connection really broke
    trials = study.get_trials()
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == 3 and TrialState.RUNNING not in states
    (stuck,) = [t for t in trials if t.state == TrialState.FAIL]
    assert stuck.user_attrs["fail_reason"] == STALE_REASON and stuck.params == {}  # failed before it suggested
    (retry,) = [t for t in trials if t.system_attrs.get("retry_history") == [stuck.number]]
    assert retry.state == TrialState.COMPLETE and retry.system_attrs["fixed_params"] == stuck.system_attrs[
        "fixed_params"] and "fail_reason" not in retry.user_attrs
    assert sorted(t.params["x"] for t in trials if t.state == TrialState.COMPLETE) == [7, 8, 9]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_stale_trial_is_claimed_by_one_worker_only(url, study_name):
    study = _study(url, study_name)
    study.enqueue_trial({"x": 1})
    storage = queue_storage(study)
    trial = study.ask()  # RUNNING, never beats: its worker is gone
    storage.record_heartbeat(trial._trial_id)
    assert storage.stale_candidates(storage.get_study_id_from_name(study_name), BEAT.grace) == []  # beat just now
    other = optuna.load_study(study_name=study_name, storage=open_storage(url, heartbeat=BEAT))
    time.sleep(BEAT.grace + 1.5)
    assert storage.claim(trial._trial_id, BEAT.grace)
    assert not queue_storage(other).claim(trial._trial_id, BEAT.grace)  # the second to look loses
    assert recover_stale(other) == []  # claimed a moment ago: not again


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_recovery_cut_short_before_the_retry_is_finished_by_the_next_worker(url, study_name, monkeypatch):
    """The worker that failed a stale trial loses its connection (or dies) before it queues the
    retry: the next worker to look, ``grace`` seconds later, queues it, once."""
    study = _study(url, study_name)
    study.enqueue_trial({"x": 5})
    trial = study.ask()
    time.sleep(BEAT.grace + 1.5)  # no heartbeat: stale
    storage = queue_storage(study)

    def inserting_the_retry(statement: str, parameters) -> bool:
        return statement.lstrip().upper().startswith("INSERT INTO TRIALS")

    break_connection(storage.engine, inserting_the_retry, times=100)  # every try of the retry fails
    monkeypatch.setattr(sweetspot.service.retry, "STORAGE_RETRY", Retry(pause=0.01))  # quick, well within the grace
    monkeypatch.setattr(optuna.storages._rdb.storage, "time", SimpleNamespace(sleep=lambda seconds: None))
    with pytest.raises(optuna.exceptions.StorageInternalError):
        recover_stale(study)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert [t.number for t in failed] == [trial.number] and not study.get_trials(states=(TrialState.WAITING,))

    later = optuna.load_study(study_name=study_name, storage=open_storage(url, heartbeat=BEAT))
    assert recover_stale(later) == []  # the claim is fresh: the first worker may still be at it
    time.sleep(BEAT.grace + 1.5)
    assert recover_stale(later) == [trial.number]
    assert recover_stale(later) == []
    (retry,) = later.get_trials(states=(TrialState.WAITING,))
    assert retry.system_attrs["retry_history"] == [trial.number]
    assert retry.system_attrs["fixed_params"] == {"x": 5}



def test_a_result_whose_write_loses_its_connection_is_written_again(url, study_name):
    """The connection drops as the worker stores the trial's result (its ``tell``): Optuna masked the
    error with ``AssertionError: Should not reach.``, the worker died and the trial stayed RUNNING."""
    study = _study(url, study_name)
    study.enqueue_trial({"x": 3})

    def completing(statement: str, parameters) -> bool:
        values = parameters.values() if isinstance(parameters, dict) else parameters or ()
        return statement.lstrip().upper().startswith("UPDATE TRIALS") and "COMPLETE" in [str(v) for v in values]

    left = break_connection(queue_storage(study).engine, completing)
    assert drain(study, _objective, poll=0.2) == 1
    assert left == [0]
    (trial,) = study.get_trials()
    assert trial.state == TrialState.COMPLETE and trial.values == [3.0]
