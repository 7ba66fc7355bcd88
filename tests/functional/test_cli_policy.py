"""``certrotate policy validate``, ``doctor`` and ``validate NAME`` with the issuance policy (console script)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import cli

CA = "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/00000000-0000-4000-8000-000000000000"
KEY = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAbCdEfGhIjKlMnOpQrStUvWxYz012345\n"
    "-----END PRIVATE KEY-----\n"
)


def write(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document))
    return path


def test_the_policy_format_round_trips_through_validate(tmp_path: Path) -> None:
    source = {
        "version": 1,
        "rules": [
            {
                "name": "team-a",
                "secrets": ["team-a/*"],
                "ca_arns": [CA],
                "dns_names": ["*.Bücher.example.", ".a.internal"],
                "ip_ranges": ["fd00::/8", "10.0.0.0/8"],
                "key_algorithms": ["ec_prime256v1"],
                "client_auth": True,
            },
            {"name": "rest", "secrets": ["*"], "ca_arns": [CA], "dns_names": ["."], "acm_issued": True},
        ],
    }
    first = cli.run("policy", "validate", str(write(tmp_path / "p.json", source)), "--output", "json")
    assert first.returncode == 0, first.stderr
    normalized = json.loads(first.stdout)
    assert normalized["rules"][0]["dns_names"] == ["*.xn--bcher-kva.example", ".a.internal"]
    again = cli.run("policy", "validate", str(write(tmp_path / "n.json", normalized)), "--output", "json")
    assert json.loads(again.stdout) == normalized
    table = cli.run("policy", "validate", str(tmp_path / "p.json"))
    assert "2 rule(s)" in table.stdout and "team-a: secrets team-a/*" in table.stdout


def test_an_invalid_policy_names_the_field_and_never_echoes_a_key(tmp_path: Path) -> None:
    bad = {"version": 1, "rules": [{"name": "x", "secrets": ["*"], "ca_arns": [KEY]}]}
    result = cli.run("policy", "validate", str(write(tmp_path / "p.json", bad)))
    assert result.returncode == 3
    line = cli.one_error_line(result)
    assert "rules[0].ca_arns" in line and "<redacted PEM>" in line


def test_the_central_stack_denies_ledger_writes_to_all_but_the_rotation_role_and_operators() -> None:
    template = yaml.safe_load((Path(__file__).parents[2] / "cfn" / "central-account.yaml").read_text())
    resources = template["Resources"]
    statements = resources["IssuanceLedgerTable"]["Properties"]["ResourcePolicy"]["PolicyDocument"]["Statement"]
    statement = next(s for s in statements if s["Sid"] == "OnlyTheRotationRoleAndOperatorsWriteItems")
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*"
    assert {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"} <= set(
        statement["Action"]
    )
    allowed = json.dumps(statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"])
    assert '"Fn::GetAtt": ["RotationFunctionRole", "Arn"]' in allowed and "OperatorRoleArns" in allowed
    role = resources["RotationFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    reads = next(s for s in role if s["Sid"] == "ReadTheIssuancePolicy")
    assert reads["Action"] == "ssm:GetParameter" and "issuance-policy" in json.dumps(reads["Resource"])
    variables = resources["RotationFunction"]["Properties"]["Environment"]["Variables"]
    assert {"CERTROTATE_POLICY_PARAMETER", "CERTROTATE_CA_ARNS", "CERTROTATE_LEDGER_TABLE"} <= set(variables)


@pytest.mark.slow
def test_doctor_and_validate_show_the_stored_policy_and_the_governing_rule(endpoint: str, ca: str) -> None:
    policy = {"version": 1, "rules": [{"name": "team-a", "secrets": ["team-a/*"], "ca_arns": [ca], "dns_names": ["."]}]}
    ssm = cli.client(endpoint, "ssm")
    ssm.put_parameter(Name="/certrotate/issuance-policy", Value=json.dumps(policy), Type="String")
    ssm.put_parameter(Name="/certrotate/issuance-policy", Value=json.dumps(policy), Type="String", Overwrite=True)
    spec = {"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": ca, "COMMON_NAME": "web.a.example"}
    cli.make_secret(endpoint, "team-a/web", spec)
    cli.make_secret(endpoint, "team-c/web", spec)
    env = cli.cli_env(AWS_ENDPOINT_URL=endpoint, CERTROTATE_POLICY_PARAMETER="/certrotate/issuance-policy")
    doctor = cli.run("doctor", env=env)
    line = next(x for x in doctor.stdout.splitlines() if "issuance policy" in x)
    assert "ssm:/certrotate/issuance-policy version 2: 1 rule(s)" in line
    governed = cli.run("validate", "team-a/web", env=env)
    assert "issuance policy (ssm:/certrotate/issuance-policy version 2): rule 'team-a'" in governed.stdout
    orphan = cli.run("validate", "team-c/web", "--output", "json", env=env)
    assert "no rule governs it" in json.loads(orphan.stdout)["policy"]
    status = cli.run("status", "team-a/web", env=env)
    assert "issuance policy rule: team-a (ssm:/certrotate/issuance-policy)" in status.stdout
    (detail,) = json.loads(cli.run("status", "team-c/web", "--output", "json", env=env).stdout)
    assert detail["policy_rule"].startswith("none: no rule")


def test_without_a_stored_policy_doctor_warns_that_the_default_applies(endpoint: str) -> None:
    env = cli.cli_env(AWS_ENDPOINT_URL=endpoint)
    # Its own prefix: the secrets other tests left on this moto server are not this test's subject.
    result = cli.run("doctor", "--prefix", f"no-policy-{uuid.uuid4().hex[:8]}/", env=env)
    lines = [x for x in result.stdout.splitlines() if "issuance policy" in x]
    assert lines, result.stdout + result.stderr
    assert lines[0].startswith("ok") and "warning: no issuance policy is written: the default applies" in lines[0]


@pytest.mark.slow
def test_a_key_pasted_into_a_secret_never_reaches_status_doctor_or_validate(endpoint: str, ca: str) -> None:
    for field in ("COMMON_NAME", "SUBJECT_ALTERNATIVE_NAMES", "CA_ARN"):
        spec = {"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": ca, "COMMON_NAME": "web.a.example", field: KEY}
        cli.make_secret(endpoint, f"team-a/{field.lower()}", spec)
    env = cli.cli_env(AWS_ENDPOINT_URL=endpoint)
    shown = ""
    for args in (
        ("status", "--output", "json"),
        ("status",),
        ("status", "team-a/common_name"),
        ("status", "team-a/subject_alternative_names", "--output", "json"),
        ("doctor", "--output", "json"),
        ("doctor",),
        ("validate", "team-a/ca_arn"),
        ("validate", "team-a/subject_alternative_names", "--output", "json"),
    ):
        result = cli.run(*args, env=env)  # asserts no key marker in stdout or stderr
        shown += result.stdout + result.stderr
    assert KEY.splitlines()[1] not in shown
