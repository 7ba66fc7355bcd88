"""The emulated Private CA's clock: the time its first CRL and RevokeCertificate's revocations carry.

moto stamps a revocation with the wall clock (``revocation_time``: ``unix_time()`` in moto 5.2's
``acmpca/models.py``), and :mod:`rotation.emulation.pca_crl` writes a CA's first CRL when it becomes
ACTIVE. A scenario that runs State Manager and the CA's publication schedule on an emulated clock
(hours in a second) gives that clock here, so the revocation, the CRL's thisUpdate and revocationDate
and the association's runs share one timeline. Outside :func:`ca_clock` nothing changes: the wall clock.
Keep the emulated time at or before the wall clock: hosts and servers check a CRL's thisUpdate against theirs.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

__all__ = ["ca_clock", "ca_now"]

_CLOCKS: list[Callable[[], datetime]] = []


def ca_now() -> datetime:
    """The CA's now, to the second: the innermost :func:`ca_clock`'s, else the wall clock's."""
    now = _CLOCKS[-1]() if _CLOCKS else datetime.now(UTC)
    return now.astimezone(UTC).replace(microsecond=0)


@contextlib.contextmanager
def ca_clock(clock: Callable[[], datetime]) -> Iterator[None]:
    """Run the emulated CA on ``clock`` for the duration (moto's server thread reads it too)."""
    _teach_revocation_time()
    _CLOCKS.append(clock)
    try:
        yield
    finally:
        _CLOCKS.remove(clock)


def _teach_revocation_time() -> None:
    """RevokeCertificate records the CA's now as the revocation time (idempotent)."""
    from moto.acmpca.responses import ACMPCAResponse

    if getattr(ACMPCAResponse.revoke_certificate, "certrotate_clock", False):
        return
    original = ACMPCAResponse.revoke_certificate

    def revoke_certificate(self: Any) -> str:
        reply = str(original(self))
        if _CLOCKS:
            params = json.loads(self.body)
            ca = self.acmpca_backend.certificate_authorities[params["CertificateAuthorityArn"]]
            ca.revoked_certificates[params["CertificateSerial"]]["revocation_time"] = ca_now().timestamp()
        return reply

    revoke_certificate.certrotate_clock = True
    ACMPCAResponse.revoke_certificate = revoke_certificate  # type: ignore[method-assign]
