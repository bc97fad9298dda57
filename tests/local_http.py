"""An HTTP server on 127.0.0.1 for the download tests: good, spoiled, cut-off, stalled and
missing files, error statuses and bytes that are not HTTP at all."""

import http.server
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Reply:
    """What the test server sends for one request."""

    status: int = 200
    body: bytes = b""
    length: int | None = None  # the Content-Length to declare; the body's own by default
    no_length: bool = False  # declare none: the body ends when the connection closes
    stall: bool = False  # send the headers, then nothing until the server closes
    trickle: float = 0.0  # seconds between bytes of the body, one byte at a time
    raw: bytes | None = None  # bytes to send instead of an HTTP response
    headers: tuple[tuple[str, str], ...] = ()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        server = self.server
        server.requests.append(self.path)
        replies = server.routes.get(self.path) or [Reply(status=404)]
        # A list of replies is served in turn; its last reply answers every later request.
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        self.close_connection = True
        if reply.raw is not None:
            self.wfile.write(reply.raw)
            return
        self.send_response(reply.status)
        length = len(reply.body) if reply.length is None else reply.length
        if not reply.no_length:
            self.send_header("Content-Length", str(length))
        for key, value in reply.headers:
            self.send_header(key, value)
        self.end_headers()
        if reply.stall:
            self.wfile.flush()
            server.release.wait(timeout=30)
            return
        if reply.trickle:
            for byte in reply.body:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                if server.release.wait(timeout=reply.trickle):
                    return
            return
        self.wfile.write(reply.body)

    def log_message(self, *args):
        pass  # keep the test output free of access logs


class LocalServer(http.server.ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that answers each path with the replies set in ``routes``."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, list[Reply]] = {}
        self.requests: list[str] = []
        self.release = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    def url(self, prefix: str) -> str:
        return f"http://127.0.0.1:{self.server_port}/{prefix}/"

    def serve(self, prefix: str, name: str, *replies: Reply) -> None:
        self.routes[f"/{prefix}/{name}"] = list(replies)

    def serve_folder(self, prefix: str, folder: Path) -> str:
        """Serve every file of ``folder`` under ``/prefix/``; return the mirror URL."""
        for path in folder.iterdir():
            self.serve(prefix, path.name, Reply(body=path.read_bytes()))
        return self.url(prefix)

    def close(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()
        self._thread.join()
