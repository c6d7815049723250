"""The deployment files agree with the code they deploy.

docker-compose.yml, the one Dockerfile (every image, by SERVICE), deploy/Procfile.dev and
deploy/prometheus/prometheus.yml each repeat ports, hosts and module names that
are defined once in ``services.common.settings`` and ``services.common.topics``.
These tests read those files as text/YAML (no Docker, no network) and compare.
Every assertion message names the file and the two values that disagree.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import ValidationError

from services.common import topics
from services.common.settings import SERVICE_NAMES, Settings
from tests.unit import dockerfile_stages as dockerfile

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROCFILE = ROOT / "deploy" / "Procfile.dev"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GATEWAY = "gateway"
DEPLOYABLES = (*SERVICE_NAMES, GATEWAY)
PROCFILE_NAMES = ("redis", "s3", "broker", *SERVICE_NAMES, GATEWAY, "demo")
# Programs a Procfile line may run that are not part of this repository.
EXTERNAL_PROGRAMS = {"redis-server"}


# --------------------------------------------------------------------------- helpers


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@cache
def defaults() -> Settings:
    """Settings as the code defines them, untouched by this process's environment."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.upper().startswith("SHOPAI_")}
    try:
        return Settings()
    finally:
        os.environ.update(saved)


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose_services() -> dict[str, dict]:
    return compose()["services"]


def compose_service(name: str) -> dict:
    services = compose_services()
    assert name in services, f"docker-compose.yml has no service {name!r}; it has {sorted(services)}"
    return services[name]


def compose_env(name: str) -> dict[str, str]:
    env = compose_service(name).get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def published_ports(name: str) -> dict[int, int]:
    """container port -> host port for a compose service's ``ports``."""
    result: dict[int, int] = {}
    for entry in compose_service(name).get("ports") or []:
        if isinstance(entry, dict):
            container, host = entry["target"], entry.get("published", entry["target"])
        else:
            parts = str(entry).split("/")[0].rsplit(":", 2)
            container = parts[-1]
            host = parts[-2] if len(parts) >= 2 else parts[-1]
        result[int(container)] = int(host)
    return result


def healthcheck_text(service: dict) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    if isinstance(test, list):
        return " ".join(str(t) for t in test)
    return str(test or "")


