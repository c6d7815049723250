"""Rules for amounts of money: ¥/$/RMB before or 元/块/dollars after a number, Chinese numerals, "paid 649"."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from services.chatbot.core.entities.candidates import Cand, cand
from services.chatbot.core.entities.text import ZH_NUM, zh_int

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
_MONEY_ZH = re.compile(rf"(?<![{ZH_NUM}\d])([{ZH_NUM}]+)(?:块钱|元钱|元(?!旦)|块)")


def money(f: str) -> list[Cand]:
    """Amounts in folded text, normalized to two decimals ("649.00")."""
    out = []
    for rx in (_MONEY_PRE, _MONEY_SUF, _MONEY_ZH, _MONEY_CUE):
        for m in rx.finditer(f):
            raw = m.group(1).replace(",", "")
            try:
                amount = Decimal(raw) if raw[0].isdigit() else Decimal(zh_int(raw) or 0)
            except InvalidOperation:
                continue
            if amount > 0:
                out.append(cand("money", m, f"{amount:.2f}", 1 if rx is _MONEY_CUE else 0))
    return out
