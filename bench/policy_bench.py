"""Benchmark: what the issuance policy costs a rotation, A/B in one process on one moto backend.

Run from the repository root:  python bench/policy_bench.py [--rotations N]

Private CA RSA-2048 rotations with the key kept (``REUSE_PRIVATE_KEY=true``: equal work every
time), the issuance ledger on, runs alternating between the policy enforced (the default policy:
rule lookup, the request check before issuance, the issued-certificate check in createSecret and
testSecret) and the same code with those three checks replaced by no-ops. Alternating runs share
the machine's load, so the ratio holds on a busy machine where absolute figures do not. Also
prints the pure policy work per rotation, timed alone. The policy is read once per container
(cached), so no run fetches it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")


def run(rotations: int) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    import rotation.handler
    import rotation.lifecycle.steps
    from bench.rotation_bench import _ledger
    from rotation.emulation.pki import cached_moto_ca_keys, create_ca
    from rotation.issuance.policy import Rule
    from rotation.lifecycle.engine import build_services
    from tests.support.driver import rotate

    enforced = (
        rotation.lifecycle.steps.fit_request,
        rotation.lifecycle.steps.check_issued,
        rotation.lifecycle.steps.StepContext.rule,
    )
    permissive = Rule("off", ("*",), ("*",), dns_names=(".",), client_auth=True, reuse_private_key=True)
    disabled = (lambda rule, spec: spec, lambda rule, facts: None, lambda self: permissive)

    def use(functions: tuple[Any, Any, Any]) -> None:
        rotation.lifecycle.steps.fit_request, rotation.lifecycle.steps.check_issued = functions[0], functions[1]
        rotation.lifecycle.steps.StepContext.rule = functions[2]  # type: ignore[method-assign]

    timings: dict[str, list[float]] = {"policy enforced": [], "policy checks off": []}
    with mock_aws(), cached_moto_ca_keys(), contextlib.redirect_stdout(io.StringIO()):
        sm, pca, acm = (boto3.client(s, region_name="us-east-1") for s in ("secretsmanager", "acm-pca", "acm"))
        ca = create_ca(pca)
        rotation.handler._services = build_services(sm, lambda r: pca, lambda r: acm, ledger=_ledger())
        spec = {
            "CERTIFICATE_TYPE": "PCA_ISSUED",
            "CA_ARN": ca,
            "COMMON_NAME": "bench.example.internal",
            "TEMPLATE_ARN": "arn:aws:acm-pca:::template/EndEntityServerAuthCertificate/V1",
            "REUSE_PRIVATE_KEY": "true",
        }
        arn = sm.create_secret(Name="bench-policy", SecretString=json.dumps(spec))["ARN"]
        rotate(arn)  # warm: the key, the CA facts, the policy
        try:
            for i in range(rotations * 2):
                label = "policy enforced" if i % 2 == 0 else "policy checks off"
                use(enforced if i % 2 == 0 else disabled)
                start = time.perf_counter()
                rotate(arn)
                timings[label].append((time.perf_counter() - start) * 1000)
        finally:
            use(enforced)
        pure_us = _pure_policy_us(sm, arn, ca)
        rotation.handler.reset()
    return {"medians_ms": {k: statistics.median(v) for k, v in timings.items()}, "pure_us": pure_us}


def _pure_policy_us(sm: Any, arn: str, ca: str) -> float:
    """The policy's own work per rotation (lookup, request check twice, issued check twice), timed alone."""
    from rotation.issuance.bundle import CertBundle
    from rotation.issuance.policy import check_issued, default_policy, fit_request, issued_facts
    from rotation.issuance.spec import load_secret_fields, parse_spec

    fields = load_secret_fields(sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])
    spec, bundle = parse_spec(fields), CertBundle.from_fields(fields)
    assert bundle is not None
    policy = default_policy((ca,))
    rounds = 2000
    start = time.perf_counter()
    for _ in range(rounds):
        for _step in range(2):
            rule = policy.rule_for("bench-policy", "123456789012")
            fit_request(rule, spec, now=bundle.not_before)
            check_issued(rule, issued_facts(bundle.certificate, ca, spec.certificate_type))
    return (time.perf_counter() - start) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rotations", type=int, default=30, help="rotations per side (default 30)")
    args = parser.parse_args()
    result = run(args.rotations)
    on, off = result["medians_ms"]["policy enforced"], result["medians_ms"]["policy checks off"]
    print("Private CA RSA-2048, key kept, ledger on, runs alternating (median ms per full rotation)")
    print(f"  policy checks off   {off:8.1f}")
    print(f"  policy enforced     {on:8.1f}   ({(on / off - 1) * 100:+.1f} %)")
    print(f"  pure policy work per rotation, timed alone: {result['pure_us']:.0f} us")
    print(f"rotations per side: {args.rotations}; python {sys.version.split()[0]}; moto in process")


if __name__ == "__main__":
    main()
