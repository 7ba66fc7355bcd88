"""``certrotate validate``: check a certificate specification before rotation is enabled.

The target is a file when one exists at that path. Otherwise, with ``--offline``, it is a missing
file (the typo case); online it is a secret name or ARN. Online checks add the CA (it exists, is
ACTIVE, and its key family matches the signing algorithm) and the stored issuance policy: the rule
that governs the secret's name (a secret's own; a file's with ``--name``) is found as the rotation
finds it, and the spec is put through the rotation's own pre-issue check
(:func:`rotation.issuance.policy.request_problems`), every violation listed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rotation.aws import aws_call
from rotation.cli.inventory import decode_value
from rotation.cli.output import Output
from rotation.cli.session import AwsContext, InvalidInputError, InvalidSpecError
from rotation.errors import AwsCallError, CertificateAuthorityError, CertRotateError, SpecError
from rotation.issuance.spec import OUTPUT_FIELDS, CertificateType, CertSpec, parse_spec, spec_problems

MAX_FILE_BYTES = 64 * 1024  # a secret value is at most 64 KiB


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="a JSON file, or a secret name/ARN")
    parser.add_argument(
        "--offline", action="store_true", help="a file only; skip the checks against the CA and the issuance policy"
    )
    parser.add_argument(
        "--name",
        dest="secret_name",
        metavar="SECRET",
        help="for a FILE: the secret name it is meant for, to check it against the issuance policy rule of that name",
    )
    add_policy_parameter(parser)


def add_policy_parameter(parser: argparse.ArgumentParser) -> None:
    """``--policy-parameter``: the issuance policy's SSM parameter (default: ``CERTROTATE_POLICY_PARAMETER``)."""
    parser.add_argument(
        "--policy-parameter",
        metavar="NAME",
        help="the issuance policy's SSM parameter, as the rotation function reads it "
        "(default: $CERTROTATE_POLICY_PARAMETER; neither: the default policy)",
    )


def run(aws: AwsContext, args: argparse.Namespace, out: Output) -> int:
    fields = load_target(aws, args.target, offline=args.offline)
    online = not args.offline and aws.has_credentials()
    if not online:
        out.note(
            "checking offline: the CA and the issuance policy are not checked"
            + ("" if args.offline else " (no AWS credentials)")
        )
    is_file = Path(args.target).is_file()
    name = args.secret_name or ("" if is_file else args.target)
    policy = PolicyCheck(aws, name, args.policy_parameter, from_secret=not is_file) if online and name else None
    if online and not name:
        out.note("issuance policy not checked: give --name SECRET to check the rule that will govern this spec")
    try:
        summary = validate(
            fields,
            aws if online else None,
            out.say if not out.json_mode else lambda _: None,
            policy=policy,
            to_write=is_file,
        )
    except InvalidSpecError as exc:
        if out.json_mode:  # the verdict on stdout as well; the error lines and exit 3 as always
            problems = [problem_json(p) for p in exc.problems]
            verdict = {"policy": policy.verdict} if policy is not None and policy.verdict else {}
            out.emit_json(
                {"target": args.target, "valid": False, "ca_checked": online, "problems": problems, **verdict}
            )
        raise
    governed = policy.verdict if policy is not None else None
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


