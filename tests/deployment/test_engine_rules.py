"""Issue 24 items 3, 4, 6, 7 and issue 25 item 4, read from the rendered templates.

Each rule is checked against the engine's own code or documentation: State Manager's schedule range
(rotation/fleet/association_schedule.py, compared value by value with the ``ConvergenceSchedule`` pattern,
which CloudFormation applies with Java's regex: ``java`` runs it too), EventBridge's 2,048-character
event pattern quota (the rule rendered for the worst value ``SecretReaders`` admits, matched with
moto's EventBridge pattern engine), the roles the fleet functions may assume, and the expiry alarms
``ExpiryAlarmDays`` 0 turns off. Attacker cases play a workload account that tries to read, or be
told about, another account's secrets.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from moto.events.models import EventPattern

from rotation.errors import SpecError
from rotation.event_handlers.rotation_succeeded import AssociationSettings
from rotation.fleet.association_schedule import LONGEST_MINUTES, check_schedule
from rotation.fleet.scope import FleetScope, ScopeError, parse_readers
from tests.deployment.test_fleet_trust_templates import (
    REGION,
    Stack,
    allowed,
    as_list,
    decrypt_context,
    secret_arn,
)
from tests.deployment.test_fleet_trust_templates import load as load_rendered
from tests.deployment.test_templates import sample
from tests.integration.conftest import require

TEMPLATES = ["central-account.yaml", "workload-account.yaml"]


@functools.cache
def load(name: str) -> dict[str, Any]:
    """A rendered template, parsed once (the resolver never changes it)."""
    return load_rendered(name)


A, B, C = "111111111111", "222222222222", "333333333333"


def schedule_pattern(name: str) -> re.Pattern[str]:
    return re.compile(load(name)["Parameters"]["ConvergenceSchedule"]["AllowedPattern"])


def admitted_by_state_manager(expression: str) -> bool:
    try:
        check_schedule(expression)
    except SpecError:
        return False
    return True


def every_rate_expression() -> list[str]:
    """Each value 0-45,000 in each unit, singular and plural, plus malformed spellings."""
    units = {"minute": 45_000, "hour": 800, "day": 40}
    values = [f"rate({n} {unit}{s})" for unit, top in units.items() for n in range(top + 1) for s in ("", "s")]
    return [*values, "rate(030 minutes)", "rate(30 Minutes)", "rate(30  minutes)", "rate(1 week)", "rate()", ""]


# --- issue 24 item 3: ConvergenceSchedule -------------------------------------------------------


@pytest.mark.parametrize("name", TEMPLATES)
def test_the_schedule_pattern_admits_exactly_what_state_manager_admits(name: str) -> None:
    """Every rate expression 0-45,000 minutes (hours, days) through both the template's pattern and
    the documented rule: they agree on each, and the boundaries are where the User Guide puts them."""
    pattern = schedule_pattern(name)
    disagreements = [
        value for value in every_rate_expression() if bool(pattern.fullmatch(value)) != admitted_by_state_manager(value)
    ]
    assert disagreements == []
    for refused in ("rate(31 days)", "rate(744 hours)", "rate(44640 minutes)", "rate(29 minutes)"):
        assert not pattern.fullmatch(refused), refused
    for admitted in ("rate(30 days)", "rate(743 hours)", "rate(44639 minutes)", "rate(30 minutes)"):
        assert pattern.fullmatch(admitted), admitted
    assert LONGEST_MINUTES == 31 * 24 * 60 - 1


def test_the_converge_function_refuses_a_schedule_state_manager_would_refuse() -> None:
    """The converge function's settings are checked before any CreateAssociation is sent: a stack
    value that slipped past (or an environment edited by hand) fails with the field and the value."""
    base = {"ASSOCIATION_SCHEDULE": "rate(30 days)"}
    assert AssociationSettings.from_environment(base).schedule == "rate(30 days)"
    for value in ("rate(31 days)", "rate(744 hours)", "rate(44640 minutes)", "rate(1 days)"):
        with pytest.raises(SpecError) as refused:
            AssociationSettings.from_environment({"ASSOCIATION_SCHEDULE": value})
        assert "ASSOCIATION_SCHEDULE" in str(refused.value) and value in str(refused.value)
        assert "31 days" in str(refused.value)  # and what is allowed


JAVA_MATCHER = """
import java.io.*;
import java.util.regex.Pattern;
public class Match {
    public static void main(String[] args) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
        Pattern pattern = Pattern.compile(in.readLine());
        StringBuilder out = new StringBuilder();
        for (String line; (line = in.readLine()) != null; ) {
            out.append(pattern.matcher(line).matches() ? '1' : '0');
        }
        System.out.print(out);
    }
}
"""


def java_matches(pattern: str, values: list[str], tmp_path: Path) -> list[bool]:
    """``values`` matched by ``pattern`` with java.util.regex, the engine CloudFormation's
    AllowedPattern uses (whole value, as ``Matcher.matches``)."""
    java = shutil.which("java")
    require(None if java else "java is not installed (apt-get install default-jre-headless)")
    source = tmp_path / "Match.java"
    source.write_text(JAVA_MATCHER)
    result = subprocess.run(
        [str(java), str(source)], input="\n".join([pattern, *values]), capture_output=True, text=True, check=True
    )
    return [c == "1" for c in result.stdout]


def test_the_parameter_patterns_mean_the_same_in_java(tmp_path: Path) -> None:
    """CloudFormation checks AllowedPattern with Java: the schedule and reader patterns admit the same
    values there as in the Python rule they are compared with above and below."""
    schedules = [v for v in every_rate_expression() if v] + ["cron(0 2 ? * SUN *)", "cron()", "at(2026-01-01T00:00:00)"]
    pattern = load("central-account.yaml")["Parameters"]["ConvergenceSchedule"]["AllowedPattern"]
    assert java_matches(pattern, schedules, tmp_path) == [bool(re.fullmatch(pattern, v)) for v in schedules]
    readers = [value for value, _ in READER_VALUES if value]
    pattern = load("central-account.yaml")["Parameters"]["SecretReaders"]["AllowedPattern"]
    assert java_matches(pattern, readers, tmp_path) == [bool(re.fullmatch(pattern, v)) for v in readers]


# --- issue 25 item 4 and issue 24 item 4: SecretReaders -----------------------------------------

READER_VALUES = [
    ("", True),
    (f"{A}:team-a/", True),
    (f"{A}:team-a/prod/", True),
    (f"{A}:team-a/,{B}:team-b/,{A}:shared/,{C}:c/,{C}:d/", True),
    (f"{A}:team-a", False),  # would also cover team-ab/... and team-a-prod/...
    (f"{A}:", False),  # every secret of the central account
    (f"{A}:/", False),
    (f"{A}://", False),
    (f"{A}:team-a//", False),
    (f"{A}:/team-a/", False),
    (f"{A}:team-a/*", False),
    (f"{A}:team-a/,{B}:", False),
    (f"{A}:a/,{A}:b/,{A}:c/,{A}:d/,{A}:e/,{A}:f/", False),  # six entries
    ("1111:team-a/", False),
    (f"{A}:team a/", False),
    (f"{A}:team-a/,", False),
]


def template_admits(value: str) -> bool:
    declared = load("central-account.yaml")["Parameters"]["SecretReaders"]
    return bool(re.fullmatch(declared["AllowedPattern"], value)) and len(value) <= declared.get("MaxLength", 4096)


def parser_admits(value: str) -> bool:
    try:
        parse_readers(value)
    except ScopeError:
        return False
    return True


@pytest.mark.parametrize(("value", "expected"), READER_VALUES)
def test_a_reader_prefix_ends_at_a_slash_and_is_never_empty(value: str, expected: bool) -> None:
    """Issue 25 item 4, the operator's typo as the attacker's gift: ``team-a`` (no delimiter) and an
    empty prefix are refused by the stack parameter and by the rotation function's parser alike."""
    assert template_admits(value) is expected
    if value.endswith(","):
        return  # the parser skips empty entries; the template refuses the trailing comma
    assert parser_admits(value) is expected


