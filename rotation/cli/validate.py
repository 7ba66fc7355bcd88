"""``certrotate validate``: check a certificate specification before rotation is enabled."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rotation.aws import aws_call
from rotation.cli.session import AwsContext
from rotation.errors import CertificateAuthorityError, CertRotateError, SpecError
from rotation.spec import CertificateType, load_secret_fields, parse_spec, spec_problems


class InvalidSpecError(CertRotateError):
    """The specification has problems; ``problems`` lists every one."""

    def __init__(self, problems: list[CertRotateError]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s): " + "; ".join(str(p) for p in problems))


def load_target(aws: AwsContext, target: str) -> dict[str, Any]:
    """The fields of a spec file, or of a secret's AWSCURRENT value when ``target`` is no file."""
    path = Path(target)
    if path.is_file():
        return load_secret_fields(path.read_text())
    with aws_call("secretsmanager", "GetSecretValue"):
        value = aws.client("secretsmanager").get_secret_value(SecretId=target, VersionStage="AWSCURRENT")
    return load_secret_fields(value.get("SecretString") or "")


def validate(fields: dict[str, Any], aws: AwsContext | None, say: Callable[[str], None]) -> None:
    """Offline checks of every field, then, with ``aws``, the CA: exists, ACTIVE, key family.

    Raises:
        InvalidSpecError: one or more problems, all listed.
    """
    problems: list[CertRotateError] = list(spec_problems(fields))
    if not problems and aws is not None:
        problems += _ca_problems(parse_spec(fields), aws)
    if problems:
        raise InvalidSpecError(problems)
    spec = parse_spec(fields)
    say(
        f"valid: {spec.certificate_type.value} {spec.common_name} ({', '.join(spec.names)}), "
        f"{spec.key_algorithm.value}, {spec.signing_hash.value}, renewal {spec.renewal_policy.value}"
        + ("" if aws is None else ", CA checked")
    )


def _ca_problems(spec: Any, aws: AwsContext) -> list[CertRotateError]:
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
