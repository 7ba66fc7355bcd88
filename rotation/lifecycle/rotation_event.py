"""The Secrets Manager rotation event, parsed at the edge into a frozen :class:`RotationEvent`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rotation.errors import EventError


class Step(StrEnum):
    CREATE = "createSecret"
    SET = "setSecret"
    TEST = "testSecret"
    FINISH = "finishSecret"


@dataclass(frozen=True)
class RotationEvent:
    step: Step
    secret_id: str
    token: str


def parse_event(event: Mapping[str, Any]) -> RotationEvent:
    """Parse a rotation event.

    Raises:
        EventError: a key is missing or the step is unknown.
    """
    if not isinstance(event, Mapping):
        raise EventError(f"event must be a JSON object, not {type(event).__name__}")
    missing = [
        k for k in ("Step", "SecretId", "ClientRequestToken") if not isinstance(event.get(k), str) or not event.get(k)
    ]
    if missing:
        raise EventError(f"rotation event lacks {', '.join(missing)}")
    try:
        step = Step(event["Step"])
    except ValueError:
        raise EventError(
            f"Step={event['Step']!r} is not a rotation step; allowed: {', '.join(s.value for s in Step)}"
        ) from None
    return RotationEvent(step=step, secret_id=event["SecretId"], token=event["ClientRequestToken"])
