"""A real local HTTP(S) server that answers like Elasticsearch and Kibana and records every
request (method, path, basic-auth user, body) as a JSON line.

It answers the calls docker/setup/setup.sh makes the way the real servers do: the
`X-Elastic-Product: Elasticsearch` header, JSON bodies, `400 request body is required` for a
write without a body (what Elasticsearch answers, and what made set -e stop the real script),
Kibana's `/api/status` and `_import`. While a request is being served it also looks for the
secrets it was given in every process's command line, which is what `ps` shows: a hit is
recorded, and so are how many command lines were read and their programs.

Run it as a process (`python -m fin_assets_tests.helpers.elastic_recording_server --help`),
e.g. inside a private network namespace where it can own ports 9200 and 5601, or in-process with
`serve_in_thread` (the `answer` argument makes it answer like something that is not
Elasticsearch).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from fin_assets_tests.helpers import processes

ES_HEADERS = {"X-Elastic-Product": "Elasticsearch", "Content-Type": "application/json"}
KIBANA_HEADERS = {"kbn-name": "kibana", "Content-Type": "application/json; charset=utf-8"}

BODY_REQUIRED = {
    "error": {
        "root_cause": [{"type": "parse_exception", "reason": "request body is required"}],
        "type": "parse_exception",
        "reason": "request body is required",
    },
    "status": 400,
}

# (status, headers, JSON body) for a request: method, path, body.
Answer = Callable[[str, str, bytes], tuple[int, dict[str, str], object]]


def elasticsearch_answer(method: str, path: str, body: bytes) -> tuple[int, dict, object]:
    route = path.split("?", 1)[0].strip("/")
    if method in ("PUT", "POST") and not body:
        return 400, ES_HEADERS, BODY_REQUIRED
    if route == "_cluster/health":
        return 200, ES_HEADERS, {"cluster_name": "recording", "status": "green"}
    if route.startswith("_index_template/"):
        json.loads(body)  # a broken template is a 500 here, as a parse error would be there
        return 200, ES_HEADERS, {"acknowledged": True}
    if route.startswith("_security/user/") and route.endswith("/_password"):
        return 200, ES_HEADERS, {}
    if route.startswith("_security/role/"):
        return 200, ES_HEADERS, {"role": {"created": True}}
    if route.startswith("_security/user/"):
        return 200, ES_HEADERS, {"created": True}
    return 404, ES_HEADERS, {"error": f"no route for {method} {route}", "status": 404}


def kibana_answer(method: str, path: str, body: bytes) -> tuple[int, dict, object]:
    route = path.split("?", 1)[0].strip("/")
    if route == "api/status":
        return 200, KIBANA_HEADERS, {"status": {"overall": {"level": "available"}}}
    if route == "api/saved_objects/_import" and method == "POST":
        objects = [line for line in _multipart_file(body).splitlines() if line.strip()]
        if not objects:
            return 400, KIBANA_HEADERS, {"statusCode": 400, "message": "file is empty"}
        return 200, KIBANA_HEADERS, {"success": True, "successCount": len(objects)}
    if route == "api/kibana/settings" and method == "POST":
        if not body:
            return 400, KIBANA_HEADERS, {"statusCode": 400, "message": "body is required"}
        return 200, KIBANA_HEADERS, {"settings": json.loads(body)["changes"]}
    return 404, KIBANA_HEADERS, {"statusCode": 404, "message": "Not Found"}


def not_elasticsearch_answer(method: str, path: str, body: bytes) -> tuple[int, dict, object]:
    """Some other JSON service on the configured URL."""
    return 200, {"Content-Type": "application/json"}, {"service": "inventory", "ok": True}


def _multipart_file(body: bytes) -> bytes:
    """The first part's content of a multipart/form-data body (enough for one file)."""
    if b"\r\n\r\n" not in body:
        return b""
    content = body.split(b"\r\n\r\n", 1)[1]
    return content.rsplit(b"\r\n--", 1)[0]


def argv_scan(secrets: list[str]) -> tuple[list[str], list[str]]:
    """(command lines that contain one of the secrets, the programs of every command line
    read), as `ps` shows them: the second says what was inspected (the client sending the
    request among them), so that a scan that read nothing cannot pass as clean."""
    leaks, programs = [], []
    for pid, argv in processes.command_lines().items():
        programs.append(Path(argv.split(" ", 1)[0]).name if argv else "")
        if any(secret and secret in argv for secret in secrets):
            leaks.append(f"pid {pid}: {argv[:80]}...")
    return leaks, programs


def make_handler(answer: Answer, record: Path | None, secrets: list[str]):
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # quiet: the records are the log
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            leaks, programs = argv_scan(secrets) if secrets else ([], [])
            try:
                status, headers, payload = answer(self.command, self.path, body)
            except ValueError as exc:
                status, headers, payload = 500, ES_HEADERS, {"error": str(exc), "status": 500}
            if record is not None:
                entry = {
                    "method": self.command,
                    "path": self.path,
                    "host": self.headers.get("Host"),
                    "user": _basic_user(self.headers.get("Authorization")),
                    "content_type": self.headers.get("Content-Type"),
                    "body": body.decode("utf-8", errors="replace"),
                    "status": status,
                    "argv_leaks": leaks,
                    "argv_programs": sorted(set(programs)),
                    "argv_checked": len(programs),
                }
                with lock, record.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(entry) + "\n")
            # Compact, as Elasticsearch answers (setup.sh greps '"status":"green"').
            compact = json.dumps(payload, separators=(",", ":")).encode()
            data = compact if self.command != "HEAD" else b""
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

    return Handler


def _basic_user(header: str | None) -> str | None:
    """The user name of a Basic Authorization header (the password is not recorded)."""
    if not header or not header.startswith("Basic "):
        return None
    user, _, _password = base64.b64decode(header[6:]).decode().partition(":")
    return user


def make_server(
    port: int,
    answer: Answer,
    record: Path | None = None,
    secrets: list[str] | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    host: str = "127.0.0.1",
) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), make_handler(answer, record, secrets or []))
    server.daemon_threads = True
    if cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


@contextmanager
def serve_in_thread(answer: Answer, **kwargs) -> Iterator[str]:
    """A server on a free loopback port for the duration of the block; yields its URL."""
    server = make_server(0, answer, **kwargs)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    scheme = "https" if kwargs.get("cert") else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--es-port", type=int, required=True)
    parser.add_argument("--es-cert", type=Path, required=True)
    parser.add_argument("--es-key", type=Path, required=True)
    parser.add_argument("--kibana-port", type=int, required=True)
    parser.add_argument("--record", type=Path, required=True, help="JSON lines, appended")
    parser.add_argument("--ready", type=Path, required=True, help="written once both listen")
    parser.add_argument(
        "--secrets-env",
        default="",
        help="comma-separated names of environment variables holding the secrets to look for",
    )
    args = parser.parse_args()
    secrets = [os.environ[name] for name in args.secrets_env.split(",") if name in os.environ]
    servers = [
        make_server(
            args.es_port, elasticsearch_answer, args.record, secrets, args.es_cert, args.es_key
        ),
        make_server(args.kibana_port, kibana_answer, args.record, secrets),
    ]
    threads = [threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    args.ready.write_text("ready\n")
    threading.Event().wait()  # until the test stops the process


if __name__ == "__main__":
    main()
