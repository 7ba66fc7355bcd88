"""The functions behind the event rules, against moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from rotation.build.ssm_documents import DOCUMENTS_DIR
from rotation.emulation.association_api import state_manager_in_moto
from rotation.emulation.rotation_service import LAMBDA_ARN, rotate, rotation_function_in_moto, stage_pending
from rotation.emulation.state_manager import StateManager
from rotation.errors import AwsCallError, EventError
from rotation.event_handlers import acm_certificate_available, rotation_succeeded
from rotation.event_handlers.rotation_succeeded import (
    AssociationSettings,
    RotatedSecret,
    Scope,
    association_name,
    desired_association,
)
from tests.support.driver import replace_current, secret_fields
from tests.support.fleet import EmulatedClock

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "aws_events"


def sample(name: str, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    event.update(changes)
    return event


def rotate_calls(client: Any) -> list[str]:
    seen: list[str] = []
    client.meta.events.register(
        "provide-client-params.secrets-manager.RotateSecret", lambda params, **_: seen.append(params["SecretId"])
    )
    return seen


def test_a_renewed_certificate_rotates_the_secret_that_requested_it_and_nothing_else(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any
) -> None:
    spec = {"CERTIFICATE_TYPE": "ACM_ISSUED", "CA_ARN": root_ca, "COMMON_NAME": "server1.example"}
    owner = make_secret(spec)
    rotate(owner)
    certificate_arn = secret_fields(aws.sm, owner)["CERTIFICATE_ARN"]
    copy = make_secret(spec)  # a copy of the owner's value holding the same certificate: not its owner
    replace_current(aws.sm, copy, json.dumps(secret_fields(aws.sm, owner)))
    stage_pending(copy)  # names certrotate's rotation function, as the owner does
    unrelated = make_secret(spec)
    rotate(unrelated)
    assert secret_fields(aws.sm, unrelated)["CERTIFICATE_ARN"] != certificate_arn

    calls = rotate_calls(aws.sm)
    event = sample("acm-certificate-available", resources=[certificate_arn])
    # moto refuses RotateSecret after a completed rotation (it reads AWSPENDING+AWSCURRENT as "in
    # progress") and cannot invoke a Lambda: RotateSecret runs certrotate's rotation as the service would.
    with rotation_function_in_moto() as failures:
        rotated = acm_certificate_available.rotate_holders(event, aws.acm, aws.sm, LAMBDA_ARN)
    assert failures == []
    assert rotated == [owner] == calls


def test_an_unknown_certificate_does_nothing_and_says_so(aws: Any, no_key_material_in_logs: Any) -> None:
    """A certificate no certrotate secret holds (requested outside certrotate, so untagged)."""
    other = aws.acm.request_certificate(
        DomainName="other.example",
        CertificateAuthorityArn="arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/"
        "11111111-1111-4111-8111-111111111111",
    )["CertificateArn"]
    calls = rotate_calls(aws.sm)
    event = sample("acm-certificate-available", resources=[other])
    assert acm_certificate_available.rotate_holders(event, aws.acm, aws.sm, LAMBDA_ARN) == []
    assert calls == []
    assert any("nothing to do" in line for line in no_key_material_in_logs.lines)
    assert acm_certificate_available.certificate_arn_of(sample("acm-certificate-expired")) is None


# --- RotationSucceeded -> State Manager convergence -------------------------------------------
# moto 5.2 has no State Manager; rotation.emulation adds it (association_api, checked against the
# SSM API model in tests/functional/test_state_manager_emulation.py). The converge function talks
# to it through a real boto3 client, and the tests read back what SSM then holds and runs.

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:certs/web-AbCdEf"
SETTINGS = AssociationSettings(
    document="RunUpdateTLS",
    schedule="rate(30 minutes)",
    max_concurrency="25%",
    max_errors="10%",
    compliance_severity="HIGH",
)
CENTRAL = Scope(
    expected_account="123456789012", secret_arn_pattern="arn:aws:secretsmanager:us-east-1:123456789012:secret:*"
)


@dataclass(frozen=True)
class EmulatedSsm:
    client: Any
    service: StateManager

    def associations(self) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = []
        request: dict[str, Any] = {}
        while True:
            page = self.client.list_associations(**request)
            listed += page["Associations"]
            if not page.get("NextToken"):
                return listed
            request["NextToken"] = page["NextToken"]

    def described(self, association_id: str) -> dict[str, Any]:
        return dict(self.client.describe_association(AssociationId=association_id)["AssociationDescription"])

    def runs(self) -> list[str]:
        """The associations the service runs now (created, updated or started since the last call)."""
        return [e.association_id for e in self.service.run_due_associations()]


@pytest.fixture
def ssm() -> Iterator[EmulatedSsm]:
    with mock_aws(), state_manager_in_moto(clock=EmulatedClock()) as service:
        client = boto3.client("ssm", region_name="us-east-1")
        client.create_document(
            Name="RunUpdateTLS",
            Content=(DOCUMENTS_DIR / "RunUpdateTLS.yaml").read_text(),
            DocumentType="Command",
            DocumentFormat="YAML",
        )
        yield EmulatedSsm(client, service)


def web() -> RotatedSecret:
    return RotatedSecret(arn=SECRET, name="certs/web", account="123456789012")


def stored(ssm: EmulatedSsm, association_id: str) -> dict[str, Any]:
    """The association's request-shaped fields, as converge compares them."""
    described = ssm.described(association_id)
    return {key: described.get(key) for key in desired_association(web(), SETTINGS)}


