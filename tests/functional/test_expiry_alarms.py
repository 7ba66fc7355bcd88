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
from rotation.event_handlers.served_expiry import FleetUnreadable, report, secret_arns
from rotation.fleet.scope import FleetScope
from rotation.fleet.served_expiry import SERIES_LIMIT
from rotation.lifecycle.engine import assumed_client
from tests.conftest import REGION
from tests.deployment.test_templates import load
from tests.functional.test_handler_observability import emf_records, log_records
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
    for name in ("team-a/web", "team-b/api", "team-c/db"):
        aws.sm.create_secret(Name=name, SecretString="{}")
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
        emitted = report(
            lambda region: boto3.client("ssm", REGION), _no_role, "123456789012", [], [], now, secret_arns(aws.sm)
        )
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
    aws.sm.create_secret(Name="own", SecretString="{}")
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
                secret_arns(aws.sm),
            )
        out = capfd.readouterr().out
    assert [r["SecretName"] for r in emf_records(out) if "ServedDaysToExpiry" in r] == ["own"]
    template = load("central-account.yaml")["Resources"]
    assert template["ServedExpiryFunction"]["Properties"]["DeadLetterConfig"]["TargetArn"] == {
        "Fn::GetAtt": ["DeadLetterQueue", "Arn"]
    }
    assert template["ServedExpirySchedule"]["Properties"]["ScheduleExpression"] == "rate(1 hour)"


def test_six_hundred_invented_secrets_bury_no_real_expiry_and_make_no_series(
    aws: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """Issue 25 item 3: root on one host of account A (SecretReaders: team-a/) writes records for 600
    secrets that do not exist, each 1 day from expiry, and one for team-b/api, which A may not read.
    Before, 601+ ServedDaysToExpiry series were emitted and the real team-b/api (5 days, on team-b's
    own host) ranked past the 500 the alarm evaluates. Now the invented ones are counted in
    ServedRecordsNotCounted, not emitted, and team-b/api alarms."""
    now = datetime.now(UTC)
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:"
    real = {name: aws.sm.create_secret(Name=name, SecretString="{}")["ARN"] for name in ("team-a/web", "team-b/api")}
    role = "arn:aws:iam::111111111111:role/certrotate/FleetViewRole"
    sts = boto3.client("sts", region_name=REGION)
    scope = FleetScope(readers=(("111111111111", "team-a/"),))
    soon = (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with ssm_inventory_in_moto():
        invented = [_record(f"{arn}bogus/{i:04d}", f"/etc/ssl/{i}.pem", soon) for i in range(600)]
        invented.append(_record(real["team-b/api"], "/etc/ssl/b.pem", soon))  # a secret A may not read
        invented.append(
            _record(real["team-a/web"], "/etc/ssl/a.pem", (now + timedelta(days=200)).isoformat()[:19] + "Z")
        )
        assumed_client(sts, role, "ssm").put_inventory(
            InstanceId="i-0aaaaaaaaaaaaaaa1",
            Items=[
                {
                    "TypeName": "Custom:CertrotateCertificate",
                    "SchemaVersion": "1.0",
                    "CaptureTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "Content": invented,
                }
            ],
        )
        serve(
            "0B",
            real["team-b/api"],
            "i-0bbbbbbbbbbbbbbb1",
            NotAfter=(now + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        capfd.readouterr()
        emitted = report(
            lambda region: boto3.client("ssm", REGION),
            lambda role_arn, region: assumed_client(sts, role_arn, "ssm"),
            "123456789012",
            [role],
            [],
            now,
            secret_arns(aws.sm),
            scope,
        )
        out = capfd.readouterr().out
    assert set(emitted) == {"team-a/web", "team-b/api"}
    assert 4 < emitted["team-b/api"] < 6  # team-b's own host; A's 1-day claim about it is not counted
    records = emf_records(out)
    assert len([r for r in records if "ServedDaysToExpiry" in r]) == 2
    (not_counted,) = [r for r in records if "ServedRecordsNotCounted" in r]
    assert not_counted["ServedRecordsNotCounted"] == [601.0]
    states = alarm_states("ServedDaysToExpiryAlarm", records)
    assert states["team-b/api"][0] == "ALARM" and states["team-a/web"][0] == "OK"
    assert len([r for r in log_records(out) if r["message"].startswith("record not counted")]) <= 20


def test_only_the_soonest_series_are_emitted_so_the_alarm_sees_every_close_expiry(
    aws: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """More real secrets than the alarm's 500 series: the SERIES_LIMIT soonest are emitted, the one
    closest to expiry among them, however its name sorts."""
    now = datetime.now(UTC)
    names = [f"fleet/{i:04d}" for i in range(SERIES_LIMIT + 50)]
    secrets = {name: f"arn:aws:secretsmanager:{REGION}:123456789012:secret:{name}-AbCdEf" for name in names}
    with ssm_inventory_in_moto():
        content = [
            _record(
                secrets[name], f"/etc/ssl/{i}.pem", (now + timedelta(days=300 - i / 10)).strftime("%Y-%m-%dT%H:%M:%SZ")
            )
            for i, name in enumerate(names)
        ]
        content[0] = _record(
            secrets[names[0]], "/etc/ssl/0.pem", (now + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        boto3.client("ssm", REGION).put_inventory(
            InstanceId="i-0ccccccccccccccc1",
            Items=[
                {
                    "TypeName": "Custom:CertrotateCertificate",
                    "SchemaVersion": "1.0",
                    "CaptureTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "Content": content,
                }
            ],
        )
        capfd.readouterr()
        emitted = report(lambda region: boto3.client("ssm", REGION), _no_role, "123456789012", [], [], now, secrets)
        out = capfd.readouterr().out
    assert len(emitted) == SERIES_LIMIT and names[0] in emitted
    assert names[1] not in emitted  # the furthest from expiry (299.9 days) are the ones left out
    assert alarm_states("ServedDaysToExpiryAlarm", emf_records(out))[names[0]][0] == "ALARM"


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
