"""What every issuer shares: the request it gets, the wait budget, idempotency tokens."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

from rotation.errors import IssuanceTimeoutError
from rotation.issuance.bundle import CertBundle
from rotation.issuance.certificate_authority import CaFacts
from rotation.issuance.plan import Plan
from rotation.issuance.policy import Rule
from rotation.issuance.spec import CertSpec

T = TypeVar("T")


@dataclass(frozen=True)
class IssueRequest:
    spec: CertSpec
    plan: Plan
    token: str
    secret_arn: str
    current: CertBundle | None
    ca: CaFacts
    now: datetime
    #: The issuance policy rule governing the secret: an existing certificate (ACM's CERTIFICATE_ARN)
    #: is taken only when every name it carries is inside it (None: not checked, callers outside a step).
    rule: Rule | None = None


@dataclass
class WaitBudget:
    """A deadline for waiting on asynchronous issuance, sized to fit the Lambda timeout."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    first_delay: float = 0.5
    max_delay: float = 5.0
    _deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self._deadline = self.clock() + self.seconds

    def remaining(self) -> float:
        """Seconds left before the deadline (throttled calls are retried only within it)."""
        return self._deadline - self.clock()

    def poll(self, attempt: Callable[[], T | None], waiting_for: str) -> T:
        """Call ``attempt`` until it returns a value, backing off, until the deadline.

        Raises:
            IssuanceTimeoutError: the deadline passed first.
        """
        delay = self.first_delay
        while True:
            result = attempt()
            if result is not None:
                return result
            remaining = self._deadline - self.clock()
            if remaining <= 0:
                raise IssuanceTimeoutError(
                    f"gave up waiting for {waiting_for} after {self.seconds:.0f} s; the step will be "
                    "retried by Secrets Manager and resumes idempotently"
                )
            self.sleep(min(delay, remaining))
            delay = min(delay * 1.5, self.max_delay)


class SlotBooker(Protocol):
    """Books a slot of an issuer's request quota shared by every container (rotation.issuance.pacer)."""

    def wait_for_slot(self, service: str, operation: str, account: str, region: str, deadline: WaitBudget) -> float:
        """Sleep until this call's slot; the seconds waited."""


def paced_calls(
    pacer: SlotBooker | None, request: IssueRequest, budget: WaitBudget
) -> Callable[[str, str], None] | None:
    """The hook that makes every attempt of a paced issuer call wait for its slot (None: no pacer).

    The quota is the calling account's in the CA's Region: the account is the secret's (the
    rotation function runs in it), the Region the one the issuer is called in.
    """
    if pacer is None:
        return None
    parts = request.secret_arn.split(":")
    account = parts[4] if len(parts) > 4 else ""
    region = request.spec.ca_region

    def before(service: str, operation: str) -> None:
        pacer.wait_for_slot(service, operation, account, region, budget)

    return before


class Issuer(Protocol):
    def issue(self, request: IssueRequest, budget: WaitBudget) -> CertBundle:
        """Produce the bundle the request's plan calls for."""


def idempotency_token(*parts: str, length: int) -> str:
    """A deterministic token (hex, ``length`` chars) derived from the rotation's ClientRequestToken.

    Hex satisfies both ACM's ``\\w{1,32}`` and Private CA's 36-character limit.
    """
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:length]
