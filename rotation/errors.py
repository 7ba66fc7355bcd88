"""One exception tree for the whole project.

Every error a caller must handle derives from :class:`CertRotateError`. Messages name the
secret field, the offending value and what is allowed; they never carry key material or
PEM bodies (values that could hold either are never echoed).
"""

from __future__ import annotations

from collections.abc import Iterable

from rotation.redaction import quote


class CertRotateError(Exception):
    """Root of every error raised by certrotate."""


class SpecError(CertRotateError):
    """The certificate specification stored in the secret is unusable."""

    def __init__(
        self,
        field: str,
        value: object,
        problem: str,
        allowed: Iterable[str] | str | None = None,
    ) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        self.allowed = tuple(allowed) if allowed is not None and not isinstance(allowed, str) else allowed
        shown = quote(value)
        message = f"{field}={shown}: {problem}"
        if isinstance(self.allowed, tuple):
            message += f"; allowed: {', '.join(self.allowed)}"
        elif isinstance(self.allowed, str):
            message += f"; allowed: {self.allowed}"
        super().__init__(message)


class RotationStateError(CertRotateError):
    """The secret's rotation state does not allow this step (Secrets Manager contract)."""


class RotationDisabledError(RotationStateError):
    """Rotation is not enabled on the secret."""


class UnknownVersionError(RotationStateError):
    """The ClientRequestToken is not a version of the secret."""


class NotPendingError(RotationStateError):
    """The token's version is neither AWSCURRENT nor AWSPENDING."""


class EventError(CertRotateError):
    """The Lambda event is not a Secrets Manager rotation event."""


class AwsCallError(CertRotateError):
    """An AWS API call failed; ``code`` is the AWS error code (or the exception name)."""

    def __init__(self, service: str, operation: str, code: str, detail: str = "") -> None:
        self.service = service
        self.operation = operation
        self.code = code
        text = f"{service} {operation} failed: {code}"
        super().__init__(f"{text} ({detail})" if detail else text)


class CertificateAuthorityError(CertRotateError):
    """The Private CA named by CA_ARN does not exist, is not ACTIVE, or cannot be read."""


class IssuanceError(CertRotateError):
    """The issuer could not produce a certificate (failed, timed out, mismatched)."""


class IssuanceTimeoutError(IssuanceError):
    """Issuance did not finish within the wait budget."""


class VerificationError(CertRotateError):
    """A certificate bundle failed verification; ``check`` names the failed property."""

    def __init__(self, check: str, detail: str) -> None:
        self.check = check
        super().__init__(f"{check}: {detail}")
