"""Storage throughput with many workers, and the storage's share of a real trial's wall time.

A trivial objective that makes the same storage calls as a sweetspot trial (two suggestions, two
artifacts, the same user attributes, a trial note, heartbeats on) runs in 1, 4 and 8 worker
processes (``--workers``) on PostgreSQL, on SQLite and on PostgreSQL through a `sweetspot
storage-proxy` (``--backends``); the figure is finished trials per second, timed from a common start
signal to the last worker's exit (process start-up excluded), and every run checks that exactly the
queued trials finished. Then 8 processes run default-study trials at once (one thread each, as `run
--workers 8` does on 2 cores), and the storage's share is (8 / trials-per-second with 8 workers) /
(their mean trial wall time): the storage time each of 8 workers spends per trial, under the
contention of all 8, over the trial it serves. Target (issue 3): under 2 % with 8 workers.
``--taking 100 500 1000``: the cost of taking and finishing one trial (one worker, the trivial
objective) in a study that already holds that many finished trials, directly and through the proxy.

    .venv/bin/python benchmarks/storage_scaling.py [--postgres URL] [--trials 120] [--workers 1 4 8]
        [--backends postgresql sqlite proxy] [--taking 100 500 1000] [--no-share]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
from machine import describe
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna_dashboard import save_note

from sweetspot.api import GRACE_S, HEARTBEAT_S
from sweetspot.config import StudyConfig, batch_size_choices
from sweetspot.config.metric_registry import RECORD_ATTRS, TRIAL_METRICS
from sweetspot.service.notes import trial_note
from sweetspot.service.study import Heartbeat, open_storage, queue_trials
from sweetspot.service.workers import drain

ATTRIBUTES = [*TRIAL_METRICS, *RECORD_ATTRS, "worker"]


NOTE = trial_note({"batch_size": 512, "epochs": 6}, {m: 0.5 for m in TRIAL_METRICS}, 9)  # a trial note's size


def trivial_objective(trial: optuna.Trial, store: FileSystemArtifactStore, files: list[str]) -> tuple[float, float]:
    search = StudyConfig().search
    trial.suggest_categorical("batch_size", batch_size_choices(search.batch_size))
    trial.suggest_int("epochs", *search.epochs, log=True)
    for path in (
        files
    ):  # the teacher weights and the soft-label picture (small stand-ins: the files are not the database's cost)
        upload_artifact(artifact_store=store, file_path=path, study_or_trial=trial)
    for key in ATTRIBUTES:
        trial.set_user_attr(key, 0.5)
    save_note(trial, NOTE)
    return 0.5, 0.5


def _worker(url: str, name: str, start: mp.Event, folder: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=Heartbeat(HEARTBEAT_S, GRACE_S)))
    store = FileSystemArtifactStore(folder)
    files = []
    for stem in ("teacher.pt", "soft-labels.png"):
        path = Path(folder) / f"{uuid.uuid4().hex}-{stem}"
        path.write_bytes(b"x" * 1024)
        files.append(str(path))
    start.wait()
    drain(study, lambda trial: trivial_objective(trial, store, files), poll=0.2)


def trials_per_second(url: str, n_workers: int, n_trials: int, database: str | None = None,
                      finished_before: int = 0) -> float:
    """Trials/s of ``n_workers`` workers on ``url`` (a database, or a proxy of ``database``), in a
    study that holds ``finished_before`` finished trials already."""
    database = database or url
    name = f"bench-{uuid.uuid4().hex[:8]}"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        study_name=name,
        storage=open_storage(database),
        directions=["maximize", "maximize"],
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    if finished_before:
        search = StudyConfig().search  # finished trials with the trivial objective's parameters
        choices = batch_size_choices(search.batch_size)
        done = optuna.trial.create_trial(
            values=[0.5, 0.5], params={"batch_size": choices[0], "epochs": search.epochs[0]},
            distributions={"batch_size": optuna.distributions.CategoricalDistribution(choices),
                           "epochs": optuna.distributions.IntDistribution(*search.epochs, log=True)})
        study.add_trials([done] * finished_before)
    queue_trials(study, n_trials)
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    folder = tempfile.mkdtemp(prefix="bench-artifacts-")
    procs = [ctx.Process(target=_worker, args=(url, name, start, folder)) for _ in range(n_workers)]
    for p in procs:
        p.start()
    time.sleep(3 + n_workers)  # let every worker import and connect before the clock starts
    began = time.perf_counter()
    start.set()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - began
    shutil.rmtree(folder)
    finished = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False)) - finished_before
    assert finished == n_trials, f"{finished} of {n_trials} trials finished"
    optuna.delete_study(study_name=name, storage=database)
    return n_trials / elapsed


def start_proxy(database: str) -> tuple[subprocess.Popen, str]:
    """A `sweetspot storage-proxy` of ``database`` on a free port, ready; and its grpc:// URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "sweetspot.cli", "storage-proxy", "--storage", database, "--port",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"grpc://127.0.0.1:{port}"
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the storage proxy did not start: {proc.stderr.read().decode()[:300] if proc.stderr else ''}")


