"""The text every rule reads: a folded copy with the original's offsets, and numerals in three scripts."""

from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
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


ZH_DIGIT = dict(zip("零〇一二两三四五六七八九", (0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9), strict=True))
ZH_UNIT = {"十": 10, "百": 100, "千": 1000}
ZH_NUM = "零〇一二两三四五六七八九十百千万"
ZH_NUM_SMALL = "[一二两三四五六七八九十]{1,3}"
EN_NUM = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2,
}
EN_NUM_RE = "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"


def zh_int(s: str) -> int | None:
    """Value of a Chinese numeral, including the colloquial 三百五 (350) and 一千二 (1200)."""
    total = section = 0
    num: int | None = None
    zero = False
    unit_before_digit = prev_unit = 0
    for ch in s:
        if ch in "零〇":
            zero, num, prev_unit = True, None, 0
        elif ch in ZH_DIGIT:
            num, unit_before_digit, prev_unit = ZH_DIGIT[ch], prev_unit, 0
        elif ch in ZH_UNIT:
            section += (1 if num is None else num) * ZH_UNIT[ch]
            num, zero, prev_unit = None, False, ZH_UNIT[ch]
        elif ch == "万":
            total += (section + (num or 0) or 1) * 10000
            section, num, zero, prev_unit = 0, None, False, 10000
        else:
            return None
    if num is not None:
        # A digit right after 百/千/万 with no 零 is the next-lower unit: 三百五 = 350, 两万五 = 25000.
        section += num * unit_before_digit // 10 if (not zero and unit_before_digit >= 100) else num
    return total + section


def to_int(s: str) -> int | None:
    """Value of ASCII digits, an English number word ("two", "a couple of") or a Chinese numeral."""
    if s.isascii() and s.isdigit():
        return int(s)
    if s in EN_NUM:
        return EN_NUM[s]
    return zh_int(s)
