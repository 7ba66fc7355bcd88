"""The functions behind the event rules, against moto."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from rotation.emulation.rotation_service import LAMBDA_ARN, rotate, rotation_function_in_moto, stage_pending
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
# moto 5.2 has no State Manager (CreateAssociation, ListAssociations, StartAssociationsOnce are
# missing), so these tests give a real boto3 SSM client a botocore Stubber: every request is still
# validated against the SSM API model, and the test states exactly what SSM is asked to do.

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
ASSOCIATION_ID = "8dfe3659-4309-493a-8755-0123456789ab"


def stubbed_ssm() -> tuple[Any, Stubber]:
    ssm = boto3.client("ssm", region_name="us-east-1")
    return ssm, Stubber(ssm)


def web() -> RotatedSecret:
    return RotatedSecret(arn=SECRET, name="certs/web", account="123456789012")


def test_a_first_rotation_creates_the_association_that_converges_tagged_hosts() -> None:
    ssm, stub = stubbed_ssm()
    name = "certrotate-certs_sweb-AbCdEf"
    stub.add_response(
        "list_associations",
        {"Associations": []},
        {"AssociationFilterList": [{"key": "AssociationName", "value": name}]},
    )
    stub.add_response(  # and none under the name earlier versions gave
        "list_associations",
        {"Associations": []},
        {"AssociationFilterList": [{"key": "AssociationName", "value": "certrotate-certs_sweb"}]},
    )
    stub.add_response(
        "create_association",
        {"AssociationDescription": {"AssociationId": ASSOCIATION_ID, "AssociationName": name}},
        {
            "Name": "RunUpdateTLS",
            "AssociationName": name,
            "Targets": [{"Key": "tag:certrotate:secret", "Values": ["certs/web"]}],
            "Parameters": {"SecretArn": [SECRET]},
            "ScheduleExpression": "rate(30 minutes)",
            "ApplyOnlyAtCronInterval": False,  # runs at once, and on every instance that appears later
            "MaxConcurrency": "25%",
            "MaxErrors": "10%",
            "ComplianceSeverity": "HIGH",
            "SyncCompliance": "AUTO",
        },
    )
    with stub:
        result = rotation_succeeded.handle(
            sample("secretsmanager-rotation-succeeded"), ssm, None, settings=SETTINGS, scope=CENTRAL
        )
    stub.assert_no_pending_responses()
    assert result == ASSOCIATION_ID


def test_a_later_rotation_runs_the_existing_association_at_once() -> None:
    ssm, stub = stubbed_ssm()
    desired = desired_association(web(), SETTINGS)
    current = {k: v for k, v in desired.items() if k not in ("ApplyOnlyAtCronInterval",)} | {
        "AssociationId": ASSOCIATION_ID
    }
    stub.add_response(
        "list_associations",
        {"Associations": [{"AssociationId": ASSOCIATION_ID, "AssociationName": desired["AssociationName"]}]},
    )
    stub.add_response("describe_association", {"AssociationDescription": current}, {"AssociationId": ASSOCIATION_ID})
    stub.add_response("start_associations_once", {}, {"AssociationIds": [ASSOCIATION_ID]})
    with stub:
        assert (
            rotation_succeeded.handle(
                sample("secretsmanager-rotation-succeeded"), ssm, None, settings=SETTINGS, scope=CENTRAL
            )
            == ASSOCIATION_ID
        )
    stub.assert_no_pending_responses()  # and no UpdateAssociation: the Stubber refuses unplanned calls


def test_an_association_that_drifted_is_restored_before_it_runs() -> None:
    """A secret deleted and re-created under the same name has a new ARN suffix; an operator may have
    edited the schedule. The association is put back to the stack's settings, then started."""
    ssm, stub = stubbed_ssm()
    desired = desired_association(web(), SETTINGS)
    stale = desired | {"Parameters": {"SecretArn": [SECRET[:-6] + "OldOne"]}, "ScheduleExpression": "rate(7 days)"}
    stub.add_response(
        "list_associations",
        {"Associations": [{"AssociationId": ASSOCIATION_ID, "AssociationName": desired["AssociationName"]}]},
    )
    stub.add_response("describe_association", {"AssociationDescription": stale | {"AssociationId": ASSOCIATION_ID}})
    stub.add_response(
        "update_association",
        {"AssociationDescription": {"AssociationId": ASSOCIATION_ID}},
        {"AssociationId": ASSOCIATION_ID, **desired},
    )
    stub.add_response("start_associations_once", {}, {"AssociationIds": [ASSOCIATION_ID]})
    with stub:
        rotation_succeeded.handle(
            sample("secretsmanager-rotation-succeeded"), ssm, None, settings=SETTINGS, scope=CENTRAL
        )
    stub.assert_no_pending_responses()


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
def test_a_rotation_outside_the_stacks_scope_creates_nothing(change: dict[str, Any], scope: Scope) -> None:
    ssm, stub = stubbed_ssm()  # no responses planned: any SSM call fails the test
    with stub:
        assert (
            rotation_succeeded.handle(
                sample("secretsmanager-rotation-succeeded", **change), ssm, None, settings=SETTINGS, scope=scope
            )
            is None
        )


