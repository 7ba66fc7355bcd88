"""What Private CA makes of a ``VALIDITY``: the notBefore and notAfter it writes, and the lifetime. Pure.

The AWS Private CA API reference (IssueCertificate, ``Validity`` and ``ValidityNotBefore``; the same
text is in botocore's ``acm-pca`` model) says:

- ``Validity`` of type DAYS, MONTHS or YEARS is "the relative time from the moment of issuance until
  the certificate will expire": notAfter = issue time + the value in that calendar unit;
- by default "the Not Before date" is "the issuance time minus 60 minutes", to compensate for clock
  inconsistencies (also AWS's knowledge-center article "private-ca-validity-period").

So a certificate asked for N days carries N days and one hour between notBefore and notAfter. The
reference does not say how a month is added at a month's end (31 January + 1 month); this module,
and the emulated Private CA (:mod:`rotation.emulation.pca_issuance`), clamp to the month's last day
as ``java.time``'s ``plusMonths`` does. A policy ceiling in days is compared with the time from
issuance to notAfter (:func:`requested_lifetime`); the issued certificate with its notAfter minus
notBefore, less exactly :data:`PCA_BACKDATE` (:func:`lifetime_beyond_backdate`).
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

from rotation.errors import SpecError
from rotation.issuance.spec import Validity, ValidityUnit

#: How far before the issue time Private CA sets notBefore (IssueCertificate, ``ValidityNotBefore``).
PCA_BACKDATE = timedelta(minutes=60)
#: How long after the pre-check the CA may sign: a rotation step runs inside one Lambda invocation,
#: at most 15 minutes. MONTHS and YEARS are checked at both ends of this window (a month boundary
#: may fall inside it).
ISSUE_WINDOW = timedelta(minutes=15)


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus whole calendar months, the day clamped to the target month's last day (past the
    year 9999, which no certificate can name, the last moment of 9999)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    if year > datetime.max.year:
        return datetime.max.replace(tzinfo=moment.tzinfo)
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def not_after(validity: Validity, issued_at: datetime) -> datetime:
    """The notAfter Private CA writes for ``validity`` when it signs at ``issued_at``."""
    if validity.unit is ValidityUnit.DAYS:
        return issued_at + timedelta(days=validity.value)  # VALIDITY has at most 5 digits: no overflow
    months = validity.value * (12 if validity.unit is ValidityUnit.YEARS else 1)
    return add_months(issued_at, months)


def requested_lifetime(validity: Validity, now: datetime) -> timedelta:
    """The longest time from issuance to notAfter that ``validity`` gives a certificate signed
    between ``now`` and ``now + ISSUE_WINDOW``."""
    return max(not_after(validity, at) - at for at in (now, now + ISSUE_WINDOW))


def check_within_ca(validity: Validity, now: datetime, ca_not_after: datetime) -> None:
    """``validity`` ends no later than the issuing CA's certificate, as Private CA requires.

    IssueCertificate: "The end of the validity period configured on a certificate must not exceed
    the limit set on its parents in the CA hierarchy" (otherwise a ValidationException). Checked
    before the call, so the error names the field and the CA's end.

    Raises:
        SpecError: ``VALIDITY`` would end after ``ca_not_after`` for a certificate signed within
            :data:`ISSUE_WINDOW` of ``now``.
    """
    end = max(not_after(validity, at) for at in (now, now + ISSUE_WINDOW))
    if end > ca_not_after:
        days_left = max((ca_not_after - now - ISSUE_WINDOW).days, 0)
        raise SpecError(
            "VALIDITY",
            f"{validity.value} {validity.unit.value}",
            f"would end {end:%Y-%m-%d %H:%M} UTC, after the issuing CA certificate ({ca_not_after:%Y-%m-%d %H:%M})",
            f"at most {days_left} days from now, or a CA certificate that lives longer",
        )


def lifetime_beyond_backdate(not_before: datetime, not_after_: datetime) -> timedelta:
    """An issued certificate's lifetime from its issue time: notAfter - notBefore - :data:`PCA_BACKDATE`."""
    return not_after_ - not_before - PCA_BACKDATE


def describe(lifetime: timedelta) -> str:
    """``365 days`` or ``365 days 0:59:59``: whole days alone when there is no remainder."""
    rest = lifetime - timedelta(days=lifetime.days)
    return f"{lifetime.days} days" + (f" {rest}" if rest else "")
