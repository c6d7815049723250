"""Progress bars reach a log that reads lines (honcho, containers, CI) while the work runs."""

from __future__ import annotations

import io

from services.common.progress import progress


class NotATerminal(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_off_a_terminal_each_update_is_a_whole_line():
    out = NotATerminal()
    with progress(total=3, desc="publishing", file=out, mininterval=0) as bar:
        for _ in range(3):
            bar.update(1)
            assert out.getvalue().endswith("\n"), "an update must end its line, or a line reader shows nothing"
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[-1].startswith("publishing: 100%") and "3/3" in lines[-1]
