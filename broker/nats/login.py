"""How one identity logs in to NATS: password or client certificate, over TLS verified
against the CA its credentials name; and what a failed login tells the user."""

from __future__ import annotations

import logging
import ssl

from broker.errors import ConfigError, TransportError
from broker.nats.config import Credentials
from broker.nats.tls import certificate_name, client_context


class _QuietTlsEof(logging.Filter):
    """nats-py's protocol asks to keep a half-closed socket open, which TLS cannot do;
    asyncio says so on every close. Harmless, and noise in every CLI command's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received() has no effect when using ssl" not in record.getMessage()


logging.getLogger("asyncio").addFilter(_QuietTlsEof())


def tls_context(creds: Credentials) -> ssl.SSLContext | None:
    """TLS whenever the identity knows a CA; the embedded home always does."""
    if creds.ca is None:
        return None
    if creds.cert is not None and (name := certificate_name(creds.cert)) != creds.user:
        raise ConfigError(
            f"the client certificate {creds.cert} is {name!r}'s, not {creds.user!r}'s: "
            "with mutual TLS the certificate decides who connects"
        )
    return client_context(creds.ca, creds.cert, creds.key)


def login_options(creds: Credentials) -> dict[str, str]:
    """A client certificate, when the identity has one, is the whole login (verify_and_map:
    the server refuses a user name beside it)."""
    if creds.cert is not None:
        return {}
    return {"user": creds.user, "password": creds.password.get_secret_value()}


def connect_failure(url: str, user: str, cause: Exception) -> TransportError:
    """One line for a first connection that failed: what happened and what to check.
    A reset or a broken pipe after the TCP connection was accepted means the server is up
    but refused us (which of the two the client sees depends on timing)."""
    if isinstance(cause, ssl.SSLError):
        reason = cause.reason or cause.__class__.__name__
        hint = (
            "the server wants this identity's client certificate (mutual TLS)"
            if "CERTIFICATE_REQUIRED" in reason or "UNKNOWN_CA" in reason
            else "check the CA the client trusts (S284_TLS_CA) and that the URL names the "
            "server's host"
        )
        return TransportError(f"TLS to NATS at {url} failed ({reason}); {hint}")
    if isinstance(cause, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        return TransportError(
            f"TLS to NATS at {url} was closed by the server ({cause.__class__.__name__}); "
            "it did not accept this identity: check its client certificate and CA"
        )
    return TransportError(
        f"cannot connect to NATS at {url} as {user!r} ({cause.__class__.__name__}); "
        "is the broker running (`s284 up`)?"
    )
