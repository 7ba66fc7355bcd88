"""Pacing the issuing calls of every Lambda container at the issuer's quota: slots booked in DynamoDB.

Each rotation runs in its own Lambda container, so a storm of N rotations started together makes N
first IssueCertificate (or RequestCertificate) attempts at once, and no client-side backoff brings
that near one call per certificate. The containers therefore share one clock of *slots* per quota:
before an issuing call a rotation books the next free slot with one conditional ``UpdateItem`` on a
pacer item of the issuance ledger's table, sleeps until its slot, then calls. Booked slots are
``1/rate`` apart, so the calls reach the service at ``rate`` whatever the number of containers.

The quotas paced (defaults a little under the documented ones, each set by an environment variable;
``0`` turns pacing of that operation off):

- AWS Private CA ``IssueCertificate``: 25/s per account and Region (Private CA User Guide, *Quotas*:
  "AWS Private CA quotas are specific to an AWS account and Region"; the rate is in the General
  Reference's Private CA table). Default 20/s, ``CERTROTATE_PCA_ISSUE_RATE``.
- ACM ``RequestCertificate``, ``RenewCertificate`` and ``ExportCertificate``: 5/s each per account and
  Region (ACM User Guide, *Quotas*, API rate quotas). Default 4.5/s each, ``CERTROTATE_ACM_ISSUE_RATE``.

The headroom under the quota absorbs calls that go out late or bunched (network jitter, a
container that wakes late, another caller of the account's quota): the service's bucket refills
faster than the slots drain it. In the storm benchmark, 500 Private CA rotations started together
made 1.07 and 1.13 IssueCertificate calls per certificate at 22/s and 1.03 at 20/s.

One pacer item per (service, operation, account, Region): partition key ``SecretArn`` =
``certrotate-pacer#SERVICE#OPERATION#ACCOUNT#REGION``, sort key ``Serial`` = ``pacer``. Ledger entries
are keyed by secret ARNs (``arn:...``), so the two never meet, and the ledger is only ever read by
``Query`` on a secret's ARN, never scanned. The item holds ``NextSlotAt`` (epoch seconds: the first
slot not yet booked) and ``ExpiresAt`` (the table's TTL, a day after the last booking: an idle pacer
disappears and is made again on first use).

Booking a slot, at ``now`` (this container's clock), able to wait until ``latest``:

- busy (``NextSlotAt`` between ``now`` and ``latest``): ``SET NextSlotAt = NextSlotAt + interval``;
  the slot is the old value;
- idle (no item, or ``NextSlotAt < now``): ``SET NextSlotAt = now + interval``; the slot is ``now``;
- booked beyond ``latest``: nothing is booked (a slot the step could not use would push every later
  rotation back) and the step fails with :class:`~rotation.errors.IssuanceTimeoutError` before any
  call to the issuer: Secrets Manager retries it, AWSCURRENT is untouched;
- ``NextSlotAt`` further ahead than any container can book (:data:`HORIZON`, more than a Lambda's
  longest run): written by a clock far ahead, so it is reset to ``now + interval``.

Each attempt is one ``UpdateItem`` whose condition fails when the other case holds;
``ReturnValuesOnConditionCheckFailure=ALL_OLD`` then says which, and the container remembers what
it last saw to try the likelier case first (one call a booking in a steady state, two in a storm's
first booking). ``NextSlotAt`` never decreases except by the horizon reset.

Clock skew between containers (NTP keeps Lambda's clocks within milliseconds) only shifts calls by
the skew: a container behind waits that much longer, one ahead may call that much early (the rate's
headroom under the quota and the service's burst absorb it), and neither moves ``NextSlotAt`` back.
A call throttled anyway (other callers share the account's quota) is retried by
:mod:`rotation.throttling`, each attempt after a new slot.

DynamoDB's limit for one partition, 1,000 write units a second, is far above these rates (a storm
books at most about 2 x 20 writes a second on the Private CA item). Who can write the item: the
table's resource policy denies item writes to everyone but the rotation role and the stack's
operators, and what they could do with it (push every slot back) only makes rotations fail cleanly
and be retried; the horizon reset bounds even that.

If DynamoDB cannot be reached (or the role may not write the item) the call goes ahead unpaced, as
without a ledger, with a warning: pacing is an optimisation, never a condition of issuing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from rotation.errors import IssuanceTimeoutError
from rotation.telemetry import logger

PACER_PREFIX = "certrotate-pacer#"
PACER_SORT_KEY = "pacer"
NEXT_SLOT = "NextSlotAt"
#: The table's TTL attribute (rotation.fleet.ledger.TTL_ATTRIBUTE).
EXPIRES = "ExpiresAt"
IDLE_EXPIRY_SECONDS = 86_400
#: No container books a slot further ahead than it can wait, and no Lambda runs longer than 900 s:
#: a ``NextSlotAt`` beyond this much after ``now`` was written by a clock far ahead, and is reset.
HORIZON = 900.0 + 60.0
#: Seconds a step keeps for the issuing call and what follows it when it books a slot.
HEADROOM = 5.0
_ATTEMPTS = 6

PCA_RATE_ENV = "CERTROTATE_PCA_ISSUE_RATE"
ACM_RATE_ENV = "CERTROTATE_ACM_ISSUE_RATE"
DEFAULT_PCA_RATE = 20.0
DEFAULT_ACM_RATE = 4.5
#: The operations paced, and the variable that sets each one's rate (calls per second).
PACED_OPERATIONS: dict[tuple[str, str], tuple[str, float]] = {
    ("acm-pca", "IssueCertificate"): (PCA_RATE_ENV, DEFAULT_PCA_RATE),
    ("acm", "RequestCertificate"): (ACM_RATE_ENV, DEFAULT_ACM_RATE),
    ("acm", "RenewCertificate"): (ACM_RATE_ENV, DEFAULT_ACM_RATE),
    ("acm", "ExportCertificate"): (ACM_RATE_ENV, DEFAULT_ACM_RATE),
}


class Deadline(Protocol):
    def remaining(self) -> float:
        """Seconds left to the step."""


def rates_from_environment(environ: Mapping[str, str] = os.environ) -> dict[tuple[str, str], float]:
    """Each paced operation's rate from its variable (default a little under the quota).

    Raises:
        ValueError: a variable is not a finite number ≥ 0 (named with its value).
    """
    rates: dict[tuple[str, str], float] = {}
    for key, (variable, default) in PACED_OPERATIONS.items():
        text = environ.get(variable, "").strip()
        try:
            rate = float(text) if text else default
        except ValueError:
            rate = -1.0
        if not 0.0 <= rate < float("inf"):
            raise ValueError(f"{variable}={text!r}: expected a number of calls per second ≥ 0 (0: not paced)")
        rates[key] = rate
    return rates


def pacer_key(service: str, operation: str, account: str, region: str) -> str:
    """The pacer item's partition key (never a secret ARN: those start with ``arn:``)."""
    return f"{PACER_PREFIX}{service}#{operation}#{account}#{region}"


