"""Storage URLs, study creation and loading, samplers, and the optimisation loop with its progress bar.

A sweetspot study is a plain Optuna study: any Optuna tool reads it. What sweetspot adds lives in
study user attributes (the config the study was created with) and trial user attributes (metrics).
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.event
import sqlalchemy.exc
from optuna.trial import FrozenTrial, TrialState
from optuna_dashboard import save_note
from sqlalchemy.engine import make_url

from sweetspot.config import StudyConfig, config_diff, config_from_dict
from sweetspot.core.seeds import derive_seed
from sweetspot.errors import ConfigError, StorageError
from sweetspot.service.early_stop import make_pruner
from sweetspot.service.notes import study_note
from sweetspot.service.optuna_internals import QueueStorage, experimental
from sweetspot.service.retry import STORAGE_ERRORS, STORAGE_RETRY, Retry, first_line, through_disconnects, with_retries
from sweetspot.service.retrying_storage import RetryingStorage

DEFAULT_STORAGE = "sqlite:///sweetspot.db"
STORAGE_ENV = "SWEETSPOT_STORAGE"
CONFIG_ATTR = "sweetspot_config"  # study user attribute holding the config as a dict
REFERENCE_ATTR = "sweetspot_reference"  # the reference teacher's figures (reference.py), once per study
PROVENANCE_ATTR = "sweetspot_provenance"  # digests of the data and of each imported module's source
SUPPORTED_BACKENDS = ("sqlite", "postgresql", "mysql")  # and grpc:// (a sweetspot storage-proxy)


def resolve_storage_url(arg: str | None) -> str:
    """``--storage`` if given, else ``$SWEETSPOT_STORAGE``, else an SQLite file in the working directory."""
    return arg or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, safe to print or log."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return re.sub(r"([^\s:/@]*:)[^\s:/@]+@", r"\1***@", url)


def _engine_kwargs(backend: str) -> dict[str, Any]:
    if backend == "sqlite":
        return {"connect_args": {"timeout": 60}}  # wait for another writer instead of failing at once
    # a small pool per process; pre-ping replaces connections the server dropped
    return {"pool_pre_ping": True, "pool_size": 2, "max_overflow": 2}


@dataclass(frozen=True)
class Heartbeat:
    """Optuna heartbeats: a trial whose worker stopped beating for ``grace`` seconds (or that never
    beat though it started ``grace`` seconds ago) is failed and queued again, at most ``max_retry``
    times in a row, by the next worker that looks (recovery.py). The defaults are sweetspot.api's."""

    interval: int
    grace: int
    max_retry: int = 3


def _serialize_sqlite(engine: sqlalchemy.engine.Engine) -> None:
    """Make several worker processes safe on one SQLite file.

    WAL lets readers go on while one process writes. pysqlite starts a transaction only at its
    first write, so two processes could both read the same WAITING trial and both take it;
    ``BEGIN IMMEDIATE`` takes the write lock when a transaction starts, so that such read-then-write
    steps take turns (SQLAlchemy's documented recipe), and the 60 s busy timeout makes them wait.
    """
    with engine.connect() as connection:  # persistent in the file; not allowed inside a transaction
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")

    @sqlalchemy.event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners go


def open_storage(url: str, *, must_exist: bool = False, heartbeat: Heartbeat | None = None) -> RetryingStorage:
    """The storage at ``url``, with every call that is safe to repeat retried (retrying_storage.py):
    sweetspot's QueueStorage for a database, or for ``grpc://host:port`` a client of ``sweetspot
    storage-proxy`` (proxy.py) as its ``backend``. One-line StorageError for a malformed, unsupported or
    unreachable URL. ``must_exist`` refuses to create a new SQLite file (for reading commands)."""
    if url.startswith("grpc://"):
        return RetryingStorage(_open_proxy(url, heartbeat))
    shown = mask_url(url)
    parsed = check_storage_url(url, must_exist=must_exist)
    assert parsed is not None  # not a proxy
    backend = parsed.get_backend_name()
    try:
        return RetryingStorage(through_disconnects(_queue_storage, url, backend, heartbeat))
    except (ImportError, sqlalchemy.exc.NoSuchModuleError) as exc:
        raise StorageError(
            f"no driver for {parsed.drivername!r} in {shown!r} (for PostgreSQL use postgresql+psycopg://)"
        ) from exc
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        raise StorageError(f"cannot open {shown!r}: {first_line(exc)}") from exc


