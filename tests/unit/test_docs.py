"""The documentation stays true to the code it describes.

- README.md's Layout section names only paths that exist, every top-level directory, every
  deploy/ subdirectory and every module of services/common;
- the `shopai` subcommands the README names are the ones the CLI's argparse defines, all of them;
- no document cites a file outside the repository (the design card `DESIGN.md`, `../shared/...`), and
  the repository paths the documents name exist;
- every example of a training request (docs/api.md, docs/protos.md, the services' READMEs, the
  comment in protos/common.proto) is one the service's ``Train`` RPC accepts.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest

from protos import common_pb2
from services.common.settings import SERVICE_NAMES

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def documents() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "services").glob("*/README.md")),
            *sorted((ROOT / "protos").glob("*.md")), *sorted((ROOT / "benchmarks").glob("*.md"))]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --------------------------------------------------------------------------- README: Layout


@cache
def layout_block() -> list[str]:
    """The lines of the fenced block under README.md's `## Layout` heading."""
    text = README.read_text()
    match = re.search(r"^## Layout\s*$(.*?)^```[^\n]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    assert match, "README.md has no `## Layout` section with a fenced block"
    return match.group(2).splitlines()


@cache
def layout_paths() -> list[str]:
    """The paths the Layout block names: the first word of each line; a line indented under a
    directory names a path inside it when its first word stands in the name column (two spaces or
    more after it); other indented lines continue the text of the line above."""
    paths: list[str] = []
    parent = ""
    for line in layout_block():
        if not line.strip():
            continue
        if not line.startswith(" "):
            word = line.split()[0]
            paths.append(word)
            parent = word if word.endswith("/") else ""
            continue
        child = re.match(r"^ +([\w.<>-]+/?) {2,}\S", line)
        if parent and child:
            paths.append(parent + child.group(1))
    return paths


def expand(path: str) -> list[str]:
    """``services/<name>/`` stands for each service."""
    return [path.replace("<name>", name) for name in SERVICE_NAMES] if "<name>" in path else [path]


def test_layout_names_only_paths_that_exist() -> None:
    assert layout_paths(), "README.md: the Layout block names no paths"
    for path in layout_paths():
        for concrete in expand(path):
            assert (ROOT / concrete).exists(), f"README.md Layout names {concrete}, which does not exist"


def tracked_top_level_directories() -> set[str]:
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True,
                                timeout=60).stdout.split()
    except (OSError, subprocess.SubprocessError):
        pytest.skip("git is not available to list the repository's files")
    return {name.split("/")[0] for name in listed if "/" in name and not name.startswith(".")}


def test_layout_names_every_top_level_directory() -> None:
    named = {p.split("/")[0] for p in layout_paths() if "/" in p}
    missing = sorted(tracked_top_level_directories() - named)
    assert not missing, f"README.md Layout does not name the top-level directories {missing}"


def test_layout_names_every_deploy_directory() -> None:
    named = set(layout_paths())
    for sub in sorted(p for p in (ROOT / "deploy").iterdir() if p.is_dir()):
        assert f"deploy/{sub.name}/" in named, f"README.md Layout does not name deploy/{sub.name}/"


def test_layout_lists_every_common_module() -> None:
    named = set(layout_paths())
    for module in sorted((ROOT / "services" / "common").glob("*.py")):
        if module.name != "__init__.py":
            assert f"services/common/{module.name}" in named, (
                f"README.md Layout does not list services/common/{module.name} under services/common/"
            )


# --------------------------------------------------------------------------- README: the CLI


class _Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


