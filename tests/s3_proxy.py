"""A counting proxy in front of the moto S3 server: every request that boto3 or TileDB sends is
forwarded as it is and recorded (method, bucket, key, query, ``Range`` header, response bytes),
so a test can say exactly what a command read from S3.

The proxy runs in a process of its own (TileDB holds the GIL in some calls, so a proxy thread in
the test's process could not answer them). Start it with :func:`start_counting_proxy` and point
``AWS_ENDPOINT_URL`` (or a Storage's ``endpoint_url``) at ``proxy.url``; ``proxy.exchanges``
reads what it recorded so far. Path-style addressing only (what the project and TileDB use for a
custom endpoint).
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

#: hop-by-hop headers a proxy must not forward
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass(frozen=True)
class Exchange:
    """One request through the proxy."""

    method: str
    bucket: str
    key: str
    query: str
    range: str
    status: int
    response_bytes: int


@dataclass
class CountingProxy:
    """A running proxy process: ``url`` to send requests to; its log of exchanges."""

    url: str
    process: subprocess.Popen
    log: Path

    @property
    def exchanges(self) -> list[Exchange]:
        """The requests recorded so far."""
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [Exchange(**json.loads(line)) for line in lines if line]

    def reads_of(self, prefix: str) -> list[Exchange]:
        """The GETs of objects whose key starts with ``prefix``."""
        return [e for e in self.exchanges if e.method == "GET" and e.key.startswith(prefix)]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_counting_proxy(target: str, log: Path) -> CountingProxy:
    """A proxy process on a free loopback port forwarding to ``target`` (``http://host:port``),
    recording to ``log`` (JSON lines)."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--target", target, "--log", str(log)],
        stdout=subprocess.PIPE,
        text=True,
    )
    port = process.stdout.readline().strip()
    if not port.isdigit():
        process.kill()
        raise RuntimeError(f"the counting proxy did not start (it said {port!r})")
    return CountingProxy(f"http://127.0.0.1:{port}", process, log)


def serve(target: str, log: Path) -> None:
    """Run the proxy: print its port, then forward and record until terminated."""
    upstream = urlsplit(target)
    lock = threading.Lock()
    log_file = log.open("a", buffering=1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            return

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=120)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            finally:
                connection.close()
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in _HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            # a HEAD answer has no body but the Content-Length of the object it describes
            head_length = response.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", head_length or str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            parts = urlsplit(self.path)
            bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
            exchange = Exchange(
                self.command,
                bucket,
                key,
                parts.query,
                self.headers.get("Range", ""),
                response.status,
                0 if self.command == "HEAD" else len(data),
            )
            with lock:
                log_file.write(json.dumps(asdict(exchange)) + "\n")

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("--log", required=True, type=Path)
    arguments = parser.parse_args()
    serve(arguments.target, arguments.log)
