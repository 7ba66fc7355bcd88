"""Issue 28: the CRL refresh as the templates deploy it, and the instance role's read of the CRL bucket.

Read from the rendered templates: the InstallCRL association (schedule parameter, targets, rate
controls), the ``CrlRefreshSchedule`` pattern compared value by value with
``rotation.fleet.association_schedule.check_crl_refresh_schedule`` (and under Java, the engine
CloudFormation checks AllowedPattern with), and the optional ``s3:GetObject`` statement. Its action
is checked against the IAM database by tests/deployment/test_iam_policies.py like every statement.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rotation.errors import SpecError
from rotation.fleet.association_schedule import CRL_REFRESH_LONGEST_MINUTES, check_crl_refresh_schedule
from rotation.fleet.crl_refresh import refreshes
from tests.deployment.test_engine_rules import TEMPLATES, every_rate_expression, java_matches, load


def crl_pattern(name: str) -> str:
    return str(load(name)["Parameters"]["CrlRefreshSchedule"]["AllowedPattern"])


def admitted_by_rule(expression: str) -> bool:
    try:
        check_crl_refresh_schedule(expression)
    except SpecError:
        return False
    return True


@pytest.mark.parametrize("name", TEMPLATES)
def test_each_account_refreshes_the_crl_of_its_opted_in_hosts_on_a_schedule(name: str) -> None:
    """One InstallCRL association per stack, for the instances tagged ``certrotate:crl`` = ``refresh``,
    on ``CrlRefreshSchedule`` (default: Private CA's publication delay, 30 minutes), running at once on
    a new instance, with the fleet's rate controls. It sends no parameter: the host file chooses."""
    template = load(name)
    associations = {
        logical_id: resource["Properties"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::SSM::Association" and resource["Properties"]["Name"] == {"Ref": "CrlDocument"}
    }
    assert list(associations) == ["CrlRefreshAssociation"]
    properties = associations["CrlRefreshAssociation"]
    assert template["Resources"]["CrlDocument"]["Properties"]["Name"] == "InstallCRL"
    assert properties["Targets"] == [{"Key": "tag:certrotate:crl", "Values": ["refresh"]}]
    assert refreshes(properties["Targets"])  # doctor's CRL refresh check knows the association deployed
    assert properties["ScheduleExpression"] == {"Ref": "CrlRefreshSchedule"}
    assert properties["ApplyOnlyAtCronInterval"] is False
    assert "Parameters" not in properties
    assert properties["MaxConcurrency"] == {"Ref": "ConvergenceMaxConcurrency"}
    assert properties["MaxErrors"] == {"Ref": "ConvergenceMaxErrors"}
    assert properties["ComplianceSeverity"] == "HIGH" and properties["SyncCompliance"] == "AUTO"
    default = template["Parameters"]["CrlRefreshSchedule"]["Default"]
    assert check_crl_refresh_schedule(default) == "rate(30 minutes)"


@pytest.mark.parametrize("name", TEMPLATES)
def test_the_refresh_schedule_pattern_admits_exactly_the_rule(name: str) -> None:
    """Every rate expression 0-45,000 minutes (hours, days): the pattern and the rule agree, and the
    longest admitted interval is 6 hours, under half of the 12 hours at which Private CA rewrites its
    shortest-lived CRL (1 day)."""
    pattern = re.compile(crl_pattern(name))
    values = [*every_rate_expression(), "cron(0 2 ? * SUN *)"]
    assert [v for v in values if bool(pattern.fullmatch(v)) != admitted_by_rule(v)] == []
    assert CRL_REFRESH_LONGEST_MINUTES * 2 < 12 * 60 + 1
    for admitted in ("rate(30 minutes)", "rate(360 minutes)", "rate(1 hour)", "rate(6 hours)"):
        assert pattern.fullmatch(admitted), admitted
    for refused in ("rate(29 minutes)", "rate(361 minutes)", "rate(7 hours)", "rate(1 day)", "cron(0 2 ? * SUN *)"):
        assert not pattern.fullmatch(refused), refused


def test_a_refused_refresh_schedule_names_the_field_the_value_and_the_range() -> None:
    with pytest.raises(SpecError) as refused:
        check_crl_refresh_schedule("rate(7 hours)")
    assert "CrlRefreshSchedule" in str(refused.value) and "rate(7 hours)" in str(refused.value)
    assert "6 hours" in str(refused.value)


def test_the_refresh_schedule_pattern_means_the_same_in_java(tmp_path: Path) -> None:
    values = [v for v in every_rate_expression() if v] + ["cron(0 2 ? * SUN *)"]
    pattern = crl_pattern("workload-account.yaml")
    assert java_matches(pattern, values, tmp_path) == [bool(re.fullmatch(pattern, v)) for v in values]


def test_the_instance_role_may_read_crl_objects_only_under_the_named_bucket() -> None:
    """``CrlBucketName`` empty (the default): no S3 statement at all; named: GetObject under ``crl/``
    of that bucket alone (what ``aws s3 cp`` needs: HeadObject and GetObject are both s3:GetObject)."""
    template = load("workload-account.yaml")
    parameter = template["Parameters"]["CrlBucketName"]
    assert parameter["Default"] == ""
    for bucket, ok in [("", True), ("my-crl-bucket", True), ("My_Bucket", False), ("a", False), ("b/crl", False)]:
        assert bool(re.fullmatch(parameter["AllowedPattern"], bucket)) == ok, bucket
    (statements,) = [
        p["PolicyDocument"]["Statement"]
        for p in template["Resources"]["InstanceRole"]["Properties"]["Policies"]
        if p["PolicyName"] == "read-central-certificates"
    ]
    conditional = [s for s in statements if "Fn::If" in s]
    assert len(conditional) == 1 and all("s3" not in str(s) for s in statements if "Fn::If" not in s)
    condition, when_named, otherwise = conditional[0]["Fn::If"]
    assert otherwise == {"Ref": "AWS::NoValue"}
    assert template["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "CrlBucketName"}, ""]}]}
    assert when_named["Effect"] == "Allow" and when_named["Action"] == "s3:GetObject"
    assert when_named["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${CrlBucketName}/crl/*"}
