"""Which scans of a code count toward its history (pure).

A code is called suspicious when its counted scans or distinct places exceed the limits
(``verification.judge_history``). Anyone may scan, so one caller must not be able to push a genuine
code over those limits on its own:

- a **trusted** scanner (an API key with the ``codes`` role: the brand's inspectors, a store's till)
  counts fully: every scan, every place;
- any other **client** (another key, or a visitor counted by a keyed hash of its address) counts once
  per place, and for at most ``places_per_client`` places per code: its further scans are recorded and
  answered, but leave the code's shared history where it was.

With the defaults (1 place per client, suspicious above 5 counted scans or 2 places) one untrusted
client can never make a code suspicious, not even together with the owner's own scans in another place;
it takes scans from three clients in three places, which is what a copied label sold in several cities
produces. One shopper's scans at the shop and at home are not evidence of a copy, so they count once. There is no time window: a code lives as long as one
product, and a budget for its whole life is what replays can rebuild from the log.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass

ANONYMOUS_CLIENT = "anonymous"  # a direct gRPC caller that named no client
UNKNOWN_PLACE = "?"  # the member a client's unknown-place scan takes in its set of places


@dataclass(frozen=True)
class Scanner:
    client_id: str  # an API key id or "addr-<keyed hash>"; never a raw address
    trusted: bool

    @property
    def name(self) -> str:
        return self.client_id or ANONYMOUS_CLIENT


@dataclass(frozen=True)
class ScanWeight:
    counted: bool
    reason: str  # empty when counted


COUNTED = ScanWeight(True, "")


def place_member(place_key: str) -> str:
    """What a scan at ``place_key`` adds to its client's set of places for the code."""
    return place_key or UNKNOWN_PLACE


def weigh_scan(scanner: Scanner, place_key: str, client_places: AbstractSet[str], places_per_client: int) -> ScanWeight:
    """Does this scan count toward the code's history? ``client_places`` are the places this client's
    counted scans of the code were made at, before this one."""
    if scanner.trusted:
        return COUNTED
    member = place_member(place_key)
    if member in client_places:
        return ScanWeight(False, "this client's earlier scan at this place already counts")
    if len(client_places) >= places_per_client:
        return ScanWeight(False, f"this client's scans of the code already count in {len(client_places)} other "
                                 "place(s), as many as one client's may")
    return COUNTED
