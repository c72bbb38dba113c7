"""HTTP plumbing of the Bot API test server: the listener, request bodies, JSON answers.

Requests are `/bot<token>/<method>` with a form-encoded, multipart or JSON body (or a query
string); the answer is Telegram's envelope, `{"ok": …, "result"|"description": …}`. A path
may start with one extra segment, `/<via>/bot<token>/<method>`: the same API, with `via`
recorded, so tests can tell apart clients given different roots (e.g. two replicas).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
from collections.abc import Callable
from email import message_from_bytes
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Answer = tuple[int, dict[str, Any]]
Dispatch = Callable[[str, str, dict[str, Any], str], Answer]  # (token, method, params, via)

_PATH = re.compile(r"(?:/([A-Za-z0-9_-]+))?/bot([^/]*)/([A-Za-z]+)")


class Drop(Exception):
    """Close the connection without an answer."""


def error(status: int, description: str, parameters: dict[str, Any] | None = None) -> Answer:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return status, body


def ok(result: Any, **extra: Any) -> Answer:
    return 200, {"ok": True, "result": result, **extra}


def decode_params(content_type: str, body: bytes, query: str) -> dict[str, Any]:
    params: dict[str, Any] = dict(parse_qsl(query))
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json" and body:
        params.update(json.loads(body))
    elif kind == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    elif kind == "multipart/form-data":
        head = b"Content-Type: " + content_type.encode() + b"\r\n\r\n"
        for part in message_from_bytes(head + body, policy=HTTP).iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                params[name] = payload.decode("utf-8", "replace")
    return params


def json_param(params: dict[str, Any], name: str) -> Any:
    """A nested value: PTB JSON-encodes it inside a form field."""
    value = params.get(name)
    return json.loads(value) if isinstance(value, str) else value


def int_param(params: dict[str, Any], name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    return int(value)


class _Listener(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, port: int, dispatch: Dispatch) -> None:
        self.dispatch = dispatch
        self.connections: set[socket.socket] = set()
        super().__init__(("127.0.0.1", port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that dies mid-request (the SIGKILL tests) is not a server error."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Listener

    def setup(self) -> None:
        super().setup()
        # headers and body are two writes: without this, Nagle + delayed ACK cost 40 ms each
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        match = _PATH.fullmatch(parts.path)
        if match is None:
            self._answer(*error(404, "Not Found"))
            return
        try:
            params = decode_params(self.headers.get("Content-Type", ""), body, parts.query)
            via = match.group(1) or ""
            status, payload = self.server.dispatch(match.group(2), match.group(3), params, via)
        except Drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        except (ValueError, UnicodeDecodeError) as exc:
            status, payload = error(400, f"Bad Request: {exc}")
        self._answer(status, payload)

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True


class HttpFront:
    """Serves `dispatch` on 127.0.0.1 from a background thread."""

    def __init__(self, dispatch: Dispatch, port: int = 0) -> None:
        self._listener = _Listener(port, dispatch)
        self._thread = threading.Thread(
            target=self._listener.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="bot-api",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._listener.server_address[1])

    def close(self) -> None:
        self._listener.shutdown()
        self._listener.server_close()
        for connection in list(self._listener.connections):  # idle keep-alive connections
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)
