"""What State Manager accepts in an association request, and its rate controls as numbers (pure).

The limits come from the SSM API model (botocore ``data/ssm/2014-11-06/service-2.json``, shapes
``AssociationName`` ``^[a-zA-Z0-9_\\-.]{3,128}$``, ``MaxConcurrency`` 1-7 characters
``^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$``, ``MaxErrors`` 1-7 characters
``^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$``, ``Targets`` at most 5, ``TargetKey`` 1-163
characters, ``TargetValues`` at most 50, ``ScheduleExpression`` 1-256 characters,
``ComplianceSeverity`` and ``AssociationSyncCompliance`` enums). botocore checks none of the
patterns or maxima before it sends, so the service does, as here: a model violation is a
``ValidationException`` worded as AWS words them ("Value ... at ... failed to satisfy
constraint"), the others carry the error codes the model lists for CreateAssociation
(``InvalidSchedule``, ``InvalidTarget``, ``InvalidParameters``, ``InvalidDocument``).

Schedules: State Manager runs an association's ``rate()`` from 30 minutes to less than 31 days
(``rotation.fleet.association_schedule`` cites the User Guide; the same rule is used here), and a
``cron()`` expression of six fields (minutes hours day-of-month month day-of-week year, User Guide
"Reference: Cron and rate expressions for Systems Manager"). ``ApplyOnlyAtCronInterval`` is for
cron schedules only (API reference, CreateAssociation: "This parameter isn't supported for rate
expressions").

Rate controls (API reference, AssociationDescription): MaxConcurrency is how many targets run at
the same time, a number or a percentage of the target set (default 100%); MaxErrors is how many
failures are allowed before no further target is sent the run: with 3 the run stops at the fourth
error, with 0 at the first, with 10% of 50 targets at the sixth; runs already under way finish.
A percentage of concurrency is rounded up (at least one target runs); of errors, rounded down, so
the emulation never allows more failures than the percentage says.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from moto.core.exceptions import ServiceException

from rotation.fleet.association_schedule import LONGEST_MINUTES, SHORTEST_MINUTES, rate_minutes

ASSOCIATION_NAME = re.compile(r"^[a-zA-Z0-9_\-.]{3,128}$")
MAX_CONCURRENCY = re.compile(r"^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$")
MAX_ERRORS = re.compile(r"^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$")
#: The model's ``\p{L}\p{Z}\p{N}_.:/=\-@``: letters, digits and ``_`` (Python's ``\w``), the Unicode
#: space separators (``\p{Z}``: no tab, no newline) and ``.:/=-@``.
TARGET_KEY = re.compile(r"^[\w\u0020\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000.:/=\-@]*$")
INSTANCE_ID = re.compile(r"^(i-(\w{8}|\w{17})|mi-\w{17})$")
MAX_TARGETS = 5
MAX_TARGET_VALUES = 50
MAX_TARGET_KEY = 163
MAX_SCHEDULE = 256
MAX_RATE_CONTROL = 7
COMPLIANCE_SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNSPECIFIED")
SYNC_COMPLIANCE = ("AUTO", "MANUAL")
#: The target keys the emulation resolves (others, such as resource groups, are refused as not emulated).
INSTANCE_IDS_KEY = "InstanceIds"
TAG_PREFIX = "tag:"
_CRON = re.compile(r"^cron\((?P<fields>[^()]+)\)$")
CRON_FIELDS = 6


class AssociationError(ServiceException):
    """An SSM error with the code the API model names for the operation."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


def _model_violation(field: str, value: object, constraint: str) -> AssociationError:
    shown = str(value)[:300]
    return AssociationError(
        "ValidationException",
        f"1 validation error detected: Value '{shown}' at '{field}' failed to satisfy constraint: {constraint}",
    )


def check_association_name(name: object) -> str:
    if not isinstance(name, str) or not ASSOCIATION_NAME.match(name):
        raise _model_violation(
            "associationName", name, f"Member must satisfy regular expression pattern: {ASSOCIATION_NAME.pattern}"
        )
    return name


def check_rate_control(field: str, value: object, pattern: re.Pattern[str]) -> str:
    """``MaxConcurrency`` or ``MaxErrors`` as the model allows it.

    Raises:
        AssociationError: ValidationException naming the field, the value and the pattern.
    """
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_RATE_CONTROL:
        raise _model_violation(field, value, f"Member must have length between 1 and {MAX_RATE_CONTROL}")
    if not pattern.match(value):
        raise _model_violation(field, value, f"Member must satisfy regular expression pattern: {pattern.pattern}")
    return value


