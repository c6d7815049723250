"""Make the secret files docker-compose reads: ``python -m shopai.secrets DIR [--tls]``.

Writes each missing file of ``SECRETS`` into DIR (default ``$SHOPAI_SECRETS_DIR`` or ``./secrets``, which
git ignores) and never overwrites one that exists, so running it again after adding a secret by hand, or
after a rotation, changes nothing else. With ``--tls`` it also makes a private CA and the certificates of
gRPC between the gateway and the services (docs/deploy.md, "Secrets and transport security"). Values are
never printed; the files are readable by their owner and group 10001 only (the containers' group).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.common.settings import SERVICE_NAMES

# The group the images run as (the Dockerfiles' shopai user): compose mounts the files with their owner.
CONTAINER_GID = 10001


def _token() -> str:
    return secrets.token_urlsafe(48)


def _admin_key() -> str:
    return f"{secrets.token_urlsafe(32)}:admin\n"


def _signing_key() -> str:
    from services.vision.core.codes import SigningKey  # cryptography only; imported when a key is made

    return SigningKey.generate().to_text() + "\n"


def _vault_key() -> str:
    return secrets.token_bytes(32).hex()


# file name -> what it holds (empty: an optional secret the operator fills in, or leaves empty).
SECRETS: dict[str, Callable[[], str]] = {
    "redis_password": _token,
    "kafka_sasl_password": str,
    "gateway_api_keys": _admin_key,
    "gateway_shopper_token_secrets": _token,
    "gateway_scanner_secret": _token,
    "vision_signing_key": _signing_key,
    "analytics_secret": _token,
    "vault_master_key": _vault_key,
    "vault_redis_url": str,  # empty: the gateway's SQLite vault; a URL: a shared, persistent Redis
    "alert_webhooks": str,  # empty: no alert webhooks; comma-separated URLs (forecasting's alerts desk)
    "alert_webhook_secret": _token,  # signs the webhook requests; give it to the receivers
}


@dataclass
class Issued:
    cert: Path
    key: Path


class CertificateAuthority:
    """A private CA that signs server and client certificates into PEM files (one day to ten years)."""

    def __init__(self, directory: Path, name: str, days: int = 3650) -> None:
        self.directory = directory
        self.days = days
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (self._builder(self.subject, self.key.public_key())
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .sign(self.key, hashes.SHA256()))
        self.cert_file = directory / f"{name}.crt"
        _write(self.cert_file, cert.public_bytes(serialization.Encoding.PEM))

    def _builder(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        now = datetime.now(UTC)
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(self.subject)
                .public_key(public_key).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=self.days)))

    def issue(self, name: str, client: bool, hosts: tuple[str, ...] = ()) -> Issued:
        """A certificate for ``hosts`` (DNS names or IP addresses) to serve TLS, or, ``client``, to log in."""
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), key.public_key())
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if hosts:
            builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]),
                                            critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        issued = Issued(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        _write(issued.cert, cert.public_bytes(serialization.Encoding.PEM))
        _write(issued.key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
        return issued


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _write(path: Path, data: bytes | str) -> None:
    """Create ``path`` readable by its owner and the containers' group only; an existing file is an error."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
    with contextlib.suppress(PermissionError):  # only root may give a file to a group it is not in
        os.chown(path, -1, CONTAINER_GID)


def make_secrets(directory: Path) -> list[str]:
    """The missing secret files, created; returns their names."""
    directory.mkdir(parents=True, exist_ok=True)
    made = []
    for name, value in SECRETS.items():
        if not (directory / name).exists():
            _write(directory / name, value())
            made.append(name)
    return made


def make_grpc_pki(directory: Path) -> bool:
    """A CA, one server certificate for every service (their compose/Service names, localhost and 127.0.0.1,
    which the health checks dial) and a client certificate for the gateway, the chatbot and the health
    checks. False when the CA exists already (rotate by moving the grpc_* files away first)."""
    if (directory / "grpc_ca.crt").exists():
        return False
    ca = CertificateAuthority(directory, "grpc_ca")
    ca.issue("grpc_server", client=False, hosts=(*SERVICE_NAMES, "localhost", "127.0.0.1"))
    ca.issue("grpc_client", client=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shopai.secrets", description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", nargs="?", type=Path,
                        default=Path(os.environ.get("SHOPAI_SECRETS_DIR", "secrets")))
    parser.add_argument("--tls", action="store_true", help="also a CA and certificates for gRPC over TLS")
    args = parser.parse_args(argv)
    made = make_secrets(args.directory)
    if args.tls and make_grpc_pki(args.directory):
        made.append("grpc_ca.crt, grpc_server.crt/.key, grpc_client.crt/.key")
    print(f"{args.directory}: created {', '.join(made) if made else 'nothing (every file exists)'}")
    if any(path.stat().st_gid != CONTAINER_GID for path in args.directory.iterdir()):
        print(f"the containers (group {CONTAINER_GID}) must read them: sudo chgrp {CONTAINER_GID} {args.directory}/*")
    return 0


if __name__ == "__main__":
    sys.exit(main())
