"""Issue 25 item 1, played as attackers: the issuance ledger replaced, or stripped of its protections.

moto enforces deletion protection but no resource policy (a Deny stops nobody in moto), so the
attacker here is whoever got past both (an administrator's mistake, a principal with more than
ordinary table rights): what is proved is what the rotation does with the table they leave behind.
``strict_table_deletion`` (the ``aws`` fixture) makes moto drop a deleted table's policy, as AWS does.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto.acmpca.models import acmpca_backends
from moto.core import DEFAULT_ACCOUNT_ID

import rotation.handler
from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.errors import SpecError
from rotation.fleet.ledger import Ledger, create_table
from rotation.fleet.ledger_protection import LedgerUnprotected
from rotation.lifecycle.engine import build_services
from tests.conftest import LEDGER_TABLE, REGION
from tests.functional.helpers import calls_of
from tests.functional.test_handler_observability import emf_records
from tests.functional.test_trust_boundaries import acm_spec, assert_nothing_staged, current_version, pca_spec
from tests.support.driver import replace_current, rotate, run_steps, secret_fields, stage_pending


def replace_ledger(dynamodb: Any, forged: dict[str, Any]) -> None:
    """Turn deletion protection off, delete the ledger, create it again under the same name (same ARN,
    no policy, no protection) and write a forged entry into it."""
    dynamodb.update_table(TableName=LEDGER_TABLE, DeletionProtectionEnabled=False)
    dynamodb.delete_table(TableName=LEDGER_TABLE)
    dynamodb.create_table(
        TableName=LEDGER_TABLE,
        KeySchema=[{"AttributeName": "SecretArn", "KeyType": "HASH"}, {"AttributeName": "Serial", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "SecretArn", "AttributeType": "S"},
            {"AttributeName": "Serial", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName=LEDGER_TABLE, Item={k: {"S": v} for k, v in forged.items()})


def refused_with(aws: Any, arn: str, expected: type[Exception]) -> Exception:
    before = current_version(aws.sm, arn)
    aws.calls.clear()
    token = stage_pending(arn)
    with pytest.raises(expected) as caught:
        run_steps(arn, token)
    assert_nothing_staged(aws.sm, arn, token, before)
    return caught.value


def test_a_replaced_ledger_proves_no_ownership_and_team_bs_key_stays_in_acm(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """The attack of issue 25 item 1 under the default policy: the ledger is deleted and created again
    with "team-a/web requested team-b's certificate"; team-a's writer points CERTIFICATE_ARN at it.
    Before, team-b's private key was exported into team-a's secret. Now the rotation refuses, fails
    the step (RotationStepFailures) and emits LedgerUnprotected; nothing is exported or renewed."""
    team_a = make_secret(acm_spec(root_ca), name="team-a/web")
    team_b = make_secret(acm_spec(root_ca), name="team-b/api")
    rotate(team_a)
    rotate(team_b)
    victim = secret_fields(aws.sm, team_b)
    replace_ledger(
        aws.dynamodb,
        {
            "SecretArn": team_a,
            "Serial": victim["CERTIFICATE_SERIAL"],
            "CertificateArn": victim["CERTIFICATE_ARN"],
            "CertificateType": "ACM_ISSUED",
        },
    )
    replace_current(
        aws.sm, team_a, json.dumps({**secret_fields(aws.sm, team_a), "CERTIFICATE_ARN": victim["CERTIFICATE_ARN"]})
    )
    capfd.readouterr()
    caught = refused_with(aws, team_a, LedgerUnprotected)
    assert "deletion protection is off" in str(caught) and "no resource policy" in str(caught)
    assert calls_of(aws, "ExportCertificate") == calls_of(aws, "RenewCertificate") == 0
    assert victim["PRIVATE_KEY_PEM"] not in json.dumps(secret_fields(aws.sm, team_a))
    out = capfd.readouterr().out
    assert [m["LedgerUnprotected"] for m in emf_records(out) if "LedgerUnprotected" in m] == [[1.0]]
    (failure,) = [m for m in emf_records(out) if "RotationStepFailures" in m]
    assert failure["Step"] == "createSecret"


@pytest.mark.parametrize(
    ("strip", "cold"),
    [
        pytest.param(
            lambda db, arn: db.update_table(TableName=LEDGER_TABLE, DeletionProtectionEnabled=False),
            False,
            id="protection-off",
        ),
        pytest.param(lambda db, arn: db.delete_resource_policy(ResourceArn=arn), True, id="policy-deleted"),
        pytest.param(
            lambda db, arn: db.put_resource_policy(
                ResourceArn=arn,
                Policy=json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Deny",
                                "Principal": "*",
                                "Action": "dynamodb:PutItem",
                                "Resource": "*",
                                "Condition": {"ArnNotLike": {"aws:PrincipalArn": "*"}},
                            }
                        ],
                    }
                ),
            ),
            True,
            id="policy-weakened",
        ),
    ],
)
def test_a_ledger_that_lost_one_protection_proves_nothing_even_for_the_rightful_owner(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any, strip: Any, cold: bool
) -> None:
    """Fail closed: the secret's own certificate is not renewed from a table that lost a protection,
    however the protection was lost (the check is cached per container, never past a change)."""
    arn = make_secret(acm_spec(root_ca, ENVIRONMENT="TEST"), name="team-a/web")
    rotate(arn)
    rotate(arn)  # the check passed and is cached
    table_arn = aws.dynamodb.describe_table(TableName=LEDGER_TABLE)["Table"]["TableArn"]
    strip(aws.dynamodb, table_arn)
    if cold:
        # the policy changed but the table did not: a warm container's check re-reads the policy only
        # after RECHECK_SECONDS, so this runs as a cold container would (deletion protection, read by
        # DescribeTable on every check, is proved warm)
        rotation.handler.services().ledger._protection = None  # type: ignore[union-attr]
    refused_with(aws, arn, LedgerUnprotected)
    assert calls_of(aws, "ExportCertificate") == calls_of(aws, "RenewCertificate") == 0


def test_superseded_revocation_revokes_nothing_from_a_replaced_ledger(
    aws: Any, root_ca: str, make_secret: Any, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forged entry under secret A's ARN naming B's serial would get B's served certificate revoked
    by A's rotation: with the table unprotected, nothing is revoked and RevocationFailures is emitted."""
    services = build_services(
        aws.sm,
        lambda region: aws.pca,
        lambda region: aws.acm,
        ledger=Ledger(aws.dynamodb, LEDGER_TABLE),
        make_ssm=lambda region: boto3.client("ssm", region or REGION),
    )
    monkeypatch.setattr(rotation.handler, "_services", services)
    victim = make_secret(pca_spec(root_ca), name="team-b/api")
    attacker = make_secret(pca_spec(root_ca, REVOKE_SUPERSEDED_AFTER="0"), name="team-a/web")
    with ssm_inventory_in_moto():
        rotate(victim)
        rotate(attacker)
        replace_ledger(
            aws.dynamodb,
            {
                "SecretArn": attacker,
                "Serial": secret_fields(aws.sm, victim)["CERTIFICATE_SERIAL"],
                "CertificateType": "PCA_ISSUED",
                "CaArn": root_ca,
                "VersionId": "forged",
                "IssuedAt": "2020-01-01T00:00:00Z",
                "NotAfter": "2099-01-01T00:00:00Z",
                "CurrentFrom": "2020-01-01T00:00:00Z",
                "SupersededAt": "2020-01-02T00:00:00Z",
            },
        )
        capfd.readouterr()
        aws.calls.clear()
        rotate(attacker)  # the rotation itself succeeds; its revocation refuses
    assert calls_of(aws, "RevokeCertificate") == 0
    out = capfd.readouterr().out
    assert [m["RevocationFailures"] for m in emf_records(out) if "RevocationFailures" in m] == [[1.0]]
    assert any("LedgerUnprotected" in m for m in emf_records(out))


