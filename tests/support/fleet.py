"""Emulated fleet helpers: local servers registered as managed nodes, an emulated clock, a rotation event."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rotation.emulation.managed_hosts import EmulatedHost, ManagedHosts
from rotation.fleet.view import INSTANCE_TAG

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "aws_events"


@dataclass
class EmulatedClock:
    """The time State Manager's schedules read (seconds); tests move it, never the wall clock."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, minutes: float) -> float:
        self.now += minutes * 60
        return self.now


def register_install_document(ssm: Any) -> None:
    """RunUpdateTLS in the account's SSM (once: moto's server lives for the whole session)."""
    from rotation.build.ssm_documents import DOCUMENTS_DIR

    with contextlib.suppress(ssm.exceptions.DocumentAlreadyExists):
        ssm.create_document(
            Name="RunUpdateTLS",
            Content=(DOCUMENTS_DIR / "RunUpdateTLS.yaml").read_text(),
            DocumentType="Command",
            DocumentFormat="YAML",
        )


def host_file_for_association(server: Any) -> dict[str, Any]:
    """The host-file keys that let ``SecretArn`` alone install on ``server`` (its files and port):
    what a fleet's association sends, no per-host document parameters."""
    settings: dict[str, Any] = server.association_settings()
    return settings


def register_server(
    hosts: ManagedHosts, instance_id: str, server: Any, secret_name: str, agent_env: dict[str, str]
) -> EmulatedHost:
    """``server`` as managed node ``instance_id`` tagged for ``secret_name``'s association."""
    server.write_installer_config(**host_file_for_association(server))
    return hosts.register(
        instance_id,
        tags={INSTANCE_TAG: secret_name},
        environment={**agent_env, **server.installer_environment()},
        server=server,
    )


def rotation_succeeded(secret_arn: str) -> dict[str, Any]:
    """Secrets Manager's RotationSucceeded event (via CloudTrail) for ``secret_arn``."""
    event: dict[str, Any] = json.loads((EVENTS / "secretsmanager-rotation-succeeded.json").read_text())
    event["detail"]["additionalEventData"]["SecretId"] = secret_arn
    return event
