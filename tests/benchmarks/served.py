"""A real HTTP server on localhost serving in-memory files, for the fetch tests: every download in
them goes through urllib and a socket, nothing replaces the download function."""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serves `files` by name; names in `cut` send their headers and half the body, then close the
    connection; while `gate` is cleared every request waits for it (so a test can hold a download)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: set[str] = set()
        self.requests: Counter[str] = Counter()
        self.requested = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def url(self, name: str = "") -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.gate.set()
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            name = self.path.lstrip("/")
            server.requests[name] += 1
            server.requested.set()
            server.gate.wait(timeout=600)
            if name not in server.files:
                self.send_error(404)
                return
            body = server.files[name]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if name in server.cut:
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
            else:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler
