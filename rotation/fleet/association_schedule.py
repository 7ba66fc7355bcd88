"""State Manager's rule for an association's schedule, checked before CreateAssociation is sent.

Systems Manager User Guide, "Reference: Cron and rate expressions for Systems Manager"
(https://docs.aws.amazon.com/systems-manager/latest/userguide/reference-cron-and-rate-expressions.html):
an association's rate expression runs from 30 minutes to less than 31 days; ``rate(VALUE UNIT)``
with UNIT ``minute(s)``, ``hour(s)`` or ``day(s)``, singular for a VALUE of 1 and plural otherwise
(the same syntax as EventBridge's "Rate expressions reference"). botocore's model gives
``ScheduleExpression`` no pattern, so nothing before the service refuses ``rate(31 days)``,
``rate(744 hours)`` or ``rate(44640 minutes)``: this module does, and the templates'
``ConvergenceSchedule`` pattern admits exactly what it admits (a test compares them).

The CRL refresh association (``CrlRefreshSchedule``, InstallCRL) takes a narrower range: rate
expressions from 30 minutes to 6 hours. Private CA's shortest-lived CRL (``ExpirationInDays`` 1, its
least; API reference, CrlConfiguration) is rewritten at half its validity, every 12 hours, so a host
that refreshes at most every 6 hours has a second try before the CRL it holds passes its nextUpdate.
A revocation reaches a server about 30 minutes after it (the CA's publication) plus at most one interval.
"""

from __future__ import annotations

import re
from enum import IntEnum

from rotation.errors import SpecError

__all__ = [
    "CRL_REFRESH_LONGEST_MINUTES",
    "LONGEST_MINUTES",
    "SHORTEST_MINUTES",
    "RateUnit",
    "check_crl_refresh_schedule",
    "check_schedule",
    "rate_minutes",
]


class RateUnit(IntEnum):
    """A rate expression's unit, valued in minutes."""

    MINUTE = 1
    HOUR = 60
    DAY = 1440


SHORTEST_MINUTES = 30
#: Less than 31 days: the longest admitted rate is one minute shorter.
LONGEST_MINUTES = 31 * RateUnit.DAY - 1
#: The CRL refresh's longest interval: half of half of Private CA's shortest CRL validity (1 day).
CRL_REFRESH_LONGEST_MINUTES = 6 * RateUnit.HOUR

_RATE = re.compile(r"rate\((?P<value>[1-9][0-9]{0,5}) (?P<unit>minute|hour|day)(?P<plural>s?)\)")
_CRON = re.compile(r"cron\([^()]+\)")
FIELD = "ConvergenceSchedule"
ALLOWED = (
    "rate(30 minutes) to rate(44639 minutes), rate(743 hours) or rate(30 days) (less than 31 days; "
    "rate(1 hour), rate(1 day) singular), or cron(...)"
)


def rate_minutes(expression: str) -> int | None:
    """The interval of a well-formed ``rate(...)`` expression in minutes, or None if it is not one
    (including a unit whose number does not agree with its value)."""
    match = _RATE.fullmatch(expression)
    if match is None or (match["value"] == "1") == (match["plural"] == "s"):
        return None
    return int(match["value"]) * RateUnit[match["unit"].upper()]


def check_schedule(expression: str, field: str = FIELD) -> str:
    """``expression`` if State Manager accepts it as an association schedule.

    Raises:
        SpecError: not a rate expression from 30 minutes to less than 31 days, nor a cron expression.
    """
    if _CRON.fullmatch(expression):
        return expression
    minutes = rate_minutes(expression)
    if minutes is None:
        raise SpecError(field, expression[:80], "not a State Manager rate or cron expression", ALLOWED)
    if not SHORTEST_MINUTES <= minutes <= LONGEST_MINUTES:
        raise SpecError(
            field, expression, f"{minutes} minutes is outside State Manager's 30 minutes to under 31 days", ALLOWED
        )
    return expression


def check_crl_refresh_schedule(expression: str, field: str = "CrlRefreshSchedule") -> str:
    """``expression`` if it is a rate the CRL refresh association may run on (30 minutes to 6 hours).

    Raises:
        SpecError: not a rate expression, or outside 30 minutes to 6 hours (a cron is refused too:
            its longest gap would not be readable from it).
    """
    minutes = rate_minutes(expression)
    allowed = "rate(30 minutes) to rate(360 minutes), rate(1 hour) or rate(2 hours) to rate(6 hours)"
    if minutes is None:
        raise SpecError(field, expression[:80], "not a rate expression", allowed)
    if not SHORTEST_MINUTES <= minutes <= CRL_REFRESH_LONGEST_MINUTES:
        raise SpecError(field, expression, f"{minutes} minutes is outside 30 minutes to 6 hours", allowed)
    return expression
