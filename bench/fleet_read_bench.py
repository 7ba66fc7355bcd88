"""Benchmark: fleet-wide reads (``certrotate status`` and ``certrotate hosts``) with network latency.

Run from the repository root:  python bench/fleet_read_bench.py [--secrets 1000,10000]
[--hosts 1000,10000,20000] [--accounts 3] [--latency-ms 50] [--names sequential|teams]

The installed ``certrotate`` runs against moto's server (``ThreadedMotoServer``, one thread per
request) in which every request first waits ``--latency-ms`` (a sleep: what a call to a real
endpoint costs in round trip; moto itself answers at CPU cost), and in which Secrets Manager's
BatchGetSecretValue quota (100/s) is enforced by a token bucket, so a read that went over it would
show throttled calls. moto's ListSecrets is given paging that costs a page per page
(``rotation.emulation.secrets_listing``; as moto ships it, a full read is O(n²)), and secret
lookups by ARN or name from an index (moto scans every secret per lookup: 10,000
BatchGetSecretValue reads by ARN are O(n²) too), and moto's DynamoDB Scan sorts, hashes and
copies at a page's cost (``rotation.emulation.dynamodb_scan``: moto sorted the whole table with
casts in every comparison and copied every item read, on every page of every segment). ``status``
lists N certificate secrets; ``hosts`` reads N instances' records spread over ``--accounts``
accounts (each through its FleetViewRole), all for one secret.

The status secrets are realistic: each value holds a certificate, its two-certificate chain and an
RSA-2048 key with the metadata rotation writes (3-5 KB), and the issuance ledger table holds two
entries per secret (the current one, naming the AWSCURRENT version, and a superseded one), as
rotations leave it. ``status`` runs twice per count: with ``--ledger-table`` (no secret value is
read: ListSecrets and a parallel Scan of the ledger, pages of at most 1 MB as moto's DynamoDB
cuts them) and without (BatchGetSecretValue of every value, as before). Each line gives the wall
time, the CLI's CPU time (user+sys of the child), moto's (this process's CPU meanwhile: the emulated
endpoint shares the machine, which a real one does not) and the calls made per API.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.cli import SCRIPT  # noqa: E402 - the console script installed with this interpreter

REGION = "us-east-1"
KEYS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}


def cli_env() -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }


def timed(arguments: list[str]) -> tuple[float, dict[str, object]]:
    seconds, _, shown = timed_cpu(arguments)
    return seconds, shown


def timed_cpu(arguments: list[str]) -> tuple[float, float, Any]:
    """Wall seconds, CPU seconds (user+sys of the CLI process) and the JSON it printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    shown = subprocess.run([str(SCRIPT), *arguments], capture_output=True, text=True, env=cli_env(), check=False)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if shown.returncode not in (0, 1):
        raise SystemExit(f"certrotate {' '.join(arguments)} exited {shown.returncode}: {shown.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu, json.loads(shown.stdout)


TEAMS = (
    "payments",
    "platform",
    "identity",
    "search",
    "data",
    "web",
    "mobile",
    "billing",
    "security",
    "ml",
    "api",
    "infra",
)
SERVICES = ("gateway", "checkout", "ledger", "auth", "indexer", "frontend", "worker", "reports")


def secret_name(n: int, names: str) -> str:
    """``sequential``: ``bench/status/00042``; ``teams``: ``bench/status/<team>/<service>-00042`` (uneven teams)."""
    if names == "sequential":
        return f"bench/status/{n:05d}"
    share = (n * 0x9E3779B1 % 2**32) / 2**32  # spread evenly in [0, 1), then squared: a few big teams
    team = TEAMS[int(len(TEAMS) * share**2)]
    return f"bench/status/{team}/{SERVICES[n % len(SERVICES)]}-{n:05d}"


def seed_secrets(sm: object, count: int, have: int, names: str = "sequential") -> None:
    fields = {
        "CERTIFICATE_TYPE": "PCA_ISSUED",
        "CA_ARN": "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/00000000-0000-0000-0000-000000000000",
        "CERTIFICATE_SERIAL": "0A",
        "CERTIFICATE_NOT_AFTER": "2027-12-01T00:00:00Z",
    }
    for n in range(have, count):
        value = json.dumps({**fields, "COMMON_NAME": f"host{n}.example.internal"})
        sm.create_secret(Name=secret_name(n, names), SecretString=value)  # type: ignore[attr-defined]


def realistic_values(count: int = 40) -> list[dict[str, str]]:
    """Values as rotation leaves them: spec, certificate, two-certificate chain, RSA-2048 key, metadata."""
    from rotation.issuance.keys import KeyAlgorithm
    from tests.support.certs import LocalCA

    intermediate = LocalCA(name="Bench Root CA").subordinate("Bench Issuing CA")
    values = []
    for n in range(count):
        bundle = intermediate.issue([f"host{n}.example.internal"], key_algorithm=KeyAlgorithm.RSA_2048)
        values.append(
            {
                "CERTIFICATE_TYPE": "PCA_ISSUED",
                "CA_ARN": "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/"
                "00000000-0000-0000-0000-000000000000",
                "COMMON_NAME": f"host{n}.example.internal",
                "KEY_ALGORITHM": "RSA_2048",
                **bundle.to_fields(),
            }
        )
    return values


LEDGER_TABLE = "bench-ledger"


def seed_certificate_secrets(sm: Any, dynamodb: Any, values: list[dict[str, str]], count: int, have: int) -> None:
    """``count - have`` more realistic secrets, each with its current and one superseded ledger entry."""
    items: list[dict[str, Any]] = []
    for n in range(have, count):
        value = values[n % len(values)]
        made = sm.create_secret(Name=secret_name(n, "sequential"), SecretString=json.dumps(value))
        for serial, superseded in ((value["CERTIFICATE_SERIAL"], ""), (f"{n:X}0BEEF", "2026-06-01T00:00:00Z")):
            item = {
                "SecretArn": {"S": made["ARN"]},
                "Serial": {"S": serial},
                "CaArn": {"S": value["CA_ARN"]},
                "CertificateType": {"S": "PCA_ISSUED"},
                "VersionId": {"S": made["VersionId"] if not superseded else f"old-{n}"},
                "IssuedAt": {"S": "2026-06-01T00:00:00Z"},
                "NotAfter": {"S": value["CERTIFICATE_NOT_AFTER"]},
                "Fingerprint": {"S": value["CERTIFICATE_FINGERPRINT_SHA256"]},
                "CurrentFrom": {"S": "2026-06-01T00:00:00Z"},
                **({"SupersededAt": {"S": superseded}} if superseded else {}),
            }
            items.append({"PutRequest": {"Item": item}})
    for start in range(0, len(items), 25):
        dynamodb.batch_write_item(RequestItems={LEDGER_TABLE: items[start : start + 25]})


@contextlib.contextmanager
def plain_scan_responses() -> Iterator[None]:
    """moto's DynamoDB Scan answered as a JSON string built directly from its result, the body its
    generic, shape-driven serializer builds (``Items`` as DynamoDB-JSON ``AttributeValue`` maps,
    ``Count``, ``ScannedCount``, ``LastEvaluatedKey``) at a fraction of its cost: that serializer,
    not the scan, took most of moto's time, which a real endpoint does not spend. A projection of
    top-level names and an item's size are computed without moto's deep copies and again-and-again
    sums: the same attributes and sizes, for a table nothing writes meanwhile.
    """
    from moto.core.responses import ActionResult
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.scan
    original_project, original_size = Item.project, Item.size

    def project(self: Any, expressions: list[list[str]]) -> Any:
        # top-level names (all status projects): the same attributes, without moto's deep copy and
        # JSON round trip (the bench writes nothing while status reads)
        if all(len(path) == 1 for path in expressions):
            names = {path[0] for path in expressions}
            attrs = {k: v for k, v in self.attrs.items() if k in names}
            return Item(hash_key=self.hash_key, range_key=self.range_key, attrs=attrs)
        return original_project(self, expressions)

    def size(self: Any) -> int:  # the 1 MB page limit's measure, once per item (nothing changes)
        cached: int | None = self.__dict__.get("_bench_size")
        if cached is None:
            cached = self.__dict__["_bench_size"] = original_size(self)
        return cached

    def plain(value: Any) -> Any:
        if isinstance(value, DynamoType):
            return value.to_json()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    def scan(self: Any) -> Any:
        result = original(self)
        return json.dumps(plain(result.result)) if isinstance(result, ActionResult) else result

    DynamoHandler.scan = scan  # type: ignore[method-assign]
    Item.project, Item.size = project, size  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoHandler.scan = original  # type: ignore[method-assign]
        Item.project, Item.size = original_project, original_size  # type: ignore[method-assign]


STATUS_CALLS = (
    ("secretsmanager", "ListSecrets"),
    ("secretsmanager", "DescribeSecret"),
    ("dynamodb", "Scan"),
    ("secretsmanager", "BatchGetSecretValue"),
    ("secretsmanager", "GetSecretValue"),
)


def seed_hosts(arn: str, count: int, accounts: list[str], have: int) -> None:
    from rotation.emulation.ssm_inventory import put_inventory
    from rotation.fleet.view import INVENTORY_TYPE

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for n in range(have, count):
        content = [
            {
                "SecretArn": arn,
                "CertificateFile": "/etc/ssl/certs/www.pem",
                "Status": "unchanged",
                "ExitCode": "0",
                "RecordedAt": now,
                "Serial": "0A",
                "FingerprintSha256": "ab" * 32,
            }
        ]
        item = {"TypeName": INVENTORY_TYPE, "SchemaVersion": "1.0", "CaptureTime": now, "Content": content}
        instance = f"i-0{(n * 0x9E3779B97F4A7C15) % 16**16:016x}"  # distinct, and spread as EC2 ids are
        put_inventory(accounts[n % len(accounts)], REGION, instance, [item])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", default="1000,10000", help="secret counts for status (comma separated)")
    parser.add_argument("--hosts", default="1000,10000,20000", help="instance counts for hosts (comma separated)")
    parser.add_argument("--accounts", type=int, default=3)
    parser.add_argument(
        "--names", choices=("sequential", "teams"), default="sequential", help="how status's secrets are named"
    )
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    import boto3
    from moto.server import ThreadedMotoServer

    from rotation.cli.local_apache import free_port
    from rotation.emulation.dynamodb_scan import quick_scans
    from rotation.emulation.secrets_listing import indexed_secret_lookups, paged_list_secrets
    from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
    from rotation.emulation.throttling import latency_in_moto, throttled_moto
    from rotation.fleet.ledger import create_table

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    accounts = [f"{444455556600 + n}" for n in range(args.accounts)]
    roles = [f"arn:aws:iam::{a}:role/certrotate/FleetViewRole" for a in accounts]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"latency {args.latency_ms:g} ms per request; BatchGetSecretValue bucket 100/s; load before {load}")
    try:
        with (
            ssm_inventory_in_moto(),
            paged_list_secrets(),
            indexed_secret_lookups(),
            quick_scans(),
            plain_scan_responses(),
        ):
            sm = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint, **KEYS)
            dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint, **KEYS)
            create_table(dynamodb, LEDGER_TABLE)
            values = realistic_values()
            sizes = sorted(len(json.dumps(v)) for v in values)
            print(f"status values {sizes[0]}-{sizes[-1]} bytes; ledger: 2 entries per secret")
            have = 0
            for count in sorted(int(x) for x in args.secrets.split(",") if x):
                if args.names == "sequential":
                    seed_certificate_secrets(sm, dynamodb, values, count, have)
                else:
                    seed_secrets(sm, count, have, args.names)
                have = count
                for mode, extra in (("ledger", ["--ledger-table", LEDGER_TABLE]), ("values", [])):
                    with (
                        latency_in_moto(args.latency_ms),
                        throttled_moto({("secretsmanager", "BatchGetSecretValue"): 100.0}) as q,
                    ):
                        command = ["status", "--prefix", "bench/status/", "--output", "json", "--check", *extra]
                        server_before = resource.getrusage(resource.RUSAGE_SELF)
                        seconds, cpu, rows = timed_cpu([*command, "--endpoint-url", endpoint])
                        server_after = resource.getrusage(resource.RUSAGE_SELF)
                    server_cpu = (server_after.ru_utime - server_before.ru_utime) + (
                        server_after.ru_stime - server_before.ru_stime
                    )
                    calls = ", ".join(f"{op} {q.attempts(service, op)}" for service, op in STATUS_CALLS)
                    throttled = sum(q.throttled.values())
                    print(
                        f"status ({mode}), {count:>6} secrets: {seconds:6.2f} s wall, {cpu:5.2f} s CPU "
                        f"(moto's server: {server_cpu:5.2f} s CPU)  "
                        f"({len(rows)} rows; {calls}; {throttled} throttled)"
                    )
            fields = {
                "CERTIFICATE_TYPE": "PCA_ISSUED",
                "CERTIFICATE_SERIAL": "0A",
                "CERTIFICATE_FINGERPRINT_SHA256": "ab" * 32,
            }
            arn = sm.create_secret(Name="bench/fleet", SecretString=json.dumps(fields))["ARN"]
            have = 0
            for count in sorted(int(x) for x in args.hosts.split(",") if x):
                seed_hosts(arn, count, accounts, have)
                have = count
                command = ["hosts", "bench/fleet", "--output", "json", "--endpoint-url", endpoint]
                for role in roles:
                    command += ["--role-arn", role]
                with latency_in_moto(args.latency_ms):
                    seconds, shown = timed(command)
                (secret,) = shown["secrets"]  # type: ignore[misc]
                counted = sum(secret["counts"].values())
                pages = sum(-(-len(range(a, count, len(accounts))) // 50) for a in range(len(accounts)))
                print(
                    f"hosts,  {count:>6} instances in {len(accounts)} accounts: {seconds:6.2f} s  "
                    f"({counted} hosts shown; {pages} GetInventory pages)"
                )
    finally:
        server.stop()
    print(f"load after {', '.join(f'{x:.2f}' for x in os.getloadavg())} (2 CPUs shared with other work)")


if __name__ == "__main__":
    main()
