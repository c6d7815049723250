"""Revoked codes and a code's scan history for staff: the verdict on a revoked code (pure), the history's
pages and what a scan shows (pure), and the code log's revocations projected into the real Redis — the first
revocation stays, a rebuild from the logged events gives the same state, and the Revoker says what is
already revoked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common.events import new_event, parse_event
from services.common.projection import Ops, RedisApplier
from services.common.pseudonyms import pseudonymise
from services.vision.codelog import CodeLog
from services.vision.consumer import VisionProjection
from services.vision.core import codes, history
from services.vision.core.verification import (
    COUNTERFEIT,
    Revocation,
    ScanNote,
    judge_revoked,
    revocation_in_force,
)
from services.vision.revocations import AmbiguousBatch, NotIssued, Revoker
from services.vision.store import VisionStore

KEY = codes.SigningKey.generate()
ISSUED_AT = 1_764_000_000  # 2025-11-24
REVOKED_AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC).timestamp()
SECRET = b"pseudonym-key-for-tests"


def valid_check(batch: str = "B1") -> codes.CodeCheck:
    code = codes.sign(KEY, codes.Claims("p1", batch, "S1", KEY.key_id, ISSUED_AT))
    return codes.verify_payload(code.payload, {KEY.key_id: KEY.public_key})


def revocation(scope: str = "batch", at: float = REVOKED_AT, reason: str = "stolen from the depot") -> Revocation:
    return Revocation(scope, "p1", "B1", "S1" if scope == "serial" else "", reason, "key-1a2b3c4d", at)


# ------------------------------------------------------------------ the verdict


def test_a_revoked_batch_makes_a_valid_code_counterfeit_saying_when_and_why():
    check = valid_check()
    verdict = judge_revoked(check, ISSUED_AT, revocation(), ScanNote(3, "Shanghai, area wtw3"))
    assert verdict.verdict == COUNTERFEIT and verdict.alert and verdict.revocation == revocation()
    assert verdict.reasons[0] == check.reason  # the signature is ours: the code is revoked, not forged
    assert verdict.reasons[1] == "revoked: batch B1 was revoked 2026-12-01 09:30 UTC: stolen from the depot"
    assert "issued 2025-11-24 for batch B1" in verdict.reasons
    assert "location read as Shanghai, area wtw3" in verdict.reasons


def test_a_revoked_serial_names_the_serial():
    verdict = judge_revoked(valid_check(), ISSUED_AT, revocation("serial"))
    assert verdict.reasons[1].startswith("revoked: serial S1 was revoked 2026-12-01")


def test_the_first_of_a_serials_and_its_batchs_revocations_is_in_force():
    early, late = revocation("serial", REVOKED_AT - 60), revocation("batch", REVOKED_AT)
    assert revocation_in_force(late, early) == early and revocation_in_force(None, late) == late
    assert revocation_in_force(None, None) is None


# ------------------------------------------------------------------ the history's pages


def scan(at: float, scanned_by: str = "", **fields) -> dict:
    return {"at": at, "location": "31.2,121.4", "place": "gh:wtw3", "scanned_by": scanned_by,
            "client_id": "addr-0011223344556677", "trusted": False, "counted": True} | fields


def all_pages(scans: list[dict], limit: int) -> list[list[float]]:
    pages, before = [], ""
    while True:
        chosen, before = history.page(scans, limit, before)
        pages.append([s["at"] for s in chosen])
        if not before:
            return pages


def test_pages_are_newest_first_and_end_with_an_empty_cursor():
    scans = [scan(1000.0 + i) for i in range(7)][::-1]
    assert all_pages(scans, 3) == [[1006.0, 1005.0, 1004.0], [1003.0, 1002.0, 1001.0], [1000.0]]
    assert all_pages(scans, 7) == [[1006.0 + d for d in range(0, -7, -1)]]
    assert history.page([], 20) == ([], "")


def test_the_order_is_by_time_not_by_place_in_the_list():
    scans = [scan(5.0), scan(9.0), scan(7.0)]  # replicas' clocks: recorded out of order
    assert [s["at"] for s in history.page(scans, 10)[0]] == [9.0, 7.0, 5.0]


def test_scans_of_one_instant_are_each_shown_once():
    scans = [scan(50.5, client_id=f"key-{i}") for i in range(5)]
    pages = []
    before = ""
    while True:
        chosen, before = history.page(scans, 2, before)
        pages += [s["client_id"] for s in chosen]
        if not before:
            break
    assert sorted(pages) == [f"key-{i}" for i in range(5)]


def test_the_next_page_neither_repeats_nor_skips_when_the_history_changes_between_pages():
    scans = [scan(float(t), scanned_by=f"u{t}") for t in range(10, 0, -1)]  # 10 .. 1, newest first
    first, before = history.page(scans, 4)
    assert [s["at"] for s in first] == [10.0, 9.0, 8.0, 7.0]
    changed = [scan(11.0), scan(12.0)] + [s for s in scans if s["scanned_by"] != "u5"][:-1]  # new, erased, trimmed
    rest, _ = history.page(changed, 10, before)
    assert [s["at"] for s in rest] == [6.0, 4.0, 3.0, 2.0]


@pytest.mark.parametrize("before", ["yesterday", "1796000000.5_0123456789abcdef", "17_0123", "17_0123456789ABCDEF"])
def test_a_cursor_that_no_page_made_is_refused(before):
    with pytest.raises(ValueError, match="next_before"):
        history.page([scan(1.0)], 5, before)


def test_limits():
    assert history.check_limit(0) == 20 and history.check_limit(100) == 100
    for bad in (-1, 101):
        with pytest.raises(ValueError, match="between 1 and 100"):
            history.check_limit(bad)


def test_staff_see_the_place_and_a_pseudonym_never_the_location_or_the_id():
    shown = history.for_staff(scan(1.5, scanned_by="u42", trusted=True), SECRET)
    assert shown.scanned_by == pseudonymise("u42", SECRET) and shown.scanned_by.startswith("u_")
    assert "u42" not in repr(shown) and "31.2" not in repr(shown)
    assert (shown.at, shown.place, shown.client_id, shown.trusted, shown.counted) == (
        1.5, "gh:wtw3", "addr-0011223344556677", True, True)
    assert history.for_staff(scan(1.5), SECRET).scanned_by == ""  # nobody named: nothing to pseudonymise
    assert history.for_staff({"at": 2.0}, SECRET).counted  # scans logged before the counting rules counted


# ------------------------------------------------------------------ revocations in Redis


class Log:
    """The code log as the service runs it (applied at once through the exactly-once applier); the records it
    would send to the broker are kept to be replayed."""

    def __init__(self, client) -> None:
        self.records: list[dict] = []
        self.codelog = CodeLog(lambda topic, key, record: self.records.append(record),
                               RedisApplier(client, "vision", 3600))


def issue(log: Log, product: str, batch: str, serials: list[str]) -> None:
    log.codelog.issued(product, batch, KEY.key_id, ISSUED_AT, [codes.Code(s, "", "") for s in serials])


@pytest.fixture
def setup(redis_client):
    log = Log(redis_client)
    issue(log, "p1", "B1", ["S1", "S2", "S3"])
    issue(log, "p2", "B2", ["T1"])
    issue(log, "p3", "B2", ["U1", "U2"])  # one batch name, two products
    store = VisionStore(redis_client)
    return log, store, Revoker(store, log.codelog)


@pytest.mark.integration
def test_a_batch_revocation_covers_every_serial_of_it_and_only_them(setup):
    log, store, revoker = setup
    outcome = revoker.revoke("B1", "", "", "stolen from the depot", "key-1a2b3c4d")
    assert not outcome.already_revoked and outcome.codes == 3
    assert (outcome.revocation.scope, outcome.revocation.product_id, outcome.revocation.reason) == (
        "batch", "p1", "stolen from the depot")
    assert log.records[-1]["type"] == "code.revoked" and "serial" not in log.records[-1]["payload"]
    for serial in ("S1", "S2", "S3"):
        assert store.revocation(store.issued(serial)) == outcome.revocation
    assert store.revocation(store.issued("T1")) is None


@pytest.mark.integration
def test_revoking_again_changes_nothing_and_answers_the_first(setup):
    log, _store, revoker = setup
    first = revoker.revoke("B1", "", "p1", "recalled", "key-1")
    logged = len(log.records)
    again = revoker.revoke("B1", "", "", "another reason", "key-2")
    assert again.already_revoked and again.revocation == first.revocation and again.codes == 3
    serial = revoker.revoke("", "S2", "", "one more", "key-3")  # its batch is revoked already
    assert serial.already_revoked and serial.revocation == first.revocation
    assert len(log.records) == logged, "nothing more is logged"


@pytest.mark.integration
def test_one_serial_is_revoked_alone(setup):
    _log, store, revoker = setup
    outcome = revoker.revoke("", "S2", "", "label torn off", "")
    assert (outcome.revocation.scope, outcome.revocation.serial, outcome.codes) == ("serial", "S2", 1)
    assert [store.revocation(store.issued(s)) is not None for s in ("S1", "S2", "S3")] == [False, True, False]
    assert revoker.revoke("", "S2", "", "again", "").already_revoked
    later = revoker.revoke("B1", "", "", "the whole batch after all", "")  # the batch is not revoked yet
    assert not later.already_revoked and later.codes == 3
    assert store.revocation(store.issued("S2")).scope == "serial"  # the serial's own came first


@pytest.mark.integration
def test_what_was_never_issued_and_an_ambiguous_batch_are_refused(setup):
    _log, _store, revoker = setup
    with pytest.raises(NotIssued, match="serial NOPE was never issued"):
        revoker.revoke("", "NOPE", "", "x", "")
    with pytest.raises(NotIssued, match="batch B9"):
        revoker.revoke("B9", "", "", "x", "")
    with pytest.raises(NotIssued, match="product p1 in batch B2"):
        revoker.revoke("B2", "", "p1", "x", "")
    with pytest.raises(NotIssued, match="not issued for product p2"):
        revoker.revoke("", "S1", "p2", "x", "")
    with pytest.raises(AmbiguousBatch, match="p2, p3"):
        revoker.revoke("B2", "", "", "x", "")
    assert revoker.revoke("B2", "", "p3", "x", "").codes == 2


@pytest.mark.integration
def test_a_rebuild_from_the_log_gives_the_same_revocations(setup, redis_client):
    log, store, revoker = setup
    revoker.revoke("B1", "", "", "recalled", "key-1")
    serial = revoker.revoke("", "T1", "", "stolen", "key-2").revocation
    before = {s: store.revocation(store.issued(s)) for s in ("S1", "T1", "U1")}
    redis_client.flushdb()
    projection, applier = VisionProjection(redis_client), RedisApplier(redis_client, "vision", 3600)
    items = []
    for record in log.records:
        ops = Ops()
        projection.apply(parse_event(record), ops)
        items.append((record["event_id"], ops.commands))
    applier.apply(items)
    assert {s: store.revocation(store.issued(s)) for s in ("S1", "T1", "U1")} == before
    assert before["T1"] == serial and before["U1"] is None


@pytest.mark.integration
def test_the_first_revocation_applied_stays(redis_client):
    projection, applier = VisionProjection(redis_client), RedisApplier(redis_client, "vision", 3600)
    events = [new_event("code.issued", {"product_id": "p1", "batch": "B1", "key_id": KEY.key_id,
                                        "issued_at": ISSUED_AT, "serials": ["S1"]})]
    events += [new_event("code.revoked", {"product_id": "p1", "batch": "B1", "reason": why},
                         occurred_at=datetime(2026, 12, day, tzinfo=UTC)) for day, why in ((2, "first"), (1, "second"))]
    items = []
    for event in events:
        ops = Ops()
        projection.apply(event, ops)
        items.append((event.event_id, ops.commands))
    applier.apply(items)
    store = VisionStore(redis_client)
    assert store.batch_revocation("B1", "p1").reason == "first"
    assert store.batch_products("B1") == {"p1": 1}
