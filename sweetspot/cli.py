"""The ``sweetspot`` command: one small function per subcommand, registered in COMMANDS.

Every expected failure is one line on stderr and exit code 2 (``--debug`` shows the traceback).
Importing this module does not import torch or optuna: each command imports what it needs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from sweetspot import __version__
from sweetspot.config import KD_LOSSES
from sweetspot.errors import ConfigError, StorageError, SweetspotError


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error shape: one line, exit 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


@contextmanager
def _given(what: str) -> Iterator[None]:
    """A library error raised in this block is about ``what`` (a flag, argument or variable the user
    gave): the message says so; the error keeps its class, and its cause for --debug."""
    try:
        yield
    except SweetspotError as exc:
        raise type(exc)(f"{what}: {exc}") from exc


def _int_at_least(minimum: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``, else the one-line error naming what is allowed."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "an integer >= 0")


def _setup_compute(args: argparse.Namespace) -> Any:
    """Thread count and device, set deliberately before any tensor work."""
    import torch

    from sweetspot.core.trial import resolve_device

    threads = args.threads or os.environ.get("SWEETSPOT_THREADS")
    if threads:
        try:
            threads = _positive_int(str(threads))
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"SWEETSPOT_THREADS: {exc}") from exc
        torch.set_num_threads(threads)
    with _given("--device"):
        return resolve_device(args.device)


def _with_data_flags(args: argparse.Namespace, config: Any) -> Any:
    """``--data-dir`` and ``--download`` over the config's (they say where the files are, not what
    the study is, so a study accepts them from any machine)."""
    from dataclasses import replace

    if not (args.data_dir or args.download):
        return config
    data = replace(
        config.data, data_dir=args.data_dir or config.data.data_dir, download=args.download or config.data.download
    )
    return replace(config, data=data)


def _classes(text: str) -> tuple[int, ...]:
    """``--withheld 3,5,8`` (or ``none``)."""
    if text.strip().lower() == "none":
        return ()
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"must be class numbers separated by commas, or none; got {text!r}") from exc


_classes.render = lambda value: ",".join(map(str, value)) or "none"  # type: ignore[attr-defined]  # for worker_argv


def _temperatures(text: str) -> tuple[float, ...]:
    """``--temperatures 3,9,20``: positive and finite; a whole number is kept as an int (T=9, not 9.0)."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or not all(0 < t < float("inf") for t in values):
        raise argparse.ArgumentTypeError(f"must be positive temperatures separated by commas; got {text!r}")
    return tuple(int(t) if t.is_integer() else t for t in values)


def _with_transfer_flags(args: argparse.Namespace, config: Any, *, study: bool = True) -> Any:
    """``--withheld`` and ``--examples-per-class`` over the config's distill section, checked as
    the config is (they change the experiment, so a study made without them refuses them).
    ``study=False`` (experiments, which have no objectives): withholding nothing is allowed even
    where the study's objectives need a withheld class."""
    from dataclasses import replace

    from sweetspot.config import config_from_dict

    changes = {}
    if args.withheld is not None:
        changes["withheld_classes"] = list(args.withheld)
    if args.examples_per_class is not None:
        changes["examples_per_class"] = args.examples_per_class
    if args.loss is not None:
        changes["loss"] = args.loss
    if not changes:
        return config
    raw = config.to_dict()
    raw["distill"].update(changes)
    if not study and not raw["distill"]["withheld_classes"]:
        raw["objectives"] = {k: v for k, v in raw["objectives"].items() if k != "student_withheld_acc"} or {
            "student_val_acc": "maximize"
        }
    checked = config_from_dict(raw, source="command line")
    return replace(config, distill=checked.distill)


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the progress bar and our lines say it


def _cell(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else ("-" if v is None else str(v))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 0) -> str:
    """Columns padded to their widest cell; the first ``left`` columns left-aligned (names), the
    rest right-aligned (numbers)."""
    cells = [list(header)] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *map(line, cells[1:])])


