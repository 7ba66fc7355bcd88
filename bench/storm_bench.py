"""Benchmark: a rotation storm against moto with the service quotas enforced inside moto.

Run from the repository root:  python bench/storm_bench.py [--pca 500] [--acm 200] [--latency-ms 0]
[--paced] [--no-pacer] [--botocore-attempts 1]

N rotations start together, each in its own thread with its own boto3 session and clients (made
before the start, as warm Lambda containers have them) and its own certrotate services, driving
``rotation.handler.lambda_handler`` through the four steps as Secrets Manager does. moto answers
``ThrottlingException`` whenever an operation's token bucket is empty (``rotation.emulation.
throttling``, the documented default quotas: Private CA IssueCertificate 25/s, GetCertificate
75/s; ACM RequestCertificate, ExportCertificate, RenewCertificate 5/s, DescribeCertificate,
ListTagsForCertificate 10/s; one second of burst). The issuance ledger's table exists, as the
central stack creates it (ACM_ISSUED needs it), and each container has the issuance pacer on it
at the Lambda's default rates (``rotation.issuance.pacer``: Private CA 20/s, ACM 4.5/s), unless
``--no-pacer``. moto's DynamoDB is made atomic per request (``rotation.emulation.dynamodb_atomic``),
as the service is per item. The issuer clients make ``--botocore-attempts`` attempts a call (1, as
the Lambda's now: rotation.throttling retries); the Secrets Manager and DynamoDB clients use the
Lambda's configuration (standard mode). A rotation counts as failed if any step raises (Secrets
Manager would retry it later; here it is not retried).

Prints ok/failed, attempts (accepted + throttled calls seen by moto) per issued certificate for
the rate-limited operations, and the spread of finishing times. ``--latency-ms`` adds that much
network wait (a sleep: the CPU is free) to every AWS call, as a real endpoint would; moto in
process answers at CPU cost, and every thread shares this interpreter's GIL.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
REGION = "us-east-1"

RATE_LIMITED = {
    "PCA_ISSUED": [("acm-pca", "IssueCertificate"), ("acm-pca", "GetCertificate")],
    "ACM_ISSUED": [("acm", "RequestCertificate"), ("acm", "ExportCertificate"), ("acm", "DescribeCertificate")],
}


def storm(
    certificate_type: str,
    count: int,
    latency_ms: float,
    start_rate: float = 0.0,
    *,
    pacer: bool = True,
    botocore_attempts: int = 1,
) -> dict[str, Any]:
    import boto3
    from moto import mock_aws
    from moto.acm.models import acm_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    import rotation.handler
    from rotation.aws import client_config
    from rotation.emulation.dynamodb_atomic import atomic_dynamodb
    from rotation.emulation.pki import cached_moto_ca_keys, create_ca, moto_ca, real_acm_chain
    from rotation.emulation.rotation_service import STEPS, LocalLambdaContext, rotation_event, stage_pending
    from rotation.emulation.throttling import DEFAULT_QUOTAS, throttled_moto
    from rotation.fleet.ledger import Ledger, create_table
    from rotation.issuance.pacer import IssuancePacer, rates_from_environment
    from rotation.lifecycle.engine import build_services
    from rotation.lifecycle.steps import Services

    local = threading.local()
    original_services = rotation.handler.services
    rotation.handler.services = lambda: local.services  # one container per thread
    table = "certrotate-issuance-ledger"
    logs = io.StringIO()
    with (
        mock_aws(),
        atomic_dynamodb(),
        real_acm_chain(),
        cached_moto_ca_keys(),
        contextlib.redirect_stdout(logs),
    ):
        create_table(boto3.client("dynamodb", region_name=REGION), table)
        setup = boto3.client("secretsmanager", region_name=REGION)
        ca = create_ca(boto3.client("acm-pca", region_name=REGION))
        spec = {"CERTIFICATE_TYPE": certificate_type, "CA_ARN": ca, "KEY_ALGORITHM": "EC_prime256v1"}
        arns = [
            setup.create_secret(
                Name=f"storm-{i}", SecretString=json.dumps({**spec, "COMMON_NAME": f"host{i}.example.internal"})
            )["ARN"]
            for i in range(count)
        ]

        lateness: list[float] = []  # how long after its booked slot each paced issuing call went out

        class TimedPacer(IssuancePacer):
            def book(self, key: str, interval: float, now: float, latest: float) -> float:
                local.slot = super().book(key, interval, now, latest)
                return float(local.slot)

        def record_lateness(**_: Any) -> None:
            slot = getattr(local, "slot", None)
            if slot is not None:
                lateness.append(time.time() - slot)
                local.slot = None

        def container() -> Services:
            session = boto3.session.Session(region_name=REGION)
            issuer_config = client_config(botocore_attempts)
            clients = [
                session.client("secretsmanager", config=client_config()),
                session.client("dynamodb", config=client_config()),
                session.client("acm-pca", config=issuer_config),
                session.client("acm", config=issuer_config),
            ]
            if latency_ms:
                for client in clients:
                    client.meta.events.register("before-call", lambda **_: time.sleep(latency_ms / 1000))
            sm, dynamodb, pca, acm = clients
            pca.meta.events.register("before-call.acm-pca.IssueCertificate", record_lateness)
            acm.meta.events.register("before-call.acm.RequestCertificate", record_lateness)
            return build_services(
                sm,
                lambda region: pca,
                lambda region: acm,
                ledger=Ledger(dynamodb, table),
                pacer=TimedPacer(dynamodb, table, rates_from_environment(os.environ)) if pacer else None,
            )

        containers = [container() for _ in range(count)]
        issued_before = len(moto_ca(ca).issued_certificates)
        start = threading.Barrier(count + 1)
        finished: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()

        def run(index: int, arn: str, services: Services) -> None:
            local.services = services
            start.wait()
            if start_rate:
                time.sleep(index / start_rate)  # started at a pace, as `rotate --all` now starts them
            token = stage_pending(arn)
            try:
                for step in STEPS:
                    rotation.handler.lambda_handler(rotation_event(step, arn, token), LocalLambdaContext())
            except Exception as exc:
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}"[:160])
                return
            with lock:
                finished.append(time.perf_counter())

        threads = [
            threading.Thread(target=run, args=(i, a, s)) for i, (a, s) in enumerate(zip(arns, containers, strict=True))
        ]
        for thread in threads:
            thread.start()
        with throttled_moto(DEFAULT_QUOTAS) as quotas:
            start.wait()
            began = time.perf_counter()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - began
        if certificate_type == "PCA_ISSUED":
            issued = len(moto_ca(ca).issued_certificates) - issued_before
        else:
            issued = len(acm_backends[DEFAULT_ACCOUNT_ID][REGION]._certificates)
    rotation.handler.services = original_services
    times = sorted(t - began for t in finished)
    return {
        "type": certificate_type,
        "count": count,
        "start_rate": start_rate,
        "pacer": pacer,
        "botocore_attempts": botocore_attempts,
        "ok": len(finished),
        "failed": len(failures),
        "failures": failures[:3],
        "issued": issued,
        "attempts": {op: quotas.attempts(*key) for key in RATE_LIMITED[certificate_type] for op in [key[1]]},
        "throttled": {op: quotas.throttled[key] for key in RATE_LIMITED[certificate_type] for op in [key[1]]},
        "finish": times,
        "wall": wall,
        "unpaced": logs.getvalue().count("issuance pacing unavailable"),
        "lateness": sorted(lateness),
    }


def report(result: dict[str, Any]) -> None:
    times = result["finish"]
    how = f"started at {result['start_rate']:g}/s" if result["start_rate"] else "started together"
    pacing = "issuance pacer on" if result["pacer"] else "no pacer"
    print(
        f"\n{result['type']}: {result['count']} rotations {how}; {pacing}; "
        f"issuer clients {result['botocore_attempts']} botocore attempt(s) a call"
    )
    print(f"  ok {result['ok']}, failed {result['failed']}; certificates issued {result['issued']}")
    if result["unpaced"]:
        print(f"  calls made without a slot (pacer unavailable): {result['unpaced']}")
    for message in result["failures"]:
        print(f"    failure: {message}")
    for op, attempts in result["attempts"].items():
        per = attempts / result["issued"] if result["issued"] else float("nan")
        print(f"  {op:<22} {attempts:>6} calls ({result['throttled'][op]} throttled): {per:.2f} per certificate")
    late = result["lateness"]
    if len(late) >= 2:
        p99 = statistics.quantiles(late, n=100)[-1]
        print(
            f"  issuing calls after their slot (s): median {statistics.median(late):.2f}, p99 {p99:.2f}, "
            f"max {late[-1]:.2f} ({sum(1 for x in late if x > 1.0)} of {len(late)} more than 1 s late: "
            "this interpreter's threads wait for the CPU; each Lambda container has its own)"
        )
    if times:
        quantiles = statistics.quantiles(times, n=10) if len(times) >= 10 else [times[-1]] * 9
        print(
            f"  finished after (s): first {times[0]:.1f}, median {statistics.median(times):.1f}, "
            f"p90 {quantiles[-1]:.1f}, last {times[-1]:.1f}; wall {result['wall']:.1f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pca", type=int, default=500, help="Private CA rotations (default 500; 0 skips)")
    parser.add_argument("--acm", type=int, default=200, help="ACM rotations (default 200; 0 skips)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="network wait added to every AWS call")
    parser.add_argument(
        "--paced",
        action="store_true",
        help="also start them at the issuer's quota (PCA 25/s, ACM 5/s), as rotate --all now does",
    )
    parser.add_argument("--no-pacer", action="store_true", help="without the issuance pacer (as without a ledger)")
    parser.add_argument(
        "--botocore-attempts",
        type=int,
        default=1,
        help="attempts botocore makes per issuer call (1, the Lambda's; 5 was standard mode's max_attempts=4)",
    )
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}; moto in process; latency {args.latency_ms:g} ms/call; load: ", end="")
    print(", ".join(f"{x:.2f}" for x in os.getloadavg()), f"(1/5/15 min, {os.cpu_count()} CPUs)")
    from rotation.cli.pacing import ISSUER_RATES

    how = {"pacer": not args.no_pacer, "botocore_attempts": args.botocore_attempts}
    for certificate_type, count in (("PCA_ISSUED", args.pca), ("ACM_ISSUED", args.acm)):
        if count:
            report(storm(certificate_type, count, args.latency_ms, **how))
            if args.paced:
                report(storm(certificate_type, count, args.latency_ms, ISSUER_RATES[certificate_type], **how))
    print(f"\nload after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
