"""The package's layers: who may import whom, what each import drags in, and where Optuna's
private API is used. The layers, lowest first, as docs/development.md's "Architecture" draws them."""

import ast
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


# Each layer may import its own modules and those of the layers before it, never one after it.
LAYERS = (
    ("errors", "config", "trusted_imports"),  # the foundation: what every layer reads
    ("core",),  # the ML: data, models, training, students, metrics, teacher paths, checkpoints, one trial
    ("service",),  # Optuna: storage, study, objective, workers, recovery, proxy, retries, notes, artifacts
    ("results",),  # what a study leaves: export, teachers, report, backup, retention
    ("experiments",),  # the paper's experiments, over the core and exported teachers
    ("assembly",),  # the one assembly of the parts
    ("api", "cli"),  # the two front ends
)


def _layer(module: str) -> int:
    """The layer of ``sweetspot.X...`` (the package ``sweetspot`` itself stands above all)."""
    top = module.split(".")[1] if "." in module else ""
    return next((i for i, names in enumerate(LAYERS) if top in names), len(LAYERS))


def _imports(path: Path) -> list[str]:
    """Every sweetspot module ``path`` imports, at the top or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("sweetspot.")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sweetspot"):
            found += [f"{node.module}.{a.name}" if node.module == "sweetspot" else node.module for a in node.names]
    return found


def test_every_module_imports_only_its_own_layer_and_those_below():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == PACKAGE:
            continue  # the package's lazy front door names the API
        module = "sweetspot." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for imported in _imports(path):
            if imported.split(".")[1] != "__version__" and _layer(imported) > _layer(module):
                upward.append(f"{module} imports {imported}")
    assert upward == []


def test_every_module_is_in_a_layer():
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert tops == {name for names in LAYERS for name in names}


def test_the_core_needs_no_optuna():
    modules = [f"sweetspot.core.{p.stem}" for p in (PACKAGE / "core").glob("*.py") if p.stem != "__init__"]
    assert _loaded_after("; ".join(f"import {m}" for m in modules), ["optuna"]) == []


def test_the_api_imports_neither_torch_nor_optuna_until_called():
    names = "sweetspot.run_study, sweetspot.export_best, sweetspot.load_teacher, sweetspot.Objective, " \
            "sweetspot.load_config, sweetspot.StudyConfig"
    assert _loaded_after(f"import sweetspot; {names}", ["torch", "optuna"]) == []


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
