"""The rollover's :class:`~rotation.rollover.phases.FleetAccess` on AWS: boto3 clients of the operator's session.

Every call is the operator's: the policy parameter and the bundle secrets are theirs to write (the
bundle's resource policy denies writes to everyone else), RotateSecret starts the rotation function,
and the fleet view is read in this account and through each workload account's FleetViewRole.
Nothing here reads or prints key material beyond what ``status`` already reads (the secrets'
AWSCURRENT values, for their CA and certificate).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from rotation.aws import aws_call
from rotation.cli.bulk_reads import RateLimiter
from rotation.cli.hosts import open_account
from rotation.cli.inventory import SecretRecord, certificate_secrets
from rotation.cli.session import AwsContext
from rotation.errors import AwsCallError, CertRotateError
from rotation.fleet.inventory import read_fleet, read_trust_bundles
from rotation.fleet.trust_view import TrustReport
from rotation.fleet.view import HostReport
from rotation.issuance.policy.rollovers import Rollover, issuing_ca
from rotation.issuance.policy_store import DEFAULT_TTL_SECONDS
from rotation.issuance.spec import parse_spec
from rotation.rollover import bundles as edit
from rotation.rollover.gates import Leaf, reader_accounts
from rotation.rollover.phases import FleetAccess
from rotation.rollover.store import PolicyStore


def issued_by(pem: object, ca: x509.Certificate) -> bool:
    """Whether the leaf in ``pem`` carries a signature of ``ca``'s key under ``ca``'s name."""
    if not isinstance(pem, str) or not pem:
        return False
    try:
        x509.load_pem_x509_certificate(pem.encode()).verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def classify(
    records: Sequence[SecretRecord],
    rollover: Rollover,
    old: x509.Certificate,
    new: x509.Certificate,
    others: Sequence[Rollover] = (),
) -> list[Leaf]:
    """The certificate secrets whose spec names the rollover's old CA, or a CA an earlier rollover
    (``others``, in move or later) moved to it, and where each leaf comes from."""
    earlier = [r for r in others if r.name != rollover.name]
    leaves = []
    for record in records:
        fields = record.fields or {}
        named = str(fields.get("CA_ARN", ""))
        if named != rollover.old_ca_arn and issuing_ca(named, earlier) != rollover.old_ca_arn:
            continue
        try:
            grace = parse_spec(fields).revoke_superseded_after
        except CertRotateError:
            grace = None
        stages = record.stages
        current = {v for v, s in stages.items() if "AWSCURRENT" in s}
        pem = fields.get("CERTIFICATE_PEM")
        leaves.append(
            Leaf(
                arn=record.arn,
                name=record.name,
                certificate_type=str(fields.get("CERTIFICATE_TYPE", "")),
                serial=str(fields.get("CERTIFICATE_SERIAL") or ""),
                fingerprint=str(fields.get("CERTIFICATE_FINGERPRINT_SHA256") or ""),
                on_new_ca=issued_by(pem, new),
                rotating=any("AWSPENDING" in s and v not in current for v, s in stages.items()),
                on_old_ca=issued_by(pem, old),
                revoke_after=grace.total_seconds() if grace is not None else None,
            )
        )
    return leaves


def fleet_access(
    aws: AwsContext,
    parameter: str,
    *,
    role_arns: Sequence[str] = (),
    ledger_table: str = "",
    policy_ttl: float = DEFAULT_TTL_SECONDS,
    wait: bool = True,
    progress: Callable[[str], None] = lambda line: None,
    limiter_for: Callable[[float], Any] = RateLimiter,
) -> FleetAccess:
    """The rollover's IO on the operator's session (``role_arns``: each workload account's FleetViewRole)."""
    sm = aws.client("secretsmanager")
    cas: dict[str, x509.Certificate] = {}

    def read_bundle(name: str) -> edit.Bundle:
        with aws_call("secretsmanager", "GetSecretValue"):
            got = sm.get_secret_value(SecretId=edit.secret_name(name), VersionStage="AWSCURRENT")
        try:
            pem = json.loads(got.get("SecretString") or "{}").get(edit.BUNDLE_FIELD, "")
        except (ValueError, AttributeError):
            pem = ""
        return edit.Bundle(name, str(got["ARN"]), pem if isinstance(pem, str) else "")

    def write_bundle(bundle: edit.Bundle, pem: str) -> None:
        with aws_call("secretsmanager", "GetSecretValue"):
            got = sm.get_secret_value(SecretId=bundle.arn, VersionStage="AWSCURRENT")
        fields = json.loads(got.get("SecretString") or "{}")
        fields[edit.BUNDLE_FIELD] = pem
        with aws_call("secretsmanager", "PutSecretValue"):
            sm.put_secret_value(SecretId=bundle.arn, SecretString=json.dumps(fields))

    def ca_certificate(arn: str) -> x509.Certificate:
        if arn not in cas:
            with aws_call("acm-pca", "GetCertificateAuthorityCertificate"):
                got = aws.client("acm-pca", region=arn.split(":")[3]).get_certificate_authority_certificate(
                    CertificateAuthorityArn=arn
                )
            cas[arn] = x509.load_pem_x509_certificate(str(got["Certificate"]).encode())
        return cas[arn]

    store = PolicyStore(aws.client("ssm"), parameter)

    def leaves(rollover: Rollover, old: x509.Certificate, new: x509.Certificate) -> list[Leaf]:
        return classify(certificate_secrets(aws), rollover, old, new, store.read().policy.rollovers)

    def bundle_readers(bundle: edit.Bundle) -> frozenset[str] | None:
        try:
            with aws_call("secretsmanager", "GetResourcePolicy"):
                policy = sm.get_resource_policy(SecretId=bundle.arn).get("ResourcePolicy")
        except AwsCallError:
            policy = None
        return reader_accounts(policy, bundle.arn.split(":")[4])

    def rotate(arn: str) -> None:
        with aws_call("secretsmanager", "RotateSecret"):
            sm.rotate_secret(SecretId=arn)

    revoke_old = _revoker(aws, ledger_table, role_arns) if ledger_table else None
    return FleetAccess(
        store=store,
        read_bundle=read_bundle,
        write_bundle=write_bundle,
        ca_certificate=ca_certificate,
        leaves=leaves,
        trust_reports=lambda: _trust_reports(aws, role_arns),
        host_reports=lambda: _host_reports(aws, role_arns),
        bundle_readers=bundle_readers,
        rotate=rotate,
        limiter_for=limiter_for,
        revoke_old=revoke_old,
        policy_ttl=policy_ttl,
        wait=wait,
        progress=progress,
    )


def _opened(aws: AwsContext, role_arns: Sequence[str]) -> list[tuple[Any, str] | str]:
    """An SSM client per account (this one, then each FleetViewRole's), or why it could not be opened."""
    found: list[tuple[Any, str] | str] = []
    for role in [None, *role_arns]:
        try:
            found.append(open_account(aws, role, session_name="certrotate-ca-rollover"))
        except CertRotateError as exc:
            found.append(f"{role or 'this account'}: {exc}")
    return found


def _trust_reports(aws: AwsContext, role_arns: Sequence[str]) -> tuple[list[TrustReport], list[str]]:
    reports: list[TrustReport] = []
    unreadable: list[str] = []
    for entry in _opened(aws, role_arns):
        if isinstance(entry, str):
            unreadable.append(entry)
            continue
        ssm, account = entry
        try:
            reports.extend(read_trust_bundles(ssm, account))
        except CertRotateError as exc:
            unreadable.append(f"{account}: {exc}")
    return reports, unreadable


def _host_reports(aws: AwsContext, role_arns: Sequence[str]) -> list[HostReport]:
    """Every account's certificate records.

    Raises:
        AwsCallError: an account cannot be read (retire waits: its hosts may serve an old leaf).
    """
    reports: list[HostReport] = []
    for entry in _opened(aws, role_arns):
        if isinstance(entry, str):
            raise AwsCallError("ssm", "GetInventory", "Unreadable", f"fleet view unreadable: {entry}")
        reports.extend(read_fleet(*entry)[0])
    return reports


def _revoker(
    aws: AwsContext, ledger_table: str, role_arns: Sequence[str]
) -> Callable[[Rollover, Sequence[Leaf]], list[str]]:
    """Retire's revocation: each moved secret's superseded leaves, by the revoker's own rules
    (:func:`rotation.fleet.revoker.revoke_superseded`: past the spec's ``REVOKE_SUPERSEDED_AFTER``, and
    never while a host of an account that may read the secret serves it or cannot be read)."""
    from rotation.fleet.ledger import Ledger
    from rotation.fleet.revocation import Outcome
    from rotation.fleet.revoker import fleet_reader, revoke_superseded
    from rotation.fleet.scope import FleetScope

    ledger = Ledger(aws.client("dynamodb"), ledger_table)

    def pca_for_region(region: str) -> Any:
        return aws.client("acm-pca", region=region)

    fleet = fleet_reader(
        lambda region: aws.client("ssm", region=region),
        lambda role, region: aws.client("ssm", region=region, session=aws.assumed(role, "certrotate-ca-rollover")),
        role_arns,
        FleetScope(),
    )

    def revoke(rollover: Rollover, leaves: Sequence[Leaf]) -> list[str]:
        now = datetime.now(UTC)
        lines = []
        for leaf in leaves:
            if leaf.revoke_after is None:
                continue
            entries = ledger.open_entries(leaf.arn, now)
            old = [e for e in entries if e.ca_arn == rollover.old_ca_arn]
            if not old:
                continue
            grace = timedelta(seconds=leaf.revoke_after)
            decisions = revoke_superseded(ledger, pca_for_region, entries, [leaf.serial], fleet, now, grace)
            for decision in decisions:
                if decision.certificate.ca_arn != rollover.old_ca_arn:
                    continue
                if decision.outcome is Outcome.REVOKE:
                    lines.append(f"{leaf.name}: old leaf {decision.certificate.serial} revoked (SUPERSEDED)")
                elif decision.outcome in (Outcome.SERVED, Outcome.HELD, Outcome.IN_GRACE):
                    lines.append(f"{leaf.name}: old leaf {decision.certificate.serial} {decision.outcome.value}")
        return lines

    return revoke
