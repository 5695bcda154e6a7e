"""The storage every process talks to rides out a dropped connection in any call it can repeat."""

from __future__ import annotations

import inspect

import optuna
import pytest
from optuna.trial import TrialState

from sweetspot.config import config_from_dict
from sweetspot.core.trial import prepare, resolve_device
from sweetspot.service.objective import Objective
from sweetspot.service.optuna_internals import BaseHeartbeat
from sweetspot.service.retrying_storage import INTERFACE, NOT_REPEATED, RetryingStorage
from sweetspot.service.study import count_states, open_storage, open_study, queue_trials
from tests.conftest import TINY, break_connection


class _FailsOnce:
    """A storage whose every method fails once with a dropped connection, then answers its name."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str):
        def method(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            if self.calls[name] == 1:
                raise optuna.exceptions.StorageInternalError("connection dropped")
            return name

        return method


def test_the_wrapper_covers_the_whole_storage_interface():
    abstract = {n for base in (optuna.storages.BaseStorage, BaseHeartbeat) for n in base.__abstractmethods__}
    assert abstract <= set(INTERFACE) | set(RetryingStorage.__dict__)
    members = inspect.getmembers(optuna.storages.BaseStorage, inspect.isfunction)
    assert {n for n, _ in members if not n.startswith("_")} <= set(INTERFACE)


@pytest.mark.parametrize("name", INTERFACE)
def test_each_call_is_retried_unless_a_second_try_could_do_harm(name, quick_retries):
    storage = RetryingStorage(_FailsOnce())  # type: ignore[arg-type]
    if name in NOT_REPEATED:
        with pytest.raises(optuna.exceptions.StorageInternalError):
            getattr(storage, name)(0)
        assert storage.inner.calls[name] == 1
    else:
        assert getattr(storage, name)(0) == name
        assert storage.inner.calls[name] == 2


# the calls that reach the database in this run (get_study_directions, say, is answered by Optuna's cache)
CALLED = ("get_all_studies", "get_study_id_from_name", "get_study_user_attrs", "get_study_system_attrs",
          "set_study_user_attr", "set_study_system_attr", "get_all_trials", "get_trial", "set_trial_param",
          "set_trial_user_attr", "set_trial_system_attr")


@pytest.mark.parametrize("name", CALLED)
def test_a_connection_dropped_inside_any_storage_call_of_a_worker_and_its_supervisor_is_ridden_out(
        name, postgres_url, study_name, capsys, tmp_path):
    """The connection underneath is closed right before the first statement of a call of ``name``
    (as a server restart drops it), while the supervisor opens the study and queues its trials, a
    worker runs them (saving each teacher, keeping the best one's weights), and the supervisor
    trains the reference and prints the summary: everything finishes as without it."""
    from sweetspot.assembly import weights_kept
    from sweetspot.cli.tables import summary
    from sweetspot.service.artifacts import open_artifact_store
    from sweetspot.service.study import ensure_reference
    from sweetspot.service.workers import drain_with_progress

    storage = open_storage(postgres_url)
    armed = [False]
    left = break_connection(storage.backend.engine, lambda statement, parameters: armed[0])
    original = getattr(storage.inner, name)

    def arming(*args, **kwargs):
        armed[0] = left[0] > 0  # until a statement inside this call really broke
        try:
            return original(*args, **kwargs)
        finally:
            armed[0] = False

    setattr(storage.inner, name, arming)
    config = config_from_dict({**TINY, "name": study_name})
    study = open_study(storage, study_name, config)
    queue_trials(study, 2)
    splits = prepare(config, resolve_device("cpu"))
    objective = Objective(config, splits, open_artifact_store(tmp_path / "artifacts"))
    assert drain_with_progress(study, objective, 2, progress=False, after_trial=weights_kept(1, objective)) == 2
    summary(study, postgres_url, reference=ensure_reference(study, config, splits))
    assert left == [0], f"no statement of {name} ran"
    counts = count_states(study.get_trials(deepcopy=False))
    assert counts[TrialState.COMPLETE] == 2 and sum(counts.values()) == 2
    assert "2 finished of 2 trials" in capsys.readouterr().out
