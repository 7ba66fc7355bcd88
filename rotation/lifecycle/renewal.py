"""Whether a rotation issues a new certificate or stages the current one: the plan it hands the issuer. Pure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from rotation.issuance.bundle import CertBundle
from rotation.issuance.plan import Plan, is_due
from rotation.issuance.spec import CertificateType, CertSpec, RenewalPolicy


@dataclass(frozen=True)
class Decision:
    plan: Plan
    reason: str


def decide(
    spec: CertSpec,
    current: CertBundle | None,
    *,
    current_fits: Callable[[], bool],
    rotate_now: bool,
    now: datetime,
) -> Decision:
    """Choose what this rotation does with the certificate.

    Args:
        spec: the parsed specification.
        current: the bundle in AWSCURRENT, if it holds one.
        current_fits: whether the current bundle still matches the spec and chains to the spec's CA;
            called only when the plan depends on it (the check parses the current private key).
        rotate_now: an operator asked for a fresh certificate for this rotation.
        now: the time of the rotation.
    """
    if current is None:
        return Decision(Plan.ISSUE, "the secret holds no certificate yet")
    acm = spec.certificate_type is CertificateType.ACM_ISSUED
    forced = _forced_by(spec, rotate_now)
    if forced and not acm:
        return Decision(Plan.ISSUE, forced)
    if acm and not current.certificate_arn.startswith("arn:"):
        return Decision(Plan.ISSUE, "the secret holds no ACM certificate ARN")
    if not current_fits():
        return Decision(Plan.ISSUE, "the current certificate no longer matches the spec or its CA")
    if forced:
        return Decision(Plan.RENEW, forced)
    if acm:
        return Decision(Plan.REFRESH, "ACM renews managed certificates; picking up its renewal if any")
    if is_due(current, spec, now):
        return Decision(Plan.ISSUE, "the current certificate is inside its renewal window")
    return Decision(Plan.KEEP, "the current certificate is not due (RENEWAL_POLICY=WHEN_DUE)")


def _forced_by(spec: CertSpec, rotate_now: bool) -> str:
    if rotate_now:
        return "rotate-now requested"
    if spec.forces_renewal:
        return "ENVIRONMENT=TEST renews on every rotation"
    if spec.renewal_policy is RenewalPolicy.ALWAYS:
        return "RENEWAL_POLICY=ALWAYS"
    return ""
