"""Mutual-TLS clients that keep shaking hands with a server while its trust and its leaf change.

A :class:`HandshakeLoad` is one client program on a host: each handshake reads the host's
application trust file afresh (as a program started now would), verifies the server's certificate
and name with it, presents the client certificate it holds at that moment, and sends one HTTP
request. The server accepts only if its client-CA file trusts that certificate's CA. Every
handshake is counted under the phase the driver says is current, as ``ok`` or ``failed`` with the
reason, so a rollover can be judged by what clients saw rather than by what the tool reports.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Tally:
    """What one client saw during one phase."""

    ok: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class ClientIdentity:
    """The client certificate (and its key) a client presents, as files."""

    certificate: Path
    key: Path


class HandshakeLoad:
    """Handshakes with ``port`` at ``rate`` per second on a thread, until :meth:`stop`."""

    def __init__(
        self, server: str, port: int, hostname: str, trust_file: Path, identity: ClientIdentity, *, rate: float = 12.0
    ) -> None:
        self.server, self.port, self.hostname, self.trust_file = server, port, hostname, trust_file
        self.identity = identity
        self.interval = 1.0 / rate
        self.tallies: dict[str, Tally] = {}
        self._phase = ""
        self._since = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"handshakes-{server}", daemon=True)

    def start(self, phase: str) -> None:
        self.enter(phase)
        self._thread.start()

    def enter(self, phase: str) -> None:
        """Count the next handshakes under ``phase``."""
        with self._lock:
            self._close_phase()
            self._phase = phase
            self.tallies.setdefault(phase, Tally())

    def wait_for(self, handshakes: int, timeout: float = 120.0) -> None:
        """Return once the current phase has seen ``handshakes`` handshakes (each phase is judged on
        some, however fast the driver moves)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._thread.is_alive():
            with self._lock:
                tally = self.tallies[self._phase]
                if tally.ok + tally.failed >= handshakes:
                    return
            time.sleep(self.interval / 2)
        raise AssertionError(f"{self.server}: fewer than {handshakes} handshakes in phase {self._phase!r}")

    def present(self, identity: ClientIdentity) -> None:
        """Present ``identity`` from the next handshake on (the client's own certificate moved)."""
        with self._lock:
            self.identity = identity

    def stop(self) -> dict[str, Tally]:
        self._stop.set()
        self._thread.join(timeout=30)
        with self._lock:
            self._close_phase()
        return self.tallies

    def _close_phase(self) -> None:
        now = time.monotonic()
        if self._phase:
            self.tallies[self._phase].seconds += now - self._since
        self._since = now

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                phase, identity = self._phase, self.identity
            reason = self.handshake(identity)
            with self._lock:
                tally = self.tallies[phase]
                if reason:
                    tally.failed += 1
                    tally.reasons[reason] += 1
                else:
                    tally.ok += 1
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def handshake(self, identity: ClientIdentity) -> str:
        """One handshake and request: ``""`` if the server was verified and answered, else why not."""
        try:
            context = ssl.create_default_context(cafile=str(self.trust_file))
            context.load_cert_chain(str(identity.certificate), str(identity.key))
            with (
                socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw,
                context.wrap_socket(raw, server_hostname=self.hostname) as tls,
            ):
                tls.sendall(f"GET / HTTP/1.1\r\nHost: {self.hostname}\r\nConnection: close\r\n\r\n".encode())
                status = tls.recv(12)
        except ssl.SSLCertVerificationError as exc:
            return f"server not verified: {exc.verify_message}"
        except (OSError, ssl.SSLError) as exc:
            return f"{type(exc).__name__}: {getattr(exc, 'reason', None) or exc}"
        # Apache and HAProxy end the handshake of a client whose CA they do not trust; nginx finishes
        # it and answers 400 ("The SSL certificate error"). Any other answer is the server's page
        # (the test servers' Apache has none to show: 403).
        if not status.startswith(b"HTTP/1.1 ") or status.startswith(b"HTTP/1.1 400"):
            return f"answered {status.decode(errors='replace').strip() or 'nothing'}"
        return ""


def table(loads: list[HandshakeLoad], phases: list[str]) -> str:
    """Handshakes per phase and per server: ok, failed, rate."""
    lines = [f"{'phase':<14} " + " ".join(f"{load.server:>24}" for load in loads)]
    for phase in phases:
        cells = []
        for load in loads:
            tally = load.tallies.get(phase, Tally())
            cells.append(f"{tally.ok:>6} ok {tally.failed:>3} failed {tally.rate:>5.1f}/s")
        lines.append(f"{phase:<14} " + " ".join(f"{cell:>24}" for cell in cells))
    return "\n".join(lines)