def test_a_prefix_never_covers_a_longer_name_that_shares_its_text() -> None:
    """Account A reads team-a/: team-ab/x and team-a-prod/x are not A's, for the key policy, the
    revocation scope and A's bus rule alike."""
    parameters = {
        "CertificateAuthorityArns": "arn:ca",
        "SecretReaders": f"{A}:team-a/,{B}:team-ab/",
        "WorkloadEventBusArns": f"arn:aws:events:{REGION}:{A}:event-bus/certrotate",
    }
    stack = Stack(load("central-account.yaml"), parameters)
    policy = stack.resolve(stack.template["Resources"]["CertificateKey"]["Properties"]["KeyPolicy"])
    scope = FleetScope.from_environment({"CERTROTATE_SECRET_READERS": parameters["SecretReaders"]})
    rule = forwarding_rule(stack, 1)
    assert rule is not None
    for name, readable in (("team-a/web", True), ("team-ab/x", False), ("team-a-prod/x", False)):
        context = decrypt_context(A, "certrotate/InstanceRole", name)
        assert allowed(policy["Statement"], "kms:Decrypt", context) is readable, name
        assert scope.concerns(A, secret_arn(name)) is readable, name
        assert rule.matches_event(rotated(name)) is readable, name


def forwarding_rule(stack: Stack, slot: int) -> EventPattern | None:
    """The slot-th forwarding rule's event pattern as EventBridge (moto's engine) matches it, or
    None when the stack does not create that rule."""
    resource = stack.template["Resources"][f"ForwardRotation{slot}"]
    if not stack.condition(resource["Condition"]):
        return None
    return EventPattern.load(json.dumps(stack.resolve(resource["Properties"]["EventPattern"])))


