"""Progress bars (tqdm) that also work where output is not a terminal.

tqdm redraws its line with carriage returns; a process manager (honcho), a container log or
CI reads lines, so it would show nothing until the end. Off a terminal the bar is therefore
written as whole lines, at most every ``PLAIN_INTERVAL`` seconds.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm import tqdm

PLAIN_INTERVAL = 5.0


class _Lines:
    """A file for tqdm that turns each redraw into one line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def progress(*args: Any, **kwargs: Any) -> tqdm:
    """``tqdm(*args, **kwargs)``, as whole lines every few seconds when stderr is not a terminal."""
    stream = kwargs.pop("file", sys.stderr)
    if not stream.isatty():
        kwargs.setdefault("mininterval", PLAIN_INTERVAL)
        kwargs.setdefault("ascii", True)
        stream = _Lines(stream)
    return tqdm(*args, file=stream, **kwargs)
