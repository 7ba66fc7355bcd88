"""Certificate issuers, one per :class:`~rotation.spec.CertificateType`."""

from rotation.issuers.acm import AcmIssuer
from rotation.issuers.base import Issuer, IssueRequest, WaitBudget
from rotation.issuers.pca import PcaIssuer

__all__ = ["AcmIssuer", "IssueRequest", "Issuer", "PcaIssuer", "WaitBudget"]
