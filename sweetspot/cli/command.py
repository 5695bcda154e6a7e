"""A subcommand owns its arguments and its action, as Optuna's commands do."""

from __future__ import annotations

import argparse


class Command:
    """One `sweetspot COMMAND`: its name, its one-line help, the shared option groups it takes
    (``options.option_groups``), its own arguments and its action (returning the exit code)."""

    name: str = ""
    help: str = ""
    groups: tuple[str, ...] = ("common",)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """This command's own arguments (besides its groups')."""

    def take_action(self, args: argparse.Namespace) -> int:
        raise NotImplementedError