def test_the_check_reads_the_policy_once_per_container_until_the_table_changes(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any
) -> None:
    arn = make_secret(acm_spec(root_ca, ENVIRONMENT="TEST"), name="team-a/web")
    counted: dict[str, int] = {}

    def count(model: Any, **_: Any) -> None:
        counted[model.name] = counted.get(model.name, 0) + 1

    aws.dynamodb.meta.events.register("before-call", count)
    for _ in range(3):
        rotate(arn)
    assert counted["DescribeTable"] == 2  # the ownership proofs of rotations 2 and 3 (1 requests anew)
    assert counted["GetResourcePolicy"] == 1


def test_an_acm_certificate_outside_the_rule_is_not_exported_even_with_an_ownership_proof(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any
) -> None:
    """Defence in depth: the (still protected) ledger holds an entry "team-a/web requested team-b's
    certificate" (an operator's mistake: operators may write items), and team-a's writer points
    CERTIFICATE_ARN at it. team-b's names are outside team-a's rule: refused before ExportCertificate,
    so the key stays in ACM. Before, it was exported and refused only after (check_issued)."""
    from tests.support.policy import document, rule, use_policy

    use_policy(
        document(
            rule("team-a", ["team-a/*"], [root_ca], dns_names=["*.a.example.internal"], acm_issued=True),
            rule("team-b", ["team-b/*"], [root_ca], dns_names=["*.b.example.internal"], acm_issued=True),
        )
    )
    team_a = make_secret(acm_spec(root_ca, COMMON_NAME="web.a.example.internal"), name="team-a/web")
    team_b = make_secret(acm_spec(root_ca, COMMON_NAME="api.b.example.internal"), name="team-b/api")
    rotate(team_a)
    rotate(team_b)
    victim = secret_fields(aws.sm, team_b)
    aws.dynamodb.put_item(
        TableName=LEDGER_TABLE,
        Item={
            "SecretArn": {"S": team_a},
            "Serial": {"S": victim["CERTIFICATE_SERIAL"]},
            "CertificateArn": {"S": victim["CERTIFICATE_ARN"]},
            "CertificateType": {"S": "ACM_ISSUED"},
        },
    )
    own = secret_fields(aws.sm, team_a)
    replace_current(aws.sm, team_a, json.dumps({**own, "CERTIFICATE_ARN": victim["CERTIFICATE_ARN"]}))
    caught = refused_with(aws, team_a, SpecError)
    assert "api.b.example.internal" in str(caught) and "outside issuance policy rule 'team-a'" in str(caught)
    assert calls_of(aws, "ExportCertificate") == calls_of(aws, "RenewCertificate") == 0
    assert victim["PRIVATE_KEY_PEM"] not in json.dumps(secret_fields(aws.sm, team_a))