def rotated(name: str) -> dict[str, Any]:
    event = sample("secretsmanager-rotation-succeeded")
    return {**event, "detail": {**event["detail"], "additionalEventData": {"SecretId": secret_arn(name)}}}


def test_each_workload_bus_gets_only_its_own_accounts_rotations() -> None:
    """Issue 25 item 4: before, every bus's rule matched every reader's prefixes, so account A's bus
    received team-b's rotation events. Now A's rule matches A's prefixes only, B's B's, and a bus
    whose account reads nothing gets no rule at all."""
    buses = [f"arn:aws:events:{REGION}:{account}:event-bus/certrotate" for account in (A, B, C)]
    stack = Stack(
        load("central-account.yaml"),
        {
            "CertificateAuthorityArns": "arn:ca",
            "SecretReaders": f"{A}:team-a/,{B}:team-b/,{A}:shared/",
            "WorkloadEventBusArns": ",".join(buses),
        },
    )
    for_a, for_b, for_c = (forwarding_rule(stack, slot) for slot in (1, 2, 3))
    assert for_a is not None and for_b is not None
    assert for_c is None  # C reads nothing: no rule, no events
    assert for_a.matches_event(rotated("team-a/web")) and for_a.matches_event(rotated("shared/ca"))
    assert not for_a.matches_event(rotated("team-b/api"))  # the attacker's bus, another team's event
    assert not for_a.matches_event(rotated("db/password"))
    assert for_b.matches_event(rotated("team-b/api"))
    assert not for_b.matches_event(rotated("team-a/web")) and not for_b.matches_event(rotated("shared/ca"))
    assert all(forwarding_rule(stack, slot) is None for slot in range(4, 21))


def test_without_readers_every_bus_still_gets_every_rotation() -> None:
    """The stack without SecretReaders keeps its earlier behaviour (WorkloadInstanceRoleArns)."""
    stack = Stack(
        load("central-account.yaml"),
        {"CertificateAuthorityArns": "arn:ca", "WorkloadEventBusArns": f"arn:aws:events:{REGION}:{C}:event-bus/x"},
    )
    rule = forwarding_rule(stack, 1)
    assert rule is not None and rule.matches_event(rotated("db/anything"))


#: EventBridge quotas (EventBridge User Guide, "Amazon EventBridge quotas"): "Event pattern size",
#: 2,048 characters by default (adjustable; a stack must deploy on the default).
EVENT_PATTERN_QUOTA = 2048
#: The longest partition and region names the budget allows for (checked against botocore's data).
PARTITION_BUDGET, REGION_BUDGET = 10, 20


def test_the_budget_covers_every_known_partition_and_region() -> None:
    partitions = botocore.session.get_session().get_component("data_loader").load_data("partitions")
    for partition in partitions["partitions"]:
        assert len(partition["id"]) <= PARTITION_BUDGET, partition["id"]
        assert all(len(region) <= REGION_BUDGET for region in partition["regions"]), partition["id"]


