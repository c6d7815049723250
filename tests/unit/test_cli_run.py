"""``make run`` with ``SHOPAI_DEMO=off``: the stack starts empty, on a store of its own, and the launcher
prints how to import a shop's own data instead of seeding the demo shop."""

from __future__ import annotations

import argparse
import http.server
import sys
import threading
from pathlib import Path

import pytest

from services.common.settings import Settings, load_settings
from shopai import cli, supervision


class _Started(Exception):
    pass


@pytest.fixture
def launched(monkeypatch, tmp_path):
    """cmd_run up to the point where it would start supervisord: (argv, env) it would start it with."""
    seen = {}

    class _Redis:
        def ping(self):
            return True

    def run_supervisord(config):
        seen["argv"] = [str(Path(sys.executable).with_name("supervisord")), "-c", str(config)]
        raise _Started

    saved = dict(cli.os.environ)  # cmd_run sets variables for the processes it starts: put them back after
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("services.common.cache.connect", lambda *a, **k: _Redis())
    monkeypatch.setattr(cli, "_listening", lambda host, port: False)
    monkeypatch.setattr(supervision, "run_supervisord", run_supervisord)
    monkeypatch.setattr(cli, "S3RVER", tmp_path / "s3rver")  # as `make run` installs it
    (tmp_path / "s3rver").touch()
    for name in ("SHOPAI_DATA_DIR", "SHOPAI_REDIS_URL", "SHOPAI_DEMO", "SHOPAI_LOG_JSON", "SHOPAI_BROKER_STORAGE"):
        monkeypatch.delenv(name, raising=False)

    def run(**env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(_Started):
            cli.cmd_run(argparse.Namespace(), load_settings())
        return seen["argv"], dict(cli.os.environ)

    yield run
    cli.os.environ.clear()
    cli.os.environ.update(saved)


def test_demo_off_starts_on_a_store_of_its_own(launched):
    argv, env = launched(SHOPAI_DEMO="off")
    assert env["SHOPAI_REDIS_URL"] == cli.OWN_SHOP_REDIS_URL != Settings.model_fields["redis_url"].default  # not the demo's database
    assert env["SHOPAI_DATA_DIR"] == str(cli.OWN_SHOP_DATA_DIR)
    assert (cli.OWN_SHOP_DATA_DIR / "secrets" / "gateway-api-keys").exists()  # its own keys, under its own dir
    config = (cli.OWN_SHOP_DATA_DIR / "run" / "supervisord.conf").read_text()
    assert argv[-1] == str((cli.OWN_SHOP_DATA_DIR / "run" / "supervisord.conf").resolve())
    assert "[program:demo]" in config  # the launcher still waits for the gateway and prints where to start


def test_the_broker_keeps_its_log_on_disk_unless_told_otherwise(launched, tmp_path):
    argv, env = launched(SHOPAI_DATA_DIR=str(tmp_path / "d"))
    config = (tmp_path / "d" / "run" / "supervisord.conf").read_text()
    assert env["SHOPAI_BROKER_STORAGE"] == "s3" and "[program:s3]" in config and "[program:broker]" in config
    assert argv[0].endswith("supervisord")
    _, env = launched(SHOPAI_DATA_DIR=str(tmp_path / "m"), SHOPAI_BROKER_STORAGE="memory")
    assert "[program:s3]" not in (tmp_path / "m" / "run" / "supervisord.conf").read_text()


def test_demo_off_keeps_a_store_the_operator_chose(launched, tmp_path):
    _, env = launched(SHOPAI_DEMO="off", SHOPAI_DATA_DIR=str(tmp_path / "mine"), SHOPAI_REDIS_URL="redis://h:1/5")
    assert (env["SHOPAI_DATA_DIR"], env["SHOPAI_REDIS_URL"]) == (str(tmp_path / "mine"), "redis://h:1/5")


def test_the_demo_shop_is_the_default(launched):
    _, env = launched()
    assert "SHOPAI_REDIS_URL" not in env and "SHOPAI_DATA_DIR" not in env


def test_demo_off_does_not_seed(monkeypatch, capsys):
    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("SHOPAI_DEMO", "off")
    monkeypatch.setenv("SHOPAI_GATEWAY_PORT", str(server.server_address[1]))
    monkeypatch.setattr(cli, "cmd_seed", lambda *a: pytest.fail("the demo shop was seeded"))
    try:
        assert cli.cmd_demo(argparse.Namespace(wait=10.0, once=True), load_settings()) == 0
    finally:
        server.shutdown()
    out = capsys.readouterr().out
    assert "ShopAI is up, empty (SHOPAI_DEMO=off)" in out and "shopai import FILE --kind" in out
