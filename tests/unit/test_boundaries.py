"""The layout's import rules, read from the source (nothing is imported): the gateway talks to services only
over gRPC and through their shared contracts in ``services.common`` (and ``protos``); a service imports no
other service; a service's ``core/`` uses no Redis, Kafka or gRPC. ``shopai`` (the operator's CLI) may
import service code and is not checked."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("recommender", "chatbot", "vision", "forecasting")
IO_LIBRARIES = ("redis", "kafka", "grpc")


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, wherever it is (a function's lazy import counts too);
    ``from x import y`` also yields ``x.y`` (``from services import recommender`` names the service)."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the file's package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return found


def _service_of(module: str) -> str | None:
    """``services.<name>...`` -> name, for a service (not ``services.common``)."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[0] == "services" and parts[1] in SERVICES:
        return parts[1]
    return None


def _violations(folder: Path, forbidden: Callable[[str], bool]) -> list[str]:
    """One line per import statement under ``folder`` that names a module ``forbidden(module)`` refuses."""
    found: dict[str, str] = {}
    for path in _modules(folder):
        for line, module in _imports(path, ROOT):
            if forbidden(module):
                found.setdefault(f"{path.relative_to(ROOT)}:{line}", module)
    return [f"{where} imports {module}" for where, module in found.items()]


def test_the_rules_see_every_service():
    on_disk = {p.name for p in (ROOT / "services").iterdir() if (p / "server.py").exists()}
    assert on_disk == set(SERVICES), "a new service: add it to SERVICES"


@pytest.mark.parametrize("service", SERVICES)
def test_the_gateway_imports_no_service_internals(service):
    offending = _violations(ROOT / "gateway", lambda module: _service_of(module) == service)
    assert not offending, (f"the gateway must reach the {service} over gRPC or through services.common: "
                           + "; ".join(offending))


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service(service):
    offending = _violations(ROOT / "services" / service,
                            lambda module: _service_of(module) not in (None, service))
    assert not offending, "shared code belongs in services.common: " + "; ".join(offending)


@pytest.mark.parametrize("service", SERVICES)
def test_a_services_core_does_no_io(service):
    offending = _violations(ROOT / "services" / service / "core",
                            lambda module: module.split(".")[0] in IO_LIBRARIES)
    assert not offending, "core/ is pure (no Redis, Kafka or gRPC): " + "; ".join(offending)


def test_the_checks_catch_what_they_forbid(tmp_path):
    """The AST reading itself: absolute, from-, relative and lazy imports are all seen."""
    package = tmp_path / "gateway" / "routes"
    package.mkdir(parents=True)
    source = package / "x.py"
    source.write_text("import services.vision.core.codes\nfrom services import chatbot\nfrom .. import y\n"
                      "def f():\n    from services.forecasting.core import charts\n    import redis.client\n")
    found = {m for _, m in _imports(source, tmp_path)}
    assert {"services.vision.core.codes", "services.chatbot", "gateway.y", "services.forecasting.core.charts",
            "redis.client"} <= found
    assert {_service_of(m) for m in found} >= {"vision", "chatbot", "forecasting"}
    assert _service_of("services.common.recommendations") is None