def test_a_first_rotation_creates_the_association_that_converges_tagged_hosts(ssm: EmulatedSsm) -> None:
    result = rotation_succeeded.handle(
        sample("secretsmanager-rotation-succeeded"), ssm.client, None, settings=SETTINGS, scope=CENTRAL
    )
    assert result is not None
    assert stored(ssm, result) == {
        "Name": "RunUpdateTLS",
        "AssociationName": "certrotate-certs_sweb-AbCdEf",
        "Targets": [{"Key": "tag:certrotate:secret", "Values": ["certs/web"]}],
        "Parameters": {"SecretArn": [SECRET]},
        "ScheduleExpression": "rate(30 minutes)",
        "ApplyOnlyAtCronInterval": False,  # runs at once, and on every instance that appears later
        "MaxConcurrency": "25%",
        "MaxErrors": "10%",
        "ComplianceSeverity": "HIGH",
        "SyncCompliance": "AUTO",
    }
    assert [a["AssociationId"] for a in ssm.associations()] == [result]
    assert ssm.runs() == [result]  # applied on create


def test_a_later_rotation_runs_the_existing_association_at_once(ssm: EmulatedSsm) -> None:
    """Found on the second page of ListAssociations behind 50 names that begin the same way (the
    filter is not an exact match), left unchanged, and started once."""
    for n in range(50):
        ssm.client.create_association(
            **desired_association(web(), SETTINGS) | {"AssociationName": f"certrotate-certs_sweb-AbCdEf-{n:02}"}
        )
    event = sample("secretsmanager-rotation-succeeded")
    created = rotation_succeeded.handle(event, ssm.client, None, settings=SETTINGS, scope=CENTRAL)
    assert created is not None and len(ssm.associations()) == 51
    ssm.runs()
    assert rotation_succeeded.handle(event, ssm.client, None, settings=SETTINGS, scope=CENTRAL) == created
    assert len(ssm.associations()) == 51  # no second association
    assert ssm.described(created)["AssociationVersion"] == "1"  # and no UpdateAssociation
    assert ssm.runs() == [created]  # StartAssociationsOnce


def test_an_association_that_drifted_is_restored_before_it_runs(ssm: EmulatedSsm) -> None:
    """An operator edited the schedule and the parameters: the association is put back to the
    stack's settings (a new version), then run."""
    desired = desired_association(web(), SETTINGS)
    stale = desired | {"Parameters": {"SecretArn": [SECRET[:-6] + "OldOne"]}, "ScheduleExpression": "rate(7 days)"}
    association = ssm.client.create_association(**stale)["AssociationDescription"]["AssociationId"]
    ssm.runs()
    rotation_succeeded.handle(
        sample("secretsmanager-rotation-succeeded"), ssm.client, None, settings=SETTINGS, scope=CENTRAL
    )
    assert stored(ssm, association) == desired
    assert ssm.described(association)["AssociationVersion"] == "2"
    assert ssm.runs() == [association]  # the update and StartAssociationsOnce: one run


@pytest.mark.parametrize(
    ("change", "scope"),
    [
        (
            {"account": "999988887777"},
            Scope(expected_account="123456789012", secret_arn_pattern="*"),
        ),  # another account's event
        (
            {},
            Scope(expected_account="999988887777", secret_arn_pattern="*"),
        ),  # a workload stack for another central account
        (
            {},
            Scope(
                expected_account="123456789012",
                secret_arn_pattern="arn:aws:secretsmanager:us-east-1:123456789012:secret:other/*",
            ),
        ),
    ],
)
def test_a_rotation_outside_the_stacks_scope_creates_nothing(
    ssm: EmulatedSsm, change: dict[str, Any], scope: Scope
) -> None:
    event = sample("secretsmanager-rotation-succeeded", **change)
    assert rotation_succeeded.handle(event, ssm.client, None, settings=SETTINGS, scope=scope) is None
    assert ssm.associations() == [] and ssm.runs() == []


