"""sweetspot: find the teacher batch size and epochs whose soft labels distil best.

The public API (``sweetspot.api``) is loaded on first use: ``import sweetspot`` and reading
``sweetspot.run_study`` import neither torch nor Optuna; calling it does. The layers below it:
``core`` (the ML, no Optuna) -> ``service`` (Optuna) -> ``results`` -> ``assembly`` -> ``api`` / ``cli``.

    import sweetspot
    config = sweetspot.load_config("studies/digits.yaml")
    study = sweetspot.run_study(config, storage="sqlite:///s.db", n_trials=25)
    best = sweetspot.export_best(study, confirm=3)
    teacher = sweetspot.load_teacher(best)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    "load_config": "sweetspot.config",
    "StudyConfig": "sweetspot.config",
    "DataConfig": "sweetspot.config",
    "NetConfig": "sweetspot.config",
    "StudentConfig": "sweetspot.config",
    "run_study": "sweetspot.api",
    "export_best": "sweetspot.api",
    "load_teacher": "sweetspot.api",
    "Objective": "sweetspot.api",
    "SweetspotError": "sweetspot.errors",
}
__all__ = [
    "DataConfig", "NetConfig", "Objective", "StudentConfig", "StudyConfig", "SweetspotError", "__version__",
    "export_best", "load_config", "load_teacher", "run_study",
]

if TYPE_CHECKING:
    from sweetspot.api import Objective, export_best, load_teacher, run_study
    from sweetspot.config import DataConfig, NetConfig, StudentConfig, StudyConfig, load_config
    from sweetspot.errors import SweetspotError


def __getattr__(name: str) -> Any:
    """The public names, imported when first read (PEP 562)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'sweetspot' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
