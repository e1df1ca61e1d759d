"""An AsyncAPI document as one self-contained HTML page (no scripts, styles or fonts from
anywhere else), and a small local server for it (`dispytch asyncapi --serve`)."""

from __future__ import annotations

import contextlib
import html
import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger("dispytch.asyncapi")

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
h1 { margin-bottom: 0; } h2 { border-bottom: 1px solid #ccc; margin-top: 2.5rem; }
section { margin: 1rem 0 1.5rem; padding: 0.5rem 1rem; border-left: 4px solid #ddd; }
.receive { border-left-color: #2a7; } .send { border-left-color: #27c; }
code, pre { background: #f5f5f5; border-radius: 3px; }
pre { padding: 0.75rem; overflow-x: auto; font-size: 0.85rem; }
.tag { font-size: 0.8rem; text-transform: uppercase; font-weight: bold; margin-right: 0.5rem; }
table { border-collapse: collapse; } td, th { padding: 0.2rem 0.8rem 0.2rem 0; text-align: left; }
"""


def render_html(document: dict[str, Any]) -> str:
    """The page: info, servers, operations (with their messages' payloads and headers)."""
    info = document.get("info", {})
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_text(info.get('title', 'AsyncAPI'))}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{_text(info.get('title', ''))}</h1>",
        f"<p>version {_text(info.get('version', ''))} &middot; AsyncAPI "
        f"{_text(document.get('asyncapi', ''))}</p>",
    ]
    if info.get("description"):
        parts.append(f"<p>{_text(info['description'])}</p>")
    servers = document.get("servers", {})
    if servers:
        parts.append("<h2>Servers</h2><table><tr><th>name</th><th>protocol</th><th>host</th></tr>")
        for name, server in servers.items():
            parts.append(
                f"<tr><td>{_text(name)}</td><td>{_text(server.get('protocol'))}</td>"
                f"<td><code>{_text(server.get('host'))}{_text(server.get('pathname', ''))}"
                "</code></td></tr>"
            )
        parts.append("</table>")
    parts.append("<h2>Operations</h2>")
    for operation_id, operation in document.get("operations", {}).items():
        parts.append(_operation(document, operation_id, operation))
    schemas = document.get("components", {}).get("schemas", {})
    if schemas:
        parts.append("<h2>Schemas</h2>")
        for name, schema in schemas.items():
            parts.append(f'<h3 id="schema-{_text(name)}">{_text(name)}</h3>{_json(schema)}')
    parts.append("</body></html>")
    return "\n".join(parts)


def _operation(document: dict[str, Any], operation_id: str, operation: dict[str, Any]) -> str:
    action = operation.get("action", "")
    channel = _resolve(document, operation.get("channel", {}))
    lines = [
        f'<section class="{_text(action)}">',
        f'<h3><span class="tag">{_text(action)}</span><code>'
        f"{_text(channel.get('address', ''))}</code></h3>",
        f"<p><b>{_text(operation_id)}</b>"
        + (f": {_text(operation['summary'])}" if operation.get("summary") else "")
        + "</p>",
    ]
    parameters = channel.get("parameters", {})
    if parameters:
        lines.append("<p>Parameters: " + ", ".join(
            f"<code>{{{_text(name)}}}</code> {_text(spec.get('description', ''))}"
            for name, spec in parameters.items()
        ) + "</p>")
    for reference in operation.get("messages", []):
        message = _resolve(document, _resolve(document, reference))
        lines.append(
            f"<h4>Message <code>{_text(message.get('name', ''))}</code></h4>"
            + (f"<p>{_text(message['summary'])}</p>" if message.get("summary") else "")
            + "<p>Payload</p>" + _json(message.get("payload", {}))
            + "<p>Headers</p>" + _json(message.get("headers", {}))
        )
    lines.append("</section>")
    return "\n".join(lines)


def _resolve(document: dict[str, Any], node: Any) -> dict[str, Any]:
    """Follow a local `$ref` (`#/a/b/c`) once; other nodes are returned as they are."""
    reference = node.get("$ref") if isinstance(node, dict) else None
    if not isinstance(reference, str) or not reference.startswith("#/"):
        return node if isinstance(node, dict) else {}
    found: Any = document
    for part in reference[2:].split("/"):
        found = found.get(part.replace("~1", "/").replace("~0", "~"), {})
    return found if isinstance(found, dict) else {}


def _text(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _json(value: Any) -> str:
    return f"<pre>{_text(json.dumps(value, indent=2, ensure_ascii=False))}</pre>"


def serve(document: dict[str, Any], host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the page at `/` and the document at `/asyncapi.json` until interrupted."""
    page = render_html(document).encode()
    raw = json.dumps(document, indent=2, ensure_ascii=False).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            routes = {"/": (page, "text/html"), "/asyncapi.json": (raw, "application/json")}
            body, content_type = routes.get(self.path, (b"not found", "text/plain"))
            self.send_response(200 if self.path in routes else 404)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug(format, *args)

    with ThreadingHTTPServer((host, port), Handler) as server:
        bound_host, bound_port = server.server_address[:2]
        print(f"serving the AsyncAPI document at http://{bound_host!s}:{bound_port}/", flush=True)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends it
            server.serve_forever()
