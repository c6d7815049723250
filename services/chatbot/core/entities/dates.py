"""Rules for dates: ISO and Chinese calendar dates, 3/4 and "Dec 3", yesterday / 后天, "next Friday" / 上周五,
"3 days ago" / 两周后; a date without a year is the occurrence nearest to today."""

from __future__ import annotations

import re
from calendar import monthrange
from datetime import date, timedelta

from services.chatbot.core.entities.candidates import Cand, cand
from services.chatbot.core.entities.text import EN_NUM_RE, ZH_NUM, ZH_NUM_SMALL, to_int

_MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_MON = (
    r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)(?![a-z])"
)
_WEEKDAYS = {d: i for i, d in enumerate(
    ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))}
_ZH_WEEKDAY = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "7": 6,
               "1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5}

_D_ISO = re.compile(r"(?<![\d.])(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})[日号]?(?!\d)")
_D_ZH_MD = re.compile(rf"(?<![\d.])(\d{{1,2}}|{ZH_NUM_SMALL})月(\d{{1,2}}|{ZH_NUM_SMALL})([日号])?(?!\d)")
# "3/4 sleeves" and "1/2 price" are fractions, not dates.
_D_SLASH = re.compile(
    r"(?<![\d/.\-:])(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?(?![\d/])(?!\s*(?:sleeves?|length|price|off))"
)
_D_EN_MD = re.compile(rf"(?<![a-z]){_MON}\.?\s*(\d{{1,2}})(?:st|nd|rd|th)?(?![\d])(?:,?\s*(\d{{4}})(?!\d))?")
_D_EN_DM = re.compile(rf"(?<![\d])(\d{{1,2}})(?:st|nd|rd|th)?\s*(?:of\s+)?{_MON}(?:\.?,?\s*(\d{{4}})(?!\d))?")
_D_MAY_END = re.compile(r"\s*(?:$|[^\sa-z])")
_D_REL_EN = re.compile(
    r"(?<![a-z])(day before yesterday|day after tomorrow|yesterday|today|tomorrow|tonight)(?![a-z])"
)
# 以后天天 / 之前天 are "from now on" / "before" followed by 天, not 后天 / 前天.
_D_REL_ZH = re.compile(r"大前天|大后天|今天|今日|昨天|昨日|(?<![以之然最])(?:前天|后天)|明天|明日")
_REL_DAYS = {
    "day before yesterday": -2, "day after tomorrow": 2, "yesterday": -1, "today": 0, "tomorrow": 1,
    "tonight": 0, "大前天": -3, "大后天": 3, "今天": 0, "今日": 0, "昨天": -1, "昨日": -1, "前天": -2,
    "后天": 2, "明天": 1, "明日": 1,
}
_D_WD_EN = re.compile(
    r"(?<![a-z])(last|this|next)\s+(monday|tuesday|wednesday|thursday|friday|saturday|sunday)(?![a-z])"
)
_D_WD_ZH = re.compile(r"(上上|上|这|本|下下|下)个?(?:周|星期|礼拜)([一二三四五六日天1-7])")
_WEEK_OFFSET = {"last": -1, "this": 0, "next": 1, "上上": -2, "上": -1, "这": 0, "本": 0, "下": 1, "下下": 2}
_D_AGO_EN = re.compile(
    rf"(?<![a-z\d])(\d{{1,3}}|a couple of|an?|{EN_NUM_RE})\s+(days?|weeks?|months?)"
    r"\s+(ago|later|from now)(?![a-z])"
)
_D_AGO_ZH = re.compile(
    rf"(?<![\d{ZH_NUM}])(\d{{1,3}}|{ZH_NUM_SMALL})\s*(天|日|个?(?:周|星期|礼拜)|个月)\s*[之以]?(前|后)"
)

_Found = list[tuple[re.Match[str], date | None]]