class PolicyCheck:
    """The stored issuance policy's verdict on one secret's spec, as the rotation function reaches it.

    The rule is chosen as the rotation chooses it: by the secret's name and account (DescribeSecret's
    for an existing secret; the name given and the caller's account for one still to be created),
    from the policy the rotation function reads (:func:`rotation.cli.policy.deployed_policy`). The
    spec then goes through the rotation's own pre-issue check, which lists every violation.
    """

    def __init__(
        self,
        aws: AwsContext,
        name: str,
        parameter: str | None,
        *,
        from_secret: bool,
        shared: dict[str, Any] | None = None,
    ) -> None:
        self._aws = aws
        self._name = name
        self._parameter = parameter
        self._from_secret = from_secret
        #: The policy and the caller's account, read once for every check made through :meth:`named`.
        self._shared: dict[str, Any] = shared if shared is not None else {}
        self.verdict = ""

    def named(self, name: str) -> PolicyCheck:
        """The same check for another secret still to be created (the policy and account read once)."""
        return PolicyCheck(self._aws, name, self._parameter, from_secret=False, shared=self._shared)

    def problems(self, spec: CertSpec, fields: dict[str, Any]) -> list[CertRotateError]:
        """Every violation of the governing rule (none governs: that one problem); sets :attr:`verdict`."""
        from rotation.cli.policy import deployed_policy
        from rotation.issuance.policy import PolicyError, request_problems

        if "policy" not in self._shared:
            self._shared["policy"] = deployed_policy(self._aws, self._parameter)
        policy = self._shared["policy"]
        name, account = self._secret()
        source = policy.source + (f" version {policy.revision}" if policy.revision else "")
        try:
            rule = policy.rule_for(name, account)
        except PolicyError as exc:
            self.verdict = f"issuance policy ({source}): no rule governs it: nothing is issued"
            return [exc]
        self.verdict = f"issuance policy ({source}): rule {rule.name!r}"
        found: list[CertRotateError] = []
        for found_problem in request_problems(rule, spec, now=datetime.now(UTC)):
            problem = found_problem
            if problem.field == "VALIDITY" and not fields.get("VALIDITY"):
                problem = PolicyError(
                    "VALIDITY",
                    problem.value,
                    f"{problem.problem}; 365 days is the default when VALIDITY is not set",
                    problem.allowed,
                )
            found.append(problem)
        return found

    def _secret(self) -> tuple[str, str]:
        if self._from_secret:
            with aws_call("secretsmanager", "DescribeSecret"):
                described = self._aws.client("secretsmanager").describe_secret(SecretId=self._name)
            return str(described.get("Name", "")), str(described["ARN"]).split(":")[4]
        if "account" not in self._shared:
            with aws_call("sts", "GetCallerIdentity"):
                self._shared["account"] = str(self._aws.client("sts").get_caller_identity()["Account"])
        return self._name, str(self._shared["account"])


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


def output_field_problems(fields: dict[str, Any], prefix: str = "") -> list[CertRotateError]:
    """A specification to be written carries no field rotation writes (``PRIVATE_KEY_PEM`` …).

    The value is never shown: a planted key is exactly what must not reach a terminal.
    """
    return [
        SpecError(f"{prefix}{k}", "(not shown)", "written by rotation, never by a specification", "input fields only")
        for k in fields
        if k in OUTPUT_FIELDS
    ]


def validate(
    fields: dict[str, Any],
    aws: AwsContext | None,
    say: Callable[[str], None],
    *,
    policy: PolicyCheck | None = None,
    to_write: bool = False,
) -> str:
    """Offline checks of every field, then, with ``aws``, the CA (exists, ACTIVE, key family) and,
    with ``policy``, the issuance policy rule that governs the secret. ``to_write``: a specification
    still to be written (a file), which may not carry the fields rotation writes.

    Returns the one-line summary it also says.

    Raises:
        InvalidSpecError: one or more problems, all listed.
    """
    problems: list[CertRotateError] = list(spec_problems(fields))
    if to_write:
        problems += output_field_problems(fields)
    if not problems and aws is not None:
        problems += ca_problems(parse_spec(fields), aws)
        if policy is not None:
            problems += policy.problems(parse_spec(fields), fields)
    if problems:
        raise InvalidSpecError(problems)
    spec = parse_spec(fields)
    summary = (
        f"valid: {spec.certificate_type.value} {spec.common_name} ({', '.join(spec.names)}), "
        f"{spec.key_algorithm.value}, {spec.signing_hash.value}, renewal {spec.renewal_policy.value}"
        + ("" if aws is None else ", CA checked")
        + ("" if policy is None else ", issuance policy checked")
    )
    say(summary)
    return summary


def ca_problems(spec: Any, aws: AwsContext) -> list[CertRotateError]:
    """The CA named by ``spec``: exists, ACTIVE, key family matching the signing algorithm."""
    from rotation.issuance.certificate_authority import CertificateAuthorities
    from rotation.issuance.signing import signing_algorithm

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
