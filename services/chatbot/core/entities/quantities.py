"""Rules for quantities: 两件 / 3双, "2 pcs", "x3", "qty: 2", and a bare number only where it counts
products ("2 red tees", "2 of them", "I want 3")."""

from __future__ import annotations

import re

from services.chatbot.core.entities.candidates import Cand, cand
from services.chatbot.core.entities.lexicon import Lexicon
from services.chatbot.core.entities.text import EN_NUM_RE, ZH_NUM, ZH_NUM_SMALL, to_int

_Q_ZH = re.compile(rf"(?<![\d.第同每任哪{ZH_NUM}])(\d{{1,3}}|{ZH_NUM_SMALL})\s?(件|双|条|套|顶|只|个|袋)")
_Q_ZH_STOP = (
    "问题", "月", "星期", "礼拜", "小时", "钟", "人", "事", "工作日", "地址", "订单", "号码", "电话", "邮箱",
    "码", "理由", "原因", "办法", "字", "天", "周", "多", "半", "快递", "包裹",
)
_Q_GE_FOLLOW = re.compile(r"\s*(?:$|[^\w]|[都全一就要吧呢了的啊])")
_Q_UNIT = re.compile(
    rf"(?<![a-z\d.])(?<!\d,)(\d{{1,3}}|{EN_NUM_RE})\s?(?:pcs|pc|pieces|piece|pairs|pair|items|item|units|unit)(?![a-z])"
)
_Q_X = re.compile(r"(?<![a-z0-9])[x×]\s?(\d{1,3})(?![\d.a-z])")
_Q_FIELD = re.compile(
    rf"(?:数量|(?<![a-z])qty|(?<![a-z])quantity)\s*(?:是|为)?\s*:?\s*(\d{{1,3}}|{ZH_NUM_SMALL})(?!\d)"
)
_Q_NUM = re.compile(rf"(?<![a-z\d.:/\-$¥#])(?<!\d,)(\d{{1,3}}|{EN_NUM_RE})(?![\d:/a-z%])(?![.,]\d)")
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


def _product_within(f: str, pos: int, words: int, lexicon: Lexicon) -> bool:
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


def _counts_products(f: str, m: re.Match[str], lexicon: Lexicon) -> bool:
    """Whether a bare number counts items: products or "of them" follow, or it comes after "buy"/"want"/..."""
    counts = lexicon.starts_term(f, m.end())
    of = _Q_OF.match(f, m.end())
    if of and not counts:
        # "2 of them" counts; "2 of the ..." only when products follow ("one of the charges" does not).
        counts = bool(of.group(1)) or _product_within(f, of.end(), 2, lexicon)
    if not counts and m.group(1) != "one":
        counts = bool(_Q_VERB.search(f, max(0, m.start() - 20), m.start())) and bool(
            _Q_AFTER_VERB.match(f, m.end())
        )
    return counts


def quantities(f: str, lexicon: Lexicon) -> list[Cand]:
    """Quantities in folded text; ``lexicon`` tells which words are products."""
    out = []
    for m in _Q_ZH.finditer(f):
        if f.startswith(_Q_ZH_STOP, m.end()):
            continue
        # 个 counts anything (一个问题, 一个笑话): only when a product or nothing more follows.
        if m.group(2) == "个" and not (_Q_GE_FOLLOW.match(f, m.end()) or lexicon.starts_term(f, m.end())):
            continue
        out.append(cand("quantity", m, str(to_int(m.group(1)))))
    # "2 pairs": the number is the quantity, as "两双" is in Chinese where the classifier binds to it.
    out += [cand("quantity", m, str(to_int(m.group(1))), 1) for m in _Q_UNIT.finditer(f)]
    out += [cand("quantity", m, str(to_int(m.group(1)))) for m in _Q_X.finditer(f)]
    out += [cand("quantity", m, str(to_int(m.group(1))), 1) for m in _Q_FIELD.finditer(f)]
    for m in _Q_NUM.finditer(f):
        n = to_int(m.group(1))
        if n and _counts_products(f, m, lexicon):
            out.append(cand("quantity", m, str(n)))
    return out