def _flat(record: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """One (name, value) row per number: nested dicts as dotted names (``time_s.teacher``), a list
    of dicts (an epoch curve) as one row per element, its fields side by side."""
    rows: list[tuple[str, Any]] = []
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += _flat(value, f"{name}.")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                shown = " ".join(f"{k}={_cell(v)}" for k, v in item.items()) if isinstance(item, dict) else item
                rows.append((f"{name}[{i}]", shown))
        else:
            rows.append((name, value))
    return rows


def front_table(study: Any, limit: int = 10) -> str:
    """The best trials (the ordered Pareto front), one row each, the chosen one marked *."""
    from sweetspot.results.export import ordered_front
    from sweetspot.service.study import metric_names

    names = metric_names(study)
    shown = ("teacher_val_acc", "student_val_acc", "label_student_val_acc", "kd_gain")
    extra = [k for k in shown if k not in names]  # each column once
    rows = []
    for rank, t in enumerate(ordered_front(study)[:limit]):
        rows.append(
            [
                "*" if rank == 0 else "",
                t.number,
                t.params["batch_size"],
                t.params["epochs"],
                *t.values,
                *(t.user_attrs.get(k) for k in extra),
            ]
        )
    return _table(["", "trial", "batch", "epochs", *names, *extra], rows)


def baselines_table(study: Any, reference: dict[str, Any] | None) -> str:
    """The best trial beside the reference teacher and the labels-only student (``export.beside_baselines``)."""
    from sweetspot.results.export import BASELINE_COLUMNS, beside_baselines, show_figure

    rows = beside_baselines(study, reference)
    return _table(["", *BASELINE_COLUMNS], [[r["name"], *(show_figure(*r["figures"].get(m, (None, None)))
                                                            for m in BASELINE_COLUMNS)] for r in rows], left=1)


def _heartbeat(args: argparse.Namespace) -> Any:
    from sweetspot.service.study import Heartbeat

    return Heartbeat(interval=args.heartbeat, grace=args.grace)


def _storage(args: argparse.Namespace, **kwargs: Any) -> tuple[Any, str]:
    """The storage ``--storage`` (or its default) names, and its URL."""
    from sweetspot.service.study import open_storage, resolve_storage_url

    url = resolve_storage_url(args.storage)
    with _given("--storage"):
        return open_storage(url, **kwargs), url


def _load(args: argparse.Namespace, storage: Any) -> tuple[Any, Any]:
    """The existing study ``--study`` names (or the storage's only one) and its config."""
    from sweetspot.service.study import load_study

    _quiet_optuna()
    with _given("--study"):
        return load_study(storage, args.study)


def _open(args: argparse.Namespace, config: Any) -> tuple[Any, Any, Any, str]:
    """Check the storage URL, validate and load what trials need, make the objective (its artifact
    and checkpoint folders), then open the storage and open (or create) the study: in this order, so
    that bad input is refused before anything is written to the storage, and a URL that is refused
    (mistyped, unreachable) leaves none of the folders made for it. Returns (study, storage,
    objective, URL)."""
    from sweetspot.core.atomic_files import folders_undone_on_error
    from sweetspot.core.checkpoints import checkpoint_dir
    from sweetspot.core.trial import prepare
    from sweetspot.service.artifacts import artifact_dir
    from sweetspot.service.study import check_storage_url, open_study, provenance, resolve_storage_url

    url = resolve_storage_url(args.storage)
    with _given("--storage"):
        check_storage_url(url)
    splits = prepare(config, _setup_compute(args))
    artifacts = artifact_dir(url, args.artifacts)
    with folders_undone_on_error(artifacts, checkpoint_dir(artifacts, args.checkpoints)):
        objective = _objective(args, config, splits, url)
        storage, url = _storage(args, heartbeat=_heartbeat(args))
        _quiet_optuna()
        with _given("--study"):
            study = open_study(storage, args.study or config.name, config, provenance(config, splits.digest))
    return study, storage, objective, url


def _artifacts(args: argparse.Namespace, url: str) -> Any:
    """The artifact store of this storage (see sweetspot/service/artifacts.py), created if missing."""
    from sweetspot.service.artifacts import artifact_dir, open_artifact_store

    with _given("--artifacts"):
        return open_artifact_store(artifact_dir(url, args.artifacts))


def _objective(args: argparse.Namespace, config: Any, splits: Any, url: str) -> Any:
    """A worker's objective with the study's artifact store and, unless --no-share, the shared
    store of teacher checkpoints (see sweetspot/core/checkpoints.py), by default inside the artifact folder."""
    from sweetspot.core.checkpoints import CheckpointStore, checkpoint_dir
    from sweetspot.service.artifacts import artifact_dir
    from sweetspot.service.objective import Objective

    artifacts = _artifacts(args, url)  # first: the checkpoint folder is inside it by default
    checkpoints = None
    if not args.no_share:
        with _given("--checkpoints"):
            folder = checkpoint_dir(artifact_dir(url, args.artifacts), args.checkpoints)
            checkpoints = CheckpointStore(folder, args.checkpoint_mb * 2**20, args.checkpoint_every,
                                          horizon=config.search.epochs[1])
    return Objective(config, splits, artifacts, checkpoints)


def _weights_kept(args: argparse.Namespace, objective: Any) -> Any:
    """The after-trial step that deletes the teacher weights of trials outside the best
    ``--keep-weights`` (see sweetspot/results/retention.py)."""
    from sweetspot.results.retention import keep_best_weights

    def after_trial(study: Any, trial: Any) -> None:
        keep_best_weights(study, objective.artifacts, args.keep_weights)

    return after_trial


def _later(args: argparse.Namespace, words: list[str], config: Any | None = None) -> str:
    """A later command on this run's study (``words``), as it must be typed to work: with the
    storage this run was given (unless it came from $SWEETSPOT_STORAGE, which every command reads).
    With ``config``, for a command that reads the study's stored config (export): also the data
    folder and an --allow-import for each package of the config's import paths, whose modules import
    from the config's folder (PYTHONPATH names it when it is not the working directory). A password
    in the URL is never printed: it shows as ***, to be put back."""
    import shlex

    from sweetspot.service.study import mask_url
    from sweetspot.trusted_imports import packages_to_allow

    words = list(words)
    if args.storage:
        words += ["--storage", mask_url(args.storage)]
    prefix = ""
    if config is not None:
        if args.data_dir:
            words += ["--data-dir", args.data_dir]
        packages = packages_to_allow((config.teacher.arch, config.student.arch, config.data.name))
        for package in packages:
            words += ["--allow-import", package]
        if packages and args.config and Path(args.config).resolve().parent != Path.cwd().resolve():
            prefix = f"PYTHONPATH={shlex.quote(str(Path(args.config).parent))} "
    hidden = args.storage and mask_url(args.storage) != args.storage
    return prefix + shlex.join(words) + (" (with the storage password in place of ***)" if hidden else "")


def _summary(study: Any, url: str, hint: str | None = None, failures: Sequence[str] = (),
             reference: dict[str, Any] | None = None) -> None:
    """The study's counts, the workers that did not end cleanly, its best trials beside the
    baselines, and what to do next."""
    from optuna.trial import TrialState

    from sweetspot.service.retry import with_retries
    from sweetspot.service.study import count_states, mask_url

    counts = count_states(with_retries(study.get_trials, deepcopy=False))
    done = counts[TrialState.COMPLETE]
    print(
        f"\nstudy {study.study_name!r} in {mask_url(url)}: {done} finished of {sum(counts.values())} trials"
        + (f", {counts[TrialState.WAITING]} still queued" if counts[TrialState.WAITING] else "")
        + (f", {counts[TrialState.RUNNING]} left running" if counts[TrialState.RUNNING] else "")
        + "".join(f"; {failure}" for failure in failures)
    )
    if done:
        print(f"best trials (Pareto front, best first):\n{with_retries(front_table, study)}")
        print("\nthe best trial beside the baselines (validation split; ± sd over teacher seeds):\n"
              f"{with_retries(baselines_table, study, reference)}")
        if hint:
            print(f"\nnext: {hint}")


def cmd_run(args: argparse.Namespace) -> int:
    from optuna.trial import TrialState

    from sweetspot.config import load_config
    from sweetspot.service.retry import with_retries
    from sweetspot.service.study import count_states, queue_trials
    from sweetspot.service.workers import Launch, drain_with_progress, supervise, threads_per_worker

    config = _with_transfer_flags(args, _with_data_flags(args, load_config(args.config)))
    if args.workers > 1 and args.threads is None:
        args.threads = threads_per_worker(args.workers)
    study, storage, objective, url = _open(args, config)
    # queued by an earlier, interrupted run
    left = count_states(with_retries(study.get_trials, deepcopy=False))[TrialState.WAITING]
    n = args.trials or config.n_trials
    queue_trials(study, n)
    total = n + left
    if args.workers == 0:
        worker = _later(args, ["sweetspot", "worker", *worker_argv(args, study.study_name)])
        print(f"queued {n} trials in study {study.study_name!r} ({total} waiting); start workers with: {worker}")
        return 0
    hint = _later(args, ["sweetspot", "export", "--study", study.study_name, "--out", "best-teacher.yaml"], config)
    if args.workers == 1:
        drain_with_progress(study, objective, total, progress=not args.no_progress,
                            after_trial=_weights_kept(args, objective))
    else:
        import torch

        gpus = torch.cuda.device_count() if args.device != "cpu" else 0
        launch = Launch(
            args.workers,
            worker_argv(args, study.study_name),
            url,
            Path(args.log_dir),
            study.study_name,
            args.threads,
            gpus,
        )
        ended = supervise(launch, study, storage, total, progress=not args.no_progress)
        if ended.interrupted:
            raise KeyboardInterrupt
        reference = _reference(study, config, objective)
        counts = count_states(with_retries(study.get_trials, deepcopy=False))
        short = counts[TrialState.WAITING] + counts[TrialState.RUNNING] > 0
        code, failures = ended.exit_code(short), ended.failures()
        for failure in failures:
            level = "error" if code else "warning"
            after = "" if code else "; the other workers finished the study"
            print(f"sweetspot run: {level}: {failure}{after} (see {args.log_dir}/)", file=sys.stderr)
        _summary(study, url, hint, failures, reference)
        return code
    _summary(study, url, hint, reference=_reference(study, config, objective))
    return 0


def _reference(study: Any, config: Any, objective: Any) -> dict[str, Any] | None:
    """The study's reference teacher, trained here the first time (``study.ensure_reference``)."""
    from sweetspot.config import trains_students
    from sweetspot.service.study import REFERENCE_ATTR, ensure_reference, user_attrs

    if config.reference.batch_size is not None and REFERENCE_ATTR not in user_attrs(study):
        students = "with its students" if trains_students(config) else "without students (no objective needs one)"
        print(f"training the reference teacher: batch {config.reference.batch_size}, stopped at its best validation "
              f"accuracy (patience {config.reference.patience}), {students}; once per study", flush=True)
    return ensure_reference(study, config, objective.splits, objective.checkpoints)


def cmd_worker(args: argparse.Namespace) -> int:
    import time

    from optuna.trial import TrialState

    from sweetspot.config import load_config
    from sweetspot.service.retry import with_retries
    from sweetspot.service.study import count_states, worker_id
    from sweetspot.service.workers import drain_with_progress, watch_supervisor

    watch_supervisor()
    config = _with_transfer_flags(args, _with_data_flags(args, load_config(args.config)))
    study, _, objective, url = _open(args, config)
    queued = count_states(with_retries(study.get_trials, deepcopy=False))[TrialState.WAITING]
    deadline = time.monotonic() + args.wait_for_queue
    while not queued and time.monotonic() < deadline:  # the step that queues may not have run yet
        time.sleep(2)
        queued = count_states(with_retries(study.get_trials, deepcopy=False))[TrialState.WAITING]
    total = min(queued, args.trials) if args.trials else queued
    ran = drain_with_progress(
        study,
        objective,
        total,
        progress=not args.no_progress,
        max_trials=args.trials,
        after_trial=_weights_kept(args, objective),
    )
    print(
        f"worker {worker_id()}: ran {ran} trials of study {study.study_name!r}"
        + ("" if ran or queued else "; nothing was queued (queue trials with: sweetspot run --workers 0 --trials N)")
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from sweetspot.core.atomic_files import write_atomically
    from sweetspot.core.trial import prepare
    from sweetspot.results.export import build_export, confirm, export_format, front_or_fail, render, score_on_test
    from sweetspot.service.study import ensure_reference, mask_url

    with _given("--format"):
        fmt = export_format(args.out, args.format)
    storage, url = _storage(args, must_exist=True)
    study, config = _load(args, storage)
    config = _with_data_flags(args, config)
    front = front_or_fail(study)
    splits = prepare(config, _setup_compute(args))
    confirmed = confirm(config, splits, front, args.confirm) if args.confirm else None
    reference = ensure_reference(study, config, splits)
    document = build_export(study, config, mask_url(url), score_on_test(config, splits, front), confirmed, reference)
    text = render(document, fmt)
    if args.out:
        with _given("--out"):
            write_atomically(Path(args.out), text)
        best = document["teachers"][0]
        first = next(iter(config.objectives))
        mean = f"; mean {first} over {args.confirm} teacher seeds {_fmt(best['confirmed']['mean'][first])} " \
               f"(sd {_fmt(best['confirmed']['sd'][first])})" if confirmed else ""
        shown = first if first in best["test"] else "student_acc"
        print(
            f"wrote {len(front)} teacher(s) of study {study.study_name!r} to {args.out}; best: trial "
            f"{best['trial']} (batch {best['batch_size']}, {best['epochs']} epochs), test {shown} "
            f"{_fmt(best['test'][shown])}{mean}"
        )
        print(f"beside the baselines (validation split):\n{baselines_table(study, reference)}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_trial(args: argparse.Namespace) -> int:
    from sweetspot.config import load_config
    from sweetspot.core.trial import TeacherParams, prepare, run_trial

    config = _with_transfer_flags(args, _with_data_flags(args, load_config(args.config)))
    splits = prepare(config, _setup_compute(args))
    seed = config.seed if args.seed is None else args.seed
    outcome = run_trial(config, splits, TeacherParams(args.batch_size, args.epochs), seed, split=args.split)
    def on_split(metrics: dict[str, Any]) -> dict[str, Any]:
        """run_trial names its figures *_val_*; say which split they are on."""
        return {k.replace("_val_", f"_{args.split}_"): v for k, v in metrics.items()}

    scores = on_split(outcome.metrics)
    seeded = scores.pop("teacher_seeds", None)  # only with several teacher seeds
    if seeded:
        scores["teacher_seeds"] = {"seeds": seeded["seeds"], "values": on_split(seeded["values"]),
                                   "sd": on_split(seeded["sd"])}
    record = {"batch_size": args.batch_size, "epochs": args.epochs, "seed": seed, "split": args.split, **scores}
    if args.format == "json":
        print(json.dumps(record, indent=2))
    else:
        print(_table(["metric", "value"], _flat(record), left=1))
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from sweetspot.config import load_config
    from sweetspot.core.checkpoints import CheckpointStore
    from sweetspot.core.trial import prepare
    from sweetspot.experiments import EXPERIMENTS, Setup, parse_teacher, teacher_from_export
    from sweetspot.results.export_file import read_export

    experiment = EXPERIMENTS[args.name]
    if args.classes is not None and not experiment.takes_classes:
        raise ConfigError(f"--classes: only missing-class and penultimate take it, not {args.name}")
    if args.temperatures is not None and not experiment.takes_temperatures:
        raise ConfigError(f"--temperatures: only missing-class takes it, not {args.name}")
    config = _with_transfer_flags(args, _with_data_flags(args, load_config(args.config)), study=False)
    with _given("--teacher"):
        teachers = [parse_teacher(t) for t in args.teacher or []]
    if args.export:
        with _given("--export"):  # first: the curves of entropy-vs-temperature follow it
            teachers.insert(0, teacher_from_export(read_export(args.export), config.data.name))
    if not teachers:
        raise ConfigError(
            "--teacher or --export: name at least one teacher (e.g. --teacher small=64:5 --teacher large=16:100)"
        )
    if len({t.label for t in teachers}) < len(teachers):
        raise ConfigError("--teacher: two teachers have the same label; give each its own (LABEL=...)")
    splits = prepare(config, _setup_compute(args))
    if args.classes is not None and (not args.classes or not all(0 <= k < splits.n_classes for k in args.classes)):
        raise ConfigError(
            f"--classes: {','.join(map(str, args.classes)) or 'none'} is not a list of classes "
            f"0 to {splits.n_classes - 1}"
        )
    checkpoints = None
    if args.checkpoints:
        with _given("--checkpoints"):
            checkpoints = CheckpointStore(Path(args.checkpoints), args.checkpoint_mb * 2**20)
    setup = Setup(config, splits, tuple(teachers), args.split, args.classes, args.teacher_seeds, checkpoints,
                  temperatures=args.temperatures)
    with _given("--classes"):
        work = experiment.work(setup)  # checks what an experiment needs of its classes
    with tqdm(total=work, unit="step", disable=args.no_progress) as bar:
        paths = experiment.run(setup, Path(args.out), lambda: bar.update(1))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    import socket

    from optuna_dashboard import run_server

    from sweetspot.service.study import mask_url, study_names

    storage, url = _storage(args, must_exist=True)
    names = study_names(storage)
    if not names:
        raise ConfigError(f"--storage: {mask_url(url)} holds no study yet; make one with: sweetspot run")
    store = _artifacts(args, url)
    with socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET) as probe:
        try:
            probe.bind((args.host, args.port))
        except OSError as exc:
            raise ConfigError(
                f"--host/--port: cannot listen on {args.host}:{args.port} ({exc.strerror}); choose another --port"
            ) from exc
    if args.host not in LOCAL_HOSTS:
        print(
            "warning: optuna-dashboard has no authentication; "
            f"anyone who can reach {args.host}:{args.port} can read and "
            "change these studies",
            file=sys.stderr,
        )
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"optuna-dashboard for {mask_url(url)} ({len(names)} studies: {', '.join(names)})\n"
        f"open http://{shown}:{args.port}/ "
        "(Ctrl-C stops it)",
        flush=True,
    )
    _quiet_optuna()
    run_server(storage, host=args.host, port=args.port, artifact_store=store)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from sweetspot.results.report import write_report
    from sweetspot.service.study import mask_url

    storage, url = _storage(args, must_exist=True)
    study, config = _load(args, storage)
    paths = write_report(study, config, Path(args.out), mask_url(url))
    print(
        f"wrote the report of study {study.study_name!r}: {paths[-1]} "
        f"(figures: {', '.join(p.name for p in paths[:-1])})"
    )
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    from sweetspot.results.backup import copy_study
    from sweetspot.service.artifacts import artifact_dir
    from sweetspot.service.study import load_study, mask_url, open_storage

    _quiet_optuna()
    with _given("--from"):
        source = open_storage(args.source, must_exist=True)
    with _given("--study"):
        study, _ = load_study(source, args.study)  # a sweetspot study, or the storage's only one
    with _given("--to"):
        target = open_storage(args.target)
    name = args.to_study or study.study_name
    folders = (artifact_dir(args.source, args.artifacts), artifact_dir(args.target, args.to_artifacts))
    with _given("--to-study"):
        copied = copy_study(source, study.study_name, target, name, folders)
    print(
        f"copied study {study.study_name!r} to {name!r} in {mask_url(args.target)}: {copied.trials} trials, "
        f"{copied.notes} trial notes, {copied.artifacts} artifact files"
        + (f" into {folders[1]}/" if copied.artifacts else "")
        + (f" ({copied.retired} teacher weights were retired by --keep-weights before, and are retrained by "
           "`sweetspot teacher` when asked for)" if copied.retired else "")
    )
    if copied.running:
        print(f"note: {copied.running} trials were RUNNING in the source and are RUNNING in the copy", file=sys.stderr)
    return 0


def cmd_storage_proxy(args: argparse.Namespace) -> int:
    import signal
    import threading

    from sweetspot.service.proxy import serve
    from sweetspot.service.study import mask_url, resolve_storage_url

    url = resolve_storage_url(args.storage)
    if url.startswith("grpc://"):
        raise StorageError("--storage: a storage proxy serves a database, not another proxy")
    storage, url = _storage(args, heartbeat=_heartbeat(args))
    _quiet_optuna()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    print(f"serving {mask_url(url)} at grpc://{args.host}:{args.port} (workers: --storage grpc://{args.host}:"
          f"{args.port}); Ctrl-C stops", flush=True)
    try:
        serve(storage, args.host, args.port, stop)
    except OSError as exc:
        raise StorageError(f"--host/--port: {exc}") from exc
    return 0


def cmd_teacher(args: argparse.Namespace) -> int:
    from sweetspot.core.trial import prepare
    from sweetspot.results.export_file import read_export
    from sweetspot.results.teachers import check_figures, figures, pick_teacher, retrain, save_weights, wrap
    from sweetspot.service.artifacts import fetch_teacher_weights, load_weights

    with _given("FILE"):
        document = read_export(args.file)
    with _given("--trial"):
        chosen = pick_teacher(document, args.trial)
    config = _with_data_flags(args, chosen.config)
    splits = prepare(config, _setup_compute(args))
    out = Path(args.out or f"teacher-trial{chosen.trial}.pt")
    teacher, source = None, "retrained from its recipe"
    if args.storage or os.environ.get("SWEETSPOT_STORAGE"):  # the study's own weights, when its store has them
        from sweetspot.core.models import build_model

        storage, url = _storage(args, must_exist=True)
        args.study = args.study or document.get("study")
        study, _ = _load(args, storage)
        frozen = next((t for t in study.get_trials(deepcopy=False) if t.number == chosen.trial), None)
        fetched = None
        if frozen is not None:
            fetched = fetch_teacher_weights(
                _artifacts(args, url), storage, frozen, out.with_name(f".{out.name}.download")
            )
        if fetched is not None:
            teacher = build_model(chosen.net, splits.input_shape, splits.n_classes).to(splits.x_train.device)
            teacher.load_state_dict(load_weights(fetched))
            fetched.unlink()
            source = "fetched from the artifact store"
    if teacher is None:
        teacher = retrain(chosen, splits)
    found = figures(teacher, config, splits, chosen.temperature)
    check_figures(found, chosen.recorded, chosen.trial)
    with _given("--out"):
        save_weights(wrap(teacher, splits), out)
    print(
        f"wrote trial {chosen.trial}'s teacher ({source}; validation accuracy {found['teacher_val_acc']:.4f}, "
        f"entropy at T={chosen.temperature:g} {found['teacher_entropy']:.4f}, as the export records) to {out}"
    )
    return 0


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


# `sweetspot experiment` names (the keys of sweetspot.experiments.EXPERIMENTS, which imports torch)
EXPERIMENT_NAMES = ("entropy-vs-temperature", "missing-class", "examples-per-class", "penultimate", "kd-vs-ls")

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "worker": cmd_worker,
    "export": cmd_export,
    "trial": cmd_trial,
    "experiment": cmd_experiment,
    "dashboard": cmd_dashboard,
    "report": cmd_report,
    "teacher": cmd_teacher,
    "copy": cmd_copy,
    "storage-proxy": cmd_storage_proxy,
}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _option_groups() -> dict[str, argparse.ArgumentParser]:
    """The option groups commands share, as argparse parents: storage, compute, transfer, worker, common."""
    storage = _Parser(add_help=False)
    storage.add_argument(
        "--storage", metavar="URL", help="Optuna storage URL (default: $SWEETSPOT_STORAGE, else sqlite:///sweetspot.db)"
    )
    storage.add_argument(
        "--study",
        metavar="NAME",
        help="study name (run: default the config's name; export: default the storage's only study)",
    )
    storage.add_argument(
        "--artifacts",
        metavar="DIR",
        help="artifact store folder (default: $SWEETSPOT_ARTIFACTS, "
        "else beside an SQLite file: NAME-artifacts/, else ./sweetspot-artifacts)",
    )
    compute = _Parser(add_help=False)
    compute.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    compute.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where the dataset files are (default: the config's "
        "data.data_dir, else $SWEETSPOT_DATA, else ~/.cache/sweetspot)",
    )
    compute.add_argument("--download", action="store_true", help="let torchvision download a missing dataset")
    compute.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        help="torch CPU threads (default: $SWEETSPOT_THREADS, else all cores; run --workers N: cores / N)",
    )
    transfer = _Parser(add_help=False)
    transfer.add_argument(
        "--withheld",
        type=_classes,
        metavar="K,K",
        help="classes withheld from the transfer set (default: the config's; none for none)",
    )
    transfer.add_argument(
        "--examples-per-class",
        type=_positive_int,
        metavar="N",
        help="keep N transfer examples per class (default: the config's)",
    )
    transfer.add_argument(
        "--loss",
        choices=KD_LOSSES,
        help="distillation loss convention: hinton (a T^2 KL) or paper (Eq. 4 as printed) (default: the config's)",
    )
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    common.add_argument(
        "--allow-import",
        action="append",
        metavar="PKG",
        help="follow import paths (package.module:callable) of this top-level package wherever they come from, "
        "e.g. a study's stored config (repeatable; also $SWEETSPOT_IMPORTS, comma-separated)",
    )
    workers = _Parser(add_help=False)
    workers.add_argument(
        "config", nargs="?", help="study config YAML (default: the built-in digits study = studies/digits.yaml)"
    )
    workers.add_argument("--no-progress", action="store_true", help="no progress bar")
    workers.add_argument(
        "--heartbeat",
        type=_positive_int,
        default=10,
        metavar="S",
        help="seconds between a running trial's heartbeats (default: 10)",
    )
    workers.add_argument(
        "--grace",
        type=_positive_int,
        default=60,
        metavar="S",
        help="seconds without a heartbeat after which a trial is failed and queued again (default: 60)",
    )
    workers.add_argument(
        "--no-share",
        action="store_true",
        help="train every teacher from scratch (default: continue the longest stored checkpoint of its path)",
    )
    workers.add_argument(
        "--checkpoints",
        metavar="DIR",
        help="teacher checkpoint folder (default: $SWEETSPOT_CHECKPOINTS, else checkpoints/ in the artifact folder)",
    )
    workers.add_argument(
        "--checkpoint-mb",
        type=_positive_int,
        default=48,
        metavar="MB",
        help="size bound of the checkpoint folder; those that serve the fewest future trials go first, then the "
        "least recently used (default: 48, three checkpoints of the default 6 x 512 teacher)",
    )
    workers.add_argument(
        "--keep-weights",
        type=_non_negative_int,
        default=10,
        metavar="K",
        help="keep teacher weights for the best K trials only; the others' are deleted and retrained from "
        "their recipe when asked for (default: 10)",
    )
    workers.add_argument(
        "--checkpoint-every",
        type=_non_negative_int,
        default=0,
        metavar="K",
        help="also store every K-th epoch of a teacher, for shorter trials of its path (default: 0, "
        "only where trials stop)",
    )
    return {"storage": storage, "compute": compute, "workers": workers, "transfer": transfer, "common": common}


