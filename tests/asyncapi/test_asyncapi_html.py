"""`dispytch asyncapi --serve` and `--format html`: one page that loads nothing from elsewhere."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from dispytch.asyncapi import build_asyncapi
from dispytch.asyncapi.html import render_html
from tests.asyncapi import full_service

REPO = Path(__file__).parents[2]


def test_the_page_shows_every_operation_and_loads_nothing_from_elsewhere() -> None:
    page = render_html(build_asyncapi(full_service, title="Shop"))
    for text in ("orders.{region}", "orders.*", "payments", "reserve_stock", "send_OrderPlaced",
                 "Reserve the ordered items in the region&#x27;s warehouse."):
        assert text in page
    assert not re.search(r"<script|<link|<img|src=|@import|url\(", page)


def test_text_from_the_service_is_escaped() -> None:
    document = build_asyncapi(full_service)
    document["info"]["title"] = "<script>alert(1)</script>"
    next(iter(document["operations"].values()))["summary"] = "<b>bold</b>"
    page = render_html(document)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page


def test_serve_answers_with_the_page_and_the_document() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "dispytch.cli", "asyncapi", "tests.asyncapi.full_service",
         "--serve", "--port", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the server prints its address once it listens
        match = re.search(r"http://[\d.]+:\d+/", line)
        assert match, f"no address in {line!r} (pytest's timeout bounds the read)"
        url = match.group(0)
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "reserve_stock" in page.text
        document = httpx.get(url + "asyncapi.json", timeout=10).json()
        assert document["asyncapi"] == "3.0.0"
        assert httpx.get(url + "elsewhere", timeout=10).status_code == 404
        process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.returncode == 0
    finally:
        process.kill()
        process.wait(10)
    assert json.dumps(document)
