"""The Vision service's request checks and replies (services/vision/converters.py): no Redis, no model."""

from __future__ import annotations

import pytest

from protos import vision_pb2 as pb
from services.vision.converters import (
    MAX_CODES,
    check_issue,
    check_verify,
    request_k,
    scans_response,
    verify_response,
)
from services.vision.core import codes
from services.vision.core.verification import Verdict
from services.vision.store import ScanHistory


def test_k_defaults_when_zero_and_stays_within_1_to_100():
    assert request_k(0, 5) == 5 and request_k(7, 5) == 7 and request_k(100, 5) == 100
    for k in (-1, 101):
        with pytest.raises(ValueError, match=f"k must be between 1 and 100, not {k}"):
            request_k(k, 5)


def test_issue_and_verify_requests_are_checked_with_the_reason():
    check_issue(pb.IssueCodesRequest(product_id="p1", batch="B1", count=MAX_CODES))
    with pytest.raises(ValueError, match=f"count must be between 1 and {MAX_CODES}, not 0"):
        check_issue(pb.IssueCodesRequest(product_id="p1", batch="B1", count=0))
    with pytest.raises(ValueError):
        check_issue(pb.IssueCodesRequest(product_id="", batch="B1", count=1))
    check_verify(pb.VerifyRequest(payload="x"))
    with pytest.raises(ValueError, match="send a photo"):
        check_verify(pb.VerifyRequest(payload="  "))
    with pytest.raises(ValueError, match="scanned_by is longer than 200"):
        check_verify(pb.VerifyRequest(payload="x", scanned_by="s" * 201))
    with pytest.raises(ValueError, match="client_id is longer than 64"):
        check_verify(pb.VerifyRequest(payload="x", client_id="c" * 65))


def test_verify_response_carries_the_code_and_its_history():
    claims = codes.Claims("p1", "B1", "S1", "k1", 1_764_000_000)
    history = ScanHistory(count=3, counted=2, places=1, first_scanned_at=1_764_000_100.0, recent=[])
    reply = verify_response(Verdict("authentic", ["ok"]), claims, history, {"issued_at": "1764000000"}, True)
    assert reply.verdict == pb.VERDICT_AUTHENTIC and list(reply.reasons) == ["ok"] and reply.counted
    assert (reply.product_id, reply.batch, reply.serial, reply.scan_count) == ("p1", "B1", "S1", 3)
    assert reply.issued_at.seconds == 1_764_000_000 and reply.first_scanned_at.seconds == 1_764_000_100
    bare = verify_response(Verdict("counterfeit", ["forged"]), None, None, {})
    assert bare.verdict == pb.VERDICT_COUNTERFEIT and not bare.product_id and not bare.HasField("issued_at")


def test_recorded_scans_name_their_product_and_unset_times_stay_unset():
    reply = scans_response([("S1", {"at": 1_764_000_000, "location": "Lima", "place": "pe", "counted": False}),
                            ("S2", {})], {"S1": "p1", "S2": ""})
    first, second = reply.scans
    assert (first.serial, first.product_id, first.location, first.place, first.counted) == ("S1", "p1", "Lima", "pe",
                                                                                              False)
    assert first.scanned_at.seconds == 1_764_000_000
    assert second.counted and not second.HasField("scanned_at")
