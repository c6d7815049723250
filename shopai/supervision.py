"""`make run` under supervisord: the processes of deploy/Procfile.dev, each restarted when it exits.

``shopai run`` writes a supervisord configuration from the Procfile (``write_config``) and execs supervisord
(Supervisor, PyPI ``supervisor``; docs/architecture.md says why it and not honcho or circus). Supervisor itself
restarts a process that exits or is killed (``autorestart``) and backs off on one that dies while starting (1 s,
2 s, 3 s ... up to ``startretries``, then FATAL). This module's event listener (``python -m shopai.supervision``,
run by supervisord as ``[eventlistener:supervision]``) adds what Supervisor leaves out:

- every process's output on the terminal, each line prefixed with the process's name (as honcho did);
- each restart logged and counted in ``shopai_process_restarts_total{process}`` (Prometheus, on
  ``SHOPAI_SUPERVISOR_METRICS_PORT``, 127.0.0.1);
- a limit per minute: a process restarted more than ``SHOPAI_RESTART_LIMIT_PER_MINUTE`` times within 60 s is
  stopped, and so is one Supervisor gave up on (FATAL); either way its last output is printed and the other
  processes keep running.

``shopai run`` keeps running as supervisord's parent (``run_supervisord``), with supervisord in a session of its
own: Ctrl-C, SIGTERM and SIGHUP (the terminal closed) reach ``shopai run``, which asks supervisord to stop
(SIGTERM): it stops every process (SIGTERM, then SIGKILL after ``stopwaitsecs``) and exits, so every port is
free again. Supervisord's own answer to SIGHUP is to restart everything with its configuration read again, which
would leave the stack running with nobody at a closed terminal. Should ``shopai run`` itself be killed, the kernel
sends supervisord SIGTERM (Linux ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from services.common.settings import SERVICE_NAMES, Settings

# Start order (Supervisor starts lower numbers first and stops them last).
PRIORITY = {"redis": 10, "s3": 10, "broker": 20, "gateway": 40, "demo": 50}
SERVICE_PRIORITY = 30
# A process that dies within this many seconds of its start has failed to start: Supervisor retries it
# after 1 s, 2 s, 3 s and then gives up (FATAL). One that ran longer is restarted at once.
START_SECONDS = 10
START_RETRIES = 3
STOP_WAIT_SECONDS = 20
WINDOW_SECONDS = 60.0


def read_procfile(path: Path) -> dict[str, str]:
    """``name: command`` lines (comments and blank lines skipped), in order."""
    entries: dict[str, str] = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line)
        if m:
            entries[m.group(1)] = m.group(2)
    return entries


def program(name: str) -> str:
    """A process's name for supervisorctl and Supervisor's RPC (the services are in the group ``services``)."""
    return f"services:{name}" if name in SERVICE_NAMES else name


def socket_path(run_dir: Path) -> Path:
    """supervisord's control socket: short (a Unix socket path has at most 107 bytes), one per data directory."""
    digest = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"shopai-supervisor-{digest}.sock"


def _quote(command: str) -> str:
    """A Procfile line as one argument of ``/bin/sh -c`` in supervisord's (shlex-split) command."""
    return "'" + command.replace("'", "'\"'\"'") + "'"


