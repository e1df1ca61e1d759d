"""`dispytch asyncapi`: documents for the seed's example service and for a service that uses
every feature, validated by the official AsyncAPI parser (@asyncapi/parser)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from dispytch.cli._app import cli

from .conftest import Validate

SEED = Path(__file__).parents[1] / "core" / "seed"
FULL = ["tests.asyncapi.full_service:kafka_listener", "tests.asyncapi.full_service:emitter",
        "tests.asyncapi.full_service:payments_listener"]
SERVERS = ["--server", "production=kafka://app:s3cret@kafka.internal:9093",
           "--server", "events=amqp://shop:pa55word@rabbit.internal:5671/shop"]


def generate(*args: str) -> str:
    result = CliRunner().invoke(cli, ["asyncapi", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_seed_example_service(tmp_path: Path, validate: Validate) -> None:
    """The seed's handler group and emitter module, exactly as the seed has them."""
    text = generate("handler_example:user_events", "emitter_example", "--app-dir", str(SEED),
                    "--title", "User service")
    summary = validate(write(tmp_path, "seed.json", text))["summary"]
    assert summary["channels"] == ["user_events"]
    assert sorted(summary["operations"]) == [
        "receive handle_user_registered", "send send_UserRegistered"
    ]
    document = json.loads(text)
    schemas = document["components"]["schemas"]
    assert set(schemas["UserCreatedEvent"]["required"]) == {"user", "timestamp"}
    assert "UserRegistered" in str(schemas), "the emitted event's own schema"
    received = document["components"]["messages"]["user_registered"]
    assert received["payload"]["properties"]["body"] == {
        "$ref": "#/components/schemas/UserCreatedEvent"
    }
    assert received["payload"]["properties"]["type"]["const"] == "user_registered"
    assert set(received["payload"]["required"]) == {"id", "type", "body"}
    assert "content-type" in received["headers"]["properties"]


@pytest.mark.parametrize("extension", ["json", "yaml"])
def test_a_service_using_every_feature(
    tmp_path: Path, validate: Validate, extension: str
) -> None:
    output = tmp_path / f"full.{extension}"
    generate(*FULL, *SERVERS, "--title", "Shop", "--version", "2.1.0", "-o", str(output))
    text = output.read_text()
    summary = validate(output)["summary"]
    document = json.loads(text) if extension == "json" else yaml.safe_load(text)

    for secret in ("s3cret", "pa55word", "app:", "shop:"):
        assert secret not in text
    assert document["servers"]["production"]["host"] == "kafka.internal:9093"
    assert document["servers"]["production"]["bindings"]["kafka"]["bindingVersion"] == "0.5.0"
    assert document["servers"]["events"]["protocol"] == "amqp"
    assert document["servers"]["events"]["pathname"] == "/shop"
    assert sorted(summary["servers"]) == ["events amqp", "production kafka"]

    channels = document["channels"]
    assert sorted(c["address"] for c in channels.values()) == [
        "orders.*", "orders.{region}", "payments"
    ]
    region = next(c for c in channels.values() if c["address"] == "orders.{region}")
    assert "region" in region["parameters"]
    assert region["parameters"]["region"]["location"] == "$message.payload#/body/region"
    assert region["bindings"]["amqp"]["exchange"] == {
        "name": "dispytch", "type": "topic", "durable": True, "autoDelete": False
    }
    payments = next(c for c in channels.values() if c["address"] == "payments")
    assert payments["bindings"]["kafka"]["topic"] == "payments"

    operations = document["operations"]
    assert {name: op["action"] for name, op in operations.items()} == {
        "reserve_stock": "receive", "audit_orders": "receive", "send_invoice": "receive",
        "send_OrderPlaced": "send", "send_PaymentCaptured": "send",
    }
    assert operations["reserve_stock"]["summary"] == (
        "Reserve the ordered items in the region's warehouse."
    )
    assert operations["send_invoice"]["bindings"]["amqp"]["ack"] is True
    assert operations["send_OrderPlaced"]["bindings"]["amqp"]["deliveryMode"] == 2

    messages = document["components"]["messages"]
    keyed = [m for m in messages.values() if "bindings" in m]
    assert [m["name"] for m in keyed] == ["order_placed"]
    assert keyed[0]["bindings"]["kafka"]["key"]["type"] == "string"
    any_event = next(m for m in messages.values() if m["name"] == "any event")
    assert "const" not in any_event["payload"]["properties"]["type"]

    schemas = json.dumps(document["components"]["schemas"])
    assert "prefixItems" not in schemas, "draft 2020-12 tuples are converted for AsyncAPI"
    assert '"discriminator": "kind"' in schemas
    assert "$defs" not in schemas


def test_the_parser_rejects_a_broken_document(
    tmp_path: Path, asyncapi_parser: Callable[[Path], subprocess.CompletedProcess[str]]
) -> None:
    """The validation can fail: an operation on a channel that does not exist is an error."""
    document: dict[str, Any] = json.loads(generate("tests.asyncapi.full_service:emitter"))
    next(iter(document["operations"].values()))["channel"] = {"$ref": "#/channels/missing"}
    result = asyncapi_parser(write(tmp_path, "broken.json", json.dumps(document)))
    assert result.returncode == 1
    assert json.loads(result.stdout)["errors"]


def test_placeholder_servers_for_backends_without_a_server_option(validate: Validate,
                                                                   tmp_path: Path) -> None:
    text = generate("tests.asyncapi.full_service")
    validate(write(tmp_path, "module.json", text))
    servers = json.loads(text)["servers"]
    assert servers["kafka"]["host"] == "{host}"
    assert servers["kafka"]["variables"]["host"]["default"] == "localhost:9092"
    assert servers["rabbitmq"]["protocol"] == "amqp"


def test_a_target_that_is_not_describable_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["asyncapi", "tests.asyncapi.full_service:Region"])
    assert result.exit_code == 2
    assert "cannot describe" in result.output
