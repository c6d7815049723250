"""Entities in a customer's message: order ids, products, quantities, money, dates, contacts, sizes, colours.

Pure Python with no model and no I/O: the closed-form types (ids, amounts, dates, phones) follow the
shop's conventions exactly with rules, and products are found with a small catalog index, so a
message costs about half a millisecond against the 2,000-product demo catalog and every decision can
be traced to a rule or a score.

Offsets are code-point indices into the original text. All matching runs on a folded copy of the
same length (lower case, full-width forms to ASCII), so a match's span is the original's span.
"""

from __future__ import annotations

import re
import unicodedata
from calendar import monthrange
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

ENTITY_TYPES: tuple[str, ...] = (
    "order_id", "product", "quantity", "money", "date", "email", "phone", "size", "color",
)


@dataclass(frozen=True)
class Entity:
    """One entity; ``value == text[start:end]`` and ``normalized`` is its canonical form ("" if none)."""

    type: str
    value: str
    start: int
    end: int
    normalized: str = ""


# --------------------------------------------------------------------------------------------------
# Text helpers


def _fold(text: str) -> str:
    """Lower-case, NFKC-folded copy of ``text`` with exactly the same length, so offsets carry over."""
    if text.isascii():
        return text.lower()
    out = []
    for ch in text:
        if not ch.isascii():
            nfkc = unicodedata.normalize("NFKC", ch)
            if len(nfkc) == 1:
                ch = nfkc
        low = ch.lower()
        out.append(low if len(low) == 1 else ch)
    return "".join(out)


_ZH_DIGIT = dict(zip("零〇一二两三四五六七八九", (0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9), strict=True))
_ZH_UNIT = {"十": 10, "百": 100, "千": 1000}
_ZH_NUM = "零〇一二两三四五六七八九十百千万"
_EN_NUM = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2,
}
_EN_NUM_RE = "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"


def _zh_int(s: str) -> int | None:
    """Value of a Chinese numeral, including the colloquial 三百五 (350) and 一千二 (1200)."""
    total = section = 0
    num: int | None = None
    zero = False
    unit_before_digit = prev_unit = 0
    for ch in s:
        if ch in "零〇":
            zero, num, prev_unit = True, None, 0
        elif ch in _ZH_DIGIT:
            num, unit_before_digit, prev_unit = _ZH_DIGIT[ch], prev_unit, 0
        elif ch in _ZH_UNIT:
            section += (1 if num is None else num) * _ZH_UNIT[ch]
            num, zero, prev_unit = None, False, _ZH_UNIT[ch]
        elif ch == "万":
            total += (section + (num or 0) or 1) * 10000
            section, num, zero, prev_unit = 0, None, False, 10000
        else:
            return None
    if num is not None:
        # A digit right after 百/千/万 with no 零 is the next-lower unit: 三百五 = 350, 两万五 = 25000.
        section += num * unit_before_digit // 10 if (not zero and unit_before_digit >= 100) else num
    return total + section


def _to_int(s: str) -> int | None:
    if s.isascii() and s.isdigit():
        return int(s)
    if s in _EN_NUM:
        return _EN_NUM[s]
    return _zh_int(s)


@dataclass(frozen=True)
class _Cand:
    type: str
    start: int
    end: int
    normalized: str
    rank: int  # lower wins when two candidates overlap


# Overlaps are settled by rank, then length: an id or a date is never also a quantity or a size,
# and a product span wins over the colour word inside it.
_RANK = {
    "email": 0, "order_strong": 1, "phone": 2, "money": 3, "date": 4, "order_bare": 5,
    "product": 6, "size": 7, "quantity": 8, "color": 9,
}


def _cand(kind: str, m: re.Match[str] | tuple[int, int], normalized: str, group: int = 0) -> _Cand:
    start, end = m if isinstance(m, tuple) else m.span(group)
    typ = "order_id" if kind.startswith("order") else kind
    return _Cand(typ, start, end, normalized, _RANK[kind])


def _resolve(cands: Iterable[_Cand]) -> list[_Cand]:
    taken: list[_Cand] = []
    for c in sorted(cands, key=lambda c: (c.rank, c.start - c.end, c.start)):
        if c.end > c.start and all(c.end <= t.start or c.start >= t.end for t in taken):
            taken.append(c)
    return sorted(taken, key=lambda c: c.start)


# --------------------------------------------------------------------------------------------------
# Email, order ids, phones

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


def _contacts_and_ids(f: str) -> list[_Cand]:
    out = [_cand("email", m, m.group()) for m in _EMAIL.finditer(f)]
    out += [_cand("order_strong", m, "ORD-" + m.group(1)) for m in _ORD_PREFIX.finditer(f)]
    out += [_cand("order_strong", m, "ORD-" + m.group(1), 1) for m in _ORD_CUE.finditer(f)]
    # Without a cue an 11-digit number that looks like a Chinese mobile is a phone, not an order.
    out += [
        _cand("order_bare", m, "ORD-" + m.group())
        for m in _ORD_BARE.finditer(f)
        if not _CN_MOBILE_DIGITS.fullmatch(m.group())
    ]
    for rx in (_CN_PHONE, _US_PHONE, _INTL_PHONE):
        out += [_cand("phone", m, re.sub(r"\D", "", m.group())) for m in rx.finditer(f)]
    return out


# --------------------------------------------------------------------------------------------------
# Money

_AMOUNT = r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?"
_MONEY_PRE = re.compile(rf"(?:(?<![a-z])(?:rmb|cny|usd)|us\$|[¥$])\s?({_AMOUNT})(?!\d)")
_MONEY_SUF = re.compile(
    rf"(?<![\d.])(?<!\d,)({_AMOUNT})\s?(?:块钱|元钱|元(?!旦)|块|人民币|美元|美金|"
    r"(?<![a-z])(?:rmb|cny|yuan|kuai|dollars?|bucks|usd)(?![a-z]))"
)
# A bare number right after "paid" / "costs" / 花了 / 售价 is an amount: "I paid 649 for this dress".
_MONEY_CUE = re.compile(
    r"(?:(?<![a-z])(?:paid|pay|spent|spend|costs?|cost me|priced at|price is|charged|billed)\s+"
    r"|(?:付了|花了|价格是|售价|原价|现价|标价)\s*)"
    r"(\d{2,6}(?:\.\d{1,2})?)(?![\d.%])(?!\s*(?:points?|积分|pcs|items?|days?|times?|次|天|个|件))"
)
_MONEY_ZH = re.compile(rf"(?<![{_ZH_NUM}\d])([{_ZH_NUM}]+)(?:块钱|元钱|元(?!旦)|块)")