def check_storage_url(url: str, *, must_exist: bool = False) -> sqlalchemy.engine.URL | None:
    """The parsed URL of a database storage (None for a ``grpc://`` proxy), checked without connecting
    and without creating anything: a one-line StorageError for a malformed URL, an unsupported database,
    an SQLite file in memory, in a folder that does not exist or (``must_exist``) not there. Commands
    check it before they make any folder, so that a mistyped URL leaves nothing behind."""
    if url.startswith("grpc://"):
        _proxy_address(url)
        return None
    shown = mask_url(url)
    try:
        parsed = make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError) as exc:
        raise StorageError(
            f"malformed URL {shown!r} (expected e.g. {DEFAULT_STORAGE} or postgresql+psycopg://user@host/db)"
        ) from exc
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise StorageError(
            f"unsupported database {backend!r} in {shown!r} (supported: {', '.join(SUPPORTED_BACKENDS)})"
        )
    if backend == "sqlite":
        path = parsed.database or ""
        if path in ("", ":memory:"):
            raise StorageError(f"{shown!r} is in memory and would vanish; give a file, e.g. {DEFAULT_STORAGE}")
        if must_exist and not Path(path).is_file():
            raise StorageError(f"no database file at {path!r} (run `sweetspot run` first, or pass --storage)")
        if not Path(path).parent.is_dir():
            raise StorageError(f"directory {str(Path(path).parent)!r} of {shown!r} does not exist")
    return parsed


def _queue_storage(url: str, backend: str, heartbeat: Heartbeat | None) -> QueueStorage:
    """Connect, create the tables if missing and check their version: one try."""
    with experimental():  # heartbeats and their retry callback
        beats: dict[str, Any] = (
            {} if heartbeat is None else {"heartbeat_interval": heartbeat.interval, "grace_period": heartbeat.grace}
        )
        storage = QueueStorage(url, engine_kwargs=_engine_kwargs(backend), **beats)
        if heartbeat is not None:
            storage.max_retry = heartbeat.max_retry  # stale trials are failed and queued again by recovery.py
    if backend == "sqlite":
        _serialize_sqlite(storage.engine)
    return storage


def _open_proxy(url: str, heartbeat: Heartbeat | None) -> Any:
    """A client of ``sweetspot storage-proxy`` at ``grpc://host:port``, checked to answer (10 s)."""
    import grpc

    from sweetspot.service.proxy import QueueProxy

    host, port = _proxy_address(url)
    proxy = QueueProxy(host=host, port=port, heartbeat_interval=heartbeat.interval if heartbeat else None)
    try:
        proxy.wait_server_ready(timeout=10)
    except (grpc.FutureTimeoutError, ConnectionError) as exc:
        raise StorageError(f"no storage proxy answers at {url!r} (start one with: sweetspot storage-proxy)") from exc
    return proxy


def _proxy_address(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("grpc://").rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise StorageError(f"malformed URL {url!r} (expected grpc://HOST:PORT of a `sweetspot storage-proxy`)")
    return host, int(port)


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    return [s.study_name for s in storage.get_all_studies()]


def load_study(storage: optuna.storages.BaseStorage, name: str | None) -> tuple[optuna.Study, StudyConfig]:
    """An existing sweetspot study and its config. Without a name, the storage's only study."""
    names = study_names(storage)
    if name is None:
        if len(names) != 1:
            listed = ", ".join(names) if names else "none"
            raise StorageError(f"name the study to use (studies in this storage: {listed})")
        name = names[0]
    if name not in names:
        raise StorageError(f"no study named {name!r} (studies in this storage: {', '.join(names) or 'none'})")
    study = optuna.load_study(study_name=name, storage=storage)
    return study, stored_config(study)


def stored_config(study: optuna.Study) -> StudyConfig:
    raw = user_attrs(study).get(CONFIG_ATTR)
    if raw is None:
        raise StorageError(
            f"study {study.study_name!r} was not created by sweetspot (it has no {CONFIG_ATTR} attribute)"
        )
    return config_from_dict(raw, source=f"study {study.study_name!r}")


def make_sampler(config: StudyConfig, seed: int) -> optuna.samplers.BaseSampler:
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def provenance(config: StudyConfig, data_digest: str) -> dict[str, str]:
    """What every worker of one study must share beyond its config: the data as read, and the
    source file of each module an import path of the config names (the user's own code)."""
    from sweetspot.trusted_imports import is_import_path, source_digest

    found = {"data": data_digest}
    for name in (config.teacher.arch, config.student.arch, config.data.name):
        if is_import_path(name):
            found[name] = source_digest(name)
    return found


def open_study(
    storage: optuna.storages.BaseStorage, name: str, config: StudyConfig, provenance: dict[str, str] | None = None
) -> optuna.Study:
    """Create the study, or load it if it exists and was made with the same config.

    A study made with another config is refused (nothing is written), so that trials of two
    different experiments never mix; so is a worker whose data or imported code differ from those
    the study recorded (``provenance``). Each call gets a sampler seeded by the config seed and the
    number of trials already there, so that a resumed study explores new points deterministically.
    """
    if name in study_names(storage):
        existing = optuna.load_study(study_name=name, storage=storage)
        attrs = user_attrs(existing)
        before = attrs.get(CONFIG_ATTR)
        if before is None:
            raise StorageError(f"{name!r} exists and was not created by sweetspot; choose another name")
        diff = config_diff(config_from_dict(before).fingerprint(), config.fingerprint())
        if diff:
            shown = "; ".join(diff[:3]) + (f"; and {len(diff) - 3} more" if len(diff) > 3 else "")
            raise ConfigError(
                f"study {name!r} was created with a different config ({shown}); "
                "use the original config or start a new study with --study NAME"
            )
        _check_provenance(name, attrs.get(PROVENANCE_ATTR) or {}, provenance or {})
        n_before = len(existing.get_trials(deepcopy=False))
        sampler = make_sampler(config, derive_seed(config.seed, n_before, 1))
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler,
                                 pruner=make_pruner(config.early_stop))
    # each step is safe to repeat after a dropped connection whose last write may have landed
    study = with_retries(
        optuna.create_study,
        storage=storage,
        study_name=name,
        directions=list(config.objectives.values()),
        sampler=make_sampler(config, derive_seed(config.seed, 0, 1)),
        pruner=make_pruner(config.early_stop),
        load_if_exists=True,  # another worker may create it at the same moment
    )
    study.set_user_attr(CONFIG_ATTR, config.to_dict())
    if provenance:
        study.set_user_attr(PROVENANCE_ATTR, provenance)
    with experimental():
        study.set_metric_names(list(config.objectives))
    save_note(study, study_note(config))  # optuna-dashboard shows it on the study's page
    return study


