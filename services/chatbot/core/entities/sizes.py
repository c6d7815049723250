"""Rules for clothing and shoe sizes: S/M/L/XL and 2XL, "size 38", 38码, EU 39, 32腰, one size, "M or L"."""

from __future__ import annotations

import re

from services.chatbot.core.entities.candidates import Cand, cand

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


def _size(m: re.Match[str], group: int) -> Cand:
    return cand("size", m, _size_norm(m.group(group)), group)


def _cued_sizes(text: str, f: str) -> list[Cand]:
    """Sizes a cue marks: a word (size, 尺码, EU, waist), a suffix (码, 号), "in"/"an" before a letter."""
    out: list[Cand] = []
    for rx in (_SZ_CUE, _SZ_BEFORE, _SZ_ZH_CUE, _SZ_EU, _SZ_MULTI):
        out += [_size(m, 1) for m in rx.finditer(f)]
    for m in _SZ_SUFFIX.finditer(f):
        raw = m.group(1)
        # 20号 is the 20th of a month; only shoe sizes take 号, while 码 also covers waists.
        if not raw[0].isdigit() or (26 if m.group(2) == "码" else 33) <= float(raw) <= 50:
            out.append(_size(m, 1))
    for m in _SZ_WAIST.finditer(f):
        group = 1 if m.group(1) else 2
        if 22 <= int(m.group(group)) <= 44:
            out.append(_size(m, group))
    for m in (*_SZ_IN.finditer(f), *_SZ_ARTICLE.finditer(f)):
        raw = m.group(1)
        if len(raw) == 1:
            # A lone letter after "in" is a size only when written as a capital: "in M", not "in m".
            if text[m.start(1)].isupper():
                out.append(_size(m, 1))
        elif _SZ_IN_FOLLOW.match(f, m.end()) and (not raw.isdigit() or _plausible_size(m.group(), int(raw))):
            out.append(_size(m, 1))
    # In Chinese a capital S/M/L between Chinese characters is a size: 把M换成L, 想要M.
    out += [_size(m, 1) for m in _SZ_IN_CJK.finditer(text)]
    out += [cand("size", m, "one size") for m in _SZ_ONE.finditer(f)]
    return out


def sizes(text: str, f: str) -> list[Cand]:
    """Sizes in a message (``text``, for capitals) and its folded copy ``f``, with the ones chained
    after them ("M or L", "38/39")."""
    out = _cued_sizes(text, f)
    chained = list(out)
    while chained:
        prev = chained.pop()
        m = _SZ_CHAIN.match(f, prev.end)
        if not m:
            continue
        raw = m.group(1)
        ok = 26 <= int(raw) <= 46 if raw.isdigit() else (len(raw) > 1 or text[m.start(1)].isupper())
        if ok:
            c = cand("size", m, _size_norm(raw), 1)
            out.append(c)
            chained.append(c)
    return out