def _money(f: str) -> list[_Cand]:
    out = []
    for rx in (_MONEY_PRE, _MONEY_SUF, _MONEY_ZH, _MONEY_CUE):
        for m in rx.finditer(f):
            raw = m.group(1).replace(",", "")
            try:
                amount = Decimal(raw) if raw[0].isdigit() else Decimal(_zh_int(raw) or 0)
            except InvalidOperation:
                continue
            if amount > 0:
                out.append(_cand("money", m, f"{amount:.2f}", 1 if rx is _MONEY_CUE else 0))
    return out


# --------------------------------------------------------------------------------------------------
# Dates

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
_ZH_NUM_SMALL = "[一二两三四五六七八九十]{1,3}"

_D_ISO = re.compile(r"(?<![\d.])(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})[日号]?(?!\d)")
_D_ZH_MD = re.compile(rf"(?<![\d.])(\d{{1,2}}|{_ZH_NUM_SMALL})月(\d{{1,2}}|{_ZH_NUM_SMALL})([日号])?(?!\d)")
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
    rf"(?<![a-z\d])(\d{{1,3}}|a couple of|an?|{_EN_NUM_RE})\s+(days?|weeks?|months?)"
    r"\s+(ago|later|from now)(?![a-z])"
)
_D_AGO_ZH = re.compile(
    rf"(?<![\d{_ZH_NUM}])(\d{{1,3}}|{_ZH_NUM_SMALL})\s*(天|日|个?(?:周|星期|礼拜)|个月)\s*[之以]?(前|后)"
)


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


def _dates(f: str, today: date) -> list[_Cand]:
    found: list[tuple[re.Match[str], date | None]] = []
    for m in _D_ISO.finditer(f):
        found.append((m, _make_date(int(m.group(1)), int(m.group(2)), int(m.group(3)), today)))
    for m in _D_ZH_MD.finditer(f):
        mo, dy = _to_int(m.group(1)), _to_int(m.group(2))
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
    for rx in (_D_REL_EN, _D_REL_ZH):
        found += [(m, today + timedelta(days=_REL_DAYS[m.group()])) for m in rx.finditer(f)]
    monday = today - timedelta(days=today.weekday())
    for m in _D_WD_EN.finditer(f):
        found.append((m, monday + timedelta(weeks=_WEEK_OFFSET[m.group(1)], days=_WEEKDAYS[m.group(2)])))
    for m in _D_WD_ZH.finditer(f):
        found.append((m, monday + timedelta(weeks=_WEEK_OFFSET[m.group(1)], days=_ZH_WEEKDAY[m.group(2)])))
    for m in _D_AGO_EN.finditer(f):
        n = _to_int(m.group(1)) or 0
        found.append((m, _shift(today, -n if m.group(3) == "ago" else n, m.group(2))))
    for m in _D_AGO_ZH.finditer(f):
        n = _to_int(m.group(1)) or 0
        found.append((m, _shift(today, -n if m.group(3) == "前" else n, m.group(2).lstrip("个"))))
    return [_cand("date", m, d.isoformat()) for m, d in found if d is not None]


# --------------------------------------------------------------------------------------------------
# Sizes

_ALPHA = r"xxxl|xxl|xxs|xs|xl|[2-4]xl|s|m|l"
_SIZE_WORD = {"small": "S", "medium": "M", "large": "L", "extra large": "XL", "extra small": "XS"}
_SZ_CUE = re.compile(
    rf"(?<![a-z])(?:sizes?|sz)(?![a-z])\s*:?\s*(?:is\s+)?({_ALPHA}|extra large|extra small|small|medium|large"
    r"|\d{1,2}(?:\.5)?)(?![a-z0-9])"
)
# "M size", "XL size": the letter before the word, as many Chinese shoppers write it in English.
_SZ_BEFORE = re.compile(rf"(?<![a-z0-9'’])({_ALPHA})\s?size(?![a-z])")
_SZ_ZH_CUE = re.compile(
    rf"(?:尺码|码数|尺寸|鞋码|腰围)\s*(?:是|为|选|要)?\s*:?\s*({_ALPHA}|\d{{2}}(?:\.5)?)(?![a-z0-9])"
)
_SZ_SUFFIX = re.compile(rf"(?<![a-z0-9.])({_ALPHA}|\d{{2}}(?:\.5)?)\s?([码号])")
_SZ_WAIST = re.compile(r"(?<![\d.])(\d{2})\s?腰|(?<![a-z])waist\s*(?:size\s*)?:?\s*(\d{2})(?!\d)")
_SZ_EU = re.compile(r"(?<![a-z])eu\s?(\d{2}(?:\.5)?)(?!\d)")
_SZ_MULTI = re.compile(r"(?<![a-z0-9])(xxxl|xxl|xxs|xs|xl|[2-4]xl)(?![a-z0-9])")
_SZ_IN = re.compile(r"(?<![a-z])in\s+(?:(?:a|an|size)\s+)?(s|m|l|small|medium|large|\d{2})(?![a-z0-9])")
# "swap it for an L", "exchange the M": a capital letter after an article is a size, never a word.
_SZ_ARTICLE = re.compile(r"(?<![a-z])(?:an?|the|my)\s+(s|m|l|\d{2})(?![a-z0-9])")
_SZ_IN_FOLLOW = re.compile(
    r"\s*(?:$|[^\sa-z0-9]|(?:or|and|in|please|pls|size|too|thanks|thx|instead|available|for)(?![a-z]))"
)
_SZ_IN_CJK = re.compile(r"(?<=[\u4e00-\u9fff])(S|M|L)(?=$|[\u4e00-\u9fff，。？！,.?!\s])")
_SZ_ONE = re.compile(r"(?<![a-z])(?:one size|one-size|free size)(?![a-z])|均码|(?<![a-z])f码")
_SZ_CHAIN = re.compile(rf"\s*(?:or|and|/|,|、|或者|或|还是|和|跟|to|-|~|到)\s*({_ALPHA}|\d{{2}})(?![a-z0-9])")


def _size_norm(raw: str) -> str:
    if raw in _SIZE_WORD:
        return _SIZE_WORD[raw]
    if raw[0].isdigit() and raw.endswith("xl"):
        return "X" * int(raw[0]) + "L"
    return raw.upper()


def _plausible_size(cue: str, n: int) -> bool:
    """"in a 30" may be a waist; "a 30" alone is too often something else, so there only shoe sizes."""
    return 26 <= n <= 46 if cue.startswith("in") else 34 <= n <= 46


