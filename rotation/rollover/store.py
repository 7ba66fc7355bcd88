"""The rollover's state: the ``rollovers`` section of the issuance policy in its SSM parameter.

Only operators write the parameter (the rotation role may only read it, and it lives in the central
account, where no secret writer of a workload account reaches); the rotation already trusts it for
its rules. Each write is a new parameter version, so the parameter's history is the rollover's
(``aws ssm get-parameter-history``). A write keeps the document as the operator wrote it and
replaces its ``rollovers`` list alone; before writing, the version read is compared with the
version now stored, so two operators' commands at once do not silently undo each other (SSM's
PutParameter has no condition: the window between the check and the write is one call).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rotation.aws import aws_call
from rotation.cli.session import InvalidInputError
from rotation.errors import AwsCallError, CertRotateError
from rotation.issuance.policy import IssuancePolicy, parse_policy
from rotation.issuance.policy.rollovers import Rollover, with_rollover


class PolicyChanged(CertRotateError):
    """The policy parameter changed between this command's read and its write."""


@dataclass(frozen=True)
class StoredPolicy:
    policy: IssuancePolicy
    document: dict[str, Any]
    version: int


@dataclass(frozen=True)
class PolicyStore:
    """The issuance policy parameter, read and written by the operator's command (injected SSM client)."""

    ssm: Any
    parameter: str

    def read(self) -> StoredPolicy:
        """Raises: InvalidInputError (no policy stored); AwsCallError (unreadable); PolicyError (invalid)."""
        try:
            with aws_call("ssm", "GetParameter"):
                stored = self.ssm.get_parameter(Name=self.parameter)["Parameter"]
        except AwsCallError as exc:
            if exc.code == "ParameterNotFound":
                raise InvalidInputError(
                    f"{self.parameter}: no issuance policy is stored there; a rollover is recorded in the policy: "
                    "store one first (certrotate policy validate FILE, then aws ssm put-parameter)"
                ) from None
            raise
        text = str(stored["Value"])
        policy = parse_policy(text, source=f"ssm:{self.parameter}", revision=str(stored.get("Version", "")))
        return StoredPolicy(policy, json.loads(text), int(stored.get("Version", 0)))

    def save(self, read: StoredPolicy, rollover: Rollover) -> StoredPolicy:
        """Store ``rollover`` (in place of the one of its name) into the document read as ``read``.

        Raises:
            PolicyChanged: the parameter has a newer version than ``read``.
            AwsCallError: the write failed (nothing changed).
        """
        with aws_call("ssm", "GetParameter"):
            now = int(self.ssm.get_parameter(Name=self.parameter)["Parameter"].get("Version", 0))
        if now != read.version:
            raise PolicyChanged(
                f"{self.parameter}: version {now} was stored after this command read version {read.version}; "
                "nothing was written: run the command again"
            )
        rollovers = with_rollover(read.policy.rollovers, rollover)
        document = dict(read.document)
        document["rollovers"] = [r.describe() for r in rollovers]
        text = json.dumps(document, indent=1)
        parse_policy(text)  # what is stored validates (a rollover the document cannot hold is never written)
        with aws_call("ssm", "PutParameter"):
            version = int(
                self.ssm.put_parameter(Name=self.parameter, Value=text, Type="String", Overwrite=True)["Version"]
            )
        return StoredPolicy(parse_policy(text, source=read.policy.source, revision=str(version)), document, version)
