"""The one policy for every outbound HTTP call of the product (Alpha Vantage, Elasticsearch,
the alert webhook): deadline, body cap, redirects, redaction, bounded excerpts.

- Deadline: socket timeouts bound each single read, so a server sending one byte a second
  never trips them. `deadline(seconds)` arms a watchdog that shuts the request's socket down
  when the whole request (connect, headers, body) has not finished in time. Connections made
  through `watch_pool` / `DeadlineAdapter` report their socket to the running watchdog.
- Body cap: `read_capped` counts decompressed bytes and stops past the cap, so neither a
  300 MB answer nor a gzip bomb costs more than the cap in memory.
- Redirects: only to the configured origin (`same_origin`); `resolve_location` turns a
  Location header into a URL or a named failure (non-UTF-8, control characters, no host).
- Secrets: `redact` removes every configured secret in each form it may take in text (raw,
  JSON-escaped, URL-encoded); `excerpt` redacts BEFORE it shortens, so a cut never leaves a
  fragment of a secret behind.

Callers: fin_assets/lib/alpha_vantage/client.py (requests session), fin_assets/defs/resources/
elasticsearch.py (a node class for the official client), fin_assets/defs/batch/alerts.py.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus, unquote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
READ_CHUNK = 64 * 1024
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
EXCERPT_CHARS = 240


@dataclass(frozen=True)
class HttpPolicy:
    """What one caller's requests may cost and which texts they must never show."""

    deadline_seconds: float = 30.0  # one whole request: connect, headers and body
    timeout_seconds: float = 10.0  # connect, and each single read
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES  # decompressed
    max_redirects: int = 3  # followed only within the configured origin
    secrets: tuple[str, ...] = field(default=(), repr=False)
    excerpt_chars: int = EXCERPT_CHARS

    def excerpt(self, text: str, limit: int | None = None) -> str:
        return excerpt(text, self.secrets, limit or self.excerpt_chars)

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)


class PolicyViolation(Exception):
    """A request stopped by the policy; `cause` is a short code, the text is already clean."""

    def __init__(self, cause: str, detail: str):
        super().__init__(detail)
        self.cause = cause
        self.detail = detail


# --- secrets --------------------------------------------------------------------------------

_APIKEY_PARAM = re.compile(r"(apikey(?:=|%3D|%253D))[^&\s\"'<>]+", re.IGNORECASE)
_ECHOED_KEY = re.compile(r"(API key as )\S+?(?=[\s,.;]|$)", re.IGNORECASE)


def secret_forms(secret: str) -> list[str]:
    """A secret as it may appear in text: literal, JSON-escaped (ASCII and not), URL-encoded.

    A secret with `"`, `\\` or non-ASCII characters looks different inside a JSON body or a
    URL, and a literal-only replacement would miss it there. Longest first, so no form leaves
    a fragment of another behind.
    """
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        quote(secret, safe="/:@!$'()*,;="),  # what requests leaves unescaped in a query
        quote(quote(secret, safe=""), safe=""),  # a URL echoed inside another URL's query
    }
    return sorted((form for form in forms if form), key=len, reverse=True)


def _as_tuple(secrets: str | Iterable[str] | None) -> tuple[str, ...]:
    if secrets is None:
        return ()
    if isinstance(secrets, str):
        return (secrets,)
    return tuple(s for s in secrets if s)


def _longest_form(secrets: tuple[str, ...]) -> int:
    return max((len(form) for s in secrets for form in secret_forms(s)), default=0)


def redact(text: str, secrets: str | Iterable[str] | None) -> str:
    """Remove each secret (every form of `secret_forms`), `apikey=` query values (also
    percent-encoded) and the quota notice's "detected your API key as <KEY>" echo."""
    # Longest forms first across all secrets: a short secret inside a long one must not
    # leave the rest of the long one behind.
    forms = sorted({f for s in _as_tuple(secrets) for f in secret_forms(s)}, key=len, reverse=True)
    for form in forms:
        # Case-blind: %-escapes and \u-escapes come back in either case.
        text = re.sub(re.escape(form), "***", text, flags=re.IGNORECASE)
    text = _APIKEY_PARAM.sub(r"\1***", text)
    return _ECHOED_KEY.sub(r"\1***", text)