def test_the_secrets_account_must_match_too(ssm: EmulatedSsm) -> None:
    """The event's account and the secret's account are both checked: a bus that admitted an event
    from the right account naming another account's secret still gets nothing."""
    event = sample("secretsmanager-rotation-succeeded")
    event["detail"]["additionalEventData"]["SecretId"] = SECRET.replace("123456789012", "999988887777")
    assert (
        rotation_succeeded.handle(event, ssm.client, None, settings=SETTINGS, scope=Scope("123456789012", "*")) is None
    )
    assert ssm.associations() == []


def test_in_the_central_account_only_secrets_certrotate_rotates_get_an_association(
    aws: Any, root_ca: str, make_secret: Any
) -> None:
    """DescribeSecret (moto) must name the stack's rotation function; a database password rotated by
    another function gets no association that would run the installer on anything."""
    function = "arn:aws:lambda:us-east-1:123456789012:function:certrotate-rotation"
    ours = make_secret({"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": root_ca, "COMMON_NAME": "web.example"})
    theirs = aws.sm.create_secret(Name="db/password", SecretString="hunter2")["ARN"]
    with rotation_function_in_moto() as failures:
        aws.sm.rotate_secret(SecretId=ours, RotationLambdaARN=function, RotationRules={"AutomaticallyAfterDays": 30})
    assert failures == []
    scope = Scope(expected_account="123456789012", secret_arn_pattern="*", rotation_function_arn=function)
    for secret, expected in ((theirs, False), (ours, True)):
        event = sample("secretsmanager-rotation-succeeded")
        event["detail"]["additionalEventData"]["SecretId"] = secret
        parsed = rotation_succeeded.rotated_secret(event)
        assert parsed is not None
        assert rotation_succeeded.in_scope(parsed, event, scope, aws.sm) is expected


def test_other_events_do_nothing_and_a_malformed_secret_id_is_refused(ssm: EmulatedSsm) -> None:
    for name in (
        "secretsmanager-rotation-failed",
        "secretsmanager-rotation-abandoned",
        "acm-certificate-available",
    ):
        assert rotation_succeeded.handle(sample(name), ssm.client, None, settings=SETTINGS, scope=CENTRAL) is None
    event = sample("secretsmanager-rotation-succeeded")
    event["detail"]["additionalEventData"]["SecretId"] = "certs/web"  # a name, not the full ARN the document needs
    with pytest.raises(EventError, match=r"additionalEventData\.SecretId='certs/web'"):
        rotation_succeeded.handle(event, ssm.client, None, settings=SETTINGS, scope=CENTRAL)
    assert ssm.associations() == []


def test_association_names_are_distinct_for_distinct_secrets_and_fit_ssm() -> None:
    import re

    names = ["certs/web", "certs_sweb", "certs_web", "certs+web", "certs=web", "certs@web", "a" * 512, "a" * 511 + "b"]
    derived = [association_name(RotatedSecret(arn=arn_of(n), name=n, account="123456789012")) for n in names]
    assert len(set(derived)) == len(names)
    for name in derived:
        assert re.fullmatch(r"[a-zA-Z0-9_\-.]{3,128}", name), name


def arn_of(name: str, suffix: str = "AbCdEf") -> str:
    return f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-{suffix}"


def test_a_name_that_spells_another_secrets_cut_name_gets_its_own_association() -> None:
    """Issue 16 item 6. Before, a secret named like another's cut-and-hashed name (hyphen and hex
    are allowed in names) got the same association name, and with it the other's hosts."""
    long = RotatedSecret(arn=arn_of("a" * 300), name="a" * 300, account="123456789012")
    cut = association_name(long)
    spelled = cut.removeprefix("certrotate-")  # a legal secret name
    impostor = RotatedSecret(arn=arn_of(spelled[:-7], spelled[-6:]), name=spelled[:-7], account="123456789012")
    assert association_name(impostor) != cut
    legacy_impostor = RotatedSecret(arn=arn_of(spelled), name=spelled, account="123456789012")
    assert association_name(legacy_impostor) != cut


