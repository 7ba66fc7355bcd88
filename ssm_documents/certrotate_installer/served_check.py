"""The served-truth check: every fresh TLS connection presents the expected certificate.

One connection proves only the worker it reached; a worker left from before a reload (or another
process in the port's SO_REUSEPORT group) serves the old certificate to its share. After a first
sighting, SAMPLE fresh connections with SNI must all present it byte for byte: ROUND at a time,
held open until the round is done (a busy worker cannot take the next), a round every SPACING s.
A stale share p escapes with probability (1 - p) ** 16, whatever the spacing: what spreads the
rounds is a worker still taking its stop signal when the new one first answers. Each server's old
workers stop accepting as they take it (Apache's listener thread reads the pipe of death the parent
writes before it starts a new generation, nginx's workers close their listeners on QUIT, HAProxy's
old process unbinds on its soft stop), within milliseconds, so 0.1 s between rounds (16 over at
least 0.3 s after the sighting, plus the polling before it) covers that window many times over; a
share that never stops is the (1 - p) ** 16 case. Anything else restarts the count; bound
SERVE_WAIT_SECONDS, with PROOF_SECONDS after a late sighting.
``Server.wait_for`` runs it for every server, on the addresses the server's own processes listen
on (``server_processes.server_listeners``, looked up before each round): a server bound to one
address or to IPv6 only is reached there, and another user's listener on another address of the
port is never asked. ``summary`` is the fleet record's ServedCheck.
"""

import contextlib
import socket
import ssl
import threading
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from .certificate import CertificateFacts, certificate_facts
from .output import printable

SERVE_WAIT_SECONDS = 30.0  # the bound of the whole check after a reload
RECHECK_SECONDS = 5.0  # the bound when nothing was reloaded (a restored or already installed certificate)
SAMPLE = 16
ROUND = 4
SPACING = 0.1  # seconds between rounds once the new certificate was seen (see above)
POLL = 0.1  # seconds between single connections until one presents the expected certificate
PROOF_SECONDS = 5.0
CONNECT_SECONDS = 3.0
SUMMARY_LIMIT = 128  # characters of the fleet record's ServedCheck
STALE_PREFIX = "stale:"  # a ServedCheck that saw another certificate (the fleet reader filters on it)
MATCH = "="  # a probe's label: the expected certificate, byte for byte
NO_TLS = ""  # a probe's label: no TLS handshake (refused, reset, timed out); else the serial presented


class ServedProof(NamedTuple):
    """The labels of the last SAMPLE probes, the expected serial, and how long the check took."""

    ok: bool
    labels: Tuple[str, ...]
    expected: str
    seconds: float
    listening: bool = True  # whether a listener of the server's own processes was ever found

    @property
    def summary(self) -> str:
        return served_summary(self.labels)

    def why(self, port: int) -> str:
        return served_explanation(self, port)


def probe_label(der: Optional[bytes], expected: bytes) -> str:
    """Pure: the label of one probe's certificate."""
    if der is None:
        return NO_TLS
    if der == expected:
        return MATCH
    try:
        return certificate_facts(der).serial_hex
    except ValueError:
        return "unparsable"


def _counted(labels: Sequence[str]) -> List[Tuple[str, int]]:
    counts: Dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def served_summary(labels: Sequence[str]) -> str:
    """Pure: ``16/16`` when every probe presented the expected certificate, else e.g.
    ``stale: 3/16 serial AB12, +1 other, no handshake: 1/16, new: 11/16`` (the most frequent other
    serial in full, as revocation matches it), at most SUMMARY_LIMIT characters; '' for no probe."""
    total = len(labels)
    counted = _counted(labels)
    counts = dict(counted)
    if not total or counts.get(MATCH) == total:
        return f"{total}/{total}" if total else ""
    others = [(label, count) for label, count in counted if label not in (MATCH, NO_TLS)]
    parts: List[str] = []
    if others:
        parts.append(f"{STALE_PREFIX} {others[0][1]}/{total} serial {others[0][0]}")
        if len(others) > 1:
            parts.append(f"+{sum(count for _, count in others[1:])} other")
    if counts.get(NO_TLS):
        parts.append(f"no handshake: {counts[NO_TLS]}/{total}")
    parts.append(f"new: {counts.get(MATCH, 0)}/{total}")
    return printable(", ".join(parts))[:SUMMARY_LIMIT]


