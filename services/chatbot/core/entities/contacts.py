"""Rules for e-mail addresses, order ids and phone numbers (China, North America, other country codes)."""

from __future__ import annotations

import re

from services.chatbot.core.entities.candidates import Cand, cand

_EMAIL = re.compile(r"[a-z0-9][a-z0-9._%+\-]*@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}(?![a-z0-9])")
_ORD_PREFIX = re.compile(r"(?<![a-z0-9])ord[-\s]?(\d{8,})(?!\d)")
_ORD_CUE = re.compile(
    r"(?:订单编号|订单号码|订单号|订单|定单号|定单|单号|(?<![a-z])order(?:\s*(?:number|num|no\.?|id|#))?|#)"
    r"\s*(?:[:：]|是|为|(?<![a-z])is(?![a-z]))?\s*[:#]?\s*(\d{8,})(?!\d)"
)
_ORD_BARE = re.compile(r"(?<![0-9a-z.+\-])(?<!\d,)\d{8,}(?!\d)")
_CN_MOBILE_DIGITS = re.compile(r"1[3-9]\d{9}")
_CN_PHONE = re.compile(r"(?<![\d+])(?:\(?\+?86\)?[\s-]?)?1[3-9]\d(?:[\s-]?\d{4}){2}(?!\d)")
_US_PHONE = re.compile(r"(?<![\d+])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?!\d)")
# Other numbers written with a country code: Hong Kong/Macau/Singapore (+852 9123 4567), Taiwan, ...
_INTL_PHONE = re.compile(r"(?<![\d+])\+(?!1[\s.-]|86)\d{2,3}[\s-]?\d{3,4}[\s-]?\d{4}(?!\d)")


def order_id_rule(pattern: str) -> re.Pattern[str] | None:
    """The shop's own order ids as a whole-token rule (case-insensitive), or None for ShopAI's ORD- ids.
    ``pattern`` is checked at start (services/common/settings.py: it compiles, and matches no empty text)."""
    if not pattern:
        return None
    # Latin letters and digits around it would make it part of a longer token; Chinese text would not.
    return re.compile(rf"(?<![A-Za-z0-9_-])(?:{pattern})(?![A-Za-z0-9_-])", re.IGNORECASE)


def contacts_and_ids(f: str, text: str | None = None, order_ids: re.Pattern[str] | None = None) -> list[Cand]:
    """E-mails, order ids and phones (digits only) in folded text ``f``. Order ids are ShopAI's ORD-<digits>
    (also after a cue, "order 12345678", or bare), or, given ``order_ids`` (:func:`order_id_rule`), the shop's
    own ids found in the original ``text`` (same offsets) and kept as written."""
    out = [cand("email", m, m.group()) for m in _EMAIL.finditer(f)]
    if order_ids is not None:
        source = text if text is not None else f
        out += [cand("order_strong", m, m.group()) for m in order_ids.finditer(source)]
        for rx in (_CN_PHONE, _US_PHONE, _INTL_PHONE):
            out += [cand("phone", m, re.sub(r"\D", "", m.group())) for m in rx.finditer(f)]
        return out
    out += [cand("order_strong", m, "ORD-" + m.group(1)) for m in _ORD_PREFIX.finditer(f)]
    out += [cand("order_strong", m, "ORD-" + m.group(1), 1) for m in _ORD_CUE.finditer(f)]
    # Without a cue an 11-digit number that looks like a Chinese mobile is a phone, not an order.
    out += [
        cand("order_bare", m, "ORD-" + m.group())
        for m in _ORD_BARE.finditer(f)
        if not _CN_MOBILE_DIGITS.fullmatch(m.group())
    ]
    for rx in (_CN_PHONE, _US_PHONE, _INTL_PHONE):
        out += [cand("phone", m, re.sub(r"\D", "", m.group())) for m in rx.finditer(f)]
    return out
