"""What the commands share: the parser class, argument types, the option groups, and the flags'
names for the assembly's refusals. ``worker_argv`` derives a worker's command line from the groups."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from sweetspot import api
from sweetspot.assembly import Names, Workers
from sweetspot.config import KD_LOSSES

FLAGS = Names(storage="--storage", study="--study", artifacts="--artifacts", checkpoints="--checkpoints",
              device="--device", threads="--threads")


class Parser(argparse.ArgumentParser):
    """argparse with the project's error shape: one line, exit 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def int_at_least(minimum: int, what: str) -> Callable[[str], int]:
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


positive_int = int_at_least(1, "a positive integer")
non_negative_int = int_at_least(0, "an integer >= 0")


def classes(text: str) -> tuple[int, ...]:
    """``--withheld 3,5,8`` (or ``none``)."""
    if text.strip().lower() == "none":
        return ()
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"must be class numbers separated by commas, or none; got {text!r}") from exc


classes.render = lambda value: ",".join(map(str, value)) or "none"  # type: ignore[attr-defined]  # for worker_argv


def temperatures(text: str) -> tuple[float, ...]:
    """``--temperatures 3,9,20``: positive and finite; a whole number is kept as an int (T=9, not 9.0)."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or not all(0 < t < float("inf") for t in values):
        raise argparse.ArgumentTypeError(f"must be positive temperatures separated by commas; got {text!r}")
    return tuple(int(t) if t.is_integer() else t for t in values)


def workers_settings(args: argparse.Namespace) -> Workers:
    """The worker options of ``args`` (group ``workers``) as the assembly takes them."""
    return Workers(args.artifacts, args.checkpoints, not args.no_share, args.checkpoint_mb, args.checkpoint_every,
                   args.keep_weights, args.heartbeat, args.grace)


def with_data_flags(args: argparse.Namespace, config: Any) -> Any:
    """``--data-dir`` and ``--download`` over the config's."""
    from sweetspot.assembly import with_data_dir

    return with_data_dir(config, args.data_dir, args.download)


def with_transfer_flags(args: argparse.Namespace, config: Any, *, study: bool = True) -> Any:
    """``--withheld``, ``--examples-per-class`` and ``--loss`` over the config's distill section, checked as
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


def study_config(args: argparse.Namespace) -> Any:
    """The config a study command runs: the file (or the default study) with the data and transfer flags."""
    from sweetspot.config import load_config

    return with_transfer_flags(args, with_data_flags(args, load_config(args.config)))


def later(args: argparse.Namespace, words: list[str], config: Any | None = None) -> str:
    """A later command on this run's study (``words``), as it must be typed to work: with the
    storage this run was given (unless it came from $SWEETSPOT_STORAGE, which every command reads).
    With ``config``, for a command that reads the study's stored config (export): also the data
    folder and an --allow-import for each package of the config's import paths, whose modules import
    from the config's folder (PYTHONPATH names it when it is not the working directory). A password
    in the URL is never printed: it shows as ***, to be put back."""
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


def option_groups() -> dict[str, argparse.ArgumentParser]:
    """The option groups commands share, as argparse parents: storage, compute, transfer, worker, common."""
    storage = Parser(add_help=False)
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
    compute = Parser(add_help=False)
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
        type=positive_int,
        metavar="N",
        help="torch CPU threads (default: $SWEETSPOT_THREADS, else all cores; run --workers N: cores / N)",
    )
    transfer = Parser(add_help=False)
    transfer.add_argument(
        "--withheld",
        type=classes,
        metavar="K,K",
        help="classes withheld from the transfer set (default: the config's; none for none)",
    )
    transfer.add_argument(
        "--examples-per-class",
        type=positive_int,
        metavar="N",
        help="keep N transfer examples per class (default: the config's)",
    )
    transfer.add_argument(
        "--loss",
        choices=KD_LOSSES,
        help="distillation loss convention: hinton (a T^2 KL) or paper (Eq. 4 as printed) (default: the config's)",
    )
    common = Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    common.add_argument(
        "--allow-import",
        action="append",
        metavar="PKG",
        help="follow import paths (package.module:callable) of this top-level package wherever they come from, "
        "e.g. a study's stored config (repeatable; also $SWEETSPOT_IMPORTS, comma-separated)",
    )
    workers = Parser(add_help=False)
    workers.add_argument(
        "config", nargs="?", help="study config YAML (default: the built-in digits study = studies/digits.yaml)"
    )
    workers.add_argument("--no-progress", action="store_true", help="no progress bar")
    workers.add_argument(
        "--heartbeat",
        type=positive_int,
        default=api.HEARTBEAT_S,
        metavar="S",
        help=f"seconds between a running trial's heartbeats (default: {api.HEARTBEAT_S})",
    )
    workers.add_argument(
        "--grace",
        type=positive_int,
        default=api.GRACE_S,
        metavar="S",
        help=f"seconds without a heartbeat after which a trial is failed and queued again (default: {api.GRACE_S})",
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
        type=positive_int,
        default=api.CHECKPOINT_MB,
        metavar="MB",
        help="size bound of the checkpoint folder; those that serve the fewest future trials go first, then the "
        f"least recently used (default: {api.CHECKPOINT_MB}, three checkpoints of the default 6 x 512 teacher)",
    )
    workers.add_argument(
        "--keep-weights",
        type=non_negative_int,
        default=api.KEEP_WEIGHTS,
        metavar="K",
        help="keep teacher weights for the best K trials only; the others' are deleted and retrained from "
        f"their recipe when asked for (default: {api.KEEP_WEIGHTS})",
    )
    workers.add_argument(
        "--checkpoint-every",
        type=non_negative_int,
        default=api.CHECKPOINT_EVERY,
        metavar="K",
        help=f"also store every K-th epoch of a teacher, for shorter trials of its path (default: "
        f"{api.CHECKPOINT_EVERY}, only where trials stop)",
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
    groups = option_groups()
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
