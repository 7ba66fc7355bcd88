"""Benchmark: a rotation storm against moto with the service quotas enforced inside moto.

Run from the repository root:  python bench/storm_bench.py [--pca 500] [--acm 200] [--latency-ms 0]

N rotations start together, each in its own thread with its own boto3 session and clients (made
before the start, as warm Lambda containers have them) and its own certrotate services, driving
``rotation.handler.lambda_handler`` through the four steps as Secrets Manager does. moto answers
``ThrottlingException`` whenever an operation's token bucket is empty (``rotation.emulation.
throttling``, the documented default quotas: Private CA IssueCertificate 25/s, GetCertificate
75/s; ACM RequestCertificate, ExportCertificate, RenewCertificate 5/s, DescribeCertificate,
ListTagsForCertificate 10/s; one second of burst). The clients use the Lambda's own botocore
configuration (standard retry mode). A rotation counts as failed if any step raises (Secrets
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


def storm(certificate_type: str, count: int, latency_ms: float, start_rate: float = 0.0) -> dict[str, Any]:
    import boto3
    from moto import mock_aws
    from moto.acm.models import acm_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    import rotation.handler
    from rotation.aws import client_config
    from rotation.emulation.pki import cached_moto_ca_keys, create_ca, moto_ca, real_acm_chain
    from rotation.emulation.rotation_service import STEPS, LocalLambdaContext, rotation_event, stage_pending
    from rotation.emulation.throttling import DEFAULT_QUOTAS, throttled_moto
    from rotation.engine import build_services
    from rotation.steps import Services

    local = threading.local()
    original_services = rotation.handler.services
    rotation.handler.services = lambda: local.services  # one container per thread
    with mock_aws(), real_acm_chain(), cached_moto_ca_keys(), contextlib.redirect_stdout(io.StringIO()):
        setup = boto3.client("secretsmanager", region_name=REGION)
        ca = create_ca(boto3.client("acm-pca", region_name=REGION))
        spec = {"CERTIFICATE_TYPE": certificate_type, "CA_ARN": ca, "KEY_ALGORITHM": "EC_prime256v1"}
        arns = [
            setup.create_secret(
                Name=f"storm-{i}", SecretString=json.dumps({**spec, "COMMON_NAME": f"host{i}.example.internal"})
            )["ARN"]
            for i in range(count)
        ]

        def container() -> Services:
            session = boto3.session.Session(region_name=REGION)
            clients = [session.client(s, config=client_config()) for s in ("secretsmanager", "acm-pca", "acm")]
            if latency_ms:
                for client in clients:
                    client.meta.events.register("before-call", lambda **_: time.sleep(latency_ms / 1000))
            sm, pca, acm = clients
            return build_services(sm, lambda region: pca, lambda region: acm)

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
        "ok": len(finished),
        "failed": len(failures),
        "failures": failures[:3],
        "issued": issued,
        "attempts": {op: quotas.attempts(*key) for key in RATE_LIMITED[certificate_type] for op in [key[1]]},
        "throttled": {op: quotas.throttled[key] for key in RATE_LIMITED[certificate_type] for op in [key[1]]},
        "finish": times,
        "wall": wall,
    }


def report(result: dict[str, Any]) -> None:
    times = result["finish"]
    how = f"started at {result['start_rate']:g}/s" if result["start_rate"] else "started together"
    print(f"\n{result['type']}: {result['count']} rotations {how}")
    print(f"  ok {result['ok']}, failed {result['failed']}; certificates issued {result['issued']}")
    for message in result["failures"]:
        print(f"    failure: {message}")
    for op, attempts in result["attempts"].items():
        per = attempts / result["issued"] if result["issued"] else float("nan")
        print(f"  {op:<22} {attempts:>6} calls ({result['throttled'][op]} throttled): {per:.2f} per certificate")
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
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}; moto in process; latency {args.latency_ms:g} ms/call; load: ", end="")
    print(", ".join(f"{x:.2f}" for x in os.getloadavg()), f"(1/5/15 min, {os.cpu_count()} CPUs)")
    from rotation.cli.pacing import ISSUER_RATES

    for certificate_type, count in (("PCA_ISSUED", args.pca), ("ACM_ISSUED", args.acm)):
        if count:
            report(storm(certificate_type, count, args.latency_ms))
            if args.paced:
                report(storm(certificate_type, count, args.latency_ms, ISSUER_RATES[certificate_type]))
    print(f"\nload after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
