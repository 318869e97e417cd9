"""docker-compose.yml, checked offline.

No Docker engine is needed. The file is validated against the Compose Specification schema that
`check-jsonschema` ships, and the rest of the stack is checked too: services named in depends_on
exist, build contexts have a Dockerfile, mounted files exist, and ports are published only on
loopback.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
REQUIRED_SERVICES = {"postgresql", "temporal", "temporal-ui", "worker", "sim", "otel-collector"}
LOOPBACK = "127.0.0.1"


def load_yaml(path: Path) -> Any:
    # ruamel.yaml comes with check-jsonschema, so PyYAML is not needed.
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def dump_yaml(data: Any, path: Path) -> None:
    with path.open("w", encoding="utf-8") as stream:
        YAML(typ="safe").dump(data, stream)


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    """Validate with the schema vendored inside check-jsonschema (no network access)."""
    command = [sys.executable, "-m", "check_jsonschema"]
    command += ["--builtin-schema", "vendor.compose-spec", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return env
    pairs = (item.partition("=") for item in env)
    return {name: (value if sep else None) for name, sep, value in pairs}


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each bind mount; named volumes are left out."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.partition(":")[0]
        elif volume.get("type") == "bind":
            source, target = volume["source"], volume["target"]
        else:
            continue
        if source.startswith((".", "/", "~")):
            mounts.append((source, target))
    return mounts


def published_host_ip(port: int | str | dict[str, Any]) -> str | None:
    """The host address a port is published on; None means every interface."""
    if isinstance(port, dict):
        return port.get("host_ip")
    spec = str(port).partition("/")[0]
    bracketed = re.match(r"^\[([^\]]+)\]:", spec)
    if bracketed:
        return bracketed.group(1)
    parts = spec.split(":")
    return parts[0] if len(parts) == 3 else None


def test_compose_file_matches_the_compose_specification() -> None:
    result = validate(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


BROKEN_FILES = {
    # name: (how to break the file, what the validator must name in its report)
    "misspelled key": (
        lambda c: c["services"]["worker"].update(stop_grace_periode="60s"),
        "stop_grace_periode",
    ),
    "wrong type": (
        lambda c: c["services"]["temporal-ui"].update(ports="8080:8080"),
        "is not of type 'array'",
    ),
    "unknown top-level key": (lambda c: c.update(version_info="3"), "version_info"),
}


@pytest.mark.parametrize("mistake", BROKEN_FILES)
def test_validator_rejects_a_broken_file(tmp_path: Path, mistake: str) -> None:
    apply, reported = BROKEN_FILES[mistake]
    broken = load_yaml(COMPOSE_FILE)
    apply(broken)
    path = tmp_path / "docker-compose.yml"
    dump_yaml(broken, path)
    result = validate(path)
    assert result.returncode != 0, f"{mistake} passed validation:\n{result.stdout}"
    assert reported in result.stdout


def test_no_obsolete_version_key(compose: dict[str, Any]) -> None:
    assert "version" not in compose


def test_required_services_exist(services: dict[str, Any]) -> None:
    missing = REQUIRED_SERVICES - services.keys()
    assert not missing, f"missing services: {sorted(missing)}"


def test_depends_on_names_existing_services(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on unknown service {dependency!r}"


def test_build_contexts_have_their_dockerfile(services: dict[str, Any]) -> None:
    built = {name: service["build"] for name, service in services.items() if "build" in service}
    assert built.keys() >= {"worker", "sim"}
    for name, build in built.items():
        if isinstance(build, str):
            build = {"context": build}
        context = ROOT / build.get("context", ".")
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: no Dockerfile at {dockerfile}"


def test_bind_mounted_files_exist(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for source, _ in bind_mounts(service):
            assert not source.startswith(("/", "~")), f"{name} mounts a host path: {source!r}"
            assert (ROOT / source).exists(), f"{name} mounts missing {source!r}"


def test_deploy_configs_parse() -> None:
    configs = sorted(DEPLOY.glob("*.yaml"))
    assert configs
    for path in configs:
        assert isinstance(load_yaml(path), dict), f"{path.name} is not a YAML mapping"


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_deploy_scripts_parse() -> None:
    for path in sorted(DEPLOY.glob("*.sh")):
        result = subprocess.run(
            ["sh", "-n", str(path)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{path.name}: {result.stderr}"


def test_temporal_dynamic_config_is_mounted_where_it_is_read(services: dict[str, Any]) -> None:
    temporal = services["temporal"]
    configured = environment(temporal)["DYNAMIC_CONFIG_FILE_PATH"]
    assert configured is not None
    # auto-setup resolves the path relative to /etc/temporal.
    expected = configured if configured.startswith("/") else f"/etc/temporal/{configured}"
    targets = {target for _, target in bind_mounts(temporal)}
    assert expected in targets, f"{expected} is read but not mounted; mounts: {sorted(targets)}"


def test_ports_are_published_on_loopback_only(services: dict[str, Any]) -> None:
    for name, service in services.items():
        assert service.get("network_mode") != "host", f"{name} uses the host network"
        for port in service.get("ports", []):
            assert published_host_ip(port) == LOOPBACK, f"{name} publishes {port!r} beyond loopback"


def test_provider_keys_pass_through_without_defaults(services: dict[str, Any]) -> None:
    env = environment(services["worker"])
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        assert key in env, f"worker does not receive {key}"
        assert env[key] is None, f"{key} has a value in docker-compose.yml"


def test_worker_has_time_to_drain(services: dict[str, Any]) -> None:
    worker = services["worker"]
    grace = re.fullmatch(r"(\d+)s", str(worker.get("stop_grace_period", "")))
    assert grace and int(grace.group(1)) >= 60, "the worker needs time to drain on SIGTERM"
    assert worker["deploy"]["replicas"] >= 2


def test_workers_share_one_audit_log_in_postgresql(services: dict[str, Any]) -> None:
    worker = services["worker"]
    url = environment(worker)["DURABLE_AGENTS_AUDIT_URL"] or ""
    assert url.startswith("postgresql://") and "@postgresql:5432/" in url
    assert worker["depends_on"]["postgresql"]["condition"] == "service_healthy"


def test_agentctl_takes_every_command_the_image_runs(services: dict[str, Any]) -> None:
    # Typer refuses an unknown option before --help is acted on: a command the image would
    # refuse at start (the sim's bind beyond loopback without --container) fails here.
    from tests.test_cli import invoke

    for name, service in services.items():
        if service.get("image") == "durable-agents:local" and service.get("command"):
            result = invoke(*service["command"], "--help")
            assert result.exit_code == 0, (name, result.stderr)
    # The sim binds beyond loopback only when told it is in a container (its own namespace).
    command = services["sim"]["command"]
    assert command[command.index("--host") + 1] == "0.0.0.0" and "--container" in command
    refused = invoke("sim", "--host", "0.0.0.0", "--state-dir", "/nonexistent/never-made")
    assert refused.exit_code == 2 and "add --container" in refused.stderr
    assert not Path("/nonexistent/never-made").exists()


def test_workers_read_the_credentials_the_sim_writes(services: dict[str, Any]) -> None:
    # The sim writes its agents' clients to STATE_DIR/credentials.toml, its volume's root.
    sim_volume, sim_dir = services["sim"]["volumes"][0].split(":")[:2]
    assert sim_dir == "/var/lib/durable-agents"  # the image's DURABLE_AGENTS_STATE_DIR
    worker = services["worker"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in worker["volumes"]}
    credentials = Path(worker["environment"]["DURABLE_AGENTS_CREDENTIALS_FILE"])
    assert mounts[str(credentials.parent)] == sim_volume
    assert credentials.name == "credentials.toml"
    assert any(v.endswith(":ro") for v in worker["volumes"])
