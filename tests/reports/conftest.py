"""Fixtures of the report tests: a demo registry and a recording
"pushgateway" (a tiny HTTP server on 127.0.0.1 that stores every request it gets)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from report_helpers import Demo, Gateway, Recorded

from regsweep.clock import utcnow
from regsweep.demo import generate_demo
from regsweep.storage.filesystem import FilesystemStore


@pytest.fixture
def demo(tmp_path: Path) -> Demo:
    """A freshly generated demo registry (filesystem root), its history ending now."""
    root = tmp_path / "registry"
    root.mkdir()
    return Demo(root, generate_demo(FilesystemStore(root), now=utcnow()))


@pytest.fixture
def demo_root(demo: Demo) -> Path:
    return demo.root


@pytest.fixture
def pushgateway() -> Iterator[Gateway]:
    """A stand-in pushgateway on 127.0.0.1 that records each PUT/POST and answers
    ``gateway.status``."""
    gateway = Gateway(url="")

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n).decode()
            gateway.requests.append(
                Recorded(self.command, self.path, self.headers.get("Content-Type"), body)
            )
            self.send_response(gateway.status)
            self.end_headers()

        do_PUT = _record
        do_POST = _record

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    gateway.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield gateway
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
