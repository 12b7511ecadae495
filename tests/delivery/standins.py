"""Two small local servers the delivery proofs need besides the real parts.

`HungBackstage` is a fake, and only for proof 4: the real Backstage test backend cannot be made to
accept a connection and then never answer it (it answers, refuses, or is gone). `SlackStandIn` is not a
fake of anything ArgoBridge talks to: it is a second webhook receiver of the same Argo CD, standing for
the Slack (or any other) service a user has configured next to Backstage, and it only counts what arrives.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from argobridge_dev.controlplane import free_port


class HungBackstage:
    """FAKE Backstage for one fault only: accepts every TCP connection, reads whatever is sent, never answers.

    A fake because no real Backstage can be made to hang like this on purpose (a stopped one refuses
    connections, a stopping one answers 400/503); a hung process, a dead-locked event loop, or a black-hole
    load balancer does exactly this in production. Connections stay open until `stop`.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.server = socket.create_server(("127.0.0.1", self.port), backlog=512)
        self.server.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.server, selectors.EVENT_READ)
        self.accepted = 0
        self.bytes_read = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True, name="hung-backstage")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HungBackstage:
        self.thread.start()
        return self

    def _serve(self) -> None:
        while not self.stopping.is_set():
            for key, _ in self.selector.select(timeout=0.2):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self.server:
                    with contextlib.suppress(BlockingIOError):
                        conn, _ = self.server.accept()
                        conn.setblocking(False)
                        self.selector.register(conn, selectors.EVENT_READ)
                        self.accepted += 1
                    continue
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    self.bytes_read += len(data)  # read and drop: never a byte back
                else:
                    self.selector.unregister(sock)
                    sock.close()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        for key in list(self.selector.get_map().values()):
            with contextlib.suppress(OSError):
                key.fileobj.close()  # type: ignore[union-attr]
        self.selector.close()


class SlackStandIn:
    """A webhook receiver standing for Slack: answers 200 to every POST and records the JSON body it got.

    Argo CD reaches it through the user's own `service.webhook.slack`; what it records is what that
    user's Slack channel would have shown.
    """

    def __init__(self) -> None:
        received: list[tuple[float, dict[str, Any]]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"unparsed": raw.decode(errors="replace")}
                received.append((time.monotonic(), body if isinstance(body, dict) else {"value": body}))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="slack-stand-in")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> SlackStandIn:
        self.thread.start()
        return self

    def apps(self, namespace: str) -> Counter[str]:
        """How many messages arrived per app of one Argo CD namespace."""
        return Counter(body.get("app", "") for _, body in list(self.received) if body.get("namespace") == namespace)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
