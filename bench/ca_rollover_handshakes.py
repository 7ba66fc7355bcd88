"""Benchmark: handshakes through a CA rollover, per phase and per server (issue 27's proof).

Run from the repository root:  python bench/ca_rollover_handshakes.py [--rate 12]

Apache, nginx and HAProxy on loopback as mutual-TLS servers; certrotate installs their leaves and
client-CA bundles; one client per server shakes hands ``--rate`` times a second, verifying the server
with the host's trust file and presenting its own client certificate, while the operator runs
``certrotate ca-rollover start`` and ``advance`` from an RSA root to an EC root
(:mod:`tests.support.rollover_fleet`, the same scenario as
``tests/integration/test_ca_rollover_handshakes.py``). Prints the handshakes that succeeded and
failed in each phase on each server, and the rate reached. Needs apache2, nginx, haproxy and the
aws CLI.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "ssm_documents")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=12.0, help="handshakes a second per server (default 12)")
    parser.add_argument(
        "--abort-in", action="append", default=[], metavar="PHASE", help="abort once in PHASE, then advance again"
    )
    args = parser.parse_args()

    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    for variable, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ.setdefault(variable, value)
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    from moto.server import ThreadedMotoServer

    from rotation.cli.local_apache import free_port
    from tests.integration.conftest import aws_cli
    from tests.support.handshakes import table
    from tests.support.rollover_fleet import Fleet, rotation_function, run_rollover

    aws = aws_cli()
    if aws is None:
        print("the aws CLI is not installed (pip install awscli)", file=sys.stderr)
        return 2
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    host_env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PATH": f"{Path(aws).parent}:{os.environ.get('PATH', '')}",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    started = time.monotonic()
    try:
        # The rotation function's log lines and metrics (stdout, from its threads) are not the figures.
        with (
            tempfile.TemporaryDirectory() as root,
            rotation_function(endpoint) as failures,
            contextlib.redirect_stdout(io.StringIO()),
        ):
            fleet = Fleet(endpoint, host_env, Path(root))
            try:
                outcome = run_rollover(fleet, rate=args.rate, abort_in=tuple(args.abort_in))
            finally:
                fleet.stop()
    finally:
        server.stop()
    seconds = time.monotonic() - started
    failed = sum(t.failed for by_phase in outcome.tallies.values() for t in by_phase.values())
    ok = sum(t.ok for by_phase in outcome.tallies.values() for t in by_phase.values())
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(f"rollover RSA root -> EC root, phases: {', '.join(outcome.phases)}; {seconds:.0f} s")
    print(table(outcome.loads, outcome.phases))
    print(f"handshakes: {ok} succeeded, {failed} failed; rotation function failures: {len(failures)}")
    return 0 if failed == 0 and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
