"""Powertools Logger and Metrics for the rotation, and the metrics it emits.

Log lines carry the secret ARN, step and token as keys and never key material: only
:meth:`CertBundle.summary` facts are logged about a certificate.
"""

from __future__ import annotations

from datetime import datetime

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="certrotate")
metrics = Metrics(namespace="certrotate", service="certrotate")

UNKNOWN_TYPE = "UNKNOWN"


def certificate_issued(certificate_type: str, not_after: datetime, now: datetime) -> None:
    metrics.add_dimension(name="CertificateType", value=certificate_type)
    metrics.add_metric(name="CertificatesIssued", unit=MetricUnit.Count, value=1)
    days = (not_after - now).total_seconds() / 86400
    metrics.add_metric(name="DaysToExpiry", unit=MetricUnit.Count, value=round(days, 2))


def step_failed(step: str, certificate_type: str, error: BaseException) -> None:
    metrics.add_dimension(name="CertificateType", value=certificate_type)
    metrics.add_metric(name="RotationStepFailures", unit=MetricUnit.Count, value=1)
    metrics.add_metadata(key="failed_step", value=step)
    metrics.add_metadata(key="error", value=type(error).__name__)
