"""The package's layers: what each import drags in, and where Optuna's private API is used."""

import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sweetspot"


def _loaded_after(statement: str, modules: list[str]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after ``statement``."""
    probe = f"import sys; {statement}; print(','.join(m for m in {modules!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return [m for m in result.stdout.strip().split(",") if m]


def test_importing_the_cli_loads_neither_torch_nor_optuna():
    assert _loaded_after("import sweetspot.cli", ["torch", "optuna"]) == []


def test_the_trial_and_the_checkpoints_need_no_optuna():
    assert _loaded_after("import sweetspot.core.trial", ["optuna"]) == []
    assert _loaded_after("import sweetspot.core.checkpoints", ["optuna", "sweetspot.results.export"]) == []


@pytest.mark.parametrize(
    "private", ["._storage", "._trial_id", "._study_id", "_create_new_trial", "ExperimentalWarning"]
)
def test_optunas_private_and_experimental_api_is_used_in_one_module_only(private):
    users = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if private in p.read_text())
    assert users in ([], ["service/optuna_internals.py"]), users


def test_no_module_needs_a_posix_only_import():
    users = [p.name for p in PACKAGE.rglob("*.py") if "import fcntl" in p.read_text()]
    assert users == []
