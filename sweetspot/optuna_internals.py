"""Where sweetspot goes beyond Optuna's stable public API, all in one place.

* Private: ``RDBStorage._create_new_trial`` is overridden (QueueStorage), the one way to make
  ``study.ask`` take only queued trials; tests/test_workers.py checks that Optuna still creates
  every trial through it, so an Optuna upgrade that changes this fails a test, not a study.
* Experimental: heartbeat retries, ``fail_stale_trials`` and metric names warn on every use;
  ``experimental()`` silences exactly that warning around those calls.
Everything else sweetspot does with Optuna uses its public API.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
from optuna.trial import FrozenTrial


@contextmanager
def experimental() -> Iterator[None]:
    """Calls to Optuna features marked experimental, without their warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


class QueueEmpty(Exception):
    """No queued trial is left: the study has reached its total."""


class QueueStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage, except that ``study.ask`` never creates a trial of its own.

    sweetspot queues a study's trials up front (``study.queue_trials``): ``study.ask`` pops a
    WAITING one, an atomic update in the database, and when none is left this storage raises
    QueueEmpty instead of creating a new trial. So N queued trials are exactly N trials, whatever
    the number of workers. Trials created from a template (queueing, Optuna's retry of a stale
    trial) pass.
    """

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
        # Both ``create_new_trial`` and Optuna's cache layer (which ``load_study`` puts in front of
        # every RDB storage) create trials through this method; tests/test_workers.py checks it.
        if template_trial is None:
            raise QueueEmpty
        return super()._create_new_trial(study_id, template_trial)
