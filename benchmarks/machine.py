"""The line that names the machine a benchmark ran on (every results/*.json carries it)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def describe(*extras: str) -> str:
    """"2 cores (Intel Xeon ...), 24 GiB, Python 3.11.7, Redis 7.0.15" plus any library versions given."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    parts = [f"{os.cpu_count()} cores ({cpu})", f"{mem:.0f} GiB", f"Python {platform.python_version()}"]
    try:
        version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=True).stdout
        parts.append(f"Redis {version.split()[2].removeprefix('v=')}")
    except (OSError, subprocess.CalledProcessError, IndexError):
        pass
    return ", ".join([*parts, *extras])
