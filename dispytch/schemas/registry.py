"""An async client of the Confluent-compatible schema registry REST API, with its caches.

Schemas are cached by id and ids by (subject, schema): once an event class's schema id and the
ids seen on receive are known, nothing here does I/O. Concurrent first uses of one id or one
subject share one request. Every request is bounded in time (`timeout`) and in size
(`max_response_bytes`); what the registry answers is checked before it is used.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from dispytch.credentials import MASK, masked
from dispytch.schemas.errors import (
    SchemaIncompatibleError,
    SchemaNotRegisteredError,
    SchemaRegistryError,
    SchemaRegistryUnavailableError,
    SchemaRejectedError,
    UnknownSchemaIdError,
)

SubjectNaming = Literal["topic", "record", "topic_record"]
SchemaType = Literal["AVRO", "JSON", "PROTOBUF"]
Compatibility = Literal[
    "NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL",
    "FULL_TRANSITIVE",
]  # fmt: skip
_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_SCHEMA_TYPES = ("AVRO", "JSON", "PROTOBUF")
T = TypeVar("T")


@dataclass(frozen=True)
class RegisteredSchema:
    """A schema as the registry holds it."""

    id: int
    schema_type: SchemaType
    text: str


class SchemaRegistry:
    """A Confluent-compatible schema registry (Confluent Schema Registry, Apicurio's
    `/apis/ccompat/v7`, Karapace, ...).

    - `url`: the API's base URL; a `user:password@` in it is taken out and used as `auth`.
    - `auth`: (user, password) for HTTP basic auth. Never shown in errors, logs or repr.
    - `subject_naming`: the subject an event's schema is registered under: `"topic"`
      (`<topic>-value`, Confluent's default), `"record"` (the record's full name) or
      `"topic_record"` (`<topic>-<record full name>`).
    - `auto_register`: register an event's schema on its first emit (the registry checks its
      compatibility). Off by default: then the schema must have been registered (by a deploy
      step, `register()`), and emit only looks its id up.
    - `timeout`: seconds for each request; `max_response_bytes` bounds what is read.
    """

    def __init__(
        self,
        url: str,
        *,
        auth: tuple[str, str] | None = None,
        subject_naming: SubjectNaming = "topic",
        auto_register: bool = False,
        timeout: float = 5.0,
        max_response_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        if subject_naming not in ("topic", "record", "topic_record"):
            raise ValueError(
                f"subject_naming must be topic, record or topic_record: {subject_naming!r}"
            )
        self.url, url_auth = _split_credentials(url)
        self._auth = auth or url_auth
        self._secrets = tuple(s for s in (self._auth or ()) if s)
        self.subject_naming: SubjectNaming = subject_naming
        self.auto_register = auto_register
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self._by_id: dict[int, RegisteredSchema] = {}
        self._ids: dict[tuple[str, str, str], int] = {}
        self._pending: dict[Any, asyncio.Future[Any]] = {}
        #: requests made (for tests and the benchmark: the steady state makes none)
        self.requests = 0

    def __repr__(self) -> str:
        auth = "" if self._auth is None else f", auth=({self._auth[0]!r}, {MASK!r})"
        return f"SchemaRegistry({self.url!r}{auth}, subject_naming={self.subject_naming!r})"

    def subject_for(self, topic: str, record_name: str) -> str:
        if self.subject_naming == "topic":
            return f"{topic}-value"
        if self.subject_naming == "record":
            return record_name
        return f"{topic}-{record_name}"

    # ------------------------------------------------------------------ cached look-ups

    def cached_schema(self, schema_id: int) -> RegisteredSchema | None:
        return self._by_id.get(schema_id)

    def cached_id(self, subject: str, schema_type: SchemaType, text: str) -> int | None:
        return self._ids.get((subject, schema_type, text))

    async def schema(self, schema_id: int) -> RegisteredSchema:
        """The schema with this id (`UnknownSchemaIdError` when the registry has none)."""
        found = self._by_id.get(schema_id)
        if found is not None:
            return found
        return await self._once(("id", schema_id), lambda: self._fetch_schema(schema_id))

    async def id_for(self, subject: str, schema_type: SchemaType, text: str) -> int:
        """The id of `text` under `subject`: registered first when `auto_register` is on."""
        key = (subject, schema_type, text)
        found = self._ids.get(key)
        if found is not None:
            return found
        if self.auto_register:
            return await self._once(("register", *key), lambda: self.register(*key))
        return await self._once(("lookup", *key), lambda: self._look_up(*key))

    # ------------------------------------------------------------------ requests

    async def register(self, subject: str, schema_type: SchemaType, text: str) -> int:
        """Register `text` under `subject` (the registry checks compatibility); its id."""
        answer = await self._request(
            "POST", f"/subjects/{_path(subject)}/versions", _schema_body(schema_type, text)
        )
        schema_id = _int_field(answer, "id")
        self._ids[(subject, schema_type, text)] = schema_id
        self._by_id.setdefault(schema_id, RegisteredSchema(schema_id, schema_type, text))
        return schema_id

    async def set_compatibility(self, subject: str, level: Compatibility) -> None:
        """Set a subject's compatibility level (`PUT /config/<subject>`)."""
        await self._request("PUT", f"/config/{_path(subject)}", {"compatibility": level})

    async def subjects(self) -> list[str]:
        answer = await self._request("GET", "/subjects", None)
        if not isinstance(answer, list) or not all(isinstance(s, str) for s in answer):
            raise SchemaRegistryError("the registry's subject list is not a list of strings")
        return answer

    async def _look_up(self, subject: str, schema_type: SchemaType, text: str) -> int:
        try:
            answer = await self._request(
                "POST", f"/subjects/{_path(subject)}", _schema_body(schema_type, text)
            )
        except _NotFound:
            raise SchemaNotRegisteredError(
                f"the schema is not registered under subject {subject!r} and auto_register is "
                "off: register it first (SchemaRegistry.register, or your deploy step)"
            ) from None
        schema_id = _int_field(answer, "id")
        self._ids[(subject, schema_type, text)] = schema_id
        return schema_id

    async def _fetch_schema(self, schema_id: int) -> RegisteredSchema:
        try:
            answer = await self._request("GET", f"/schemas/ids/{schema_id}", None)
        except _NotFound:
            raise UnknownSchemaIdError(f"the registry has no schema with id {schema_id}") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
            raise SchemaRegistryError(
                f"the registry's answer for schema id {schema_id} has no schema"
            )
        schema_type = answer.get("schemaType") or "AVRO"
        if schema_type not in _SCHEMA_TYPES:
            raise SchemaRegistryError(
                f"schema id {schema_id} has an unknown type {schema_type!r:.40}"
            )
        found = RegisteredSchema(schema_id, schema_type, answer["schema"])  # type: ignore[arg-type]
        self._by_id[schema_id] = found
        return found

    async def _once(self, key: Any, make: Callable[[], Awaitable[T]]) -> T:
        """One request per key at a time: concurrent callers share its result."""
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(make())
            self._pending[key] = pending
            pending.add_done_callback(lambda done: _settle(self._pending, key, done))
        result: T = await asyncio.shield(pending)
        return result

    async def _request(self, method: str, path: str, body: Any) -> Any:
        try:
            return await asyncio.wait_for(self._send(method, path, body), self.timeout)
        except asyncio.TimeoutError:
            raise SchemaRegistryUnavailableError(
                f"the schema registry at {self.url} did not answer {method} {path} "
                f"within {self.timeout} s"
            ) from None

    async def _send(self, method: str, path: str, body: Any) -> Any:
        import httpx

        self.requests += 1
        content = None if body is None else json.dumps(body).encode()
        headers = {"Accept": _CONTENT_TYPE, "Content-Type": _CONTENT_TYPE}
        try:
            async with (
                httpx.AsyncClient(
                    auth=self._auth, timeout=self.timeout, follow_redirects=False
                ) as client,
                client.stream(
                    method, self.url + path, content=content, headers=headers
                ) as response,
            ):
                data = await self._read(response.aiter_bytes())
                status = response.status_code
        except httpx.HTTPError as error:
            detail = masked(f"{type(error).__name__}: {error}", self._secrets)
            raise SchemaRegistryUnavailableError(
                f"the schema registry at {self.url} cannot be reached ({detail})"
            ) from None
        return self._answer(method, path, status, data)

    async def _read(self, chunks: Any) -> bytes:
        data = bytearray()
        async for chunk in chunks:
            data += chunk
            if len(data) > self.max_response_bytes:
                raise SchemaRegistryError(
                    f"the schema registry's answer is larger than {self.max_response_bytes} bytes"
                )
        return bytes(data)

    def _answer(self, method: str, path: str, status: int, data: bytes) -> Any:
        try:
            answer = json.loads(data) if data else None
        except ValueError:
            answer = None
        if 200 <= status < 300:
            if answer is None and data:
                raise SchemaRegistryError(f"{method} {path}: the registry's answer is not JSON")
            return answer
        message = answer.get("message") if isinstance(answer, dict) else None
        said = masked(str(message)[:300], self._secrets) if message else f"HTTP {status}"
        where = f"schema registry at {self.url}, {method} {path}"
        if status == 404:
            raise _NotFound(said)
        if status == 409:
            raise SchemaIncompatibleError(f"incompatible schema ({where}): {said}")
        if status == 422:
            raise SchemaRejectedError(f"invalid schema ({where}): {said}")
        if status in (401, 403):
            raise SchemaRegistryError(
                f"the registry refused the credentials ({where}): HTTP {status}"
            )
        if status >= 500:
            raise SchemaRegistryUnavailableError(f"{where}: HTTP {status}: {said}")
        raise SchemaRegistryError(f"{where}: HTTP {status}: {said}")


class _NotFound(SchemaRegistryError):
    pass


def _settle(pending: dict[Any, asyncio.Future[Any]], key: Any, done: asyncio.Future[Any]) -> None:
    """Forget a finished request; its error is retrieved here too, as every caller that
    awaited it may have been cancelled (nothing then logs "exception never retrieved")."""
    pending.pop(key, None)
    if not done.cancelled():
        done.exception()


def _schema_body(schema_type: SchemaType, text: str) -> dict[str, str]:
    body = {"schema": text}
    if schema_type != "AVRO":
        body["schemaType"] = schema_type
    return body


def _int_field(answer: Any, name: str) -> int:
    value = answer.get(name) if isinstance(answer, dict) else None
    if type(value) is not int or not 0 <= value < 2**31:
        raise SchemaRegistryError(f"the registry's answer has no valid {name!r}")
    return value


def _path(segment: str) -> str:
    return quote(segment, safe="")


def _split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """The URL without `user:password@`, and those credentials."""
    parts = urlsplit(url.rstrip("/"))
    if parts.username is None:
        return url.rstrip("/"), None
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host

    auth = (unquote(parts.username), unquote(parts.password or ""))
    return urlunsplit(parts._replace(netloc=netloc)), auth
