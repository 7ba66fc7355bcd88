"""The EXAMPLES section of each command's ``--help``: real invocations, each parsed by a test."""

from __future__ import annotations

EXAMPLES: dict[str, tuple[str, ...]] = {
    "demo": ("certrotate demo", "certrotate demo --no-apache --output json"),
    "sandbox": (
        'eval "$(certrotate sandbox --detach)"',
        "certrotate sandbox --ledger --port 5000",
    ),
    "status": (
        "certrotate status",
        "certrotate status --prefix payments/ --check --output json",
        "certrotate status payments/web --ledger-table certrotate-issuance-ledger",
        'certrotate status --output text --query "[?days_to_expiry < `30`].[name, days_to_expiry]"',
    ),
    "rotate": (
        "certrotate rotate payments/web --wait",
        "certrotate rotate --filter tag:team=web --dry-run",
        "certrotate rotate --all --yes",
    ),
    "deploy": (
        "certrotate deploy payments/web --targets i-0123456789abcdef0,i-0fedcba9876543210",
        "certrotate deploy payments/web --targets tag:certrotate=web --dry-run",
    ),
    "revoke": (
        "certrotate revoke payments/web --compromised --dry-run --ledger-table certrotate-issuance-ledger",
        "certrotate revoke payments/web --compromised --ledger-table certrotate-issuance-ledger --timeout 600",
    ),
    "hosts": (
        "certrotate hosts --prefix payments/",
        "certrotate hosts --state failed,stale --check",
        "certrotate hosts payments/web --role-arn arn:aws:iam::444455556666:role/certrotate/FleetViewRole",
    ),
    "validate": ("certrotate validate spec.json --offline", "certrotate validate payments/web --output json"),
    "create-secret": (
        'certrotate create-secret payments/web --type PCA_ISSUED --ca-arn "$CA_ARN" '
        "--common-name web.example.internal --rotation-lambda-arn \"$ROTATION_LAMBDA_ARN\" --schedule 'rate(30 days)'",
        'certrotate create-secret --from-file specs.jsonl --rotation-lambda-arn "$ROTATION_LAMBDA_ARN" '
        "--schedule 'rate(30 days)' --dry-run",
    ),
    "doctor": (
        "certrotate doctor",
        "certrotate doctor --prefix payments/ "
        "--workload-role-arn arn:aws:iam::444455556666:role/certrotate-workload-instance",
    ),
    "policy": (
        "certrotate policy validate policy.json",
        "certrotate policy validate policy.json --check-cas",
        "certrotate policy validate policy.json --output json",
    ),
    "policy validate": (
        "certrotate policy validate policy.json",
        "certrotate policy validate policy.json --check-cas",
        "certrotate policy validate policy.json --output json",
    ),
    "package": ("certrotate package --arch arm64 --dist-dir dist",),
    "completion": ('eval "$(certrotate completion bash)"',),
    "help": ("certrotate help status",),
}


def epilog(command: str) -> str | None:
    """``examples:`` and the command's lines, for argparse's epilog (None when it has none)."""
    lines = EXAMPLES.get(command)
    return "examples:\n" + "\n".join(f"  {line}" for line in lines) if lines else None
