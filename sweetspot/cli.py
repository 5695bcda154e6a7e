"""The ``sweetspot`` command: one small function per subcommand, registered in COMMANDS.

Every expected failure is one line on stderr and exit code 2 (``--debug`` shows the traceback).
Importing this module does not import torch or optuna: each command imports what it needs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from sweetspot import __version__
from sweetspot.errors import ConfigError, SweetspotError


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error shape: one line, exit 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


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

    from sweetspot.objective import resolve_device

    threads = args.threads or os.environ.get("SWEETSPOT_THREADS")
    if threads:
        try:
            threads = _positive_int(str(threads))
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"SWEETSPOT_THREADS: {exc}") from None
        torch.set_num_threads(threads)
    return resolve_device(args.device)


def _with_data_flags(args: argparse.Namespace, config: Any) -> Any:
    """``--data-dir`` and ``--download`` over the config's (they say where the files are, not what
    the study is, so a study accepts them from any machine)."""
    from dataclasses import replace

    if not (args.data_dir or args.download):
        return config
    data = replace(config.data, data_dir=args.data_dir or config.data.data_dir, download=args.download or config.data.download)
    return replace(config, data=data)


def _classes(text: str) -> tuple[int, ...]:
    """``--withheld 3,5,8`` (or ``none``)."""
    if text.strip().lower() == "none":
        return ()
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be class numbers separated by commas, or none; got {text!r}") from None


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
    if not changes:
        return config
    raw = config.to_dict()
    raw["distill"].update(changes)
    if not study and not raw["distill"]["withheld_classes"]:
        raw["objectives"] = {k: v for k, v in raw["objectives"].items() if k != "student_withheld_acc"} or {"student_val_acc": "maximize"}
    checked = config_from_dict(raw, source="command line")
    return replace(config, distill=checked.distill)


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the progress bar and our lines say it


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else ("-" if v is None else str(v))

    cells = [list(header)] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def front_table(study: Any, limit: int = 10) -> str:
    """The best trials (the ordered Pareto front), one row each, the chosen one marked *."""
    from sweetspot.export import ordered_front

    names = study.metric_names or [f"objective{i}" for i in range(len(study.directions))]
    extra = [k for k in ("teacher_val_acc", "student_val_acc") if k not in names]  # each column once
    rows = []
    for rank, t in enumerate(ordered_front(study)[:limit]):
        rows.append(["*" if rank == 0 else "", t.number, t.params["batch_size"], t.params["epochs"], *t.values,
                     *(t.user_attrs.get(k) for k in extra)])
    return _table(["", "trial", "batch", "epochs", *names, *extra], rows)


def _heartbeat(args: argparse.Namespace) -> Any:
    from sweetspot.study import Heartbeat

    return Heartbeat(interval=args.heartbeat, grace=args.grace)


def _open(args: argparse.Namespace, config: Any) -> tuple[Any, Any, str]:
    """Validate and load what trials need, then open (or create) the study: in this order, so
    that bad input is refused before anything is written. Returns (study, splits, storage URL)."""
    from sweetspot.objective import prepare
    from sweetspot.study import open_storage, open_study, resolve_storage_url

    splits = prepare(config, _setup_compute(args))
    url = resolve_storage_url(args.storage)
    storage = open_storage(url, heartbeat=_heartbeat(args))
    _quiet_optuna()
    return open_study(storage, args.study or config.name, config), splits, url


def _artifacts(args: argparse.Namespace, url: str) -> Any:
    """The artifact store of this storage (see sweetspot/artifacts.py), created if missing."""
    from sweetspot.artifacts import artifact_dir, open_artifact_store

    return open_artifact_store(artifact_dir(url, args.artifacts))


def _objective(args: argparse.Namespace, config: Any, splits: Any, url: str) -> Any:
    """A worker's objective with the study's artifact store and, unless --no-share, the shared
    store of teacher checkpoints (see sweetspot/checkpoints.py), by default inside the artifact folder."""
    from sweetspot.artifacts import artifact_dir, open_artifact_store
    from sweetspot.checkpoints import CheckpointStore, checkpoint_dir
    from sweetspot.objective import Objective

    folder = artifact_dir(url, args.artifacts)
    checkpoints = None if args.no_share else CheckpointStore(
        checkpoint_dir(folder, args.checkpoints), args.checkpoint_mb * 2**20, args.checkpoint_every)
    return Objective(config, splits, open_artifact_store(folder), checkpoints)


def _summary(study: Any, url: str) -> None:
    from optuna.trial import TrialState

    from sweetspot.study import count_states, mask_url

    counts = count_states(study)
    done = counts[TrialState.COMPLETE]
    print(f"\nstudy {study.study_name!r} in {mask_url(url)}: {done} finished of {sum(counts.values())} trials"
          + (f", {counts[TrialState.WAITING]} still queued" if counts[TrialState.WAITING] else ""))
    if done:
        print(f"best trials (Pareto front, best first):\n{front_table(study)}")
        print(f"\nnext: sweetspot export --study {study.study_name} --out best-teacher.yaml")


def cmd_run(args: argparse.Namespace) -> int:
    from optuna.trial import TrialState

    from sweetspot.config import load_config
    from sweetspot.study import count_states, queue_trials
    from sweetspot.workers import Launch, drain_with_progress, supervise, threads_per_worker

    config = _with_transfer_flags(args, _with_data_flags(args, load_config(args.config)))
    if args.workers > 1 and args.threads is None:
        args.threads = threads_per_worker(args.workers)
    study, splits, url = _open(args, config)
    left = count_states(study)[TrialState.WAITING]  # queued by an earlier, interrupted run
    n = args.trials or config.n_trials
    queue_trials(study, n)
    total = n + left
    if args.workers == 0:
        print(f"queued {n} trials in study {study.study_name!r} ({total} waiting); start workers with: "
              f"sweetspot worker{' ' + args.config if args.config else ''} --study {study.study_name}")
        return 0
    patience = args.grace + 2 * args.heartbeat
    if args.workers == 1:
        drain_with_progress(study, _objective(args, config, splits, url), total, progress=not args.no_progress,
                            patience=patience)
    else:
        import torch

        worker_args = [*([args.config] if args.config else []), "--study", study.study_name, "--device", args.device,
                       "--heartbeat", str(args.heartbeat), "--grace", str(args.grace),
                       *(["--withheld", ",".join(map(str, args.withheld)) or "none"] if args.withheld is not None else []),
                       *(["--examples-per-class", str(args.examples_per_class)] if args.examples_per_class else []),
                       *(["--data-dir", args.data_dir] if args.data_dir else []), *(["--download"] if args.download else []),
                       *(["--artifacts", args.artifacts] if args.artifacts else []),
                       *(["--checkpoints", args.checkpoints] if args.checkpoints else []),
                       "--checkpoint-mb", str(args.checkpoint_mb), "--checkpoint-every", str(args.checkpoint_every),
                       *(["--no-share"] if args.no_share else [])]
        gpus = torch.cuda.device_count() if args.device != "cpu" else 0
        launch = Launch(args.workers, worker_args, url, Path(args.log_dir), study.study_name, args.threads, gpus)
        code = supervise(launch, study, total, progress=not args.no_progress)
        if code == 130:
            raise KeyboardInterrupt
        if code != 0:
            print(f"sweetspot run: error: a worker exited with code {code}; see {args.log_dir}/", file=sys.stderr)
            _summary(study, url)
            return 1
    _summary(study, url)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import time

    from optuna.trial import TrialState

    from sweetspot.config import load_config
    from sweetspot.study import count_states, worker_id
    from sweetspot.workers import drain_with_progress

    config = _with_transfer_flags(args, _with_data_flags(args, load_config(args.config)))
    study, splits, url = _open(args, config)
    queued = count_states(study)[TrialState.WAITING]
    deadline = time.monotonic() + args.wait_for_queue
    while not queued and time.monotonic() < deadline:  # the step that queues may not have run yet
        time.sleep(2)
        queued = count_states(study)[TrialState.WAITING]
    total = min(queued, args.trials) if args.trials else queued
    ran = drain_with_progress(study, _objective(args, config, splits, url), total, progress=not args.no_progress,
                              max_trials=args.trials, patience=args.grace + 2 * args.heartbeat)
    print(f"worker {worker_id()}: ran {ran} trials of study {study.study_name!r}"
          + ("" if ran or queued else "; nothing was queued (queue trials with: sweetspot run --workers 0 --trials N)"))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from sweetspot.export import build_export, export_format, front_or_fail, render, score_on_test, write_atomically
    from sweetspot.objective import prepare
    from sweetspot.study import load_study, mask_url, open_storage, resolve_storage_url

    fmt = export_format(args.out, args.format)
    url = resolve_storage_url(args.storage)
    study, config = load_study(open_storage(url, must_exist=True), args.study)
    config = _with_data_flags(args, config)
    front = front_or_fail(study)
    splits = prepare(config, _setup_compute(args))
    document = build_export(study, config, mask_url(url), score_on_test(config, splits, front))
    text = render(document, fmt)
    if args.out:
        write_atomically(Path(args.out), text)
        best = document["teachers"][0]
        print(
            f"wrote {len(front)} teacher(s) of study {study.study_name!r} to {args.out}; best: trial "
            f"{best['trial']} (batch {best['batch_size']}, {best['epochs']} epochs), test withheld-class "
            f"accuracy {_fmt(best['test']['student_withheld_acc'])}"
        )
    else:
        sys.stdout.write(text)
    return 0


def cmd_trial(args: argparse.Namespace) -> int:
    from sweetspot.config import load_config
    from sweetspot.objective import TeacherParams, prepare, run_trial

    config = _with_transfer_flags(args, _with_data_flags(args, load_config(args.config)))
    splits = prepare(config, _setup_compute(args))
    seed = config.seed if args.seed is None else args.seed
    outcome = run_trial(config, splits, TeacherParams(args.batch_size, args.epochs), seed, split=args.split)
    # run_trial names its figures *_val_*; say which split they are on
    scores = {k.replace("_val_", f"_{args.split}_"): v for k, v in outcome.metrics.items()}
    record = {"batch_size": args.batch_size, "epochs": args.epochs, "seed": seed, "split": args.split, **scores}
    if args.format == "json":
        print(json.dumps(record, indent=2))
    else:
        print(_table(["metric", "value"], list(record.items())))
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    import yaml
    from tqdm.auto import tqdm

    from sweetspot.config import load_config
    from sweetspot.experiments import EXPERIMENTS, Setup, parse_teacher, teacher_from_export
    from sweetspot.export import load_export
    from sweetspot.objective import prepare

    experiment = EXPERIMENTS[args.name]
    if args.classes is not None and not experiment.takes_classes:
        raise ConfigError(f"--classes: only missing-class and penultimate take it, not {args.name}")
    config = _with_transfer_flags(args, _with_data_flags(args, load_config(args.config)), study=False)
    teachers = [parse_teacher(t) for t in args.teacher or []]
    if args.export:
        try:
            document = load_export(args.export)
            teachers.insert(0, teacher_from_export(document, config.data.name))  # first: the curves of entropy-vs-temperature
        except (OSError, KeyError, StopIteration, TypeError, AttributeError, yaml.YAMLError):
            raise ConfigError(f"--export: {args.export!r} is not a readable `sweetspot export` file") from None
    if not teachers:
        raise ConfigError("--teacher or --export: name at least one teacher (e.g. --teacher small=64:5 --teacher large=16:100)")
    if len({t.label for t in teachers}) < len(teachers):
        raise ConfigError("--teacher: two teachers have the same label; give each its own (LABEL=...)")
    splits = prepare(config, _setup_compute(args))
    if args.classes is not None and (not args.classes or not all(0 <= k < splits.n_classes for k in args.classes)):
        raise ConfigError(f"--classes: {','.join(map(str, args.classes)) or 'none'} is not a list of classes 0 to {splits.n_classes - 1}")
    setup = Setup(config, splits, tuple(teachers), args.split, args.classes)
    with tqdm(total=experiment.work(setup), unit="step", disable=args.no_progress) as bar:
        paths = experiment.run(setup, Path(args.out), lambda: bar.update(1))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    import socket

    from optuna_dashboard import run_server

    from sweetspot.study import mask_url, open_storage, resolve_storage_url, study_names

    url = resolve_storage_url(args.storage)
    storage = open_storage(url, must_exist=True)
    names = study_names(storage)
    if not names:
        raise ConfigError(f"--storage: {mask_url(url)} holds no study yet; make one with: sweetspot run")
    store = _artifacts(args, url)
    with socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET) as probe:
        try:
            probe.bind((args.host, args.port))
        except OSError as exc:
            raise ConfigError(f"--host/--port: cannot listen on {args.host}:{args.port} ({exc.strerror}); choose another --port") from None
    if args.host not in LOCAL_HOSTS:
        print(f"warning: optuna-dashboard has no authentication; anyone who can reach {args.host}:{args.port} can read and "
              "change these studies", file=sys.stderr)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"optuna-dashboard for {mask_url(url)} ({len(names)} studies: {', '.join(names)})\nopen http://{shown}:{args.port}/ "
          "(Ctrl-C stops it)", flush=True)
    _quiet_optuna()
    run_server(storage, host=args.host, port=args.port, artifact_store=store)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from sweetspot.report import write_report
    from sweetspot.study import load_study, mask_url, open_storage, resolve_storage_url

    url = resolve_storage_url(args.storage)
    _quiet_optuna()
    study, config = load_study(open_storage(url, must_exist=True), args.study)
    paths = write_report(study, config, Path(args.out), mask_url(url))
    print(f"wrote the report of study {study.study_name!r}: {paths[-1]} (figures: {', '.join(p.name for p in paths[:-1])})")
    return 0


def cmd_teacher(args: argparse.Namespace) -> int:
    import yaml

    from sweetspot.artifacts import fetch_teacher_weights, load_weights
    from sweetspot.export import load_export
    from sweetspot.objective import prepare
    from sweetspot.study import load_study, open_storage, resolve_storage_url
    from sweetspot.teachers import check_figures, figures, pick_teacher, retrain, save_weights, wrap

    try:
        document = load_export(args.file)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"FILE: cannot read {args.file!r} as a `sweetspot export` file ({type(exc).__name__})") from None
    chosen = pick_teacher(document if isinstance(document, dict) else {}, args.trial)
    config = _with_data_flags(args, chosen.config)
    splits = prepare(config, _setup_compute(args))
    out = Path(args.out or f"teacher-trial{chosen.trial}.pt")
    teacher, source = None, "retrained from its recipe"
    if args.storage or os.environ.get("SWEETSPOT_STORAGE"):  # the study's own weights, when its store has them
        from sweetspot.models import build_model

        url = resolve_storage_url(args.storage)
        storage = open_storage(url, must_exist=True)
        _quiet_optuna()
        study, _ = load_study(storage, args.study or document.get("study"))
        frozen = next((t for t in study.get_trials(deepcopy=False) if t.number == chosen.trial), None)
        fetched = None
        if frozen is not None:
            fetched = fetch_teacher_weights(_artifacts(args, url), storage, frozen, out.with_name(f".{out.name}.download"))
        if fetched is not None:
            teacher = build_model(chosen.net, splits.input_shape, splits.n_classes).to(splits.x_train.device)
            teacher.load_state_dict(load_weights(fetched))
            fetched.unlink()
            source = "fetched from the artifact store"
    if teacher is None:
        teacher = retrain(chosen, splits)
    found = figures(teacher, config, splits, chosen.temperature)
    check_figures(found, chosen.recorded, chosen.trial)
    save_weights(wrap(teacher, splits), out)
    print(f"wrote trial {chosen.trial}'s teacher ({source}; validation accuracy {found['teacher_val_acc']:.4f}, entropy at "
          f"T={chosen.temperature or config.distill.temperature:g} {found['teacher_entropy']:.4f}, as the export records) to {out}")
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
}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def build_parser() -> argparse.ArgumentParser:
    storage = _Parser(add_help=False)
    storage.add_argument("--storage", metavar="URL", help="Optuna storage URL (default: $SWEETSPOT_STORAGE, else sqlite:///sweetspot.db)")
    storage.add_argument("--study", metavar="NAME", help="study name (run: default the config's name; export: default the storage's only study)")
    storage.add_argument("--artifacts", metavar="DIR", help="artifact store folder (default: $SWEETSPOT_ARTIFACTS, else beside an "
                         "SQLite file: NAME-artifacts/, else ./sweetspot-artifacts)")
    compute = _Parser(add_help=False)
    compute.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    compute.add_argument("--data-dir", metavar="DIR", help="where the dataset files are (default: the config's data.data_dir, "
                         "else $SWEETSPOT_DATA, else ~/.cache/sweetspot)")
    compute.add_argument("--download", action="store_true", help="let torchvision download a missing dataset")
    compute.add_argument("--threads", type=_positive_int, metavar="N",
                         help="torch CPU threads (default: $SWEETSPOT_THREADS, else all cores; run --workers N: cores / N)")
    transfer = _Parser(add_help=False)
    transfer.add_argument("--withheld", type=_classes, metavar="K,K", help="classes withheld from the transfer set (default: the config's; none for none)")
    transfer.add_argument("--examples-per-class", type=_positive_int, metavar="N", help="keep N transfer examples per class (default: the config's)")
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks")

    parser = _Parser(prog="sweetspot", description="Find the teacher batch size and epochs whose soft labels distil best.")
    parser.add_argument("--version", action="version", version=f"sweetspot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    workers = _Parser(add_help=False)
    workers.add_argument("config", nargs="?", help="study config YAML (default: the built-in digits study = studies/digits.yaml)")
    workers.add_argument("--no-progress", action="store_true", help="no progress bar")
    workers.add_argument("--heartbeat", type=_positive_int, default=10, metavar="S", help="seconds between a running trial's heartbeats (default: 10)")
    workers.add_argument("--grace", type=_positive_int, default=60, metavar="S",
                         help="seconds without a heartbeat after which a trial is failed and queued again (default: 60)")
    workers.add_argument("--no-share", action="store_true",
                         help="train every teacher from scratch (default: continue the longest stored checkpoint of its path)")
    workers.add_argument("--checkpoints", metavar="DIR", help="teacher checkpoint folder (default: $SWEETSPOT_CHECKPOINTS, "
                         "else checkpoints/ in the artifact folder)")
    workers.add_argument("--checkpoint-mb", type=_positive_int, default=2048, metavar="MB",
                         help="size bound of the checkpoint folder; least recently used files go first (default: 2048)")
    workers.add_argument("--checkpoint-every", type=_non_negative_int, default=0, metavar="K",
                         help="also store every K-th epoch of a teacher, for shorter trials of its path (default: 0, "
                         "only where trials stop)")

    run = sub.add_parser("run", parents=[storage, compute, workers, transfer, common], help="queue trials and run them (create or continue a study)")
    run.add_argument("--trials", type=_positive_int, metavar="N", help="trials to add to the study, across all workers (default: the config's n_trials)")
    run.add_argument("--workers", type=_non_negative_int, default=1, metavar="N",
                     help="worker processes on this machine (default: 1, in this process; 0: only queue the trials)")
    run.add_argument("--log-dir", default="sweetspot-logs", metavar="DIR", help="per-worker log files when --workers > 1 (default: sweetspot-logs)")

    worker = sub.add_parser("worker", parents=[storage, compute, workers, transfer, common], help="run queued trials of a study until none is left")
    worker.add_argument("--trials", type=_positive_int, metavar="N", help="stop after N trials of this worker (default: until the queue is empty)")
    worker.add_argument("--wait-for-queue", type=_non_negative_int, default=0, metavar="S",
                        help="if nothing is queued yet, wait up to S seconds for queued trials (default: 0)")

    export = sub.add_parser("export", parents=[storage, compute, common], help="write the best teacher configuration(s)")
    export.add_argument("--out", metavar="FILE", help="output file (default: standard output)")
    export.add_argument("--format", help="yaml | json (default: from --out's suffix, else yaml)")

    trial = sub.add_parser("trial", parents=[compute, transfer, common], help="run one trial outside any study and print its metrics")
    trial.add_argument("config", nargs="?", help="study config YAML (default: the built-in digits study)")
    trial.add_argument("--batch-size", type=_positive_int, required=True, help="teacher batch size")
    trial.add_argument("--epochs", type=_positive_int, required=True, help="teacher epochs")
    trial.add_argument("--seed", type=int, help="trial seed (default: the config's seed)")
    trial.add_argument("--split", choices=("val", "test"), default="val", help="split to score on (default: val)")
    trial.add_argument("--format", choices=("table", "json"), default="table")
    experiment = sub.add_parser("experiment", parents=[compute, transfer, common], help="run one of the paper's experiments")
    experiment.add_argument("name", choices=EXPERIMENT_NAMES, help="the experiment: " + ", ".join(EXPERIMENT_NAMES))
    experiment.add_argument("config", nargs="?", help="study config YAML (default: the built-in digits study)")
    experiment.add_argument("--teacher", action="append", metavar="[LABEL=][ARCH:]BATCH:EPOCHS",
                            help="a teacher to train (repeatable), e.g. large=mlp:16:100")
    experiment.add_argument("--export", metavar="FILE", help="also the best teacher of a `sweetspot export` file (it comes first)")
    experiment.add_argument("--out", default="results", metavar="DIR", help="output folder (default: results)")
    experiment.add_argument("--split", choices=("val", "test"), default="val", help="split the students are scored on (default: val)")
    experiment.add_argument("--classes", type=_classes, metavar="K,K",
                            help="missing-class: the classes to leave out in turn (default: all); penultimate: its three classes (default: 0,1,2)")
    experiment.add_argument("--no-progress", action="store_true", help="no progress bar")

    dashboard = sub.add_parser("dashboard", parents=[storage, common], help="browse the studies in optuna-dashboard")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; optuna-dashboard has no "
                           "authentication, so 0.0.0.0 only on a trusted network)")
    dashboard.add_argument("--port", type=_positive_int, default=8080, help="port (default: 8080)")

    report = sub.add_parser("report", parents=[storage, common], help="write a study's figures and an HTML report")
    report.add_argument("--out", default="report", metavar="DIR", help="output folder (default: report)")

    teacher = sub.add_parser("teacher", parents=[storage, compute, common], help="write the weights of an exported teacher")
    teacher.add_argument("file", metavar="FILE", help="a `sweetspot export` file")
    teacher.add_argument("--trial", type=_non_negative_int, metavar="N", help="the teacher of trial N (default: the best)")
    teacher.add_argument("--out", metavar="FILE", help="weights file (default: teacher-trialN.pt)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SweetspotError as exc:
        if args.debug:
            raise
        print(f"sweetspot {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sweetspot {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
