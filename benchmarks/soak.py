"""A hostile night for a study on real PostgreSQL: killed workers, dropped connections, a restart.

Starts ``sweetspot run --workers W --trials N`` of a cheap digits config on PostgreSQL and, while it
runs, SIGKILLs ``--kills`` of its workers at random moments, terminates every database connection
(``pg_terminate_backend``) every ``--terminate-every`` seconds, and restarts PostgreSQL itself once
(``pg_ctlcluster ... restart``; ``--no-restart`` leaves it alone). Then it waits for the study to end
by itself and prints: trials finished, failed and retried, RUNNING, duplicates (two finished trials
for one queued slot), whether every retry kept its trial's parameters and seed, and whether the
supervisor ended on its own. Target (issue 15): with 8 workers x 25 trials, 200 finished, 0 RUNNING,
0 duplicates, every retry faithful, the study ends by itself.

    .venv/bin/python benchmarks/soak.py [--url postgresql+psycopg://postgres@127.0.0.1:5432/test]
        [--workers 8] [--trials 200] [--kills 3] [--terminate-every 10] [--no-restart] [--seed 0]

Exit code 0 when the target is met, 1 otherwise (the tests run a short version: 2 workers, 1 kill,
terminations every second for 12 s, no restart).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import optuna
import sqlalchemy
import yaml
from machine import describe
from optuna.trial import TrialState

CHEAP = {
    "name": "soak",
    "seed": 0,
    "teacher": {"arch": "mlp", "width": 32, "depth": 2},
    "student": {"arch": "linear", "epochs": 5},
    "distill": {"withheld_classes": [3]},
    "search": {"batch_size": [32, 256], "epochs": [1, 8], "repeats": True},
}
TERMINATE = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


def children(pid: int) -> list[int]:
    """The live worker processes a supervisor started (Linux /proc; killed ones not yet reaped left out)."""
    try:
        found = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []
    alive = []
    for child in found:
        try:
            status = Path(f"/proc/{child}/status").read_text()
        except FileNotFoundError:
            continue
        if "\nState:\tZ" not in status:
            alive.append(child)
    return alive


def worker_errors(logs: Path) -> list[str]:
    """The last lines of each worker log that ends in an error (a worker that exited non-zero)."""
    out = []
    for log in sorted(logs.glob("*.log")):
        lines = log.read_text(errors="replace").strip().splitlines()
        if any("Traceback" in line or "error:" in line for line in lines):
            out.append(f"{log.name}: " + " | ".join(lines[-4:]))
    return out


def training(url: str, study: str) -> set[int]:
    """The pids of the workers that hold a RUNNING trial (none while the database is unreachable)."""
    try:
        running = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False,
                                                                              states=(TrialState.RUNNING,))
    except Exception:  # down, restarting, or the study not made yet: any worker will do
        return set()
    return {pid for t in running if (pid := _pid(t)) is not None}


def restart_postgres() -> str:
    version = sorted(os.listdir("/etc/postgresql"))[0]
    done = subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
                          capture_output=True, text=True, check=False)
    return "restarted" if done.returncode == 0 else f"restart failed: {done.stderr.strip()[:100]}"


def chaos(
    run: subprocess.Popen, url: str, args: argparse.Namespace, log: list[str], killed: list[int], stop: threading.Event
) -> None:
    """Kills, terminations and one restart at seeded random moments while the run lasts."""
    rng = random.Random(args.seed)
    start = time.monotonic()
    kills = sorted(rng.uniform(5, args.chaos_window) for _ in range(args.kills))
    restart_at = rng.uniform(10, args.chaos_window) if args.restart else None
    next_termination = args.terminate_every
    terminations = 0
    engine = sqlalchemy.create_engine(url, pool_pre_ping=True)
    while not stop.is_set() and run.poll() is None:
        now = time.monotonic() - start
        alive = children(run.pid) if kills and now >= kills[0] else []
        if alive:  # a kill due before the workers have started waits for them
            kills.pop(0)
            busy = [pid for pid in alive if pid in training(url, args.study)]  # a worker in a trial, if any
            victim = rng.choice(busy or alive)
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
            log.append(f"{now:6.1f} s: SIGKILL worker {victim}{'' if busy else ' (not in a trial)'}")
        if now >= next_termination and terminations < args.terminations:
            try:
                with engine.connect() as connection:
                    dropped = connection.execute(sqlalchemy.text(TERMINATE)).scalar()
                log.append(f"{now:6.1f} s: terminated {dropped} connections")
            except sqlalchemy.exc.SQLAlchemyError as exc:
                log.append(f"{now:6.1f} s: termination failed ({str(exc).splitlines()[0][:80]})")
            terminations += 1
            next_termination += args.terminate_every
        if restart_at is not None and now >= restart_at:
            restart_at = None
            log.append(f"{now:6.1f} s: PostgreSQL {restart_postgres()}")
            engine.dispose()
        time.sleep(0.2)
    engine.dispose()


def tally(study: optuna.Study, requested: int, killed: set[int]) -> dict[str, object]:
    """What the study holds: finished, failed and retried (how many of those ran on a killed worker),
    RUNNING, duplicates, faithful retries."""
    trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    finished = [t for t in trials if t.state == TrialState.COMPLETE]

    def origin(trial: optuna.trial.FrozenTrial) -> int:  # the queued slot a retry stands for
        return trial.system_attrs.get("failed_trial", trial.number)

    slots = [origin(t) for t in finished]
    pairs = [(t, by_number[t.system_attrs["retry_history"][-1]]) for t in trials if t.system_attrs.get("retry_history")]
    retried = {before.number for _, before in pairs}
    # a trial may have failed before it chose all its parameters, or its seed: the retry keeps what it had
    unfaithful = [
        (retry.number, before.number)
        for retry, before in pairs
        if before.params.items() - retry.params.items()
        or ("seed" in before.user_attrs and retry.user_attrs.get("seed") != before.user_attrs["seed"])
    ]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    return {
        "finished": len(finished),
        "failed_and_retried": sum(t.number in retried for t in failed),
        "of_those_on_killed_workers": sum(t.number in retried and _pid(t) in killed for t in failed),
        "failed_not_retried": sum(t.number not in retried for t in failed),
        "running": sum(t.state == TrialState.RUNNING for t in trials),
        "waiting": sum(t.state == TrialState.WAITING for t in trials),
        "duplicates": len(slots) - len(set(slots)),
        "retries_faithful": not unfaithful,
        "unfaithful_retries": unfaithful,
        "target_met": len(finished) == requested and len(slots) == len(set(slots)),
    }


def _pid(trial: optuna.trial.FrozenTrial) -> int | None:
    worker = trial.user_attrs.get("worker")
    return int(worker.rpartition(":")[2]) if worker else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("SWEETSPOT_TEST_POSTGRES",
                                                        "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--terminate-every", type=float, default=10.0)
    parser.add_argument("--terminations", type=int, default=10**6, help="rounds of terminations at most")
    parser.add_argument("--chaos-window", type=float, default=60.0, help="kills and the restart fall in [5, this] s")
    parser.add_argument("--no-restart", dest="restart", action="store_false")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up waiting for the study to end")
    args = parser.parse_args()
    print(describe())
    name = args.study = f"soak-{uuid.uuid4().hex[:8]}"
    log: list[str] = []
    killed: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "soak.yaml"
        config.write_text(yaml.safe_dump(CHEAP))
        cmd = [sys.executable, "-m", "sweetspot.cli", "run", str(config), "--storage", args.url, "--study", name,
               "--workers", str(args.workers), "--trials", str(args.trials), "--heartbeat", "2", "--grace", "10",
               "--log-dir", str(Path(tmp) / "logs"), "--artifacts", str(Path(tmp) / "artifacts"), "--no-progress"]
        start = time.monotonic()
        run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stop = threading.Event()
        thread = threading.Thread(target=chaos, args=(run, args.url, args, log, killed, stop), daemon=True)
        thread.start()
        try:
            _, stderr = run.communicate(timeout=args.timeout)
            ended = True
        except subprocess.TimeoutExpired:
            run.kill()
            _, stderr = run.communicate()
            ended = False
        stop.set()
        thread.join()
        seconds = time.monotonic() - start
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        study = optuna.load_study(study_name=name, storage=args.url)
        result = tally(study, args.trials, set(killed)) | {"ended_by_itself": ended, "exit_code": run.returncode,
                                              "wall_s": round(seconds, 1)}
        optuna.delete_study(study_name=name, storage=args.url)
        errors = worker_errors(Path(tmp) / "logs")
    print(f"{args.workers} workers x {args.trials} trials on {args.url.rpartition('@')[2]}; chaos:")
    for line in log:
        print(f"  {line}")
    if stderr.strip():
        print("supervisor stderr (last lines):\n  " + "\n  ".join(stderr.strip().splitlines()[-5:]))
    for line in errors:
        print(f"worker log: {line[:600]}")
    print(json.dumps(result))
    ok = result["target_met"] and result["running"] == 0 and result["retries_faithful"] and ended
    print("target met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
