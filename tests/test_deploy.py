"""The container files, checked for structure (Docker cannot run on the test machines)."""

import importlib
import re
import shlex
from pathlib import Path

import tomllib
import yaml

from sweetspot.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _expand(text: str) -> str:
    """Compose's ${VAR:-default} with the defaults."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)


def test_compose_has_postgres_worker_dashboard_and_a_queue_step():
    services = _compose()["services"]
    assert {"postgres", "worker", "dashboard", "queue"} <= set(services)


def test_compose_postgres_is_official_with_volume_healthcheck_env_password_and_local_port():
    pg = _compose()["services"]["postgres"]
    assert pg["image"].startswith("postgres:")
    assert "pgdata" in _compose()["volumes"] and any(v.startswith("pgdata:") for v in pg["volumes"])
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert pg["environment"]["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD:-sweetspot}"
    assert all(p.startswith("127.0.0.1:") for p in pg["ports"])
    assert "POSTGRES_PASSWORD=sweetspot" in (REPO / ".env.example").read_text()


def test_compose_worker_is_scalable_and_waits_for_a_healthy_database_and_the_queue():
    worker = _compose()["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker  # --scale worker=N needs both absent
    assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert worker["depends_on"]["queue"]["condition"] == "service_completed_successfully"
    assert worker["environment"]["SWEETSPOT_STORAGE"].startswith("postgresql+psycopg://")


def test_compose_commands_parse_with_the_cli_and_name_existing_configs():
    services = _compose()["services"]
    for name in ("worker", "queue"):
        argv = [_expand(a) for a in services[name]["command"]]
        args = build_parser().parse_args(argv)  # exits on an unknown flag
        assert args.command == argv[0] and (REPO / args.config).is_file()
    assert build_parser().parse_args([_expand(a) for a in services["queue"]["command"]]).workers == 0


def test_compose_dashboard_is_published_on_localhost_only():
    dashboard = _compose()["services"]["dashboard"]
    assert dashboard["entrypoint"] == ["optuna-dashboard"]
    assert all(p.startswith("127.0.0.1:") for p in dashboard["ports"])


def test_dockerfile_entry_point_is_the_packaged_console_script():
    lines = (REPO / "Dockerfile").read_text().splitlines()
    (entry,) = [line for line in lines if line.startswith("ENTRYPOINT")]
    assert entry == 'ENTRYPOINT ["sweetspot"]'
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["sweetspot"].split(":")
    assert callable(getattr(importlib.import_module(module), function))
    copied = [shlex.split(line)[1] for line in lines if line.startswith("COPY")]
    assert {"sweetspot", "studies"} <= set(copied)


def test_kubernetes_job_runs_parallel_workers_with_the_url_from_a_secret():
    docs = list(yaml.safe_load_all((REPO / "deploy" / "kubernetes.yaml").read_text()))
    kinds = {d["metadata"]["name"]: d for d in docs}
    secret = kinds["sweetspot-storage"]
    assert secret["kind"] == "Secret" and "url" in secret["stringData"]
    job = kinds["sweetspot-workers"]
    assert job["kind"] == "Job" and job["spec"]["parallelism"] > 1
    (container,) = job["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "worker" and args.wait_for_queue > 0
    env = {e["name"]: e for e in container["env"]}
    assert env["SWEETSPOT_STORAGE"]["valueFrom"]["secretKeyRef"] == {"name": "sweetspot-storage", "key": "url"}
    queue = kinds["sweetspot-queue"]["spec"]["template"]["spec"]["containers"][0]
    assert build_parser().parse_args(queue["args"]).workers == 0