def shorten(text: str, limit: int = EXCERPT_CHARS) -> str:
    """Whitespace folded, at most `limit` characters (the last one an ellipsis when cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def excerpt(text: str, secrets: str | Iterable[str] | None, limit: int = EXCERPT_CHARS) -> str:
    """A bounded, clean excerpt of any text: redacted first, then shortened.

    Only a window of the text is redacted (a 5 MB error body costs no more than a few KB);
    when the window cuts the text, its last characters (as many as the longest secret form)
    are dropped after redaction, since a secret the window cut in two is still in them.
    """
    secrets = _as_tuple(secrets)
    margin = _longest_form(secrets) + 16
    window = text[: 4 * limit + 4096 + margin]
    clean = redact(window, secrets)
    if len(window) < len(text):
        clean = clean[: max(0, len(clean) - margin)] + " …"
    return shorten(clean, limit)


def url_secrets(url: str) -> tuple[str, ...]:
    """The parts of a URL that can be a credential (webhook tokens live in path or query):
    the URL itself, its password, its path and query, and each path segment or query value
    of 10 or more characters (shorter ones are words like `services`, not tokens)."""
    parts = urlsplit(url.strip())
    found = {url.strip(), parts.password or ""}
    if parts.path.strip("/"):
        found.add(parts.path + (f"?{parts.query}" if parts.query else ""))
    for segment in parts.path.split("/"):
        if len(unquote(segment)) >= 10:
            found.update({segment, unquote(segment)})
    for pair in parts.query.split("&"):
        value = pair.partition("=")[2]
        if len(unquote(value)) >= 10:
            found.update({value, unquote(value)})
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


# --- origins and redirects ------------------------------------------------------------------


def origin_of(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port); ValueError for a bad port or IPv6 literal."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme)


def same_origin(configured: str, target: str, allow_https_upgrade: bool = False) -> bool:
    """Whether `target` may receive credentials: the configured origin (or, when allowed,
    its https upgrade from port 80 to 443)."""
    scheme, host, port = origin_of(configured)
    target_scheme, target_host, target_port = origin_of(target)
    if target_host != host:
        return False
    if (target_scheme, target_port) == (scheme, port):
        return True
    upgrade = (scheme, port, target_scheme, target_port) == ("http", 80, "https", 443)
    return allow_https_upgrade and upgrade


def shown_origin(url: str) -> str:
    """scheme://host[:port] of a URL, without user info, path or query (they may hold secrets)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port}" if port else f"{parts.scheme}://{host}"


def resolve_location(current_url: str, raw: str | None, status: int) -> str:
    """The absolute URL a redirect points to, or PolicyViolation("bad_redirect")."""
    if raw is None:
        raise PolicyViolation("bad_redirect", f"HTTP {status} without a Location")
    try:
        # http.client decodes header bytes as Latin-1; URLs in Location are UTF-8.
        location = raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise PolicyViolation(
            "bad_redirect", f"HTTP {status} with a Location that is not UTF-8"
        ) from None
    problem = None
    try:
        target = urljoin(current_url, location.strip())
        origin_of(target)  # raises ValueError for a bad port or IPv6 literal
        if any(ch in target for ch in "\r\n\x00") or not urlsplit(target).hostname:
            problem = "control characters or no host"
    except ValueError as exc:
        problem = str(exc)
    if problem is not None:
        raise PolicyViolation("bad_redirect", f"HTTP {status} with an unusable Location")
    return target


def refuse_redirect(status: int, source: str, target: str) -> PolicyViolation:
    return PolicyViolation(
        "redirect_refused",
        f"HTTP {status} from {shown_origin(source)} to {shown_origin(target)}: not followed "
        "(redirects are followed only within the configured origin)",
    )


# --- the overall deadline -------------------------------------------------------------------