def _add_months(d: date, n: int) -> date:
    y, m = divmod(d.month - 1 + n, 12)
    y += d.year
    return date(y, m + 1, min(d.day, monthrange(y, m + 1)[1]))


def _make_date(y: int | None, m: int, d: int, today: date) -> date | None:
    """A calendar date; without a year, the occurrence nearest to ``today`` (a shopper writing "Dec 3" on
    Nov 28 means next week, "Nov 20" means last week; "Jan 5" in late December means next year)."""
    if y is None:
        candidates = []
        for year in (today.year - 1, today.year, today.year + 1):
            try:
                candidates.append(date(year, m, d))
            except ValueError:
                continue
        return min(candidates, key=lambda c: (abs((c - today).days), c > today)) if candidates else None
    if y < 100:
        y += 2000
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _shift(today: date, n: int, unit: str) -> date:
    if unit.startswith(("day", "天", "日")):
        return today + timedelta(days=n)
    if unit.startswith("month") or unit.endswith("月"):
        return _add_months(today, n)
    return today + timedelta(weeks=n)


def _calendar_dates(f: str, today: date) -> _Found:
    """Dates written with a month and a day (and perhaps a year)."""
    found: _Found = []
    for m in _D_ISO.finditer(f):
        found.append((m, _make_date(int(m.group(1)), int(m.group(2)), int(m.group(3)), today)))
    for m in _D_ZH_MD.finditer(f):
        mo, dy = to_int(m.group(1)), to_int(m.group(2))
        if mo and dy and (m.group(2).isdigit() or m.group(3)):
            found.append((m, _make_date(None, mo, dy, today)))
    for m in _D_SLASH.finditer(f):
        year = int(m.group(3)) if m.group(3) else None
        found.append((m, _make_date(year, int(m.group(1)), int(m.group(2)), today)))
    for m in _D_EN_MD.finditer(f):
        year = int(m.group(3)) if m.group(3) else None
        found.append((m, _make_date(year, _MONTHS[m.group(1)[:3]], int(m.group(2)), today)))
    for m in _D_EN_DM.finditer(f):
        # "30 may be too big" is a waist and a verb: a bare "may" after a number needs a year or an end.
        if m.group(2) == "may" and not m.group(3) and not _D_MAY_END.match(f, m.end()):
            continue
        year = int(m.group(3)) if m.group(3) else None
        found.append((m, _make_date(year, _MONTHS[m.group(2)[:3]], int(m.group(1)), today)))
    return found


def _relative_dates(f: str, today: date) -> _Found:
    """Dates counted from today: yesterday, next Friday, 3 days ago and their Chinese forms."""
    found: _Found = []
    for rx in (_D_REL_EN, _D_REL_ZH):
        found += [(m, today + timedelta(days=_REL_DAYS[m.group()])) for m in rx.finditer(f)]
    monday = today - timedelta(days=today.weekday())
    for m in _D_WD_EN.finditer(f):
        found.append((m, monday + timedelta(weeks=_WEEK_OFFSET[m.group(1)], days=_WEEKDAYS[m.group(2)])))
    for m in _D_WD_ZH.finditer(f):
        found.append((m, monday + timedelta(weeks=_WEEK_OFFSET[m.group(1)], days=_ZH_WEEKDAY[m.group(2)])))
    for m in _D_AGO_EN.finditer(f):
        n = to_int(m.group(1)) or 0
        found.append((m, _shift(today, -n if m.group(3) == "ago" else n, m.group(2))))
    for m in _D_AGO_ZH.finditer(f):
        n = to_int(m.group(1)) or 0
        found.append((m, _shift(today, -n if m.group(3) == "前" else n, m.group(2).lstrip("个"))))
    return found


def dates(f: str, today: date) -> list[Cand]:
    """Dates in folded text, normalized to ISO 8601; ``today`` anchors relative ones."""
    found = _calendar_dates(f, today) + _relative_dates(f, today)
    return [cand("date", m, d.isoformat()) for m, d in found if d is not None]
