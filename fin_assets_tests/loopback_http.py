"""A real HTTP server on a free loopback port for tests that play the far side of an HTTP
call (recorded API bodies, hostile servers, a webhook receiver)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    """A handler that keeps the test output free of access-log lines."""

    def log_message(self, format: str, *args) -> None:
        pass


class LoopbackHTTPServer(ThreadingHTTPServer):
    """Serves from a thread inside `with`; `url` is the origin plus `path`."""

    daemon_threads = True
    path = "/query"

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{self.origin}{self.path}"

    def __enter__(self):
        # A short poll so that leaving the block does not wait half a second per server.
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
