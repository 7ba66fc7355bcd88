"""Issue 18: the load is spread where it starts — ``rotate --all`` paces itself per issuer quota,
and ``create-secret`` gives an hourly schedule a rotation window."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from moto.secretsmanager.models import SecretsManagerBackend

from rotation.lifecycle.schedules import default_window
from tests.support.cli import LAMBDA, certrotate, make_secret, pca_fields


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}/"


def test_rotate_filter_starts_acm_rotations_at_most_five_a_second(endpoint: str, ca: str, prefix: str) -> None:
    """An operator's `rotate --filter` over a team's ACM secrets must not burst past ACM's 5/s."""
    for n in range(7):
        fields = {**pca_fields(ca), "CERTIFICATE_TYPE": "ACM_ISSUED"}
        arn = make_secret(endpoint, f"{prefix}acm{n}", fields, Tags=[{"Key": "team", "Value": prefix}])
        backend_secret(arn).rotation_requested = backend_secret(arn).rotation_enabled = True
        backend_secret(arn).rotation_lambda_arn = LAMBDA
    started: list[float] = []
    patched = SecretsManagerBackend.rotate_secret

    def rotate_secret(self: Any, secret_id: str, client_request_token: str | None = None, **_: Any) -> str:
        started.append(time.monotonic())  # what the service sees; the rotation itself is not run here
        return str(self.secrets[secret_id].to_short_dict(version_id=client_request_token))

    SecretsManagerBackend.rotate_secret = rotate_secret  # type: ignore[method-assign]
    try:
        result = certrotate("rotate", "--filter", f"tag:team={prefix}", endpoint=endpoint)
    finally:
        SecretsManagerBackend.rotate_secret = patched  # type: ignore[method-assign]
    assert result.returncode == 0, result.stderr
    assert len(started) == 7
    assert started[-1] - started[0] >= 6 / 5 * 0.95  # 7 starts at ≤ 5/s span at least 1.2 s


def backend_secret(arn: str) -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.secretsmanager.models import secretsmanager_backends

    return secretsmanager_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].secrets[arn]


def test_create_secret_gives_an_hourly_schedule_a_window(endpoint: str, ca: str, prefix: str) -> None:
    """moto keeps only AutomaticallyAfterDays of RotationRules, so the rules RotateSecret received are recorded."""
    name = f"{prefix}hourly"
    received: list[dict[str, Any]] = []
    patched = SecretsManagerBackend.rotate_secret

    def rotate_secret(self: Any, secret_id: str, *args: Any, **kwargs: Any) -> str:
        received.append(dict(kwargs.get("rotation_rules") or {}))
        return str(patched(self, secret_id, *args, **kwargs))

    SecretsManagerBackend.rotate_secret = rotate_secret  # type: ignore[method-assign]
    try:
        result = run_create_secret(name, ca, endpoint)
    finally:
        SecretsManagerBackend.rotate_secret = patched  # type: ignore[method-assign]
    assert result.returncode == 0, result.stderr
    assert received == [{"ScheduleExpression": "rate(4 hours)", "Duration": "3h"}]


def run_create_secret(name: str, ca: str, endpoint: str) -> Any:
    return certrotate(
        "create-secret",
        name,
        "--type",
        "PCA_ISSUED",
        "--ca-arn",
        ca,
        "--common-name",
        "app.example.internal",
        "--key-algorithm",
        "EC_prime256v1",
        "--rotation-lambda-arn",
        LAMBDA,
        "--schedule",
        "rate(4 hours)",
        endpoint=endpoint,
    )


@pytest.mark.parametrize(
    ("expression", "window"),
    [
        ("rate(4 hours)", {"Duration": "3h"}),
        ("rate(12 hours)", {"Duration": "11h"}),
        ("rate(48 hours)", {"Duration": "23h"}),  # never into the next UTC day
        ("rate(2 hours)", {}),  # a 1h window is Secrets Manager's default already
        ("rate(1 hour)", {}),
        ("rate(30 days)", {}),  # days: the default window is the rest of the UTC day
        ("cron(0 8 * * ? *)", {}),  # the operator's own
    ],
)
def test_default_window(expression: str, window: dict[str, str]) -> None:
    assert default_window(expression) == window
