"""The README stays a page long; the documentation site builds in strict mode, its reference pages
hold every command, option, config key and metric the code has, and it renders in a browser."""

from __future__ import annotations

import dataclasses
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sweetspot.cli import build_parser
from sweetspot.config import StudyConfig
from sweetspot.config.metric_registry import RECORD_ATTRS, TRIAL_METRICS
from tests.conftest import chromium

REPO = Path(__file__).resolve().parents[1]


def test_the_readme_is_at_most_200_lines_and_links_into_the_site():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    for page in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (REPO / page).is_file(), page


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built in strict mode (a warning, a broken link or a missing page fails the build)."""
    out = tmp_path_factory.mktemp("site")
    mkdocs = Path(sys.executable).with_name("mkdocs")
    result = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=300, check=False,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def _text(site: Path, page: str) -> str:
    """A built page's text, tags stripped and entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", " ", (site / page / "index.html").read_text()))


def test_every_command_and_option_is_in_the_built_cli_reference(site):
    page = _text(site, "reference/cli")
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    for name, sub in commands.choices.items():
        assert f"sweetspot {name}" in page, name
        for action in sub._actions:
            for flag in action.option_strings:
                assert flag in page, f"{name} {flag}"
            if action.help and action.help != "show this help message and exit":
                shown = re.sub(r"\s+", "", action.help.replace("`", ""))  # `code` renders as code
                assert shown in re.sub(r"\s+", "", page), f"{name} {action.dest}"


def _keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    for f in dataclasses.fields(cls):
        value = getattr(cls(), f.name) if prefix == "" else None
        if value is not None and dataclasses.is_dataclass(value):
            keys += _keys(type(value), f"{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def test_every_config_key_is_in_the_built_config_reference(site):
    page = _text(site, "reference/config")
    keys = _keys(StudyConfig)
    assert "distill.alpha" in keys and "teacher.augment" in keys and "n_trials" in keys
    for key in keys:
        assert key in page, key


def test_every_metric_is_in_the_built_metrics_reference(site):
    page = _text(site, "reference/metrics")
    for metric in [*TRIAL_METRICS, *RECORD_ATTRS]:
        assert metric in page, metric


def test_the_api_reference_comes_from_the_docstrings(site):
    page = _text(site, "reference/api")
    import sweetspot

    for name in ("run_study", "export_best", "load_teacher", "Objective", "load_config", "StudyConfig"):
        assert name in page, name
        first_line = (getattr(sweetspot, name).__doc__ or "").replace("`", "").strip().splitlines()[0]
        assert " ".join(first_line.split()[:6]) in " ".join(page.split()), name


def test_the_built_site_renders_in_headless_chromium(site, tmp_path):
    flags = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--virtual-time-budget=5000", f"--user-data-dir={tmp_path / 'profile'}"]
    shots = REPO / "test-output"
    shots.mkdir(exist_ok=True)
    for page, title in (("index.html", "sweetspot"), ("reference/config/index.html", "Config keys")):
        url = (site / page).as_uri()
        dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120,
                             check=False).stdout
        assert f"<title>{title}" in dom, page
        assert 'class="md-nav' in dom and "Getting started" in dom and "Command line" in dom  # the navigation
        shown = html.unescape(re.sub(r"<[^>]+>", " ", dom))
        assert not re.search(r"Traceback|404 - Not found|ERROR|Error:", shown), page
        shot = shots / f"docs-{page.split('/')[0].removesuffix('.html')}.png"
        subprocess.run([*flags, "--window-size=1400,1000", f"--screenshot={shot}", url], capture_output=True,
                       timeout=120, check=False)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
