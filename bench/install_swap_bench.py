"""Benchmark: swap a certificate on the real Apache with RunUpdateTLS while clients keep connecting.

Run from the repository root as root, with apache2 and the aws CLI installed:
    python bench/install_swap_bench.py [--threads 4] [--handshakes 800]

Starts Debian's apache2 on a loopback port and moto's server, runs the install document through
the local SSM runner while a bounded number of TLS handshakes hammer the port, and prints the
handshakes attempted and failed, which certificates they saw, the seconds from document start
to the first handshake that sees the new certificate, and from there to the document's end (the
served-truth check's 16 fresh connections, the commit and the fleet record).
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--handshakes", type=int, default=3000, help="upper bound on handshakes (default 3000)")
    args = parser.parse_args()

    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    from rotation.build.ssm_documents import DOCUMENTS_DIR
    from rotation.cli.local_apache import LocalApache as Apache
    from rotation.cli.local_apache import free_port
    from rotation.emulation.ssm_runner import run_document
    from tests.support.certs import LocalCA

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    hostname = "www.certrotate.test"
    ca = LocalCA(name="certrotate Bench CA")
    moto_port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{moto_port}"
    with tempfile.TemporaryDirectory(prefix="certrotate-swap-") as directory:
        apache = Apache(Path(directory) / "apache", free_port())
        apache.write_bundle(ca.issue([hostname]))
        apache.start()
        try:
            new = ca.issue([hostname])
            sm = boto3.client(
                "secretsmanager",
                region_name="us-east-1",
                endpoint_url=endpoint,
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
            )
            arn = sm.create_secret(Name="bench/web", SecretString=json.dumps(new.to_fields()))["ARN"]
            old_serial = serial_over_tls(apache.port, hostname)
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
                        serial = serial_over_tls(apache.port, hostname)
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
                **apache.installer_environment(),
            }
            document_start = time.monotonic()
            result = run_document(
                DOCUMENTS_DIR / "RunUpdateTLS.yaml",
                {"SecretArn": arn, **apache.document_parameters()},
                env=env,
            )
            document_seconds = time.monotonic() - document_start
            time.sleep(0.5)
            stop.set()
            for thread in threads:
                thread.join()
        finally:
            apache.stop()
            server.stop()
    print("handshakes per 250 ms:", [sum(1 for t in stamps if i * 0.25 <= t < (i + 1) * 0.25) for i in range(16)])
    attempted = sum(seen.values()) + len(failures)
    print(f"install document: {'ok' if result.ok else 'FAILED'} in {document_seconds:.2f} s")
    print(f"handshakes attempted: {attempted}, failed: {len(failures)} ({args.threads} threads)")
    print(
        f"served old certificate: {seen.get(old_serial, 0)}, new: {seen.get(new.certificate.serial_number, 0)}, "
        f"other: {sum(v for k, v in seen.items() if k not in (old_serial, new.certificate.serial_number))}"
    )
    if first_new:
        print(
            f"seconds from document start to the new certificate served: "
            f"{first_new[0] - (document_start - started):.2f}"
        )
        # what follows the first sighting: the served-truth check (16 fresh connections), the commit, the record
        print(
            f"seconds from the new certificate served to the document's end: "
            f"{document_start - started + document_seconds - first_new[0]:.2f}"
        )
    return 0 if result.ok and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
