"""Rotation schedules and their windows (pure: no AWS calls).

Secrets Manager rotates a secret *at any time during* its rotation window (RotationRules
``Duration``, "3h" for three hours). Without a ``Duration`` the window of a schedule in hours
closes after one hour, and that of a schedule in days at the end of the UTC day; a window must
not extend into the next window or the next UTC day (Secrets Manager API Reference,
RotationRulesType). So a fleet on ``rate(4 hours)`` with no ``Duration`` rotates inside the same
hour every time: :func:`default_window` widens it to all but the last hour of the interval (at
most to the end of the day). Day schedules already spread over the rest of the UTC day and keep
Secrets Manager's default; ``cron()`` schedules are the operator's own and are left alone.
"""

from __future__ import annotations

import re

_HOURS = re.compile(r"^rate\((\d+) hours?\)$")


def default_window(schedule_expression: str) -> dict[str, str]:
    """``{"Duration": "Nh"}`` to add to RotationRules for ``schedule_expression``, or ``{}``."""
    match = _HOURS.match(schedule_expression.strip())
    if not match:
        return {}
    hours = int(match.group(1))
    window = min(hours - 1, 23)
    return {"Duration": f"{window}h"} if window >= 2 else {}
