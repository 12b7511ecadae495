"""A real TLS endpoint in front of the real Backstage: a self-signed certificate made with openssl,
and every decrypted byte passed through to Backstage's plain HTTP port.

The Backstage test backend serves plain HTTP only; this puts a genuine TLS handshake (Python's ssl
module, OpenSSL underneath) in front of it, as an ingress would, so certificate errors are real.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from pathlib import Path

from argobridge_dev.controlplane import free_port
from tests.e2e.service_proxy import pump


def make_self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, valid for a day."""
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=backstage.test"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class TlsTerminator:
    def __init__(self, backend_port: int, directory: Path) -> None:
        self.backend_port = backend_port
        self.cert, self.key = make_self_signed(directory)
        self.port = free_port()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(self.cert, self.key)
        self.server = socket.create_server(("127.0.0.1", self.port))
        self.closed = False

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> TlsTerminator:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while not self.closed:
            try:
                raw, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            client = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()  # the client refused our certificate: exactly what the probe must report
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.backend_port))
        except OSError:
            client.close()  # Backstage behind it is down
            return
        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
        pump(client, upstream)

    def stop(self) -> None:
        self.closed = True
        self.server.close()
