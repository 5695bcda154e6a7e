"""mkdocs hook: the reference pages written from the code itself, at every build.

A page holding ``<!-- generated: cli -->``, ``config`` or ``metrics`` gets, in its place, the command
line from the parser (``sweetspot.cli.build_parser``), the config keys from the schema's dataclasses
(their types, defaults and the comment beside each field), or the metric registry. Nothing here is
copied by hand, so nothing can drift: tests/test_docs.py checks the built pages against the same code.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import os
import re
import typing
from typing import Any

MARK = re.compile(r"<!-- generated: (\w+) -->")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return MARK.sub(lambda m: GENERATORS[m.group(1)](), markdown)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def cli_reference() -> str:
    """Every command: its help, its usage and each of its arguments with its help (defaults included)."""
    from sweetspot.cli import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps the usage lines to this width
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in commands._choices_actions}
    out = []
    for name, sub in commands.choices.items():
        usage = sub.format_usage().strip()
        out += [f"## `sweetspot {name}`", "", f"{helps[name]}.", "", "```text", usage, "```", "",
                "| argument | what it does |", "|---|---|"]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            names = ", ".join(action.option_strings) or action.dest
            if action.metavar and action.option_strings:
                names += f" {action.metavar}"
            elif action.choices and action.option_strings:
                names += " {" + ",".join(map(str, action.choices)) + "}"
            out.append(f"| `{_cell(names)}` | {_cell(action.help or '')} |")
        out.append("")
    return "\n".join(out)


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in typing.get_args(hint))
    text = getattr(hint, "__name__", None) if not typing.get_args(hint) else None
    return f"`{text or str(hint).replace('typing.', '')}`"


def _comments(cls: type) -> dict[str, str]:
    """The comment written beside each field of a dataclass (or, failing that, on the lines just above
    it), by field name."""
    source = inspect.getsource(cls)
    lines = source.splitlines()
    found = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            line = lines[node.end_lineno - 1]
            if "  # " in line:
                found[node.target.id] = line.split("  # ", 1)[1].strip()
                continue
            above, i = [], node.lineno - 2
            while i >= 0 and lines[i].strip().startswith("# "):
                above.insert(0, lines[i].strip()[2:])
                i -= 1
            if above:
                found[node.target.id] = " ".join(above)
    return found


def config_reference() -> str:
    """Every key of a study config, section by section: type or allowed values, default, what it is."""
    from sweetspot.config import StudyConfig, schema

    default = StudyConfig()
    sections: list[tuple[str, type, Any]] = [("", StudyConfig, default)]
    sections += [(f.name, type(getattr(default, f.name)), getattr(default, f.name))
                 for f in dataclasses.fields(StudyConfig) if dataclasses.is_dataclass(getattr(default, f.name))]
    out = []
    for name, cls, value in sections:
        hints = typing.get_type_hints(cls, vars(schema))
        notes = {**_comments(cls)}
        for base in cls.__mro__[1:]:  # a student inherits the network's fields and their comments
            if dataclasses.is_dataclass(base):
                notes = {**_comments(base), **notes}
        doc = inspect.getdoc(cls) or ""
        out += [f"## `{name}`" if name else "## Top level", ""]
        if doc and not doc.startswith(cls.__name__ + "("):
            out += [doc.split("\n\n")[0], ""]
        out += ["| key | type | default | what it is |", "|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(getattr(value, f.name)):
                continue
            key = f"{name}.{f.name}" if name else f.name
            shown = json.dumps(getattr(value, f.name), default=list)
            out.append(f"| `{key}` | {_cell(_type_name(hints[f.name]))} | `{_cell(shown)}` | "
                       f"{_cell(notes.get(f.name, ''))} |")
        out.append("")
    return "\n".join(out)


def metrics_reference() -> str:
    """The metric registry: what each trial records, and which need no student."""
    from sweetspot.config.metric_registry import RECORD_ATTRS, TEACHER_METRICS, TRIAL_METRICS

    out = ["## Metrics an objective can be", "", "| metric | needs a student | what it is |", "|---|---|---|"]
    out += [f"| `{m}` | {'no' if m in TEACHER_METRICS else 'yes'} | {_cell(text)} |"
            for m, text in TRIAL_METRICS.items()]
    out += ["", "## Records beside them", "", "| user attribute | what it holds |", "|---|---|"]
    out += [f"| `{m}` | {_cell(text)} |" for m, text in RECORD_ATTRS.items()]
    return "\n".join(out) + "\n"


GENERATORS = {"cli": cli_reference, "config": config_reference, "metrics": metrics_reference}