def _sizes(text: str, f: str) -> list[_Cand]:
    out: list[_Cand] = []

    def add(m: re.Match[str], group: int) -> None:
        out.append(_cand("size", m, _size_norm(m.group(group)), group))

    for rx in (_SZ_CUE, _SZ_BEFORE, _SZ_ZH_CUE, _SZ_EU, _SZ_MULTI):
        for m in rx.finditer(f):
            add(m, 1)
    for m in _SZ_SUFFIX.finditer(f):
        raw = m.group(1)
        # 20号 is the 20th of a month; only shoe sizes take 号, while 码 also covers waists.
        if not raw[0].isdigit() or (26 if m.group(2) == "码" else 33) <= float(raw) <= 50:
            add(m, 1)
    for m in _SZ_WAIST.finditer(f):
        group = 1 if m.group(1) else 2
        if 22 <= int(m.group(group)) <= 44:
            add(m, group)
    for m in (*_SZ_IN.finditer(f), *_SZ_ARTICLE.finditer(f)):
        raw = m.group(1)
        if len(raw) == 1:
            # A lone letter after "in" is a size only when written as a capital: "in M", not "in m".
            if text[m.start(1)].isupper():
                add(m, 1)
        elif _SZ_IN_FOLLOW.match(f, m.end()) and (not raw.isdigit() or _plausible_size(m.group(), int(raw))):
            add(m, 1)
    # In Chinese a capital S/M/L between Chinese characters is a size: 把M换成L, 想要M.
    for m in _SZ_IN_CJK.finditer(text):
        add(m, 1)
    out += [_cand("size", m, "one size") for m in _SZ_ONE.finditer(f)]
    chained = list(out)
    while chained:
        prev = chained.pop()
        m = _SZ_CHAIN.match(f, prev.end)
        if not m:
            continue
        raw = m.group(1)
        ok = 26 <= int(raw) <= 46 if raw.isdigit() else (len(raw) > 1 or text[m.start(1)].isupper())
        if ok:
            c = _cand("size", m, _size_norm(raw), 1)
            out.append(c)
            chained.append(c)
    return out


# --------------------------------------------------------------------------------------------------
# Quantities

_Q_ZH = re.compile(rf"(?<![\d.第同每任哪{_ZH_NUM}])(\d{{1,3}}|{_ZH_NUM_SMALL})\s?(件|双|条|套|顶|只|个|袋)")
_Q_ZH_STOP = (
    "问题", "月", "星期", "礼拜", "小时", "钟", "人", "事", "工作日", "地址", "订单", "号码", "电话", "邮箱",
    "码", "理由", "原因", "办法", "字", "天", "周", "多", "半", "快递", "包裹",
)
_Q_GE_FOLLOW = re.compile(r"\s*(?:$|[^\w]|[都全一就要吧呢了的啊])")
_Q_UNIT = re.compile(
    rf"(?<![a-z\d.])(?<!\d,)(\d{{1,3}}|{_EN_NUM_RE})\s?(?:pcs|pc|pieces|piece|pairs|pair|items|item|units|unit)(?![a-z])"
)
_Q_X = re.compile(r"(?<![a-z0-9])[x×]\s?(\d{1,3})(?![\d.a-z])")
_Q_FIELD = re.compile(
    rf"(?:数量|(?<![a-z])qty|(?<![a-z])quantity)\s*(?:是|为)?\s*:?\s*(\d{{1,3}}|{_ZH_NUM_SMALL})(?!\d)"
)
_Q_NUM = re.compile(rf"(?<![a-z\d.:/\-$¥#])(?<!\d,)(\d{{1,3}}|{_EN_NUM_RE})(?![\d:/a-z%])(?![.,]\d)")
_Q_VERB = re.compile(
    r"(?<![a-z])(?:buy|bought|order|ordered|get|got|want|need|take|add|added|purchase|purchased|return"
    r"|returning|returned|exchange|send|sent)\s+$"
)
_Q_OF = re.compile(r"\s+of\s+(?:(these|those|them|it|this|that|each)|the)(?![a-z])")
_Q_WORD = re.compile(r"\s*([a-z0-9]+)")
_Q_UNIT_WORDS = frozenset(("pcs", "pieces", "piece", "pairs", "pair", "items", "item", "units", "unit"))
_Q_AFTER_VERB = re.compile(
    r"\s*(?:$|[^\sa-z]|(?:more|of|please|pls|and|but|last|this|yesterday|today|in|from|at|for|on)(?![a-z]))"
)


def _product_within(f: str, pos: int, words: int, lexicon: _Lexicon) -> bool:
    for _ in range(words):
        if lexicon.starts_term(f, pos):
            return True
        m = _Q_WORD.match(f, pos)
        if not m:
            return False
        if m.group(1) in _Q_UNIT_WORDS:
            return True
        pos = m.end()
    return lexicon.starts_term(f, pos)


def _quantities(f: str, lexicon: _Lexicon) -> list[_Cand]:
    out = []
    for m in _Q_ZH.finditer(f):
        if f.startswith(_Q_ZH_STOP, m.end()):
            continue
        # 个 counts anything (一个问题, 一个笑话): only when a product or nothing more follows.
        if m.group(2) == "个" and not (_Q_GE_FOLLOW.match(f, m.end()) or lexicon.starts_term(f, m.end())):
            continue
        out.append(_cand("quantity", m, str(_to_int(m.group(1)))))
    # "2 pairs": the number is the quantity, as "两双" is in Chinese where the classifier binds to it.
    out += [_cand("quantity", m, str(_to_int(m.group(1))), 1) for m in _Q_UNIT.finditer(f)]
    out += [_cand("quantity", m, str(_to_int(m.group(1)))) for m in _Q_X.finditer(f)]
    out += [_cand("quantity", m, str(_to_int(m.group(1))), 1) for m in _Q_FIELD.finditer(f)]
    for m in _Q_NUM.finditer(f):
        n = _to_int(m.group(1))
        if not n:
            continue
        # A bare number counts items only when products or "of them" follow, or after "buy"/"want"/...
        counts = lexicon.starts_term(f, m.end())
        of = _Q_OF.match(f, m.end())
        if of and not counts:
            # "2 of them" counts; "2 of the ..." only when products follow ("one of the charges" does not).
            counts = bool(of.group(1)) or _product_within(f, of.end(), 2, lexicon)
        if not counts and m.group(1) != "one":
            counts = bool(_Q_VERB.search(f, max(0, m.start() - 20), m.start())) and bool(
                _Q_AFTER_VERB.match(f, m.end())
            )
        if counts:
            out.append(_cand("quantity", m, str(n)))
    return out


# --------------------------------------------------------------------------------------------------
# Colours