def settings_from_env(name: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as the compose service ``name`` sees them (its environment only)."""
    for key in list(os.environ):
        if key.upper().startswith("SHOPAI_"):
            monkeypatch.delenv(key)
    for key, value in compose_env(name).items():
        if not is_secret_file_variable(key):  # files in /run/secrets exist only in the container
            monkeypatch.setenv(key, value)
    try:
        return Settings()
    except ValidationError as exc:
        pytest.fail(f"docker-compose.yml: the environment of {name} is not valid for Settings:\n{exc}")


def is_secret_file_variable(key: str) -> bool:
    """``SHOPAI_<SETTING>_FILE`` read by settings.SecretFiles (not a field of its own)."""
    return key.endswith("_FILE") and key[len("SHOPAI_"):].lower() not in Settings.model_fields


@cache
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@cache
def procfile() -> dict[str, str]:
    entries: dict[str, str] = {}
    for line in PROCFILE.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line)
        if m:
            assert m.group(1) not in entries, f"deploy/Procfile.dev defines {m.group(1)!r} twice"
            entries[m.group(1)] = m.group(2)
    return entries


def command_argv(command: str) -> list[str]:
    """The program and its arguments, without leading VAR=value assignments, exec and env."""
    argv = shlex.split(command)
    while argv and (re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", argv[0]) or argv[0] in {"exec", "env"}):
        argv.pop(0)
    return argv


def module_file(module: str) -> Path | None:
    """The file that ``python -m module`` / ``import module`` would run, if present."""
    base = ROOT / module.replace(".", "/")
    for candidate in (base / "__main__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def files_a_command_needs(argv: list[str]) -> list[str]:
    """Repository paths (as module names or files) that must exist for ``argv`` to start."""
    program = argv[0]
    if program in {"python", "python3"}:
        assert "-m" in argv, f"python is run without -m: {argv}"
        return [f"module {argv[argv.index('-m') + 1]}"]
    if program == "gunicorn":
        needed = []
        for flag in ("--config", "-c"):
            if flag in argv:
                needed.append(f"file {argv[argv.index(flag) + 1]}")
        app = next(a for a in argv[1:] if ":" in a and not a.startswith("-"))
        needed.append(f"module {app.split(':', 1)[0]}")
        return needed
    scripts = pyproject()["project"].get("scripts", {})
    if program in scripts:
        return [f"module {scripts[program].split(':', 1)[0]}"]
    raise AssertionError(f"unknown program {program!r} in {argv}")


def assert_needed_exists(need: str, where: str) -> None:
    kind, _, name = need.partition(" ")
    if kind == "module":
        assert module_file(name) is not None, (
            f"{where} runs module {name!r}, but neither {name.replace('.', '/')}/__main__.py "
            f"nor {name.replace('.', '/')}.py exists in the repository"
        )
    else:
        assert (ROOT / name).is_file(), f"{where} names file {name!r}, which does not exist"


# --------------------------------------------------------------------------- compose


def build_args(build: dict) -> dict[str, str]:
    args = build.get("args") or {}
    if isinstance(args, list):
        args = dict(item.split("=", 1) if "=" in item else (item, "") for item in args)
    return {str(k): "" if v is None else str(v) for k, v in args.items()}


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_compose_builds_each_deployable_from_the_dockerfile(name: str) -> None:
    build = compose_service(name).get("build")
    assert isinstance(build, dict), f"docker-compose.yml: service {name!r} has no build section"
    assert build.get("context") == ".", (
        f"docker-compose.yml: {name}.build.context is {build.get('context')!r}, expected '.' (the repo root)"
    )
    assert build.get("dockerfile", "Dockerfile") == "Dockerfile", (
        f"docker-compose.yml: {name}.build.dockerfile is {build.get('dockerfile')!r}, expected the one Dockerfile"
    )
    assert build_args(build).get("SERVICE") == name, (
        f"docker-compose.yml: {name}.build.args.SERVICE is {build_args(build).get('SERVICE')!r}, expected {name!r}"
    )
    assert build.get("target", name) == name, (
        f"docker-compose.yml: {name}.build.target is {build.get('target')!r}, expected {name!r} or none"
    )
    assert dockerfile.DOCKERFILE.is_file(), "Dockerfile (used by docker-compose.yml) does not exist"


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_compose_service_env_yields_the_default_ports(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = defaults().endpoint(name)
    settings = settings_from_env(name, monkeypatch)
    got = settings.endpoint(name)
    assert got.grpc_port == expected.grpc_port, (
        f"docker-compose.yml: {name} would listen for gRPC on {got.grpc_port}, "
        f"Settings().{name}.grpc_port is {expected.grpc_port}"
    )
    assert got.metrics_port == expected.metrics_port, (
        f"docker-compose.yml: {name} would export metrics on {got.metrics_port}, "
        f"Settings().{name}.metrics_port is {expected.metrics_port}"
    )


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_compose_publishes_the_service_ports(name: str) -> None:
    endpoint = defaults().endpoint(name)
    ports = published_ports(name)
    for kind, port in (("grpc_port", endpoint.grpc_port), ("metrics_port", endpoint.metrics_port)):
        assert port in ports, (
            f"docker-compose.yml: {name} publishes container ports {sorted(ports)}, "
            f"but Settings().{name}.{kind} is {port}"
        )
        assert ports[port] == port, (
            f"docker-compose.yml: {name} publishes container port {port} ({kind}) on host port "
            f"{ports[port]}; the design publishes it on the same number"
        )


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_compose_healthcheck_probes_the_grpc_port(name: str) -> None:
    grpc_port = defaults().endpoint(name).grpc_port
    test = healthcheck_text(compose_service(name))
    assert "services.common.healthcheck" in test, (
        f"docker-compose.yml: {name}'s healthcheck is {test!r}, expected "
        f"'python -m services.common.healthcheck {grpc_port}'"
    )
    ports_in_test = [int(p) for p in re.findall(r"\b\d{2,5}\b", test)]
    assert ports_in_test == [grpc_port], (
        f"docker-compose.yml: {name}'s healthcheck probes port(s) {ports_in_test}, "
        f"Settings().{name}.grpc_port is {grpc_port}"
    )


def test_gateway_env_points_at_the_compose_services(monkeypatch: pytest.MonkeyPatch) -> None:
    env = compose_env(GATEWAY)
    settings = settings_from_env(GATEWAY, monkeypatch)
    for name in SERVICE_NAMES:
        var = f"SHOPAI_{name.upper()}__HOST"
        assert env.get(var) == name, (
            f"docker-compose.yml: gateway has {var}={env.get(var)!r}, expected the compose service {name!r}"
        )
        assert env[var] in compose_services(), (
            f"docker-compose.yml: gateway's {var}={env[var]!r} is not a compose service"
        )
        expected = defaults().endpoint(name)
        got = settings.endpoint(name)
        assert got.target == f"{name}:{expected.grpc_port}", (
            f"docker-compose.yml: the gateway would dial {name} at {got.target}, "
            f"but {name} listens on {name}:{expected.grpc_port} (Settings default)"
        )


def test_gateway_compose_port_healthcheck_and_dependencies(monkeypatch: pytest.MonkeyPatch) -> None:
    port = defaults().gateway_port
    settings = settings_from_env(GATEWAY, monkeypatch)
    assert settings.gateway_port == port, (
        f"docker-compose.yml: gateway env gives port {settings.gateway_port}, Settings().gateway_port is {port}"
    )
    ports = published_ports(GATEWAY)
    assert ports.get(port) == port, (
        f"docker-compose.yml: gateway publishes {ports} (container->host), expected {port}->{port}"
    )
    test = healthcheck_text(compose_service(GATEWAY))
    assert f":{port}/healthz" in test, (
        f"docker-compose.yml: gateway healthcheck {test!r} does not GET /healthz on port {port}"
    )
    depends = compose_service(GATEWAY).get("depends_on") or {}
    for name in SERVICE_NAMES:
        assert name in depends, (
            f"docker-compose.yml: gateway does not depend on {name} (depends_on: {sorted(depends)})"
        )


def test_kafka_is_a_single_kraft_node_tuned_for_shopai() -> None:
    env = compose_env("kafka")
    expected = {
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_NUM_PARTITIONS": str(defaults().kafka_topic_partitions),
        # Replay rebuilds the projections: nothing may expire.
        "KAFKA_LOG_RETENTION_MS": "-1",
    }
    for key, value in expected.items():
        assert env.get(key) == value, (
            f"docker-compose.yml: kafka has {key}={env.get(key)!r}, expected {value!r}"
        )
    roles = set(env.get("KAFKA_PROCESS_ROLES", "").split(","))
    assert roles == {"broker", "controller"}, (
        f"docker-compose.yml: kafka KAFKA_PROCESS_ROLES is {env.get('KAFKA_PROCESS_ROLES')!r}, "
        "expected 'broker,controller' (single-node KRaft)"
    )
    assert env.get("KAFKA_NODE_ID") and env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "").startswith(
        f"{env['KAFKA_NODE_ID']}@"
    ), (
        f"docker-compose.yml: kafka quorum voters {env.get('KAFKA_CONTROLLER_QUORUM_VOTERS')!r} "
        f"do not start with its node id {env.get('KAFKA_NODE_ID')!r}"
    )


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_kafka_and_redis_addresses_are_compose_services(name: str) -> None:
    env = compose_env(name)
    bootstrap = env.get("SHOPAI_KAFKA_BOOTSTRAP_SERVERS", defaults().kafka_bootstrap_servers)
    advertised = {
        listener.split("://", 1)[1]
        for listener in compose_env("kafka").get("KAFKA_ADVERTISED_LISTENERS", "").split(",")
        if "://" in listener
    }
    for server in bootstrap.split(","):
        assert server.split(":")[0] in compose_services(), (
            f"docker-compose.yml: {name} bootstraps Kafka from {server!r}, which is not a compose service"
        )
        assert server in advertised, (
            f"docker-compose.yml: {name} bootstraps Kafka from {server!r}, "
            f"but kafka advertises only {sorted(advertised)}"
        )
    redis_url = env.get("SHOPAI_REDIS_URL", defaults().redis_url)
    parts = urlsplit(redis_url)
    assert parts.hostname in compose_services(), (
        f"docker-compose.yml: {name} uses Redis at {redis_url!r}, whose host is not a compose service"
    )
    command = compose_service(parts.hostname).get("command") or []
    argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    listens = int(argv[argv.index("--port") + 1]) if "--port" in argv else 6379
    assert (parts.port or 6379) == listens, (
        f"docker-compose.yml: {name} uses Redis port {parts.port or 6379}, "
        f"but the {parts.hostname} service listens on {listens}"
    )


def test_every_container_has_a_healthcheck() -> None:
    for name, service in compose_services().items():
        hc = service.get("healthcheck") or {}
        assert not hc.get("disable"), f"docker-compose.yml: {name}'s healthcheck is disabled"
        if hc.get("test"):
            continue
        build = service.get("build")
        assert build, f"docker-compose.yml: {name} has no healthcheck and no Dockerfile that could define one"
        image = build_args(build).get("SERVICE", "")
        assert dockerfile.image_values(image, "HEALTHCHECK"), (
            f"docker-compose.yml: {name} has no healthcheck and neither has the Dockerfile's image {image!r}"
        )


def test_every_container_restarts_and_waits_for_healthy_dependencies() -> None:
    services = compose_services()
    for name, service in services.items():
        assert service.get("restart") in {"always", "unless-stopped", "on-failure"}, (
            f"docker-compose.yml: {name} has restart={service.get('restart')!r}, expected a restart policy"
        )
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), (
            f"docker-compose.yml: {name}.depends_on is a list; use the long form with condition: service_healthy"
        )
        for dep, spec in depends.items():
            assert dep in services, f"docker-compose.yml: {name} depends on {dep!r}, which is not a service"
            assert (spec or {}).get("condition") == "service_healthy", (
                f"docker-compose.yml: {name} depends on {dep} with condition "
                f"{(spec or {}).get('condition')!r}, expected 'service_healthy'"
            )
    for name in SERVICE_NAMES:
        depends = services[name].get("depends_on") or {}
        for infra in ("kafka", "redis"):
            assert infra in depends, f"docker-compose.yml: {name} does not wait for {infra}"


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_data_dir_is_a_named_volume(name: str) -> None:
    data_dir = compose_env(name).get("SHOPAI_DATA_DIR")
    assert data_dir, f"docker-compose.yml: {name} does not set SHOPAI_DATA_DIR"
    declared = compose().get("volumes") or {}
    mounts = {}
    for volume in compose_service(name).get("volumes") or []:
        source, target = (
            (volume["source"], volume["target"])
            if isinstance(volume, dict)
            else (volume.split(":")[0], volume.split(":")[1])
        )
        mounts[target] = source
    assert data_dir in mounts, (
        f"docker-compose.yml: {name} keeps its state in SHOPAI_DATA_DIR={data_dir}, "
        f"but mounts nothing there (mounts: {mounts})"
    )
    assert mounts[data_dir] in declared, (
        f"docker-compose.yml: {name} mounts {mounts[data_dir]!r} on {data_dir}, "
        f"which is not a named volume under top-level volumes ({sorted(declared)})"
    )


def test_compose_mounts_the_prometheus_config() -> None:
    volumes = compose_service("prometheus").get("volumes") or []
    sources = [str(v).split(":")[0] for v in volumes]
    assert f"./{rel(PROMETHEUS_FILE)}" in sources, (
        f"docker-compose.yml: prometheus mounts {sources}, expected ./{rel(PROMETHEUS_FILE)}"
    )


# --------------------------------------------------------------------------- secrets


SECRETS_MOUNT = "/run/secrets/"


def secret_settings() -> list[str]:
    """Settings fields that hold a secret (SecretStr)."""
    return [name for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation)]


def mounted_secrets(name: str) -> set[str]:
    return {s if isinstance(s, str) else s["source"] for s in compose_service(name).get("secrets") or []}


@pytest.mark.parametrize("name", ("redis", *DEPLOYABLES))
def test_secret_files_are_mounted_declared_and_outside_the_repository(name: str) -> None:
    declared = compose().get("secrets") or {}
    used = {value[len(SECRETS_MOUNT):] for value in compose_env(name).values() if value.startswith(SECRETS_MOUNT)}
    command = compose_service(name).get("command") or []
    used |= {m for m in re.findall(r"/run/secrets/([\w.]+)", " ".join(map(str, command)))}
    assert used <= mounted_secrets(name), (
        f"docker-compose.yml: {name} reads {sorted(used - mounted_secrets(name))} from {SECRETS_MOUNT} "
        f"but mounts only {sorted(mounted_secrets(name))}"
    )
    for secret in mounted_secrets(name):
        source = (declared.get(secret) or {}).get("file", "")
        assert source.startswith("${SHOPAI_SECRETS_DIR:-./secrets}/"), (
            f"docker-compose.yml: secret {secret!r} comes from {source!r}, expected a file in "
            "${SHOPAI_SECRETS_DIR:-./secrets} (outside the repository: .gitignore has /secrets/)"
        )
    assert "/secrets/" in (ROOT / ".gitignore").read_text().split(), ".gitignore must ignore /secrets/"


def test_no_secret_value_is_in_the_compose_environment() -> None:
    for name in compose_services():
        env = compose_env(name)
        for field in secret_settings():
            variable = f"SHOPAI_{field.upper()}"
            assert variable not in env, (
                f"docker-compose.yml: {name} sets {variable} in its environment; give it as a secret "
                f"file ({variable}_FILE: {SECRETS_MOUNT}...)"
            )


def test_every_secret_setting_reaches_compose_as_a_file() -> None:
    delivered = {key for name in DEPLOYABLES for key, value in compose_env(name).items()
                 if key.endswith("_FILE") and value.startswith(SECRETS_MOUNT)}
    for field in secret_settings():
        assert f"SHOPAI_{field.upper()}_FILE" in delivered, (
            f"docker-compose.yml: no service reads the secret setting {field} from a file "
            f"(SHOPAI_{field.upper()}_FILE: {SECRETS_MOUNT}{field})"
        )


def test_make_compose_secrets_writes_every_file_compose_mounts(tmp_path: Path) -> None:
    from shopai.secrets import make_grpc_pki, make_secrets

    make_secrets(tmp_path)
    make_grpc_pki(tmp_path)
    missing = sorted(set(compose().get("secrets") or {}) - {p.name for p in tmp_path.iterdir()})
    assert not missing, f"docker-compose.yml mounts secrets that `python -m shopai.secrets --tls` does not make: {missing}"


def test_redis_asks_for_the_password_the_services_send() -> None:
    command = " ".join(map(str, compose_service("redis").get("command") or []))
    assert "--requirepass" in command and "/run/secrets/redis_password" in command, (
        f"docker-compose.yml: redis runs {command!r}, without the password from the secret redis_password"
    )
    for name in DEPLOYABLES:
        assert compose_env(name).get("SHOPAI_REDIS_PASSWORD_FILE") == "/run/secrets/redis_password", (
            f"docker-compose.yml: {name} does not send the Redis password (SHOPAI_REDIS_PASSWORD_FILE)"
        )


def test_docker_compose_config_validates() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip(
            "docker-compose (v1) is not installed; `make` installs it (Debian package docker-compose)"
        )
    result = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"`docker-compose -f docker-compose.yml config -q` rejected the file:\n{result.stderr}{result.stdout}"
    )


# --------------------------------------------------------------------------- Dockerfiles


def test_dockerfile_builds_exactly_the_deployables() -> None:
    assert "SERVICE" in dockerfile.global_args(), (
        f"Dockerfile: ARG SERVICE must come before the first FROM (the last FROM uses it); "
        f"global ARGs are {dockerfile.global_args()}"
    )
    last = dockerfile.stages()[-1]
    assert last.base in {"${SERVICE}", "$SERVICE"} and not last.instructions, (
        f"Dockerfile: the last stage is FROM {last.base} with {last.instructions}; expected a bare FROM ${{SERVICE}}"
    )
    named = [s.name for s in dockerfile.stages() if s.name]
    assert sorted(named) == sorted(["base", *DEPLOYABLES]), (
        f"Dockerfile: stages {named}, expected base and one per image {DEPLOYABLES}"
    )
    guard = next((v for v in dockerfile.stage("base").values("RUN") if 'case "$SERVICE" in' in v), "")
    accepted = re.search(r'case "\$SERVICE" in\s+([\w|]+)\)', guard)
    assert accepted and sorted(accepted.group(1).split("|")) == sorted(DEPLOYABLES), (
        f"Dockerfile: the base stage accepts SERVICE {accepted.group(1) if accepted else None!r}, "
        f"expected {DEPLOYABLES}"
    )


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_image_stages_hold_only_what_differs(name: str) -> None:
    """Everything the images share is in the base stage; an image's own stage only says what it
    exposes, how it is checked and what it runs."""
    own = dockerfile.stage(name)
    assert own is not None and own.base == "base", f"Dockerfile: no stage `FROM base AS {name}`"
    keywords = sorted(kw for kw, _ in own.instructions)
    assert keywords == ["CMD", "EXPOSE", "HEALTHCHECK"], (
        f"Dockerfile: stage {name} holds {keywords}, expected only EXPOSE, HEALTHCHECK and CMD"
    )


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_dockerfile_agrees_with_settings(name: str) -> None:
    chain = dockerfile.image(name)
    assert [s.name for s in chain][-2:] == [name, None], (
        f"Dockerfile: --build-arg SERVICE={name} builds {[s.name for s in chain]}, expected the stage {name}"
    )
    root = dockerfile.root_image(name)
    assert root.startswith("python:3.11-slim"), f"Dockerfile: the {name} image is FROM {root}, expected python:3.11-slim"

    installs = [v for v in dockerfile.image_values(name, "RUN") if "pip install" in v and ".[" in v]
    assert len(installs) == 1 and '".[${SERVICE}]"' in installs[0], (
        f"Dockerfile: the dependencies are installed by {installs}, expected pip install \".[${{SERVICE}}]\""
    )
    extras = pyproject()["project"]["optional-dependencies"]
    assert name in extras, f"pyproject.toml has no extra {name!r}, which the Dockerfile installs for SERVICE={name}"

    if name == GATEWAY:
        ports = [defaults().gateway_port]
    else:
        ports = [defaults().endpoint(name).grpc_port, defaults().endpoint(name).metrics_port]
    exposed = [int(p.split("/")[0]) for e in dockerfile.image_values(name, "EXPOSE") for p in e.split()]
    assert sorted(exposed) == sorted(ports), f"Dockerfile ({name}): EXPOSE {exposed}, Settings ports are {ports}"

    healthchecks = dockerfile.image_values(name, "HEALTHCHECK")
    assert len(healthchecks) == 1, f"Dockerfile ({name}): {len(healthchecks)} HEALTHCHECK instructions, expected 1"
    health_ports = [int(p) for p in re.findall(r"(?::-|:)(\d{2,5})\b", healthchecks[0])]
    health_ports += [int(p) for p in re.findall(r"'(\d{2,5})'", healthchecks[0])]
    assert ports[0] in health_ports, (
        f"Dockerfile ({name}): HEALTHCHECK {healthchecks[0]!r} does not default to port {ports[0]}"
    )

    users = dockerfile.image_values(name, "USER")
    assert users and users[-1].split(":")[0] not in {"root", "0"}, (
        f"Dockerfile ({name}): runs as USER {users[-1] if users else 'root (none set)'}, expected a non-root user"
    )
    copied = " ".join(dockerfile.image_values(name, "COPY"))
    for needed in ("pyproject.toml", "README.md", "services", "gateway", "protos", "shopai"):
        assert re.search(rf"(^|\s){re.escape(needed)}(\s|$)", copied), f"Dockerfile ({name}): never COPYs {needed}"


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_dockerfile_commands_name_existing_modules(name: str) -> None:
    for keyword in ("CMD", "HEALTHCHECK"):
        values = dockerfile.image_values(name, keyword)
        assert values, f"Dockerfile ({name}): no {keyword}"
        text = values[-1].split("CMD", 1)[1] if keyword == "HEALTHCHECK" else values[-1]
        text = text.strip()
        argv = yaml.safe_load(text) if text.startswith("[") else shlex.split(text)
        if argv[:2] == ["python", "-c"]:
            continue
        for need in files_a_command_needs(argv):
            assert_needed_exists(need, f"Dockerfile ({name}) {keyword}")


def test_dockerignore_keeps_the_context_small_but_complete() -> None:
    patterns = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for excluded in (".venv", ".git", ".data", "tests", "benchmarks/results", "**/__pycache__"):
        assert excluded in patterns, f".dockerignore does not exclude {excluded}"
    for needed in ("pyproject.toml", "README.md", "services", "gateway", "protos", "shopai"):
        assert needed not in patterns, f".dockerignore excludes {needed}, which the Dockerfile COPYs"


# --------------------------------------------------------------------------- Procfile


def test_procfile_has_exactly_the_dev_processes() -> None:
    assert tuple(procfile()) == PROCFILE_NAMES, (
        f"deploy/Procfile.dev defines {tuple(procfile())}, expected {PROCFILE_NAMES} (the launcher uses the names)"
    )
    honcho_environ = pytest.importorskip("honcho.environ")
    parsed = honcho_environ.parse_procfile(PROCFILE.read_text())
    assert dict(parsed.processes) == procfile(), "honcho reads deploy/Procfile.dev differently from this test"


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_procfile_runs_each_service_module(name: str) -> None:
    argv = command_argv(procfile().get(name, ""))
    assert argv[:3] == ["python", "-m", f"services.{name}"], (
        f"deploy/Procfile.dev runs {name} as {argv}, expected python -m services.{name}"
    )


@pytest.mark.parametrize("name", PROCFILE_NAMES)
def test_procfile_commands_name_existing_modules(name: str) -> None:
    argv = command_argv(procfile()[name])
    assert argv, f"deploy/Procfile.dev: {name} has an empty command"
    if argv[0] in EXTERNAL_PROGRAMS:
        return
    for need in files_a_command_needs(argv):
        assert_needed_exists(need, f"deploy/Procfile.dev ({name})")


def test_procfile_redis_matches_the_default_redis_url() -> None:
    """Without REDIS_PORT (shopai run sets it from SHOPAI_REDIS_URL), the Procfile's Redis is the default URL's."""
    argv = command_argv(procfile()["redis"])
    given = argv[argv.index("--port") + 1] if "--port" in argv else "6379"
    port = int(re.sub(r"^\$\{REDIS_PORT:-(\d+)\}$", r"\1", given))
    url = urlsplit(defaults().redis_url)
    assert (url.hostname, url.port or 6379) == ("127.0.0.1", port), (
        f"deploy/Procfile.dev starts Redis on port {port}, Settings().redis_url is {defaults().redis_url}"
    )


# --------------------------------------------------------------------------- Prometheus


@cache
def prometheus_jobs() -> dict[str, dict]:
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


def job_targets(job: dict) -> list[str]:
    return [t for sc in job.get("static_configs", []) for t in sc.get("targets", [])]


def test_prometheus_scrapes_every_15_seconds() -> None:
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    interval = config.get("global", {}).get("scrape_interval")
    assert interval == "15s", (
        f"deploy/prometheus/prometheus.yml: scrape_interval is {interval!r}, expected '15s'"
    )


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_prometheus_scrapes_each_metrics_port(name: str) -> None:
    port = defaults().gateway_port if name == GATEWAY else defaults().endpoint(name).metrics_port
    all_targets = {t: job for job in prometheus_jobs().values() for t in job_targets(job)}
    target = f"{name}:{port}"
    assert target in all_targets, (
        f"deploy/prometheus/prometheus.yml scrapes {sorted(all_targets)}, but {name} exports metrics on {target}"
    )
    path = all_targets[target].get("metrics_path", "/metrics")
    assert path == "/metrics", (
        f"deploy/prometheus/prometheus.yml scrapes {target} at {path}, expected /metrics"
    )


def test_prometheus_targets_are_compose_services() -> None:
    for job in prometheus_jobs().values():
        for target in job_targets(job):
            host = target.rsplit(":", 1)[0]
            assert host == "localhost" or host in compose_services(), (
                f"deploy/prometheus/prometheus.yml: target {target} of job {job['job_name']} "
                "is not a docker-compose.yml service"
            )


# --------------------------------------------------------------------------- topics


def test_topic_names_are_legal_for_apache_kafka() -> None:
    names = topics.all_topics()
    assert len(set(names)) == len(names), f"services.common.topics.all_topics() has duplicates: {names}"
    seen: dict[str, str] = {}
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,249}", name), f"topic {name!r} is not a legal Kafka topic name"
        # Kafka refuses topics that collide once '.' and '_' are treated alike (metric names).
        folded = name.replace(".", "_")
        assert folded not in seen, f"topics {name!r} and {seen[folded]!r} collide in Kafka ('.' vs '_')"
        seen[folded] = name
