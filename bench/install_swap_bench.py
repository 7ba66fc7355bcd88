"""Benchmark: swap a certificate with RunUpdateTLS on each real server while clients keep connecting.

Run from the repository root as root, with apache2, nginx, haproxy and the aws CLI installed:
    python bench/install_swap_bench.py [--threads 4] [--handshakes 20000] [--servers apache,nginx,haproxy]

For each server (Debian's apache2, nginx and haproxy on a loopback port; ``haproxy-reload`` is
HAProxy without a runtime socket in the host file, so reloaded through its master instead of the
Runtime API) it starts moto's server, runs the install document through the local SSM runner
while a bounded number of TLS handshakes hammer the port, and prints the handshakes attempted and
failed, which certificates they saw, the seconds from document start to the first handshake that
sees the new certificate, and from there to the document's end (the served-truth check's 16 fresh
connections, the commit and the fleet record); then one table, side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


CLIENT = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
CLIENT.check_hostname = False
CLIENT.verify_mode = ssl.CERT_NONE  # what is measured is the served serial, not trust


def serial_over_tls(port: int, hostname: str) -> int:
    from cryptography import x509

    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        CLIENT.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def server_kinds() -> tuple[str, ...]:
    """Every server the demo's registry runs (``LOCAL_SERVERS``), and ``haproxy-reload``."""
    from rotation.cli.local_servers import LOCAL_SERVERS

    return (*LOCAL_SERVERS, "haproxy-reload")


def local_server(kind: str, root: Path, port: int) -> Any:
    from rotation.cli.local_servers import LOCAL_SERVERS

    return LOCAL_SERVERS[kind.split("-", maxsplit=1)[0]](root, port)


def run_one(kind: str, args: argparse.Namespace, endpoint: str, ca: Any) -> dict[str, Any]:
    import boto3

    from rotation.build.ssm_documents import DOCUMENTS_DIR
    from rotation.cli.local_apache import free_port
    from rotation.emulation.ssm_runner import run_document

    hostname = "www.certrotate.test"
    with tempfile.TemporaryDirectory(prefix="certrotate-swap-") as directory:
        server = local_server(kind, Path(directory) / kind.split("-", maxsplit=1)[0], free_port())
        server.write_bundle(ca.issue([hostname]))
        server.start()
        if kind == "haproxy-reload":
            server.write_installer_config(haproxy_runtime_socket=None)
        try:
            new = ca.issue([hostname])
            sm = boto3.client(
                "secretsmanager",
                region_name="us-east-1",
                endpoint_url=endpoint,
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
            )
            arn = sm.create_secret(Name=f"bench/{kind}", SecretString=json.dumps(new.to_fields()))["ARN"]
            old_serial = serial_over_tls(server.port, hostname)
            lock, stop = threading.Lock(), threading.Event()
            seen: dict[int, int] = {}
            failures: list[str] = []
            first_new: list[float] = []
            stamps: list[float] = []
            started = time.monotonic()

            def hammer() -> None:
                while not stop.is_set():
                    with lock:
                        if sum(seen.values()) + len(failures) >= args.handshakes:
                            return
                    try:
                        serial = serial_over_tls(server.port, hostname)
                    except (OSError, ssl.SSLError) as exc:
                        with lock:
                            failures.append(type(exc).__name__)
                        continue
                    with lock:
                        stamps.append(time.monotonic() - started)
                        seen[serial] = seen.get(serial, 0) + 1
                        if serial == new.certificate.serial_number and not first_new:
                            first_new.append(time.monotonic() - started)

            threads = [threading.Thread(target=hammer) for _ in range(args.threads)]
            for thread in threads:
                thread.start()
            beside = Path(sys.executable).with_name("aws")  # its directory first: python3 there is plain
            aws = str(beside) if beside.exists() else shutil.which("aws") or "aws"
            env = {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "PATH": f"{Path(aws).parent}:{os.environ['PATH']}",
                **server.installer_environment(),
            }
            document_start = time.monotonic()
            result = run_document(
                DOCUMENTS_DIR / "RunUpdateTLS.yaml",
                {"SecretArn": arn, **server.document_parameters()},
                env=env,
            )
            document_seconds = time.monotonic() - document_start
            time.sleep(0.5)
            stop.set()
            for thread in threads:
                thread.join()
        finally:
            server.stop()
    attempted = sum(seen.values()) + len(failures)
    served_after = first_new[0] - (document_start - started) if first_new else None
    per_quarter = [sum(1 for t in stamps if i * 0.25 <= t < (i + 1) * 0.25) for i in range(16)]
    print(f"[{kind}] handshakes per 250 ms:", per_quarter)
    print(f"[{kind}] install document: {'ok' if result.ok else 'FAILED'} in {document_seconds:.2f} s")
    if not result.ok:
        print(f"[{kind}] {result.stderr.strip()}")
    print(f"[{kind}] handshakes attempted: {attempted}, failed: {len(failures)} ({args.threads} threads)")
    new_serial = new.certificate.serial_number
    print(
        f"[{kind}] served old certificate: {seen.get(old_serial, 0)}, new: {seen.get(new_serial, 0)}, "
        f"other: {sum(v for k, v in seen.items() if k not in (old_serial, new_serial))}"
    )
    tail = document_start - started + document_seconds - first_new[0] if first_new else None
    if served_after is not None and tail is not None:
        print(f"[{kind}] seconds from document start to the new certificate served: {served_after:.2f}")
        # what follows the first sighting: the served-truth check (16 fresh connections), the commit, the record
        print(f"[{kind}] seconds from the new certificate served to the document's end: {tail:.2f}")
    return {
        "ok": result.ok,
        "tail": tail,
        "attempted": attempted,
        "failed": len(failures),
        "document": document_seconds,
        "served_after": served_after,
    }


def main() -> int:
    servers = server_kinds()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--handshakes", type=int, default=20000, help="safety bound on handshakes per server (default 20000)"
    )
    parser.add_argument("--servers", default=",".join(servers), help=f"comma-separated, of {', '.join(servers)}")
    args = parser.parse_args()
    kinds = [k for k in args.servers.split(",") if k]
    unknown = [k for k in kinds if k not in servers]
    if unknown:
        parser.error(f"--servers: unknown {', '.join(unknown)} (allowed: {', '.join(servers)})")

    import logging

    from moto.server import ThreadedMotoServer

    from rotation.cli.local_apache import free_port
    from tests.support.certs import LocalCA

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    ca = LocalCA(name="certrotate Bench CA")
    moto_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    try:
        results = {kind: run_one(kind, args, f"http://127.0.0.1:{moto_port}", ca) for kind in kinds}
    finally:
        moto.stop()
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'server':<16}{'document':>10}{'handshakes':>12}{'failed':>8}{'new served after':>18}{'then to end':>13}")
    for kind, r in results.items():
        after = f"{r['served_after']:.2f} s" if r["served_after"] is not None else "never"
        tail = f"{r['tail']:.2f} s" if r["tail"] is not None else "-"
        print(f"{kind:<16}{r['document']:>8.2f} s{r['attempted']:>12}{r['failed']:>8}{after:>18}{tail:>13}")
    return 0 if all(r["ok"] and not r["failed"] and r["served_after"] is not None for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