def test_a_secret_recreated_under_the_same_name_does_not_take_over_the_old_association(ssm: EmulatedSsm) -> None:
    """Issue 16 item 6: the old incarnation's association (legacy name, the old ARN) is left alone;
    the new incarnation gets its own, not one whose name merely begins like its own."""
    recreated = RotatedSecret(arn=arn_of("certs/web", "ZzZzZz"), name="certs/web", account="123456789012")
    old = ssm.client.create_association(
        **desired_association(web(), SETTINGS) | {"AssociationName": "certrotate-certs_sweb"}
    )["AssociationDescription"]["AssociationId"]
    like = ssm.client.create_association(
        **desired_association(web(), SETTINGS) | {"AssociationName": "certrotate-certs_sweb-ZzZzZz-other"}
    )["AssociationDescription"]["AssociationId"]
    ssm.runs()
    new = rotation_succeeded.converge(recreated, ssm.client, SETTINGS)
    assert new not in (old, like)
    assert stored(ssm, new) | {"Parameters": None} == desired_association(recreated, SETTINGS) | {"Parameters": None}
    assert ssm.described(new)["Parameters"] == {"SecretArn": [recreated.arn]}
    for untouched in (old, like):
        assert ssm.described(untouched)["AssociationVersion"] == "1"
        assert ssm.described(untouched)["Parameters"] == {"SecretArn": [SECRET]}
    assert ssm.runs() == [new]


def test_an_association_under_the_legacy_name_for_this_very_secret_is_renamed(ssm: EmulatedSsm) -> None:
    legacy = ssm.client.create_association(
        **desired_association(web(), SETTINGS) | {"AssociationName": "certrotate-certs_sweb"}
    )["AssociationDescription"]["AssociationId"]
    ssm.runs()
    assert rotation_succeeded.converge(web(), ssm.client, SETTINGS) == legacy
    assert stored(ssm, legacy) == desired_association(web(), SETTINGS)
    assert ssm.described(legacy)["AssociationVersion"] == "2"
    assert [a["AssociationId"] for a in ssm.associations()] == [legacy]
    assert ssm.runs() == [legacy]


def test_the_templates_example_associations_use_the_name_the_function_derives() -> None:
    """Otherwise the first rotation of an example secret would create a second association."""
    from tests.deployment.test_templates import load

    resources = load("central-account.yaml")["Resources"]
    for label in ("pca", "acm"):
        declared, bound = resources[f"Example{label.capitalize()}Association"]["Properties"]["AssociationName"][
            "Fn::Sub"
        ]
        stack = "certrotate"
        name = resources[f"Example{label.capitalize()}Secret"]["Properties"]["Name"]["Fn::Sub"].replace(
            "${AWS::StackName}", stack
        )
        arn = arn_of(name, "QwErTy")  # what Ref gives: the secret's ARN
        index, (separator, _) = bound["Suffix"]["Fn::Select"][0], bound["Suffix"]["Fn::Select"][1]["Fn::Split"]
        suffix = arn.split(separator)[index]
        secret = RotatedSecret(arn=arn, name=name, account="123456789012")
        rendered = declared.replace("${AWS::StackName}", stack).replace("${Suffix}", suffix)
        assert rendered == association_name(secret)


def test_a_secret_iam_will_not_let_the_function_describe_is_skipped_not_retried(ssm: EmulatedSsm) -> None:
    """The central role may DescribeSecret only on secrets naming this stack's rotation function; every
    other secret's RotationSucceeded is denied, and must end as "nothing to do", not in the DLQ.
    moto enforces no IAM, so Secrets Manager's answers (a denial, then throttling) come from a Stubber."""
    secretsmanager = boto3.client("secretsmanager", region_name="us-east-1")
    sm_stub = Stubber(secretsmanager)
    sm_stub.add_client_error("describe_secret", "AccessDeniedException", "not authorized", 400)
    sm_stub.add_client_error("describe_secret", "ThrottlingException", "slow down", 400)
    scope = Scope("123456789012", "*", rotation_function_arn="arn:aws:lambda:us-east-1:123456789012:function:x")
    event = sample("secretsmanager-rotation-succeeded")
    with sm_stub:
        assert rotation_succeeded.handle(event, ssm.client, secretsmanager, settings=SETTINGS, scope=scope) is None
        with pytest.raises(AwsCallError, match="ThrottlingException"):  # anything else is retried
            rotation_succeeded.handle(event, ssm.client, secretsmanager, settings=SETTINGS, scope=scope)
    assert ssm.associations() == []  # no association was touched
