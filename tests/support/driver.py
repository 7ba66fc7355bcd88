"""Drive the rotation Lambda the way Secrets Manager does, against moto.

moto's RotateSecret without a Lambda completes the rotation itself, so :func:`stage_pending`
creates the AWSPENDING version with no value directly on moto's backend (as Secrets Manager
does before calling createSecret), then the four steps are invoked through the real handler.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.secretsmanager.models import secretsmanager_backends

from rotation.handler import lambda_handler

EVENTS = Path(__file__).resolve().parent.parent / "fixtures" / "events"
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


@dataclass
class FakeLambdaContext:
    function_name: str = "certrotate-rotation"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:certrotate-rotation"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    remaining_ms: int = 300_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def event(step: str, secret_id: str, token: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((EVENTS / f"{step}.json").read_text())
    payload.update(SecretId=secret_id, ClientRequestToken=token)
    return payload


def stage_pending(secret_id: str, token: str | None = None, region: str = "us-east-1") -> str:
    """Attach AWSPENDING to a new, value-less version ``token`` and enable rotation."""
    token = token or str(uuid.uuid4())
    backend = secretsmanager_backends[DEFAULT_ACCOUNT_ID][region]
    secret = backend.secrets[secret_id]
    secret.remove_version_stages_from_old_versions(["AWSPENDING"])
    secret.versions[token] = {"createdate": int(time.time()), "version_id": token, "version_stages": ["AWSPENDING"]}
    secret.rotation_requested = True
    secret.rotation_enabled = True
    secret.rotation_lambda_arn = FakeLambdaContext.invoked_function_arn
    return token


def run_steps(secret_id: str, token: str, steps: Iterable[str] = STEPS) -> None:
    for step in steps:
        lambda_handler(event(step, secret_id, token), FakeLambdaContext())


def rotate(secret_id: str, token: str | None = None) -> str:
    """One full rotation; returns the token (the new AWSCURRENT version id)."""
    token = stage_pending(secret_id, token)
    run_steps(secret_id, token)
    return token


def stages(sm: Any, secret_id: str) -> dict[str, list[str]]:
    described = sm.describe_secret(SecretId=secret_id)
    return {v: list(s) for v, s in described["VersionIdsToStages"].items()}


def secret_fields(sm: Any, secret_id: str, stage: str = "AWSCURRENT") -> dict[str, Any]:
    value: dict[str, Any] = json.loads(sm.get_secret_value(SecretId=secret_id, VersionStage=stage)["SecretString"])
    return value


def replace_current(sm: Any, secret_id: str, secret_string: str) -> str:
    """Store a new AWSCURRENT value as an operator would.

    moto's PutSecretValue leaves AWSCURRENT on a version whose label was moved by
    UpdateSecretVersionStage (it tracks a stale default version), so the label is moved explicitly.
    """
    version = str(uuid.uuid4())
    sm.put_secret_value(
        SecretId=secret_id, ClientRequestToken=version, SecretString=secret_string, VersionStages=["certrotate-edit"]
    )
    current = next(v for v, s in stages(sm, secret_id).items() if "AWSCURRENT" in s)
    sm.update_secret_version_stage(
        SecretId=secret_id, VersionStage="AWSCURRENT", MoveToVersionId=version, RemoveFromVersionId=current
    )
    return version
