"""What Secrets Manager's contract lets a step do, decided from DescribeSecret metadata. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from rotation.errors import NotPendingError, RotationDisabledError, UnknownVersionError

#: Tag whose value, when equal to a rotation's ClientRequestToken, forces a fresh certificate.
#: ``certrotate rotate`` sets it just before calling RotateSecret with that token, so the marker
#: is one-shot by construction: later rotations carry other tokens.
ROTATE_NOW_TAG = "certrotate:rotate-now"


@dataclass(frozen=True)
class SecretMetadata:
    arn: str
    name: str
    rotation_enabled: bool
    versions: Mapping[str, tuple[str, ...]]
    tags: Mapping[str, str] = field(default_factory=dict)
    last_rotated: datetime | None = None
    next_rotation: datetime | None = None

    @classmethod
    def from_describe(cls, response: Mapping[str, Any]) -> SecretMetadata:
        return cls(
            arn=response["ARN"],
            name=response.get("Name", ""),
            rotation_enabled=bool(response.get("RotationEnabled")),
            versions={v: tuple(s) for v, s in (response.get("VersionIdsToStages") or {}).items()},
            tags={t["Key"]: t.get("Value", "") for t in response.get("Tags") or []},
            last_rotated=response.get("LastRotatedDate"),
            next_rotation=response.get("NextRotationDate"),
        )

    def version_with(self, stage: str) -> str | None:
        return next((v for v, stages in self.versions.items() if stage in stages), None)

    def rotate_now_requested(self, token: str) -> bool:
        return self.tags.get(ROTATE_NOW_TAG) == token


class Verdict(StrEnum):
    PROCEED = "proceed"
    ALREADY_CURRENT = "already-current"


def check_step(metadata: SecretMetadata, token: str) -> Verdict:
    """Apply the rotation contract every step must check first.

    Raises:
        RotationDisabledError: rotation is not enabled on the secret.
        UnknownVersionError: the token is not a version of the secret.
        NotPendingError: the version is neither AWSCURRENT nor AWSPENDING.
    """
    if not metadata.rotation_enabled:
        raise RotationDisabledError(f"secret {metadata.arn} does not have rotation enabled")
    stages = metadata.versions.get(token)
    if stages is None:
        raise UnknownVersionError(f"ClientRequestToken {token} is not a version of secret {metadata.arn}")
    if "AWSCURRENT" in stages:
        return Verdict.ALREADY_CURRENT
    if "AWSPENDING" not in stages:
        raise NotPendingError(f"version {token} of secret {metadata.arn} is not staged AWSPENDING")
    return Verdict.PROCEED
