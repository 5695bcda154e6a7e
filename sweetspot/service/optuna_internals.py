"""Where sweetspot goes beyond Optuna's stable public API, all in one place.

* Private: ``RDBStorage._create_new_trial`` is overridden (QueueStorage), the one way to make
  ``study.ask`` take only queued trials; tests/service/test_workers.py checks that Optuna still creates
  every trial through it, so an Optuna upgrade that changes this fails a test, not a study.
* Private: the heartbeat table is read and written directly (``QueueStorage.claim``), to find
  trials whose worker is gone, including those that never wrote a heartbeat, and to claim each
  for one worker with a compare-and-set; Optuna's own stale check is switched off.
* optuna-dashboard's notes (``read_note``, ``write_note``, ``add_to_note``): a trial's note is a study
  system attribute keyed by the trial's database id, which a copied study must re-key (backup.py).
* Private: a finished trial's artifact record is deleted from its system attributes directly
  (``forget_artifact``), once retention has deleted the file (disk.py): Optuna allows no write to a
  finished trial, and optuna-dashboard's own "deleted" mark (a null record) breaks Optuna's
  ``get_all_artifact_meta``. A proxied worker asks the proxy to do it (``FORGET_KEY``).
* Private: Optuna's gRPC proxy servicer, its generated messages and the heartbeat base class
  (``proxy_api``), which proxy.py extends with the queue and heartbeats.
* Experimental: heartbeats and metric names warn on every use; ``experimental()`` silences exactly
  that warning around those calls.
* Private: Optuna's cache layer (``cached``) and its heartbeat base class (``BaseHeartbeat``), which
  the retrying storage (retrying_storage.py) is built from: the cache in front of the database, as
  ``load_study`` would put it, and the heartbeat interface Optuna looks for.
Everything else sweetspot does with Optuna uses its public API.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import optuna
import sqlalchemy
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

from sweetspot.service.retry import STORAGE_ERRORS, first_line, with_retries

log = logging.getLogger("sweetspot.service.workers")


@contextmanager
def experimental() -> Iterator[None]:
    """Calls to Optuna features marked experimental, without their warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def cached(storage: optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    """Optuna's trial cache in front of a database storage (what ``load_study`` puts there itself when
    it is handed an RDB storage); any other storage as it is."""
    return _CachedStorage(storage) if isinstance(storage, optuna.storages.RDBStorage) else storage


__all__ = ["BaseHeartbeat", "cached"]


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

    max_retry = 3  # how many times in a row a stale trial is queued again (recovery.py)

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
        # Both ``create_new_trial`` and Optuna's cache layer (which ``load_study`` puts in front of
        # every RDB storage) create trials through this method; tests/service/test_workers.py checks it.
        if template_trial is None:
            raise QueueEmpty
        return super()._create_new_trial(study_id, template_trial)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        """Optuna's, tried again through a dropped connection: called by ``tell``, it is the one write a
        worker must not lose (Optuna then masks the error with an AssertionError and leaves the trial
        RUNNING). A retry that finds the trial already in that state with those values is the first
        try's commit, whose answer was lost."""
        tries = 0

        def once() -> bool:
            nonlocal tries
            tries += 1
            try:
                return super(QueueStorage, self).set_trial_state_values(trial_id, state, values)
            except optuna.exceptions.UpdateFinishedTrialError:
                if tries > 1 and _holds(self.get_trial(trial_id), state, values):
                    return True
                raise

        return with_retries(once)

    def record_heartbeat(self, trial_id: int) -> None:
        """Optuna's heartbeat thread records a beat every interval and dies at its first exception:
        one dropped connection would leave a live trial without beats, to be failed as stale. A
        failed beat is logged and the next one tries again."""
        beat_or_log(super().record_heartbeat, trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """None for Optuna's own check (run by every ``study.optimize``): it misses trials that never
        beat and lets two workers race for one trial; ``recovery.py`` claims stale trials instead."""
        return []

    def stale_candidates(self, study_id: int, grace: float) -> list[int]:
        """Trials of the study that may have lost their worker: RUNNING with a heartbeat older than
        ``grace`` seconds, or with none though they started more than ``grace`` seconds ago (a
        connection lost after the trial was taken, before its first beat). Only ``claim`` decides."""
        trials, beats = models.TrialModel.__table__, models.TrialHeartbeatModel.__table__
        query = (
            sqlalchemy.select(trials.c.trial_id, trials.c.datetime_start, beats.c.heartbeat)
            .select_from(trials.outerjoin(beats, beats.c.trial_id == trials.c.trial_id))
            .where(trials.c.study_id == study_id, trials.c.state == TrialState.RUNNING.name)
        )
        with self.engine.connect() as connection:
            now = self._now(connection)
            rows = connection.execute(query).all()
        local = datetime.now()  # datetime_start is the worker's clock, as Optuna writes it
        window = timedelta(seconds=grace)
        return [
            trial_id
            for trial_id, started, beat in rows
            if (beat is None and (started is None or local - started > window))
            or (beat is not None and now - beat > window)
        ]

    def claim(self, trial_id: int, grace: float) -> bool:
        """Take a stale trial for this caller alone: its heartbeat moves to now only if it is still
        older than ``grace`` (or is created if it has none; the table allows one per trial), in one
        statement, so that of the workers that look at once exactly one wins, and a winner that dies
        before it is done is followed by another ``grace`` seconds later. Works on finished trials too."""
        beats = models.TrialHeartbeatModel.__table__
        try:
            with self.engine.begin() as connection:
                now = self._now(connection)
                moved = connection.execute(
                    sqlalchemy.update(beats)
                    .where(beats.c.trial_id == trial_id, beats.c.heartbeat < now - timedelta(seconds=grace))
                    .values(heartbeat=now)
                ).rowcount
                if moved:
                    return True
                if connection.execute(sqlalchemy.select(beats.c.trial_id).where(beats.c.trial_id == trial_id)).first():
                    return False  # beating, or claimed by another worker a moment ago
                connection.execute(sqlalchemy.insert(beats).values(trial_id=trial_id, heartbeat=now))
                return True
        except sqlalchemy.exc.IntegrityError:  # another worker created it first
            return False

    @staticmethod
    def _now(connection: sqlalchemy.Connection) -> datetime:
        """The database's clock, as Optuna writes heartbeats with it (naive, as it stores them)."""
        now = connection.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
        assert now is not None
        return now.replace(tzinfo=None)


def beat_or_log(record: Callable[[int], None], trial_id: int) -> None:
    """One heartbeat; a failed one is logged, and the heartbeat thread's next beat tries again."""
    try:
        record(trial_id)
    except STORAGE_ERRORS as exc:
        log.warning("heartbeat of trial id %d not recorded (%s); next beat tries again", trial_id, first_line(exc))


def _holds(trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> bool:
    return trial.state == state and (values is None or list(trial.values or []) == list(values))


def told_already(exc: BaseException) -> bool:
    """``study.optimize`` failing to tell a trial that is finished already (Optuna's ValueError):
    another worker failed it as stale while its own worker could not reach the database for longer
    than the grace period. The trial has its retry; this worker just goes on."""
    return isinstance(exc, ValueError) and str(exc).startswith("Cannot tell a ")


def tell_lost(exc: BaseException) -> bool:
    """``study.optimize`` whose final ``tell`` failed on the storage: Optuna replaces that error with
    ``AssertionError("Should not reach.")`` and leaves the trial RUNNING (it is then recovered as stale)."""
    return isinstance(exc, AssertionError) and isinstance(exc.__context__, (*STORAGE_ERRORS, ValueError))


def queue_storage(study: optuna.Study) -> QueueStorage | None:
    """The QueueStorage under a study (``load_study`` and ``create_study`` put Optuna's cache layer
    in front of it), or None for any other storage."""
    storage = study._storage
    storage = getattr(storage, "_backend", storage)
    return storage if isinstance(storage, QueueStorage) else None


TRIAL_NOTE_KEY = re.compile(r"^dashboard:\d+:")  # optuna-dashboard's key of a trial's note: the trial's database id
ARTIFACT_KEY = "artifacts:"  # optuna.artifacts' trial system attributes, one per file: "artifacts:<id>"


def artifact_ids(trial: FrozenTrial, filename: str | None = None) -> list[str]:
    """The ids of the files optuna.artifacts stored for ``trial`` (only those named ``filename``),
    read from its system attributes: no storage call."""
    return [
        key[len(ARTIFACT_KEY):]
        for key, meta in trial.system_attrs.items()
        if key.startswith(ARTIFACT_KEY) and (filename is None or json.loads(meta).get("filename") == filename)
    ]


RETIRED_KEY = "sweetspot:retired:"  # the study's record of a file retention deleted (disk.py): {"trial", "filename"}


def retired_files(system_attrs: dict[str, Any]) -> dict[str, Any]:
    """The files retention retired, by artifact id, from a study's system attributes."""
    return {key[len(RETIRED_KEY):]: value for key, value in system_attrs.items() if key.startswith(RETIRED_KEY)}


def read_note(system_attrs: dict[str, Any], trial_id: int | None) -> str:
    """The note optuna-dashboard shows for a trial (``None``: the study), from the study's system attributes."""
    from optuna_dashboard._note import get_note_from_system_attrs

    return get_note_from_system_attrs(system_attrs, trial_id)["body"]


def write_note(storage: optuna.storages.BaseStorage, study_id: int, trial_id: int, body: str) -> None:
    """A trial's note, written as optuna-dashboard writes one (its first version)."""
    from optuna_dashboard._note import save_note_with_version

    save_note_with_version(storage, study_id, trial_id, 0, body)


def add_to_note(storage: optuna.storages.BaseStorage, study_id: int, trial_id: int, text: str) -> None:
    """``text`` appended to a trial's note as its next version (optuna-dashboard's versioning), unless the
    note has it already: safe to repeat after a write whose answer was lost."""
    from optuna_dashboard._note import get_note_from_system_attrs, save_note_with_version

    note = get_note_from_system_attrs(storage.get_study_system_attrs(study_id), trial_id)
    if text not in note["body"]:
        save_note_with_version(storage, study_id, trial_id, note["version"] + 1, note["body"] + text)


FORGET_KEY = "sweetspot:forget-artifact"  # a proxied worker's request: the proxy deletes the artifact record


def forget_artifact(study: optuna.Study, trial: FrozenTrial, artifact_id: str) -> None:
    """Delete the record of artifact ``artifact_id`` from finished ``trial`` in the database (through a
    sweetspot storage proxy: the proxy does it) and from this process's copy of the trial, so that
    neither Optuna, optuna-dashboard nor a copy of the study lists a file that is gone. Idempotent."""
    storage = study._storage
    backend = getattr(storage, "_backend", storage)
    if isinstance(backend, optuna.storages.RDBStorage):
        forget_record(backend, storage, trial._trial_id, artifact_id)
    elif hasattr(backend, "forget_artifact"):  # proxy.QueueProxy
        backend.forget_artifact(trial._trial_id, artifact_id)
    else:
        return  # a storage without records to delete (in memory, say): the trial keeps listing it
    trial.system_attrs.pop(ARTIFACT_KEY + artifact_id, None)


def retire_record(study: optuna.Study, trial: FrozenTrial, artifact_id: str, note: str) -> None:
    """What is left of a file retention deleted (disk.py): its record gone from the trial
    (``forget_artifact``), the study's ``RETIRED_KEY`` attribute for it, ``note`` added to the trial's note."""
    filename = json.loads(trial.system_attrs[ARTIFACT_KEY + artifact_id]).get("filename")
    forget_artifact(study, trial, artifact_id)
    storage = study._storage
    record = {"trial": trial.number, "filename": filename}
    storage.set_study_system_attr(study._study_id, RETIRED_KEY + artifact_id, record)
    add_to_note(storage, study._study_id, trial._trial_id, note)


def forget_record(
    database: optuna.storages.RDBStorage, cache: optuna.storages.BaseStorage, trial_id: int, artifact_id: str
) -> None:
    """The artifact's row deleted from the trial's system attributes in ``database``, and the record
    from the finished trial Optuna's cache layer (``cache``, a ``_CachedStorage``) holds, if any: by
    a direct worker, and by the storage proxy for its workers."""
    attrs = models.TrialSystemAttributeModel.__table__
    with database.engine.begin() as connection:
        connection.execute(
            sqlalchemy.delete(attrs).where(attrs.c.trial_id == trial_id, attrs.c.key == ARTIFACT_KEY + artifact_id)
        )
    find = getattr(cache, "_get_cached_trial", None)
    cached = find(trial_id) if find is not None else None
    if cached is not None:
        cached.system_attrs.pop(ARTIFACT_KEY + artifact_id, None)


def proxy_api() -> tuple[type, Any, Any, type]:
    """Optuna's gRPC proxy servicer class, its generated ``api_pb2`` and ``api_pb2_grpc`` modules, and
    ``BaseHeartbeat``: what proxy.py builds on (imported on demand: only the proxy needs them)."""
    from optuna.storages._grpc.auto_generated import api_pb2, api_pb2_grpc
    from optuna.storages._grpc.servicer import OptunaStorageProxyService
    from optuna.storages._heartbeat import BaseHeartbeat

    return OptunaStorageProxyService, api_pb2, api_pb2_grpc, BaseHeartbeat
