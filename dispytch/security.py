"""Secure connections: failures named by their cause, and a loud warning when TLS is weakened.

Backends pass what their client raised on connecting to `tls_error`; when a TLS handshake
failed somewhere in it (it is often chained inside a generic "cannot connect"), they raise the
`BrokerTLSError` it returns, which says why: certificate not trusted, hostname mismatch, ...
Refused logins become `BrokerAuthenticationError` (`authentication_error`).

The messages are built from the cause alone (the ssl module's verification message, the
broker's refusal, the broker's address and the user name), never from connection settings or
URLs, so they hold no password.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator

from dispytch.errors import BrokerAuthenticationError, BrokerTLSError

logger = logging.getLogger("dispytch.security")

# OpenSSL's X509_V_ERR_* codes, as `ssl.SSLCertVerificationError.verify_code` carries them
_HOSTNAME_MISMATCH = frozenset({62, 63, 64})  # host name, e-mail, IP address mismatch
_NOT_TRUSTED = frozenset({2, 18, 19, 20, 21, 27, 28})  # no issuer, self-signed, untrusted
_EXPIRED = frozenset({9, 10})  # not yet valid, has expired
#: TLS alerts a broker sends when it does not accept the client's certificate
_CLIENT_CERTIFICATE_ALERTS = ("UNKNOWN_CA", "CERTIFICATE_REQUIRED", "BAD_CERT")

_HINTS = {
    "certificate not trusted": "give the client the CA certificate that signed the broker's "
    "certificate (a CA file)",
    "hostname mismatch": "connect with a host name or address the certificate lists "
    "(its subjectAltName), or have a certificate issued for this one",
    "certificate expired": "the broker needs a certificate that is valid now",
    "client certificate refused": "the broker did not accept the client's certificate: "
    "give one signed by a CA the broker trusts, or none if it asks for none",
}


def causes(error: BaseException) -> Iterator[BaseException]:
    """`error` and every exception chained to it (`__cause__`, `__context__`, and exceptions
    among its `args`, where some clients keep the original), each once."""
    pending = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for linked in (current.__cause__, current.__context__, *current.args):
            if isinstance(linked, BaseException):
                pending.append(linked)


def tls_error(error: BaseException, broker: str) -> BrokerTLSError | None:
    """The `BrokerTLSError` naming why the TLS handshake with `broker` ("Kafka at host:port")
    failed, when `error` is (or chains) such a failure; None otherwise."""
    for cause in causes(error):
        if isinstance(cause, ssl.SSLCertVerificationError):
            code = cause.verify_code
            detail = str(cause.verify_message or cause.reason or "certificate verify failed")
            if code in _HOSTNAME_MISMATCH:
                reason = "hostname mismatch"
            elif code in _NOT_TRUSTED:
                reason = "certificate not trusted"
            elif code in _EXPIRED:
                reason = "certificate expired"
            else:
                reason = "TLS handshake failed"
            return _tls(broker, reason, detail)
        if isinstance(cause, ssl.SSLError):
            code_name = str(cause.reason or "")
            if any(alert in code_name for alert in _CLIENT_CERTIFICATE_ALERTS):
                return _tls(broker, "client certificate refused", code_name)
            if "WRONG_VERSION_NUMBER" in code_name or "RECORD_LAYER" in code_name:
                return _tls(broker, "TLS handshake failed", f"{code_name}: is this a TLS port?")
            return _tls(broker, "TLS handshake failed", code_name or type(cause).__name__)
    return None


def authentication_error(broker: str, user: str | None, detail: str) -> BrokerAuthenticationError:
    """`broker` refused the login of `user`; `detail` is the broker's own words."""
    who = f" of user {user!r}" if user else ""
    return BrokerAuthenticationError(
        f"authentication failed: {broker} refused the login{who} ({detail}); "
        "check the user name and the password"
    )


def warn_if_unverified(context: ssl.SSLContext | None, what: str) -> bool:
    """Log a warning when `context` does not verify the broker's certificate or host name.
    Called every time a connection of `what` starts, so it cannot go unnoticed. Returns
    whether it warned."""
    if context is None:
        return False
    weakened = []
    if context.verify_mode == ssl.CERT_NONE:
        weakened.append("does not verify the broker's certificate")
    if not context.check_hostname:
        weakened.append("does not check the broker's host name")
    if not weakened:
        return False
    warn_unverified(what, " and ".join(weakened))
    return True


def warn_unverified(what: str, how: str) -> None:
    logger.warning(
        "INSECURE: the TLS connection of %s %s: anyone on the network path can pose as the "
        "broker, read and change the messages and take the credentials. Give it the CA file "
        "instead (docs/security.md).",
        what,
        how,
    )


def _tls(broker: str, reason: str, detail: str) -> BrokerTLSError:
    hint = _HINTS.get(reason)
    message = f"{reason}: the TLS connection to {broker} failed ({detail})"
    return BrokerTLSError(f"{message}; {hint}" if hint else message, reason=reason)
