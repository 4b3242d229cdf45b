"""A small real HTTP server that answers with the vendors' example answers, route by route.

Each route is a method and a path template (``/clicksend/v3/lists/{list_id}/contacts``); its answer
is a fixed ``Reply`` or a function of the request, for the few places where a test plays an API
around an example (which page, which ids). Every request is recorded, so a test can say what the
product asked. A request no route matches gets a 404 naming it, so a missing example shows up as
the product's own error, never as a silent empty answer.
"""

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    params: dict[str, str]
    """The values of the route template's ``{names}``."""
    headers: dict[str, str]
    """Names in lower case."""
    body: Any


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = None
    """A JSON value, sent as JSON; ``None`` sends no body (a 204)."""
    headers: dict[str, str] = field(default_factory=dict)


Answer = Reply | Callable[[Request], Reply]


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    regex = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{regex}$")


class ExampleServer:
    """Serves on a free loopback port; ``url`` is its base. Use it as a context manager."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Answer]] = []
        self.exchanges: list[tuple[Request, Reply]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                reply = server.answer(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    json.loads(raw) if raw else None,
                )
                payload = b"" if reply.body is None else json.dumps(reply.body, ensure_ascii=False).encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if payload:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def do_PUT(self) -> None:
                self._handle()

            def do_DELETE(self) -> None:
                self._handle()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> "ExampleServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def route(self, method: str, template: str, answer: Answer) -> None:
        """Answer ``method template``; a later route for the same request wins over an earlier one."""
        self.routes.insert(0, (method, _pattern(template), answer))

    def answer(self, method: str, target: str, headers: dict[str, str], body: Any) -> Reply:
        url = urlsplit(target)
        for route_method, pattern, answer in self.routes:
            match = pattern.match(url.path)
            if route_method == method and match:
                request = Request(
                    method, url.path, dict(parse_qsl(url.query)), match.groupdict(), headers, body
                )
                reply = answer(request) if callable(answer) else answer
                break
        else:
            request = Request(method, url.path, dict(parse_qsl(url.query)), {}, headers, body)
            reply = Reply(404, {"error": f"no example is served for {method} {url.path}"})
        self.exchanges.append((request, reply))
        return reply

    @property
    def seen(self) -> list[Request]:
        return [request for request, _ in self.exchanges]

    def replies(self, method: str, path: str) -> list[tuple[Request, Reply]]:
        """The requests made to exactly ``path`` (not a template) with ``method``, and their answers."""
        return [(q, a) for q, a in self.exchanges if q.method == method and q.path == path]

    def requests(self, method: str, path: str) -> list[Request]:
        return [q for q, _ in self.replies(method, path)]
