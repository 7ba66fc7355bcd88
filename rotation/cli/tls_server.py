"""A small local TLS server for the demo when no Apache is installed, and a serial-reading client.

It serves, per SNI host name, the certificate files most recently installed, loading them for
each new connection, so a newly installed certificate is served without a restart.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from pathlib import Path
from types import TracebackType

from cryptography import x509

from rotation.issuance.bundle import CertBundle


class LocalTlsServer:
    def __init__(self, directory: Path) -> None:
        self._directory = directory / "tls-server"
        self._directory.mkdir(mode=0o700, exist_ok=True)
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="certrotate-demo-tls", daemon=True)

    def __enter__(self) -> LocalTlsServer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def install(self, hostname: str, bundle: CertBundle) -> None:
        """Write the bundle (key 0600) and serve it for ``hostname`` from the next connection on."""
        cert_path = self._directory / f"{hostname}.crt"
        key_path = self._directory / f"{hostname}.key"
        cert_path.write_text(bundle.certificate_pem + bundle.chain_pem)
        descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(bundle.private_key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        with self._lock:
            self._contexts[hostname] = context

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handshake, args=(connection,), daemon=True).start()

    def _handshake(self, connection: socket.socket) -> None:
        """Serve one connection: the certificate is chosen by SNI from the installed ones."""
        selector = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)

        def choose(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: ssl.SSLContext) -> None:
            with self._lock:
                context = self._contexts.get(name or "")
            if context is not None:
                sock.context = context

        selector.sni_callback = choose
        try:
            with selector.wrap_socket(connection, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass
        finally:
            connection.close()


def served_certificate(host: str, port: int, server_name: str, ca_pem: str) -> x509.Certificate:
    """Handshake as a client that trusts only ``ca_pem`` and checks ``server_name``; the leaf it saw."""
    context = ssl.create_default_context(cadata=ca_pem)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    with (
        socket.create_connection((host, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)