@cache
def cli_subcommands() -> frozenset[str]:
    """The subcommands shopai.cli's argparse defines (the parser is caught as main() parses)."""
    from shopai import cli

    def catch(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        raise _Parsed(self)

    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = catch  # type: ignore[assignment]
    try:
        cli.main([])
    except _Parsed as parsed:
        parser = parsed.parser
    else:
        pytest.fail("shopai.cli.main() never parsed its arguments")
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert actions, "shopai.cli defines no subcommands"
    return frozenset(actions[0].choices)


def code_in(text: str) -> str:
    """Fenced blocks and inline code spans, joined."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return "\n".join([*fenced, *re.findall(r"`([^`\n]+)`", prose)])


def readme_subcommands() -> set[str]:
    return set(re.findall(r"(?:^|[\s/(])shopai ([a-z][a-z0-9-]*)", code_in(README.read_text()), flags=re.MULTILINE))


def test_readme_names_every_cli_subcommand() -> None:
    missing = sorted(cli_subcommands() - readme_subcommands())
    assert not missing, f"README.md never names `shopai <cmd>` for the subcommands {missing}"


def test_readme_names_only_existing_subcommands() -> None:
    unknown = sorted(readme_subcommands() - cli_subcommands())
    assert not unknown, f"README.md names `shopai` subcommands the CLI does not have: {unknown}"


# --------------------------------------------------------------------------- services' READMEs


def service_parts(service: str) -> list[str]:
    """What a service's README must name: its modules (but ``__init__``/``__main__``), its core's modules
    and the core's sub-packages (as ``name/``)."""
    directory = ROOT / "services" / service
    parts = [p.name for p in sorted(directory.glob("*.py")) if p.name not in {"__init__.py", "__main__.py"}]
    core = directory / "core"
    parts += [p.name for p in sorted(core.glob("*.py")) if p.name != "__init__.py"]
    parts += [f"{p.name}/" for p in sorted(core.iterdir()) if p.is_dir() and (p / "__init__.py").exists()]
    return parts


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_service_readme_names_every_module(service: str) -> None:
    text = (ROOT / "services" / service / "README.md").read_text()
    missing = [part for part in service_parts(service) if f"`{part}" not in text and f"{part}`" not in text
               and not re.search(rf"`[^`]*\b{re.escape(part)}`", text)]
    assert not missing, f"services/{service}/README.md does not name {missing} (in backticks)"


# --------------------------------------------------------------------------- references


OUTSIDE = re.compile(r"DESIGN\.md|design card|\.\./|(?<![\w/.-])shared/")


@pytest.mark.parametrize("path", documents(), ids=rel)
def test_no_document_cites_files_outside_the_repository(path: Path) -> None:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = OUTSIDE.search(line)
        assert match is None, f"{rel(path)}:{number} refers to {match.group(0)!r}, outside the repository"


def test_no_proto_comment_cites_files_outside_the_repository() -> None:
    for path in sorted((ROOT / "protos").glob("*.proto")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = OUTSIDE.search(line)
            assert match is None, f"{rel(path)}:{number} refers to {match.group(0)!r}, outside the repository"


def test_no_source_file_cites_the_design_card() -> None:
    """Docstrings and comments too: the OpenAPI spec shows some of them."""
    for folder in ("services", "gateway", "shopai", "protos", "benchmarks", "deploy"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in {".py", ".proto", ".yaml", ".yml", ".js", ".html"} or "_pb2" in path.name:
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                assert "DESIGN.md" not in line and "design card" not in line, (
                    f"{rel(path)}:{number} cites the design card, which is not in the repository"
                )


@pytest.mark.parametrize("path", documents(), ids=rel)
def test_relative_links_resolve(path: Path) -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        file = (path.parent / target.split("#")[0]).resolve()
        assert file.exists(), f"{rel(path)} links to {target}, which does not exist"


TOP = ("services/", "gateway/", "shopai/", "protos/", "deploy/", "tests/", "benchmarks/", "docs/")


def named_path_exists(path: str) -> bool:
    """``services/common/events.py``, ``services/<name>/store.py``, and ``module.attribute`` forms
    (``services/common/events.parse_event``, ``gateway/app.create_app(settings)``)."""
    path = path.split("::")[0].split("#")[0].rstrip(".,;:")
    if re.search(r"[*{]", path) or ("<" in path and not path.startswith("services/<name>/")):
        return True  # a pattern, not a path (``services/<name>/`` stands for each service)
    for concrete in expand(path):
        plain = re.sub(r"\(.*\)$", "", concrete)
        if not ((ROOT / plain).exists() or (ROOT / re.sub(r"\.[A-Za-z_]\w*$", ".py", plain)).exists()):
            return False
    return True


@pytest.mark.parametrize("path", documents(), ids=rel)
def test_paths_named_in_code_spans_exist(path: Path) -> None:
    service_dir = path.parent if path.parent.parent.name == "services" else None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        for span in re.findall(r"`([^`\s]+)`", line):
            if span.startswith(TOP):
                assert named_path_exists(span), f"{rel(path)}:{number} names {span}, which does not exist"
            elif service_dir is not None and re.fullmatch(r"[\w/]+\.py", span):
                found = list(service_dir.rglob(span.split("/")[-1])) or list(service_dir.rglob(span))
                assert found, f"{rel(path)}:{number} names {span}, which is not in {rel(service_dir)}/"


def dotted_name_exists(name: str) -> bool:
    """``services.common.jobs.TrainingScheduler``, ``shopai.demo.emitter.NAMESPACE``: the longest
    importable module prefix, then attributes."""
    import importlib

    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(obj, attribute):
                return False
            obj = getattr(obj, attribute)
        return True
    return False


@pytest.mark.parametrize("path", documents(), ids=rel)
def test_dotted_names_in_code_spans_exist(path: Path) -> None:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        for span in re.findall(r"`((?:services|gateway|shopai|protos)(?:\.\w+)+)`", line):
            if re.search(r"\.(ya?ml|py|md|json|proto)$|\.v\d+(\.|$)", span):
                continue  # a file name (gateway.yaml) or a proto package (shopai.common.v1)
            assert dotted_name_exists(span), f"{rel(path)}:{number} names {span}, which does not exist"


# --------------------------------------------------------------------------- docs/api.md and the spec


def normalise(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


@cache
def spec_operations() -> frozenset[tuple[str, str]]:
    """(METHOD, path) of every operation in the gateway's live OpenAPI spec (backends and Redis absent:
    the spec does not need them)."""
    from gateway.app import close_app, create_app
    from services.common.settings import Settings
    from tests.support import TEST_KEYS, free_port

    dead = {name: {"grpc_port": free_port(), "metrics_port": free_port()} for name in SERVICE_NAMES}
    settings = Settings(gateway_api_keys=TEST_KEYS, redis_url=f"redis://127.0.0.1:{free_port()}/0",
                        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", log_json=False, **dead)
    app = create_app(settings)
    try:
        spec = app.test_client().get("/openapi.json").json
    finally:
        close_app(app)
    return frozenset((method.upper(), normalise(path)) for path, item in spec["paths"].items()
                     for method in item if method in {"get", "post", "put", "patch", "delete"})


API = ROOT / "docs" / "api.md"


def test_api_md_documents_every_operation_of_the_spec() -> None:
    documented = {(m, normalise(p)) for m, p in re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s?]*)", API.read_text())}
    missing = sorted(spec_operations() - documented)
    assert not missing, f"docs/api.md does not document {missing} (as `METHOD /path`)"


def test_api_md_headings_name_operations_of_the_spec() -> None:
    for line in API.read_text().splitlines():
        if line.startswith("### "):
            for method, path in re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s?]*)`", line):
                assert (method, normalise(path)) in spec_operations(), (
                    f"docs/api.md heading {line!r} names {method} {path}, which the gateway does not serve"
                )


# --------------------------------------------------------------------------- training examples


STUBS = {"Recommender": "recommender", "Assistant": "chatbot", "Vision": "vision", "Forecasting": "forecasting"}


def train_examples() -> list[tuple[str, str, str, dict[str, str]]]:
    """(where, service, model, params) of every training request the documents show."""
    found: list[tuple[str, str, str, dict[str, str]]] = []
    for path in documents():
        text = path.read_text()
        # curl ... /v1/admin/train/<service> ... -d '<json>'   (the body may follow on the next line)
        for match in re.finditer(r"/v1/admin/train/(\w+)[\"']?((?:[^\n]*\\\n)*[^\n]*)", text):
            body = re.search(r"-d\s+'(\{.*?\})'", match.group(2), flags=re.DOTALL)
            if body and match.group(1) in SERVICE_NAMES:
                request = json.loads(body.group(1))
                found.append((rel(path), match.group(1), request.get("model", ""), request.get("params", {})))
        # REST `POST /v1/admin/train/<service>`, body `{...}` in prose
        for match in re.finditer(r"POST /v1/admin/train/(\w+)`?, body `(\{.*?\})`", text):
            request = json.loads(match.group(2))
            found.append((rel(path), match.group(1), request.get("model", ""), request.get("params", {})))
        # stub.Train(common_pb2.TrainRequest(model=..., params={...})) with the stub of a service
        for match in re.finditer(r"\.(\w+)Stub\([^\n]*\n(?:[^\n]*\n)*?[^\n]*TrainRequest\(([^\n]*)\)\)", text):
            call = ast.parse(f"TrainRequest({match.group(2)})", mode="eval").body
            kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
            found.append((rel(path), STUBS[match.group(1)], kwargs.get("model", ""), kwargs.get("params", {})))
    proto = (ROOT / "protos" / "common.proto").read_text()
    for model, service in re.findall(r'"(\w*)"\s*(?://\s*)?\((recommender|chatbot|vision|forecasting)', proto):
        found.append(("protos/common.proto", service, model, {}))
    string_maps = r'(\{"\w+": "[^"]*"(?:, "\w+": "[^"]*")*\})'
    for params, service in re.findall(string_maps + r"\s*(?://\s*)?\((recommender|chatbot|vision|forecasting)\)",
                                      proto):
        found.append(("protos/common.proto", service, "", json.loads(params)))
    return found


class _Aborted(Exception):
    pass


class _Context:
    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise _Aborted(f"{code.name}: {details}")


class _Jobs:
    def __init__(self) -> None:
        self.submitted: list[tuple] = []

    def submit(self, *args: object) -> common_pb2.Job:
        self.submitted.append(args)
        return common_pb2.Job(job_id="test-1")


def servicer_class(service: str) -> type:
    import importlib

    module = importlib.import_module(f"services.{service}.server")
    classes = [c for c in vars(module).values()
               if isinstance(c, type) and c.__module__ == module.__name__ and "Train" in vars(c)]
    assert len(classes) == 1, f"services/{service}/server.py: {len(classes)} classes define Train, expected 1"
    return classes[0]


def test_the_documents_show_training_examples_for_every_service() -> None:
    shown = {service for _, service, _, _ in train_examples()}
    assert shown == set(SERVICE_NAMES), f"training examples shown for {sorted(shown)}, expected every service"
    assert any(params for _, _, _, params in train_examples()), "no training example shows params"


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_training_examples_are_accepted_by_the_service(service: str) -> None:
    servicer = servicer_class(service)
    for where, svc, model, params in train_examples():
        if svc != service:
            continue
        jobs = _Jobs()
        request = common_pb2.TrainRequest(model=model, params=params, requested_by="docs")
        try:
            servicer.Train(SimpleNamespace(jobs=jobs), request, _Context())
        except _Aborted as exc:
            pytest.fail(f"{where}: the {service} refuses the example Train(model={model!r}, params={params}): {exc}")
        assert jobs.submitted, f"{where}: the example for {service} queued no job"
