"""`sweetspot run` and `sweetspot worker`: queue a study's trials and run them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sweetspot import api
from sweetspot.cli.command import Command
from sweetspot.cli.options import (
    FLAGS,
    later,
    non_negative_int,
    positive_int,
    study_config,
    worker_argv,
    workers_settings,
)
from sweetspot.cli.tables import summary

STUDY_GROUPS = ("storage", "compute", "workers", "transfer", "common")


class Run(Command):
    name = "run"
    help = "queue trials and run them (create or continue a study)"
    groups = STUDY_GROUPS

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--trials", type=positive_int, metavar="N",
                            help="trials to add to the study, across all workers (default: the config's n_trials)")
        parser.add_argument("--workers", type=non_negative_int, default=1, metavar="N",
                            help="worker processes on this machine (default: 1, in this process; 0: only queue "
                            "the trials)")
        parser.add_argument("--log-dir", default=api.LOG_DIR, metavar="DIR",
                            help=f"per-worker log files when --workers > 1 (default: {api.LOG_DIR})")

    def take_action(self, args: argparse.Namespace) -> int:
        from optuna.trial import TrialState

        from sweetspot import assembly
        from sweetspot.service.study import count_states, queue_trials
        from sweetspot.service.workers import Launch, drain_with_progress, supervise, threads_per_worker

        config = study_config(args)
        if args.workers > 1 and args.threads is None:
            args.threads = threads_per_worker(args.workers)
        settings = workers_settings(args)
        run = assembly.open_run(config, args.storage, args.study, settings, device=args.device, threads=args.threads,
                                names=FLAGS)
        study = run.study
        # queued by an earlier, interrupted run
        left = count_states(study.get_trials(deepcopy=False))[TrialState.WAITING]
        n = args.trials or config.n_trials
        queue_trials(study, n)
        total = n + left
        if args.workers == 0:
            worker = later(args, ["sweetspot", "worker", *worker_argv(args, study.study_name)])
            print(f"queued {n} trials in study {study.study_name!r} ({total} waiting); start workers with: {worker}")
            return 0
        hint = later(args, ["sweetspot", "export", "--study", study.study_name, "--out", "best-teacher.yaml"], config)
        if args.workers == 1:
            drain_with_progress(study, run.objective, total, progress=not args.no_progress,
                                after_trial=assembly.weights_kept(args.keep_weights, run.objective))
            summary(study, run.url, hint, reference=assembly.reference(run, say=_say))
            return 0
        import torch

        gpus = torch.cuda.device_count() if args.device != "cpu" else 0
        launch = Launch(args.workers, worker_argv(args, study.study_name), run.url, Path(args.log_dir),
                        study.study_name, args.threads, gpus)
        ended = supervise(launch, study, run.storage, total, progress=not args.no_progress)
        if ended.interrupted:
            raise KeyboardInterrupt
        reference = assembly.reference(run, say=_say)
        counts = count_states(study.get_trials(deepcopy=False))
        short = counts[TrialState.WAITING] + counts[TrialState.RUNNING] > 0
        code, failures = ended.exit_code(short), ended.failures()
        for failure in failures:
            level = "error" if code else "warning"
            after = "" if code else "; the other workers finished the study"
            print(f"sweetspot run: {level}: {failure}{after} (see {args.log_dir}/)", file=sys.stderr)
        summary(study, run.url, hint, failures, reference)
        return code


def _say(line: str) -> None:
    print(line, flush=True)


class Worker(Command):
    name = "worker"
    help = "run queued trials of a study until none is left"
    groups = STUDY_GROUPS

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--trials", type=positive_int, metavar="N",
                            help="stop after N trials of this worker (default: until the queue is empty)")
        parser.add_argument("--wait-for-queue", type=non_negative_int, default=0, metavar="S",
                            help="if nothing is queued yet, wait up to S seconds for queued trials (default: 0)")

    def take_action(self, args: argparse.Namespace) -> int:
        import time

        from optuna.trial import TrialState

        from sweetspot import assembly
        from sweetspot.service.study import count_states, worker_id
        from sweetspot.service.workers import drain_with_progress, watch_supervisor

        watch_supervisor()
        run = assembly.open_run(study_config(args), args.storage, args.study, workers_settings(args),
                                device=args.device, threads=args.threads, names=FLAGS)
        study = run.study
        queued = count_states(study.get_trials(deepcopy=False))[TrialState.WAITING]
        deadline = time.monotonic() + args.wait_for_queue
        while not queued and time.monotonic() < deadline:  # the step that queues may not have run yet
            time.sleep(2)
            queued = count_states(study.get_trials(deepcopy=False))[TrialState.WAITING]
        total = min(queued, args.trials) if args.trials else queued
        ran = drain_with_progress(study, run.objective, total, progress=not args.no_progress, max_trials=args.trials,
                                  after_trial=assembly.weights_kept(args.keep_weights, run.objective))
        nothing = "; nothing was queued (queue trials with: sweetspot run --workers 0 --trials N)"
        print(f"worker {worker_id()}: ran {ran} trials of study {study.study_name!r}"
              + ("" if ran or queued else nothing))
        return 0
