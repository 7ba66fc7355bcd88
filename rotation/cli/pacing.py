"""Starting many rotations at the pace their issuers allow, so a bulk ``rotate`` is not a storm.

``rotate --all`` / ``--filter`` starts one RotateSecret per secret; each one issues a certificate
a moment later. Started back to back (~6-10 a second) they exceed ACM's RequestCertificate quota
of 5 per second (ACM User Guide, *Quotas*, API rate quotas), and every extra request is throttled.
Here each secret's start waits for its issuer's own limiter: ACM 5/s, Private CA 25/s
(IssueCertificate's default quota), one limiter per certificate type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from rotation.cli.bulk_reads import RateLimiter
from rotation.cli.output import Output

T = TypeVar("T")
R = TypeVar("R")

#: Issuing calls per second each issuer allows by default (ACM RequestCertificate, PCA IssueCertificate).
ISSUER_RATES = {"ACM_ISSUED": 5.0, "PCA_ISSUED": 25.0}
#: Anything else (unknown type): the stricter pace.
DEFAULT_RATE = min(ISSUER_RATES.values())


def paced(
    items: Sequence[T],
    start: Callable[[T], R],
    kind_of: Callable[[T], str],
    out: Output,
    *,
    limiter: Callable[[float], RateLimiter] = RateLimiter,
    noun: str = "rotations",
    verb: str = "started",
) -> list[R]:
    """``start`` every item, each after a token from its kind's limiter; a progress line meanwhile
    (``started 3/10 rotations``: ``verb``, ``noun``)."""
    limiters: dict[str, RateLimiter] = {}
    started: list[R] = []
    with out.progress() as progress:
        for number, item in enumerate(items, 1):
            kind = kind_of(item)
            rate = ISSUER_RATES.get(kind, DEFAULT_RATE)
            if kind not in limiters:
                limiters[kind] = limiter(rate)
            limiters[kind].acquire()
            started.append(start(item))
            if len(items) > 1:
                progress.update(f"{verb} {number}/{len(items)} {noun} ({kind} paced at {rate:g}/s)")
    return started
