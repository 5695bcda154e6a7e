"""The container files, checked for structure and by real validators (Docker cannot run on the test machines)."""

import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
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


def test_compose_worker_is_scalable_and_waits_for_a_healthy_proxy_and_the_queue():
    services = _compose()["services"]
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker  # --scale worker=N needs both absent
    assert worker["depends_on"]["proxy"]["condition"] == "service_healthy"
    assert worker["depends_on"]["queue"]["condition"] == "service_completed_successfully"
    assert worker["environment"]["SWEETSPOT_STORAGE"] == "grpc://proxy:13000"  # every worker through the proxy
    proxy = services["proxy"]
    args = build_parser().parse_args(proxy["command"])
    assert args.command == "storage-proxy" and args.port == 13000 and args.host == "0.0.0.0"
    assert "ports" not in proxy  # reachable by the workers only
    assert proxy["environment"]["SWEETSPOT_STORAGE"].startswith("postgresql+psycopg://")


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
    assert env["SWEETSPOT_STORAGE"]["value"] == "grpc://sweetspot-proxy:13000"  # the workers through the proxy
    queue = kinds["sweetspot-queue"]["spec"]["template"]["spec"]["containers"][0]
    assert build_parser().parse_args(queue["args"]).workers == 0
    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "sweetspot-proxy")
    (proxy,) = deployment["spec"]["template"]["spec"]["containers"]
    assert build_parser().parse_args(proxy["args"]).command == "storage-proxy"
    service = next(d for d in docs if d["kind"] == "Service")
    assert service["metadata"]["name"] == "sweetspot-proxy" and service["spec"]["ports"][0]["port"] == 13000
    proxy_env = {e["name"]: e for e in proxy["env"]}
    assert proxy_env["SWEETSPOT_STORAGE"]["valueFrom"]["secretKeyRef"] == {"name": "sweetspot-storage", "key": "url"}


def _tool(name: str) -> str:
    """A validator on the PATH or in this virtual environment; its absence fails under CI
    (SWEETSPOT_REQUIRE_DEPLOY_TOOLS, which .ci/run sets), else skips."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        reason = f"{name} is not installed"
        if os.environ.get("SWEETSPOT_REQUIRE_DEPLOY_TOOLS"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def test_the_compose_file_passes_docker_compose_config_and_a_broken_one_does_not(tmp_path):
    compose = _tool("docker-compose")

    def check(path: Path) -> subprocess.CompletedProcess:
        return subprocess.run([compose, "-f", str(path), "config", "-q"], capture_output=True, text=True,
                              cwd=REPO, check=False)

    assert check(REPO / "docker-compose.yml").returncode == 0
    broken = tmp_path / "docker-compose.yml"
    broken.write_text((REPO / "docker-compose.yml").read_text().replace("condition: service_healthy",
                                                                          "condition: when_it_feels_like_it", 1))
    assert check(broken).returncode != 0


def test_the_kubernetes_manifest_passes_kubernetes_validate_and_a_broken_one_does_not(tmp_path):
    validate = _tool("kubernetes-validate")

    def check(path: Path) -> subprocess.CompletedProcess:
        return subprocess.run([validate, "--strict", "-k", "1.37.0", str(path)], capture_output=True, text=True,
                              check=False)

    done = check(REPO / "deploy" / "kubernetes.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed") == 5
    broken = tmp_path / "kubernetes.yaml"
    broken.write_text((REPO / "deploy" / "kubernetes.yaml").read_text().replace("replicas: 1", "replicas: one"))
    assert check(broken).returncode != 0
