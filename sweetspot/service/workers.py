"""Workers: processes that run a study's queued trials until none is left.

A worker is ``study.optimize`` on Optuna's RDB storage with heartbeats, one trial at a time; nothing
sits between it and the database. ``sweetspot run --workers N`` starts N ``sweetspot worker``
processes on this machine and supervises them; on other machines the same ``sweetspot worker``
command with the same storage URL joins the same study.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweetspot.service.optuna_internals import QueueEmpty, tell_lost, told_already
from sweetspot.service.recovery import recover_stale
from sweetspot.service.retry import STORAGE_ERRORS, STORAGE_RETRY, Retry, first_line, with_retries
from sweetspot.service.study import best_so_far, count_states

log = logging.getLogger("sweetspot.service.workers")
SUPERVISOR_ENV = "SWEETSPOT_SUPERVISOR"  # the pid of the `sweetspot run` that started this worker
TrialCallback = Callable[[optuna.Study, FrozenTrial], None]


def drain(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], Any],
    *,
    max_trials: int | None = None,
    on_trial_end: TrialCallback | None = None,
    poll: float = 1.0,
    retry: Retry = STORAGE_RETRY,
    stop_requested: Callable[[], bool] = lambda: False,
) -> int:
    """Run queued trials until the queue is empty and no other trial is running, or ``max_trials``
    are done; returns how many this worker ran.

    Before each trial, and while other workers' trials run, it fails and re-queues trials whose
    worker is gone (recovery.py): a killed worker's trial is re-run by a live one. So a worker
    leaves only when no trial is left running, and a study with one live worker ends by itself.
    A lost database connection is retried under ``retry`` (the policy every storage call of
    sweetspot follows), counting failures in a row.
    """
    done = 0
    errors = 0

    def count(study: optuna.Study, trial: FrozenTrial) -> None:
        nonlocal done
        done += 1
        if on_trial_end is not None:
            on_trial_end(study, trial)

    while max_trials is None or done < max_trials:
        if stop_requested():
            raise KeyboardInterrupt
        try:
            recover_stale(study)
            study.optimize(objective, n_trials=1, callbacks=[count], gc_after_trial=False)
            errors = 0
        except QueueEmpty:
            if not _wait_for_running(study, poll, retry, stop_requested):
                break
        except STORAGE_ERRORS as exc:
            errors += 1
            log.warning("storage error (%s); try %d of %d", first_line(exc), errors, retry.attempts)
            retry.give_up(errors, exc)
        except ValueError as exc:
            if not told_already(exc):
                raise
            log.warning("a trial of this worker was failed as stale meanwhile and queued again (%s)", exc)
        except AssertionError as exc:
            if not tell_lost(exc):
                raise
            errors += 1
            log.warning("a trial's result could not be stored (%s); it will be run again", exc.__context__)
            retry.give_up(errors, exc)
    return done


def _wait_for_running(study: optuna.Study, poll: float, retry: Retry, stop_requested: Callable[[], bool]) -> bool:
    """True once a trial is queued again (a stale trial retried); False when none is running. Waits
    as long as others' trials run: any of them may lose its worker and need this one."""
    shown: frozenset[int] = frozenset()
    errors = 0
    while not stop_requested():
        try:
            recover_stale(study)
            trials = study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
            errors = 0
        except STORAGE_ERRORS as exc:
            errors += 1
            log.warning("storage error while waiting (%s); try %d of %d", first_line(exc), errors, retry.attempts)
            retry.give_up(errors, exc)
            continue
        if any(t.state == TrialState.WAITING for t in trials):
            return True
        running = frozenset(t.number for t in trials)
        if not running:
            return False
        if running != shown:
            log.info("queue empty; waiting for trials %s of other workers", sorted(running))
            shown = running
        time.sleep(poll)
    raise KeyboardInterrupt


@dataclass
class Launch:
    """What `sweetspot run --workers N` starts: N copies of one `sweetspot worker` command."""

    n_workers: int
    worker_args: list[str]  # arguments after `sweetspot worker`
    storage_url: str  # passed through the environment, never on a command line
    log_dir: Path
    study_name: str
    threads: int
    gpus: int = 0


