"""Scans that cannot be gamed: locations read as places (coordinates, city names in any script, garbage),
which scans count toward a code's history (per client and place), and the code log's events carrying
those decisions so that a replay rebuilds the same history."""

from __future__ import annotations

import pytest

from services.common.events import new_event
from services.common.projection import Ops
from services.vision.consumer import code_ops
from services.vision.core import codes
from services.vision.core.places import (
    UNKNOWN,
    City,
    Gazetteer,
    PlaceRefused,
    name_token,
    normalise_place,
    world_gazetteer,
)
from services.vision.core.scans import Scanner, weigh_scan
from services.vision.core.verification import Limits, ProductMatch, ScanNote, judge_history
from services.vision.store import VisionKeys as K

SHANGHAI = City("Shanghai", 31.22222, 121.45806, 24_874_500)
SMALL_SHANGHAI = City("Shanghai", 40.0, -80.0, 500)  # a village of the same name elsewhere
LAGOS = City("Lagos", 6.45407, 3.39467, 9_000_000)
GAZETTEER = Gazetteer([(SHANGHAI, ["上海", "上海市", "Shànghǎi", "hu"]), (SMALL_SHANGHAI, []), (LAGOS, ["Eko"])])


# ------------------------------------------------------------------ places


@pytest.mark.parametrize("location", [
    "Shanghai", "  SHANGHAI  ", "shanghai city", "Ｓｈａｎｇｈａｉ", "Shànghǎi", "上海", "上海市", "中国上海",
    "上海市浦东新区", "Pudong, Shanghai, China", "31.2304,121.4737", "31.2304, 121.4737", "３１.２３,１２１.４７",
])
def test_one_city_written_many_ways_is_one_place(location):
    place = normalise_place(location, GAZETTEER)
    assert place.key == "gh:wtw3", (location, place)
    assert place.known and "wtw3" in place.how


def test_of_two_cities_with_one_name_the_most_populous_wins():
    assert GAZETTEER.find("shanghai") == SHANGHAI
    assert normalise_place("Eko", GAZETTEER).key == normalise_place("6.45,3.39", GAZETTEER).key == "gh:s14k"


def test_the_world_gazetteer_knows_english_and_chinese_names():
    world = world_gazetteer()
    for english, chinese in [("Shanghai", "上海市"), ("Beijing", "北京"), ("Guangzhou", "广州"), ("Shenzhen", "深圳市")]:
        assert normalise_place(english, world).key == normalise_place(chinese, world).key != "", english
    assert normalise_place("Sao Paulo", world).key == normalise_place("São Paulo", world).key
    assert normalise_place("Lagos", world).key != normalise_place("Lima", world).key
    assert len({normalise_place(city, world).key for city in ("Beijing", "Lagos", "Lima", "Paris")}) == 4


def test_a_name_the_gazetteer_does_not_know_is_its_normalised_token():
    assert normalise_place("  Smallville!! ", GAZETTEER).key == "name:smallville"
    assert normalise_place("SMALLVILLE", GAZETTEER).key == normalise_place("smallville", None).key
    assert name_token("Ｋöｌｎ") == "koln"
    assert normalise_place("Shanghai", None).key == "name:shanghai"  # without a gazetteer: still normalised


@pytest.mark.parametrize("location", [
    "fake place 17", "Main Street 5", "!!!", "12345", "a b c d e f", "x" * 60, "... --- ...",
])
def test_text_that_names_no_place_is_an_unknown_place(location):
    assert normalise_place(location, GAZETTEER) == UNKNOWN


def test_no_location_is_no_place():
    assert not normalise_place("", GAZETTEER).known
    assert not normalise_place("   ", GAZETTEER).known


@pytest.mark.parametrize("location, reason", [
    ("Shang\nhai", "U+000A"), ("Shanghai\x00", "U+0000"), ("Shang\u202ehai", "U+202E"), ("a\u2028b", "U+2028"),
    ("91,120", "out of range"), ("45,181", "out of range"), ("-90.5,0", "out of range"), ("x" * 201, "200"),
])
def test_impossible_locations_are_refused_with_the_reason(location, reason):
    with pytest.raises(PlaceRefused, match=reason.replace("+", r"\+")):
        normalise_place(location, GAZETTEER)


# ------------------------------------------------------------------ which scans count

