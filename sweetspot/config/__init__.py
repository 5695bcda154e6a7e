"""Study configs: read, checked and compared; the schema itself is in ``schema.py``.

A config file is YAML read with ``yaml.safe_load`` (no tags, no code). Every key is checked
(``coerce.py``), then every range (each section's ``check``). Architecture and dataset names are
checked against their registries by the modules that own them (``core/models.py``,
``core/splits.py``) once torch is imported, still before any storage is touched.

    >>> config = load_config("studies/digits.yaml")      # doctest: +SKIP
    >>> config.search.batch_size
    (16, 1024)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from sweetspot.config.coerce import CALLABLE_FIELDS, build, did_you_mean
from sweetspot.config.schema import (
    KD_LOSSES,
    DataConfig,
    DistillConfig,
    EarlyStopConfig,
    NetConfig,
    ReferenceConfig,
    SearchConfig,
    StudentConfig,
    StudyConfig,
    batch_size_choices,
)
from sweetspot.errors import ConfigError
from sweetspot.trusted_imports import name_for, trust_file

__all__ = [
    "CALLABLE_FIELDS", "KD_LOSSES", "DataConfig", "DistillConfig", "EarlyStopConfig", "NetConfig", "ReferenceConfig",
    "SearchConfig", "StudentConfig", "StudyConfig", "batch_size_choices", "config_diff", "config_from_dict",
    "did_you_mean", "load_config", "named_objects",
]


def load_config(path: str | Path | None) -> StudyConfig:
    """Read and validate a YAML study config; ``None`` gives the default (digits) study.

        >>> load_config(None).n_trials
        25
    """
    if path is None:
        return StudyConfig()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found (give a YAML file, e.g. studies/digits.yaml)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from exc
    if raw is None:
        raw = {}
    config = config_from_dict(raw, source=str(path))
    trust_file(path, (config.teacher.arch, config.student.arch, config.data.name))  # the user passed this file
    return config


def config_from_dict(raw: Any, source: str = "config") -> StudyConfig:
    """Build a validated config from plain data (a parsed file, or a study's stored config)."""
    config = build(StudyConfig, raw, source, "")

    def fail(where: str, message: str) -> None:
        raise ConfigError(f"{source}: {where} {message}")

    def choice(where: str, value: str, allowed: tuple[str, ...]) -> None:
        if value not in allowed:
            raise ConfigError(f"{source}: {where}: unknown value {value!r}{did_you_mean(value, allowed)} "
                              f"(allowed: {', '.join(allowed)})")

    config.check(fail, choice)
    return config


def named_objects(config: StudyConfig) -> StudyConfig:
    """``config`` with a callable given for a network or the dataset replaced by its name
    (``trusted_imports.name_for``), so that it is stored, compared and followed like any other."""
    return dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, name=name_for(config.data.name, "data.name")),
        teacher=dataclasses.replace(config.teacher, arch=name_for(config.teacher.arch, "teacher.arch")),
        student=dataclasses.replace(config.student, arch=name_for(config.student.arch, "student.arch")),
    )


def config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ, with both values: for the mismatched-study message."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: {json.dumps(va)} -> {json.dumps(vb)}")
    return out
