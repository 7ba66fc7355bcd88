"""Riding out API throttling: full-jitter backoff bounded by a deadline, around a client's API calls.

AWS throttles each API operation at a per-account, per-Region request rate. The defaults that
matter to a rotation storm (checked in the AWS documentation):

- AWS Private CA answers an over-quota request with ``ThrottlingException`` ("AWS Private CA
  throttles API requests at different rates depending on the API operation", Private CA User
  Guide, *Quotas*, docs.aws.amazon.com/privateca/latest/userguide/PcaLimits.html; the rates, e.g.
  IssueCertificate 25/s and GetCertificate 75/s, are in the General Reference's Private CA table).
- ACM, *API rate quotas* (docs.aws.amazon.com/acm/latest/userguide/acm-limits.html):
  RequestCertificate 5/s, ExportCertificate 5/s, RenewCertificate 5/s, DescribeCertificate 10/s,
  ListTagsForCertificate 10/s; an over-quota request gets ``ThrottlingException``.
- Secrets Manager (userguide/reference_limits.html): BatchGetSecretValue 100/s.

The Lambda's issuer clients (Private CA, ACM) make one attempt a call (botocore's retries off,
``rotation.lifecycle.engine.default_services``), so every retry of an issuing call is this module's, each
attempt after a slot of the issuer's quota where the issuance pacer runs (``before_call``,
:mod:`rotation.issuance.pacer`). A call that fails with a throttling code is retried here with
*full jitter* (a uniformly random sleep below an exponentially growing cap, the variant that
spreads a crowd of clients best), for as long as the step's :class:`Deadline` allows rather than
for a fixed number of attempts: a container started in a storm waits its turn instead of failing.
A retried call is the *same* call, with the same arguments and therefore the same idempotency
token, so a throttled call that is retried can never issue a second certificate.

What botocore's standard mode would otherwise have retried besides throttling, a transient
failure (HTTP 5xx, a request or connection timeout), is retried here too for those clients, at
most :data:`TRANSIENT_RETRIES` times and within the deadline. Callers whose clients keep botocore's
own retries (the command line's bulk reads) pass ``transient_retries=0``: retrying botocore's
already-retried timeouts again would multiply the wait on an endpoint that never answers.

Each throttled answer of an issuer's call is counted in the ``Throttles`` metric (dimensions
Service, Operation). The command line's reads wrap their clients in the same proxy
(:class:`ThrottleRetryingClient`), with a rate limiter's token before each attempt and a bound per call.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from rotation.aws import error_code

T = TypeVar("T")

#: Error codes that mean "too fast, try again later" across the services we call.
THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "RateExceeded",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ThrottledException",
        "RequestThrottledException",
    }
)

#: Transient failures botocore's standard mode retries (its ``_TRANSIENT_ERROR_CODES`` and
#: ``_TRANSIENT_STATUS_CODES``, and connection errors, named by their botocore class).
TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "InternalServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
    }
)
TRANSIENT_STATUS_CODES = frozenset({500, 502, 503, 504})
#: At most this many retries of transient failures per call (throttling is retried until the deadline).
TRANSIENT_RETRIES = 3

#: First backoff cap (seconds); it doubles per throttled attempt up to :data:`MAX_BACKOFF`.
BASE_BACKOFF = 0.5
MAX_BACKOFF = 20.0


class Deadline(Protocol):
    """What bounds the retrying: the time left to the step (the Lambda's remaining time, less a margin)."""

    def remaining(self) -> float:
        """Seconds left."""


def is_throttling(exc: BaseException) -> bool:
    return error_code(exc) in THROTTLING_CODES


def is_transient(exc: BaseException) -> bool:
    """A failure botocore's standard mode retries: a 5xx answer, a timeout, a dropped connection."""
    if error_code(exc) in TRANSIENT_CODES:
        return True
    response = getattr(exc, "response", None)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") if isinstance(response, dict) else None
    return status in TRANSIENT_STATUS_CODES


def backoff_delay(attempt: int, rng: Callable[[float, float], float] = random.uniform) -> float:
    """Full jitter: uniform in [0, min(MAX_BACKOFF, BASE_BACKOFF * 2**attempt)]."""
    return rng(0.0, min(MAX_BACKOFF, BASE_BACKOFF * 2**attempt))


def call_with_backoff(
    call: Callable[[], T],
    deadline: Deadline,
    *,
    on_throttle: Callable[[int], None] = lambda attempt: None,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[float, float], float] = random.uniform,
    transient_retries: int = TRANSIENT_RETRIES,
) -> T:
    """Run ``call``; on a throttling error sleep a full-jitter delay and run it again, until the deadline
    (a transient failure likewise, at most ``transient_retries`` times: 0 where botocore already
    retried it).

    Raises:
        Exception: whatever ``call`` raised that is neither throttling nor transient, a transient
            failure after its retries, or the last error once the next sleep would not fit in the
            time left.
    """
    attempt = 0
    transient = 0
    while True:
        try:
            return call()
        except Exception as exc:
            if is_throttling(exc):
                on_throttle(attempt)
            elif is_transient(exc) and transient < transient_retries:
                transient += 1
            else:
                raise
            delay = backoff_delay(attempt, rng)
            if delay >= deadline.remaining():
                raise
            sleep(delay)
            attempt += 1


