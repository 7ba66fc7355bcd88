"""The project's promises that are about files, not code paths."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotation.emulation.rotation_service import rotation_event

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert block, "README.md must open with a sh block of two commands"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_commands_and_ci_runs_the_second() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    assert commands[0].endswith("certrotate demo")
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert commands[1] in ci_lines


def test_the_lambda_handler_string_resolves() -> None:
    module, function = ["rotation.handler", "lambda_handler"]
    assert callable(getattr(importlib.import_module(module), function))


def test_event_fixtures_have_the_shape_the_emulated_service_sends() -> None:
    for path in sorted((ROOT / "tests" / "fixtures" / "events").glob("*.json")):
        fixture = json.loads(path.read_text())
        sent = rotation_event(fixture["Step"], fixture["SecretId"], fixture["ClientRequestToken"])
        assert set(sent) <= set(fixture), path.name
        assert fixture["Step"] == path.stem


def readme_cli_examples() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## The command line") :]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, "the command-line section shows its commands in a sh block"
    return [line for line in block.group(1).splitlines() if line.strip()]


@pytest.fixture
def central_account(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """In moto: a CA, the rotation function with Secrets Manager's invoke permission, the two
    documents, a KMS key for the workload role; RotateSecret runs certrotate's handler."""
    import boto3

    import rotation.handler
    from rotation.emulation.pki import create_ca, real_acm_chain
    from rotation.emulation.rotation_service import rotation_function_in_moto
    from tests.support.cli import LAMBDA, client

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    rotation.handler.reset()
    with real_acm_chain(), rotation_function_in_moto() as failures:
        role = client(moto_endpoint, "iam").create_role(RoleName="readme-rotation", AssumeRolePolicyDocument="{}")
        lam = client(moto_endpoint, "lambda")
        lam.create_function(
            FunctionName=LAMBDA.split(":")[-1],
            Runtime="python3.12",
            Role=role["Role"]["Arn"],
            Handler="rotation.handler.lambda_handler",
            Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
        )
        lam.add_permission(
            FunctionName=LAMBDA,
            StatementId="secretsmanager",
            Action="lambda:InvokeFunction",
            Principal="secretsmanager.amazonaws.com",
        )
        for name in ("RunUpdateTLS", "RollbackTLS"):
            client(moto_endpoint, "ssm").create_document(
                Name=name,
                Content=(ROOT / "ssm_documents" / f"{name}.yaml").read_text(),
                DocumentType="Command",
                DocumentFormat="YAML",
            )
        policy = {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::444455556666:role/certrotate-workload-instance"},
                    "Action": "kms:Decrypt",
                    "Resource": "*",
                }
            ]
        }
        key = client(moto_endpoint, "kms").create_key(Policy=json.dumps(policy))["KeyMetadata"]["Arn"]
        ca = create_ca(boto3.client("acm-pca", region_name="us-east-1", endpoint_url=moto_endpoint))
        yield {"CA_ARN": ca, "KMS_KEY_ID": key, "ROTATION_LAMBDA_ARN": LAMBDA, "AWS_ENDPOINT_URL": moto_endpoint}
    rotation.handler.reset()
    assert not failures


def test_every_command_line_example_in_the_readme_runs_as_written(
    central_account: dict[str, str], tmp_path: Path
) -> None:
    from tests.support.cli import SCRIPT, cli_env, pca_fields

    (tmp_path / "spec.json").write_text(json.dumps(pca_fields(central_account["CA_ARN"])))
    env = cli_env(**central_account)
    env["PATH"] = f"{SCRIPT.parent}:{env['PATH']}"
    examples = readme_cli_examples()
    assert len(examples) >= 10
    for line in examples:
        result = subprocess.run(
            ["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr and "PRIVATE KEY" not in result.stdout + result.stderr
