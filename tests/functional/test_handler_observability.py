"""The Lambda entry point's logs and EMF metrics, and that the suite's log check really sees logs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rotation.errors import SpecError
from tests.support.driver import FakeLambdaContext, event, rotate, stage_pending


def emf_records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def log_records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"level"')]


def test_logs_carry_secret_step_and_token_and_metrics_count_issuance(
    aws: Any,
    root_ca: str,
    make_secret: Any,
    capfd: pytest.CaptureFixture[str],
    no_key_material_in_logs: Any,
) -> None:
    arn = make_secret({"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": root_ca, "COMMON_NAME": "a.example"})
    token = rotate(arn)
    out = capfd.readouterr().out
    logs = log_records(out)
    assert {r["step"] for r in logs} == {"createSecret", "setSecret", "testSecret", "finishSecret"}
    assert all(r["secret_id"] == arn and r["token"] == token for r in logs)
    (issued,) = [m for m in emf_records(out) if "CertificatesIssued" in m]
    assert issued["CertificateType"] == "PCA_ISSUED"
    assert issued["CertificatesIssued"] == [1.0]
    (expiry,) = [m for m in emf_records(out) if "DaysToExpiry" in m]
    assert expiry["CertificateType"] == "PCA_ISSUED" and 364 <= expiry["DaysToExpiry"][0] <= 366
    # the suite-wide key check reads these same records
    assert any("renewal decision" in line for line in no_key_material_in_logs.lines)


def test_a_failed_step_is_counted_by_type(
    aws: Any, root_ca: str, make_secret: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    from rotation.handler import lambda_handler

    arn = make_secret(
        {"CERTIFICATE_TYPE": "ACM_ISSUED", "CA_ARN": root_ca, "COMMON_NAME": "a.example", "KEY_ALGORITHM": "RSA_4096"}
    )
    token = stage_pending(arn)
    with pytest.raises(SpecError):
        lambda_handler(event("createSecret", arn, token), FakeLambdaContext())
    out = capfd.readouterr().out
    (failure,) = [m for m in emf_records(out) if "RotationStepFailures" in m]
    assert failure["RotationStepFailures"] == [1.0] and failure["Step"] == "createSecret"
    assert failure["CertificateType"] == "UNKNOWN"  # the spec never parsed
    (error_log,) = [r for r in log_records(out) if r["level"] == "ERROR"]
    assert "KEY_ALGORITHM='RSA_4096'" in error_log["message"]


def test_wait_budget_fits_the_lambda_timeout() -> None:
    from rotation.handler import SAFETY_MARGIN_SECONDS, wait_budget

    assert wait_budget(FakeLambdaContext(remaining_ms=60_000)).seconds == 60 - SAFETY_MARGIN_SECONDS
    assert wait_budget(FakeLambdaContext(remaining_ms=900_000)).seconds == 240
    assert wait_budget(FakeLambdaContext(remaining_ms=5_000)).seconds == 1.0
