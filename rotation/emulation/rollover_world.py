"""A CA rollover's world on moto, for the tests and the benchmark: two CAs, the policy, a bundle, secrets.

Also the emulated clock the paced re-issue is measured on: :class:`EmulatedClock` is the clock of
the re-issue's limiter and of moto's quota buckets (:func:`rotation.emulation.throttling.throttled_moto`),
and it moves only when the limiter sleeps, after every rotation started so far has finished (the
emulated rotation function runs each in a thread named ``rotation-…``,
:func:`rotation.emulation.rotation_service.rotation_function_in_moto`). Each IssueCertificate is then
stamped with the emulated second its rotation was started in, so the calls per second are counted,
never timed, and a loaded machine changes nothing but the wall time.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rotation.emulation.moto_dispatch import around_moto_requests
from rotation.emulation.pki import create_ca

ROTATION_THREAD_PREFIX = "rotation-"
#: The central account's policy parameter as the stack names it (``/<stack>/issuance-policy``).
PARAMETER = "/certrotate/issuance-policy"


def settle(timeout: float = 300.0) -> None:
    """Wait until no emulated rotation is running."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread.name.startswith(ROTATION_THREAD_PREFIX) and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))


@dataclass
class EmulatedClock:
    """Seconds that pass only when someone sleeps, and only once the rotations started have finished."""

    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        settle()
        self.now += max(0.0, seconds)


@dataclass
class CallLog:
    """The emulated time of every call to one operation moto answered (accepted or throttled)."""

    stamps: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def max_per_second(self) -> int:
        """The most calls in any one-second window [t, t + 1) of the emulated clock."""
        ordered = sorted(self.stamps)
        most, start = 0, 0
        for end, stamp in enumerate(ordered):
            while ordered[start] <= stamp - 1.0:
                start += 1
            most = max(most, end - start + 1)
        return most


@contextlib.contextmanager
def calls_of(service: str, operation: str, clock: Callable[[], float]) -> Iterator[CallLog]:
    """Stamp each call moto answers for ``service`` ``operation`` with ``clock()``."""
    log = CallLog()

    def record(response: Any, proceed: Callable[[], Any]) -> Any:
        if str(response.service_name) == service and str(response._get_action()) == operation:
            with log._lock:
                log.stamps.append(clock())
        return proceed()

    with around_moto_requests(record):
        yield log


@dataclass(frozen=True)
class World:
    old_ca: str
    new_ca: str
    bundle: str
    bundle_arn: str
    secrets: tuple[str, ...]
    parameter: str = PARAMETER


def spec(ca_arn: str, name: str, **extra: str) -> dict[str, str]:
    return {
        "CERTIFICATE_TYPE": "PCA_ISSUED",
        "CA_ARN": ca_arn,
        "COMMON_NAME": name,
        "KEY_ALGORITHM": "EC_prime256v1",
        "VALIDITY": "30",
        **extra,
    }


def build_world(
    sm: Any,
    pca: Any,
    ssm: Any,
    *,
    secrets: int,
    rotate: Callable[[str], Any],
    old_key: str = "RSA",
    new_key: str = "EC",
    bundle: str = "partners",
    reader_accounts: Sequence[str] = (),
    prefix: str = "team-a/",
) -> World:
    """Two CAs (``old_key`` and ``new_key`` families), a policy whose rule allows the old CA for
    ``prefix*``, the bundle ``certrotate/trust-bundles/<bundle>`` holding the old CA (readable by
    ``reader_accounts``), and ``secrets`` PCA secrets on the old CA, each rotated once by ``rotate``."""
    old_ca = create_ca(pca, key=old_key, name="certrotate Old Root CA")
    new_ca = create_ca(pca, key=new_key, name="certrotate New Root CA")
    policy = {
        "version": 1,
        "rules": [
            {
                "name": "team-a",
                "secrets": [f"{prefix}*"],
                "ca_arns": [old_ca],
                "dns_names": [".example.internal"],
                "max_validity_days": 90,
            }
        ],
    }
    ssm.put_parameter(Name=PARAMETER, Value=json.dumps(policy), Type="String", Overwrite=True)
    old_pem = pca.get_certificate_authority_certificate(CertificateAuthorityArn=old_ca)["Certificate"]
    bundle_arn = sm.create_secret(
        Name=f"certrotate/trust-bundles/{bundle}", SecretString=json.dumps({"TRUST_BUNDLE_PEM": old_pem})
    )["ARN"]
    if reader_accounts:
        statement = {
            "Sid": "WorkloadRolesRead",
            "Effect": "Allow",
            "Principal": {"AWS": [f"arn:aws:iam::{a}:role/certrotate-workload-instance" for a in reader_accounts]},
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "*",
        }
        sm.put_resource_policy(
            SecretId=bundle_arn, ResourcePolicy=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
        )
    arns = []
    for number in range(secrets):
        name = f"{prefix}web-{number:04d}"
        arn = sm.create_secret(Name=name, SecretString=json.dumps(spec(old_ca, f"web-{number:04d}.example.internal")))
        arns.append(str(arn["ARN"]))
        rotate(arns[-1])
    return World(old_ca, new_ca, bundle, str(bundle_arn), tuple(arns))
