"""`sweetspot trial` and `sweetspot experiment`: one trial, or one of the paper's experiments, outside any study."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sweetspot.assembly import given
from sweetspot.cli.command import Command
from sweetspot.cli.options import (
    FLAGS,
    classes,
    positive_int,
    study_config,
    temperatures,
    with_data_flags,
    with_transfer_flags,
)
from sweetspot.cli.tables import flat, table
from sweetspot.errors import ConfigError

# `sweetspot experiment` names (the keys of sweetspot.experiments.EXPERIMENTS, which imports torch)
EXPERIMENT_NAMES = ("entropy-vs-temperature", "missing-class", "examples-per-class", "penultimate", "kd-vs-ls")


class Trial(Command):
    name = "trial"
    help = "run one trial outside any study and print its metrics"
    groups = ("compute", "transfer", "common")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("config", nargs="?", help="study config YAML (default: the built-in digits study)")
        parser.add_argument("--batch-size", type=positive_int, required=True, help="teacher batch size")
        parser.add_argument("--epochs", type=positive_int, required=True, help="teacher epochs")
        parser.add_argument("--seed", type=int, help="trial seed (default: the config's seed)")
        parser.add_argument("--split", choices=("val", "test"), default="val", help="split to score on (default: val)")
        parser.add_argument("--format", choices=("table", "json"), default="table")

    def take_action(self, args: argparse.Namespace) -> int:
        from sweetspot.assembly import setup_compute
        from sweetspot.core.trial import TeacherParams, prepare, run_trial

        config = study_config(args)
        splits = prepare(config, setup_compute(args.device, args.threads, FLAGS))
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
            print(table(["metric", "value"], flat(record), left=1))
        return 0


class Experiment(Command):
    name = "experiment"
    help = "run one of the paper's experiments"
    groups = ("compute", "transfer", "common")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name", choices=EXPERIMENT_NAMES, help="the experiment: " + ", ".join(EXPERIMENT_NAMES))
        parser.add_argument("config", nargs="?", help="study config YAML (default: the built-in digits study)")
        parser.add_argument("--teacher", action="append", metavar="[LABEL=][ARCH:]BATCH:EPOCHS",
                            help="a teacher to train (repeatable), e.g. large=mlp:16:100")
        parser.add_argument("--export", metavar="FILE",
                            help="also the best teacher of a `sweetspot export` file (it comes first)")
        parser.add_argument("--out", default="results", metavar="DIR", help="output folder (default: results)")
        parser.add_argument("--split", choices=("val", "test"), default="val",
                            help="split the students are scored on (default: val)")
        parser.add_argument("--classes", type=classes, metavar="K,K",
                            help="missing-class: the classes to leave out in turn (default: all); "
                            "penultimate: its three classes (default: 0,1,2)")
        parser.add_argument("--temperatures", type=temperatures, metavar="T,T",
                            help="missing-class: the temperatures to distil at (default: 3,6,9,12,15,20, the paper's)")
        parser.add_argument("--teacher-seeds", type=positive_int, default=1, metavar="N",
                            help="train every teacher with N seeds and report mean ± sd over them (default: 1)")
        parser.add_argument("--checkpoints", metavar="DIR",
                            help="keep trained teachers here and reuse them in later experiments (or a study's "
                            "checkpoint folder, to reuse its trials' teachers); default: train every teacher afresh, "
                            "keep none")
        parser.add_argument("--checkpoint-mb", type=positive_int, default=2048, metavar="MB",
                            help="size bound of the --checkpoints folder; least recently used files go first "
                            "(default: 2048)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def take_action(self, args: argparse.Namespace) -> int:
        from tqdm.auto import tqdm

        from sweetspot.assembly import setup_compute
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
        config = with_transfer_flags(args, with_data_flags(args, load_config(args.config)), study=False)
        with given("--teacher"):
            teachers = [parse_teacher(t) for t in args.teacher or []]
        if args.export:
            with given("--export"):  # first: the curves of entropy-vs-temperature follow it
                teachers.insert(0, teacher_from_export(read_export(args.export), config.data.name))
        if not teachers:
            raise ConfigError(
                "--teacher or --export: name at least one teacher (e.g. --teacher small=64:5 --teacher large=16:100)"
            )
        if len({t.label for t in teachers}) < len(teachers):
            raise ConfigError("--teacher: two teachers have the same label; give each its own (LABEL=...)")
        splits = prepare(config, setup_compute(args.device, args.threads, FLAGS))
        if args.classes is not None and (not args.classes or not all(0 <= k < splits.n_classes for k in args.classes)):
            raise ConfigError(
                f"--classes: {','.join(map(str, args.classes)) or 'none'} is not a list of classes "
                f"0 to {splits.n_classes - 1}"
            )
        checkpoints = None
        if args.checkpoints:
            with given("--checkpoints"):
                checkpoints = CheckpointStore(Path(args.checkpoints), args.checkpoint_mb * 2**20)
        setup = Setup(config, splits, tuple(teachers), args.split, args.classes, args.teacher_seeds, checkpoints,
                      temperatures=args.temperatures)
        with given("--classes"):
            work = experiment.work(setup)  # checks what an experiment needs of its classes
        with tqdm(total=work, unit="step", disable=args.no_progress) as bar:
            paths = experiment.run(setup, Path(args.out), lambda: bar.update(1))
        print("wrote " + ", ".join(str(p) for p in paths))
        return 0