# What `sweetspot run --workers N` passes to its workers: every option `run` shares with `worker`, as
# given, except what the supervisor sets itself (the storage goes through the environment, never on a
# command line; threads and the progress bar per worker; the study by its resolved name).
WORKER_GROUPS = ("storage", "compute", "workers", "transfer", "common")
SET_BY_SUPERVISOR = ("storage", "study", "threads", "no_progress")


def worker_argv(args: argparse.Namespace, study_name: str) -> list[str]:
    """The `sweetspot worker` arguments that reproduce ``args`` (a parsed `sweetspot run`): derived
    from the parser, so that an option added to a shared group reaches the workers by itself."""
    groups = _option_groups()
    positional: list[str] = []
    options: list[str] = ["--study", study_name]
    for group in WORKER_GROUPS:
        for action in groups[group]._actions:
            value = getattr(args, action.dest, action.default)
            if action.dest in SET_BY_SUPERVISOR or value == action.default:
                continue
            if not action.option_strings:
                positional.append(str(value))
            elif action.nargs == 0:  # a switch (store_true)
                options.append(action.option_strings[0])
            elif isinstance(value, list):  # a repeatable option (action="append"): once per value
                for item in value:
                    options += [action.option_strings[0], getattr(action.type, "render", str)(item)]
            else:
                options += [action.option_strings[0], getattr(action.type, "render", str)(value)]
    return positional + options