def supervisord_config(processes: list[str], procfile: dict[str, str], root: Path, run_dir: Path,
                       log_dir: Path, python: str) -> str:
    """The supervisord.conf that runs ``processes`` (names of ``procfile``) from ``root``."""
    sock = socket_path(run_dir)
    lines = [
        "; written by `shopai run` (shopai/supervision.py) at each start; do not edit",
        "[supervisord]",
        "nodaemon=true",
        # supervisord's own log goes to its file; the terminal gets the listener's lines alone (two writers
        # of one file without O_APPEND would overwrite each other's lines).
        "silent=true",
        f"logfile={run_dir / 'supervisord.log'}",
        "logfile_maxbytes=5MB",
        "logfile_backups=1",
        f"pidfile={run_dir / 'supervisord.pid'}",
        f"childlogdir={log_dir}",
        "",
        "[unix_http_server]",
        f"file={sock}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{sock}",
        "",
        "[eventlistener:supervision]",
        f"command={python} -m shopai.supervision",
        f"directory={root}",
        "events=PROCESS_STATE,PROCESS_LOG",
        "buffer_size=10000",
        "priority=1",
        "autorestart=true",
        # The listener's stdout is Supervisor's protocol; what it prints for a person goes to stderr.
        "stderr_logfile=/dev/stdout",
        "stderr_logfile_maxbytes=0",
        "",
    ]
    services = [name for name in processes if name in SERVICE_NAMES]
    if services:  # one group: Ctrl-C stops the four services at once rather than one after the other
        lines += ["[group:services]", f"programs={','.join(services)}", f"priority={SERVICE_PRIORITY}", ""]
    for name in processes:
        lines += [
            f"[program:{name}]",
            f"command=/bin/sh -c {_quote(procfile[name])}",
            f"directory={root}",
            f"priority={PRIORITY.get(name, SERVICE_PRIORITY)}",
            # The demo seeds and then idles: restarted only when it fails (seeding again counts nothing twice).
            "autorestart=" + ("unexpected" if name == "demo" else "true"),
            "exitcodes=0",
            f"startsecs={0 if name == 'demo' else START_SECONDS}",
            f"startretries={START_RETRIES}",
            "stopsignal=TERM",
            f"stopwaitsecs={STOP_WAIT_SECONDS}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={log_dir / (name + '.log')}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=2",
            "stdout_events_enabled=true",
            "",
        ]
    return "\n".join(lines)


def write_config(settings: Settings, processes: list[str], procfile_path: Path, root: Path) -> Path:
    run_dir = (settings.data_dir / "run").resolve()
    log_dir = (settings.data_dir / "logs").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "supervisord.conf"
    path.write_text(supervisord_config(processes, read_procfile(procfile_path), root, run_dir, log_dir,
                                       sys.executable))
    return path