_COLOURS: tuple[tuple[str, str, str], ...] = (
    # slug, English forms, Chinese forms (longest first)
    ("black", "black", "黑色|黑"),
    ("white", "white", "白色|白"),
    ("grey", "grey|gray", "灰色|灰"),
    ("navy", "navy blue|navy", "藏青色|藏蓝色|藏青|藏蓝"),
    ("blue", "blue", "蓝色|蓝"),
    ("beige", "beige", "米色"),
    ("brown", "brown", "棕色|棕"),
    ("red", "red", "红色|红"),
    ("green", "green", "绿色|绿"),
    ("pink", "pink", "粉红色|粉色|粉红|粉"),
    ("purple", "purple", "紫色|紫"),
    ("yellow", "yellow", "黄色|黄"),
)
_COLOUR_OF: dict[str, str] = {
    form: slug for slug, en, zh in _COLOURS for form in (*en.split("|"), *zh.split("|"))
}
_C_EN = re.compile(
    r"(?<![a-z])(navy blue|black|white|grey|gray|navy|blue|beige|brown|red|green|pink|purple|yellow)(?![a-z])"
    r"(?!\s+(?:friday|house)(?![a-z]))"
)
_C_ZH_FULL = re.compile(
    r"粉红色|藏青色|藏蓝色|黑色|白色|灰色|蓝色|米色|棕色|红色|绿色|粉色|紫色|黄色|藏青|藏蓝|粉红"
)
# A single-character colour only as 红的 / 红款 / 要红: elsewhere it is usually part of a word.
_C_ZH_SHORT = re.compile(
    r"([黑白灰蓝棕红绿粉紫黄])(?=[的款])|(?<=[要选买换拿挑])([黑白灰蓝棕红绿粉紫黄])(?=$|[\s,.!?。，！？了吧呢吗啊])"
)
# Words in which the colour character does not mean the colour: 明白, 网红, 口红, 拉黑, 蛋黄, 面粉 ...
_C_ZH_NOT_AFTER = {"白": "明空坦表独告黑显", "红": "网口分", "黑": "拉天摸显", "黄": "蛋", "粉": "面奶米"}


def _colour_char_in_word(f: str, start: int, end: int) -> bool:
    """Whether a one-character colour at ``f[start:end]`` is part of a word such as 明白 or 显白."""
    return end - start == 1 and start > 0 and f[start - 1] in _C_ZH_NOT_AFTER.get(f[start], "")


def _colors(f: str) -> list[_Cand]:
    out = [_cand("color", m, _COLOUR_OF[m.group(1)], 1) for m in _C_EN.finditer(f)]
    zh = [(m, 0) for m in _C_ZH_FULL.finditer(f)]
    zh += [(m, 1 if m.group(1) else 2) for m in _C_ZH_SHORT.finditer(f)]
    for m, group in zh:
        word, start = m.group(group), m.start(group)
        before = f[start - 1] if start else ""
        if before and (before in _C_ZH_NOT_AFTER.get(word[0], "") or before in "黑白灰蓝棕红绿粉紫黄"):
            continue
        out.append(_cand("color", m, _COLOUR_OF[word], group))
    return out


# --------------------------------------------------------------------------------------------------
# Product vocabulary: surface forms (English tokens or Chinese strings) -> features of a product.
# Set slots hold one value per product (a mention may allow several); bag slots hold several keys.

_SET_SLOTS = ("brand", "cat", "colour", "material", "style")
_BAG_SLOTS = ("noun", "word")
# What naming a slot is worth when matching: a brand or category narrows the catalog most.
_WEIGHT = {"brand": 3.0, "cat": 2.0, "colour": 2.0, "material": 2.0, "style": 1.0, "noun": 2.0, "word": 1.0}

