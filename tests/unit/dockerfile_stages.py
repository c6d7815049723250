"""The one ./Dockerfile read as text, stage by stage (no Docker needed), for the deploy tests.

The file builds every ShopAI image: a shared ``base`` stage, one small stage per image (EXPOSE,
HEALTHCHECK, CMD) and a last ``FROM ${SERVICE}`` that picks the stage the build argument names.
:func:`image` follows that chain for one SERVICE the way ``docker build --build-arg SERVICE=…`` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
WHERE = "Dockerfile"


@dataclass(frozen=True)
class Stage:
    name: str | None  # None for a stage without ``AS <name>``
    base: str  # the FROM argument, variables not substituted
    instructions: tuple[tuple[str, str], ...]  # (INSTRUCTION, arguments) after the FROM

    def values(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@cache
def instructions(path: Path = DOCKERFILE) -> tuple[tuple[str, str], ...]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    current = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.partition(" ")
        result.append((keyword.upper(), args.strip()))
        current = ""
    return tuple(result)


@cache
def global_args() -> tuple[str, ...]:
    """The ARGs before the first FROM (the ones a FROM line may use)."""
    args = []
    for keyword, value in instructions():
        if keyword == "FROM":
            break
        if keyword == "ARG":
            args.append(value)
    return tuple(args)


@cache
def stages() -> tuple[Stage, ...]:
    found: list[Stage] = []
    base, name, body = None, None, []
    for keyword, value in instructions():
        if keyword == "FROM":
            if base is not None:
                found.append(Stage(name, base, tuple(body)))
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", value, flags=re.IGNORECASE)
            assert match, f"{WHERE}: cannot read FROM {value!r}"
            base, name, body = match.group(1), match.group(2), []
        elif base is not None:
            body.append((keyword, value))
    if base is not None:
        found.append(Stage(name, base, tuple(body)))
    return tuple(found)


def stage(name: str) -> Stage | None:
    return next((s for s in stages() if s.name == name), None)


def image(service: str) -> list[Stage]:
    """The stages that make the image ``docker build --build-arg SERVICE=<service>`` builds, from the first
    (whose FROM is a registry image) to the last."""
    assert stages(), f"{WHERE} has no FROM"
    chain = [stages()[-1]]
    while True:
        base = re.sub(r"\$\{?SERVICE\}?", service, chain[0].base)
        parent = stage(base)
        if parent is None:
            return chain
        assert parent not in chain, f"{WHERE}: stage {base} is its own ancestor"
        chain.insert(0, parent)


def root_image(service: str) -> str:
    """The registry image the chain of ``service`` starts from."""
    return image(service)[0].base


def image_values(service: str, keyword: str) -> list[str]:
    """Every ``keyword`` instruction on the way to the image of ``service``, in build order."""
    return [value for s in image(service) for value in s.values(keyword)]
