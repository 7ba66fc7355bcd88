"""Test-side helpers around :mod:`rotation.emulation.rotation_service`."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from rotation.emulation.rotation_service import STEPS, LocalLambdaContext, rotate, run_steps, stage_pending

FakeLambdaContext = LocalLambdaContext
EVENTS = Path(__file__).resolve().parent.parent / "fixtures" / "events"

__all__ = [
    "STEPS",
    "FakeLambdaContext",
    "event",
    "replace_current",
    "rotate",
    "run_steps",
    "secret_fields",
    "stage_pending",
    "stages",
]


def event(step: str, secret_id: str, token: str) -> dict[str, Any]:
    """A rotation event loaded from the JSON fixtures (the shape Secrets Manager sends)."""
    payload: dict[str, Any] = json.loads((EVENTS / f"{step}.json").read_text())
    payload.update(SecretId=secret_id, ClientRequestToken=token)
    return payload


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
