"""The README's service runs as written on the in-memory broker and on every real broker it names.

The README says that on a real broker only the lines making the consumer and the producer
change. Each case takes the README's complete example, puts the backend's block (the README's
`# fragment: <Backend>` block) in place of the three in-memory lines, and runs the result as a
script. Only names are changed: the topic (and NATS's stream) get a fresh suffix, so that runs do
not read each other's events, and the address is this run's when DISPYTCH_* variables say so.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.docs.test_doc_examples import python_blocks

from .brokers import require

README = Path(__file__).resolve().parents[2] / "README.md"
IN_MEMORY_LINES = re.compile(
    r"^broker = InMemoryBroker\(\).*\n^listener = .*\n^emitter = .*\n", re.MULTILINE
)
BACKEND_BLOCK_TITLES = {
    "kafka": "# fragment: Kafka",
    "rabbitmq": "# fragment: RabbitMQ",
    "redis": "# fragment: Redis Streams",
    "nats": "# fragment: NATS JetStream",
}
QUOTED_ADDRESS = re.compile(r'"(?:127\.0\.0\.1:9092|(?:amqp|redis|nats)://[^"]*)"')
EXPECTED_LINE = "welcome, ada@example.com"


def readme_blocks() -> list[str]:
    return [source for _, source in python_blocks(README)]


def complete_example() -> str:
    examples = [source for source in readme_blocks() if "InMemoryBroker()" in source]
    assert len(examples) == 1, "the README should hold one complete in-memory example"
    assert not examples[0].lstrip().startswith("# fragment")
    return examples[0]


def backend_block(backend: str) -> str:
    title = BACKEND_BLOCK_TITLES[backend]
    blocks = [source for source in readme_blocks() if source.startswith(title)]
    assert len(blocks) == 1, f"the README should hold one block starting with {title!r}"
    return blocks[0]


def run(source: str, tmp_path: Path) -> str:
    script = tmp_path / "service.py"
    script.write_text(source, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=90
    )
    assert result.returncode == 0, f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    return result.stdout


def test_the_readme_example_runs_as_written_in_memory(tmp_path: Path) -> None:
    assert EXPECTED_LINE in run(complete_example(), tmp_path).splitlines()


@pytest.mark.parametrize("backend", sorted(BACKEND_BLOCK_TITLES))
def test_the_readme_example_runs_on_each_broker_it_names(backend: str, tmp_path: Path) -> None:
    broker = require(backend)
    example, replaced = IN_MEMORY_LINES.subn(backend_block(backend), complete_example())
    assert replaced == 1, "the in-memory broker, listener and emitter lines moved"
    suffix = uuid.uuid4().hex[:10]
    example = example.replace('"user_events"', f'"user_events_{suffix}"')
    example = example.replace('"USERS"', f'"USERS_{suffix}"')
    if broker.variable_is_set():
        example = QUOTED_ADDRESS.sub(f'"{broker.address}"', example)

    assert EXPECTED_LINE in run(example, tmp_path).splitlines()
