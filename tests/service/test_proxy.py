"""Workers through a real `sweetspot storage-proxy` on real PostgreSQL: the queue, heartbeats and
retries of killed workers' trials hold as they do for workers that reach the database directly."""

from __future__ import annotations

import signal
import socket
import time

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from tests.conftest import run_console_script, start_console_script
from tests.service.test_workers import kill_a_training_worker

BEAT = ["--heartbeat", "1", "--grace", "3"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def proxy(postgres_url, tmp_path):
    """A storage proxy for the test database: its grpc:// URL."""
    port = _free_port()
    server = start_console_script("storage-proxy", "--storage", postgres_url, "--port", str(port), *BEAT,
                                  cwd=tmp_path)
    url = f"grpc://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    yield url
    server.send_signal(signal.SIGTERM)
    _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err


def _beats(postgres_url: str, name: str) -> int:
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.connect() as connection:
        count = connection.execute(sqlalchemy.text(
            "SELECT count(*) FROM trial_heartbeats h JOIN trials t ON t.trial_id = h.trial_id "
            "JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = :name"), {"name": name}).scalar()
    engine.dispose()
    return count


def test_two_workers_through_the_proxy_run_exactly_the_requested_trials(
    proxy, tiny_config_file, postgres_url, study_name, tmp_path, artifacts_in_tmp
):
    from sweetspot.service.optuna_internals import artifact_ids, retired_files

    result = run_console_script("run", tiny_config_file, "--storage", proxy, "--study", study_name, "--workers", "2",
                                "--trials", "8", "--log-dir", tmp_path / "logs", "--keep-weights", "2", *BEAT,
                                cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name=study_name, storage=postgres_url)
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 8
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    assert _beats(postgres_url, study_name) == 8  # each trial beat through the proxy, into the heartbeat table
    assert not any("sweetspot:heartbeat" in t.system_attrs for t in trials)  # and not as an attribute
    # weights retired through the proxy: their records gone from the trials, every listed file there
    retired = retired_files(study._storage.get_study_system_attrs(study._study_id))
    listed = [t.number for t in trials if artifact_ids(t, "teacher.pt")]
    assert retired and len(listed) <= 2 and not {r["trial"] for r in retired.values()} & set(listed)
    assert all((artifacts_in_tmp / a).is_file() for t in trials for a in artifact_ids(t))
    assert not any("sweetspot:forget-artifact" in t.system_attrs for t in trials)


def test_a_killed_workers_trial_is_run_again_through_the_proxy(proxy, write_config, postgres_url, study_name,
                                                                tmp_path):
    kill_a_training_worker(write_config, tmp_path, proxy, postgres_url, study_name)  # the proxy recovers it


def test_bad_proxy_urls_are_one_line(cli, tiny_config_file, tmp_path):
    code, _, err = cli("run", tiny_config_file, "--storage", "grpc://nohost", "--trials", "1")
    assert code == 2 and "malformed URL 'grpc://nohost'" in err and err.count("\n") == 1
    code, _, err = cli("run", tiny_config_file, "--storage", f"grpc://127.0.0.1:{_free_port()}", "--trials", "1")
    assert code == 2 and "no storage proxy answers" in err and err.count("\n") == 1
    code, _, err = cli("storage-proxy", "--storage", "grpc://127.0.0.1:1")
    assert code == 2 and "serves a database, not another proxy" in err


def test_a_proxy_on_a_port_in_use_is_one_line(postgres_url, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_console_script("storage-proxy", "--storage", postgres_url, "--port", str(port), cwd=tmp_path)
    assert result.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert result.stderr.count("\n") == 1


def test_the_proxys_recovery_round_skips_a_study_deleted_meanwhile(postgres_url, study_name, monkeypatch):
    """Found in CI: another process deleted a study between the proxy's listing and its check, and the
    proxy died of the KeyError."""
    from types import SimpleNamespace

    from sweetspot.service.proxy import _recover_all
    from sweetspot.service.study import Heartbeat, open_storage

    storage = open_storage(postgres_url, heartbeat=Heartbeat(1, 3))
    optuna.create_study(study_name=study_name, storage=storage)
    listed = storage.get_all_studies()
    monkeypatch.setattr(storage, "get_all_studies",
                        lambda: [SimpleNamespace(study_name="deleted-meanwhile"), *listed])
    _recover_all(storage)  # no KeyError


def test_taking_trials_through_the_proxy_does_not_read_the_finished_ones_again(postgres_url, study_name):
    """The proxy keeps Optuna's trial cache in front of the database, as load_study does: without it
    every GetTrials read the whole study, and each trial taken cost more than the one before (about
    1 s per trial at 500 finished)."""
    import threading

    from sweetspot.service.proxy import QueueProxy, serve
    from sweetspot.service.study import Heartbeat, open_storage, queue_trials
    from sweetspot.service.workers import drain

    storage = open_storage(postgres_url, heartbeat=Heartbeat(1, 3))
    study = optuna.create_study(study_name=study_name, storage=storage)
    x = optuna.distributions.FloatDistribution(0, 1)
    study.add_trials([optuna.trial.create_trial(value=0.5, params={"x": 0.5}, distributions={"x": x})] * 200)
    queue_trials(study, 3)
    port, stop = _free_port(), threading.Event()
    server = threading.Thread(target=serve, args=(storage, "127.0.0.1", port, stop), daemon=True)
    server.start()
    proxied = QueueProxy(host="127.0.0.1", port=port, heartbeat_interval=1)
    proxied.wait_server_ready(timeout=10)
    client = optuna.load_study(study_name=study_name, storage=proxied)
    assert len(client.get_trials(deepcopy=False)) == 203  # the proxy's cache holds the study now

    rows = [0]

    def count(connection, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("SELECT") and "FROM trials" in statement:
            rows[0] += max(cursor.rowcount, 0)

    sqlalchemy.event.listen(storage.engine, "after_cursor_execute", count)
    try:
        assert drain(client, lambda trial: trial.suggest_float("x", 0, 1), poll=0.1) == 3
    finally:
        sqlalchemy.event.remove(storage.engine, "after_cursor_execute", count)
        stop.set()
        server.join(timeout=30)
    assert [t.state for t in study.get_trials(deepcopy=False)] == [TrialState.COMPLETE] * 203
    assert rows[0] < 200, rows  # the 200 finished trials were not read again
