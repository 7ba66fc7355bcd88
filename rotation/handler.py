"""Lambda entry point for Secrets Manager rotation: ``rotation.handler.lambda_handler``.

Import stays light (Powertools only); the engine, cryptography and boto3 load on the first
invocation and the clients and CA facts are then reused for the life of the container.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rotation import telemetry
from rotation.lifecycle.rotation_event import parse_event
from rotation.telemetry import logger

if TYPE_CHECKING:  # pragma: no cover
    from rotation.issuance.issuers.base import WaitBudget
    from rotation.issuance.spec import CertSpec
    from rotation.lifecycle.steps import Services

#: Seconds kept back from the Lambda's remaining time for the calls after issuance.
SAFETY_MARGIN_SECONDS = 15.0
DEFAULT_WAIT_SECONDS = 240.0

_services: Services | None = None


def services() -> Services:
    """The container's adapters, built on first use."""
    global _services
    if _services is None:
        from rotation.lifecycle.engine import default_services

        _services = default_services()
    return _services


def reset() -> None:
    """Forget the container's clients and caches (tests; a new account or region)."""
    global _services
    _services = None


def wait_budget(context: Any) -> WaitBudget:
    """How long issuance may be waited on: the configured cap, within the Lambda's remaining time."""
    from rotation.issuance.issuers.base import WaitBudget

    cap = float(os.environ.get("CERTROTATE_ISSUANCE_WAIT_SECONDS", DEFAULT_WAIT_SECONDS))
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining_ms):
        cap = min(cap, remaining_ms() / 1000 - SAFETY_MARGIN_SECONDS)
    return WaitBudget(max(cap, 1.0))


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Mapping[str, Any], context: Any) -> None:
    """Run the rotation step named by a Secrets Manager rotation event.

    Raises:
        CertRotateError: the step failed; Secrets Manager retries it, and AWSCURRENT is unchanged.
    """
    rotation_event = parse_event(event)
    logger.append_keys(secret_id=rotation_event.secret_id, step=rotation_event.step.value, token=rotation_event.token)
    from rotation.lifecycle.engine import run_step

    seen: dict[str, str] = {}

    def observe(spec: CertSpec) -> None:
        seen["type"] = spec.certificate_type.value

    try:
        run_step(rotation_event, services(), wait_budget(context), observe=observe)
    except Exception as exc:
        telemetry.step_failed(rotation_event.step.value, seen.get("type", telemetry.UNKNOWN_TYPE))
        from rotation.redaction import redact

        logger.error(
            "%s failed: %s", rotation_event.step.value, redact(str(exc)), extra={"error_type": type(exc).__name__}
        )
        raise
