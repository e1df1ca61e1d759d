"""Credentials never reach an error message, a log line or a repr: masking, in one place.

Every place that shows a broker URL, connection options or a client's error text passes it
through here first: `masked(text)` hides the password of any URL in the text (`amqp://svc:
******@host`), secret query parameters, and any known secret given to it (the password of
the URL in use, also percent-decoded, for messages that show it without the URL);
`masked_options(options)` hides the values of options that hold secrets
(`sasl_plain_password`, tokens, ...).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

MASK = "******"

#: `scheme://user:password@`: the password runs up to the last `@` of its word, so that an
#: unencoded `@` or `/` in it is masked too (masking too much is harmless)
_URL_PASSWORD = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@'\"]*:)(?P<password>[^\s'\"]*)@"
)
#: `?password=...`, `&token=...` and the like
_SECRET_PARAMETER = re.compile(
    r"(?P<head>[?&;](?:[A-Za-z_\-]*(?:pass|secret|token|credential|api[_-]?key)[A-Za-z_\-]*)=)"
    r"(?P<value>[^&;#\s'\"]*)",
    re.IGNORECASE,
)
#: option names whose values are secrets
_SECRET_OPTION = re.compile(r"pass|secret|token|credential|private", re.IGNORECASE)


def url_secrets(url: str) -> tuple[str, ...]:
    """The secrets written in `url` (its password as written and percent-decoded), for
    `masked(text, secrets)` on messages that may show them without the URL around."""
    found = []
    for match in _URL_PASSWORD.finditer(url):
        password = match.group("password")
        found += [password, unquote(password)]
    for match in _SECRET_PARAMETER.finditer(url):
        value = match.group("value")
        found += [value, unquote(value)]
    return tuple(secret for secret in dict.fromkeys(found) if secret)


def masked(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with the passwords of URLs, secret URL parameters and `secrets` replaced by
    `MASK`."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + "@", text)
    text = _SECRET_PARAMETER.sub(lambda m: m.group("head") + MASK, text)
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text


def masked_url(url: str) -> str:
    """`url` as it may be shown: its password and secret parameters masked."""
    return masked(url, url_secrets(url))


def masked_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Connection options as they may be shown: secret values masked, URLs masked."""
    shown: dict[str, Any] = {}
    for name, value in options.items():
        if value is not None and _SECRET_OPTION.search(str(name)):
            shown[name] = MASK
        elif isinstance(value, str):
            shown[name] = masked_url(value)
        else:
            shown[name] = value
    return shown