def check_schedule(expression: object, *, apply_only_at_cron_interval: bool) -> str | None:
    """The schedule State Manager would keep (None: the association runs only when started).

    Raises:
        AssociationError: ValidationException over 256 characters, InvalidSchedule otherwise.
    """
    if expression is None:
        if apply_only_at_cron_interval:
            raise AssociationError("InvalidSchedule", "ApplyOnlyAtCronInterval needs a cron ScheduleExpression")
        return None
    if not isinstance(expression, str) or not 1 <= len(expression) <= MAX_SCHEDULE:
        raise _model_violation(
            "scheduleExpression", expression, f"Member must have length between 1 and {MAX_SCHEDULE}"
        )
    cron = _CRON.match(expression)
    if cron is not None:
        if len(cron["fields"].split()) != CRON_FIELDS:
            raise AssociationError(
                "InvalidSchedule",
                f"ScheduleExpression {expression!r}: a cron expression has {CRON_FIELDS} fields "
                "(minutes hours day-of-month month day-of-week year)",
            )
        return expression
    minutes = rate_minutes(expression)
    if minutes is None or not SHORTEST_MINUTES <= minutes <= LONGEST_MINUTES:
        raise AssociationError(
            "InvalidSchedule",
            f"ScheduleExpression {expression!r}: allowed are rate() from {SHORTEST_MINUTES} minutes to less than "
            "31 days (rate(30 minutes) ... rate(30 days); 1 takes the singular unit) or cron() with "
            f"{CRON_FIELDS} fields",
        )
    if apply_only_at_cron_interval:
        raise AssociationError(
            "InvalidSchedule", f"ApplyOnlyAtCronInterval is not supported for rate expressions ({expression!r})"
        )
    return expression


def schedule_minutes(expression: str | None) -> int | None:
    """The interval of a rate schedule in minutes; None for no schedule or a cron schedule (which
    the emulation runs only when started: see ``state_manager``)."""
    return None if expression is None else rate_minutes(expression)


@dataclass(frozen=True)
class Target:
    """One entry of ``Targets``: ``InstanceIds`` with instance ids (or ``*``), or ``tag:KEY`` with values."""

    key: str
    values: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"Key": self.key, "Values": list(self.values)}


def check_targets(targets: object, instance_id: object) -> tuple[Target, ...]:
    """``Targets`` as the model and the emulation allow them.

    Raises:
        AssociationError: ValidationException for the model's limits, InvalidTarget for the rest.
    """
    if instance_id is not None:
        raise AssociationError(
            "InvalidTarget", "InstanceId (deprecated) is not emulated: give Targets [{Key: InstanceIds, Values: [...]}]"
        )
    if not targets:
        raise AssociationError("InvalidTarget", "Instance ID or targets must be specified")
    if not isinstance(targets, list) or len(targets) > MAX_TARGETS:
        raise _model_violation("targets", targets, f"Member must have length less than or equal to {MAX_TARGETS}")
    checked = []
    for index, entry in enumerate(targets):
        key = entry.get("Key") if isinstance(entry, dict) else None
        values = entry.get("Values") if isinstance(entry, dict) else None
        where = f"targets.{index + 1}.member"
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_TARGET_KEY or not TARGET_KEY.match(key):
            raise _model_violation(
                f"{where}.key", key, f"Member must be 1-{MAX_TARGET_KEY} characters of {TARGET_KEY.pattern}"
            )
        if not isinstance(values, list) or len(values) > MAX_TARGET_VALUES:
            raise _model_violation(
                f"{where}.values", values, f"Member must have length less than or equal to {MAX_TARGET_VALUES}"
            )
        if key == INSTANCE_IDS_KEY:
            bad = [v for v in values if v != "*" and not (isinstance(v, str) and INSTANCE_ID.match(v))]
            if bad or not values:
                raise AssociationError(
                    "InvalidTarget",
                    f"Targets[{index}] InstanceIds {bad or values!r}: each value is i-... or mi-... or *",
                )
        elif key.startswith(TAG_PREFIX) and len(key) > len(TAG_PREFIX):
            if not values:
                raise AssociationError("InvalidTarget", f"Targets[{index}] {key}: at least one tag value")
        else:
            raise AssociationError(
                "InvalidTarget",
                f"Targets[{index}] Key {key!r}: the emulation resolves {INSTANCE_IDS_KEY} and tag:<key> only",
            )
        checked.append(Target(key, tuple(str(v) for v in values)))
    return tuple(checked)


def check_choice(field: str, value: object, allowed: Sequence[str]) -> str | None:
    if value is not None and value not in allowed:
        raise _model_violation(field, value, f"Member must satisfy enum value set: [{', '.join(allowed)}]")
    return None if value is None else str(value)


def association_parameters(document: Mapping[str, Any], given: object) -> dict[str, str | list[str]]:
    """The association's ``Parameters`` (a map of lists) as the document's parameters take them: a
    String parameter gets its one value, a StringList its list.

    Raises:
        AssociationError: InvalidParameters, naming the parameter.
    """
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise AssociationError("InvalidParameters", "Parameters must be a map of parameter name to a list of values")
    declared: Mapping[str, Any] = document.get("parameters") or {}
    converted: dict[str, str | list[str]] = {}
    for name, values in given.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise AssociationError("InvalidParameters", f"Parameter {name!r}: a list of strings is expected")
        kind = (declared.get(name) or {}).get("type", "String")
        if kind == "StringList":
            converted[name] = list(values)
        elif len(values) != 1:
            raise AssociationError("InvalidParameters", f"Parameter {name!r} is a String: give exactly one value")
        else:
            converted[name] = values[0]
    return converted


def concurrency(max_concurrency: str, targets: int) -> int:
    """How many targets run at the same time (a percentage rounded up, at least one)."""
    if max_concurrency.endswith("%"):
        return max(1, math.ceil(targets * int(max_concurrency[:-1]) / 100))
    return int(max_concurrency)


def allowed_errors(max_errors: str, targets: int) -> int:
    """How many failures a run allows before it sends no further target (a percentage rounded down)."""
    if max_errors.endswith("%"):
        return math.floor(targets * int(max_errors[:-1]) / 100)
    return int(max_errors)
