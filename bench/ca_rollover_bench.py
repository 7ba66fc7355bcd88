"""Benchmark: a CA rollover's move re-issues N secrets on moto, with Private CA's quotas enforced.

Run from the repository root:  python bench/ca_rollover_bench.py [--secrets 1000]

Sets up, in process: an RSA root (the old CA) and an EC root (the new CA), an issuance policy in its
SSM parameter whose rule allows the old CA, a trust bundle holding it, and N PCA secrets on the old
CA, each rotated once by certrotate's rotation function (which reads the policy parameter on every
step). Then the rollover runs through ``rotation.rollover.phases`` (what ``certrotate ca-rollover``
calls): start (add), advance (prove: no host installs the bundle here), advance (move: one
RotateSecret per secret, paced at half the issuer's quota), and once more (the gate of move).

During the move moto throttles Private CA's IssueCertificate and GetCertificate at their documented
default quotas (25/s and 75/s, ``rotation.emulation.throttling``) on an emulated clock that moves
only when the re-issue's limiter sleeps, after the rotations started so far have finished
(``rotation.emulation.rollover_world``): the calls per second are counted, not timed, and the
wall time is printed beside the emulated one. The operator's own reads (BatchGetSecretValue, the
policy parameter) are not throttled here.

Prints: re-issued (secrets whose current leaf the new CA signed), failed (rotations that raised, and
secrets left on the old CA), IssueCertificate calls and throttled calls, the most calls in any one
emulated second against the quota, and the time (emulated and wall).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
REGION = "us-east-1"
ISSUE = ("acm-pca", "IssueCertificate")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--secrets", type=int, default=1000)
    args = parser.parse_args()

    import boto3
    from moto import mock_aws

    import rotation.handler
    import rotation.telemetry
    from rotation.cli.bulk_reads import RateLimiter
    from rotation.cli.session import AwsContext
    from rotation.emulation import rotation_service
    from rotation.emulation.rollover_world import EmulatedClock, build_world, calls_of, settle
    from rotation.emulation.rotation_service import rotation_function_in_moto
    from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
    from rotation.emulation.throttling import DEFAULT_QUOTAS, throttled_moto
    from rotation.fleet.ledger import Ledger, create_table
    from rotation.issuance.policy_store import PolicySource
    from rotation.lifecycle.engine import build_services
    from rotation.rollover import phases
    from rotation.rollover.aws_fleet import fleet_access
    from rotation.rollover.reissue import pace, quota

    rotation.telemetry._emit = lambda *a, **k: None  # type: ignore[assignment]  # EMF lines: not measured here
    for handler in logging.getLogger("certrotate").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.stream = io.StringIO()
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name=REGION)
        pca = boto3.client("acm-pca", region_name=REGION)
        ssm = boto3.client("ssm", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_table(dynamodb, "certrotate-ledger")
        os.environ["CERTROTATE_LEDGER_TABLE"] = "certrotate-ledger"
        rotation.handler._services = build_services(
            sm,
            lambda region: pca,
            lambda region: boto3.client("acm", region_name=REGION),
            ledger=Ledger(dynamodb, "certrotate-ledger"),
            policy=PolicySource(lambda: ssm, "/certrotate/issuance-policy", None, ttl_seconds=0),
        )
        with ssm_inventory_in_moto(), rotation_function_in_moto() as failures:
            began = time.perf_counter()
            world = build_world(sm, pca, ssm, secrets=args.secrets, rotate=rotation_service.rotate)
            print(
                f"setup: {args.secrets} secrets on the old CA in {time.perf_counter() - began:.1f} s wall", flush=True
            )
            clock = EmulatedClock()
            fleet = fleet_access(
                AwsContext(None, REGION, None),
                world.parameter,
                policy_ttl=0,
                limiter_for=lambda rate: RateLimiter(rate, clock=clock, sleep=clock.sleep),
            )
            phases.start(fleet, "bench", world.old_ca, world.new_ca, [world.bundle])
            phases.advance(fleet, "bench")
            quotas_in_force = {k: DEFAULT_QUOTAS[k] for k in (ISSUE, ("acm-pca", "GetCertificate"))}
            with throttled_moto(quotas_in_force, clock=clock) as quotas, calls_of(*ISSUE, clock) as calls:
                wall, emulated = time.perf_counter(), clock()
                phases.advance(fleet, "bench")
                settle()
                wall, emulated = time.perf_counter() - wall, clock() - emulated
            try:
                final = phases.advance(fleet, "bench")
            except phases.GateClosed as exc:
                final = exc.progress
        moved = len(final.leaves.moved)
        left = len(final.leaves.to_move)
        print(f"re-issued: {moved}/{args.secrets}")
        print(f"failed: {len(failures)} rotation(s) raised, {left} secret(s) left on the old CA")
        print(f"IssueCertificate: {len(calls.stamps)} call(s), {quotas.throttled[ISSUE]} throttled")
        print(
            f"max rate used: {calls.max_per_second()} calls in one emulated second; quota {quota('PCA_ISSUED'):g}/s, "
            f"half {quota('PCA_ISSUED') / 2:g}/s, pace {pace('PCA_ISSUED'):g}/s"
        )
        print(f"time: {emulated:.1f} s emulated at the pace, {wall:.1f} s wall; phase now {final.rollover.phase.value}")
    return 0 if not failures and left == 0 and quotas.throttled[ISSUE] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
