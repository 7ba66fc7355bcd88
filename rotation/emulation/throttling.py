"""Request-rate quotas inside moto's backends: a token bucket per (service, operation).

moto answers every call at once; AWS throttles each operation at a per-account, per-Region rate
(see :mod:`rotation.throttling` for the documented defaults). :func:`throttled_moto` makes moto
answer ``ThrottlingException`` (HTTP 400, the JSON error shape botocore parses) when an
operation's bucket is empty, *before* the backend runs the call, as the service does. It wraps
moto's response dispatch (:mod:`rotation.emulation.moto_dispatch`), so it holds in process
(``mock_aws``) and in a ``ThreadedMotoServer`` of the same process alike.
Enabled only by the benchmarks and tests that ask for it.

A bucket holds at most ``burst`` tokens (default: one second's worth of its rate) and refills
continuously at its rate. Every call is counted, accepted or throttled, in :class:`Quotas`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from rotation.emulation.moto_dispatch import around_moto_requests

#: The documented default quotas (requests per second) the storm benchmark runs under.
DEFAULT_QUOTAS: dict[tuple[str, str], float] = {
    ("acm-pca", "IssueCertificate"): 25.0,
    ("acm-pca", "GetCertificate"): 75.0,
    ("acm", "RequestCertificate"): 5.0,
    ("acm", "ExportCertificate"): 5.0,
    ("acm", "RenewCertificate"): 5.0,
    ("acm", "DescribeCertificate"): 10.0,
    ("acm", "ListTagsForCertificate"): 10.0,
    ("secretsmanager", "BatchGetSecretValue"): 100.0,
}


@dataclass
class TokenBucket:
    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _stamp: float = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._tokens = self.burst
        self._stamp = self.clock()

    def take(self) -> bool:
        """One token if there is one (True), else False (the call is throttled)."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


@dataclass
class Quotas:
    """The buckets in force and what they saw: ``accepted`` and ``throttled`` calls per (service, operation)."""

    buckets: dict[tuple[str, str], TokenBucket]
    accepted: Counter[tuple[str, str]] = field(default_factory=Counter)
    throttled: Counter[tuple[str, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, service: str, operation: str) -> bool:
        bucket = self.buckets.get((service, operation))
        admitted = bucket is None or bucket.take()
        with self._lock:
            (self.accepted if admitted else self.throttled)[(service, operation)] += 1
        return admitted

    def attempts(self, service: str, operation: str) -> int:
        key = (service, operation)
        return self.accepted[key] + self.throttled[key]


def _throttled_response(code: str) -> tuple[int, dict[str, Any], str]:
    body = json.dumps({"__type": code, "message": "Rate exceeded"})
    return 400, {"status": 400, "Content-Type": "application/x-amz-json-1.1"}, body


@contextlib.contextmanager
def throttled_moto(
    quotas: Mapping[tuple[str, str], float] | None = None,
    *,
    burst_seconds: float = 1.0,
    code: str = "ThrottlingException",
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Quotas]:
    """Throttle moto's operations at ``quotas`` (requests per second) for the duration.

    ``code`` is the error code answered (``ThrottlingException`` by default; tests also use the
    other codes services send, such as ``RateExceeded``).
    """
    state = Quotas(
        {
            key: TokenBucket(rate, max(1.0, rate * burst_seconds), clock)
            for key, rate in (DEFAULT_QUOTAS if quotas is None else quotas).items()
        }
    )

    def admitted(response: Any, proceed: Callable[[], Any]) -> Any:
        if not state.admit(str(response.service_name), str(response._get_action())):
            return _throttled_response(code)
        return proceed()

    with around_moto_requests(admitted):
        yield state


@contextlib.contextmanager
def latency_in_moto(milliseconds: float) -> Iterator[None]:
    """Every request moto answers waits ``milliseconds`` first (a sleep, as a network round trip: the CPU is free).

    In a ``ThreadedMotoServer`` each request has its own thread, so concurrent requests wait together.
    """

    def delayed(response: Any, proceed: Callable[[], Any]) -> Any:
        time.sleep(milliseconds / 1000)
        return proceed()

    with around_moto_requests(delayed):
        yield
