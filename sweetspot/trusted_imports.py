"""Import paths (``package.module:callable``) for the user's own networks, and who may name them.

A config names an architecture by registry name, ``torchvision:NAME``, or an import path. Importing a
module runs its code, so an import path is followed only where the user vouched for it:

* it is written in a config file given on the command line (``load_config`` calls ``trust_file``),
  whose folder is then on the import path (as uvicorn does with ``module:app``: a module beside the
  config imports without PYTHONPATH; the working directory is always on it);
* or its top-level package is listed in ``$SWEETSPOT_IMPORTS`` (comma-separated) or given with
  ``--allow-import`` (``allow``).

A config read back from a study's database (``sweetspot export``, ``report``) or an export file is
not vouched for by itself: whoever can write the database must not make a process import arbitrary
installed modules. torchvision, a dependency, is always allowed.

From Python (``sweetspot.run_study``, ``sweetspot.Objective``) a network or dataset may also be the
callable itself (``name_for``): the user handed it over, so it is trusted. One that another process can
import again keeps its import path; one that only this process holds (a notebook's function, a lambda)
is named ``python:QUALNAME@ID`` and cannot be followed by another process.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sweetspot.errors import ConfigError

IMPORTS_ENV = "SWEETSPOT_IMPORTS"
_trusted_paths: set[str] = set()  # exact import paths from config files the user passed
_allowed_packages: set[str] = set()  # from --allow-import
IN_PROCESS = "python"  # the module part of the name of a callable only this process holds
_objects: dict[str, Callable[..., Any]] = {}  # those callables, by name


def is_import_path(name: str) -> bool:
    """``module:callable`` (and not ``torchvision:NAME``, which the registry resolves itself)."""
    module, sep, attr = name.partition(":")
    return bool(sep and module and attr) and module != "torchvision"


def trust_file(config_file: Path, import_paths: Iterable[str]) -> None:
    """The import paths of a config file the user passed: followed, with the file's folder on the
    import path (the working directory always is: ``load_callable``)."""
    _trust(import_paths, config_file.resolve().parent)


def _trust(import_paths: Iterable[str], folder: Path) -> None:
    if str(folder) not in sys.path:  # the working directory is put there by load_callable
        sys.path.insert(0, str(folder))
    _trusted_paths.update(p for p in import_paths if is_import_path(p))


def trust_command_line(path: str) -> None:
    """An import path the user typed (``experiment --teacher``): followed, from the working directory."""
    _trusted_paths.add(path)


def allow(packages: Iterable[str]) -> None:
    """``--allow-import``: top-level packages whose import paths may be followed wherever they come from."""
    _allowed_packages.update(p.strip() for p in packages if p.strip())


def packages_to_allow(names: Iterable[str]) -> list[str]:
    """The top-level packages a later command must be given with --allow-import to follow the import
    paths among ``names`` (a config's architectures and dataset) from a study's stored config: those
    that ``$SWEETSPOT_IMPORTS`` does not list already."""
    return sorted({_package(name) for name in names if is_import_path(name)} - _listed())


def _listed() -> set[str]:
    """The packages ``$SWEETSPOT_IMPORTS`` lists (comma-separated)."""
    return {p.strip() for p in os.environ.get(IMPORTS_ENV, "").split(",") if p.strip()}


def _package(path: str) -> str:
    """The top-level package of an import path: what --allow-import names."""
    return path.partition(":")[0].split(".")[0]


def _allowed(path: str) -> bool:
    return path in _trusted_paths or _package(path) in _allowed_packages | _listed()


def name_for(value: Any, section: str) -> str:
    """What a config holds for ``value``: a name as it is, or a callable given from Python. A callable
    that ``module:qualname`` imports again keeps that import path (trusted: the user handed it over);
    any other is named ``python:QUALNAME@ID``, followed in this process only."""
    if isinstance(value, str):
        return value
    if not callable(value):
        raise ConfigError(f"{section}: must be a name or a callable, got a {type(value).__name__}")
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", type(value).__name__)
    if module and module != "__main__" and "<" not in qualname:
        path = f"{module}:{qualname}"
        try:
            target: Any = importlib.import_module(module)
            for part in qualname.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError):
            target = None
        if target is value:
            _trusted_paths.add(path)
            return path
    name = f"{IN_PROCESS}:{qualname}@{id(value):x}"
    _objects[name] = value
    return name


def in_process_only(name: str) -> bool:
    """Whether ``name`` stands for a callable that only this process holds (``name_for``)."""
    return name.partition(":")[0] == IN_PROCESS


def load_callable(path: str, section: str) -> Callable[..., Any]:
    """The callable an import path names, imported if it is allowed; every failure one line."""
    if in_process_only(path):
        if path not in _objects:
            raise ConfigError(f"{section}: {path!r} was a Python object of another process; give it as an import "
                              "path package.module:callable")
        return _objects[path]
    if not _allowed(path):
        raise ConfigError(
            f"{section}: import path {path!r} is not allowed here: only those in a config file given on the command "
            f"line are followed, or those of packages listed in ${IMPORTS_ENV} or given with --allow-import "
            f"(e.g. --allow-import {_package(path)})"
        )
    module_name, _, attr = path.partition(":")
    if str(Path.cwd()) not in sys.path:  # as uvicorn: a module in the working directory imports as it is
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"{section}: cannot import {module_name!r} for {path!r} ({exc}); put it beside the config file, in the "
            "working directory, or on PYTHONPATH"
        ) from exc
    except Exception as exc:  # the user's module failed while importing: say so in one line
        raise ConfigError(f"{section}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"{section}: {module_name!r} has no attribute {attr!r} (from {path!r})")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(
            f"{section}: {path!r} is a {type(target).__name__}, not a callable (input_shape, n_classes, **options)"
        )
    return target


def source_digest(path: str) -> str:
    """A digest of the source file of the module an (already checked) import path names: two
    workers whose files differ have different digests."""
    if in_process_only(path):
        try:
            text = inspect.getsource(_objects[path])
        except (KeyError, OSError, TypeError):
            return "in-process object"
        return "blake2b:" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    module = importlib.import_module(path.partition(":")[0])
    source = inspect.getsourcefile(module)
    if source is None:
        return "no source file"
    return "blake2b:" + hashlib.blake2b(Path(source).read_bytes(), digest_size=16).hexdigest()
