"""Which language a message is in, and which the reply should be in."""

from __future__ import annotations

import re

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
LANGUAGES = ("en", "zh")


def detect_language(text: str, hint: str = "") -> str:
    """"zh" when the message has a real share of Chinese characters, else "en"; a valid hint wins.

    Code-mixed messages ("我的order到哪了") are answered in Chinese: a shopper who types Chinese
    at all reads it, while English words inside Chinese are usually product or shop vocabulary.
    """
    if hint in LANGUAGES:
        return hint
    cjk = len(_CJK.findall(text))
    latin_words = len(re.findall(r"[A-Za-z]+", text))
    if cjk >= 2 and cjk >= 0.5 * latin_words:
        return "zh"
    return "en"


def has_letters(text: str) -> bool:
    """Whether a message has anything to understand (letters or Chinese), not only digits, symbols or emoji."""
    return bool(_CJK.search(text) or _LATIN.search(text))
