"""Benchmark: what the fleet view costs a host run, and ``certrotate hosts`` over many hosts.

Run from the repository root:  python bench/fleet_bench.py [--runs 5] [--hosts 1000]

1. The RunUpdateTLS document on a converged host (the association's usual run: the certificate is
   already installed), against moto's server, with the fleet record (``AWS_SSM_INSTANCE_ID`` set,
   as the SSM agent sets it: one more aws CLI call) and without it; median of ``--runs`` each.
2. The installed ``certrotate hosts --output json`` for one secret with ``--hosts`` instances
   reporting (PutInventory into moto's server through rotation.emulation.ssm_inventory).
Needs apache2 (the host's Apache serves the certificate) and the aws CLI beside this interpreter.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.cli import SCRIPT  # noqa: E402 - the console script installed with this interpreter


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hosts", type=int, default=1000)
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    from rotation.build.ssm_documents import DOCUMENTS_DIR
    from rotation.cli.local_apache import LocalApache as Apache
    from rotation.cli.local_apache import free_port
    from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
    from rotation.emulation.ssm_runner import run_document
    from rotation.fleet.view import INVENTORY_TYPE
    from tests.support.certs import LocalCA

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    hostname = "www.certrotate.test"
    bundle = LocalCA(name="certrotate Fleet Bench CA").issue([hostname])
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    keys = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
    beside = Path(sys.executable).with_name("aws")
    aws = str(beside) if beside.exists() else shutil.which("aws") or "aws"
    timings: dict[str, list[float]] = {"with the fleet record": [], "without": []}
    try:
        with ssm_inventory_in_moto(), tempfile.TemporaryDirectory(prefix="certrotate-fleet-") as directory:
            sm = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=endpoint, **keys)
            fields = {"CERTIFICATE_TYPE": "PCA_ISSUED", "COMMON_NAME": hostname, **bundle.to_fields()}
            arn = sm.create_secret(Name="bench/fleet", SecretString=json.dumps(fields))["ARN"]
            apache = Apache(Path(directory) / "apache", free_port())
            apache.write_bundle(bundle)  # converged: the secret's certificate is already served
            apache.start()
            env = {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "PATH": f"{Path(aws).parent}:{os.environ['PATH']}",
                **apache.installer_environment(),
            }
            try:
                for _ in range(args.runs):
                    for label, instance in (("with the fleet record", "i-0123456789abcdef0"), ("without", None)):
                        started = time.monotonic()
                        result = run_document(
                            DOCUMENTS_DIR / "RunUpdateTLS.yaml",
                            {"SecretArn": arn, **apache.document_parameters()},
                            env=env,
                            instance_id=instance,
                        )
                        timings[label].append(time.monotonic() - started)
                        assert result.ok and "already installed" in result.stdout, result.stderr
            finally:
                apache.stop()

            ssm = boto3.client("ssm", region_name="us-east-1", endpoint_url=endpoint, **keys)
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            fingerprint = bundle.fingerprint_sha256
            for n in range(args.hosts):
                content = [
                    {
                        "SecretArn": arn,
                        "CertificateFile": "/etc/ssl/certs/www.pem",
                        "Status": "unchanged",
                        "ExitCode": "0",
                        "RecordedAt": now,
                        "Serial": bundle.serial_hex,
                        "FingerprintSha256": fingerprint,
                    }
                ]
                item = {"TypeName": INVENTORY_TYPE, "SchemaVersion": "1.0", "CaptureTime": now, "Content": content}
                ssm.put_inventory(InstanceId=f"i-{n:017x}", Items=[item])
            cli_env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            }
            started = time.monotonic()
            shown = subprocess.run(
                [str(SCRIPT), "hosts", "bench/fleet", "--output", "json", "--endpoint-url", endpoint],
                capture_output=True,
                text=True,
                env=cli_env,
                check=True,
            )
            hosts_seconds = time.monotonic() - started
            (secret,) = json.loads(shown.stdout)["secrets"]
            assert secret["counts"]["current"] == args.hosts + 1, secret["counts"]  # and the bench host
    finally:
        server.stop()
    for label, values in timings.items():
        print(f"RunUpdateTLS on a converged host, {label}: median {statistics.median(values):.2f} s ({args.runs} runs)")
    extra = statistics.median(timings["with the fleet record"]) - statistics.median(timings["without"])
    print(f"the fleet record adds {extra:.2f} s per run (one aws CLI call)")
    print(
        f"certrotate hosts, {args.hosts} instances reporting: {hosts_seconds:.2f} s",
        f"({-(-args.hosts // 50)} GetInventory pages)",
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f},",
        f"Python {platform.python_version()}",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
