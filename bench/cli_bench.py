"""Benchmark: ``certrotate status`` over 1,000 certificate secrets on moto's server, and the demo.

Run from the repository root:  python bench/cli_bench.py [--secrets 1000] [--runs 3]

Prints the wall time of the installed ``certrotate status --json`` (a subprocess, as a user runs
it), the AWS calls one status makes (counted in process), the wall time of ``certrotate demo``
with the real Apache and with the Python stand-in (median of ``--runs``), the cold import time
of ``rotation.handler``, and the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.cli import SCRIPT  # noqa: E402 - the console script installed with this interpreter

CERTROTATE = str(SCRIPT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    from rotation.cli.inventory import certificate_secrets
    from rotation.cli.local_apache import free_port
    from rotation.cli.session import AwsContext
    from tests.support.certs import CA_ARN, LocalCA

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")})
    try:
        sm = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=endpoint)
        bundle = LocalCA().issue(["app.example.internal"])
        value = json.dumps(
            {
                "CERTIFICATE_TYPE": "PCA_ISSUED",
                "CA_ARN": CA_ARN,
                "COMMON_NAME": "app.example.internal",
                **bundle.to_fields(),
            }
        )
        for index in range(args.secrets):
            sm.create_secret(Name=f"bench/cert-{index:05d}", SecretString=value)
        walls = []
        for _ in range(args.runs):
            start = time.perf_counter()
            result = subprocess.run(
                [CERTROTATE, "status", "--json", "--endpoint-url", endpoint],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            walls.append(time.perf_counter() - start)
            rows = json.loads(result.stdout)
        calls: Counter[str] = Counter()
        aws = AwsContext(None, "us-east-1", endpoint)
        original = aws.client

        def counted(service: str, region: str | None = None, session: object = None) -> object:
            made = original(service, region, session)
            made.meta.events.register("before-call", lambda model, **_: calls.update([model.name]))
            return made

        aws.client = counted  # type: ignore[method-assign]
        certificate_secrets(aws)
    finally:
        server.stop()
    print(
        f"status over {len(rows)} certificate secrets (moto server, subprocess, median of {args.runs}): "
        f"{statistics.median(walls):.2f} s"
    )
    print(
        "AWS calls per status: "
        + ", ".join(f"{k}={v}" for k, v in sorted(calls.items()))
        + f" (total {sum(calls.values())})"
    )
    for extra in ([], ["--no-apache"]):
        demo_walls, used, codes = [], "", set()
        for _ in range(args.runs):
            start = time.perf_counter()
            demo = subprocess.run([CERTROTATE, "demo", *extra], capture_output=True, text=True, env=env, check=False)
            demo_walls.append(time.perf_counter() - start)
            codes.add(demo.returncode)
            used = "Apache" if "installed on Apache" in demo.stdout else "Python TLS server"
        print(
            f"certrotate demo {' '.join(extra)}: exit {sorted(codes)}, {statistics.median(demo_walls):.1f} s wall "
            f"(median of {args.runs}; min {min(demo_walls):.1f}, max {max(demo_walls):.1f}; served by {used})"
        )
    from bench.rotation_bench import import_time_ms

    print(f"rotation.handler cold import: {import_time_ms():.1f} ms (median of 7 fresh interpreters, -X importtime)")
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
