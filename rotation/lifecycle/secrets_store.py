"""Secrets Manager adapter: every Secrets Manager call the rotation makes, on an injected client."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from rotation.aws import aws_call
from rotation.errors import AwsCallError
from rotation.lifecycle.guard import SecretMetadata

_SERVICE = "secretsmanager"


class SecretStore:
    """Reads and stages versions of one account's secrets.

    A secret version's value never changes once written (PutSecretValue with an existing version
    id and another value fails), so the value this container staged under a token is what
    testSecret and finishSecret would read back: they get it from memory and save a
    GetSecretValue each. A container that did not stage the version reads it.
    """

    def __init__(self, client: Any, *, remembered: int = 64) -> None:
        self._client = client
        self._staged: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._remembered = remembered
        self._lock = threading.Lock()

    def describe(self, secret_id: str) -> SecretMetadata:
        with aws_call(_SERVICE, "DescribeSecret"):
            return SecretMetadata.from_describe(self._client.describe_secret(SecretId=secret_id))

    def current_value(self, secret_id: str) -> str:
        """The AWSCURRENT SecretString (stage given explicitly: see DESIGN.md on stale reads)."""
        with aws_call(_SERVICE, "GetSecretValue"):
            response = self._client.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")
        return str(response.get("SecretString") or "")

    def pending_value(self, secret_id: str, token: str) -> str | None:
        """The SecretString staged AWSPENDING under ``token``, or None while it has no value."""
        with self._lock:
            staged = self._staged.get((secret_id, token))
        if staged is not None:
            return staged
        try:
            with aws_call(_SERVICE, "GetSecretValue"):
                response = self._client.get_secret_value(SecretId=secret_id, VersionId=token, VersionStage="AWSPENDING")
        except AwsCallError as exc:
            if exc.code == "ResourceNotFoundException":
                return None
            raise
        return str(response.get("SecretString") or "") or None

    def put_pending(self, secret_id: str, token: str, secret_string: str) -> None:
        with aws_call(_SERVICE, "PutSecretValue"):
            self._client.put_secret_value(
                SecretId=secret_id,
                ClientRequestToken=token,
                SecretString=secret_string,
                VersionStages=["AWSPENDING"],
            )
        with self._lock:
            self._staged[(secret_id, token)] = secret_string
            while len(self._staged) > self._remembered:
                self._staged.popitem(last=False)

    def promote(self, secret_id: str, token: str, current_version: str | None) -> None:
        """Move AWSCURRENT to ``token`` (Secrets Manager moves AWSPREVIOUS itself)."""
        arguments: dict[str, Any] = {"SecretId": secret_id, "VersionStage": "AWSCURRENT", "MoveToVersionId": token}
        if current_version:
            arguments["RemoveFromVersionId"] = current_version
        with aws_call(_SERVICE, "UpdateSecretVersionStage"):
            self._client.update_secret_version_stage(**arguments)
