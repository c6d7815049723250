"""Rules for colours, English and Chinese; the colour words come from ``data/colours.json``."""

from __future__ import annotations

import re

from services.chatbot.core.entities import vocabulary
from services.chatbot.core.entities.candidates import Cand, cand

COLOURS = vocabulary.colours()
COLOUR_OF: dict[str, str] = {form: slug for slug, en, zh in COLOURS for form in (*en, *zh)}

# Phrases before their words ("navy blue" before "navy"); Chinese: the longest forms first.
_EN_FORMS = sorted((form for _, en, _ in COLOURS for form in en), key=lambda form: -len(form.split()))
_ZH_FULL_FORMS = sorted((form for _, _, zh in COLOURS for form in zh if len(form) > 1), key=len, reverse=True)
_ZH_CHARS = "".join(form for _, _, zh in COLOURS for form in zh if len(form) == 1)  # 黑白灰蓝...

_C_EN = re.compile(
    rf"(?<![a-z])({'|'.join(map(re.escape, _EN_FORMS))})(?![a-z])"
    r"(?!\s+(?:friday|house)(?![a-z]))"
)
_C_ZH_FULL = re.compile("|".join(map(re.escape, _ZH_FULL_FORMS)))
# A single-character colour only as 红的 / 红款 / 要红: elsewhere it is usually part of a word.
_C_ZH_SHORT = re.compile(
    rf"([{_ZH_CHARS}])(?=[的款])|(?<=[要选买换拿挑])([{_ZH_CHARS}])(?=$|[\s,.!?。，！？了吧呢吗啊])"
)
# Words in which the colour character does not mean the colour: 明白, 网红, 口红, 拉黑, 蛋黄, 面粉 ...
_C_ZH_NOT_AFTER = {"白": "明空坦表独告黑显", "红": "网口分", "黑": "拉天摸显", "黄": "蛋", "粉": "面奶米"}


def colour_char_in_word(f: str, start: int, end: int) -> bool:
    """Whether a one-character colour at ``f[start:end]`` is part of a word such as 明白 or 显白."""
    return end - start == 1 and start > 0 and f[start - 1] in _C_ZH_NOT_AFTER.get(f[start], "")


def colors(f: str) -> list[Cand]:
    """Colours in folded text, normalized to their slug ("navy" for 藏青色)."""
    out = [cand("color", m, COLOUR_OF[m.group(1)], 1) for m in _C_EN.finditer(f)]
    zh = [(m, 0) for m in _C_ZH_FULL.finditer(f)]
    zh += [(m, 1 if m.group(1) else 2) for m in _C_ZH_SHORT.finditer(f)]
    for m, group in zh:
        word, start = m.group(group), m.start(group)
        before = f[start - 1] if start else ""
        if before and (before in _C_ZH_NOT_AFTER.get(word[0], "") or before in _ZH_CHARS):
            continue
        out.append(cand("color", m, COLOUR_OF[word], group))
    return out