VISITOR = Scanner("addr-0123456789abcdef", trusted=False)
INSPECTOR = Scanner("key-1234abcd", trusted=True)


def test_a_client_counts_once_per_place_and_in_at_most_its_places():
    seen: set[str] = set()
    outcomes = []
    for place in ["gh:wtw3", "gh:wtw3", "gh:s14k", "gh:6mc5", "name:smallville", ""]:
        weight = weigh_scan(VISITOR, place, seen, places_per_client=2)
        outcomes.append(weight.counted)
        if weight.counted:
            seen.add(place or "?")
        else:
            assert weight.reason
    assert outcomes == [True, False, True, False, False, False]
    assert seen == {"gh:wtw3", "gh:s14k"}


def test_an_unknown_place_counts_once_like_any_place():
    assert weigh_scan(VISITOR, "", set(), 2).counted
    assert not weigh_scan(VISITOR, "", {"?"}, 2).counted


def test_a_trusted_scanner_counts_every_scan():
    many = {f"gh:{i}" for i in range(10)}
    assert weigh_scan(INSPECTOR, "gh:wtw3", {"gh:wtw3"}, 2).counted
    assert weigh_scan(INSPECTOR, "gh:new", many, 2).counted


def test_the_history_counts_only_counted_scans_and_says_why_a_scan_does_not():
    key = codes.SigningKey.from_text("00" * 32)
    payload = codes.sign(key, codes.Claims("p1", "B1", "S1", key.key_id, 1_764_000_000)).payload
    check = codes.verify_payload(payload, {key.key_id: key.public_key})
    limits = Limits(max_scans=5, max_places=2)
    note = ScanNote(total=50, place="Lagos, area s14k", not_counted="this client's scans already count in 2 places")
    verdict = judge_history(check, 0, 2, 2, ProductMatch("no_photo"), limits, note)
    assert verdict.verdict == "authentic"
    assert "location read as Lagos, area s14k" in verdict.reasons
    assert any("leaves the code's history as it was" in r for r in verdict.reasons)
    assert verdict.reasons[-1] == "scan 50 of this serial, 2 counted, in 2 place(s)"
    assert judge_history(check, 0, 3, 3, ProductMatch("no_photo"), limits, ScanNote(3)).verdict == "suspicious"


# ------------------------------------------------------------------ the events carry the decisions


def scan_commands(**payload) -> list[list[str]]:
    event = new_event("code.scanned", {"product_id": "p1", "batch": "B1", "serial": "S1", **payload})
    ops = Ops()
    code_ops(event, ops)
    return ops.commands


def test_a_counted_scan_moves_the_history_and_the_clients_places():
    commands = scan_commands(location="上海", place="gh:wtw3", client_id="addr-1", trusted=False, counted=True)
    assert ["HINCRBY", K.scans("S1"), "counted", "1"] in commands
    assert ["SADD", K.places("S1"), "gh:wtw3"] in commands
    assert ["SADD", K.client_places("S1", "addr-1"), "gh:wtw3"] in commands


def test_a_scan_that_does_not_count_is_only_recorded():
    commands = scan_commands(location="Lima", place="gh:6mc5", client_id="addr-1", trusted=False, counted=False)
    assert ["HINCRBY", K.scans("S1"), "count", "1"] in commands
    written = {c[1] for c in commands if c[0] in ("SADD", "HINCRBY") and c[-1] != "count"}
    assert written.isdisjoint({K.places("S1"), K.client_places("S1", "addr-1")})
    assert not any(c[:3] == ["HINCRBY", K.scans("S1"), "counted"] for c in commands)
    recent = next(c for c in commands if c[0] == "LPUSH")
    assert '"counted": false' in recent[2] and '"place": "gh:6mc5"' in recent[2]


def test_a_trusted_scan_takes_no_client_budget():
    commands = scan_commands(location="Lagos", place="gh:s14k", client_id="key-1", trusted=True, counted=True)
    assert ["SADD", K.places("S1"), "gh:s14k"] in commands
    assert not any(c[1].startswith(K.client_places("S1", "")) for c in commands if len(c) > 1)


def test_a_scan_logged_before_the_counting_rules_counts_at_its_location():
    commands = scan_commands(location=" Paris ")
    assert ["HINCRBY", K.scans("S1"), "counted", "1"] in commands
    assert ["SADD", K.places("S1"), "paris"] in commands
