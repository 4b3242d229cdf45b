"""A pass-through proxy that loses answers: the API gets the request and acts on it, the client never
hears back. That is a connection dropped after the request went out, made deterministic.

The emulator's own ``drop_rate`` fault closes the connection before the API sees the request, so
nothing is applied; a lost answer to an applied write needs the API to act first, hence this proxy
in front of the emulator's gateway.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import httpx

from tests.loopback import serving

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}
)


@dataclass
class Loss:
    """Lose the answers to the first ``times`` requests of ``method`` on ``path`` (no query)."""

    method: str
    path: str
    times: int = 1
    meanwhile: Callable[[], None] | None = None
    """Runs after the API answered and before the answer is dropped: what happens before the retry."""
    lost: int = field(default=0, init=False)


def _handler(upstream: httpx.Client, loss: Loss) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            reply = upstream.request(self.command, self.path, headers=headers, content=body or None)
            with lock:
                lose = (
                    self.command == loss.method
                    and self.path.split("?")[0] == loss.path
                    and loss.lost < loss.times
                )
                if lose:
                    loss.lost += 1
            if lose:
                if loss.meanwhile is not None:
                    loss.meanwhile()
                self.close_connection = True
                return
            self.send_response(reply.status_code)
            for name, value in reply.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.content)))
            self.end_headers()
            self.wfile.write(reply.content)

        do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: pytest treats stray stderr as noise."""

    return Handler


@contextmanager
def lossy_proxy(upstream_url: str, loss: Loss) -> Iterator[str]:
    """A proxy to ``upstream_url`` that loses the answers ``loss`` names; yields its base URL."""
    with (
        httpx.Client(base_url=upstream_url, timeout=30) as upstream,
        serving(_handler(upstream, loss)) as url,
    ):
        yield url
