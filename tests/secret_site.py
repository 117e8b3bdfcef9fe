"""A loopback-only web site with a secret: what an SSRF probe tries to reach.

``/secret`` answers the secret; ``/redirect?to=URL`` redirects there (302). It runs in a
thread, on a real socket, so both in-process tools and headend subprocesses can reach it.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SECRET = "loopback-secret-7d1f0c"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        self.server.hits.append(parts.path)  # type: ignore[attr-defined]
        if parts.path == "/redirect":
            self.send_response(302)
            # Raw UTF-8, as servers send it: a Unicode host must reach the client unchanged.
            location = parse_qs(parts.query)["to"][0]
            self._headers_buffer.append(f"Location: {location}\r\n".encode())  # type: ignore[attr-defined]
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = SECRET.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


class SecretSite:
    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.hits = []  # type: ignore[attr-defined]
        self.port: int = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def hits(self) -> list[str]:
        found: list[str] = self._server.hits  # type: ignore[attr-defined]
        return found

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
