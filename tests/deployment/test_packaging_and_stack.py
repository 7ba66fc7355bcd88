"""The Lambda zip, and the central template deployed into moto's CloudFormation."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from rotation.build.lambda_zip import BuiltZip, PackagingError, build, find_compiler
from rotation.build.templates import OUTPUT
from rotation.emulation.pki import create_ca
from rotation.emulation.rotation_service import rotation_function_in_moto
from tests.functional.helpers import assert_valid_bundle
from tests.integration.conftest import require

ROOT = Path(__file__).resolve().parents[2]
HOST_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def built(architecture: str, python: str, directory: Path) -> BuiltZip:
    try:
        return build(architecture, python, directory)
    except PackagingError as exc:  # PyPI unreachable
        require(str(exc))
        raise


@pytest.fixture(scope="module")
def arm64_zip(tmp_path_factory: pytest.TempPathFactory) -> BuiltZip:
    return built("arm64", "3.12", tmp_path_factory.mktemp("arm64"))


def test_the_arm64_zip_carries_aarch64_binaries_and_is_reproducible(arm64_zip: BuiltZip, tmp_path: Path) -> None:
    with zipfile.ZipFile(arm64_zip.path) as archive:
        names = archive.namelist()
        assert "rotation/handler.py" in names and "rotation/event_handlers/rotation_succeeded.py" in names
        assert not any(n.startswith(("rotation/cli/", "rotation/emulation/", "boto3/")) for n in names)
        (rust,) = [n for n in names if n.startswith("cryptography/hazmat/bindings/_rust") and n.endswith(".so")]
        elf = archive.read(rust)[:20]
    assert elf[:4] == b"\x7fELF" and int.from_bytes(elf[18:20], "little") == 0xB7  # EM_AARCH64
    again = built("arm64", "3.12", tmp_path)
    assert again.sha256 == arm64_zip.sha256 and again.size == arm64_zip.size
    assert arm64_zip.size < 20_000_000


def test_the_zip_ships_unchecked_bytecode_of_the_lambda_runtime_named_as_lambda_runs_it(arm64_zip: BuiltZip) -> None:
    if find_compiler("3.12") is None:
        pytest.skip("no Python 3.12 here: the zip is built without bytecode (the CLI says so)")
    assert arm64_zip.bytecode is not None and arm64_zip.bytecode.startswith("3.12.")
    with zipfile.ZipFile(arm64_zip.path) as archive:
        names = set(archive.namelist())
        header = archive.read("rotation/__pycache__/handler.cpython-312.pyc")[:16]
    sources = {n for n in names if n.endswith(".py")}
    compiled = {n.replace("__pycache__/", "").replace(".cpython-312.pyc", ".py") for n in names if n.endswith(".pyc")}
    assert sources == compiled  # every source (certrotate, cryptography, Powertools, ...) and only 3.12's
    assert int.from_bytes(header[4:8], "little") == 0b01  # PEP 552: hash-based, source never checked


def test_bytecode_from_another_python_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PackagingError) as error:
        build("arm64", "3.99", tmp_path, compile_with=sys.executable)
    assert f"compile_with {sys.executable!r}: it is Python {sys.version.split()[0]}" in str(error.value)
    assert "must be compiled by Python 3.99" in str(error.value) and not list(tmp_path.iterdir())
    assert find_compiler("3.99") is None


def test_a_zip_for_this_machine_imports_every_handler_with_nothing_else(tmp_path: Path) -> None:
    import platform

    architecture = {"x86_64": "x86_64", "aarch64": "arm64"}[platform.machine()]
    package = built(architecture, HOST_PYTHON, tmp_path / "dist")
    unpacked = tmp_path / "task"
    with zipfile.ZipFile(package.path) as archive:
        archive.extractall(unpacked)
    assert package.bytecode == sys.version.split()[0]
    (unpacked / "rotation" / "handler.py").write_text("raise SystemExit('the source was compiled')\n")
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import rotation.handler, rotation.lifecycle.engine, "
        "rotation.event_handlers.acm_certificate_available, rotation.event_handlers.rotation_succeeded; "
        "from cryptography import x509; print(rotation.handler.lambda_handler.__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-B", "-c", probe, str(unpacked)], capture_output=True, text=True, check=False
    )  # -S: no site-packages, only the zip's contents and the stdlib
    assert result.returncode == 0, result.stderr
    # the shipped bytecode ran: the source is never read (it now raises)
    assert result.stdout.strip() == "lambda_handler"


def test_the_central_stack_deploys_into_moto_and_rotates(aws: Any, arm64_zip: BuiltZip) -> None:
    """moto's CloudFormation creates the key, roles, functions, documents, topic and rules; it has no
    AWS::SecretsManager::Secret/RotationSchedule or AWS::SNS::TopicPolicy support, so the secret is
    created beside the stack and rotated through the function the stack made."""
    ca = create_ca(aws.pca)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="certrotate-code")
    s3.put_object(Bucket="certrotate-code", Key="lambda.zip", Body=arm64_zip.path.read_bytes())
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    parameters = {
        "CodeS3Bucket": "certrotate-code",
        "CodeS3Key": "lambda.zip",
        "CertificateAuthorityArns": ca,
        "CreateDemoInstance": "true",
        "DemoSecretName": "certs/stacked",
    }
    with pytest.warns(UserWarning):  # moto warns about the resource types it skips
        cfn.create_stack(
            StackName="certrotate",
            TemplateBody=(OUTPUT / "central-account.yaml").read_text(),
            Capabilities=["CAPABILITY_IAM"],
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        )
    stack = cfn.describe_stacks(StackName="certrotate")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}

    function = boto3.client("lambda", region_name="us-east-1").get_function(
        FunctionName=outputs["RotationFunctionArn"]
    )["Configuration"]
    assert function["Handler"] == "rotation.handler.lambda_handler"  # (moto ignores Architectures)
    document = cfn.describe_stack_resource(StackName="certrotate", LogicalResourceId="InstallDocument")
    assert document["StackResourceDetail"]["PhysicalResourceId"] == "RunUpdateTLS"  # content: see test_templates

    secret = aws.sm.create_secret(
        Name="certs/stacked",
        KmsKeyId=outputs["CertificateKeyArn"],
        SecretString=json.dumps(
            {"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": ca, "COMMON_NAME": "stacked.example.internal"}
        ),
    )["ARN"]
    with rotation_function_in_moto() as failures:
        aws.sm.rotate_secret(
            SecretId=secret,
            RotationLambdaARN=outputs["RotationFunctionArn"],
            RotationRules={"ScheduleExpression": "rate(30 days)"},
        )
    assert failures == []
    assert aws.sm.describe_secret(SecretId=secret)["RotationLambdaARN"] == outputs["RotationFunctionArn"]
    assert_valid_bundle(aws, secret)