@dataclass(frozen=True)
class Supervised:
    """How the workers of `sweetspot run --workers N` ended: each one's exit code (-S: killed by
    signal S, as ``subprocess`` reports it), and whether the run was interrupted (Ctrl-C, SIGTERM)."""

    codes: list[int]
    interrupted: bool = False

    def failures(self) -> list[str]:
        """One phrase per worker that did not exit cleanly: killed by a signal, or exited with a code."""
        out = []
        for i, code in enumerate(self.codes):
            if code < 0:
                out.append(f"worker {i} was killed by {_signal_name(-code)}")
            elif code > 0:
                out.append(f"worker {i} exited with code {code}")
        return out

    def exit_code(self, short: bool) -> int:
        """`sweetspot run`'s exit code: 130 interrupted; 1 when a worker exited with an error, or was
        killed by a signal and the study was left ``short`` (trials still queued or running); else 0
        (a killed worker whose trials the others ran again is reported, not an error)."""
        if self.interrupted:
            return 130
        if any(code > 0 for code in self.codes) or (short and any(code < 0 for code in self.codes)):
            return 1
        return 0


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def threads_per_worker(n_workers: int, cores: int | None = None) -> int:
    """Split the cores so that N workers do not oversubscribe the machine."""
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores // n_workers)


def supervise(
    launch: Launch,
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    total: int,
    *,
    progress: bool = True,
    stop_grace: float = 10.0,
) -> Supervised:
    """Start the workers, show one progress bar for all of them, and stop them all on Ctrl-C or
    SIGTERM (each fails its running trial); returns how each ended."""
    from tqdm.auto import tqdm

    launch.log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []
    for i in range(launch.n_workers):
        env = dict(os.environ, SWEETSPOT_STORAGE=launch.storage_url, PYTHONUNBUFFERED="1")
        env[SUPERVISOR_ENV] = str(os.getpid())  # its workers stop when it dies (watch_supervisor)
        if launch.gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(i % launch.gpus)
        log_file = open(launch.log_dir / f"{launch.study_name}-worker{i}.log", "w")  # kept open for the child
        cmd = [
            sys.executable, "-m", "sweetspot.cli", "worker", *launch.worker_args, "--threads", str(launch.threads),
            "--no-progress",
        ]
        # a session of its own: a terminal's Ctrl-C reaches only this supervisor, which stops the workers in order
        procs.append(subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True))
        log_file.close()

    stopping: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with tqdm(
            total=total,
            unit="trial",
            desc=f"{launch.study_name} x{launch.n_workers}",
            disable=not progress,
            dynamic_ncols=True,
        ) as bar:
            while not stopping and any(p.poll() is None for p in procs):
                time.sleep(0.5)
                _update_bar(bar, study, total)
            _update_bar(bar, study, total)
        if stopping:
            _stop(procs, stop_grace)
            _fail_running_trials(study, storage, procs)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return Supervised([p.wait() for p in procs], interrupted=bool(stopping))


def _update_bar(bar: Any, study: optuna.Study, total: int) -> None:
    try:
        trials = study.get_trials(deepcopy=False)
        best = best_so_far(study, trials)  # reads the metric names: a storage call too
    except STORAGE_ERRORS:
        return  # a progress bar may skip a beat while the database recovers
    counts = count_states(trials)
    done = max(0, total - counts[TrialState.WAITING] - counts[TrialState.RUNNING])
    bar.update(min(done, total) - bar.n)
    bar.set_postfix_str(" ".join(f"{k}={v:.3f}" for k, v in best.items()))


