"""Benchmark: full rotations per issuer and key type against moto in process, and handler import time.

Run from the repository root:  python bench/rotation_bench.py [--rotations N]

Prints, per configuration, the median and p90 milliseconds of a full rotation (the four steps
through ``rotation.handler.lambda_handler``, driven as Secrets Manager drives it), the AWS API
calls of the first rotation (cold per-container CA cache) and of later ones, and the cold import
time of ``rotation.handler`` measured with ``python -X importtime`` in fresh interpreters.

Then, side by side on one moto backend with the runs alternating, a Private CA RSA-2048 rotation
by certrotate (key kept with ``REUSE_PRIVATE_KEY=true``, the original's equal work; and a fresh
key, the default) against ``bench/original_sample_equivalent.py``, a from-scratch
re-implementation of what the original sample does per rotation (labelled as such: no code of
the sample is used).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

CONFIGS = [
    ("PCA_ISSUED", "RSA_2048"),
    ("PCA_ISSUED", "RSA_3072"),
    ("PCA_ISSUED", "EC_prime256v1"),
    ("PCA_ISSUED", "EC_secp384r1"),
    ("ACM_ISSUED", "RSA_2048"),
    ("ACM_ISSUED", "EC_prime256v1"),
]


def import_time_ms(runs: int = 7) -> float:
    """Median cumulative import time of rotation.handler in a fresh interpreter (-X importtime)."""
    samples = []
    for _ in range(runs):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import rotation.handler"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
        line = next(x for x in result.stderr.splitlines() if x.rstrip().endswith("| rotation.handler"))
        samples.append(int(line.split("|")[1]) / 1000)
    return statistics.median(samples)


def bench(rotations: int, *, cache_ca_keys: bool) -> list[dict[str, Any]]:
    return [bench_one(t, k, rotations, cache_ca_keys=cache_ca_keys) for t, k in CONFIGS]


def bench_one(certificate_type: str, key: str, rotations: int, *, cache_ca_keys: bool) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    import rotation.handler
    from rotation.emulation.pki import cached_moto_ca_keys, create_ca, real_acm_chain
    from rotation.issuance.keys import SPARE_KEYS
    from rotation.lifecycle.engine import build_services
    from tests.support.driver import rotate

    moto_tweak = cached_moto_ca_keys() if cache_ca_keys else contextlib.nullcontext()
    with mock_aws(), real_acm_chain(), moto_tweak, contextlib.redirect_stdout(io.StringIO()):
        sm, pca, acm = (boto3.client(s, region_name="us-east-1") for s in ("secretsmanager", "acm-pca", "acm"))
        calls: Counter[str] = Counter()
        for client in (sm, pca, acm):
            client.meta.events.register("before-call", lambda model, **_: calls.update([model.name]))
        ca = create_ca(pca)
        rotation.handler._services = build_services(sm, lambda r: pca, lambda r: acm, ledger=_ledger())
        spec = {
            "CERTIFICATE_TYPE": certificate_type,
            "CA_ARN": ca,
            "COMMON_NAME": "bench.example.internal",
            "KEY_ALGORITHM": key,
            "ENVIRONMENT": "TEST",
        }
        arn = sm.create_secret(Name=f"bench-{key}", SecretString=json.dumps(spec))["ARN"]
        timings, per_rotation = [], []
        for _ in range(rotations):
            calls.clear()
            start = time.perf_counter()
            rotate(arn)
            SPARE_KEYS.wait()  # the next key made in the background counts as this rotation's time
            timings.append((time.perf_counter() - start) * 1000)
            per_rotation.append(sum(calls.values()))
        rotation.handler.reset()
    return {
        "type": certificate_type,
        "key": key,
        "median_ms": statistics.median(timings),
        "p90_ms": statistics.quantiles(timings, n=10)[-1] if len(timings) >= 10 else max(timings),
        "calls_first": per_rotation[0],
        "calls_later": statistics.median(per_rotation[1:] or per_rotation),
        "later_breakdown": dict(calls),
    }


SIDE_BY_SIDE = ("original sample (re-implemented)", "certrotate, key kept", "certrotate, fresh key")


def side_by_side(rotations: int, *, cache_ca_keys: bool, latency_ms: float = 0.0) -> dict[str, dict[str, float]]:
    """Median ms and AWS calls per rotation of the three contenders, runs alternating on one backend.

    ``latency_ms`` adds that much network wait (a sleep, which leaves the CPU free) to every AWS
    call of both contenders, as a call to a real endpoint would; moto in process answers at CPU cost.
    """
    import boto3
    from moto import mock_aws

    import rotation.handler
    from bench import original_sample_equivalent
    from rotation.emulation.pki import cached_moto_ca_keys, create_ca
    from rotation.emulation.rotation_service import STEPS, rotation_event, stage_pending
    from rotation.issuance.keys import SPARE_KEYS
    from rotation.lifecycle.engine import build_services
    from tests.support.driver import rotate

    moto_tweak = cached_moto_ca_keys() if cache_ca_keys else contextlib.nullcontext()
    with mock_aws(), moto_tweak, contextlib.redirect_stdout(io.StringIO()):
        sm, pca, acm = (boto3.client(s, region_name="us-east-1") for s in ("secretsmanager", "acm-pca", "acm"))
        calls: Counter[str] = Counter()
        for client in (sm, pca, acm):
            client.meta.events.register("before-call", lambda model, **_: calls.update([model.name]))
        ca = create_ca(pca)
        if latency_ms:
            for client in (sm, pca, acm):
                client.meta.events.register("before-call", lambda **_: time.sleep(latency_ms / 1000))
        rotation.handler._services = build_services(sm, lambda r: pca, lambda r: acm, ledger=_ledger())
        base = {"CA_ARN": ca, "COMMON_NAME": "bench.example.internal", "KEY_ALGORITHM": "RSA_2048"}
        specs = {
            SIDE_BY_SIDE[0]: base,
            SIDE_BY_SIDE[1]: {**base, "CERTIFICATE_TYPE": "PCA_ISSUED", "REUSE_PRIVATE_KEY": "true"},
            SIDE_BY_SIDE[2]: {**base, "CERTIFICATE_TYPE": "PCA_ISSUED"},
        }
        arns = {
            name: sm.create_secret(Name=f"side-{i}", SecretString=json.dumps(spec))["ARN"]
            for i, (name, spec) in enumerate(specs.items())
        }

        def certrotate(arn: str) -> None:
            rotate(arn)
            SPARE_KEYS.wait()  # the next key made in the background counts as this rotation's time

        def original(arn: str) -> None:
            token = stage_pending(arn)
            for step in STEPS:
                original_sample_equivalent.handle(rotation_event(step, arn, token), sm, pca)

        run = {SIDE_BY_SIDE[0]: original, SIDE_BY_SIDE[1]: certrotate, SIDE_BY_SIDE[2]: certrotate}
        for name in SIDE_BY_SIDE:  # first rotations (key generated, CA read) are not measured
            run[name](arns[name])
        timings: dict[str, list[float]] = {name: [] for name in SIDE_BY_SIDE}
        counted: dict[str, list[int]] = {name: [] for name in SIDE_BY_SIDE}
        for i in range(rotations):
            order = SIDE_BY_SIDE[i % 3 :] + SIDE_BY_SIDE[: i % 3]  # alternate who goes first
            for name in order:
                calls.clear()
                start = time.perf_counter()
                run[name](arns[name])
                timings[name].append((time.perf_counter() - start) * 1000)
                counted[name].append(sum(calls.values()))
        rotation.handler.reset()
    return {
        name: {"median_ms": statistics.median(timings[name]), "calls": statistics.median(counted[name])}
        for name in SIDE_BY_SIDE
    }


def print_side_by_side(rotations: int, latency_ms: float) -> None:
    columns = {
        "moto as is": side_by_side(rotations, cache_ca_keys=False),
        "CA key kept": side_by_side(rotations, cache_ca_keys=True),
        f"kept +{latency_ms:g} ms/call": side_by_side(rotations, cache_ca_keys=True, latency_ms=latency_ms),
    }
    baseline = SIDE_BY_SIDE[0]
    print("\nPrivate CA RSA-2048, side by side on one moto backend, runs alternating (median ms; x = / original)")
    print(f"{'':<34}" + "".join(f"{title:>20}" for title in columns) + f"{'calls':>7}")
    for name in SIDE_BY_SIDE:
        cells = "".join(
            f"{c[name]['median_ms']:>12.1f} ({c[name]['median_ms'] / c[baseline]['median_ms']:.2f}x)"
            for c in columns.values()
        )
        print(f"{name:<34}{cells}{columns['moto as is'][name]['calls']:>7.0f}")


def _ledger() -> Any:
    """The issuance ledger in moto, as the central stack deploys it (ACM_ISSUED needs it)."""
    import boto3

    from rotation.fleet.ledger import Ledger, create_table

    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    if "bench-ledger" not in dynamodb.list_tables()["TableNames"]:
        create_table(dynamodb, "bench-ledger")
    return Ledger(dynamodb, "bench-ledger")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rotations", type=int, default=30, help="rotations per configuration (default 30)")
    parser.add_argument("--breakdown", action="store_true", help="print the API calls of a later rotation")
    parser.add_argument("--side-by-side-only", action="store_true", help="only the comparison with the original")
    parser.add_argument("--latency-ms", type=float, default=10.0, help="network wait per AWS call, third column")
    args = parser.parse_args()
    if args.side_by_side_only:
        print_side_by_side(args.rotations, args.latency_ms)
        return
    raw = bench(args.rotations, cache_ca_keys=False)
    tuned = bench(args.rotations, cache_ca_keys=True)
    print("median / p90 ms per full rotation; 'moto as is' includes moto re-decrypting its CA key on every")
    print("IssueCertificate (~70 ms of emulator time per PCA issuance); 'CA key kept' removes only that.\n")
    print(f"{'issuer':<11} {'key':<14} {'moto as is':>16} {'CA key kept':>16} {'calls 1st':>10} {'calls later':>12}")
    for r, t in zip(raw, tuned, strict=True):
        print(
            f"{r['type']:<11} {r['key']:<14} {r['median_ms']:>8.1f} /{r['p90_ms']:>6.1f} "
            f"{t['median_ms']:>8.1f} /{t['p90_ms']:>6.1f} {r['calls_first']:>10} {r['calls_later']:>12}"
        )
        if args.breakdown:
            print("    " + ", ".join(f"{k}={v}" for k, v in sorted(r["later_breakdown"].items())))
    print_side_by_side(args.rotations, args.latency_ms)
    print(f"\nrotation.handler cold import: {import_time_ms():.1f} ms (median of 7, python -X importtime)")
    print(f"rotations per configuration: {args.rotations}; python {sys.version.split()[0]}; moto in process")


if __name__ == "__main__":
    main()
