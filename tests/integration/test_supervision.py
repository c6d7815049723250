"""`make run`'s supervisor for real (supervisord and shopai/supervision.py's listener, on a Procfile of small
processes): a process killed with SIGKILL is started again and counted, one that crashes at every start is given
up after its retries with its last error on the terminal, and the others keep running; SIGINT (Ctrl-C) stops
them all (issue #21 item 1); so does a closed terminal (SIGHUP), and a killed `shopai run` takes supervisord
with it. Supervisord runs under ``supervision.run_supervisord``, as ``shopai run`` runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from shopai import supervision
from tests.support import ROOT, free_port, wait_for

pytestmark = pytest.mark.integration

PROCFILE = {
    "steady": "exec python -c 'import time; print(\"steady up\", flush=True); time.sleep(600)'",
    "victim": "exec python -c 'import time; print(\"victim up\", flush=True); time.sleep(600)'",
    "broken": "exec python -c 'raise SystemExit(\"broken: SHOPAI_NOTHING is not a setting\")'",
}


def supervised(tmp_path: Path, procfile: dict[str, str]) -> tuple[subprocess.Popen, Path, int, Callable]:
    """``procfile`` under supervisord as ``shopai run`` starts it, in a process group of its own (as a terminal
    would): the process, its terminal output, the listener's metrics port, and supervisorctl."""
    run_dir, log_dir = tmp_path / "run", tmp_path / "logs"
    run_dir.mkdir()
    log_dir.mkdir()
    config = run_dir / "supervisord.conf"
    config.write_text(supervision.supervisord_config(list(procfile), procfile, ROOT, run_dir, log_dir,
                                                     sys.executable))
    metrics_port = free_port()
    env = {**os.environ, "SHOPAI_SUPERVISOR_METRICS_PORT": str(metrics_port),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    out = tmp_path / "terminal.log"
    runner = ("import sys; from pathlib import Path; from shopai.supervision import run_supervisord; "
              f"sys.exit(run_supervisord(Path({str(config)!r})))")
    with open(out, "ab") as terminal:
        proc = subprocess.Popen([sys.executable, "-c", runner], env=env, cwd=ROOT,
                                stdout=terminal, stderr=subprocess.STDOUT, start_new_session=True)

    def ctl(*args: str) -> str:
        return subprocess.run([str(Path(sys.executable).with_name("supervisorctl")), "-c", str(config), *args],
                              check=False, capture_output=True, text=True, timeout=30).stdout

    return proc, out, metrics_port, ctl


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_restarts_give_up_and_ctrl_c(tmp_path: Path) -> None:
    proc, out, metrics_port, ctl = supervised(tmp_path, PROCFILE)
    try:
        wait_for(lambda: "victim is running" in out.read_text(), 60, what="the victim to run")
        victim = int(ctl("pid", "victim").strip())
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: ctl("pid", "victim").strip() not in ("", "0", str(victim)), 30,
                 what="the victim to be started again")
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
            assert 'shopai_process_restarts_total{process="victim"} 1.0' in reply.read().decode()

        wait_for(lambda: "broken is stopped" in out.read_text(), 60, what="the broken process to be given up")
        text = out.read_text()
        assert f"{'victim':<12}| victim up" in text and "restarting victim (1 restart(s) in the last minute)" in text
        assert "broken: SHOPAI_NOTHING is not a setting" in text.split("broken is stopped")[1]  # its last error
        status = ctl("status")
        assert "broken" in status and "FATAL" in status
        assert status.count("RUNNING") >= 2, status  # steady and victim (and the listener) keep running
        running = [int(ctl("pid", name).strip()) for name in ("steady", "victim")]
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        proc.wait(60)
    assert proc.returncode == 0
    for pid in running:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # stopped with supervisord


@pytest.mark.parametrize("how", ["SIGHUP", "SIGKILL"])
def test_a_closed_terminal_or_a_killed_runner_stops_everything(tmp_path: Path, how: str) -> None:
    """SIGHUP (the terminal closed) stops the stack, where supervisord alone would restart it all and keep it
    running; a SIGKILLed runner takes supervisord and its processes with it."""
    proc, out, _, ctl = supervised(tmp_path, {"steady": PROCFILE["steady"]})
    started: list[int] = []
    try:
        wait_for(lambda: "steady is running" in out.read_text(), 60, what="the process to run")
        started = [int(ctl("pid").strip()), int(ctl("pid", "steady").strip())]  # supervisord, the process
        os.killpg(proc.pid, getattr(signal, how))
        proc.wait(60)
        wait_for(lambda: all(gone(pid) for pid in started), 60, what=f"everything to stop after {how}")
        assert "reloading" not in out.read_text().lower()  # supervisord's answer to SIGHUP of its own
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in started:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
