"""``certrotate doctor``: check a deployment from where the operator stands, one line per check.

Read-only. Checks credentials and region (STS), the certificate secrets and their rotation, each
rotation function (exists; its resource policy lets ``secretsmanager.amazonaws.com`` invoke it),
each CA in use (ACTIVE; its key family is one every spec using it can sign with; whether a client
can learn of a revocation: :mod:`rotation.cli.revocation_checks`), the SSM
documents, each secret's KMS key policy (admits ``kms:Decrypt`` for the workload roles given), and
the fleet view superseded revocation reads: GetInventory in each region of each account (this one,
and each FleetViewRole) named by the rotation functions' ``CERTROTATE_FLEET_REGIONS`` and
``CERTROTATE_FLEET_ROLE_ARNS`` or by ``--fleet-region`` / ``--fleet-role-arn``; in those regions of
this account, that each host that installed a CRL is refreshed (:mod:`rotation.cli.crl_refresh_checks`).
Policies are read, not simulated: a statement's conditions are shown, not evaluated.
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict
from functools import partial
from typing import Any, ClassVar

from rich.text import Text

from rotation.aws import aws_call
from rotation.cli import options
from rotation.cli.certificate_health import spec_problem
from rotation.cli.check import UNREACHABLE as _UNREACHABLE
from rotation.cli.check import Check, Outcome
from rotation.cli.inventory import SecretRecord, certificate_secrets
from rotation.cli.output import Output, literal
from rotation.cli.session import AwsContext
from rotation.errors import AwsCallError, CertRotateError

SECRETS_MANAGER = "secretsmanager.amazonaws.com"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", help="only certificate secrets whose name starts with this")
    parser.add_argument("--tag", type=options.tag, action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--function", action="append", default=[], metavar="NAME|ARN", help="also check this rotation function"
    )
    parser.add_argument(
        "--document",
        action="append",
        default=None,
        metavar="NAME",
        help="SSM documents that must exist (default: RunUpdateTLS and RollbackTLS)",
    )
    parser.add_argument(
        "--policy-parameter",
        default=None,
        metavar="NAME",
        help="the issuance policy's SSM parameter (the central stack's IssuancePolicyParameter output; "
        "default $CERTROTATE_POLICY_PARAMETER)",
    )
    parser.add_argument(
        "--workload-role-arn",
        action="append",
        default=[],
        metavar="ARN",
        help="a workload instance role the secrets' KMS key policy must admit for kms:Decrypt",
    )
    parser.add_argument(
        "--fleet-role-arn",
        action="append",
        default=[],
        metavar="ARN",
        help="a FleetViewRole revocation reads (besides the rotation functions' CERTROTATE_FLEET_ROLE_ARNS)",
    )
    parser.add_argument(
        "--fleet-region",
        action="append",
        default=[],
        metavar="REGION",
        help="a region revocation reads (besides the rotation functions' CERTROTATE_FLEET_REGIONS)",
    )


def run(aws: AwsContext, args: argparse.Namespace, out: Output) -> int:
    checks: list[Check] = []
    shown = _Shown(out)
    for check in diagnose(aws, args):
        checks.append(check)
        shown.add(check)
    if out.json_mode:
        out.emit_json([asdict(c) for c in checks])
    failed = [c for c in checks if c.outcome is Outcome.FAIL]
    out.note(f"{len(checks)} check(s): {len(failed)} failed")
    return 1 if failed else 0


class _Shown:
    """Each check as it completes, one line: ``ok   name: detail`` (stdout; stderr with --output json)."""

    _STYLES: ClassVar[dict[Outcome, str]] = {Outcome.OK: "green", Outcome.FAIL: "bold red", Outcome.SKIP: "yellow"}

    def __init__(self, out: Output) -> None:
        self._out = out

    def add(self, check: Check) -> None:
        outcome = literal(check.outcome.value.ljust(4), self._STYLES[check.outcome])
        line = Text.assemble(outcome, literal(f" {check.name}: {check.detail}"))
        (self._out.stderr if self._out.json_mode else self._out.stdout).print(line, soft_wrap=True)


def diagnose(aws: AwsContext, args: argparse.Namespace) -> Iterator[Check]:
    yield _credentials(aws)
    records = certificate_secrets(aws, prefix=args.prefix, tags=args.tag)
    readable = [r for r in records if r.is_certificate]
    yield Check(
        "certificate secrets",
        Outcome.OK if readable else Outcome.SKIP,
        f"{len(readable)} found" if readable else "none found (nothing below depends on a secret)",
    )
    for record in records:
        if not record.is_certificate:
            yield Check(f"secret {record.name}", Outcome.FAIL, record.problem)
        elif not record.rotation_configured:
            function = shlex.quote(args.function[0]) if args.function else "ROTATION_FUNCTION_ARN"
            yield Check(
                f"secret {record.name}",
                Outcome.FAIL,
                "rotation is not configured; fix: `aws secretsmanager rotate-secret "
                f"--secret-id {shlex.quote(record.arn)} --rotation-lambda-arn {function}` "
                "(the central stack's rotation function; its first rotation runs at once)",
            )
    functions = dict.fromkeys([*args.function, *(r.rotation_lambda_arn for r in readable if r.rotation_lambda_arn)])
    for function in functions:
        yield _guarded(f"rotation function {function}", partial(_function, aws, function))
    by_ca: dict[str, list[SecretRecord]] = defaultdict(list)
    for record in readable:
        ca_arn = str((record.fields or {}).get("CA_ARN") or "")
        invalid = spec_problem(record.fields or {})
        if invalid:  # on the secret's own line, not under its CA's
            yield Check(
                f"secret {record.name}",
                Outcome.FAIL,
                f"{invalid}; `certrotate validate {shlex.quote(record.name)}` lists every problem",
            )
        elif ca_arn:
            by_ca[ca_arn].append(record)
    for ca_arn, using in by_ca.items():
        yield _guarded(f"CA {ca_arn}", partial(_ca, aws, ca_arn, using))
        from rotation.cli.revocation_checks import check_ca

        yield from check_ca(aws, ca_arn, using)
    for document in args.document or ["RunUpdateTLS", "RollbackTLS"]:
        yield _guarded(f"document {document}", partial(_document, aws, document))
    yield from _kms(aws, readable, args.workload_role_arn)
    yield from _fleet(aws, list(functions), args)
    yield _guarded("issuance policy", partial(_issuance_policy, aws, getattr(args, "policy_parameter", None)))


def _issuance_policy(aws: AwsContext, parameter: str | None) -> tuple[Outcome, str]:
    """The policy the rotation function reads: version, rule count, warnings (the default is a warning).

    A policy that cannot be read or is invalid fails (the rotation function refuses to issue then);
    warnings, the default policy's included, are shown on an ``ok`` line.
    """
    from rotation.cli.policy import deployed_policy

    policy = deployed_policy(aws, parameter)
    where = f"{policy.source}" + (f" version {policy.revision}" if policy.revision else "")
    detail = f"{where}: {len(policy.rules)} rule(s)"
    if policy.warnings:
        detail += "; warning: " + "; ".join(policy.warnings)
    return Outcome.OK, detail


def _guarded(name: str, check: Callable[[], tuple[Outcome, str]]) -> Check:
    """A check whose AWS error is its FAIL line; unreachable AWS stops the run (exit 4)."""
    try:
        outcome, detail = check()
    except AwsCallError as exc:
        if exc.code in _UNREACHABLE:
            raise
        outcome, detail = Outcome.FAIL, str(exc)
    except CertRotateError as exc:
        outcome, detail = Outcome.FAIL, str(exc)
    return Check(name, outcome, detail)


def _credentials(aws: AwsContext) -> Check:
    with aws_call("sts", "GetCallerIdentity"):
        identity = aws.client("sts").get_caller_identity()
    return Check(
        "credentials", Outcome.OK, f"account {identity['Account']} as {identity['Arn']}, region {aws.region_name}"
    )


def _function(aws: AwsContext, function: str) -> tuple[Outcome, str]:
    parts = function.split(":")
    region = parts[3] if function.startswith("arn:") and len(parts) > 3 else None
    client = aws.client("lambda", region)
    with aws_call("lambda", "GetFunction"):
        configuration = client.get_function(FunctionName=function)["Configuration"]
    try:
        with aws_call("lambda", "GetPolicy"):
            policy = json.loads(client.get_policy(FunctionName=function)["Policy"])
    except AwsCallError as exc:
        if exc.code != "ResourceNotFoundException":
            raise
        policy = {}
    found = f"{configuration.get('Runtime', '?')}, handler {configuration.get('Handler', '?')}"
    for statement in _statements(policy):
        principal = statement.get("Principal")
        service = principal.get("Service") if isinstance(principal, Mapping) else principal
        if SECRETS_MANAGER in _as_list(service) and _allows(statement, "lambda:InvokeFunction"):
            return Outcome.OK, f"{found}; Secrets Manager may invoke it{_conditions(statement)}"
    return Outcome.FAIL, f"{found}; its resource policy does not let {SECRETS_MANAGER} invoke it"


def _ca(aws: AwsContext, ca_arn: str, using: Sequence[SecretRecord]) -> tuple[Outcome, str]:
    from rotation.errors import SpecError
    from rotation.issuance.signing import signing_algorithm
    from rotation.issuance.spec import KeyFamily, parse_spec

    region = ca_arn.split(":")[3] if ca_arn.count(":") >= 5 else None
    with aws_call("acm-pca", "DescribeCertificateAuthority"):
        described = aws.client("acm-pca", region).describe_certificate_authority(CertificateAuthorityArn=ca_arn)
    authority = described["CertificateAuthority"]
    status = str(authority.get("Status"))
    key = str(authority.get("CertificateAuthorityConfiguration", {}).get("KeyAlgorithm", ""))
    family = KeyFamily.ECDSA if key.startswith("EC_") else KeyFamily.RSA
    problems = []
    for record in using:  # valid specifications (diagnose reports the others on their own lines)
        try:
            signing_algorithm(parse_spec(record.fields or {}), family)
        except SpecError as exc:
            problems.append(f"{record.name}: {exc}")
    names = ", ".join(r.name for r in using)
    if status != "ACTIVE":
        return Outcome.FAIL, f"{status}, not ACTIVE; used by {names}"
    if problems:
        return Outcome.FAIL, f"ACTIVE, {key}; " + "; ".join(problems)
    return Outcome.OK, f"ACTIVE, {key}; every spec using it can be signed ({names})"


def _document(aws: AwsContext, name: str) -> tuple[Outcome, str]:
    with aws_call("ssm", "DescribeDocument"):
        document = aws.client("ssm").describe_document(Name=name)["Document"]
    status = str(document.get("Status", ""))
    outcome = Outcome.OK if status == "Active" else Outcome.FAIL
    return outcome, f"{document.get('DocumentType', '?')}, version {document.get('DocumentVersion', '?')}, {status}"


def _kms(aws: AwsContext, records: Sequence[SecretRecord], roles: Sequence[str]) -> Iterator[Check]:
    keys: dict[str, list[str]] = defaultdict(list)
    for record in records:
        keys[str(record.metadata.get("KmsKeyId") or "")].append(record.name)
    if not roles:
        yield Check("KMS key policy", Outcome.SKIP, "no --workload-role-arn given: nothing to check the policy against")
        return
    for key_id, names in keys.items():
        if not key_id or key_id.startswith("alias/aws/"):
            yield Check(
                "KMS key aws/secretsmanager",
                Outcome.FAIL,
                f"{', '.join(names)} use the AWS managed key, which other accounts' roles cannot decrypt with",
            )
            continue
        yield _guarded(f"KMS key {key_id}", partial(_key_policy, aws, key_id, roles))


def _key_policy(aws: AwsContext, key_id: str, roles: Sequence[str]) -> tuple[Outcome, str]:
    region = key_id.split(":")[3] if key_id.startswith("arn:") else None
    with aws_call("kms", "GetKeyPolicy"):
        policy = json.loads(aws.client("kms", region).get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    missing, admitted = [], []
    for role in roles:
        statement = next((s for s in _statements(policy) if _admits(s, role) and _allows(s, "kms:Decrypt")), None)
        if statement is None:
            missing.append(role)
        else:
            admitted.append(f"{role}{_conditions(statement)}")
    if missing:
        return Outcome.FAIL, "no statement allows kms:Decrypt to " + ", ".join(missing)
    return Outcome.OK, "kms:Decrypt allowed to " + ", ".join(admitted)


def _statements(policy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = policy.get("Statement") or []
    return [s for s in _as_list(found) if isinstance(s, Mapping) and s.get("Effect") == "Allow"]


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [] if value is None else [value]


def _allows(statement: Mapping[str, Any], action: str) -> bool:
    service = action.split(":", maxsplit=1)[0]
    return any(a in (action, f"{service}:*", "*") for a in _as_list(statement.get("Action")))


def _admits(statement: Mapping[str, Any], role_arn: str) -> bool:
    principal = statement.get("Principal")
    if principal == "*":
        return True
    aws_principals = _as_list(principal.get("AWS")) if isinstance(principal, Mapping) else []
    account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
    return any(p in ("*", role_arn, account, f"arn:aws:iam::{account}:root") for p in aws_principals)


def _conditions(statement: Mapping[str, Any]) -> str:
    condition = statement.get("Condition")
    return f" (when {json.dumps(condition, sort_keys=True)})" if condition else ""


def _fleet(aws: AwsContext, functions: Sequence[str], args: argparse.Namespace) -> Iterator[Check]:
    """One check per account and region superseded revocation reads (GetInventory, one page), then in
    this account, per region, whether a refresh association reaches each host that installed a CRL."""
    roles, regions = list(args.fleet_role_arn), list(args.fleet_region)
    for function in functions:
        parts = function.split(":")
        region = parts[3] if function.startswith("arn:") and len(parts) > 3 else None
        try:
            with aws_call("lambda", "GetFunctionConfiguration"):
                configuration = aws.client("lambda", region).get_function_configuration(FunctionName=function)
        except AwsCallError:
            continue  # the rotation function check above names the problem
        variables = (configuration.get("Environment") or {}).get("Variables") or {}
        roles += [r.strip() for r in str(variables.get("CERTROTATE_FLEET_ROLE_ARNS", "")).split(",") if r.strip()]
        regions += [r.strip() for r in str(variables.get("CERTROTATE_FLEET_REGIONS", "")).split(",") if r.strip()]
    if not roles and not regions:
        return
    for role in [None, *dict.fromkeys(roles)]:
        for region in dict.fromkeys(regions or [aws.region_name]):
            where = f"{role.split(':')[4]} through {role}" if role else "this account"
            yield _guarded(f"fleet view {where}, {region}", partial(_fleet_view, aws, role, region))
    from rotation.cli.crl_refresh_checks import check_region

    for region in dict.fromkeys(regions or [aws.region_name]):
        yield from check_region(aws, region)  # this account's hosts: tags and associations are read here


def _fleet_view(aws: AwsContext, role: str | None, region: str) -> tuple[Outcome, str]:
    from rotation.fleet.view import INVENTORY_TYPE

    session = aws.assumed(role, session_name="certrotate-doctor") if role else None
    with aws_call("ssm", "GetInventory"):
        page = aws.client("ssm", region, session=session).get_inventory(
            ResultAttributes=[{"TypeName": INVENTORY_TYPE}], MaxResults=1
        )
    seen = "instances report" if page.get("Entities") else "no instance reports yet"
    return Outcome.OK, f"GetInventory readable ({seen}); revocation holds this account's secrets while it is not"
