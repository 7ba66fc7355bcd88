"""``certrotate validate``: check a certificate specification before rotation is enabled.

The target is a file when one exists at that path. Otherwise, with ``--offline``, it is a missing
file (the typo case); online it is a secret name or ARN. Online checks add the CA: it exists, is
ACTIVE, and its key family matches the signing algorithm.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rotation.aws import aws_call
from rotation.cli.inventory import decode_value
from rotation.cli.output import Output
from rotation.cli.session import AwsContext, InvalidInputError
from rotation.errors import AwsCallError, CertificateAuthorityError, CertRotateError, SpecError
from rotation.spec import CertificateType, parse_spec, spec_problems

MAX_FILE_BYTES = 64 * 1024  # a secret value is at most 64 KiB


class InvalidSpecError(CertRotateError):
    """The specification has problems; ``problems`` lists every one."""

    def __init__(self, problems: list[CertRotateError]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s): " + "; ".join(str(p) for p in problems))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="a JSON file, or a secret name/ARN")
    parser.add_argument("--offline", action="store_true", help="a file only; skip the checks against the CA")


def run(aws: AwsContext, args: argparse.Namespace, out: Output) -> int:
    fields = load_target(aws, args.target, offline=args.offline)
    online = not args.offline and aws.has_credentials()
    if not online:
        out.note("checking offline: the CA is not checked" + ("" if args.offline else " (no AWS credentials)"))
    try:
        summary = validate(fields, aws if online else None, out.say if not out.json_mode else lambda _: None)
    except InvalidSpecError as exc:
        if out.json_mode:  # the verdict on stdout as well; the error lines and exit 3 as always
            problems = [problem_json(p) for p in exc.problems]
            out.emit_json({"target": args.target, "valid": False, "ca_checked": online, "problems": problems})
        raise
    governed = _governing_rule(aws, args.target) if online and not Path(args.target).is_file() else None
    if governed is not None and not out.json_mode:
        out.say(governed)
    if out.json_mode:
        document: dict[str, Any] = {"target": args.target, "valid": True, "ca_checked": online, "summary": summary}
        if governed is not None:
            document["policy"] = governed
        out.emit_json(document)
    return 0


def problem_json(problem: CertRotateError) -> dict[str, Any]:
    """One problem as data: the field, its value (redacted on output), what is wrong and what is allowed."""
    if isinstance(problem, SpecError):
        allowed = list(problem.allowed) if isinstance(problem.allowed, tuple) else problem.allowed
        return {"field": problem.field, "value": problem.value, "problem": problem.problem, "allowed": allowed}
    return {"field": None, "value": None, "problem": str(problem), "allowed": None}


def _governing_rule(aws: AwsContext, secret_id: str) -> str:
    """Which issuance policy rule governs the secret (what the rotation function will enforce)."""
    from rotation.cli.policy import governing_rule

    policy, rule = governing_rule(aws, secret_id)
    source = policy.source + (f" version {policy.revision}" if policy.revision else "")
    return f"issuance policy ({source}): " + (
        f"rule {rule.name!r}" if rule else "no rule governs it: nothing is issued"
    )


def load_target(aws: AwsContext, target: str, *, offline: bool = False) -> dict[str, Any]:
    """The fields of a spec file, or of a secret's AWSCURRENT value when ``target`` is no file.

    Raises:
        InvalidInputError: no such file (offline), a file that is not UTF-8 or too large, a secret
            that holds plain text or binary, or neither a file nor a secret of that name.
    """
    path = Path(target)
    if path.is_file():
        return _file_fields(path)
    if path.exists():
        raise InvalidInputError(f"{target}: not a regular file")
    if offline:
        raise InvalidInputError(f"{target}: no such file (--offline reads files only)")
    try:
        with aws_call("secretsmanager", "GetSecretValue"):
            value = aws.client("secretsmanager").get_secret_value(SecretId=target, VersionStage="AWSCURRENT")
    except AwsCallError as exc:
        if exc.code == "ResourceNotFoundException":
            raise InvalidInputError(f"{target}: no such file, and no secret of that name") from None
        raise
    fields, problem = decode_value(value)
    if fields is None:
        raise InvalidInputError(f"secret {target} holds {problem}")
    return dict(fields)


def _file_fields(path: Path) -> dict[str, Any]:
    with path.open("rb") as stream:
        data = stream.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInputError(f"{path}: larger than {MAX_FILE_BYTES} bytes, the most a secret value holds")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "a specification is a UTF-8 JSON object"
        ) from None
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(fields, dict):
        raise InvalidInputError(f"{path}: a JSON {type(fields).__name__}, not an object of certificate fields")
    return fields


def validate(fields: dict[str, Any], aws: AwsContext | None, say: Callable[[str], None]) -> str:
    """Offline checks of every field, then, with ``aws``, the CA: exists, ACTIVE, key family.

    Returns the one-line summary it also says.

    Raises:
        InvalidSpecError: one or more problems, all listed.
    """
    problems: list[CertRotateError] = list(spec_problems(fields))
    if not problems and aws is not None:
        problems += ca_problems(parse_spec(fields), aws)
    if problems:
        raise InvalidSpecError(problems)
    spec = parse_spec(fields)
    summary = (
        f"valid: {spec.certificate_type.value} {spec.common_name} ({', '.join(spec.names)}), "
        f"{spec.key_algorithm.value}, {spec.signing_hash.value}, renewal {spec.renewal_policy.value}"
        + ("" if aws is None else ", CA checked")
    )
    say(summary)
    return summary


def ca_problems(spec: Any, aws: AwsContext) -> list[CertRotateError]:
    """The CA named by ``spec``: exists, ACTIVE, key family matching the signing algorithm."""
    from rotation.certificate_authority import CertificateAuthorities
    from rotation.signing import signing_algorithm

    pca = aws.client("acm-pca", region=spec.ca_region)
    try:
        facts = CertificateAuthorities(lambda region: pca).get(spec.ca_arn)
        with aws_call("acm-pca", "DescribeCertificateAuthority"):
            described = pca.describe_certificate_authority(CertificateAuthorityArn=spec.ca_arn)
    except CertificateAuthorityError as exc:
        return [exc]
    problems: list[CertRotateError] = []
    status = described["CertificateAuthority"].get("Status")
    if status != "ACTIVE":
        problems.append(SpecError("CA_ARN", spec.ca_arn, f"the CA is {status}, not ACTIVE"))
    try:
        signing_algorithm(spec, facts.key_family)
    except SpecError as exc:
        problems.append(exc)
    if spec.certificate_type is CertificateType.ACM_ISSUED and described["CertificateAuthority"].get("Type") not in (
        "ROOT",
        "SUBORDINATE",
    ):
        problems.append(SpecError("CA_ARN", spec.ca_arn, "not a CA ACM can request private certificates from"))
    return problems
