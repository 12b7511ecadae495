"""A loopback TCP forwarder standing in for a Kubernetes Service in front of Backstage's pods.

New connections go to the current target; `retarget` moves new traffic to another backend, and
`close_to` ends the connections still open to the old one (as when its pod is terminated), which
Argo CD's HTTP client answers by reconnecting, through the Service, to the new pod.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import defaultdict

from argobridge_dev.controlplane import free_port


def pump(source: socket.socket, target: socket.socket) -> None:
    """Copy bytes one way until either end closes, then close both ways."""
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, target):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


class ServiceProxy:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.target: int | None = None
        self.server = socket.create_server(("127.0.0.1", self.port))
        self.open: dict[int, set[socket.socket]] = defaultdict(set)
        self.lock = threading.Lock()
        self.closed = False

    def start(self) -> ServiceProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def retarget(self, port: int) -> None:
        self.target = port

    def close_to(self, port: int) -> None:
        with self.lock:
            ends = self.open.pop(port, set())
        for end in ends:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                downstream, _ = self.server.accept()
            except OSError:
                return
            target = self.target
            try:
                if target is None:
                    raise OSError("no backend")
                upstream = socket.create_connection(("127.0.0.1", target))
            except OSError:
                downstream.close()  # like a Service without ready endpoints: connection refused
                continue
            with self.lock:
                self.open[target] |= {downstream, upstream}
            threading.Thread(target=pump, args=(downstream, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, downstream), daemon=True).start()

    def stop(self) -> None:
        self.closed = True
        self.server.close()
        for port in list(self.open):
            self.close_to(port)
