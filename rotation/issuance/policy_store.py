"""Where the issuance policy lives: an SSM parameter the central stack names, cached per container.

The central stack names the parameter (``CERTROTATE_POLICY_PARAMETER``) and the CAs it lists
(``CERTROTATE_CA_ARNS``); the rotation role may only read that one parameter. The operator writes
it (``aws ssm put-parameter --overwrite``): each write is a new parameter version, which is the
policy's revision that logs and ``certrotate doctor`` show. The value is fetched at most once per
:data:`DEFAULT_TTL_SECONDS` per container, never per step, so a policy change takes effect within
that time. A parameter that does not exist means no policy is written: :func:`default_policy`
applies. Any other failure (access denied, throttling, an invalid document) refuses the rotation
(fail closed): AWSCURRENT stays as it is and Secrets Manager retries.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from rotation.aws import aws_call
from rotation.errors import AwsCallError
from rotation.issuance.policy import IssuancePolicy, default_policy, parse_policy

POLICY_PARAMETER_ENV = "CERTROTATE_POLICY_PARAMETER"
STACK_CAS_ENV = "CERTROTATE_CA_ARNS"
DEFAULT_TTL_SECONDS = 300.0


def stack_cas_from_env() -> tuple[str, ...] | None:
    """The CAs the central stack lists, or None when not deployed by it (local use)."""
    raw = os.environ.get(STACK_CAS_ENV)
    if raw is None:
        return None
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def load_policy(ssm: Any, parameter: str, stack_cas: tuple[str, ...] | None) -> IssuancePolicy:
    """The policy stored in ``parameter``, or the default when it does not exist.

    Raises:
        AwsCallError: the parameter cannot be read.
        PolicyError: the stored document is invalid.
    """
    try:
        with aws_call("ssm", "GetParameter"):
            response = ssm.get_parameter(Name=parameter)
    except AwsCallError as exc:
        if exc.code == "ParameterNotFound":
            return default_policy(stack_cas)
        raise
    stored = response["Parameter"]
    return parse_policy(str(stored["Value"]), source=f"ssm:{parameter}", revision=str(stored.get("Version", "")))


class PolicySource:
    """The container's policy: read on first use, again after ``ttl_seconds``."""

    def __init__(
        self,
        make_ssm: Callable[[], Any] | None,
        parameter: str,
        stack_cas: tuple[str, ...] | None,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make_ssm = make_ssm
        self._parameter = parameter
        self._stack_cas = stack_cas
        self._ttl = ttl_seconds
        self._clock = clock
        self._cached: tuple[float, IssuancePolicy] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> IssuancePolicy:
        with self._lock:
            cached = self._cached
        if cached is not None and self._clock() - cached[0] < self._ttl:
            return cached[1]
        if not self._parameter or self._make_ssm is None:
            policy = default_policy(self._stack_cas)
        else:
            policy = load_policy(self._make_ssm(), self._parameter, self._stack_cas)
        with self._lock:
            self._cached = (self._clock(), policy)
        return policy


def fixed_policy(policy: IssuancePolicy) -> Callable[[], IssuancePolicy]:
    """A source that always answers ``policy`` (tests, the CLI with a policy file)."""
    return lambda: policy
