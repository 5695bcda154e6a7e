"""Plain data (a parsed YAML file, a study's stored config) into the config's dataclasses, type by type.

Every key is checked: unknown keys get a did-you-mean, wrong types and values outside a ``Literal``
name the field and what is allowed, in one line.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable
from typing import Any, Literal

from sweetspot.config.schema import NetConfig
from sweetspot.errors import ConfigError
from sweetspot.trusted_imports import name_for

# The fields that may hold a Python callable instead of a name (from Python, not from a file).
CALLABLE_FIELDS = ("data.name", "teacher.arch", "student.arch")
_TRAINING_KEYS = {"arch", "optimizer", "lr", "schedule", "lr_decay", "precision", "epochs", "batch_size", "seed"}


def build(cls: type, raw: Any, source: str, where: str) -> Any:
    """An instance of the dataclass ``cls`` from the mapping ``raw`` (at ``where`` in ``source``)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {where.rstrip('.') or 'the config'} must be a mapping, got {_kind(raw)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in raw.items():
        key = str(key)
        if key == "options" and issubclass(cls, NetConfig):
            extra.update(coerce(dict[str, Any], value, source, where + key))  # the stored form
            continue
        if key not in names:
            if issubclass(cls, NetConfig) and key not in _TRAINING_KEYS:
                extra[key] = value  # architecture options, checked against the registry later
                continue
            raise ConfigError(f"{source}: unknown key {where + key!r}{did_you_mean(key, names)}")
        if where + key in CALLABLE_FIELDS:
            value = name_for(value, where + key)
        kwargs[key] = coerce(hints[key], value, source, where + key)
    if issubclass(cls, NetConfig):
        kwargs["options"] = extra
    return cls(**kwargs)


def coerce(hint: Any, value: Any, source: str, where: str) -> Any:
    """``value`` as the type ``hint`` says, or the one-line error naming ``where`` and what is allowed."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, source, where + ".")
    if origin is Literal:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {where} must be a string, got {value!r}")
        if value not in args:
            raise ConfigError(f"{source}: {where}: unknown value {value!r}{did_you_mean(value, args)} "
                              f"(allowed: {', '.join(args)})")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return coerce(inner[0], value, source, where)
        for choice in inner:  # str | tuple: the first type the value has
            if isinstance(value, str) == (choice is str):
                return coerce(choice, value, source, where)
        raise ConfigError(f"{source}: {where} must be a string or a list, got {_kind(value)}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {where} must be a list, got {_kind(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(args[0], v, source, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{source}: {where} must be a list of {len(args)} values [low, high], got {value!r}")
        return tuple(coerce(a, v, source, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {where} must be a mapping, got {_kind(value)}")
        return {str(k): coerce(args[1], v, source, f"{where}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {where} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {hint!r}")  # a bug in this module, not user input


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """ " (did you mean 'x'?)" for the closest choice, or nothing: used by every name check."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
