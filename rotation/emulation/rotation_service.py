"""Secrets Manager's side of a rotation, for moto: stage AWSPENDING, then call the four steps.

moto's RotateSecret without a Lambda completes the rotation by itself (and cannot invoke ours),
so :func:`stage_pending` attaches AWSPENDING to a new, value-less version on moto's backend, as
Secrets Manager does before it calls createSecret; :func:`run_steps` then calls the real
``rotation.handler.lambda_handler`` with the events Secrets Manager sends.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.secretsmanager.models import secretsmanager_backends

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
LAMBDA_ARN = "arn:aws:lambda:us-east-1:123456789012:function:certrotate-rotation"


@dataclass
class LocalLambdaContext:
    """The parts of a Lambda context the handler and Powertools read."""

    function_name: str = "certrotate-rotation"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = LAMBDA_ARN
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    remaining_ms: int = 300_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def rotation_event(step: str, secret_id: str, token: str) -> dict[str, Any]:
    return {"Step": step, "SecretId": secret_id, "ClientRequestToken": token}


def stage_pending(secret_id: str, token: str | None = None, region: str = "us-east-1") -> str:
    """Attach AWSPENDING to a new, value-less version ``token`` and mark rotation enabled."""
    token = token or str(uuid.uuid4())
    secret = secretsmanager_backends[DEFAULT_ACCOUNT_ID][region].secrets[secret_id]
    secret.remove_version_stages_from_old_versions(["AWSPENDING"])
    secret.versions[token] = {"createdate": int(time.time()), "version_id": token, "version_stages": ["AWSPENDING"]}
    secret.rotation_requested = True
    secret.rotation_enabled = True
    secret.rotation_lambda_arn = LAMBDA_ARN
    return token


def run_steps(secret_id: str, token: str, steps: Iterable[str] = STEPS) -> None:
    """Invoke the rotation Lambda for each step, as Secrets Manager does (stops at the first failure)."""
    from rotation.handler import lambda_handler

    for step in steps:
        lambda_handler(rotation_event(step, secret_id, token), LocalLambdaContext())


def rotate(secret_id: str, token: str | None = None) -> str:
    """One full rotation; returns the token, the new AWSCURRENT version id."""
    token = stage_pending(secret_id, token)
    run_steps(secret_id, token)
    return token
