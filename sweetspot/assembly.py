"""One assembly of the parts, under both front ends: the Python API (``api.py``) and the CLI (``cli/``).

Each step takes what the user gave and ``Names``: how that user named each input (``storage`` from
Python, ``--storage`` on the command line), so that a refusal names what to change in the user's own
words. The order is the contract: bad input is refused before anything is written to a storage, and
a storage that is refused leaves none of the folders made for it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from sweetspot.config import StudyConfig, named_objects
from sweetspot.errors import ConfigError, SweetspotError

THREADS_ENV = "SWEETSPOT_THREADS"


@dataclass(frozen=True)
class Names:
    """How the user named each input: argument names from Python, flags on the command line."""

    storage: str = "storage"
    study: str = "study_name"
    artifacts: str = "artifacts"
    checkpoints: str = "checkpoints"
    device: str = "device"
    threads: str = "threads"


PYTHON_NAMES = Names()


@contextmanager
def given(what: str) -> Iterator[None]:
    """A library error raised in this block is about ``what`` (an argument the user gave): the
    message says so; the error keeps its class, and its cause for --debug."""
    try:
        yield
    except SweetspotError as exc:
        raise type(exc)(f"{what}: {exc}") from exc


@dataclass(frozen=True)
class Workers:
    """How a worker runs its trials: where teachers are shared and kept, and how it proves it is alive."""

    artifacts: str | None  # artifact folder (None: beside the storage, see service/artifacts.py)
    checkpoints: str | None  # checkpoint folder (None: inside the artifact folder)
    share: bool  # continue stored teacher checkpoints (False: train every teacher from scratch)
    checkpoint_mb: int  # the defaults of these are sweetspot.api's, the only declaration of them
    checkpoint_every: int
    keep_weights: int
    heartbeat: int
    grace: int


@dataclass
class Run:
    """An opened study and what its trials need."""

    study: Any  # optuna.Study
    storage: Any
    objective: Any  # service.objective.Objective
    url: str
    config: StudyConfig
    notes: list[str] = field(default_factory=list)


def setup_compute(device: str, threads: int | None, names: Names = PYTHON_NAMES) -> Any:
    """Thread count and device, set deliberately before any tensor work (``threads``, else
    $SWEETSPOT_THREADS, else torch's own choice)."""
    import torch

    from sweetspot.core.trial import resolve_device

    chosen = threads or os.environ.get(THREADS_ENV)
    if chosen:
        try:
            count = int(chosen)
        except ValueError:
            count = 0
        if count < 1:
            where = names.threads if threads else THREADS_ENV
            raise ConfigError(f"{where}: must be a positive integer, got {str(chosen)!r}")
        torch.set_num_threads(count)
    with given(names.device):
        return resolve_device(device)


def with_data_dir(config: StudyConfig, data_dir: str | None, download: bool) -> StudyConfig:
    """A data folder and the permission to download over the config's (they say where the files
    are, not what the study is, so a study accepts them from any machine)."""
    if not (data_dir or download):
        return config
    data = replace(config.data, data_dir=data_dir or config.data.data_dir, download=download or config.data.download)
    return replace(config, data=data)


def quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the progress bar and our lines say it


def open_storage(storage: str | None, names: Names = PYTHON_NAMES, **kwargs: Any) -> tuple[Any, str]:
    """The storage ``storage`` names (None: $SWEETSPOT_STORAGE, else sqlite:///sweetspot.db), and its URL."""
    from sweetspot.service.study import open_storage as open_url
    from sweetspot.service.study import resolve_storage_url

    url = resolve_storage_url(storage)
    with given(names.storage):
        return open_url(url, **kwargs), url


def load_study(storage: Any, study_name: str | None, names: Names = PYTHON_NAMES) -> tuple[Any, StudyConfig]:
    """The existing study ``study_name`` names (or the storage's only one) and its stored config."""
    from sweetspot.service.study import load_study as load

    quiet_optuna()
    with given(names.study):
        return load(storage, study_name)


def heartbeat(workers: Workers) -> Any:
    from sweetspot.service.study import Heartbeat

    return Heartbeat(interval=workers.heartbeat, grace=workers.grace)


def artifact_store(url: str, folder: str | None, names: Names = PYTHON_NAMES) -> Any:
    """The artifact store of this storage (see service/artifacts.py), created if missing."""
    from sweetspot.service.artifacts import artifact_dir, open_artifact_store

    with given(names.artifacts):
        return open_artifact_store(artifact_dir(url, folder))


def objective(config: StudyConfig, splits: Any, url: str, workers: Workers, names: Names = PYTHON_NAMES) -> Any:
    """A worker's objective with the study's artifact store and, when ``workers.share``, the shared
    store of teacher checkpoints (see core/checkpoints.py), by default inside the artifact folder."""
    from sweetspot.core.checkpoints import CheckpointStore, checkpoint_dir
    from sweetspot.service.artifacts import artifact_dir
    from sweetspot.service.objective import Objective

    artifacts = artifact_store(url, workers.artifacts, names)  # first: the checkpoint folder is inside it
    checkpoints = None
    if workers.share:
        with given(names.checkpoints):
            folder = checkpoint_dir(artifact_dir(url, workers.artifacts), workers.checkpoints)
            checkpoints = CheckpointStore(folder, workers.checkpoint_mb * 2**20, workers.checkpoint_every,
                                          horizon=config.search.epochs[1])
    return Objective(config, splits, artifacts, checkpoints)


def open_run(config: StudyConfig, storage: str | None, study_name: str | None, workers: Workers, *,
             device: str = "auto", threads: int | None = None, names: Names = PYTHON_NAMES) -> Run:
    """Check the storage URL, validate and load what trials need, make the objective (its artifact
    and checkpoint folders), then open the storage and open (or create) the study: in this order."""
    from sweetspot.core.atomic_files import folders_undone_on_error
    from sweetspot.core.checkpoints import checkpoint_dir
    from sweetspot.core.trial import prepare
    from sweetspot.service.artifacts import artifact_dir
    from sweetspot.service.study import check_storage_url, open_study, provenance, resolve_storage_url

    config = named_objects(config)
    url = resolve_storage_url(storage)
    with given(names.storage):
        check_storage_url(url)
    splits = prepare(config, setup_compute(device, threads, names))
    artifacts = artifact_dir(url, workers.artifacts)
    with folders_undone_on_error(artifacts, checkpoint_dir(artifacts, workers.checkpoints)):
        made = objective(config, splits, url, workers, names)
        opened, url = open_storage(storage, names, heartbeat=heartbeat(workers))
        quiet_optuna()
        with given(names.study):
            study = open_study(opened, study_name or config.name, config, provenance(config, splits.digest))
    return Run(study, opened, made, url, config)


def weights_kept(keep: int, objective: Any) -> Callable[[Any, Any], None]:
    """The after-trial step that deletes the teacher weights of trials outside the best ``keep``
    (see results/retention.py)."""
    from sweetspot.results.retention import keep_best_weights

    def after_trial(study: Any, trial: Any) -> None:
        keep_best_weights(study, objective.artifacts, keep)

    return after_trial


def reference(run: Run, say: Callable[[str], None] = print) -> dict[str, Any] | None:
    """The study's reference teacher, trained here the first time (``service.study.ensure_reference``)."""
    from sweetspot.config.metric_registry import trains_students
    from sweetspot.service.study import REFERENCE_ATTR, ensure_reference, user_attrs

    config = run.config
    if config.reference.batch_size is not None and REFERENCE_ATTR not in user_attrs(run.study):
        students = "with its students" if trains_students(config.objectives) else \
            "without students (no objective needs one)"
        say(f"training the reference teacher: batch {config.reference.batch_size}, stopped at its best validation "
            f"accuracy (patience {config.reference.patience}), {students}; once per study")
    return ensure_reference(run.study, config, run.objective.splits, run.objective.checkpoints)


@dataclass(frozen=True)
class Export:
    """What `sweetspot export` writes (``document``), with what its summary line needs."""

    document: dict[str, Any]
    front: int  # teachers on the Pareto front
    reference: dict[str, Any] | None


def export(study: Any, config: StudyConfig, url: str, confirm: int | None, *, device: str = "auto",
           threads: int | None = None, names: Names = PYTHON_NAMES) -> Export:
    """The export document of ``study``: its Pareto teachers scored once on the test split,
    confirmed over ``confirm`` teacher seeds if asked, beside the reference teacher."""
    from sweetspot.core.trial import prepare
    from sweetspot.results.export import build_export, front_or_fail, score_on_test
    from sweetspot.results.export import confirm as confirm_front
    from sweetspot.service.study import ensure_reference, mask_url

    config = named_objects(config)
    front = front_or_fail(study)
    splits = prepare(config, setup_compute(device, threads, names))
    confirmed = confirm_front(config, splits, front, confirm) if confirm else None
    made = ensure_reference(study, config, splits)
    document = build_export(study, config, mask_url(url), score_on_test(config, splits, front), confirmed, made)
    return Export(document, len(front), made)