DEFAULT_SETTINGS = ((512, 6), (256, 10), (64, 5))  # typical of the default study's Pareto region


def _real_trials(times: mp.Queue, config_path: str | None, settings: tuple[tuple[int, int], ...]) -> None:
    import torch

    from sweetspot.config import load_config
    from sweetspot.core.trial import TeacherParams, prepare, run_trial

    torch.set_num_threads(1)  # what `run --workers 8` gives each worker on 2 cores
    config = load_config(config_path) if config_path else StudyConfig()
    splits = prepare(config, torch.device("cpu"))
    for batch_size, epochs in settings:
        start = time.perf_counter()
        run_trial(config, splits, TeacherParams(batch_size, epochs), seed=0)
        times.put(time.perf_counter() - start)


def real_trial_seconds(n_workers: int, config_path: str | None = None,
                       settings: tuple[tuple[int, int], ...] = DEFAULT_SETTINGS) -> list[float]:
    """Wall times of a study's trials (``settings``: batch size, epochs) while ``n_workers``
    processes run them at once, one thread each: a trial's wall time in such a study."""
    ctx = mp.get_context("spawn")
    times = ctx.Queue()
    procs = [ctx.Process(target=_real_trials, args=(times, config_path, settings)) for _ in range(n_workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return [times.get() for _ in range(len(settings) * n_workers)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--trials", type=int, default=120)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--backends", nargs="+", default=["postgresql", "sqlite", "proxy"],
                        choices=["postgresql", "sqlite", "proxy"])
    parser.add_argument("--taking", type=int, nargs="*", default=[100, 500, 1000],
                        help="finished trials already in the study for the cost of taking one (none: skip)")
    parser.add_argument("--no-share", action="store_true", help="skip the real trials and the storage's share")
    parser.add_argument("--share-config", help="the study whose trials the share is of (default: the digits study)")
    parser.add_argument("--share-trials", nargs="+", metavar="BATCH:EPOCHS",
                        help="the trials each worker runs for the share (default: 512:6 256:10 64:5)")
    parser.add_argument("--share-workers", type=int, help="workers for the share (default: the most of --workers)")
    args = parser.parse_args()
    print(describe())

    proxy, proxy_url = start_proxy(args.postgres) if "proxy" in args.backends else (None, "")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = f"sqlite:///{Path(tmp) / 'bench.db'}"
            every = {"postgresql": (args.postgres, args.postgres), "sqlite": (sqlite, sqlite),
                     "proxy": (proxy_url, args.postgres)}
            backends = {name: every[name] for name in args.backends}
            rates: dict[tuple[str, int], float] = {}
            print(f"{'storage':<11} {'workers':>7} {'trials/s':>9}   ({args.trials} trials, trivial objective, "
                  "heartbeats on; exactly the queued trials finished in each)")
            for backend, (url, database) in backends.items():
                for n in args.workers:
                    rates[backend, n] = trials_per_second(url, n, args.trials, database)
                    print(f"{backend:<11} {n:>7} {rates[backend, n]:>9.1f}", flush=True)
            if args.taking:
                print("\ntaking and finishing one trial (one worker, 20 trials) in a study of N finished trials:")
                for backend, (url, database) in backends.items():
                    if backend == "sqlite":
                        continue
                    cells = [f"N={n}: {1000 / trials_per_second(url, 1, 20, database, n):.0f} ms" for n in args.taking]
                    print(f"{backend:<11} " + "  ".join(cells), flush=True)
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=30)
    if args.no_share:
        return
    most = args.share_workers or max(args.workers)
    settings = tuple(tuple(int(v) for v in item.split(":")) for item in args.share_trials) if args.share_trials \
        else DEFAULT_SETTINGS
    times = real_trial_seconds(most, args.share_config, settings)
    mean = statistics.mean(times)
    print(
        f"{args.share_config or 'default-study'} trial {' '.join(f'{b}x{e}' for b, e in settings)} wall time with "
        f"{most} workers: mean {mean:.2f} s (sd {statistics.stdev(times) if len(times) > 1 else 0:.2f}, n={len(times)})"
    )
    for backend in backends:
        if (backend, most) not in rates:
            continue
        per_trial = most / rates[backend, most]
        print(
            f"storage share with {most} workers on {backend}: {per_trial:.3f} s per trial = "
            f"{100 * per_trial / mean:.2f} % of a trial"
        )


if __name__ == "__main__":
    main()
