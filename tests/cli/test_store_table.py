"""`dispytch dlq` finds a dead-letter store by the URL's scheme in a table third-party backends
join (the `dispytch.dead_letter_stores` entry point group); Dispytch's own are entries too."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable, Iterator
from importlib import metadata

import pytest
from click.testing import Result

from dispytch.deadletters import (
    ENTRY_POINT_GROUP,
    DeadLetter,
    DeadLetterStore,
    StoreOptions,
    StoreUsageError,
    open_store,
    register_store_opener,
)
from dispytch.reasons import DeadLetterReason


def test_the_builtin_stores_are_entries_of_the_entry_point_group() -> None:
    entries = {entry.name: entry for entry in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert {"kafka", "amqp", "amqps"} <= set(entries)
    from dispytch.kafka.dead_letter_store import open_from_url as kafka_opener
    from dispytch.rabbitmq.dead_letter_store import open_from_url as rabbitmq_opener

    assert entries["kafka"].load() is kafka_opener
    assert entries["amqp"].load() is rabbitmq_opener
    assert entries["amqps"].load() is rabbitmq_opener


def test_an_unknown_scheme_names_the_known_ones() -> None:
    with pytest.raises(StoreUsageError) as refused:
        open_store("nosuchbroker://user:secret@host:1/")
    message = str(refused.value)
    assert "kafka://" in message
    assert "amqp://" in message
    assert "secret" not in message


class ListStore(DeadLetterStore):
    """A store of letters held in a list: what a third-party backend would provide."""

    def __init__(self, url: str, options: StoreOptions) -> None:
        self.source = f"the list at {url}"
        self.options = options
        headers = DeadLetterReason("handler", "E", "broke", "orders").to_headers()
        reason = DeadLetterReason.from_headers(headers)
        self.letters = [DeadLetter(0, "list#0", b"{}", None, headers, reason, None)]
        self.closed = False

    async def read(self, *, include_replayed: bool = False) -> AsyncGenerator[DeadLetter, None]:
        for letter in self.letters:
            yield letter

    async def pending(self) -> int:
        return len(self.letters)

    async def replay(self, letter: DeadLetter) -> None:
        self.letters.remove(letter)

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def opened() -> Iterator[list[ListStore]]:
    stores: list[ListStore] = []

    def opener(url: str, options: StoreOptions) -> ListStore:
        options.refuse("queue", because="--queue is for RabbitMQ")
        stores.append(ListStore(url, options))
        return stores[-1]

    unregister = register_store_opener("listbroker", opener)
    try:
        yield stores
    finally:
        unregister()


def test_a_registered_store_serves_the_cli(
    opened: list[ListStore], dispytch: Callable[..., Result]
) -> None:
    result = dispytch("dlq", "list", "--broker", "listbroker://here", "--topic", "x", "--json")
    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    assert json.loads(line)["location"] == "list#0"
    [store] = opened
    assert store.options.topic == "x"
    assert store.closed

    refused = dispytch("dlq", "list", "--broker", "listbroker://here", "--queue", "q")
    assert refused.exit_code == 2
    assert "--queue is for RabbitMQ" in refused.output


def test_unregistering_restores_the_table(opened: list[ListStore]) -> None:
    def other(url: str, options: StoreOptions) -> ListStore:
        raise AssertionError("not called")

    undo = register_store_opener("listbroker", other)
    undo()
    store = open_store("listbroker://again")
    assert isinstance(store, ListStore)


def _letter(index: int, event_id: str) -> DeadLetter:
    from dispytch.deadletters import Envelope

    headers = DeadLetterReason("handler", "E", "broke", "orders").to_headers()
    envelope = Envelope(event_id, "order_placed", {}, None)
    return DeadLetter(
        index,
        f"list#{index}",
        b"{}",
        None,
        headers,
        DeadLetterReason.from_headers(headers),
        envelope,
    )


def test_show_takes_a_unique_start_of_an_event_id_and_names_the_ambiguous_ones(
    opened: list[ListStore], dispytch: Callable[..., Result]
) -> None:
    def with_letters(url: str, options: StoreOptions) -> ListStore:
        store = ListStore(url, options)
        store.letters = [
            _letter(0, "77ab0000-aaaa"),
            _letter(1, "9f1c0000-bbbb"),
            _letter(2, "9f1d0000-cccc"),
        ]
        return store

    undo = register_store_opener("prefixbroker", with_letters)
    try:
        for reference in ("77ab", "77ab…", "77ab..."):
            shown = dispytch("dlq", "show", reference, "--broker", "prefixbroker://x", "--json")
            assert shown.exit_code == 0, shown.output
            assert json.loads(shown.stdout)["event_id"] == "77ab0000-aaaa"

        ambiguous = dispytch("dlq", "show", "9f1", "--broker", "prefixbroker://x")
        assert ambiguous.exit_code == 1
        assert "9f1c0000-bbbb" in ambiguous.output
        assert "9f1d0000-cccc" in ambiguous.output

        unique = dispytch("dlq", "show", "9f1d", "--broker", "prefixbroker://x", "--json")
        assert json.loads(unique.stdout)["event_id"] == "9f1d0000-cccc"

        by_index = dispytch("dlq", "show", "1", "--broker", "prefixbroker://x", "--json")
        assert json.loads(by_index.stdout)["event_id"] == "9f1c0000-bbbb"

        missing = dispytch("dlq", "show", "0123", "--broker", "prefixbroker://x")
        assert missing.exit_code == 1
        assert "no dead letter" in missing.output
    finally:
        undo()