def _stop(procs: Sequence[subprocess.Popen], grace: float) -> None:
    """SIGINT to every worker (each fails its running trial and exits), SIGKILL after ``grace``."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _fail_running_trials(
    study: optuna.Study, storage: optuna.storages.BaseStorage, procs: Sequence[subprocess.Popen]
) -> None:
    """Mark failed what killed workers left RUNNING, so that no trial of ours stays RUNNING, through
    Optuna's public API: the reason first (a storage call, while the trial can still take it), then
    ``study.tell``. A trial its worker finished in the meantime is left as it is."""
    ours = {f"{socket.gethostname()}:{p.pid}" for p in procs}
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("worker") in ours:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            try:
                storage.set_trial_user_attr(trial_id, "fail_reason", "interrupted")
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            with_retries(study.tell, trial.number, state=TrialState.FAIL, skip_if_finished=True)


def watch_supervisor() -> None:
    """A worker that `sweetspot run --workers N` started stops as on Ctrl-C when that supervisor
    dies (killed, its terminal closed), instead of running on as an orphan that nobody can stop:
    on Linux the kernel sends it SIGTERM then (PR_SET_PDEATHSIG); anywhere, ``supervisor_gone``
    is checked between trials."""
    if not os.environ.get(SUPERVISOR_ENV):
        return
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    if supervisor_gone():  # it died before the line above took effect
        os.kill(os.getpid(), signal.SIGTERM)


def supervisor_gone() -> bool:
    """True for a worker whose supervisor (``SWEETSPOT_SUPERVISOR``) is no longer its parent."""
    pid = os.environ.get(SUPERVISOR_ENV)
    return bool(pid) and os.getppid() != int(pid)


class GracefulStop:
    """SIGINT and SIGTERM for a worker: interrupt a trial's objective (Optuna then fails that
    trial, which records ``fail_reason: interrupted``), but never Optuna's own bookkeeping around it.
    A signal that arrives between trials, or
    while Optuna takes a queued trial, is remembered: that trial is failed as soon as its objective
    starts, and the worker stops before the next one. So an interrupted worker leaves no RUNNING trial."""

    def __init__(self, again_after: float = 0.5) -> None:
        self.requested = False
        self.in_objective = False
        self.again_after = again_after
        self._insisting = False

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.requested = True
        if self.in_objective:
            self._insist()
            raise KeyboardInterrupt

    def _insist(self) -> None:
        """Python drops an exception raised while it runs a finaliser or a weakref callback
        ("Exception ignored in ..."), and a signal's handler may run just then (seen in CI: the
        objective trained on and its trial completed). So the main thread is interrupted again
        every ``again_after`` seconds until the objective has ended."""
        if self._insisting:
            return
        self._insisting = True

        def again() -> None:
            while self.in_objective:
                time.sleep(self.again_after)
                if self.in_objective:
                    _thread.interrupt_main(signal.SIGINT)  # runs _on_signal in the main thread
            self._insisting = False

        threading.Thread(target=again, daemon=True, name="sweetspot-interrupt").start()

    def wrap(self, objective: Callable[[optuna.Trial], Any]) -> Callable[[optuna.Trial], Any]:
        def guarded(trial: optuna.Trial) -> Any:
            if self.requested:
                trial.set_user_attr("fail_reason", "interrupted")
                raise KeyboardInterrupt
            self.in_objective = True
            try:
                return objective(trial)
            except KeyboardInterrupt:  # wherever in the objective it landed: the trial says why it failed
                self.in_objective = False  # a second signal must not interrupt the record
                trial.set_user_attr("fail_reason", "interrupted")
                raise
            finally:
                self.in_objective = False

        return guarded


def drain_with_progress(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], Any],
    total: int,
    *,
    progress: bool = True,
    after_trial: TrialCallback | None = None,
    **kwargs: Any,
) -> int:
    """`drain` in this process, with one progress bar: trials done / total, best values, elapsed.
    Ctrl-C and SIGTERM stop it cleanly (GracefulStop). ``after_trial`` runs after each finished
    trial (keeping the disk bounded); its storage calls are retried, and its failure is a warning."""
    from tqdm.auto import tqdm

    stop = GracefulStop()
    stop.install()
    objective = stop.wrap(objective)

    finished: list[FrozenTrial] = []
    with tqdm(total=total, unit="trial", desc=study.study_name, disable=not progress, dynamic_ncols=True) as bar:

        def on_trial_end(study: optuna.Study, trial: FrozenTrial) -> None:
            finished.append(trial)
            if trial.state == TrialState.FAIL:
                bar.write(
                    f"trial {trial.number} failed: {trial.user_attrs.get('fail_reason', 'see the log')}",
                    file=sys.stderr,
                )
            elif not progress:  # a log line per trial instead of the bar (worker log files)
                values = " ".join(f"{v:.4f}" for v in trial.values or [])
                print(f"trial {trial.number} {trial.state.name.lower()}: {trial.params} -> {values}", flush=True)
            with contextlib.suppress(*STORAGE_ERRORS):  # the bar may skip a beat while the database recovers
                bar.set_postfix_str(" ".join(f"{k}={v:.3f}" for k, v in best_so_far(study, finished).items()))
            bar.update(1)
            if after_trial is not None:
                try:
                    with_retries(after_trial, study, trial)
                except (*STORAGE_ERRORS, OSError) as exc:
                    log.warning("after trial %d: %s", trial.number, first_line(exc))

        try:
            return drain(study, objective, on_trial_end=on_trial_end,
                         stop_requested=lambda: stop.requested or supervisor_gone(), **kwargs)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
