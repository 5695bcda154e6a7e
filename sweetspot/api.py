"""sweetspot from Python: the same study, export and teacher as the ``sweetspot`` command, in five lines.

    import sweetspot
    config = sweetspot.load_config("studies/digits.yaml")        # or sweetspot.StudyConfig()
    study = sweetspot.run_study(config, storage="sqlite:///s.db", n_trials=25)
    best = sweetspot.export_best(study, confirm=3)               # what `sweetspot export` writes
    teacher = sweetspot.load_teacher(best)                       # an nn.Module, in eval mode

or inside a study of one's own: ``optuna_study.optimize(sweetspot.Objective(config), n_trials=10)``.

A network or the dataset may be a Python callable (``NetConfig(arch=my_builder)``,
``DataConfig(name=my_loader)``): see trusted_imports.name_for. Importing this module imports neither
torch nor Optuna; each function imports what it needs when it is called. The defaults below are the
only declaration of them: the CLI reads its defaults from here.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweetspot.config import StudyConfig, load_config
from sweetspot.errors import ConfigError

if TYPE_CHECKING:
    import optuna
    from torch import nn

__all__ = [
    "CHECKPOINT_EVERY", "CHECKPOINT_MB", "GRACE_S", "HEARTBEAT_S", "KEEP_WEIGHTS",
    "Objective", "StudyConfig", "export_best", "load_config", "load_teacher", "run_study",
]

HEARTBEAT_S = 10  # seconds between a running trial's heartbeats
GRACE_S = 60  # seconds without a heartbeat after which a trial is failed and queued again
CHECKPOINT_MB = 48  # size bound of the checkpoint folder: three checkpoints of the default 6 x 512 teacher
CHECKPOINT_EVERY = 0  # also store every K-th epoch of a teacher path (0: only where trials stop)
KEEP_WEIGHTS = 10  # keep the teacher weights of the best K trials; the others' are retrained when asked for
LOG_DIR = "sweetspot-logs"  # per-worker log files of run_study(workers > 1)

_runs: weakref.WeakKeyDictionary[Any, tuple[str, StudyConfig]] = weakref.WeakKeyDictionary()  # run_study's studies


def run_study(
    config: StudyConfig | None = None,
    storage: str | None = None,
    *,
    study_name: str | None = None,
    n_trials: int | None = None,
    workers: int = 1,
    device: str = "auto",
    threads: int | None = None,
    progress: bool = True,
    artifacts: str | None = None,
    checkpoints: str | None = None,
    share: bool = True,
    checkpoint_mb: int = CHECKPOINT_MB,
    checkpoint_every: int = CHECKPOINT_EVERY,
    keep_weights: int = KEEP_WEIGHTS,
    heartbeat: int = HEARTBEAT_S,
    grace: int = GRACE_S,
    log_dir: str = LOG_DIR,
) -> optuna.Study:
    """Create or continue a study, queue ``n_trials`` (default: the config's), run them and train
    the reference teacher; returns the Optuna study (``sweetspot run`` without the printing).

    ``storage``: an Optuna storage URL (default: $SWEETSPOT_STORAGE, else sqlite:///sweetspot.db).
    ``workers``: 1 runs the trials in this process; N > 1 starts N `sweetspot worker` processes, which
    need the networks and the dataset as names or import paths, not Python objects of this process.

        >>> study = sweetspot.run_study(sweetspot.StudyConfig(n_trials=4), "sqlite:///s.db")  # doctest: +SKIP
        >>> study.best_trials[0].params                                                        # doctest: +SKIP
        {'batch_size': 64, 'epochs': 12}
    """
    from sweetspot import assembly
    from sweetspot.service.study import queue_trials

    config = StudyConfig() if config is None else config
    if workers < 1:
        raise ConfigError(f"workers: must be a positive integer, got {workers!r}")
    if n_trials is not None and n_trials < 1:
        raise ConfigError(f"n_trials: must be a positive integer, got {n_trials!r}")
    config = _checked(config, workers)
    settings = assembly.Workers(artifacts, checkpoints, share, checkpoint_mb, checkpoint_every, keep_weights,
                                heartbeat, grace)
    if workers > 1 and threads is None:
        from sweetspot.service.workers import threads_per_worker

        threads = threads_per_worker(workers)
    run = assembly.open_run(config, storage, study_name, settings, device=device, threads=threads)
    n = n_trials or run.config.n_trials
    waiting = _waiting(run.study)
    queue_trials(run.study, n)
    if workers == 1:
        from sweetspot.service.workers import drain_with_progress

        drain_with_progress(run.study, run.objective, n + waiting, progress=progress,
                            after_trial=assembly.weights_kept(keep_weights, run.objective))
    else:
        _supervise(run, settings, workers, n + waiting, device, threads or 1, progress, Path(log_dir))
    assembly.reference(run, say=lambda line: print(line, flush=True) if progress else None)
    _runs[run.study] = (run.url, run.config)
    return run.study


def export_best(
    study: optuna.Study,
    confirm: int | None = None,
    *,
    config: StudyConfig | None = None,
    storage: str | None = None,
    out: str | Path | None = None,
    device: str = "auto",
    threads: int | None = None,
) -> dict[str, Any]:
    """The export document of ``study`` (what `sweetspot export` writes): its Pareto teachers
    scored once on the test split, best first, ranked by their means over ``confirm`` teacher seeds
    when given, beside the reference teacher. ``out``: also write it (YAML, or JSON for *.json).

    ``config``: the study's config (default: the one stored with the study; give it when its networks
    or dataset are Python objects of another process). ``storage``: the URL to record (default: the
    one ``run_study`` used).

        >>> best = sweetspot.export_best(study, confirm=3, out="best-teacher.yaml")  # doctest: +SKIP
        >>> best["teachers"][0]["batch_size"], best["teachers"][0]["epochs"]         # doctest: +SKIP
        (64, 12)
    """
    from sweetspot import assembly
    from sweetspot.service.study import stored_config

    if confirm is not None and confirm < 1:
        raise ConfigError(f"confirm: must be a positive integer, got {confirm!r}")
    url, ran = _runs.get(study, (storage or "unknown", None))
    config = config or ran or stored_config(study)
    made = assembly.export(study, config, storage or url, confirm, device=device, threads=threads)
    if out is not None:
        from sweetspot.core.atomic_files import write_atomically
        from sweetspot.results.export import export_format, render

        with assembly.given("out"):
            write_atomically(Path(out), render(made.document, export_format(str(out), None)))
    return made.document


def load_teacher(
    best: dict[str, Any] | str | Path,
    weights: str | Path | None = None,
    *,
    trial: int | None = None,
    allow_imports: Iterable[str] = (),
    device: str = "auto",
) -> nn.Module:
    """The exported teacher as an ``nn.Module`` in eval mode, taking raw inputs in [0, 1].

    ``best``: an export document (``export_best``'s) or its file. ``weights``: a file `sweetspot
    teacher` wrote; without it the teacher is retrained from its recipe, seeded as its trial was,
    and checked to give the figures the export recorded. ``trial``: another teacher of the export.
    ``allow_imports``: the top-level packages whose import paths the export may name.

        >>> teacher = sweetspot.load_teacher("best-teacher.yaml", "teacher.pt")  # doctest: +SKIP
        >>> teacher(images).argmax(1)                                             # doctest: +SKIP
    """
    from sweetspot import assembly
    from sweetspot.core.trial import prepare
    from sweetspot.results.export_file import check_export, read_export
    from sweetspot.results.teachers import check_figures, figures, pick_teacher, retrain, teacher_from_weights, wrap
    from sweetspot.trusted_imports import allow

    allow(allow_imports)
    document = check_export(best, "best") if isinstance(best, dict) else read_export(best)
    with assembly.given("trial"):
        chosen = pick_teacher(document, trial)
    if weights is not None:
        return teacher_from_weights(chosen, Path(weights))
    splits = prepare(chosen.config, assembly.setup_compute(device, None))
    teacher = retrain(chosen, splits)
    check_figures(figures(teacher, chosen.config, splits, chosen.temperature), chosen.recorded, chosen.trial)
    return wrap(teacher, splits)


class Objective:
    """sweetspot's trial as an Optuna objective, for a study of one's own: suggests the teacher's
    batch size and epochs, trains it and its students, records every metric as a user attribute and
    returns the config's objectives, in order (``directions`` gives theirs, for ``create_study``).

        >>> objective = sweetspot.Objective(sweetspot.StudyConfig())                   # doctest: +SKIP
        >>> study = optuna.create_study(directions=objective.directions)               # doctest: +SKIP
        >>> study.optimize(objective, n_trials=10)                                     # doctest: +SKIP

    ``checkpoints``: a folder where teachers of one path (batch size, seed) are continued instead of
    trained again; ``artifacts``: a folder for each trial's teacher weights. The data are loaded at
    the first trial.
    """

    def __init__(self, config: StudyConfig | None = None, *, device: str = "auto", threads: int | None = None,
                 checkpoints: str | Path | None = None, checkpoint_mb: int = CHECKPOINT_MB,
                 artifacts: str | Path | None = None) -> None:
        from sweetspot.config import named_objects

        self.config = named_objects(StudyConfig() if config is None else config)
        self._settings = (device, threads, checkpoints, checkpoint_mb, artifacts)
        self._objective: Any = None

    @property
    def directions(self) -> list[str]:
        return list(self.config.objectives.values())

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        if self._objective is None:
            self._objective = self._build()
        return self._objective(trial)

    def _build(self) -> Any:
        from sweetspot import assembly
        from sweetspot.core.checkpoints import CheckpointStore
        from sweetspot.core.trial import prepare
        from sweetspot.service.artifacts import open_artifact_store
        from sweetspot.service.objective import Objective as TrialObjective

        device, threads, checkpoints, checkpoint_mb, artifacts = self._settings
        splits = prepare(self.config, assembly.setup_compute(device, threads))
        store = None
        if checkpoints is not None:
            with assembly.given("checkpoints"):
                store = CheckpointStore(Path(checkpoints), checkpoint_mb * 2**20,
                                        horizon=self.config.search.epochs[1])
        with assembly.given("artifacts"):
            kept = open_artifact_store(Path(artifacts)) if artifacts is not None else None
        return TrialObjective(self.config, splits, kept, store)


def _checked(config: StudyConfig, workers: int) -> StudyConfig:
    """``config`` with its Python objects named; refused in one line where other processes need them."""
    from sweetspot.config import named_objects
    from sweetspot.trusted_imports import in_process_only

    if not isinstance(config, StudyConfig):
        raise ConfigError(f"config: must be a sweetspot.StudyConfig (see sweetspot.load_config), got a "
                          f"{type(config).__name__}")
    config = named_objects(config)
    if workers > 1:
        held = [f"{where} ({name.partition(':')[2].rpartition('@')[0]})"
                for where, name in (("data.name", config.data.name), ("teacher.arch", config.teacher.arch),
                                    ("student.arch", config.student.arch)) if in_process_only(name)]
        if held:
            raise ConfigError(f"workers={workers}: worker processes cannot see {', '.join(held)}, a Python object of "
                              "this process; give it as an import path package.module:callable, or run with workers=1")
    return config


def _waiting(study: optuna.Study) -> int:
    from optuna.trial import TrialState

    from sweetspot.service.study import count_states

    return count_states(study.get_trials(deepcopy=False))[TrialState.WAITING]


def _supervise(run: Any, settings: Any, workers: int, total: int, device: str, threads: int, progress: bool,
               log_dir: Path) -> None:
    """``workers`` `sweetspot worker` processes on this study, given its config as a file in ``log_dir``;
    their command line is derived as `sweetspot run --workers N` derives its workers' (``cli.options.worker_argv``)."""
    import argparse

    import yaml

    from sweetspot.cli.options import option_groups, worker_argv
    from sweetspot.errors import SweetspotError
    from sweetspot.service.workers import Launch, supervise

    log_dir.mkdir(parents=True, exist_ok=True)
    config_file = log_dir / f"{run.study.study_name}-config.yaml"
    config_file.write_text(yaml.safe_dump(run.config.to_dict(), sort_keys=False))
    given = {a.dest: a.default for group in option_groups().values() for a in group._actions}
    given.update(config=str(config_file), device=device, artifacts=settings.artifacts,
                 checkpoints=settings.checkpoints, no_share=not settings.share, checkpoint_mb=settings.checkpoint_mb,
                 checkpoint_every=settings.checkpoint_every, keep_weights=settings.keep_weights,
                 heartbeat=settings.heartbeat, grace=settings.grace)
    argv = worker_argv(argparse.Namespace(**given), run.study.study_name)
    gpus = 0
    if device != "cpu":
        import torch

        gpus = torch.cuda.device_count()
    ended = supervise(Launch(workers, argv, run.url, log_dir, run.study.study_name, threads, gpus), run.study,
                      run.storage, total, progress=progress)
    if ended.interrupted:
        raise KeyboardInterrupt
    failures = ended.failures()
    if ended.exit_code(_waiting(run.study) > 0):
        raise SweetspotError(f"workers: {'; '.join(failures)} (see {log_dir}/)")
