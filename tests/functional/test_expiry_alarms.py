"""Issue 16 item 8: the expiry alarms are per secret and watch what hosts serve.

Before, ``DaysToExpiry`` had no secret dimension and the alarm took the minimum over everything:
one writer's ``VALIDITY "2 DAYS"`` on their own secret raised the one alarm (and, while it stood,
masked any other secret going short: an alarm already in ALARM notifies no second time). Now each
secret is its own contributor of a multi-time-series Metrics Insights alarm (``GROUP BY
SecretName ORDER BY MIN() ASC``; CloudWatch's "Create an alarm based on a Multi Time Series Metrics
Insights query": each time series is a contributor with its own state), and a second alarm watches
``ServedDaysToExpiry``, from the certificates the hosts' records say they serve.

moto has no Metrics Insights: :func:`alarm_states` evaluates the template's own query over the EMF
records the code printed (namespace, the SCHEMA's exact dimension set, the aggregate, the GROUP BY),
against the template's threshold and comparison. The emulated Private CA honours ``Validity``
(:mod:`rotation.emulation.pca_issuance`). Everything else is real (moto, the handler, the fleet records).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.engine import assumed_client
from rotation.event_handlers.served_expiry import FleetUnreadable, report
from tests.conftest import REGION
from tests.deployment.test_templates import load
from tests.functional.test_handler_observability import emf_records
from tests.functional.test_revocation import serve
from tests.support.driver import rotate

QUERY = re.compile(
    r"SELECT (?P<fn>MIN|MAX)\((?P<metric>\w+)\) FROM SCHEMA\((?P<schema>[^)]*)\)"
    r"(?: GROUP BY (?P<group>\w+) ORDER BY (?P=fn)\(\) (?:ASC|DESC))?"
)
ALARM_DAYS = float(load("central-account.yaml")["Parameters"]["ExpiryAlarmDays"]["Default"])


def alarm_states(alarm: str, records: Iterable[dict[str, Any]]) -> dict[str | None, tuple[str, float]]:
    """Contributor (the GROUP BY value; ``None`` for an ungrouped query) → (state, value)."""
    properties = load("central-account.yaml")["Resources"][alarm]["Properties"]
    (query,) = properties["Metrics"]
    match = QUERY.fullmatch(query["Expression"])
    assert match, query["Expression"]
    namespace, *dimensions = (part.strip() for part in match["schema"].split(","))
    values: dict[str | None, list[float]] = {}
    for record in records:
        for directive in record["_aws"]["CloudWatchMetrics"]:
            names = {metric["Name"] for metric in directive["Metrics"]}
            if directive["Namespace"] != namespace or match["metric"] not in names:
                continue
            if set(directive["Dimensions"][0]) != set(dimensions):
                continue  # a SCHEMA matches only metrics with exactly its dimensions
            key = record[match["group"]] if match["group"] else None
            values.setdefault(key, []).extend(record[match["metric"]])
    assert properties["Threshold"] == {"Ref": "ExpiryAlarmDays"}
    assert properties["ComparisonOperator"] == "LessThanThreshold"
    aggregate = min if match["fn"] == "MIN" else max
    return {
        key: ("ALARM" if aggregate(found) < ALARM_DAYS else "OK", aggregate(found)) for key, found in values.items()
    }


def test_a_writers_two_day_certificate_alarms_only_its_own_secret(
    aws: Any, root_ca: str, make_secret: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    spec = {"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": root_ca}
    attacker = make_secret({**spec, "COMMON_NAME": "a.example", "VALIDITY": "2 DAYS"}, name="team-a/web")
    victim = make_secret({**spec, "COMMON_NAME": "b.example"}, name="team-b/api")
    capfd.readouterr()
    rotate(attacker)
    rotate(victim)
    records = emf_records(capfd.readouterr().out)
    expiry = [r for r in records if "DaysToExpiry" in r]
    assert {r["SecretName"] for r in expiry} == {"team-a/web", "team-b/api"}  # the dimension, by name
    states = alarm_states("DaysToExpiryAlarm", records)
    assert set(states) == {"team-a/web", "team-b/api"}  # one contributor per secret
    assert states["team-a/web"][0] == "ALARM" and states["team-a/web"][1] < 3, states
    assert states["team-b/api"][0] == "OK" and states["team-b/api"][1] > 300  # neither raised nor masked


def test_the_served_alarm_follows_what_hosts_serve_per_secret_and_a_forged_record_masks_nothing(
    aws: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)

    def days(n: float) -> str:
        return (now + timedelta(days=n)).strftime("%Y-%m-%dT%H:%M:%SZ")

    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:"
    with ssm_inventory_in_moto():
        # the attacker's host serves their own 2-day certificate; it also claims team-b serves 1000 days
        ssm = boto3.client("ssm", REGION)
        ssm.put_inventory(
            InstanceId="i-0aaaaaaaaaaaaaaa1",
            Items=[
                {
                    "TypeName": "Custom:CertrotateCertificate",
                    "SchemaVersion": "1.0",
                    "CaptureTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "Content": [
                        _record(arn + "team-a/web-AbCdEf", "/etc/ssl/a.pem", days(2)),
                        _record(arn + "team-b/api", "/etc/ssl/forged.pem", days(1000)),
                        _record(arn.replace("123456789012", "999999999999") + "x", "/etc/ssl/x.pem", days(1)),
                    ],
                }
            ],
        )
        # team-b: one host converged (300 days), one never did and still serves a 10-day certificate
        serve("0B", arn + "team-b/api", "i-0bbbbbbbbbbbbbbb1", NotAfter=days(300))
        serve("0C", arn + "team-b/api-XyZ123", "i-0bbbbbbbbbbbbbbb2", NotAfter=days(10))
        # team-c: fine everywhere
        serve("0D", arn + "team-c/db-QwErTy", "i-0ccccccccccccccc1", NotAfter=days(300))
        capfd.readouterr()
        emitted = report(lambda region: boto3.client("ssm", REGION), _no_role, "123456789012", [], [], now)
        out = capfd.readouterr().out
    # full and partial ARNs: one name; a secret of another account is no series of this one
    assert set(emitted) == {"team-a/web", "team-b/api", "team-c/db"}
    assert "not a secret ARN of 123456789012" in out
    states = alarm_states("ServedDaysToExpiryAlarm", emf_records(out))
    assert states["team-a/web"][0] == "ALARM"
    assert states["team-b/api"][0] == "ALARM" and 9 < states["team-b/api"][1] < 11  # the forged 1000 masked nothing
    assert states["team-c/db"][0] == "OK"  # team-a's 2 days did not reach it
    assert "i-0bbbbbbbbbbbbbbb2" in out  # the log names the host that serves the soonest expiry


def test_an_unreadable_workload_account_reports_the_rest_then_fails_into_the_dead_letter_queue(
    aws: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    sts = boto3.client("sts", region_name=REGION)
    with ssm_inventory_in_moto():
        serve("0A", "arn:aws:secretsmanager:us-east-1:123456789012:secret:own-AbCdEf", NotAfter="2030-01-01T00:00:00Z")
        capfd.readouterr()
        with pytest.raises(FleetUnreadable, match="222222222222"):
            # moto assumes any role; a RoleArn under 20 characters is refused (botocore's validation)
            report(
                lambda region: boto3.client("ssm", REGION),
                lambda role, region: assumed_client(sts, "arn:aws:iam::1:r", "ssm"),
                "123456789012",
                ["arn:aws:iam::222222222222:role/certrotate/x-FleetViewRole-1"],
                [],
                now,
            )
        out = capfd.readouterr().out
    assert [r["SecretName"] for r in emf_records(out) if "ServedDaysToExpiry" in r] == ["own"]
    template = load("central-account.yaml")["Resources"]
    assert template["ServedExpiryFunction"]["Properties"]["DeadLetterConfig"]["TargetArn"] == {
        "Fn::GetAtt": ["DeadLetterQueue", "Arn"]
    }
    assert template["ServedExpirySchedule"]["Properties"]["ScheduleExpression"] == "rate(1 hour)"


def _record(secret_arn: str, path: str, not_after: str) -> dict[str, str]:
    return {
        "SecretArn": secret_arn,
        "CertificateFile": path,
        "Status": "unchanged",
        "ExitCode": "0",
        "RecordedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Serial": "0A",
        "FingerprintSha256": "00" * 32,
        "NotAfter": not_after,
    }


def _no_role(role: str, region: str | None) -> Any:
    raise AssertionError(f"no role is configured, yet {json.dumps(role)} was assumed")