class ThrottleRetryingClient:
    """A boto3 client whose API calls go through :func:`call_with_backoff` (everything else passes through).

    Wrapping the client keeps the call sites as they are: ``client.issue_certificate(...)`` is
    retried with its arguments unchanged. The issuers wrap their clients with the step's deadline
    (:func:`retrying_throttles`); the command line's fleet-wide reads with a rate limiter and a
    bound per call (:func:`rotation.cli.bulk_reads.rate_limited`).

    Args:
        client: the boto3 client.
        deadline: the bound of one API call's retrying, made as the call starts (the step's one
            deadline, or a fresh bound per call).
        sleep: how the backoff waits.
        before_call: ``before_call(service, operation)`` runs before every attempt (e.g. wait for a
            slot of the issuer's quota, :mod:`rotation.issuance.pacer`, or a rate limiter's token).
        transient_retries: how often a transient failure is retried (0 where botocore already did).
        on_throttle: ``on_throttle(service, operation)`` for every throttled answer (default: the
            ``Throttles`` metric; None: nothing).
    """

    def __init__(
        self,
        client: Any,
        deadline: Callable[[], Deadline],
        *,
        sleep: Callable[[float], None] = time.sleep,
        before_call: Callable[[str, str], None] | None = None,
        transient_retries: int = TRANSIENT_RETRIES,
        on_throttle: Callable[[str, str], None] | None = None,
    ) -> None:
        self._client = client
        self._deadline = deadline
        self._sleep = sleep
        self._before_call = before_call
        self._transient_retries = transient_retries
        self._on_throttle = on_throttle

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        meta = getattr(self._client, "meta", None)
        mapping = getattr(meta, "method_to_api_mapping", {}) or {}
        if name not in mapping or not callable(attribute):
            return attribute  # meta, exceptions, get_paginator, ...
        service = str(getattr(getattr(meta, "service_model", None), "service_name", ""))
        operation = str(mapping[name])
        before, on_throttle = self._before_call, self._on_throttle

        def attempt(*args: Any, **kwargs: Any) -> Any:
            if before is not None:
                before(service, operation)
            return attribute(*args, **kwargs)

        def retried(*args: Any, **kwargs: Any) -> Any:
            return call_with_backoff(
                lambda: attempt(*args, **kwargs),
                self._deadline(),
                on_throttle=lambda _: on_throttle(service, operation) if on_throttle is not None else None,
                sleep=self._sleep,
                transient_retries=self._transient_retries,
            )

        return retried


def retrying_throttles(client: Any, deadline: Deadline, before_call: Callable[[str, str], None] | None = None) -> Any:
    """``client`` with throttled API calls retried within ``deadline`` (idempotently: same arguments).

    ``before_call(service, operation)`` runs before every attempt of every API call (the issuers
    book a slot of the issuer's quota there).
    """
    if isinstance(client, ThrottleRetryingClient):
        return client
    return ThrottleRetryingClient(
        client,
        lambda: deadline,
        sleep=getattr(deadline, "sleep", time.sleep),
        before_call=before_call,
        on_throttle=_count,
    )


def _count(service: str, operation: str) -> None:
    from rotation import telemetry

    telemetry.throttled(service, operation)