_NOUNS: tuple[tuple[str, str, str], ...] = (
    # English forms, Chinese forms, features
    ("t shirt|t shirts|tshirt|tshirts", "", "cat:t-shirts noun:tshirt noun:t-shirt"),
    ("", "t恤|体恤", "cat:t-shirts noun:tshirt"),
    ("tee|tees|tee shirt|tee shirts", "短袖t恤|短袖", "cat:t-shirts noun:tshirt noun:tee"),
    ("top|tops", "上衣", "cat:t-shirts noun:top"),
    ("trousers|trouser", "长裤", "cat:trousers noun:trousers"),
    ("chinos|chino", "休闲裤", "cat:trousers noun:chinos"),
    ("jeans", "牛仔裤", "cat:trousers noun:jeans material:denim"),
    ("pants|slacks", "裤子", "cat:trousers"),
    ("pullover|pullovers", "套头衫", "cat:pullovers noun:pullover"),
    ("sweater|sweaters", "毛衣", "cat:pullovers noun:sweater"),
    ("jumper|jumpers", "针织衫", "cat:pullovers noun:jumper"),
    ("dress|dresses", "连衣裙|裙子", "cat:dresses noun:dress"),
    ("midi dress|midi dresses|midi", "中长款连衣裙|中长裙", "cat:dresses noun:dress noun:midi"),
    ("maxi dress|maxi dresses|maxi", "长款连衣裙|长裙", "cat:dresses noun:dress noun:maxi"),
    ("coat|coats|winter coat|winter coats", "大衣", "cat:coats noun:coat"),
    ("jacket|jackets|winter jacket|winter jackets", "夹克", "cat:coats noun:jacket"),
    ("overcoat|overcoats", "长款大衣", "cat:coats noun:overcoat noun:coat"),
    ("down jacket|down jackets|down coat|down coats|puffer|puffers|puffer jacket|puffer jackets",
     "羽绒服|羽绒衣", "cat:coats noun:jacket material:down"),
    ("outerwear", "外套|冬季外套", "cat:coats"),
    ("sandals|sandal", "凉鞋", "cat:sandals noun:sandals"),
    ("slide sandals|slide sandal|slides|sliders|slide", "凉拖|拖鞋", "cat:sandals noun:slide noun:sandals"),
    ("shirt|shirts", "衬衫|衬衣", "cat:shirts noun:shirt"),
    ("button down|button downs|button down shirt|button down shirts|button up shirt|button up shirts",
     "纽扣衬衫|正装衬衫", "cat:shirts noun:shirt noun:buttondown"),
    ("blouse|blouses", "女式衬衫|女士衬衫", "cat:shirts noun:blouse"),
    ("sneakers|sneaker", "运动鞋|球鞋", "cat:sneakers noun:sneakers"),
    ("trainers|trainer", "休闲运动鞋|休闲鞋", "cat:sneakers noun:trainers"),
    ("running shoes|running shoe|runners", "跑鞋|跑步鞋", "cat:sneakers noun:running"),
    ("shoes|shoe|footwear", "鞋子|鞋", "cat:sandals cat:sneakers cat:ankle-boots"),
    ("handbag|handbags|hand bag|hand bags", "手提包", "cat:bags noun:bag noun:handbag"),
    ("tote|totes|tote bag|tote bags", "托特包", "cat:bags noun:bag noun:tote"),
    ("shoulder bag|shoulder bags", "单肩包", "cat:bags noun:bag noun:shoulder"),
    ("crossbody|crossbody bag|crossbody bags|cross body bag|cross body bags", "斜挎包",
     "cat:bags noun:bag noun:crossbody"),
    ("bag|bags|purse|purses", "包包|挎包|包", "cat:bags noun:bag"),
    ("ankle boots|ankle boot", "短靴", "cat:ankle-boots noun:boots noun:ankle"),
    ("chelsea boots|chelsea boot|chelseas", "切尔西靴", "cat:ankle-boots noun:boots noun:chelsea"),
    ("boots|boot|booties", "靴子|靴", "cat:ankle-boots noun:boots"),
)
# Words that contain a product word but name a part or a measure (鞋底 is a sole, not a shoe).
_NOT_PRODUCT_ZH = (
    "鞋底|鞋垫|鞋带|鞋码|鞋盒|鞋跟|鞋面|鞋柜|鞋楦|包装|包裹|包邮|包运费|包括|包含|包赔|包退|包换|包月|包子|包容"
    "|面包|红包|钱包|书包|背包|打包|承包|快递包"
)
# A customer's "cotton" or "leather" also fits, a little less well (~), organic cotton or waterproof leather.
_MATERIALS: tuple[tuple[str, str, str], ...] = (
    ("cotton", "纯棉|全棉|棉质", "cotton ~organic-cotton"),
    ("organic cotton", "有机棉", "organic-cotton"),
    ("linen", "亚麻", "linen"),
    ("modal", "莫代尔", "modal"),
    ("denim", "牛仔", "denim"),
    ("twill", "斜纹棉|斜纹", "twill"),
    ("corduroy", "灯芯绒", "corduroy"),
    ("wool|woollen|woolen", "羊毛", "wool ~merino"),
    ("cashmere", "羊绒", "cashmere ~cashmere-blend"),
    ("merino|merino wool", "美利奴羊毛|美利奴", "merino"),
    ("fleece", "抓绒", "fleece"),
    ("silk", "真丝|丝绸", "silk"),
    ("chiffon", "雪纺", "chiffon"),
    ("knit|knitted", "针织", "knit"),
    ("down", "羽绒", "down"),
    ("cashmere blend", "羊绒混纺", "cashmere-blend"),
    ("waterproof nylon", "防水尼龙", "waterproof-nylon"),
    ("nylon", "尼龙", "nylon ~waterproof-nylon"),
    ("leather", "真皮|皮革", "leather ~waterproof-leather"),
    ("suede", "麂皮", "suede"),
    ("rubber", "橡胶", "rubber"),
    ("woven", "编织", "woven"),
    ("oxford", "牛津纺", "oxford"),
    ("flannel", "法兰绒", "flannel"),
    ("canvas", "帆布", "canvas"),
    ("mesh", "网面", "mesh"),
    ("vegan leather", "环保素皮|素皮", "vegan-leather"),
    ("straw", "草编", "straw"),
    ("waterproof leather", "防水真皮", "waterproof-leather"),
    ("nubuck", "磨砂皮", "nubuck"),
    ("waterproof", "防水", "waterproof-nylon waterproof-leather"),
)
_STYLES: tuple[tuple[str, str, str], ...] = (
    ("classic", "经典款|经典", "classic"),
    ("slim fit|slim|slimfit", "修身", "slim-fit"),
    ("relaxed|relaxed fit|loose", "宽松", "relaxed"),
    ("essential|essentials|basic", "基础款|基础", "essential"),
    ("vintage|retro", "复古", "vintage"),
    ("lightweight|light weight", "轻便", "lightweight"),
    ("platform", "厚底", "platform"),
    ("mini", "迷你", "mini"),
    ("everyday", "通勤", "everyday"),
    ("structured", "硬挺", "structured"),
)
# Common words one typo away from a product word; never "corrected" ("women" is not "woven").
_FUZZY_STOP = frozenset(
    (
        "women", "woman", "woken", "skirt", "skirts", "short", "shorts", "shift", "speaker", "speakers",
        "boost", "books", "booth", "boats", "lines", "lined", "liner", "linear", "costs", "coast", "coats",
        "colts", "breeze", "strike", "stripe", "stripes", "strive", "strode", "jumped", "sweated",
        "sweeter", "trailer", "trailers", "trainee", "trainees", "rubbed", "robber", "medal", "model",
        "models", "means", "twirl", "strap", "straps", "purge", "slice", "slices", "scandal", "scandals",
        "angle", "angles", "mason", "verse", "vantage", "supple", "shire", "shirk", "jacked",
    )
)
_LATIN_TOKEN = re.compile(r"[a-z]+")
_PHRASE_GAP = re.compile(r"[\s\-&'’./]{0,3}")
_BRIDGE = re.compile(r"\s*(?:的|'s|’s|-|/)?\s*")
_TITLE_STOP = frozenset(("and", "the", "with", "for", "of", "by", "in", "a", "an"))


@dataclass(frozen=True)
class _Term:
    feats: frozenset[tuple[str, str]]
    kind: str  # "brand" | "noun" (names a kind of product) | "attr" | "stop" (masks 鞋底 and the like)


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    term: _Term


def _feats(spec: str) -> frozenset[tuple[str, str]]:
    return frozenset(tuple(item.split(":", 1)) for item in spec.split())  # type: ignore[misc]


def _deletes(word: str, depth: int) -> set[str]:
    out, frontier = {word}, {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1:] for w in frontier for i in range(len(w))}
        out |= frontier
    return out


