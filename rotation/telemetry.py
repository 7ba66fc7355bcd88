"""Powertools Logger and the EMF metrics certrotate's Lambda functions emit (rotation, events, served expiry).

Log lines carry the secret ARN, step and token as keys and never key material: only
:meth:`CertBundle.summary` facts are logged about a certificate. Each metric is written as its
own EMF record (``single_metric``) with its dimensions, so no dimension state is shared between
metrics, steps or invocations.
"""

from __future__ import annotations

import re
from datetime import datetime

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

logger = Logger(service="certrotate")

NAMESPACE = "certrotate"
UNKNOWN_TYPE = "UNKNOWN"
#: A secret ARN, full (``name-AbCdEf``) or partial (``name``). Secrets Manager's advice is not to end
#: a name with a hyphen and six characters, since those read as the suffix of a full ARN.
_SECRET_ARN = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:(?P<name>[A-Za-z0-9/_+=.@-]+?)(-[A-Za-z0-9]{6})?$"
)


def secret_name(secret_arn: str) -> str | None:
    """The secret's name (the ``SecretName`` dimension) from a full or partial ARN; ``None`` when it
    is not a secret ARN.

    Per-secret metrics let one alarm watch every secret without one writer's certificate (its own
    secret's ``VALIDITY``) raising or masking another secret's alarm.
    """
    match = _SECRET_ARN.match(secret_arn)
    return match["name"] if match else None


def _emit(name: str, value: float, dimensions: dict[str, str], unit: MetricUnit = MetricUnit.Count) -> None:
    with single_metric(
        name=name, unit=unit, value=value, namespace=NAMESPACE, default_dimensions={"service": "certrotate"}
    ) as metric:
        for key, dimension in dimensions.items():
            metric.add_dimension(name=key, value=dimension)


def certificate_issued(certificate_type: str, secret_arn: str, not_after: datetime, now: datetime) -> None:
    _emit("CertificatesIssued", 1, {"CertificateType": certificate_type})
    days = (not_after - now).total_seconds() / 86400
    dimensions = {"CertificateType": certificate_type, "SecretName": secret_name(secret_arn) or secret_arn}
    _emit("DaysToExpiry", round(days, 2), dimensions, MetricUnit.NoUnit)


def step_failed(step: str, certificate_type: str) -> None:
    _emit("RotationStepFailures", 1, {"CertificateType": certificate_type, "Step": step})


def certificate_revoked(reason: str) -> None:
    _emit("CertificatesRevoked", 1, {"Reason": reason})


def revocation_skipped_served(count: int) -> None:
    _emit("RevocationsSkippedServed", count, {})


def revocation_failed() -> None:
    _emit("RevocationFailures", 1, {})


def revocation_held(count: int, longest_seconds: float) -> None:
    """Superseded certificates past their grace that were not revoked this time (served, or held by
    something unreadable), and how long the longest has waited past its grace."""
    _emit("RevocationsHeld", count, {})
    _emit("RevocationHeldDays", round(longest_seconds / 86400, 2), {}, MetricUnit.NoUnit)


def revocation_holders_released(count: int) -> None:
    """Hosts or records whose hold on a superseded certificate ended without them reporting a newer
    one (silent past rotation.fleet.revocation.HOLDER_RELEASE_AFTER, or of an account that may not read
    the secret): the certificate may be revoked while such a host still serves it."""
    _emit("RevocationHoldersReleased", count, {})


def ledger_unprotected() -> None:
    """The issuance ledger table lost a protection (rotation.fleet.ledger_protection): its word was refused."""
    _emit("LedgerUnprotected", 1, {})


def throttled(service: str, operation: str) -> None:
    """One throttled answer (the call is retried within the step's time; see rotation.throttling)."""
    _emit("Throttles", 1, {"Service": service, "Operation": operation})


def served_records_not_counted(count: int) -> None:
    """Fleet records the served-expiry function counted for nothing (no such secret, not readable by
    the reporting account, unreadable): one figure, never one series per record."""
    _emit("ServedRecordsNotCounted", count, {})


def served_expiry(secret: str, days: float) -> None:
    """The fewest days to expiry any host serves for one secret (the fleet view's records)."""
    _emit("ServedDaysToExpiry", days, {"SecretName": secret}, MetricUnit.NoUnit)