def test_the_secrets_account_must_match_too() -> None:
    """The event's account and the secret's account are both checked: a bus that admitted an event
    from the right account naming another account's secret still gets nothing."""
    event = sample("secretsmanager-rotation-succeeded")
    event["detail"]["additionalEventData"]["SecretId"] = SECRET.replace("123456789012", "999988887777")
    ssm, stub = stubbed_ssm()
    with stub:
        assert rotation_succeeded.handle(event, ssm, None, settings=SETTINGS, scope=Scope("123456789012", "*")) is None


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


def test_other_events_do_nothing_and_a_malformed_secret_id_is_refused() -> None:
    ssm, stub = stubbed_ssm()
    with stub:
        for name in (
            "secretsmanager-rotation-failed",
            "secretsmanager-rotation-abandoned",
            "acm-certificate-available",
        ):
            assert rotation_succeeded.handle(sample(name), ssm, None, settings=SETTINGS, scope=CENTRAL) is None
    event = sample("secretsmanager-rotation-succeeded")
    event["detail"]["additionalEventData"]["SecretId"] = "certs/web"  # a name, not the full ARN the document needs
    with pytest.raises(EventError, match=r"additionalEventData\.SecretId='certs/web'"):
        rotation_succeeded.handle(event, ssm, None, settings=SETTINGS, scope=CENTRAL)


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


def test_a_secret_recreated_under_the_same_name_does_not_take_over_the_old_association() -> None:
    """Issue 16 item 6: the old incarnation's association (legacy name, the old ARN) is left alone;
    the new incarnation gets its own; ListAssociations is paged and matched exactly."""
    ssm, stub = stubbed_ssm()
    recreated = RotatedSecret(arn=arn_of("certs/web", "ZzZzZz"), name="certs/web", account="123456789012")
    name = "certrotate-certs_sweb-ZzZzZz"
    old_id, new_id = "8dfe3659-4309-493a-8755-0123456789aa", "8dfe3659-4309-493a-8755-0123456789ac"
    like = {"AssociationName": "certrotate-certs_sweb-ZzZzZz-other", "AssociationId": old_id}
    stub.add_response(
        "list_associations",
        {"Associations": [like], "NextToken": "page-2"},
        {"AssociationFilterList": [{"key": "AssociationName", "value": name}]},
    )
    stub.add_response(
        "list_associations",
        {"Associations": []},
        {"AssociationFilterList": [{"key": "AssociationName", "value": name}], "NextToken": "page-2"},
    )
    stub.add_response(
        "list_associations",
        {"Associations": [{"AssociationName": "certrotate-certs_sweb", "AssociationId": old_id}]},
        {"AssociationFilterList": [{"key": "AssociationName", "value": "certrotate-certs_sweb"}]},
    )
    old = desired_association(web(), SETTINGS) | {"AssociationId": old_id, "AssociationName": "certrotate-certs_sweb"}
    stub.add_response("describe_association", {"AssociationDescription": old}, {"AssociationId": old_id})
    stub.add_response(
        "create_association",
        {"AssociationDescription": {"AssociationId": new_id, "AssociationName": name}},
        desired_association(recreated, SETTINGS),
    )
    with stub:
        assert rotation_succeeded.converge(recreated, ssm, SETTINGS) == new_id
    stub.assert_no_pending_responses()  # no UpdateAssociation of the old one


def test_an_association_under_the_legacy_name_for_this_very_secret_is_renamed() -> None:
    ssm, stub = stubbed_ssm()
    desired = desired_association(web(), SETTINGS)
    stub.add_response("list_associations", {"Associations": []})
    stub.add_response(
        "list_associations",
        {"Associations": [{"AssociationName": "certrotate-certs_sweb", "AssociationId": ASSOCIATION_ID}]},
    )
    legacy = desired | {"AssociationId": ASSOCIATION_ID, "AssociationName": "certrotate-certs_sweb"}
    stub.add_response("describe_association", {"AssociationDescription": legacy})
    stub.add_response(
        "update_association",
        {"AssociationDescription": {"AssociationId": ASSOCIATION_ID}},
        {"AssociationId": ASSOCIATION_ID, **desired},
    )
    stub.add_response("start_associations_once", {}, {"AssociationIds": [ASSOCIATION_ID]})
    with stub:
        assert rotation_succeeded.converge(web(), ssm, SETTINGS) == ASSOCIATION_ID
    stub.assert_no_pending_responses()


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


def test_a_secret_iam_will_not_let_the_function_describe_is_skipped_not_retried() -> None:
    """The central role may DescribeSecret only on secrets naming this stack's rotation function; every
    other secret's RotationSucceeded is denied, and must end as "nothing to do", not in the DLQ."""
    secretsmanager = boto3.client("secretsmanager", region_name="us-east-1")
    sm_stub = Stubber(secretsmanager)
    sm_stub.add_client_error("describe_secret", "AccessDeniedException", "not authorized", 400)
    sm_stub.add_client_error("describe_secret", "ThrottlingException", "slow down", 400)
    ssm, ssm_stub = stubbed_ssm()  # nothing planned: no association may be touched
    scope = Scope("123456789012", "*", rotation_function_arn="arn:aws:lambda:us-east-1:123456789012:function:x")
    event = sample("secretsmanager-rotation-succeeded")
    with sm_stub, ssm_stub:
        assert rotation_succeeded.handle(event, ssm, secretsmanager, settings=SETTINGS, scope=scope) is None
        with pytest.raises(AwsCallError, match="ThrottlingException"):  # anything else is retried
            rotation_succeeded.handle(event, ssm, secretsmanager, settings=SETTINGS, scope=scope)
