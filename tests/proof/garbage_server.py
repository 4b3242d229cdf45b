"""A loopback server that plays Linkflow's token endpoint properly and answers every other path with
one fixed bad answer: what a broken API, a proxy's error page or a cut connection looks like."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class BadAnswer:
    status: int
    content_type: str
    body: bytes


TOKEN_BODY = b'{"expiration": "2099-01-01 00:00:00", "token": "garbage-server-token"}'


def _handler(answer: BadAnswer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/token"):
                self._send(200, "application/json", TOKEN_BODY)
            else:
                self._send(answer.status, answer.content_type, answer.body)

        def do_POST(self) -> None:
            self.do_GET()

        def do_PUT(self) -> None:
            self.do_GET()

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: pytest treats stray stderr as noise."""

    return Handler


@contextmanager
def garbage_server(answer: BadAnswer) -> Iterator[str]:
    """Serve ``answer`` on a free loopback port for the block; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(answer))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