def user_attrs(study: optuna.Study) -> dict[str, Any]:
    """The study's user attributes (a storage read, retried by the storage)."""
    return study.user_attrs


def ensure_reference(study: optuna.Study, config: StudyConfig, splits: Any, checkpoints: Any = None) -> dict | None:
    """The study's reference teacher (``reference.py``): read from the study, or trained once and
    stored with it (None when the config has none). Two processes that both find it missing both
    train it; they store the same figures (the same seeds, path and data)."""
    if config.reference.batch_size is None:
        return None
    stored = user_attrs(study).get(REFERENCE_ATTR)
    if stored is not None:
        return stored
    from sweetspot.core.reference import run_reference

    reference = run_reference(config, splits, checkpoints)
    study.set_user_attr(REFERENCE_ATTR, reference)
    return reference


def _check_provenance(name: str, recorded: dict[str, str], here: dict[str, str]) -> None:
    differ = [key for key in here if key in recorded and recorded[key] != here[key]]
    if not differ:
        return
    what = " and ".join("data" if key == "data" else f"code ({key})" for key in differ)
    raise ConfigError(
        f"study {name!r} was run with other {what}: {here[differ[0]]} here, {recorded[differ[0]]} in the study; "
        "every worker of a study must run the same code on the same data"
    )


def metric_names(study: optuna.Study) -> list[str]:
    """The objectives' names as the study stored them (sweetspot always does), else ``objective 0``, ..."""
    return study.metric_names or [f"objective {i}" for i in range(len(study.directions))]


def best_so_far(study: optuna.Study, trials: list[FrozenTrial]) -> dict[str, float]:
    """Best value of each objective over ``trials`` (each objective on its own, not a single trial)."""
    names = metric_names(study)
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
    best: dict[str, float] = {}
    for i, (name, direction) in enumerate(zip(names, study.directions)):
        values = [t.values[i] for t in done]
        if values:
            pick = max if direction == optuna.study.StudyDirection.MAXIMIZE else min
            best[name] = pick(values)
    return best


def worker_id() -> str:
    """host:pid, stored on each trial so that a supervisor can tell its workers' trials apart."""
    return f"{socket.gethostname()}:{os.getpid()}"


def queue_trials(study: optuna.Study, n: int, retry: Retry = STORAGE_RETRY) -> None:
    """Add exactly ``n`` trials to the study's queue (WAITING trials whose parameters the sampler
    chooses when a worker takes them). Workers run queued trials only, so the queue is the study's
    total. Each is marked with this call's ``queued_by`` token: after a dropped connection (whose
    last enqueue may or may not have been written) the marked trials are counted again, so that
    none is missing and none is queued twice."""
    token = f"{worker_id()}@{time.time():.6f}"
    queued, errors = 0, 0
    while queued < n:
        try:
            study.enqueue_trial({}, user_attrs={"queued_by": token})
            queued += 1
            errors = 0
        except STORAGE_ERRORS as exc:
            errors += 1
            retry.give_up(errors, exc)
            trials = study.get_trials(deepcopy=False)
            queued = sum(t.user_attrs.get("queued_by") == token for t in trials)


def count_states(trials: Iterable[FrozenTrial]) -> dict[TrialState, int]:
    """How many of ``trials`` are in each state (every state present, 0 where none)."""
    counts = dict.fromkeys(TrialState, 0)
    for trial in trials:
        counts[trial.state] += 1
    return counts
