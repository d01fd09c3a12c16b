"""TLS for every NATS connection: the embedded home's local CA and server certificate,
and the client-side context that verifies the server against a CA.

Keys are ECDSA P-256 (every TLS stack an agency may use, Java and .NET included, accepts
them); private keys are written 0600 and never printed.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker.errors import ConfigError

_CA_DAYS = 3650
_LEAF_DAYS = 825  # the longest validity mainstream TLS clients accept for a leaf
_LOOPBACK = [
    x509.DNSName("localhost"),
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    x509.IPAddress(ipaddress.ip_address("::1")),
]


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the CA to trust, and a certificate with its private key."""

    ca: Path
    cert: Path
    key: Path


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _builder(
    subject: str, issuer: str, public: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
    )


def _ca_certificate(key: ec.EllipticCurvePrivateKey, name: str) -> x509.Certificate:
    usage = x509.KeyUsage(
        digital_signature=False, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    return (
        _builder(name, name, key.public_key(), _CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _leaf_certificate(
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    subject: str,
    server: bool,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    issuer = ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    eku = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
    builder = (
        _builder(subject, str(issuer), key.public_key(), _LEAF_DAYS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([*eku, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        alt = x509.SubjectAlternativeName(names or _LOOPBACK)
        builder = builder.add_extension(alt, critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _write_leaf(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, files: TlsFiles) -> None:
    _write(files.key, _key_pem(key), 0o600)
    _write(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def create_local_ca(directory: Path) -> TlsFiles:
    """A CA (key kept beside it, 0600) and a server certificate for 127.0.0.1/localhost."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _ca_certificate(ca_key, "s284 local CA")
    _write(directory / "ca.key", _key_pem(ca_key), 0o600)
    _write(directory / "ca.pem", ca.public_bytes(serialization.Encoding.PEM), 0o644)
    key = ec.generate_private_key(ec.SECP256R1())
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    _write_leaf(_leaf_certificate(ca_key, ca, key, "s284 loopback server", server=True), key, files)
    return files


def issue_node_certificate(directory: Path, hosts: list[str], out: Path, name: str) -> TlsFiles:
    """A cluster node's certificate from the local CA in `directory`, naming `hosts` (DNS
    names or IP addresses), usable as server and client certificate (it is also the route
    certificate the other nodes verify); written to `out/<name>.pem|.key`."""
    ca_key, ca = _load_ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    files = TlsFiles(directory / "ca.pem", out / f"{name}.pem", out / f"{name}.key")
    names = [_general_name(host) for host in hosts]
    _write_leaf(_leaf_certificate(ca_key, ca, key, name, server=True, names=names), key, files)
    return files


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _load_ca(directory: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    try:
        ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
        ca = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"no local CA in {directory}: {exc.__class__.__name__}") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"the CA key in {directory} is not an EC key")
    return ca_key, ca


def issue_client_certificate(directory: Path, name: str, out: Path) -> TlsFiles:
    """A client certificate whose subject is `CN=<name>`, written to `out`: with mutual TLS,
    nats-server maps it to the NATS user of that name (`verify_and_map`)."""
    ca_key, ca = _load_ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    files = TlsFiles(directory / "ca.pem", out / f"{name}.pem", out / f"{name}.key")
    _write_leaf(_leaf_certificate(ca_key, ca, key, name, server=False), key, files)
    return files


def certificate_name(cert: Path) -> str:
    """The common name a client certificate logs in as (mutual TLS)."""
    try:
        loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the client certificate {cert}: {exc}") from None
    names = loaded.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def client_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """Verify the server against `ca` (hostname included); present `cert` if given."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
        if cert is not None:
            context.load_cert_chain(str(cert), str(key) if key is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS files ({ca}): {exc.__class__.__name__}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
