"""The README's promises about setting up: two commands, and CI running the same test command."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    assert block, "README.md has no command block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_readme_starts_with_exactly_two_set_up_commands():
    commands = _readme_commands()
    assert len(commands) == 2
    assert commands[0].endswith("sweetspot run")
    assert "pytest" in commands[1] and "[dev]" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (REPO / ".ci" / "run").read_text()
    assert _readme_commands()[1] in ci.splitlines()
    assert '"$status" -eq 5' in ci  # "no tests collected" fails CI
