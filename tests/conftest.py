"""Shared fixtures: a tiny study config (seconds per trial), temporary SQLite storages, CLI runners."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sweetspot.cli import main

REPO = Path(__file__).resolve().parents[1]

# The default digits study shrunk so that a trial takes well under a second on 2 CPU cores.
TINY = {
    "name": "tiny",
    "seed": 0,
    "n_trials": 3,
    "teacher": {"arch": "mlp", "width": 32, "depth": 2},
    "student": {"arch": "linear", "epochs": 5},
    "distill": {"withheld_classes": [3]},
    "search": {"batch_size": [32, 256], "epochs": [1, 4]},
}


@pytest.fixture(autouse=True)
def artifacts_in_tmp(tmp_path: Path, monkeypatch) -> Path:
    """Every test's artifact store in its own temporary folder (never ./sweetspot-artifacts)."""
    folder = tmp_path / "artifacts"
    monkeypatch.setenv("SWEETSPOT_ARTIFACTS", str(folder))
    return folder


@pytest.fixture
def tiny_config_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture
def write_config(tmp_path: Path):
    """Write TINY with some keys replaced (dotted paths) and return the file."""

    def write(changes: dict | None = None, raw: str | None = None) -> Path:
        path = tmp_path / "config.yaml"
        if raw is not None:
            path.write_text(raw)
            return path
        data = yaml.safe_load(yaml.safe_dump(TINY))
        for dotted, value in (changes or {}).items():
            *parents, last = dotted.split(".")
            node = data
            for p in parents:
                node = node.setdefault(p, {})
            node[last] = value
        path.write_text(yaml.safe_dump(data))
        return path

    return write


@pytest.fixture
def storage_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``sweetspot ARGS`` in this process: (exit code, stdout, stderr)."""
    monkeypatch.delenv("SWEETSPOT_STORAGE", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's own exits
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


def run_console_script(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """The installed ``sweetspot`` command in a subprocess, as a user runs it."""
    exe = Path(sys.executable).with_name("sweetspot")
    environ = {k: v for k, v in os.environ.items() if k != "SWEETSPOT_STORAGE"} | (env or {})
    return subprocess.run(
        [str(exe), *map(str, args)], cwd=cwd, env=environ, capture_output=True, text=True, timeout=600, check=False
    )


POSTGRES_URL = os.environ.get("SWEETSPOT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def postgres_url():
    """The machine's real PostgreSQL. Skipped when none is reachable, unless
    SWEETSPOT_REQUIRE_POSTGRES is set (CI sets it): then its absence fails the test."""
    url = POSTGRES_URL
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # any failure to connect means "no server"
        reason = f"no PostgreSQL reachable at {url}: {str(exc).splitlines()[0]}"
        if os.environ.get("SWEETSPOT_REQUIRE_POSTGRES"):
            pytest.fail(reason)
        pytest.skip(reason)
    return url


@pytest.fixture
def quick_retries(monkeypatch):
    """The retry policy without its pauses: a test of many retries takes no 15 s each."""
    from sweetspot.service.retry import Retry

    monkeypatch.setattr(Retry, "wait", lambda self, failures: None)


@pytest.fixture
def study_name(request):
    """A study name unique to this test run, deleted afterwards from PostgreSQL if it is there."""
    import uuid

    name = f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
    yield name
    if "postgres_url" in request.fixturenames:
        import optuna

        try:
            optuna.delete_study(study_name=name, storage=request.getfixturevalue("postgres_url"))
        except KeyError:
            pass  # the test never created it


def start_console_script(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("sweetspot")
    environ = {k: v for k, v in os.environ.items() if k != "SWEETSPOT_STORAGE"} | (env or {})
    return subprocess.Popen(
        [str(exe), *map(str, args)], cwd=cwd, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def break_connection(engine: Any, when: Callable[[str, Any], bool], times: int = 1) -> list[int]:
    """Close the database connection underneath SQLAlchemy right before the first ``times``
    statements on ``engine`` for which ``when(statement, parameters)`` holds: that statement then
    fails with the driver's own error, as on a connection the server dropped at that exact point.
    Returns a one-item list holding how many breaks are left."""
    import sqlalchemy.event

    left = [times]
    sqlalchemy.event.listen(engine, "before_cursor_execute", _breaker(when, left))
    return left


def _breaker(when: Callable[[str, Any], bool], left: list[int]) -> Callable[..., None]:
    def _break(connection, cursor, statement, parameters, context, executemany):
        if left[0] and when(statement, parameters):
            left[0] -= 1
            connection.connection.dbapi_connection.close()

    return _break


@contextlib.contextmanager
def breaking_new_engines(when: Callable[[str, Any], bool], times: int = 1) -> Iterator[list[int]]:
    """``break_connection`` on every engine, including those created inside the block (as a
    storage creates its own while it opens); removed on leaving the block."""
    import sqlalchemy.engine
    import sqlalchemy.event

    left = [times]
    _break = _breaker(when, left)
    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", _break)
    try:
        yield left
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", _break)


def chromium() -> str:
    """Debian's headless browser. Skipped when it is not installed, unless SWEETSPOT_REQUIRE_BROWSER is
    set (CI sets it, and installs it): then its absence fails the test."""
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("SWEETSPOT_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    return browser
