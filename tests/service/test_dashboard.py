"""`sweetspot dashboard`: optuna-dashboard on a real study, read through its JSON API and in a real
headless Chromium (Debian's `chromium`; `.ci/run` installs it and sets SWEETSPOT_REQUIRE_BROWSER)."""

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from sweetspot.cli import main
from tests.conftest import REPO, TINY, chromium, run_console_script, start_console_script

METRICS = ("student_val_acc", "missing_class_recall")  # TINY's objectives: the built-in default's


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A 3-trial study of TINY that keeps one teacher's weights, and optuna-dashboard serving it on a free
    local port."""
    import yaml

    folder = tmp_path_factory.mktemp("dashboard")
    (folder / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    url = f"sqlite:///{folder / 'studies.db'}"
    assert main(["run", str(folder / "tiny.yaml"), "--storage", url, "--trials", "3", "--keep-weights", "1",
                 "--no-progress"]) == 0
    port = free_port()
    proc = start_console_script("dashboard", "--storage", url, "--port", str(port), cwd=folder)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            get(f"{base}/api/studies")
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the dashboard did not start: {proc.communicate()[1]}")
            time.sleep(0.3)
    yield base, url, folder
    proc.terminate()
    proc.wait(timeout=10)


def test_dashboard_api_shows_metric_names_notes_and_artifacts(served):
    base, _, _ = served
    summaries = json.loads(get(f"{base}/api/studies"))["study_summaries"]
    assert [s["study_name"] for s in summaries] == ["tiny"]
    study_id = summaries[0]["study_id"]
    detail = json.loads(get(f"{base}/api/studies/{study_id}?after=0"))
    assert tuple(detail["objective_names"]) == METRICS
    assert detail["note"]["body"].startswith("# sweetspot study: tiny")
    assert len(detail["trials"]) == 3
    kept = []
    for trial in detail["trials"]:
        assert trial["note"]["body"].startswith("# Teacher: batch size")
        files = {a["filename"]: a for a in trial["artifacts"]}
        assert set(files) in ({"teacher.pt", "soft-labels.png"}, {"soft-labels.png"})
        if "teacher.pt" in files:
            kept.append(trial["number"])
        else:  # retired by --keep-weights 1 (issue 20: the dashboard offered its download, which failed)
            assert "Teacher weights retired" in trial["note"]["body"]
        for meta in files.values():  # every download the dashboard offers works
            body = get(f"{base}/artifacts/{study_id}/{trial['trial_id']}/{meta['artifact_id']}")
            assert len(body) > 100
        picture = get(f"{base}/artifacts/{study_id}/{trial['trial_id']}/{files['soft-labels.png']['artifact_id']}")
        assert picture[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(kept) == 1


def test_dashboard_in_headless_chromium_shows_the_study(served, tmp_path):
    browser = chromium()
    base, _, _ = served
    flags = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--virtual-time-budget=15000", f"--user-data-dir={tmp_path / 'profile'}",
    ]
    page = f"{base}/dashboard/studies/1"
    dom = subprocess.run([*flags, "--dump-dom", page], capture_output=True, text=True, timeout=120, check=False).stdout
    assert "tiny" in dom
    for metric in METRICS:
        assert metric in dom
    shots = REPO / "test-output"
    shots.mkdir(exist_ok=True)
    shot = shots / "dashboard.png"
    subprocess.run(
        [*flags, "--window-size=1400,1000", f"--screenshot={shot}", page], capture_output=True, timeout=120, check=False
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_dashboard_refuses_a_missing_storage_or_a_busy_port(served, tmp_path):
    _, url, _ = served
    result = run_console_script("dashboard", "--storage", f"sqlite:///{tmp_path / 'none.db'}", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and not (tmp_path / "none.db").exists()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_console_script("dashboard", "--storage", url, "--port", str(port), cwd=tmp_path)
    assert result.returncode == 2 and "choose another --port" in result.stderr and "Traceback" not in result.stderr


def test_dashboard_warns_when_it_listens_beyond_this_machine(served, tmp_path):
    _, url, _ = served
    proc = start_console_script(
        "dashboard", "--storage", url, "--host", "0.0.0.0", "--port", str(free_port()), cwd=tmp_path
    )
    try:
        line = proc.stderr.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert line.startswith("warning: optuna-dashboard has no authentication")


def test_screenshots_are_kept_out_of_git():
    assert "test-output/" in (REPO / ".gitignore").read_text().split()
    assert Path(REPO / ".gitignore").exists()
