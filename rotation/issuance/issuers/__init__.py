"""Certificate issuers, one per :class:`~rotation.issuance.spec.CertificateType`.

ACM's issuer loads on first use (``rotation.issuance.issuers.AcmIssuer`` or ``rotation.issuance.issuers.acm``), so a
container that issues from Private CA never imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rotation.issuance.issuers.base import Issuer, IssueRequest, WaitBudget
from rotation.issuance.issuers.pca import PcaIssuer

if TYPE_CHECKING:  # pragma: no cover
    from rotation.issuance.issuers.acm import AcmIssuer

__all__ = ["AcmIssuer", "IssueRequest", "Issuer", "PcaIssuer", "WaitBudget"]


def __getattr__(name: str) -> Any:
    if name == "AcmIssuer":
        from rotation.issuance.issuers.acm import AcmIssuer

        return AcmIssuer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