@dataclass
class IssuancePacer:
    """Books issuing slots on pacer items of the ledger table (an injected DynamoDB client)."""

    client: Any
    table: str
    rates: Mapping[tuple[str, str], float]
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    #: What this container last saw of each item: True busy, False idle (which case to try first).
    _busy: dict[str, bool] = field(default_factory=dict)

    def rate(self, service: str, operation: str) -> float:
        return float(self.rates.get((service, operation), 0.0))

    def wait_for_slot(self, service: str, operation: str, account: str, region: str, deadline: Deadline) -> float:
        """Book the next slot of ``operation``'s quota and sleep until it; the seconds waited.

        Not paced (rate 0, or an operation not listed): returns 0 at once.

        Raises:
            IssuanceTimeoutError: the next free slot lies beyond the step's time; nothing was booked.
        """
        rate = self.rate(service, operation)
        if rate <= 0:
            return 0.0
        key = pacer_key(service, operation, account, region)
        now = self.clock()
        latest = max(now, now + deadline.remaining() - HEADROOM)  # no time to wait: only a slot now will do
        try:
            slot = self.book(key, 1.0 / rate, now, latest)
        except IssuanceTimeoutError:
            raise
        except Exception as exc:  # pacing is an optimisation: without DynamoDB, call unpaced
            logger.warning(
                "issuance pacing unavailable (%s); calling %s without a slot",
                type(exc).__name__,
                operation,
                extra={"pacer": key},
            )
            return 0.0
        wait = slot - self.clock()
        if wait > 0:
            self.sleep(wait)
            return wait
        return 0.0

    def book(self, key: str, interval: float, now: float, latest: float) -> float:
        """Book one slot on item ``key``: the slot's time (epoch seconds; ``now`` when the item was idle).

        Raises:
            IssuanceTimeoutError: every free slot is after ``latest``; nothing was booked.
            botocore.exceptions.ClientError: DynamoDB failed otherwise.
        """
        busy = self._busy.get(key, False)
        for _ in range(_ATTEMPTS):
            booked, value = (self._book_busy if busy else self._book_idle)(key, interval, now, latest)
            if booked and value is not None:
                self._busy[key] = busy
                return value
            # The condition failed: ``value`` is NextSlotAt as it was (None: no item yet).
            if value is None or value < now:
                busy = False
            elif value > now + HORIZON:
                return self._reset(key, interval, now, value)
            elif value > latest:
                self._busy[key] = True
                raise IssuanceTimeoutError(
                    f"{key.removeprefix(PACER_PREFIX).replace('#', ' ')}: the next free slot is "
                    f"{value - now:.0f} s away at {1 / interval:g}/s, beyond this step's time; nothing was "
                    "issued, and Secrets Manager retries the step (AWSCURRENT is unchanged)"
                )
            else:
                busy = True
        raise IssuanceTimeoutError(f"{key}: no slot booked in {_ATTEMPTS} attempts (contention); the step is retried")

    def _book_busy(self, key: str, interval: float, now: float, latest: float) -> tuple[bool, float | None]:
        return self._update(
            key,
            "SET #next = #next + :interval, #expires = :expires",
            "#next BETWEEN :now AND :latest",
            {":interval": interval, ":now": now, ":latest": latest, ":expires": self._expiry(now)},
            lambda new: new - interval,
        )

    def _book_idle(self, key: str, interval: float, now: float, latest: float) -> tuple[bool, float | None]:
        return self._update(
            key,
            "SET #next = :slot_end, #expires = :expires",
            "attribute_not_exists(#next) OR #next < :now",
            {":slot_end": now + interval, ":now": now, ":expires": self._expiry(now)},
            lambda new: now,
        )

    def _reset(self, key: str, interval: float, now: float, seen: float) -> float:
        logger.warning(
            "issuance pacer %s was booked %.0f s ahead, beyond any container's reach (a clock far ahead); reset",
            key,
            seen - now,
        )
        booked, value = self._update(
            key,
            "SET #next = :slot_end, #expires = :expires",
            "#next > :horizon",
            {":slot_end": now + interval, ":horizon": now + HORIZON, ":expires": self._expiry(now)},
            lambda new: now,
        )
        if booked and value is not None:
            return value
        raise IssuanceTimeoutError(f"{key}: the pacer changed while it was being reset; the step is retried")

    @staticmethod
    def _expiry(now: float) -> int:
        return int(now) + IDLE_EXPIRY_SECONDS

    def _update(
        self,
        key: str,
        expression: str,
        condition: str,
        values: Mapping[str, float],
        slot_of: Callable[[float], float],
    ) -> tuple[bool, float | None]:
        """One conditional UpdateItem: ``(True, slot)``, or ``(False, NextSlotAt as it was)`` when the
        condition failed."""
        from botocore.exceptions import ClientError

        try:
            response = self.client.update_item(
                TableName=self.table,
                Key={"SecretArn": {"S": key}, "Serial": {"S": PACER_SORT_KEY}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#next": NEXT_SLOT, "#expires": EXPIRES},
                ExpressionAttributeValues={k: {"N": _number(v)} for k, v in values.items()},
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False, _next_slot(exc.response.get("Item"))
        new = _next_slot(response.get("Attributes"))
        if new is None:
            raise IssuanceTimeoutError(f"{key}: DynamoDB answered without {NEXT_SLOT}")
        return True, slot_of(new)


def _number(value: float) -> str:
    return repr(round(float(value), 6))


def _next_slot(item: Any) -> float | None:
    if not isinstance(item, Mapping):
        return None
    value = item.get(NEXT_SLOT)
    if not isinstance(value, Mapping) or "N" not in value:
        return None
    try:
        return float(value["N"])
    except (TypeError, ValueError):
        return None
