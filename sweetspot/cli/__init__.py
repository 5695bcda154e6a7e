"""The ``sweetspot`` command: a thin layer over the assembly the Python API uses (``assembly.py``).

One module per group of commands; each command owns its arguments (``command.Command``). Every
expected failure is one line on stderr and exit code 2 (``--debug`` shows the traceback). Importing
this package does not import torch or optuna: each command imports what it needs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sweetspot import __version__
from sweetspot.cli.command import Command
from sweetspot.cli.options import Parser, option_groups, worker_argv
from sweetspot.cli.result_commands import Copy, Export, Report, Teacher
from sweetspot.cli.serve_commands import Dashboard, StorageProxy
from sweetspot.cli.study_commands import Run, Worker
from sweetspot.cli.trial_commands import EXPERIMENT_NAMES, Experiment, Trial
from sweetspot.errors import SweetspotError

COMMANDS: dict[str, Command] = {c.name: c for c in (Run(), Worker(), Export(), Trial(), Experiment(), Dashboard(),
                                                     Report(), Teacher(), Copy(), StorageProxy())}

__all__ = ["COMMANDS", "EXPERIMENT_NAMES", "build_parser", "main", "worker_argv"]


def build_parser() -> argparse.ArgumentParser:
    groups = option_groups()
    parser = Parser(prog="sweetspot",
                    description="Find the teacher batch size and epochs whose soft labels distil best.")
    parser.add_argument("--version", action="version", version=f"sweetspot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS.values():
        command.add_arguments(sub.add_parser(command.name, parents=[groups[g] for g in command.groups],
                                             help=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.allow_import:
            from sweetspot.trusted_imports import allow

            allow(args.allow_import)
        return COMMANDS[args.command].take_action(args)
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
