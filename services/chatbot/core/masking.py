"""Personal data masked before a transcript leaves the service (hand-off events, logs)."""

from __future__ import annotations

import re

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    (re.compile(r"(?<![\w-])(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?!\d)"), "[phone]"),
    (re.compile(r"(?<![\w-])\+?\d{1,3}[ -]?\(?\d{3}\)?[ -]?\d{3}[ -]?\d{4}(?!\d)"), "[phone]"),
    (re.compile(r"\(\d{3}\)\s?\d{3}-\d{4}"), "[phone]"),
    # Chinese resident identity numbers: 17 digits + digit or X
    (re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)"), "[id-number]"),
    # card numbers: 13-19 digits, optionally grouped
    (re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)"), "[card]"),
)
# Street addresses after a cue word: mask the rest of the clause.
_ADDRESS = re.compile(r"((?:my address is|address is|my address|ship to|send it to|地址是|地址：|地址:|寄到|送到)\s*)([^,，。.!！?？\n]+)",
                      re.IGNORECASE)


def mask_personal_data(text: str) -> str:
    """Emails, phone numbers, card and identity numbers and stated addresses replaced by placeholders.
    Order ids stay: the agent who takes over needs them, and they identify an order, not a person."""
    out = _ADDRESS.sub(lambda m: m.group(1) + "[address]", text)
    for pattern, placeholder in _PATTERNS:
        out = pattern.sub(placeholder, out)
    return out
