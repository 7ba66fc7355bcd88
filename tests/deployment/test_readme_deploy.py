"""The README's deploy commands, run as written: bash, the aws CLI, moto's server.

Each ``sh`` block of the README's "Deploying (CloudFormation)" section runs verbatim with the
variables it names set, in two accounts (moto gives an assumed role's credentials that role's
account). The aws CLI itself refuses ``deploy`` of a template over 51,200 bytes without
``--s3-bucket``, so a command that could not run against AWS fails here too. Two things are not
exercised: ``certrotate package`` (test_packaging_and_stack.py builds the zip; here a small zip
stands in), and the StackSet's stack instances, which moto cannot place in an OU's accounts (it
has no Organizations membership for them): the stack set is created as written.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.integration.conftest import aws_cli, require

ROOT = Path(__file__).resolve().parents[2]
CENTRAL = "111122223333"
WORKLOAD = "444455556666"
REGION = "us-east-1"
CA_ARN = f"arn:aws:acm-pca:{REGION}:{CENTRAL}:certificate-authority/11111111-1111-4111-8111-111111111111"

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")


def readme_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Deploying (CloudFormation)", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0] for block in section.split("```sh\n")[1:]]


def credentials(endpoint: str, account: str) -> dict[str, str]:
    sts = boto3.client("sts", region_name=REGION, endpoint_url=endpoint)
    role = f"arn:aws:iam::{account}:role/deployer"
    issued = sts.assume_role(RoleArn=role, RoleSessionName="readme")["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": issued["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": issued["SecretAccessKey"],
        "AWS_SESSION_TOKEN": issued["SessionToken"],
    }


def run(block: str, cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{block}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr[-3000:]}"
    return result.stdout


def client(service: str, endpoint: str, env: dict[str, str]) -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
    )


@pytest.mark.slow
def test_the_readme_deploy_commands_run_as_written(moto_endpoint: str, tmp_path: Path) -> None:
    cli = aws_cli()
    require(None if cli else "the aws CLI is not installed (pip install awscli)")
    assert cli is not None
    # The CLI builds the template's S3 URL from the endpoint; moto reads bucket and key from the
    # path only for a "localhost" URL.
    endpoint = moto_endpoint.replace("127.0.0.1", "localhost")
    (tmp_path / "cfn").symlink_to(ROOT / "cfn")
    (tmp_path / "dist").mkdir()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("rotation/__init__.py", "")
    (tmp_path / "dist" / "certrotate-lambda-arm64.zip").write_bytes(archive.getvalue())
    base = {
        "PATH": f"{Path(cli).parent}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
    }
    package, central, workload, stack_set = readme_blocks()
    assert package.startswith("certrotate package --arch arm64 ")

    central_env = {**base, **credentials(endpoint, CENTRAL), "BUCKET": "certrotate-readme-central", "CA_ARN": CA_ARN}
    client("s3", endpoint, central_env).create_bucket(Bucket=central_env["BUCKET"])
    run(package.split("\n", 1)[1], tmp_path, central_env)
    run(central, tmp_path, central_env)
    cfn = client("cloudformation", endpoint, central_env)
    (stack,) = cfn.describe_stacks(StackName="certrotate")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    # moto returns no Outputs for a stack made through a change set (and its DescribeKey fails on a
    # key policy set by CloudFormation): the key's ARN from its id, as the CertificateKeyArn output.
    key = cfn.describe_stack_resource(StackName="certrotate", LogicalResourceId="CertificateKey")
    key_arn = f"arn:aws:kms:{REGION}:{CENTRAL}:key/{key['StackResourceDetail']['PhysicalResourceId']}"
    assert f":{CENTRAL}:key/" in key_arn

    # moto's Lambda reads code only from its own account's buckets: the workload account gets a copy
    # (the README's other option, a bucket readable from every account, is the same command).
    workload_env = {
        **base,
        **credentials(endpoint, WORKLOAD),
        "BUCKET": "certrotate-readme-workload",
        "CENTRAL_ACCOUNT": CENTRAL,
        "CENTRAL_KEY_ARN": key_arn,
    }
    s3 = client("s3", endpoint, workload_env)
    s3.create_bucket(Bucket=workload_env["BUCKET"])
    run(package.split("\n", 1)[1], tmp_path, workload_env)
    run(workload, tmp_path, workload_env)
    (workload_stack,) = client("cloudformation", endpoint, workload_env).describe_stacks(
        StackName="certrotate-workload"
    )["Stacks"]
    assert workload_stack["StackStatus"] == "CREATE_COMPLETE"
    buses = client("events", endpoint, workload_env).list_event_buses()["EventBuses"]
    assert f"arn:aws:events:{REGION}:{WORKLOAD}:event-bus/certrotate" in [b["Arn"] for b in buses]

    run(
        stack_set,
        tmp_path,
        {**central_env, "CENTRAL_ACCOUNT": CENTRAL, "CENTRAL_KEY_ARN": key_arn, "OU_ID": "ou-abcd-12345678"},
    )
    described = cfn.describe_stack_set(StackSetName="certrotate-workload")["StackSet"]
    assert described["PermissionModel"] == "SERVICE_MANAGED"
    assert described["TemplateBody"] == (ROOT / "cfn/workload-account.yaml").read_text()  # from --template-url
    # (moto keeps no AutoDeployment; the flag is in the README's command, which ran unchanged.)
    assert {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}["CentralKeyArn"] == key_arn


def test_the_cli_itself_refuses_a_template_over_the_limit_without_s3(moto_endpoint: str, tmp_path: Path) -> None:
    """What the README's --s3-bucket prevents: proof that the check above can fail."""
    cli = aws_cli()
    require(None if cli else "the aws CLI is not installed (pip install awscli)")
    assert cli is not None
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": moto_endpoint,
        **credentials(moto_endpoint, "777788889999"),
    }
    result = subprocess.run(
        [
            cli,
            "cloudformation",
            "deploy",
            "--stack-name",
            "too-big",
            "--template-file",
            str(ROOT / "cfn/central-account.yaml"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "greater than 51,200 bytes must be deployed via an S3 Bucket" in result.stderr
    assert json.dumps(result.stdout).count("StackId") == 0