def build_parser() -> argparse.ArgumentParser:
    groups = _option_groups()
    storage, compute, workers, transfer, common = (groups[k] for k in WORKER_GROUPS)

    parser = _Parser(
        prog="sweetspot", description="Find the teacher batch size and epochs whose soft labels distil best."
    )
    parser.add_argument("--version", action="version", version=f"sweetspot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser(
        "run",
        parents=[storage, compute, workers, transfer, common],
        help="queue trials and run them (create or continue a study)",
    )
    run.add_argument(
        "--trials",
        type=_positive_int,
        metavar="N",
        help="trials to add to the study, across all workers (default: the config's n_trials)",
    )
    run.add_argument(
        "--workers",
        type=_non_negative_int,
        default=1,
        metavar="N",
        help="worker processes on this machine (default: 1, in this process; 0: only queue the trials)",
    )
    run.add_argument(
        "--log-dir",
        default="sweetspot-logs",
        metavar="DIR",
        help="per-worker log files when --workers > 1 (default: sweetspot-logs)",
    )

    worker = sub.add_parser(
        "worker",
        parents=[storage, compute, workers, transfer, common],
        help="run queued trials of a study until none is left",
    )
    worker.add_argument(
        "--trials",
        type=_positive_int,
        metavar="N",
        help="stop after N trials of this worker (default: until the queue is empty)",
    )
    worker.add_argument(
        "--wait-for-queue",
        type=_non_negative_int,
        default=0,
        metavar="S",
        help="if nothing is queued yet, wait up to S seconds for queued trials (default: 0)",
    )

    export = sub.add_parser(
        "export", parents=[storage, compute, common], help="write the best teacher configuration(s)"
    )
    export.add_argument("--out", metavar="FILE", help="output file (default: standard output)")
    export.add_argument("--format", help="yaml | json (default: from --out's suffix, else yaml)")
    export.add_argument("--confirm", type=_positive_int, metavar="N",
                        help="retrain each Pareto teacher with N teacher seeds and rank them by the means "
                        "(default: off)")

    trial = sub.add_parser(
        "trial", parents=[compute, transfer, common], help="run one trial outside any study and print its metrics"
    )
    trial.add_argument("config", nargs="?", help="study config YAML (default: the built-in digits study)")
    trial.add_argument("--batch-size", type=_positive_int, required=True, help="teacher batch size")
    trial.add_argument("--epochs", type=_positive_int, required=True, help="teacher epochs")
    trial.add_argument("--seed", type=int, help="trial seed (default: the config's seed)")
    trial.add_argument("--split", choices=("val", "test"), default="val", help="split to score on (default: val)")
    trial.add_argument("--format", choices=("table", "json"), default="table")
    experiment = sub.add_parser(
        "experiment", parents=[compute, transfer, common], help="run one of the paper's experiments"
    )
    experiment.add_argument("name", choices=EXPERIMENT_NAMES, help="the experiment: " + ", ".join(EXPERIMENT_NAMES))
    experiment.add_argument("config", nargs="?", help="study config YAML (default: the built-in digits study)")
    experiment.add_argument(
        "--teacher",
        action="append",
        metavar="[LABEL=][ARCH:]BATCH:EPOCHS",
        help="a teacher to train (repeatable), e.g. large=mlp:16:100",
    )
    experiment.add_argument(
        "--export", metavar="FILE", help="also the best teacher of a `sweetspot export` file (it comes first)"
    )
    experiment.add_argument("--out", default="results", metavar="DIR", help="output folder (default: results)")
    experiment.add_argument(
        "--split", choices=("val", "test"), default="val", help="split the students are scored on (default: val)"
    )
    experiment.add_argument(
        "--classes",
        type=_classes,
        metavar="K,K",
        help="missing-class: the classes to leave out in turn (default: all); "
        "penultimate: its three classes (default: 0,1,2)",
    )
    experiment.add_argument(
        "--temperatures",
        type=_temperatures,
        metavar="T,T",
        help="missing-class: the temperatures to distil at (default: 3,6,9,12,15,20, the paper's)",
    )
    experiment.add_argument(
        "--teacher-seeds",
        type=_positive_int,
        default=1,
        metavar="N",
        help="train every teacher with N seeds and report mean ± sd over them (default: 1)",
    )
    experiment.add_argument(
        "--checkpoints",
        metavar="DIR",
        help="keep trained teachers here and reuse them in later experiments (or a study's checkpoint folder, "
        "to reuse its trials' teachers); default: train every teacher afresh, keep none",
    )
    experiment.add_argument(
        "--checkpoint-mb",
        type=_positive_int,
        default=2048,
        metavar="MB",
        help="size bound of the --checkpoints folder; least recently used files go first (default: 2048)",
    )
    experiment.add_argument("--no-progress", action="store_true", help="no progress bar")

    dashboard = sub.add_parser("dashboard", parents=[storage, common], help="browse the studies in optuna-dashboard")
    dashboard.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1; optuna-dashboard has no "
        "authentication, so 0.0.0.0 only on a trusted network)",
    )
    dashboard.add_argument("--port", type=_positive_int, default=8080, help="port (default: 8080)")

    report = sub.add_parser("report", parents=[storage, common], help="write a study's figures and an HTML report")
    report.add_argument("--out", default="report", metavar="DIR", help="output folder (default: report)")

    teacher = sub.add_parser(
        "teacher", parents=[storage, compute, common], help="write the weights of an exported teacher"
    )
    teacher.add_argument("file", metavar="FILE", help="a `sweetspot export` file")
    teacher.add_argument(
        "--trial", type=_non_negative_int, metavar="N", help="the teacher of trial N (default: the best)"
    )
    teacher.add_argument("--out", metavar="FILE", help="weights file (default: teacher-trialN.pt)")

    copy = sub.add_parser(
        "copy", parents=[common], help="copy a study to another storage (a backup, or one SQLite file to share)"
    )
    copy.add_argument("--from", dest="source", required=True, metavar="URL", help="the storage the study is in")
    copy.add_argument("--to", dest="target", required=True, metavar="URL", help="the storage to copy it into")
    copy.add_argument("--study", metavar="NAME", help="the study to copy (default: the source's only study)")
    copy.add_argument("--to-study", metavar="NAME", help="its name in the destination (default: the same)")
    copy.add_argument(
        "--artifacts", metavar="DIR", help="the source's artifact folder (default: as for --storage URL of `run`)"
    )
    copy.add_argument("--to-artifacts", metavar="DIR", help="the destination's artifact folder (default: likewise)")

    proxy = sub.add_parser(
        "storage-proxy", parents=[common],
        help="serve a storage to many workers over gRPC (Optuna's storage proxy); workers use --storage grpc://HOST:PORT",
    )
    proxy.add_argument(
        "--storage", metavar="URL", help="the database to serve (default: $SWEETSPOT_STORAGE, else sqlite:///sweetspot.db)"
    )
    proxy.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1; no authentication: 0.0.0.0 only on a trusted network)",
    )
    proxy.add_argument("--port", type=_positive_int, default=13000, help="port (default: 13000)")
    proxy.add_argument("--heartbeat", type=_positive_int, default=10, metavar="S",
                       help="how often its workers beat, and it checks for stale trials (default: 10)")
    proxy.add_argument("--grace", type=_positive_int, default=60, metavar="S",
                       help="a trial silent this long is failed and queued again (default: 60)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.allow_import:
            from sweetspot.trusted_imports import allow

            allow(args.allow_import)
        return COMMANDS[args.command](args)
    except SweetspotError as exc:
        if args.debug:
            raise
        print(f"sweetspot {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sweetspot {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        unreachable = _storage_failure(exc)
        if args.debug or unreachable is None:
            raise
        print(f"sweetspot {args.command}: error: {unreachable}", file=sys.stderr)
        return 2


def _storage_failure(exc: Exception) -> str | None:
    """The one line for a storage error that outlasted the retry policy (a database down for good
    while a command ran), else None: any other exception is a bug and keeps its traceback."""
    if "sweetspot.service.retry" not in sys.modules:  # nothing touched a storage yet
        return None
    from sweetspot.service.retry import STORAGE_ERRORS, STORAGE_RETRY, first_line

    if not isinstance(exc, STORAGE_ERRORS):
        return None
    return f"database unreachable after {STORAGE_RETRY.attempts} tries: {first_line(exc)}"


if __name__ == "__main__":
    sys.exit(main())
