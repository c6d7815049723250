"""The shape every sectioned benchmark shares: ``--quick`` and ``--section``, one results file per
section (``results/<prefix>-<section>[-quick].json``, with the machine named), tables printed."""

from __future__ import annotations

import argparse
import importlib
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.machine import describe

RESULTS = Path(__file__).resolve().parent / "results"
Runner = Callable[[bool], dict]


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    keys = list(dict.fromkeys(k for row in rows for k in row))
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(str(row.get(k, "")) for k in keys))


def lazy(module: str, name: str) -> Runner:
    """A runner imported only when its section runs (heavy imports stay out of the others)."""

    def call(quick: bool) -> dict:
        return getattr(importlib.import_module(f"benchmarks.{module}"), name)(quick)

    return call


def run_sections(prefix: str, description: str, runners: Mapping[str, Runner], quick_help: str,
                 argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--section", choices=("all", *runners), default="all")
    args = parser.parse_args(argv)
    sections = tuple(runners) if args.section == "all" else (args.section,)
    RESULTS.mkdir(exist_ok=True)
    for section in sections:
        print(f"== {section}{' (quick)' if args.quick else ''}", flush=True)
        started = time.perf_counter()
        result = runners[section](args.quick)
        result.update(machine=describe(), quick=args.quick, seconds=round(time.perf_counter() - started),
                      finished_at=datetime.now(UTC).isoformat(timespec="seconds"))
        for key, value in result.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                print_table(f"{section}: {key}", value)
        path = RESULTS / f"{prefix}-{section}{'-quick' if args.quick else ''}.json"
        path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {path}", flush=True)