class Watcher:
    """What the listener does with Supervisor's events; I/O is passed in (tested in tests/unit)."""

    def __init__(self, limit_per_minute: int, out: TextIO, stop: Callable[[str], object],
                 tail: Callable[[str], str], on_restart: Callable[[str], object] = lambda name: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit_per_minute
        self.out = out
        self.stop = stop
        self.tail = tail
        self.on_restart = on_restart
        self.clock = clock
        self.restarts: dict[str, deque[float]] = {}
        self.stopped: set[str] = set()
        self._partial: dict[str, str] = {}

    def say(self, name: str, text: str) -> None:
        for line in text.splitlines():
            self.out.write(f"{name:<12}| {line}\n")
        self.out.flush()

    def handle(self, event: str, headers: dict[str, str], data: str = "") -> None:
        name = headers.get("processname", "?")
        if event.startswith("PROCESS_LOG"):
            self.output(name, data)
        elif event == "PROCESS_STATE_EXITED":
            self.say("supervision", f"{name} (pid {headers.get('pid')}) exited"
                                    + (" unexpectedly; restarting it" if headers.get("expected") == "0" else ""))
        elif event == "PROCESS_STATE_STARTING" and headers.get("from_state") in ("EXITED", "BACKOFF"):
            self.restarted(name, int(headers.get("tries", "0")))
        elif event == "PROCESS_STATE_STARTING":
            self.say("supervision", f"starting {name}")
        elif event == "PROCESS_STATE_RUNNING":
            self.say("supervision", f"{name} is running (pid {headers.get('pid')})")
        elif event == "PROCESS_STATE_BACKOFF":
            self.say("supervision", f"{name} exited within {START_SECONDS} s of its start (attempt "
                                    f"{headers.get('tries')}); retrying after a back-off")
        elif event == "PROCESS_STATE_STOPPED":
            self.say("supervision", f"{name} stopped")
        elif event == "PROCESS_STATE_FATAL":
            self.give_up(name, f"it exited {START_RETRIES + 1} times within {START_SECONDS} s of its start")

    def output(self, name: str, data: str) -> None:
        text = self._partial.pop(name, "") + data
        if not text.endswith("\n"):
            text, _, rest = text.rpartition("\n")
            if len(rest) > 4096:  # a line without an end: show what there is
                text, rest = text + "\n" + rest, ""
            if rest:
                self._partial[name] = rest
        self.say(name, text)

    def restarted(self, name: str, tries: int) -> None:
        now = self.clock()
        window = self.restarts.setdefault(name, deque())
        window.append(now)
        while window and window[0] <= now - WINDOW_SECONDS:
            window.popleft()
        self.on_restart(name)
        self.say("supervision", f"restarting {name} ({len(window)} restart(s) in the last minute"
                                + (f", start attempt {tries + 1}" if tries else "") + ")")
        if len(window) > self.limit and name not in self.stopped:
            self.stop(program(name))
            self.give_up(name, f"it was restarted {len(window)} times within a minute (limit "
                               f"{self.limit}, SHOPAI_RESTART_LIMIT_PER_MINUTE)")

    def give_up(self, name: str, why: str) -> None:
        self.stopped.add(name)
        try:
            last = self.tail(program(name))
        except Exception as exc:  # noqa: BLE001 - the notice matters more than the tail
            last = f"(its log cannot be read: {exc})"
        self.say("supervision", f"{name} is stopped: {why}. The other processes keep running. Its last output:")
        self.say(name, last.strip() or "(nothing)")
        self.say("supervision", f"after a fix: .venv/bin/supervisorctl -c <data dir>/run/supervisord.conf "
                                f"start {program(name)}  (or stop with Ctrl-C and `make run` again)")


def _stop_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux); elsewhere nothing."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_supervisord(config: Path) -> int:
    """Run supervisord on ``config`` until it exits, and stop it on Ctrl-C, SIGTERM or SIGHUP; its exit status."""
    supervisord = str(Path(sys.executable).with_name("supervisord"))
    proc = subprocess.Popen([supervisord, "-c", str(config)], start_new_session=True,
                            preexec_fn=_stop_with_parent)  # noqa: PLW1509 - no threads run here yet

    def stop(signum: int, _frame: object) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    return proc.wait()


def main() -> int:
    """The event listener supervisord runs (``[eventlistener:supervision]``)."""
    import os

    from prometheus_client import Counter, start_http_server
    from supervisor import childutils

    from services.common.settings import load_settings

    settings = load_settings()
    restarts = Counter("shopai_process_restarts_total", "Processes of `make run` restarted by the supervisor",
                       ["process"])
    try:
        start_http_server(settings.supervisor_metrics_port, addr="127.0.0.1")
    except OSError as exc:
        print(f"supervision: no metrics on port {settings.supervisor_metrics_port}: {exc}", file=sys.stderr)
    rpc = childutils.getRPCInterface(os.environ)

    def tail(name: str) -> str:
        return rpc.supervisor.tailProcessStdoutLog(name, 0, 3000)[0]

    watcher = Watcher(settings.restart_limit_per_minute, sys.stderr,
                      stop=lambda name: rpc.supervisor.stopProcess(name, False), tail=tail,
                      on_restart=lambda name: restarts.labels(name).inc())
    while True:
        headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        try:
            if headers["eventname"].startswith("PROCESS_LOG"):
                event_headers, data = childutils.eventdata(payload)
            else:
                event_headers, data = childutils.get_headers(payload), ""
            watcher.handle(headers["eventname"], event_headers, data)
        except Exception as exc:  # noqa: BLE001 - one bad event must not stop the listener
            print(f"supervision: cannot handle {headers.get('eventname')}: {exc}", file=sys.stderr)
        childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
