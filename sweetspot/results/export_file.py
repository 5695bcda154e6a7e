"""The `sweetspot export` file: what every entry holds, and the one check every reader makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sweetspot.errors import FileError

# What every entry of an export's ``teachers`` list holds (see export.build_export).
EXPORT_TEACHER_KEYS = ("trial", "best", "params", "recipe", "metrics")
RECIPE_KEYS = ("dataset", "arch", "optimizer", "lr", "batch_size", "epochs", "seed")  # teachers.teacher_recipe


def read_export(path: str | Path) -> dict[str, Any]:
    """A `sweetspot export` file (YAML or JSON: YAML reads both), checked to hold what every reader
    needs: a config and a non-empty list of teachers with their trial, recipe, params and metrics,
    exactly one of them marked best. Anything else is one FileError naming the file."""
    shown = str(path)
    try:
        document = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise FileError(f"cannot read {shown!r} ({exc.strerror})") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise FileError(f"{shown!r} is not a `sweetspot export` file (not YAML or JSON)") from exc
    return check_export(document, shown)


def check_export(document: Any, shown: str) -> dict[str, Any]:
    """``document`` (read from the file ``shown``, or handed over from Python), checked as ``read_export`` says."""
    teachers = document.get("teachers") if isinstance(document, dict) else None
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict) or not teachers \
            or not isinstance(teachers, list):
        raise FileError(f"{shown!r} is not a `sweetspot export` file (it needs a config and a list of teachers)")
    for entry in teachers:
        missing = [k for k in EXPORT_TEACHER_KEYS if not isinstance(entry, dict) or k not in entry]
        if not missing:
            recipe = entry["recipe"]
            missing = [f"recipe.{k}" for k in RECIPE_KEYS if not isinstance(recipe, dict) or k not in recipe]
        if missing:
            raise FileError(f"{shown!r}: a teacher entry lacks {', '.join(missing)}; "
                            "write the file again with `sweetspot export`")
    if sum(bool(t["best"]) for t in teachers) != 1:
        raise FileError(f"{shown!r}: exactly one teacher must be marked best; write it again with `sweetspot export`")
    return document
