"""`make run` under supervisord (shopai/supervision.py): the configuration written from deploy/Procfile.dev, and the
event listener's decisions (restarts logged and counted, the limit per minute, the last output of a process
given up), with a fake clock and fake RPC."""

from __future__ import annotations

import configparser
import io
import sys
from pathlib import Path

from services.common.settings import SERVICE_NAMES
from shopai import supervision
from shopai.cli import PROCFILE, ROOT


def config(tmp_path: Path, processes: list[str]) -> configparser.RawConfigParser:
    text = supervision.supervisord_config(processes, supervision.read_procfile(PROCFILE), ROOT, tmp_path / "run",
                                          tmp_path / "logs", sys.executable)
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    return parser


def test_every_process_is_restarted_with_back_off_and_its_output_reaches_the_listener(tmp_path):
    processes = ["s3", "broker", *SERVICE_NAMES, "gateway", "demo"]
    parsed = config(tmp_path, processes)
    for name in processes:
        section = parsed[f"program:{name}"]
        assert section["command"].startswith("/bin/sh -c '") and "exec " in section["command"]
        assert section["autorestart"] == ("unexpected" if name == "demo" else "true")
        assert section["stdout_events_enabled"] == "true" and section["redirect_stderr"] == "true"
        assert section["stopasgroup"] == section["killasgroup"] == "true"
    assert int(parsed["program:recommender"]["startretries"]) >= 1
    assert int(parsed["program:broker"]["priority"]) < int(parsed["program:recommender"]["priority"])
    assert parsed["group:services"]["programs"] == ",".join(SERVICE_NAMES)  # stopped together on Ctrl-C
    assert parsed["supervisord"]["nodaemon"] == "true" and parsed["supervisord"]["silent"] == "true"
    assert "PROCESS_STATE" in parsed["eventlistener:supervision"]["events"]
    assert len(str(supervision.socket_path(tmp_path / "run" / ("x" * 200)))) < 100  # a Unix socket path's limit


def test_a_procfile_line_with_quotes_survives_the_shell_quoting(tmp_path):
    parsed = config(tmp_path, ["gateway", "redis"])
    assert parsed["program:gateway"]["command"].endswith("""'"'"'gateway.app:create_app()'"'"''""")
    assert "redis" in parsed["program:redis"]["command"] and "[program:s3]" not in str(parsed.sections())


class Fake:
    def __init__(self) -> None:
        self.now = 1000.0
        self.out = io.StringIO()
        self.stopped: list[str] = []
        self.restarts: list[str] = []

    def watcher(self, limit: int = 3) -> supervision.Watcher:
        return supervision.Watcher(limit, self.out, stop=self.stopped.append,
                                   tail=lambda name: f"Traceback ...\nValueError: bad setting of {name}\n",
                                   on_restart=self.restarts.append, clock=lambda: self.now)


def restart(watcher: supervision.Watcher, name: str = "recommender") -> None:
    watcher.handle("PROCESS_STATE_EXITED", {"processname": name, "groupname": "services", "expected": "0",
                                            "pid": "42"})
    watcher.handle("PROCESS_STATE_STARTING", {"processname": name, "groupname": "services", "from_state": "EXITED",
                                              "tries": "0"})


def test_each_restart_is_logged_and_counted_and_the_limit_per_minute_stops_the_process():
    fake = Fake()
    watcher = fake.watcher(limit=3)
    for _ in range(3):
        restart(watcher)
        fake.now += 10
    assert fake.restarts == ["recommender"] * 3 and fake.stopped == []
    assert "recommender (pid 42) exited unexpectedly; restarting it" in fake.out.getvalue()
    assert "restarting recommender (3 restart(s) in the last minute)" in fake.out.getvalue()
    restart(watcher)  # the 4th within a minute
    assert fake.stopped == ["services:recommender"]
    text = fake.out.getvalue()
    assert "recommender is stopped: it was restarted 4 times within a minute" in text
    assert f"{'recommender':<12}| ValueError: bad setting of services:recommender" in text
    assert "The other processes keep running" in text


def test_restarts_spread_over_more_than_a_minute_are_not_stopped():
    fake = Fake()
    watcher = fake.watcher(limit=2)
    for _ in range(6):
        restart(watcher, "broker")
        fake.now += 31
    assert fake.stopped == [] and len(fake.restarts) == 6


def test_a_process_that_fails_at_every_start_is_given_up_with_its_last_error():
    fake = Fake()
    watcher = fake.watcher()
    watcher.handle("PROCESS_STATE_BACKOFF", {"processname": "gateway", "groupname": "gateway", "tries": "1"})
    watcher.handle("PROCESS_STATE_STARTING", {"processname": "gateway", "groupname": "gateway",
                                              "from_state": "BACKOFF", "tries": "1"})
    watcher.handle("PROCESS_STATE_FATAL", {"processname": "gateway", "groupname": "gateway"})
    text = fake.out.getvalue()
    assert "gateway exited within 10 s of its start (attempt 1); retrying after a back-off" in text
    assert "gateway is stopped: it exited 4 times within 10 s of its start" in text
    assert "ValueError: bad setting of gateway" in text and "supervisorctl" in text


def test_output_is_prefixed_line_by_line_and_a_split_line_is_kept_until_its_end():
    fake = Fake()
    watcher = fake.watcher()
    watcher.handle("PROCESS_LOG_STDOUT", {"processname": "broker"}, "one\ntw")
    watcher.handle("PROCESS_LOG_STDOUT", {"processname": "demo"}, "x\n")
    watcher.handle("PROCESS_LOG_STDOUT", {"processname": "broker"}, "o\n")
    assert fake.out.getvalue().splitlines() == [f"{'broker':<12}| one", f"{'demo':<12}| x", f"{'broker':<12}| two"]