def _osa(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (a transposition costs 1), or ``limit + 1`` once it exceeds it."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


class _Lexicon:
    """Surface forms of product words, in both languages, found in text with typo tolerance."""

    def __init__(self) -> None:
        self.latin: dict[tuple[str, ...], _Term] = {}
        self.cjk: dict[str, _Term] = {}
        self._dirty = True
        self._fuzzy_dirty = True
        for en, zh, spec in _NOUNS:
            self.add(en, zh, _Term(_feats(spec), "noun"))
        for slot, table in (("material", _MATERIALS), ("style", _STYLES)):
            for en, zh, values in table:
                self.add(en, zh, _Term(frozenset((slot, v) for v in values.split()), "attr"))
        for slug, en, zh in _COLOURS:
            self.add(en, zh, _Term(frozenset({("colour", slug)}), "attr"))
        self.add("", _NOT_PRODUCT_ZH, _Term(frozenset(), "stop"))

    def add(self, en: str, zh: str, term: _Term) -> None:
        """Register forms ("a|b c") unless taken: the built-in vocabulary keeps its meaning."""
        for form in en.split("|"):
            key = tuple(_LATIN_TOKEN.findall(_fold(form)))
            if key and key not in self.latin:
                self.latin[key] = term
                self._dirty = self._fuzzy_dirty = True
        for form in zh.split("|"):
            form = _fold(form.strip())
            if form and form not in self.cjk:
                self.cjk[form] = term
                self._dirty = True

    def _build(self) -> None:
        if self._dirty:
            forms = sorted(self.cjk, key=len, reverse=True)
            self._cjk_re = re.compile("|".join(map(re.escape, forms))) if forms else re.compile(r"(?!)")
            self._vocab = {tok for key in self.latin for tok in key}
            self._first = {key[0] for key in self.latin}
            self._maxlen = max((len(k) for k in self.latin), default=1)
            self._dirty = False

    def _build_fuzzy(self) -> None:
        if self._fuzzy_dirty:
            targets = {
                tok
                for key, term in self.latin.items()
                if not any(slot == "colour" for slot, _ in term.feats)
                for tok in key
                if len(tok) >= 5
            }
            self._fuzzy_index: dict[str, set[str]] = {}
            for t in targets:
                for d in _deletes(t, 2 if len(t) >= 8 else 1):
                    self._fuzzy_index.setdefault(d, set()).add(t)
            self._fuzzy_cache: dict[str, str | None] = {}
            self._fuzzy_dirty = False

    def _correct(self, tok: str) -> str | None:
        """The one vocabulary word within 1 typo (2 for words of 8+ letters) with the same first letter."""
        if len(tok) < 5 or tok in _FUZZY_STOP:
            return None
        if tok in self._fuzzy_cache:
            return self._fuzzy_cache[tok]
        cands: set[str] = set()
        for d in _deletes(tok, 2 if len(tok) >= 8 else 1):
            cands |= self._fuzzy_index.get(d, set())
        best, best_d, tie = None, 99, False
        for c in cands:
            if c[0] != tok[0]:
                continue
            limit = 2 if min(len(c), len(tok)) >= 8 else 1
            dist = _osa(tok, c, limit)
            if dist <= limit and dist < best_d:
                best, best_d, tie = c, dist, False
            elif dist == best_d:
                tie = True
        result = None if tie else best
        if len(self._fuzzy_cache) > 50_000:
            self._fuzzy_cache.clear()
        self._fuzzy_cache[tok] = result
        return result

    def hits(self, f: str, fuzzy: bool) -> tuple[list[_Hit], list[tuple[int, int]]]:
        """Vocabulary words in folded text (longest first) and the Latin tokens that matched nothing."""
        self._build()
        if fuzzy:
            self._build_fuzzy()
        hits = [_Hit(m.start(), m.end(), self.cjk[m.group()]) for m in self._cjk_re.finditer(f)]
        cjk_spans = [(h.start, h.end) for h in hits]
        hits = [h for h in hits if h.term.kind != "stop" and not _colour_char_in_word(f, h.start, h.end)]
        toks = [
            m for m in _LATIN_TOKEN.finditer(f)
            if not any(s <= m.start() < e for s, e in cjk_spans)
        ]
        canon = []
        for m in toks:
            tok = m.group()
            if tok not in self._vocab and fuzzy:
                tok = self._correct(tok) or tok
            canon.append(tok)
        unknown: list[tuple[int, int]] = []
        i, n = 0, len(toks)
        while i < n:
            for length in range(min(self._maxlen, n - i), 0, -1):
                term = self.latin.get(tuple(canon[i:i + length]))
                if term is None:
                    continue
                gaps = range(i, i + length - 1)
                if all(_PHRASE_GAP.fullmatch(f, toks[k].end(), toks[k + 1].start()) for k in gaps):
                    hits.append(_Hit(toks[i].start(), toks[i + length - 1].end(), term))
                    i += length
                    break
            else:
                unknown.append(toks[i].span())
                i += 1
        hits.sort(key=lambda h: h.start)
        return hits, unknown

    def starts_term(self, f: str, pos: int) -> bool:
        """Whether a product word starts at ``pos`` (after spaces): "2 red tees", "两件 Nordwind"."""
        self._build()
        while pos < len(f) and f[pos].isspace():
            pos += 1
        cjk = self._cjk_re.match(f, pos)
        if cjk:
            return self.cjk[cjk.group()].kind != "stop"
        m = _LATIN_TOKEN.match(f, pos)
        return bool(m) and m.group() in self._first


_STATIC_LEXICON = _Lexicon()


def _single(term: _Term, slot: str) -> bool:
    """Whether the word names one value of ``slot``, so it can fill a slot the payload left empty."""
    return len({v for s, v in term.feats if s == slot}) == 1 and not any(
        v.startswith("~") for s, v in term.feats if s == slot
    )


def _cats(term: _Term) -> set[str]:
    return {v for s, v in term.feats if s == "cat"}


def _runs(f: str, hits: list[_Hit]) -> list[list[_Hit]]:
    """Adjacent product words, each run ending at its noun: "Silverbirch beige down jacket"."""
    runs: list[list[_Hit]] = []
    cur: list[_Hit] = []
    for h in hits:
        if cur:
            last = cur[-1]
            bridged = _BRIDGE.fullmatch(f, last.end, h.start) is not None
            # The noun is the head in both languages: words after it ("jacket black") start a new run.
            same_kind = h.term.kind == "noun" and bool(_cats(h.term) & _cats(last.term))
            after_noun = last.term.kind == "noun" and not same_kind
            if not bridged or after_noun:
                runs.append(cur)
                cur = []
        cur.append(h)
    if cur:
        runs.append(cur)
    return runs


def _names_product(run: Sequence[_Hit]) -> bool:
    """Two or more product words with a noun ("red dress"), or a brand with a colour or material
    ("the Valmont blue cashmere one"); a brand with only a style word ("Breezy slim") is too vague."""
    if len(run) < 2:
        return False
    kinds = {h.term.kind for h in run}
    if "noun" in kinds:
        return True
    return "brand" in kinds and any(s in ("colour", "material") for h in run for s, _ in h.term.feats)


def _combine(run: Sequence[_Hit]) -> tuple[dict[str, dict[str, float]], dict[str, set[str]]]:
    """What a run names: per set slot the allowed values (with how well each fits), per bag slot keys."""
    sets: dict[str, dict[str, float]] = {}
    bags: dict[str, set[str]] = {}
    for h in run:
        per: dict[str, dict[str, float]] = {}
        for slot, value in h.term.feats:
            if slot in _BAG_SLOTS:
                bags.setdefault(slot, set()).add(value)
            elif value.startswith("~"):
                per.setdefault(slot, {})[value[1:]] = _LOOSE
            else:
                per.setdefault(slot, {})[value] = 1.0
        for slot, values in per.items():
            old = sets.get(slot)
            if old is None:
                sets[slot] = values
                continue
            # Two words constrain the same slot: keep what both allow, or else what either does.
            both = {v: min(old[v], values[v]) for v in old.keys() & values.keys()}
            either = {v: max(old.get(v, 0.0), values.get(v, 0.0)) for v in old.keys() | values.keys()}
            sets[slot] = both or either
    return sets, bags


@dataclass
class _Product:
    sets: dict[str, str]
    bags: dict[str, frozenset[str]] = field(default_factory=dict)
    weight: float = 0.0
    # The nouns of each title on its own: "T恤" names the whole noun of a T-shirt's Chinese title.
    title_nouns: tuple[frozenset[str], ...] = ()


# A run is a product mention when its best product has at least this share of what it names. It
# resolves to one id when one product is best by a clear margin, or when among equally good ones
# exactly one has its whole title named ("Silverbirch Beige Down Jacket", not the Slim-fit one).
_MIN_SCORE = 0.5
_RESOLVE_SCORE = 0.75
_MARGIN = 0.1  # a loose material or a sibling noun ("cotton" for organic cotton) is no clear difference
_LOOSE = 0.75  # how well "leather" fits a waterproof-leather product


class CatalogIndex:
    """Products to recognise in messages; rebuilt or extended when catalog events arrive.

    Each product is indexed by its brand, category, colour, material and style (from the payload)
    and by the product nouns of its English and Chinese titles. A message is cut into runs of
    adjacent product words (typos in brands and nouns corrected), and every run with a noun plus
    another word, or a brand plus a colour or material, is scored against the products that share
    any of its features: the score is the weighted share of the named features a product has.

    Words learnt from titles (brands, unknown nouns) stay after a product is removed; they only make
    a word recognisable, the postings decide what it matches. Upserts and matches must not run
    concurrently (the vocabulary is rebuilt lazily on the next match).
    """

    def __init__(self, products: Iterable[Mapping[str, Any]] = ()) -> None:
        self._lexicon = _Lexicon()
        self._products: dict[str, _Product] = {}
        self._postings: dict[tuple[str, str], set[str]] = {}
        for product in products:
            self.upsert(product)

    def __len__(self) -> int:
        return len(self._products)

    def upsert(self, product: Mapping[str, Any]) -> None:
        """Add or replace one product (a ``product.upserted`` payload)."""
        pid = str(product["product_id"])
        self.remove(pid)
        attrs: Mapping[str, Any] = product.get("attributes") or {}
        sets: dict[str, str] = {}
        brand = str(product.get("brand") or "").strip()
        if brand:
            sets["brand"] = brand.lower()
            brand_term = _Term(frozenset({("brand", sets["brand"])}), "brand")
            self._lexicon.add(brand, "", brand_term)
            if "&" in brand:
                self._lexicon.add(brand.replace("&", "and"), "", brand_term)
            # Customers drop the second word of long brands ("Westfield"), never a short or common one.
            for tok in _LATIN_TOKEN.findall(brand.lower()):
                if len(tok) >= 5 and tok not in ("supply", "house", "store", "studio"):
                    self._lexicon.add(tok, "", brand_term)
        for slot, key in (("colour", "colour"), ("material", "material"), ("style", "style")):
            value = str(attrs.get(key) or "").strip().lower()
            if value:
                sets[slot] = value
                zh = str(attrs.get(f"{key}_zh") or "") if slot != "style" else ""
                self._lexicon.add(value.replace("-", " "), zh, _Term(frozenset({(slot, value)}), "attr"))
        if product.get("category"):
            sets["cat"] = str(product["category"]).lower()

        nouns: set[str] = set()
        title_nouns: list[frozenset[str]] = []
        words: set[str] = set()
        for title in (str(product.get("title") or ""), str(product.get("title_zh") or "")):
            f = _fold(title)
            hits, unknown = self._lexicon.hits(f, fuzzy=False)
            own = {v for h in hits for s, v in h.term.feats if s == "noun"}
            if own:
                title_nouns.append(frozenset(own))
                nouns |= own
            for h in hits:
                for slot, value in h.term.feats:
                    if slot in _SET_SLOTS and slot not in sets and _single(h.term, slot):
                        sets[slot] = value
            # Title words the vocabulary does not know (a new kind of product) become match words;
            # the last one is taken as the product's noun ("Nordwind Red Wool Scarf").
            for k, (s, e) in enumerate(unknown):
                tok = f[s:e]
                if len(tok) < 3 or tok in _TITLE_STOP:
                    continue
                words.add(tok)
                is_last = k == len(unknown) - 1 and e == len(f.rstrip())
                feats = {("word", tok)} | ({("cat", sets["cat"])} if is_last and "cat" in sets else set())
                self._lexicon.add(tok, "", _Term(frozenset(feats), "noun" if is_last else "attr"))
        bags = {slot: frozenset(keys) for slot, keys in (("noun", nouns), ("word", words)) if keys}
        weight = sum(_WEIGHT[s] for s in sets) + sum(_WEIGHT[s] for s in bags)
        self._products[pid] = _Product(sets, bags, weight, tuple(title_nouns))
        for slot, value in sets.items():
            self._postings.setdefault((slot, value), set()).add(pid)
        for slot, keys in bags.items():
            for key in keys:
                self._postings.setdefault((slot, key), set()).add(pid)

    def remove(self, product_id: str) -> None:
        """Forget a product (a ``product.removed`` event); unknown ids are ignored."""
        old = self._products.pop(product_id, None)
        if old is None:
            return
        keys = [(s, v) for s, v in old.sets.items()] + [(s, k) for s, ks in old.bags.items() for k in ks]
        for key in keys:
            posting = self._postings.get(key)
            if posting is not None:
                posting.discard(product_id)
                if not posting:
                    del self._postings[key]

    def match(self, text: str) -> list[tuple[int, int, str, float]]:
        """Product mentions as (start, end, product_id or "", score), non-overlapping, by position."""
        return self._match_folded(_fold(text))

    def _match_folded(self, f: str) -> list[tuple[int, int, str, float]]:
        hits, _ = self._lexicon.hits(f, fuzzy=True)
        if len(hits) < 2:
            return []
        found: list[tuple[list[_Hit], float, str, dict[str, dict[str, float]], dict[str, set[str]]]] = []
        loose_brands: set[str] = set()
        for run in _runs(f, hits):
            if _names_product(run):
                sets, bags = _combine(run)
                score, pid = self._identify(sets, bags)
                if score >= _MIN_SCORE:
                    found.append((run, score, pid, sets, bags))
                    continue
            loose_brands |= {v for h in run for s, v in h.term.feats if s == "brand"}
        out = []
        for run, score, pid, sets, bags in found:
            # "我买的是Silverbirch，那件米色羽绒服": a brand named on its own elsewhere can settle which one.
            if not pid and "brand" not in sets and len(loose_brands) == 1:
                brand = {b: 1.0 for b in loose_brands}
                with_brand, pid_with_brand = self._identify({**sets, "brand": brand}, bags)
                if with_brand >= 1.0 - 1e-9:
                    pid = pid_with_brand
            out.append((run[0].start, run[-1].end, pid, round(score, 4)))
        return out

    def _identify(
        self, sets: Mapping[str, Mapping[str, float]], bags: Mapping[str, set[str]]
    ) -> tuple[float, str]:
        """Best share of the mention's features any product has, and that product's id if it is clear."""
        total = sum(_WEIGHT[s] for s in sets) + sum(_WEIGHT[s] for s in bags)
        acc: dict[str, float] = {}
        for slot, values in sets.items():
            for value, fit in values.items():
                w = _WEIGHT[slot] * fit
                for pid in self._postings.get((slot, value), ()):
                    acc[pid] = acc.get(pid, 0.0) + w
        for slot, keys in bags.items():
            shared: dict[str, int] = {}
            for key in keys:
                for pid in self._postings.get((slot, key), ()):
                    shared[pid] = shared.get(pid, 0) + 1
            # All named nouns in the title ("sandals" for Slide Sandals) fit; a sibling only half
            # fits ("tote" for a handbag shares only "bag"), so it counts for a quarter.
            for pid, n in shared.items():
                fit = 1.0 if n == len(keys) else 0.5 * n / len(keys)
                acc[pid] = acc.get(pid, 0.0) + _WEIGHT[slot] * fit
        if not acc or total <= 0:
            return 0.0, ""
        best = max(acc.values())
        score = best / total
        close = [pid for pid, a in acc.items() if a > best - _MARGIN * total + 1e-9]
        if len(close) == 1 and score >= _RESOLVE_SCORE:
            return score, close[0]
        tops = [pid for pid in close if acc[pid] >= best - 1e-9]
        complete = [pid for pid in tops if self._coverage(pid, sets, bags) >= 1.0 - 1e-9]
        return score, complete[0] if len(complete) == 1 else ""

    def _coverage(
        self, pid: str, sets: Mapping[str, Mapping[str, float]], bags: Mapping[str, set[str]]
    ) -> float:
        """Share of the product's own features the mention names (1.0: its whole title was named)."""
        p = self._products[pid]
        got = sum(_WEIGHT[s] * sets[s].get(v, 0.0) for s, v in p.sets.items() if s in sets)
        for s, keys in p.bags.items():
            named = bags.get(s, set())
            per_title = p.title_nouns if s == "noun" and p.title_nouns else (keys,)
            got += _WEIGHT[s] * max(len(t & named) / len(t) for t in per_title)
        return got / p.weight if p.weight else 0.0


# --------------------------------------------------------------------------------------------------
# Extraction and scoring


def extract(text: str, today: date, catalog: CatalogIndex | None = None) -> list[Entity]:
    """Every entity in the message, sorted by start, non-overlapping.

    ``today`` anchors relative dates ("yesterday", "上周五"); without ``catalog`` no products are found.
    """
    if not text:
        return []
    f = _fold(text)
    cands = _contacts_and_ids(f) + _money(f) + _dates(f, today) + _sizes(text, f) + _colors(f)
    if catalog is not None:
        cands += [_Cand("product", s, e, pid, _RANK["product"]) for s, e, pid, _ in catalog._match_folded(f)]
        cands += _quantities(f, catalog._lexicon)
    else:
        cands += _quantities(f, _STATIC_LEXICON)
    return [Entity(c.type, text[c.start:c.end], c.start, c.end, c.normalized) for c in _resolve(cands)]


def _gold_spans(text: str, gold: Sequence[Mapping[str, Any]]) -> list[tuple[str, int, int, str]]:
    seen: dict[str, int] = {}
    out = []
    for g in gold:
        value = str(g["value"])
        nth = seen.get(value, 0)
        seen[value] = nth + 1
        start = -len(value)
        for _ in range(nth + 1):
            start = text.find(value, start + len(value))
            if start < 0:
                raise ValueError(f"gold value {value!r} (occurrence {nth + 1}) is not in {text!r}")
        out.append((str(g["type"]), start, start + len(value), str(g.get("normalized") or "")))
    return out


def _ratio(num: float, den: float, other: float) -> float:
    # Undefined ratios: perfect when there was nothing to find and nothing found, else zero.
    if den:
        return num / den
    return 1.0 if not other else 0.0


def entity_scores(
    gold: Sequence[Sequence[Mapping[str, Any]]],
    predicted: Sequence[Sequence[Entity]],
    texts: Sequence[str],
) -> dict[str, dict[str, float]]:
    """Per type and "all" (micro): precision, recall, f1, support, normalized_accuracy.

    A prediction is correct when type and span (start, end) equal a gold entity's; gold spans come
    from locating ``value`` in the text (the n-th occurrence for the n-th gold entity with the same
    value). normalized_accuracy is the share of span-correct predictions whose normalized equals
    gold's, over those whose gold normalized is non-empty (1.0 when there are none).
    """
    if not len(gold) == len(predicted) == len(texts):
        raise ValueError("gold, predicted and texts must have the same length")
    types = list(ENTITY_TYPES)
    counts: dict[str, list[int]] = {}  # type -> [true positives, predicted, gold, norm ok, norm checked]

    def row(t: str) -> list[int]:
        if t not in counts:
            counts[t] = [0, 0, 0, 0, 0]
            if t not in types:
                types.append(t)
        return counts[t]

    for t in ENTITY_TYPES:
        row(t)
    for gold_entities, pred_entities, text in zip(gold, predicted, texts):
        spans: dict[tuple[str, int, int], str] = {}
        for t, s, e, norm in _gold_spans(text, gold_entities):
            row(t)[2] += 1
            spans[(t, s, e)] = norm
        matched: set[tuple[str, int, int]] = set()
        for p in pred_entities:
            r = row(p.type)
            r[1] += 1
            key = (p.type, p.start, p.end)
            if key in spans and key not in matched:
                matched.add(key)
                r[0] += 1
                if spans[key]:
                    r[4] += 1
                    r[3] += p.normalized == spans[key]
    totals = [sum(c[i] for c in counts.values()) for i in range(5)]
    out: dict[str, dict[str, float]] = {}
    for t, c in [*((t, counts[t]) for t in types), ("all", totals)]:
        tp, n_pred, n_gold, norm_ok, norm_n = c
        p = _ratio(tp, n_pred, n_gold)
        r = _ratio(tp, n_gold, n_pred)
        out[t] = {
            "precision": p,
            "recall": r,
            "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "support": float(n_gold),
            "normalized_accuracy": norm_ok / norm_n if norm_n else 1.0,
        }
    return out
