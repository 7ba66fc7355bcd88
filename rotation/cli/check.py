"""One line of ``certrotate doctor``: a check's name, its outcome and what it found."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

#: AWS errors that mean AWS is unreachable or no credentials: doctor stops (exit 4) rather than fail a check.
UNREACHABLE = {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "NoCredentialsError"}


class Outcome(StrEnum):
    OK = "ok"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    name: str
    outcome: Outcome
    detail: str