def served_explanation(proof: ServedProof, port: int) -> str:
    """Pure: the failure message: what the last connections presented, and how long it waited."""
    if all(label == NO_TLS for label in proof.labels):
        where = "" if proof.listening else "; no process of the server's own listens on that port"
        return f"nothing answers TLS on port {port} (waited {proof.seconds:.1f} s){where}"
    seen = []
    for label, count in _counted(proof.labels):
        if label == MATCH:
            seen.append(f"{count} the expected serial {proof.expected}")
        else:
            seen.append(f"{count} no TLS handshake" if label == NO_TLS else f"{count} serial {label}")
    stale = any(label not in (MATCH, NO_TLS) for label in proof.labels)
    hint = "; a worker left from an earlier reload (or another process on the port) serves another certificate"
    return "of the last {} fresh connections to port {} (in {:.1f} s), {}{}".format(
        len(proof.labels), port, proof.seconds, ", ".join(seen), hint if stale else ""
    )


def _probe(address: Tuple[str, int], hostname: str, barrier: Any, found: List[Optional[bytes]], index: int) -> None:
    """One fresh TLS connection with SNI: its certificate into ``found[index]``, the connection held
    open until every connection of its round has one."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the DER served is compared byte for byte
    tls: Optional[ssl.SSLSocket] = None
    try:
        raw = socket.create_connection(address, timeout=CONNECT_SECONDS)
        try:
            tls = context.wrap_socket(raw, server_hostname=hostname)
            found[index] = tls.getpeercert(binary_form=True)
        except BaseException:
            raw.close()
            raise
    except (OSError, ssl.SSLError, ValueError):
        pass
    finally:
        with contextlib.suppress(Exception):
            barrier.wait(CONNECT_SECONDS * 2)
        if tls is not None:
            tls.close()


def probe_round(addresses: Sequence[Tuple[str, int]], hostname: str, size: int, turn: int = 0) -> List[Optional[bytes]]:
    """``size`` fresh TLS connections at once, spread over ``addresses`` (from the ``turn``-th on);
    each one's certificate (None: no handshake; every one None when there is no address)."""
    found: List[Optional[bytes]] = [None] * size
    if not addresses:
        return found
    barrier = threading.Barrier(size)
    if size == 1:
        _probe(addresses[turn % len(addresses)], hostname, barrier, found, 0)
        return found
    threads = [
        threading.Thread(
            target=_probe,
            args=(addresses[(turn + index) % len(addresses)], hostname, barrier, found, index),
            daemon=True,
        )
        for index in range(size)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(CONNECT_SECONDS * 4)
    return list(found)


def prove_served(
    listeners: Callable[[], Sequence[Tuple[str, int]]],
    hostname: str,
    facts: CertificateFacts,
    deadline_seconds: float = SERVE_WAIT_SECONDS,
) -> ServedProof:
    """Single connections until one presents ``facts``' certificate, then rounds until the last
    SAMPLE connections all did, within the bound (see the module's docstring). ``listeners`` gives,
    before each round, the addresses the server's own processes listen on (none: no handshake)."""
    started = time.monotonic()
    deadline = started + deadline_seconds
    labels: List[str] = []
    sighted = listening = False
    turn = 0
    while True:
        round_started = time.monotonic()
        size = ROUND if sighted else 1
        addresses = listeners()
        listening = listening or bool(addresses)
        found = probe_round(addresses, hostname, size, turn)
        turn += size
        labels = (labels + [probe_label(der, facts.der) for der in found])[-SAMPLE:]
        first = not sighted and labels[-1] == MATCH
        if first:
            sighted = True
            deadline = max(deadline, time.monotonic() + PROOF_SECONDS)
        now = time.monotonic()
        if sighted and len(labels) == SAMPLE and all(label == MATCH for label in labels):
            return ServedProof(True, tuple(labels), facts.serial_hex, now - started, listening)
        if now >= deadline:
            return ServedProof(False, tuple(labels), facts.serial_hex, now - started, listening)
        pause = 0.0 if first else SPACING if sighted else POLL  # the first round right after the sighting
        time.sleep(max(0.0, min(pause - (now - round_started), deadline - now)))
