"""The EXAMPLES section of each command's ``--help``: real invocations, each parsed by a test."""

from __future__ import annotations

_OLD_CA = "arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/0b9e7f3c-2d4a-4e8b-9f61-5c3d2a1b0e47"
_NEW_CA = "arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/7d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

EXAMPLES: dict[str, tuple[str, ...]] = {
    "demo": ("certrotate demo", "certrotate demo --no-apache --output json"),
    "sandbox": (
        'eval "$(certrotate sandbox --detach)"',
        "certrotate sandbox --ledger --port 5000",
        'eval "$(certrotate sandbox --detach --hosts 2)"',
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
    "ca-rollover": (
        f"certrotate ca-rollover plan root-2027 --bundle partners --old-ca {_OLD_CA} --new-ca {_NEW_CA}",
        "certrotate ca-rollover status root-2027 --check",
        "certrotate ca-rollover advance root-2027",
    ),
    "ca-rollover plan": (
        f"certrotate ca-rollover plan root-2027 --bundle partners --old-ca {_OLD_CA} --new-ca {_NEW_CA}",
    ),
    "ca-rollover start": (
        f"certrotate ca-rollover start root-2027 --bundle partners --old-ca {_OLD_CA} --new-ca {_NEW_CA}",
    ),
    "ca-rollover status": ("certrotate ca-rollover status root-2027 --check --output json",),
    "ca-rollover advance": (
        "certrotate ca-rollover advance root-2027 --role-arn arn:aws:iam::444455556666:role/certrotate-fleet-view",
    ),
    "ca-rollover abort": ("certrotate ca-rollover abort root-2027",),
    "package": ("certrotate package --arch arm64 --dist-dir dist",),
    "completion": ('eval "$(certrotate completion bash)"',),
    "help": ("certrotate help status",),
}


def epilog(command: str) -> str | None:
    """``examples:`` and the command's lines, for argparse's epilog (None when it has none)."""
    lines = EXAMPLES.get(command)
    return "examples:\n" + "\n".join(f"  {line}" for line in lines) if lines else None