def test_the_emulated_table_is_created_protected_and_loses_its_policy_with_the_table(aws: Any) -> None:
    """rotation.fleet.ledger.create_table declares what the template declares; deleting a table drops its
    policy (moto alone keeps it for the next table of that name)."""
    create_table(aws.dynamodb, "other-ledger")
    table = aws.dynamodb.describe_table(TableName="other-ledger")["Table"]
    assert table["DeletionProtectionEnabled"] is True
    with pytest.raises(aws.dynamodb.exceptions.ClientError):
        aws.dynamodb.delete_table(TableName="other-ledger")
    aws.dynamodb.update_table(TableName="other-ledger", DeletionProtectionEnabled=False)
    aws.dynamodb.delete_table(TableName="other-ledger")
    aws.dynamodb.create_table(
        TableName="other-ledger",
        KeySchema=[{"AttributeName": "SecretArn", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "SecretArn", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(aws.dynamodb.exceptions.ClientError) as caught:
        aws.dynamodb.get_resource_policy(ResourceArn=table["TableArn"])
    assert caught.value.response["Error"]["Code"] == "PolicyNotFoundException"


def test_revoke_compromised_takes_nothing_from_a_ledger_that_lost_its_protections(
    endpoint: str, ca: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator's `certrotate revoke --compromised` finds the certificate to revoke in the ledger:
    from a table whose deletion protection was turned off it refuses, naming the table, and
    revokes nothing (not even with --immediately)."""
    import uuid

    from tests.support.cli import certrotate, client, rotated

    table = f"ledger-{uuid.uuid4().hex[:8]}"
    dynamodb = client(endpoint, "dynamodb")
    create_table(dynamodb, table)
    monkeypatch.setenv("CERTROTATE_LEDGER_TABLE", table)  # the rotation function records into it
    rotation.handler.reset()
    arn = rotated(endpoint, f"stripped-{uuid.uuid4().hex[:6]}/web", ca)
    dynamodb.update_table(TableName=table, DeletionProtectionEnabled=False)
    with ssm_inventory_in_moto():
        result = certrotate(
            "revoke",
            arn,
            "--compromised",
            "--immediately",
            "--ledger-table",
            table,
            "--timeout",
            "1",
            endpoint=endpoint,
        )
    assert result.returncode != 0 and "lost its protections" in result.stderr and table in result.stderr
    # moto's server runs in this process: its CA records every RevokeCertificate it was sent
    assert acmpca_backends[DEFAULT_ACCOUNT_ID][REGION].certificate_authorities[ca].revoked_certificates == {}
