"""A certificate secret rotated → bring every host that serves it to the new certificate, now and later.

Hosts converge through SSM State Manager: one association per secret runs the install document
(``RunUpdateTLS``) on the instances tagged ``certrotate:secret`` = the secret's name, on a schedule
(default ``rate(30 minutes)``) and at once on an instance that newly matches (a host that was
stopped during the rotation, or launched by Auto Scaling afterwards). This handler receives
Secrets Manager's *RotationSucceeded* event (via CloudTrail): in the central account from its own
bus, in a workload account from the central account's bus through a bus-to-bus rule (the event
arrives unchanged: source ``aws.secretsmanager``, account = the central account). It makes sure
the secret's association exists with the stack's settings (creating or updating it) and starts it
once, so a rotation still reaches the hosts within a minute.

What the event may ask for is bounded by configuration, not by the event: the account it must
come from (``EXPECTED_ACCOUNT``), an ARN pattern the secret must match (``SECRET_ARN_PATTERN``, the
secrets this account's hosts may read), and in the central account the rotation function the
secret must name (``ROTATION_FUNCTION_ARN``), so no association is made for a secret certrotate
does not rotate. The association's only parameter is the secret's ARN; paths stay the document's
defaults (see the README for per-host paths).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rotation.aws import aws_call, make_client
from rotation.errors import AwsCallError, EventError
from rotation.fleet.association_schedule import check_schedule
from rotation.fleet.view import INSTANCE_TAG
from rotation.telemetry import logger

ASSOCIATION_PREFIX = "certrotate-"
_SECRET_ARN = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[a-z]{2}(-[a-z]+)+-[0-9]:(?P<account>[0-9]{12}):secret:(?P<name>[A-Za-z0-9/_+=.@-]{1,512})-[A-Za-z0-9]{6}$"
)
_ESCAPES = {"_": "__", "/": "_s", "+": "_p", "=": "_e", "@": "_a"}
_NAME_LIMIT = 128


@dataclass(frozen=True)
class RotatedSecret:
    arn: str
    name: str  # without the six-character suffix Secrets Manager appends
    account: str


@dataclass(frozen=True)
class AssociationSettings:
    """What every certrotate association in this account looks like (from the stack's parameters)."""

    document: str
    schedule: str
    max_concurrency: str
    max_errors: str
    compliance_severity: str

    def __post_init__(self) -> None:
        """Raises:
        SpecError: the schedule is not one State Manager accepts (refused here, so no
            CreateAssociation or UpdateAssociation is sent that the service would refuse)."""
        check_schedule(self.schedule, "ASSOCIATION_SCHEDULE")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> AssociationSettings:
        return cls(
            document=environ.get("INSTALL_DOCUMENT", "RunUpdateTLS"),
            schedule=environ.get("ASSOCIATION_SCHEDULE", "rate(30 minutes)"),
            max_concurrency=environ.get("ASSOCIATION_MAX_CONCURRENCY", "25%"),
            max_errors=environ.get("ASSOCIATION_MAX_ERRORS", "10%"),
            compliance_severity=environ.get("ASSOCIATION_COMPLIANCE_SEVERITY", "HIGH"),
        )


@dataclass(frozen=True)
class Scope:
    """Which rotations this account acts on."""

    expected_account: str
    secret_arn_pattern: str
    rotation_function_arn: str | None = None  # central account only: the secret must name it


def rotated_secret(event: Mapping[str, Any]) -> RotatedSecret | None:
    """The secret of a RotationSucceeded event, or None for any other event.

    Raises:
        EventError: a RotationSucceeded event whose SecretId is not a full secret ARN.
    """
    detail = event.get("detail") or {}
    if event.get("source") != "aws.secretsmanager" or detail.get("eventName") != "RotationSucceeded":
        return None
    secret_id = str((detail.get("additionalEventData") or {}).get("SecretId") or "")
    match = _SECRET_ARN.match(secret_id)
    if match is None:
        raise EventError(
            f"detail.additionalEventData.SecretId={secret_id[:600]!r}: not a full secret ARN "
            "(arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<6 characters>)"
        )
    return RotatedSecret(arn=secret_id, name=match["name"], account=match["account"])


def association_name(secret: RotatedSecret) -> str:
    """``certrotate-`` + the secret's name escaped one-to-one into SSM's ``[A-Za-z0-9_.-]`` + ``-`` +
    the six characters Secrets Manager appended to its ARN.

    The suffix is new for each incarnation of a name, so a secret deleted and recreated under the
    same name gets its own association instead of taking over the old one's. A name too long for
    SSM's 128 characters is cut and ends in ``.`` + a hash of the whole ARN: a form no uncut name
    can take (an uncut one ends in ``-`` and six characters), so distinct secrets never collide.
    """
    escaped = "".join(_ESCAPES.get(c, c) for c in secret.name)
    name = f"{ASSOCIATION_PREFIX}{escaped}-{secret.arn[-6:]}"
    if len(name) <= _NAME_LIMIT:
        return name
    digest = hashlib.sha256(secret.arn.encode()).hexdigest()[:16]
    return f"{name[: _NAME_LIMIT - len(digest) - 1]}.{digest}"


def legacy_association_name(secret: RotatedSecret) -> str:
    """The name earlier versions gave (no incarnation suffix): converge renames such an association
    when it installs exactly this secret's ARN, and leaves any other alone."""
    escaped = "".join(_ESCAPES.get(c, c) for c in secret.name)
    name = ASSOCIATION_PREFIX + escaped
    if len(name) <= _NAME_LIMIT:
        return name
    digest = hashlib.sha256(secret.name.encode()).hexdigest()[:16]
    return f"{name[: _NAME_LIMIT - len(digest) - 1]}-{digest}"


def desired_association(secret: RotatedSecret, settings: AssociationSettings) -> dict[str, Any]:
    """The CreateAssociation request for ``secret`` (also what UpdateAssociation must restore)."""
    return {
        "Name": settings.document,
        "AssociationName": association_name(secret),
        "Targets": [{"Key": f"tag:{INSTANCE_TAG}", "Values": [secret.name]}],
        "Parameters": {"SecretArn": [secret.arn]},
        "ScheduleExpression": settings.schedule,
        "ApplyOnlyAtCronInterval": False,
        "MaxConcurrency": settings.max_concurrency,
        "MaxErrors": settings.max_errors,
        "ComplianceSeverity": settings.compliance_severity,
        "SyncCompliance": "AUTO",
    }


_COMPARED = ("Name", "Targets", "Parameters", "ScheduleExpression", "MaxConcurrency", "MaxErrors", "ComplianceSeverity")


def in_scope(secret: RotatedSecret, event: Mapping[str, Any], scope: Scope, secretsmanager: Any) -> bool:
    if str(event.get("account")) != scope.expected_account or secret.account != scope.expected_account:
        logger.warning(
            "rotation of %s reported by account %s; this stack acts only on account %s",
            secret.arn,
            event.get("account"),
            scope.expected_account,
        )
        return False
    if not fnmatch.fnmatchcase(secret.arn, scope.secret_arn_pattern):
        logger.info("%s is outside %s; nothing to do", secret.arn, scope.secret_arn_pattern)
        return False
    if scope.rotation_function_arn is None:
        return True
    try:
        with aws_call("secretsmanager", "DescribeSecret"):
            rotation_function = secretsmanager.describe_secret(SecretId=secret.arn).get("RotationLambdaARN")
    except AwsCallError as exc:
        if exc.code != "AccessDeniedException":
            raise
        # The role may describe only secrets that name this stack's rotation function (IAM
        # condition), so a denial is the answer "not ours", not a failure to retry.
        rotation_function = None
    if rotation_function != scope.rotation_function_arn:
        logger.info("%s is not rotated by %s; nothing to do", secret.arn, scope.rotation_function_arn)
        return False
    return True


def find_associations(ssm: Any, name: str) -> list[dict[str, Any]]:
    """The associations named exactly ``name`` (ListAssociations, every page: the filter is not an
    exact match, and SSM pages its answer)."""
    found: list[dict[str, Any]] = []
    request: dict[str, Any] = {"AssociationFilterList": [{"key": "AssociationName", "value": name}]}
    while True:
        with aws_call("ssm", "ListAssociations"):
            page = ssm.list_associations(**request)
        found.extend(a for a in page.get("Associations", []) if a.get("AssociationName") == name)
        if not page.get("NextToken"):
            return found
        request["NextToken"] = page["NextToken"]


def converge(secret: RotatedSecret, ssm: Any, settings: AssociationSettings) -> str:
    """Make the secret's association match ``settings`` and run it now; returns its id."""
    desired = desired_association(secret, settings)
    name = desired["AssociationName"]
    existing = find_associations(ssm, name)
    current: dict[str, Any] | None = None
    if not existing:
        for legacy in find_associations(ssm, legacy_association_name(secret)):
            with aws_call("ssm", "DescribeAssociation"):
                described = ssm.describe_association(AssociationId=legacy["AssociationId"])["AssociationDescription"]
            if described.get("Parameters") == desired["Parameters"]:  # this very secret: rename it
                existing, current = [legacy], described
                break
    if not existing:
        with aws_call("ssm", "CreateAssociation"):
            created = ssm.create_association(**desired)["AssociationDescription"]
        logger.info("association %s created for %s; it runs on matching instances now", name, secret.arn)
        return str(created["AssociationId"])
    association_id = str(existing[0]["AssociationId"])
    if current is None:
        with aws_call("ssm", "DescribeAssociation"):
            current = ssm.describe_association(AssociationId=association_id)["AssociationDescription"]
    if current.get("AssociationName") != name or any(current.get(key) != desired[key] for key in _COMPARED):
        with aws_call("ssm", "UpdateAssociation"):
            ssm.update_association(AssociationId=association_id, **desired)
        logger.info("association %s updated to this stack's settings", name)
    with aws_call("ssm", "StartAssociationsOnce"):
        ssm.start_associations_once(AssociationIds=[association_id])
    logger.info("association %s started for the rotation of %s", name, secret.arn)
    return association_id


def handle(
    event: Mapping[str, Any], ssm: Any, secretsmanager: Any, *, settings: AssociationSettings, scope: Scope
) -> str | None:
    """Converge the hosts of the event's secret; returns the association id, or None if out of scope."""
    secret = rotated_secret(event)
    if secret is None:
        logger.warning("not a RotationSucceeded event; nothing to do")
        return None
    if not in_scope(secret, event, scope, secretsmanager):
        return None
    return converge(secret, ssm, settings)


def scope_from_environment(environ: Mapping[str, str]) -> Scope:
    return Scope(
        expected_account=environ["EXPECTED_ACCOUNT"],
        secret_arn_pattern=environ["SECRET_ARN_PATTERN"],
        rotation_function_arn=environ.get("ROTATION_FUNCTION_ARN") or None,
    )


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    scope = scope_from_environment(os.environ)
    association_id = handle(
        event,
        make_client("ssm"),
        make_client("secretsmanager") if scope.rotation_function_arn else None,
        settings=AssociationSettings.from_environment(os.environ),
        scope=scope,
    )
    return {"associationId": association_id}