def worst_case_readers() -> str:
    """The value the parameter admits that makes one rule's pattern longest: the most entries, all
    for one account (one rule carries them all), the rest of MaxLength in prefixes, half of them
    slashes (a serializer may escape each as two characters)."""
    declared = load("central-account.yaml")["Parameters"]["SecretReaders"]
    longest = int(declared.get("MaxLength", 4096))  # CloudFormation's own limit on a parameter value
    entries = 5
    room = longest - entries * len(f"{A}:") - (entries - 1)
    sizes = [room // entries + (1 if i < room % entries else 0) for i in range(entries)]
    prefixes = ["a/" * ((size - 3) // 2) + "aa/" if size % 2 else "a/" * (size // 2) for size in sizes]
    value = ",".join(f"{A}:{prefix}" for prefix in prefixes)
    assert len(value) == longest and template_admits(value)
    return value


def test_the_longest_admitted_readers_fit_eventbridges_pattern_quota() -> None:
    """Issue 24 item 4: before, five readers with long prefixes made each rule's pattern 2,548
    characters and the stack failed. Every admitted value now fits, counted the long way (spaces
    after separators, every slash escaped) in the longest partition and region."""
    value = worst_case_readers()
    stack = Stack(
        load("central-account.yaml"),
        {
            "CertificateAuthorityArns": "arn:ca",
            "SecretReaders": value,
            "WorkloadEventBusArns": f"arn:aws:events:{REGION}:{A}:event-bus/certrotate",
        },
    )
    stack.values["AWS::Partition"] = "p" * PARTITION_BUDGET
    stack.values["AWS::Region"] = "r" * REGION_BUDGET
    resource = stack.template["Resources"]["ForwardRotation1"]
    assert stack.condition(resource["Condition"])
    pattern = stack.resolve(resource["Properties"]["EventPattern"])
    assert len(pattern["detail"]["additionalEventData"]["SecretId"]) == 5
    text = json.dumps(pattern)
    assert len(text.replace("/", "\\/")) <= EVENT_PATTERN_QUOTA, len(text)


# --- issue 24 item 6: the FleetViewRoles ---------------------------------------------------------

FLEET_VIEWS = [f"arn:aws:iam::{A}:role/certrotate/wl-FleetViewRole-1", f"arn:aws:iam::{B}:role/certrotate/x"]


@pytest.mark.parametrize("role", ["RotationFunctionRole", "ServedExpiryFunctionRole"])
def test_fleet_functions_assume_only_the_listed_fleet_view_roles(role: str) -> None:
    """Before, ``arn:aws:iam::*:role/certrotate/*FleetViewRole*``: any account admin could make a role
    by that name, trusting the central account, and hand the revoker a fleet view of their own."""

    def assumable(parameters: dict[str, str]) -> list[str]:
        stack = Stack(load("central-account.yaml"), {"CertificateAuthorityArns": "arn:ca", **parameters})
        properties = stack.template["Resources"][role]["Properties"]
        found = []
        for policy in properties["Policies"]:
            for statement in stack.resolve(policy["PolicyDocument"])["Statement"]:
                if "sts:AssumeRole" in as_list(statement["Action"]):
                    found.extend(as_list(statement["Resource"]))
        return found

    assert assumable({"FleetViewRoleArns": ",".join(FLEET_VIEWS)}) == FLEET_VIEWS
    assert assumable({}) == []  # none listed: the role assumes nothing
    attacker = f"arn:aws:iam::{C}:role/certrotate/EvilFleetViewRole"
    assert attacker not in assumable({"FleetViewRoleArns": ",".join(FLEET_VIEWS)})
    assert all("*" not in arn for arn in assumable({"FleetViewRoleArns": ",".join(FLEET_VIEWS)}))


# --- issue 24 item 7: ExpiryAlarmDays 0 ----------------------------------------------------------

EXPIRY_ALARMS = ("DaysToExpiryAlarm", "ServedDaysToExpiryAlarm")


@pytest.mark.parametrize(("days", "created"), [("0", False), ("1", True), ("14", True), ("999", True)])
def test_expiry_alarm_days_zero_creates_neither_alarm(days: str, created: bool) -> None:
    """Before, 0 left both alarms with threshold 0 and LessThanThreshold, so they fired once a served
    certificate had expired, though the parameter said 0 turns them off."""
    template = load("central-account.yaml")
    declared = template["Parameters"]["ExpiryAlarmDays"]
    assert re.fullmatch(declared["AllowedPattern"], days)
    stack = Stack(template, {"CertificateAuthorityArns": "arn:ca", "ExpiryAlarmDays": days})
    for alarm in EXPIRY_ALARMS:
        resource = template["Resources"][alarm]
        assert stack.condition(resource["Condition"]) is created, alarm


@pytest.mark.parametrize("days", ["00", "0.0", "-1", "1.5", " 0", "1000", ""])
def test_expiry_alarm_days_refuses_spellings_of_zero_the_condition_would_miss(days: str) -> None:
    declared = load("central-account.yaml")["Parameters"]["ExpiryAlarmDays"]
    assert not re.fullmatch(declared["AllowedPattern"], days)
    assert re.fullmatch(declared["AllowedPattern"], str(declared["Default"]))