class RequestWatch:
    """The socket of the running request, and a flag set when its deadline passed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.expired = False

    def attach(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            expired = self.expired
        if expired:
            self._shut(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            sock = self._sock
        self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket | None) -> None:
        # shutdown (not close) wakes a recv blocked in another thread; the pool closes it.
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed by the other side
                sock.shutdown(socket.SHUT_RDWR)


_current = threading.local()  # .watch: the RequestWatch of this thread's running request


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[RequestWatch]:
    """Within the block, this thread's watched connections are shut down after `seconds`."""
    watch = RequestWatch()
    timer = threading.Timer(seconds, watch.expire)
    timer.daemon = True
    previous = getattr(_current, "watch", None)
    _current.watch = watch
    timer.start()
    try:
        yield watch
    finally:
        timer.cancel()
        _current.watch = previous


class _WatchedConnection:
    """Mixin: reports the socket to the running watchdog once the request is sent."""

    def getresponse(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        watch = getattr(_current, "watch", None)
        if watch is not None:
            watch.attach(self.sock)  # type: ignore[attr-defined]
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


_WATCHED_CLASSES: dict[type, type] = {}


def watched_connection_class(cls: type) -> type:
    """`cls` (an urllib3 connection class) that reports its socket to the watchdog."""
    if issubclass(cls, _WatchedConnection):
        return cls
    if cls not in _WATCHED_CLASSES:
        _WATCHED_CLASSES[cls] = type(f"Watched{cls.__name__}", (_WatchedConnection, cls), {})
    return _WATCHED_CLASSES[cls]


def watch_pool(pool: HTTPConnectionPool) -> HTTPConnectionPool:
    """Make an existing urllib3 pool's connections obey `deadline`."""
    pool.ConnectionCls = watched_connection_class(pool.ConnectionCls)
    return pool


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = watched_connection_class(HTTPConnection)


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = watched_connection_class(HTTPSConnection)


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections report their socket to the running watchdog."""

    def init_poolmanager(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_WATCHED_POOLS)

    def proxy_manager_for(self, proxy, **proxy_kwargs):  # type: ignore[no-untyped-def]
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        # HTTP(S) proxies (HTTPS_PROXY...) use urllib3's pools too; SOCKS brings its own.
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_WATCHED_POOLS)
        return manager


def watched_session(session: requests.Session | None = None) -> requests.Session:
    """A requests session (the given one) whose http(s) requests obey `deadline`."""
    session = session or requests.Session()
    for prefix in ("http://", "https://"):
        if not isinstance(session.adapters.get(prefix), DeadlineAdapter):
            session.mount(prefix, DeadlineAdapter())
    return session


def send_once(
    session: requests.Session, prepared: requests.PreparedRequest, timeout_seconds: float
) -> requests.Response:
    """One HTTP exchange, streamed, redirects not followed, with the environment's proxies and
    CA bundle. Straight to the adapter: Session.send parses Location even when not following
    redirects, and crashes on a malformed or non-UTF-8 one."""
    assert prepared.url is not None
    settings = session.merge_environment_settings(prepared.url, {}, True, None, None)
    return session.get_adapter(prepared.url).send(
        prepared,
        stream=True,
        timeout=(timeout_seconds, timeout_seconds),
        verify=settings["verify"],
        cert=settings["cert"],
        proxies=settings["proxies"],
    )


def deadline_passed(where: str, seconds: float, received: int | None = None) -> PolicyViolation:
    detail = f"{where} did not complete the answer within {round(seconds, 2):g} s"
    if received is not None:
        detail += f" ({received} bytes received)"
    return PolicyViolation("deadline", detail)


# --- the body cap ---------------------------------------------------------------------------


def read_capped(
    chunks: Iterable[bytes], cap: int, where: str, watch: RequestWatch | None, seconds: float
) -> bytes:
    """Join decompressed `chunks` up to `cap` bytes; PolicyViolation("too_large") past it,
    ("deadline") when the watchdog fired. Transport errors from `chunks` propagate."""
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > cap:
            raise PolicyViolation("too_large", f"more than {cap} bytes (decompressed) from {where}")
        if watch is not None and watch.expired:
            raise deadline_passed(where, seconds, size)
        parts.append(chunk)
    if watch is not None and watch.expired:
        raise deadline_passed(where, seconds, size)
    return b"".join(parts)
