"""Loopback servers that answer badly: what a broken API, a proxy's error page or a cut connection
looks like.

``garbage_server`` plays Linkflow's token endpoint properly and answers every other path with one
fixed bad answer. ``corrupting_proxy`` sits in front of the emulator's Maton gateway, passes every
request through, and answers the paths under chosen prefixes (one Maton app each) badly instead, so
one app misbehaves while the others, behind the same gateway URL, keep working.
"""

import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import httpx

from tests.loopback import serving

ECHO = b"{authorization}"
"""Replaced in a bad answer's body by the request's ``Authorization`` header, the way a debugging
gateway or proxy echoes what it was sent: the client must keep that secret out of its error line."""


@dataclass(frozen=True)
class BadAnswer:
    status: int
    content_type: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


TOKEN_BODY = b'{"expiration": "2099-01-01 00:00:00", "token": "garbage-server-token"}'


def _handler(answer: BadAnswer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/token"):
                self._send(200, "application/json", TOKEN_BODY)
            else:
                self._send(answer.status, answer.content_type, answer.body, answer.headers)

        def do_POST(self) -> None:
            self.do_GET()

        def do_PUT(self) -> None:
            self.do_GET()

        def _send(
            self, status: int, content_type: str, body: bytes, headers: Mapping[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: pytest treats stray stderr as noise."""

    return Handler


@contextmanager
def garbage_server(answer: BadAnswer) -> Iterator[str]:
    """Serve ``answer`` on a free loopback port for the block; yields the base URL."""
    with serving(_handler(answer)) as url:
        yield url


_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}
)


@dataclass
class ProxyLog:
    """Bad answers served per prefix: proof the corrupted app was asked at all."""

    served: Counter[str] = field(default_factory=Counter)


def _proxy_handler(
    upstream: httpx.Client, answers: Mapping[str, BadAnswer], log: ProxyLog
) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            for prefix, answer in answers.items():
                if self.path.startswith(prefix):
                    with lock:
                        log.served[prefix] += 1
                    echoed = answer.body.replace(ECHO, self.headers.get("Authorization", "").encode())
                    self._send(answer.status, {"Content-Type": answer.content_type, **answer.headers}, echoed)
                    return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            reply = upstream.request(self.command, self.path, headers=headers, content=body or None)
            passed = {k: v for k, v in reply.headers.items() if k.lower() not in _HOP_BY_HOP}
            self._send(reply.status_code, passed, reply.content)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle  # noqa: N815

        def _send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: pytest treats stray stderr as noise."""

    return Handler


@contextmanager
def corrupting_proxy(upstream_url: str, answers: Mapping[str, BadAnswer]) -> Iterator[tuple[str, ProxyLog]]:
    """A pass-through proxy to ``upstream_url`` that answers paths under each prefix of ``answers``
    with that bad answer; yields its base URL and the log of bad answers served."""
    log = ProxyLog()
    with (
        httpx.Client(base_url=upstream_url, timeout=30) as upstream,
        serving(_proxy_handler(upstream, answers, log)) as url,
    ):
        yield url, log
