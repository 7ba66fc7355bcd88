"""A stale TLS worker: a separate process in the port's SO_REUSEPORT group, serving a certificate.

What it plays: a worker left over from before a reload that still holds a listener on the server's
port and serves the certificate it loaded (under SO_REUSEPORT the kernel hands it a share of the
new connections; Apache with ``ListenCoresBucketsRatio`` and nginx with ``listen ... reuseport``
put their listeners in such a group). Run as a script (standard library only, so it starts in
milliseconds); :class:`StaleWorker` starts it and waits until it listens.

Modes: ``serve`` completes the handshake and holds the connection until the client closes it;
``drop`` accepts and closes at once (a worker that fails connections). ``--drain-on-change FILE``
with ``--drain-after SECONDS``: once FILE changes (the installer swapped it), the worker keeps
serving for SECONDS, then closes its listener and exits (a worker that drains within the bound).
It prints ``listening`` when bound, then one ``served`` or ``dropped`` line per connection and a
``changed`` line when FILE changed (flushed, so a test can read how many it served after the swap).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _serve(connection: socket.socket, context: ssl.SSLContext | None, lock: threading.Lock) -> None:
    with contextlib.suppress(OSError), connection:
        if context is None:
            with lock:
                print("dropped", flush=True)
            return
        connection.settimeout(5)
        with context.wrap_socket(connection, server_side=True) as tls:
            with lock:
                print("served", flush=True)
            with contextlib.suppress(OSError):
                tls.recv(1)  # hold the connection until the client closes it (or 5 s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True, help="certificate chain file (PEM)")
    parser.add_argument("--key", required=True)
    parser.add_argument("--mode", choices=("serve", "drop"), default="serve")
    parser.add_argument("--drain-on-change", default="", metavar="FILE")
    parser.add_argument("--drain-after", type=float, default=0.0, metavar="SECONDS")
    args = parser.parse_args()
    context: ssl.SSLContext | None = None
    if args.mode == "serve":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(64)
    listener.settimeout(0.05)
    watched = _signature(args.drain_on_change) if args.drain_on_change else None
    drain_at: float | None = None
    lock = threading.Lock()
    print("listening", flush=True)
    while drain_at is None or time.monotonic() < drain_at:
        if args.drain_on_change and drain_at is None and _signature(args.drain_on_change) != watched:
            drain_at = time.monotonic() + args.drain_after
            with lock:
                print("changed", flush=True)
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            break
        connection.setblocking(True)
        threading.Thread(target=_serve, args=(connection, context, lock), daemon=True).start()
    listener.close()
    with lock:
        print("drained", flush=True)
    time.sleep(0.5)  # let the connections in hand finish
    return 0


class StaleWorker:
    """The script as a child process; ``lines()`` is what it printed so far."""

    def __init__(
        self,
        port: int,
        cert: Path,
        key: Path,
        *,
        mode: str = "serve",
        drain_on_change: Path | None = None,
        drain_after: float = 0.0,
    ) -> None:
        command = [sys.executable, "-I", __file__, "--port", str(port), "--cert", str(cert), "--key", str(key)]
        command += ["--mode", mode]
        if drain_on_change is not None:
            command += ["--drain-on-change", str(drain_on_change), "--drain-after", str(drain_after)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._lines: list[str] = []
        assert self.process.stdout is not None
        first = self.process.stdout.readline().strip()
        if first != "listening":
            self.process.kill()
            _, err = self.process.communicate(timeout=10)
            raise RuntimeError(f"the stale worker did not start on port {port}: {err.strip()}")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.append(line.strip())

    def lines(self) -> list[str]:
        return list(self._lines)

    def served_after_change(self) -> int:
        lines = self.lines()
        after = lines[lines.index("changed") + 1 :] if "changed" in lines else []
        return after.count("served")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(timeout=5)


@contextlib.contextmanager
def stale_worker(
    port: int,
    cert: Path,
    key: Path,
    *,
    mode: str = "serve",
    drain_on_change: Path | None = None,
    drain_after: float = 0.0,
) -> Iterator[StaleWorker]:
    worker = StaleWorker(port, cert, key, mode=mode, drain_on_change=drain_on_change, drain_after=drain_after)
    try:
        yield worker
    finally:
        worker.stop()


if __name__ == "__main__":
    sys.exit(main())
