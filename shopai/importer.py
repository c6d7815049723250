"""``shopai import``: a shop's events from a JSONL or CSV file onto the bus, with a progress bar.

Every record is validated exactly as ``POST /v1/events`` validates (``parse_event``); good events
are published in batches with ``acks='all'``; a bad record is reported with its line number and
reason (and optionally written to a rejects file) and never stops the import.

- **JSONL**: one envelope per line (``protos/events.proto``), as ``POST /v1/events`` takes it.
- **CSV**: a header row with ``type`` and ``occurred_at`` (and optionally ``event_id``,
  ``source``, ``schema_version``), then either a ``payload`` column holding the payload as JSON,
  or one column per payload field (``user_id``, ``product_id``, ``price``...). Flat values that
  look like numbers become numbers, ``true``/``false`` booleans, and empty cells are left out;
  a column holding JSON (``lines``, ``tags``) is parsed.

A record without ``event_id`` gets a deterministic one (UUID5 of the record's content and its line in the
file), so importing the same file twice publishes the same ids and the consumers count nothing twice, while
two identical lines stay two events.

A shop's own exports need no conversion (``kind``, ``shopai/tables.py``): ``order-lines`` (one row per item
sold, grouped into orders) and ``catalog`` (one row per product), read through a column mapping.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from services.common.events import InvalidEvent, parse_event

NAMESPACE = uuid.UUID("0b7f1a52-5d43-4d8e-9a0e-6f3c1c1a2b7e")
ENVELOPE_FIELDS = ("event_id", "type", "schema_version", "occurred_at", "source")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")
# Identifiers stay strings even when they look like numbers ("00123" must not become 123).
_STRING_FIELDS = frozenset({"user_id", "product_id", "order_id", "session_id", "query", "batch", "serial",
                            "location", "currency", "category", "title", "brand"})


@dataclass
class ImportReport:
    read: int = 0
    published: int = 0
    rejected: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_ERRORS_KEPT

    def as_dict(self) -> dict[str, Any]:
        return {"read": self.read, "published": self.published, "rejected": self.rejected,
                "by_type": dict(sorted(self.by_type.items())), "first_errors": self.errors}


MAX_ERRORS_KEPT = 20


def _flat_value(name: str, text: str) -> Any:
    text = text.strip()
    if name in _STRING_FIELDS:
        return text
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if _NUMBER.match(text):
        number = float(text)
        return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
    return text


def csv_record(row: dict[str, str | None]) -> dict[str, Any]:
    """One CSV row -> an envelope dict (not yet validated)."""
    record: dict[str, Any] = {}
    for name in ENVELOPE_FIELDS:
        value = (row.get(name) or "").strip()
        if value:
            record[name] = int(value) if name == "schema_version" and value.isdigit() else value
    if row.get("payload"):
        try:
            record["payload"] = json.loads(row["payload"] or "")
        except json.JSONDecodeError as exc:
            raise InvalidEvent(f"payload is not JSON: {exc.msg}") from None
    else:
        record["payload"] = {k: _flat_value(k, v) for k, v in row.items()
                             if k and k not in ENVELOPE_FIELDS and k != "payload" and v not in (None, "")}
    return record


def read_records(stream: TextIO, fmt: str) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, record or None, error or None) for every record of the file."""
    if fmt == "jsonl":
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, None, f"not JSON: {exc.msg}"
                continue
            if not isinstance(record, dict):
                yield number, None, "a line must hold one JSON object (an event envelope)"
                continue
            yield number, record, None
    elif fmt == "csv":
        reader = csv.DictReader(stream)
        missing = {"type", "occurred_at"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"the CSV header lacks {sorted(missing)}")
        for row in reader:
            try:
                yield reader.line_num, csv_record(row), None
            except InvalidEvent as exc:
                yield reader.line_num, None, str(exc)
    else:
        raise ValueError(f"unknown format {fmt!r}; expected jsonl or csv")


def with_event_id(record: dict[str, Any], line: int = 0) -> dict[str, Any]:
    """The record with its ``event_id``, or one derived from its content and its ``line`` in the source."""
    if record.get("event_id"):
        return record
    content = json.dumps({k: v for k, v in record.items() if k != "event_id"}, sort_keys=True, ensure_ascii=False)
    return {**record, "event_id": str(uuid.uuid5(NAMESPACE, f"{line}\x1f{content}"))}


def read_table(stream: TextIO, kind: str, mapping: str, currency: str = "USD", timezone: str = "UTC",
               catalog: bool = True) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """The events of a shop's export (``tables.order_line_events`` / ``tables.catalog_events``)."""
    from shopai import tables

    reader = csv.DictReader(stream)
    parsed = tables.parse_mapping(mapping, kind, reader.fieldnames or [])
    rows = ((reader.line_num, row) for row in reader)
    if kind == "order-lines":
        yield from tables.order_line_events(rows, parsed, currency=currency, timezone=timezone, catalog=catalog)
    else:
        yield from tables.catalog_events(rows, parsed, currency=currency, timezone=timezone)


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower().removesuffix(".gz")
    return "csv" if suffix == ".csv" else "jsonl"


def import_file(path: Path, publish, fmt: str | None = None, batch_size: int = 1000, show_progress: bool = True,
                rejects: TextIO | None = None, kind: str = "events", mapping: str = "", currency: str = "USD",
                timezone: str = "UTC", catalog: bool = True) -> ImportReport:
    """Validate every record of ``path`` and hand the good ones to ``publish(list[Event])`` in batches.
    ``kind`` "events" reads envelopes (JSONL or CSV); "order-lines" and "catalog" read a CSV export through
    ``mapping`` (``shopai/tables.py``)."""
    from services.common.progress import progress

    if kind not in ("events", "order-lines", "catalog"):
        raise ValueError(f"unknown kind {kind!r}; expected events, order-lines or catalog")
    fmt = "csv" if kind != "events" else fmt or detect_format(path)
    report = ImportReport()
    batch = []
    with path.open("rb") as raw, progress(total=path.stat().st_size, desc=f"importing {path.name}", unit="B",
                                          unit_scale=True, disable=not show_progress) as bar:
        counted = _Counting(raw, bar.update)
        stream = io.TextIOWrapper(counted, encoding="utf-8-sig", newline="" if fmt == "csv" else None)
        records = (read_records(stream, fmt) if kind == "events"
                   else read_table(stream, kind, mapping, currency, timezone, catalog))
        for number, record, error in records:
            report.read += 1
            if record is not None:
                try:
                    event = parse_event(with_event_id(record, number))
                except InvalidEvent as exc:
                    error = str(exc)
                else:
                    batch.append(event)
                    report.by_type[event.type] = report.by_type.get(event.type, 0) + 1
            if error is not None:
                report.rejected += 1
                if len(report.errors) < MAX_ERRORS_KEPT:
                    report.errors.append({"line": number, "reason": error})
                if rejects is not None:
                    rejects.write(json.dumps({"line": number, "reason": error}, ensure_ascii=False) + "\n")
            if len(batch) >= batch_size:
                publish(batch)
                report.published += len(batch)
                batch = []
        if batch:
            publish(batch)
            report.published += len(batch)
        stream.detach()
    return report


class _Counting(io.RawIOBase):
    """A binary file that reports how many bytes were read (the progress bar's position)."""

    def __init__(self, raw, on_read) -> None:
        self.raw = raw
        self.on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer)
        if n:
            self.on_read(n)
        return n
