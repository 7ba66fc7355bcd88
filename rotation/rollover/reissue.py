"""``move``'s re-issue: one RotateSecret per affected secret, paced at half the issuer's quota.

The rotation function issues every leaf (it redirects the spec to the new CA, see
:mod:`rotation.issuance.policy.rollovers`); here the operator's command only starts the rotations,
each after a token of its issuer's limiter, so that the re-issue leaves half of the account's
issuing quota to the normal rotations that keep running meanwhile. The documented defaults, per
account and Region:

- AWS Private CA ``IssueCertificate``: 25 requests per second (AWS General Reference, "AWS Private
  Certificate Authority endpoints and quotas"; the Private CA User Guide's *Quotas* page says the
  rates are per account and Region and answered with ``ThrottlingException`` beyond them);
- ACM ``RequestCertificate``: 5 requests per second (ACM User Guide, *Quotas*, API rate quotas).

The pace is the whole number of calls at most half of that (12/s and 2/s), so that no one-second
window holds more than half the quota however the window falls on the slots. A secret whose leaf is
already on the target CA is not in the list (the caller classified it); one with a rotation under way
is skipped (Secrets Manager refuses a second RotateSecret while one is pending), so a second run
re-rotates nothing already moved or moving: the command is resumable and idempotent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from rotation.errors import AwsCallError
from rotation.rollover.gates import Leaf

#: (issuing operation, documented default quota in requests per second) per certificate type.
ISSUER_QUOTAS: dict[str, tuple[str, float]] = {
    "PCA_ISSUED": ("acm-pca IssueCertificate", 25.0),
    "ACM_ISSUED": ("acm RequestCertificate", 5.0),
}
#: An unknown type is paced as the stricter issuer.
STRICTEST = "ACM_ISSUED"


class Limiter(Protocol):
    def acquire(self) -> None:
        """Block until the next call may go."""


def quota(certificate_type: str) -> float:
    return ISSUER_QUOTAS.get(certificate_type, ISSUER_QUOTAS[STRICTEST])[1]


def pace(certificate_type: str) -> float:
    """Starts per second for this issuer: the whole number at most half its quota (at least one)."""
    return float(max(1, math.floor(quota(certificate_type) / 2)))


def estimated_seconds(leaves: Sequence[Leaf]) -> float:
    """How long starting ``leaves`` takes at the pace (the types' shares run one after the other)."""
    return sum(sum(1 for leaf in leaves if leaf.certificate_type == kind) / pace(kind) for kind in _kinds(leaves))


def _kinds(leaves: Sequence[Leaf]) -> list[str]:
    return list(dict.fromkeys(leaf.certificate_type for leaf in leaves))


@dataclass(frozen=True)
class ReissueResult:
    started: tuple[str, ...]
    #: a rotation already under way (not started again)
    in_flight: tuple[str, ...]
    #: name and error of each start that failed (retried by the next run)
    failed: tuple[tuple[str, str], ...]


def reissue(
    leaves: Sequence[Leaf],
    rotate: Callable[[str], None],
    limiter_for: Callable[[float], Limiter],
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> ReissueResult:
    """Start one rotation per leaf, each after its issuer's limiter (one limiter per certificate type).

    ``rotate(secret_arn)`` is RotateSecret; a refusal because a rotation is already under way counts
    as in flight, any other error as failed: nothing raises, the next run starts what is left.
    """
    limiters: dict[str, Limiter] = {}
    started: list[str] = []
    in_flight: list[str] = []
    failed: list[tuple[str, str]] = []
    for number, leaf in enumerate(leaves, 1):
        if leaf.rotating:
            in_flight.append(leaf.name)
            continue
        kind = leaf.certificate_type if leaf.certificate_type in ISSUER_QUOTAS else STRICTEST
        if kind not in limiters:
            limiters[kind] = limiter_for(pace(kind))
        limiters[kind].acquire()
        try:
            rotate(leaf.arn)
        except AwsCallError as exc:
            if exc.code == "InvalidRequestException" and "rotation" in str(exc).lower():
                in_flight.append(leaf.name)
            else:
                failed.append((leaf.name, f"{exc.code}: {exc}"[:300]))
        else:
            started.append(leaf.name)
        progress(number, len(leaves))
    return ReissueResult(tuple(started), tuple(in_flight), tuple(failed))
