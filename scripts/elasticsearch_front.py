"""A TLS front for the local secured Elasticsearch node: answers the root endpoint `GET /`, passes
everything else through unchanged.

Why: Logstash's elasticsearch output asks `GET /` for the server's version and product before it
sends anything, and marks a node that does not answer it dead. The integration-test distribution
that scripts/elasticsearch.sh runs has no `rest-root` module, so the node answers 405 there. The
front answers `GET /` itself, but only for a caller the node authenticates
(`GET /_security/_authenticate` with the caller's own Authorization header): a wrong password still
gets the node's 401. The certificate is the node's own (docker/setup/certs.sh names 127.0.0.1).

    python3 scripts/elasticsearch_front.py --listen 127.0.0.1:PORT --node https://127.0.0.1:NODE \
        --cert CRT --key KEY --ca CA --version 8.19.21 --cluster-name NAME

Standard library only: it starts with any Python 3.11, before the project's venv exists.
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Headers that describe one hop, not the message (RFC 9110 section 7.6.1).
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
}
NODE_TIMEOUT_S = 120.0


def root_document(version: str, cluster_name: str) -> bytes:
    """The fields Elasticsearch 8's `GET /` returns that clients read (version and product)."""
    return json.dumps(
        {
            "name": cluster_name,
            "cluster_name": cluster_name,
            "version": {
                "number": version,
                "build_flavor": "default",
                "build_type": "zip",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0",
            },
            "tagline": "You Know, for Search",
        }
    ).encode()


def make_handler(node: str, node_context: ssl.SSLContext, root: bytes):
    parts = urlsplit(node)
    local = threading.local()

    def node_connection() -> http.client.HTTPSConnection:
        # One keep-alive connection to the node per client connection (thread).
        if getattr(local, "conn", None) is None:
            local.conn = http.client.HTTPSConnection(
                parts.hostname, parts.port, context=node_context, timeout=NODE_TIMEOUT_S
            )
        return local.conn

    class Front(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fin-assets-elasticsearch-front"

        def log_message(self, format, *args):  # noqa: A002 - quiet: the node logs requests
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _forward(self, method: str, path: str, body: bytes | None):
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Host"] = parts.netloc
            if body is not None:
                headers["Content-Length"] = str(len(body))
            for attempt in (1, 2):
                conn = node_connection()
                try:
                    conn.request(method, path, body=body, headers=headers)
                    response = conn.getresponse()
                    return response, response.read()
                except (ConnectionError, http.client.HTTPException, TimeoutError, OSError):
                    conn.close()
                    local.conn = None
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

        def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes):
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self):
            body = self._body()
            try:
                if self.path in ("/", "") and self.command in ("GET", "HEAD"):
                    response, answer = self._forward("GET", "/_security/_authenticate", None)
                    if response.status == 200:
                        self._reply(
                            200,
                            [
                                ("Content-Type", "application/json"),
                                ("X-Elastic-Product", "Elasticsearch"),
                            ],
                            root,
                        )
                        return
                    self._reply(response.status, response.getheaders(), answer)
                    return
                response, answer = self._forward(
                    self.command, self.path, body if body or self.command != "GET" else None
                )
                self._reply(response.status, response.getheaders(), answer)
            except (OSError, http.client.HTTPException) as error:
                # The node is down or hung: a gateway error the client retries, as behind any
                # load balancer.
                message = json.dumps({"error": f"node unreachable: {type(error).__name__}"})
                self._reply(502, [("Content-Type", "application/json")], message.encode())

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle

    return Front


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--node", required=True, help="the node's https URL")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--cluster-name", required=True)
    args = parser.parse_args()

    host, port = args.listen.rsplit(":", 1)
    node_context = ssl.create_default_context(cafile=args.ca)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(args.cert, args.key)
    handler = make_handler(args.node, node_context, root_document(args.version, args.cluster_name))
    server = ThreadingHTTPServer((host, int(port)), handler)
    server.daemon_threads = True
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    print(f"elasticsearch front on https://{host}:{port} -> {args.node}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
