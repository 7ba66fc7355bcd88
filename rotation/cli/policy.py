"""``certrotate policy validate FILE``: check an issuance policy document before the operator stores it.

Prints the policy as the rotation function will read it (every default spelled out, names as
punycode), its rules and warnings; ``--output json`` prints that normalized document alone on
stdout (warnings on stderr), so the output is itself a policy document that validates again to the
same policy (round trip) and can be stored as it is with
``aws ssm put-parameter --name /STACK/issuance-policy --type String --overwrite --value file://FILE``.
Every CA ARN's syntax is checked offline; ``--check-cas`` also asks Private CA that each exists
and is ACTIVE (DescribeCertificateAuthority in the ARN's region).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from rotation.aws import aws_call
from rotation.cli.examples import epilog
from rotation.cli.output import Output
from rotation.cli.parser import Parser, global_options
from rotation.cli.session import InvalidInputError, InvalidSpecError
from rotation.errors import AwsCallError, CertRotateError
from rotation.issuance.policy import CONSTRAINTS, IssuancePolicy, PolicyError, Rule, parse_policy
from rotation.issuance.policy_store import POLICY_PARAMETER_ENV, load_policy, stack_cas_from_env

#: An SSM parameter holds at most 8 KB (advanced tier); a policy file larger than that cannot be stored.
MAX_POLICY_BYTES = 8 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:

    actions = parser.add_subparsers(dest="policy_action", required=True, metavar="ACTION", parser_class=Parser)
    text = "check a policy document (JSON file) before storing it; --output json prints it normalized"
    validate = actions.add_parser(
        "validate",
        help=text,
        description=text,
        epilog=epilog("policy validate"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument("file", help="the policy document")
    validate.add_argument(
        "--check-cas",
        action="store_true",
        help="also ask Private CA that every CA ARN exists and is ACTIVE (DescribeCertificateAuthority)",
    )
    global_options(validate, on_command=True)


def run(aws: Any, args: argparse.Namespace, out: Output) -> int:
    policy = read_file(Path(args.file))
    if args.check_cas:
        check_cas(aws, policy)
    for warning in policy.warnings:
        out.note(f"warning: {warning}")
    if out.json_mode:  # the document alone: what is stored, and what validates to the same policy
        out.emit_json(policy.to_document())
        return 0
    out.say(f"valid: issuance policy format {policy.to_document()['version']}, {len(policy.rules)} rule(s)")
    for rule in policy.rules:
        out.say(f"  {describe_rule(rule)}")
    for rollover in policy.rollovers:
        out.say(
            f"  CA rollover {rollover.name}: {rollover.phase.value}, {rollover.old_ca_arn} -> {rollover.new_ca_arn}, "
            f"bundles {', '.join(rollover.bundles) or '-'}"
        )
    if args.check_cas:
        out.say("every CA exists and is ACTIVE")
    return 0


def check_cas(aws: Any, policy: IssuancePolicy) -> None:
    """Every CA the rules name exists and is ACTIVE (one DescribeCertificateAuthority each).

    Raises:
        InvalidSpecError: every CA that does not exist, cannot be described or is not ACTIVE.
    """
    problems: list[CertRotateError] = []
    arns = dict.fromkeys(arn for rule in policy.rules for arn in rule.ca_arns if arn != "*")
    for arn in arns:
        where = next(f"rules[{i}].ca_arns" for i, rule in enumerate(policy.rules) if arn in rule.ca_arns)
        try:
            with aws_call("acm-pca", "DescribeCertificateAuthority"):
                described = aws.client("acm-pca", region=arn.split(":")[3]).describe_certificate_authority(
                    CertificateAuthorityArn=arn
                )
        except AwsCallError as exc:
            problems.append(
                PolicyError(where, arn, f"DescribeCertificateAuthority failed: {exc.code}", "an existing CA")
            )
            continue
        status = described["CertificateAuthority"].get("Status")
        if status != "ACTIVE":
            problems.append(PolicyError(where, arn, f"the CA is {status}, not ACTIVE", "an ACTIVE CA"))
    if problems:
        raise InvalidSpecError(problems)


def read_file(path: Path) -> IssuancePolicy:
    """Raises: InvalidInputError (no such file, too large, not UTF-8); PolicyError (invalid)."""
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file")
    data = path.read_bytes()
    if len(data) > MAX_POLICY_BYTES:
        raise InvalidInputError(f"{path}: larger than {MAX_POLICY_BYTES} bytes, the most an SSM parameter holds")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path}: not UTF-8 text") from None
    return parse_policy(text, source=str(path))


def describe_rule(rule: Rule) -> str:
    """One line: the rule's name, what it governs and what each of its constraints allows."""
    return "; ".join([f"{rule.name}: secrets {', '.join(rule.secrets)}", *(c.allows(rule) for c in CONSTRAINTS)])


def deployed_policy(aws: Any, parameter: str | None = None) -> IssuancePolicy:
    """The policy the rotation function reads: the parameter (``CERTROTATE_POLICY_PARAMETER``) or the default.

    Raises:
        AwsCallError: the parameter cannot be read. PolicyError: the stored document is invalid.
    """
    name = parameter if parameter is not None else os.environ.get(POLICY_PARAMETER_ENV, "")
    if not name:
        from rotation.issuance.policy import default_policy

        return default_policy(stack_cas_from_env())
    return load_policy(aws.client("ssm"), name, stack_cas_from_env())


def governing_rule(aws: Any, secret_id: str, parameter: str | None = None) -> tuple[IssuancePolicy, Rule | None]:
    """The policy and the rule that governs ``secret_id`` (None: no rule does), from DescribeSecret."""
    policy = deployed_policy(aws, parameter)
    with aws_call("secretsmanager", "DescribeSecret"):
        described = aws.client("secretsmanager").describe_secret(SecretId=secret_id)
    try:
        return policy, policy.rule_for(str(described.get("Name", "")), str(described["ARN"]).split(":")[4])
    except PolicyError:  # no rule governs it
        return policy, None
