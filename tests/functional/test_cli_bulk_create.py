"""Issue 18: bulk ``create-secret --from-file``: every line validated first, then created paced per issuer.

Through the installed console script against moto's server, whose RotateSecret runs certrotate's
rotation function (tests/functional/conftest.py).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from moto.secretsmanager.models import SecretsManagerBackend

from rotation.cli import ExitCode
from tests.support.cli import LAMBDA, certrotate, client, error_lines, pca_fields


@pytest.fixture
def prefix() -> str:
    return f"b{uuid.uuid4().hex[:8]}/"


def write_lines(path: Path, lines: list[Any]) -> str:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return str(path)


def names_with(endpoint: str, prefix: str) -> list[str]:
    listed = client(endpoint, "secretsmanager").list_secrets(Filters=[{"Key": "name", "Values": [prefix]}])
    return sorted(s["Name"] for s in listed["SecretList"])


def test_every_line_is_validated_first_and_nothing_is_created_if_one_is_invalid(
    endpoint: str, ca: str, prefix: str, tmp_path: Path
) -> None:
    planted = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----"
    lines = [
        {"name": f"{prefix}ok", "spec": pca_fields(ca)},
        '{"name": "broken", ',
        {"name": f"{prefix}rsa", "spec": pca_fields(ca, KEY_ALGORITHM="RSA_1024")},
        {"name": f"{prefix}ok", "spec": pca_fields(ca)},
        {"name": f"{prefix}x", "spec": pca_fields(ca), "colour": "blue"},
        "",
        {"name": "has space", "spec": pca_fields(ca)},
        {"name": f"{prefix}key", "spec": {**pca_fields(ca), "PRIVATE_KEY_PEM": planted}},
        {"name": f"{prefix}when", "spec": pca_fields(ca), "schedule": "rate(1 hours)"},
    ]
    path = write_lines(tmp_path / "specs.jsonl", lines)
    result = certrotate("create-secret", "--from-file", path, "--rotation-lambda-arn", LAMBDA, endpoint=endpoint)
    assert result.returncode == ExitCode.INVALID, result.stderr
    errors = error_lines(result)
    expected = [
        "line 2: not valid JSON at column 20",
        "line 3: spec.KEY_ALGORITHM='RSA_1024'",
        f"line 4: name='{prefix}ok': also on line 1",
        "line 5: key='colour': not a key of a bulk line; allowed: name, spec, tags, schedule",
        "line 7: name='has space': not a secret name; allowed: 1 to 512 ASCII letters",
        "line 8: spec.PRIVATE_KEY_PEM='(not shown)': written by rotation",
        "line 9: schedule='rate(1 hours)': not a rotation schedule; allowed: rate(N hours) with N >= 4",
    ]
    assert len(errors) == len(expected), result.stderr
    for error, text in zip(errors, expected, strict=True):
        assert f"{path} {text}" in error
    assert "allowed: TYPE_RSA, TYPE_EC, RSA_2048" in errors[1]  # the allowed values are named
    assert "MIIB" not in result.stderr + result.stdout
    assert names_with(endpoint, prefix) == []  # nothing created


def test_a_line_whose_ca_does_not_exist_stops_the_whole_file(
    endpoint: str, ca: str, prefix: str, tmp_path: Path
) -> None:
    missing = ca[:-4] + "0000"
    lines = [{"name": f"{prefix}a", "spec": pca_fields(ca)}, {"name": f"{prefix}b", "spec": pca_fields(missing)}]
    result = certrotate("create-secret", "--from-file", write_lines(tmp_path / "s.jsonl", lines), endpoint=endpoint)
    assert result.returncode == ExitCode.INVALID
    assert any("line 2:" in e and missing in e for e in error_lines(result)), result.stderr
    assert names_with(endpoint, prefix) == []


def test_creation_is_paced_per_issuer_with_progress_and_each_schedule_gets_its_window(
    endpoint: str, ca: str, prefix: str, tmp_path: Path
) -> None:
    """7 ACM secrets: RotateImmediately issues, so their starts are at most 5 a second.

    moto keeps only AutomaticallyAfterDays of RotationRules, so the rules RotateSecret received are
    recorded (the rotation itself is not run here: its issuance is the other tests' business).
    """
    acm = [{"name": f"{prefix}acm{n}", "spec": {**pca_fields(ca), "CERTIFICATE_TYPE": "ACM_ISSUED"}} for n in range(7)]
    pca = [{"name": f"{prefix}pca{n}", "spec": pca_fields(ca), "tags": {"team": "web"}} for n in range(3)]
    path = write_lines(tmp_path / "specs.jsonl", [*acm, *pca])
    received: dict[str, tuple[float, dict[str, Any]]] = {}
    patched = SecretsManagerBackend.rotate_secret

    def rotate_secret(self: Any, secret_id: str, client_request_token: str | None = None, **kwargs: Any) -> str:
        received[self.secrets[secret_id].name] = (time.monotonic(), dict(kwargs.get("rotation_rules") or {}))
        return str(self.secrets[secret_id].to_short_dict(version_id=client_request_token))

    SecretsManagerBackend.rotate_secret = rotate_secret  # type: ignore[method-assign]
    try:
        result = certrotate(
            "create-secret",
            "--from-file",
            path,
            "--rotation-lambda-arn",
            LAMBDA,
            "--schedule",
            "rate(4 hours)",
            "--tag",
            "owner=platform",
            endpoint=endpoint,
        )
    finally:
        SecretsManagerBackend.rotate_secret = patched  # type: ignore[method-assign]
    assert result.returncode == 0, result.stderr
    assert "created 10/10 secrets" in result.stderr  # the progress line
    assert "10 created" in result.stderr
    assert sorted(received) == names_with(endpoint, prefix) and len(received) == 10
    assert {json.dumps(rules) for _, rules in received.values()} == {
        json.dumps({"ScheduleExpression": "rate(4 hours)", "Duration": "3h"})
    }
    starts = sorted(t for name, (t, _) in received.items() if "/acm" in name)
    assert starts[-1] - starts[0] >= 6 / 5 * 0.95  # 7 ACM starts at <= 5/s span at least 1.2 s
    sm = client(endpoint, "secretsmanager")
    described = sm.describe_secret(SecretId=f"{prefix}pca0")
    assert {t["Key"]: t["Value"] for t in described["Tags"]} == {"owner": "platform", "team": "web"}
    value = json.loads(sm.get_secret_value(SecretId=f"{prefix}pca0")["SecretString"])
    assert value == pca_fields(ca)


def test_a_rerun_reports_existing_secrets_and_leaves_them_as_they_are(
    endpoint: str, ca: str, prefix: str, tmp_path: Path
) -> None:
    """Idempotent: the second run of the same file creates only what is missing, rotates nothing twice."""
    first = [{"name": f"{prefix}web{n}", "spec": pca_fields(ca)} for n in range(2)]
    path = write_lines(tmp_path / "specs.jsonl", first)
    created = certrotate("create-secret", "--from-file", path, "--rotation-lambda-arn", LAMBDA, endpoint=endpoint)
    assert created.returncode == 0, created.stderr
    sm = client(endpoint, "secretsmanager")
    versions = {n: rotated_stages(sm, n) for n in names_with(endpoint, prefix)}
    added = [*first, {"name": f"{prefix}web2", "spec": pca_fields(ca)}]
    path = write_lines(tmp_path / "specs.jsonl", added)
    again = certrotate(
        "create-secret", "--from-file", path, "--rotation-lambda-arn", LAMBDA, "--output", "json", endpoint=endpoint
    )
    assert again.returncode == 0, again.stderr
    statuses = {r["name"]: r["status"] for r in json.loads(again.stdout)}
    assert statuses == {f"{prefix}web0": "exists", f"{prefix}web1": "exists", f"{prefix}web2": "created"}
    for name, stages in versions.items():
        now = {v: sorted(s) for v, s in sm.describe_secret(SecretId=name)["VersionIdsToStages"].items()}
        assert now == stages  # not rotated again
    assert "1 created, 2 exists" in again.stderr


def rotated_stages(sm: Any, name: str) -> dict[str, list[str]]:
    """The secret's versions once its first rotation has finished (moto runs it after RotateSecret returns)."""
    seen: dict[str, list[str]] = {}
    for _ in range(200):
        value = json.loads(sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"])
        stages = {v: sorted(s) for v, s in sm.describe_secret(SecretId=name)["VersionIdsToStages"].items()}
        if "CERTIFICATE_SERIAL" in value and stages == seen:
            return stages
        seen = stages
        time.sleep(0.1)
    raise AssertionError(f"the first rotation of {name} did not finish")


def test_dry_run_validates_and_creates_nothing(endpoint: str, ca: str, prefix: str, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "specs.jsonl", [{"name": f"{prefix}a", "spec": pca_fields(ca)}])
    result = certrotate("create-secret", "--from-file", path, "--dry-run", endpoint=endpoint)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"would create {prefix}a (PCA_ISSUED)"
    assert names_with(endpoint, prefix) == []


def test_from_file_refuses_the_flags_of_a_single_secret_and_single_mode_still_needs_them(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "specs.jsonl", [])
    both = certrotate("create-secret", "--from-file", path, "--type", "PCA_ISSUED", "--common-name", "a.example")
    assert both.returncode == ExitCode.USAGE
    assert "drop --type, --common-name" in error_lines(both)[0]
    neither = certrotate("create-secret", "web", "--type", "PCA_ISSUED")
    assert neither.returncode == ExitCode.USAGE
    assert "required: --ca-arn, --common-name (or --from-file SPECS.jsonl)" in error_lines(neither)[0]


def test_a_secret_whose_rotation_cannot_be_turned_on_is_deleted_and_the_others_are_created(
    endpoint: str, ca: str, prefix: str, tmp_path: Path
) -> None:
    # Stub where moto cannot go: Secrets Manager refusing to invoke the function (moto never invokes one).
    from moto.core.exceptions import JsonRESTError

    lines = [{"name": f"{prefix}{n}", "spec": pca_fields(ca)} for n in ("a", "refused", "c")]
    path = write_lines(tmp_path / "specs.jsonl", lines)
    patched = SecretsManagerBackend.rotate_secret

    def rotate_secret(self: Any, secret_id: str, *args: Any, **kwargs: Any) -> Any:
        if self.secrets[secret_id].name.endswith("refused"):
            raise JsonRESTError("AccessDeniedException", "Secrets Manager cannot invoke the specified Lambda function.")
        return patched(self, secret_id, *args, **kwargs)

    SecretsManagerBackend.rotate_secret = rotate_secret  # type: ignore[method-assign]
    try:
        result = certrotate("create-secret", "--from-file", path, "--rotation-lambda-arn", LAMBDA, endpoint=endpoint)
    finally:
        SecretsManagerBackend.rotate_secret = patched  # type: ignore[method-assign]
    assert result.returncode == ExitCode.FAILED
    [error] = error_lines(result)
    assert f"line 2 {prefix}refused" in error and "AccessDeniedException" in error and "nothing is left behind" in error
    assert names_with(endpoint, prefix) == [f"{prefix}a", f"{prefix}c"]  # the refused one was deleted again
    assert "2 created, 1 failed" in result.stderr
