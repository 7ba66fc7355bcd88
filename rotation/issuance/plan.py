"""What a rotation asks its issuer to do with the certificate (the plan), and when a certificate is due. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from rotation.issuance.bundle import CertBundle
from rotation.issuance.spec import CertSpec


class Plan(StrEnum):
    KEEP = "keep"  # stage the current bundle unchanged
    ISSUE = "issue"  # a new certificate (PCA: new key + CSR; ACM: RequestCertificate)
    RENEW = "renew"  # ACM: RenewCertificate on the current certificate ARN
    REFRESH = "refresh"  # ACM: take ACM's own renewal if it happened, renew if due, else keep


def renewal_window(bundle: CertBundle, spec: CertSpec) -> timedelta:
    """``RENEW_BEFORE_DAYS``, or one third of the certificate's lifetime."""
    return spec.renew_before or (bundle.not_after - bundle.not_before) / 3


def is_due(bundle: CertBundle, spec: CertSpec, now: datetime) -> bool:
    return now >= bundle.not_after - renewal_window(bundle, spec)
