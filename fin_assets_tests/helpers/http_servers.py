"""The local HTTP servers the tests play the far side of an HTTP call with, in one place.

- `LoopbackHTTPServer`: a real server on a free 127.0.0.1 port, serving from a thread inside
  `with`, quiet (`QuietHandler`); recorded API bodies and the webhook receiver build on it.
- `LocalHTTPServer`: answers each GET with a `respond(handler)` callable (Alpha Vantage's side:
  redirects, slow bodies, 429s, recorded bodies) and records the paths it was asked for.
- `HostileServer` and its behaviours (outbound-HTTP policy tests): a server that dribbles its
  answer, one that sends 300 MB, a gzip bomb, a login page that echoes secrets, a redirect to
  another origin, and raw answers (any bytes, any header) for shapes a client must survive.

The fake Elasticsearch/Kibana that runs as a process (docker/setup/setup.sh's tests) is
`fin_assets_tests.helpers.elastic_recording_server`.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
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


# --- a server answering with a callable (the Alpha Vantage client's far side) -------------

Respond = Callable[["LocalHandler"], None]


class LocalHandler(QuietHandler):
    server: LocalHTTPServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.paths.append(self.path)
            self.server.arrivals.append(time.monotonic())
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
            self.server.respond(self)

    def send_body(self, status: int, body: bytes, content_type="application/json", **headers):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)


class LocalHTTPServer(LoopbackHTTPServer):
    """`respond(handler)` answers each GET; `stopping` is set when the block is left."""

    def __init__(self, respond: Respond) -> None:
        super().__init__(LocalHandler)
        self.respond = respond
        self.paths: list[str] = []
        self.arrivals: list[float] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        super().__exit__(*exc)


# --- hostile servers (the outbound-HTTP policy) ----------------------------------------------

Behaviour = Callable[["HostileHandler"], None]
ES_PRODUCT = "X-Elastic-Product: Elasticsearch\r\n"


@dataclass(frozen=True)
class Arrival:
    method: str
    path: str
    authorization: bool  # whether credentials came with it (never recorded themselves)
    body: bytes


class HostileHandler(QuietHandler):
    server: HostileServer
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        arrival = Arrival(self.command, self.path, "Authorization" in self.headers, body)
        with self.server.lock:
            self.server.arrivals.append(arrival)
        # The client giving up is what these servers are for.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
            self.server.behaviour(self)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _serve

    def raw(self, data: bytes) -> None:
        """Bytes straight onto the socket: status line, headers and body as given."""
        self.wfile.write(data)
        self.wfile.flush()
        with self.server.lock:
            self.server.bytes_sent += len(data)


class HostileServer(LoopbackHTTPServer):
    """`behaviour(handler)` answers every request; `stopping` is set when the block is left."""

    path = ""

    def __init__(self, behaviour: Behaviour) -> None:
        super().__init__(HostileHandler)
        self.behaviour = behaviour
        self.arrivals: list[Arrival] = []
        self.bytes_sent = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        super().__exit__(*exc)


def head(status: str, content_type: str, length: int | None, extra: str = "") -> bytes:
    text = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n{ES_PRODUCT}{extra}"
    if length is not None:
        text += f"Content-Length: {length}\r\n"
    return (text + "Connection: close\r\n\r\n").encode("latin-1")


def answer(status: str, body: bytes, content_type: str = "application/json", extra: str = ""):
    """A behaviour sending one complete answer."""

    def send(handler: HostileHandler) -> None:
        data = b"" if handler.command == "HEAD" else body
        handler.raw(head(status, content_type, len(body), extra) + data)

    return send


def dribble(interval_s: float, in_headers: bool = False) -> Behaviour:
    """One byte every `interval_s`: in the body (headers complete), or inside the headers."""

    def send(handler: HostileHandler) -> None:
        if in_headers:
            handler.raw(b"HTTP/1.1 200 OK\r\nX-Padding: ")
        else:
            handler.raw(head("200 OK", "application/json", 100_000) + b"{")
        while not handler.server.stopping.wait(interval_s):
            handler.raw(b"a" if in_headers else b" ")

    return send


def huge(total_bytes: int) -> Behaviour:
    """An answer of `total_bytes` (JSON-looking), written in 1 MiB blocks until the client
    hangs up; `server.bytes_sent` tells how much it took."""
    block = b" " * (1024 * 1024)

    def send(handler: HostileHandler) -> None:
        opening = b'{"count": 1, "pad": "'
        handler.raw(head("200 OK", "application/json", total_bytes) + opening)
        left = total_bytes - len(opening)
        while left > 0 and not handler.server.stopping.is_set():
            part = block[: min(left, len(block))]
            handler.raw(part)
            left -= len(part)

    return send


@functools.cache
def _gzip_of_spaces(decompressed_bytes: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
    block = b" " * (1024 * 1024)
    parts = [packer.compress(block) for _ in range(decompressed_bytes // len(block))]
    return b"".join(parts) + packer.flush()


def gzip_bomb(decompressed_bytes: int) -> Behaviour:
    """A small gzip answer that unpacks to `decompressed_bytes` of JSON-looking text."""
    return answer("200 OK", _gzip_of_spaces(decompressed_bytes), extra="Content-Encoding: gzip\r\n")


# Where a text is commonly cut (80, 200, 240...): each echo straddles one of them.
CUT_POINTS = (80, 120, 160, 200, 240, 300, 500, 1000, 4000)


def login_page(secrets: list[str], status: str = "200 OK") -> Behaviour:
    """An SSO/login page echoing the request URL with each secret in it
    (`...%3Fapikey%3D<KEY>...`), placed so that every common cut point falls inside one."""

    def send(handler: HostileHandler) -> None:
        page = "<html><body><form action='/login'>"
        prefix = "%3Fapikey%3D"
        for cut in CUT_POINTS:
            for secret in secrets:
                start = cut - len(secret) // 2 - len(prefix)  # the secret straddles `cut`
                if start >= len(page):
                    page += "." * (start - len(page)) + f"{prefix}{secret}<br>"
        body = (page + "</form></body></html>").encode()
        handler.raw(head(status, "text/html; charset=utf-8", len(body)) + body)

    return send


def redirect_to(target: str, status: str = "307 Temporary Redirect") -> Behaviour:
    def send(handler: HostileHandler) -> None:
        extra = f"Location: {target}{handler.path}\r\n"
        handler.raw(head(status, "text/plain", 0, extra))

    return send


def fragments(secret: str, size: int = 6) -> set[str]:
    """Every piece of `secret` long enough to narrow a guess down."""
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def leaked(text: str, secrets: list[str], size: int = 6) -> list[str]:
    return sorted(f for s in secrets for f in fragments(s, size) if f in text)


class NeverReturned(BaseException):
    """Raised into a call that outlived its bound (BaseException: no `except Exception` in
    the code under test can swallow it)."""


def run_bounded(call: Callable[[], object], limit_s: float) -> tuple[object, float]:
    """`call()` in this (the main) thread: (its result, seconds taken); AssertionError when it
    is still running after `limit_s` (the code before the policy never returned). A timer
    signal interrupts even a blocked recv; a thread would leave Dagster's SQLite objects to be
    collected in another thread."""

    def interrupt(signum: int, frame: object) -> None:
        raise NeverReturned

    previous = signal.signal(signal.SIGALRM, interrupt)
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    try:
        value = call()
    except NeverReturned:
        raise AssertionError(f"still running after {limit_s:g} s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return value, time.monotonic() - started
