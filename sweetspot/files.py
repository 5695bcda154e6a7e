"""Files sweetspot writes and reads back: written whole or not at all, and export files checked once.

The lowest layer beside ``errors``: no torch, no Optuna, so that checkpoints, teachers and the CLI
can all use it without importing each other.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import yaml

from sweetspot.errors import FileError

# What every entry of an export's ``teachers`` list holds (see export.build_export).
EXPORT_TEACHER_KEYS = ("trial", "best", "params", "recipe", "metrics")
RECIPE_KEYS = ("dataset", "arch", "optimizer", "lr", "batch_size", "epochs", "seed")  # teachers.teacher_recipe


def _plain_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file (0o666 less the umask), read once at import:
    the umask can only be read by setting it."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


PLAIN_FILE_MODE = _plain_file_mode()


@contextmanager
def atomic_file(path: Path) -> Iterator[str]:
    """A temporary file beside ``path`` to write, renamed to ``path`` when the block ends without
    an error and removed otherwise: never a half-written file, even with several writers."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileError(f"directory {str(directory)!r} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise FileError(f"cannot write in {str(directory)!r} ({exc.strerror})") from exc
    os.close(fd)
    try:
        os.chmod(tmp, PLAIN_FILE_MODE)  # mkstemp's 0o600 would hide an export or a shared dataset from the group
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def folders_undone_on_error(*folders: Path) -> Iterator[None]:
    """Whichever of ``folders`` (and their parents) the block creates are removed again, if still empty,
    when it ends in an error: a refused command leaves no folder behind."""
    missing = {p.absolute() for folder in folders for p in (folder, *folder.absolute().parents) if not p.exists()}
    try:
        yield
    except BaseException:
        for folder in sorted(missing, key=lambda p: len(p.parts), reverse=True):  # the deepest first
            with suppress(OSError):  # not empty, or never made
                folder.rmdir()
        raise


def write_atomically(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        Path(tmp).write_text(text)


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
