"""Superseded revocation in the rotation function (moto, freezegun, the real handler).

moto's acm-pca RevokeCertificate stores each revocation on the CA's backend object
(``revoked_certificates``, keyed by the serial as sent, with the reason and time); it has no CRL to
read back, so :func:`revoked` reads that dictionary. moto never answers
RequestAlreadyProcessedException, so "never twice" is proven by counting RevokeCertificate calls.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from freezegun import freeze_time
from moto.acmpca.models import acmpca_backends
from moto.core import DEFAULT_ACCOUNT_ID

import rotation.handler
from rotation.build.templates import OUTPUT
from rotation.emulation.ssm_inventory import reset as reset_inventory
from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.fleet.ledger import KEPT_AFTER_EXPIRY, TTL_ATTRIBUTE, Ledger, create_table
from rotation.fleet.revocation import HOLDER_RELEASE_AFTER
from rotation.fleet.scope import FleetScope
from rotation.fleet.view import normalize_serial
from rotation.issuance.bundle import CertBundle
from rotation.lifecycle.engine import assumed_client, build_services
from tests.conftest import REGION
from tests.functional.test_handler_observability import emf_records, log_records
from tests.support.driver import replace_current, rotate, secret_fields
from tests.support.templates import load_template

TABLE = "certrotate-issued-certificates"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
#: The time of the latest rotate_at: a record serve() writes without a date is made an hour after it
#: (the tests' clock, not the wall clock: a record dated after the revoker's "now" is not believed).
_LAST_ROTATION = {"at": START}


@pytest.fixture
def ledger(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    """The handler wired to moto with the ledger table and the fleet view (SSM inventory)."""
    _LAST_ROTATION["at"] = START
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    create_table(dynamodb, TABLE)
    table = Ledger(dynamodb, TABLE)
    services = build_services(
        aws.sm,
        lambda region: aws.pca,
        lambda region: aws.acm,
        ledger=table,
        make_ssm=lambda region: boto3.client("ssm", region or REGION),
    )
    monkeypatch.setattr(rotation.handler, "_services", services)
    with ssm_inventory_in_moto():
        yield table


def revoked(ca_arn: str) -> dict[str, str]:
    """Serial (as rotation.fleet.view.normalize_serial writes it) → reason, as moto recorded RevokeCertificate
    (the serial as sent: colon-separated bytes)."""
    ca = acmpca_backends[DEFAULT_ACCOUNT_ID][REGION].certificate_authorities[ca_arn]
    entries = ca.revoked_certificates.items()
    return {normalize_serial(serial): str(entry["revocation_reason"]) for serial, entry in entries}


def serial_of(aws: Any, arn: str) -> str:
    bundle = CertBundle.from_fields(secret_fields(aws.sm, arn))
    assert bundle is not None
    return bundle.serial_hex


def serve(
    serial: str,
    arn: str,
    instance: str = "i-0123456789abcdef0",
    ssm: Any = None,
    *,
    recorded_at: datetime | None = None,
    **fields: str,
) -> None:
    """A host reports serving ``serial`` of secret ``arn`` (the installer's inventory record);
    ``fields`` replace or add record fields (a forger's or a broken record); undated, it is made an
    hour after the latest rotate_at."""
    record = {
        "SecretArn": arn,
        "CertificateFile": "/etc/ssl/certs/www.pem",
        "Status": "unchanged",
        "ExitCode": "0",
        "RecordedAt": (recorded_at or _LAST_ROTATION["at"] + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Serial": serial,
        "FingerprintSha256": "00" * 32,
        **fields,
    }
    (ssm or boto3.client("ssm", REGION)).put_inventory(
        InstanceId=instance,
        Items=[
            {
                "TypeName": "Custom:CertrotateCertificate",
                "SchemaVersion": "1.0",
                "CaptureTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "Content": [record],
            }
        ],
    )


def spec(ca_arn: str, name: str = "www.example.internal", **fields: str) -> dict[str, str]:
    return {"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": ca_arn, "COMMON_NAME": name, **fields}


def rotate_at(aws: Any, arn: str, when: datetime) -> str:
    _LAST_ROTATION["at"] = when
    with freeze_time(when):
        rotate(arn)
    return serial_of(aws, arn)


def test_revoked_only_after_the_grace_never_twice_never_the_current_one(
    aws: Any, root_ca: str, make_secret: Any, ledger: Ledger
) -> None:
    arn = make_secret(spec(root_ca, REVOKE_SUPERSEDED_AFTER="7 DAYS"))
    a = rotate_at(aws, arn, START)
    b = rotate_at(aws, arn, START + timedelta(days=1))  # A superseded at day 1
    assert revoked(root_ca) == {}
    c = rotate_at(aws, arn, START + timedelta(days=7, hours=23))  # A superseded 6 d 23 h ago: in grace
    assert revoked(root_ca) == {}
    d = rotate_at(aws, arn, START + timedelta(days=8, hours=1))  # A: 7 d 1 h; B, C: less
    assert revoked(root_ca) == {a: "SUPERSEDED"}
    e = rotate_at(aws, arn, START + timedelta(days=30))
    assert revoked(root_ca) == {a: "SUPERSEDED", b: "SUPERSEDED", c: "SUPERSEDED"}
    assert aws.calls["acm-pca:RevokeCertificate"] == 3  # A once, though every rotation looked again
    assert d not in revoked(root_ca) and e not in revoked(root_ca)  # d is in grace, e is current
    history = {entry.serial: entry for entry in ledger.entries(arn)}
    assert set(history) == {a, b, c, d, e}
    assert history[a].revocation_reason == "SUPERSEDED" and history[e].superseded_at is None


def test_no_grace_field_revokes_nothing_but_keeps_the_history(
    aws: Any, root_ca: str, make_secret: Any, ledger: Ledger
) -> None:
    arn = make_secret(spec(root_ca))
    for day in (0, 10, 20):
        rotate_at(aws, arn, START + timedelta(days=day))
    assert revoked(root_ca) == {} and aws.calls["acm-pca:RevokeCertificate"] == 0
    assert len(ledger.entries(arn)) == 3


def test_a_served_certificate_waits_is_reported_then_revoked_once_no_host_serves_it(
    aws: Any, root_ca: str, make_secret: Any, ledger: Ledger, capfd: pytest.CaptureFixture[str]
) -> None:
    arn = make_secret(spec(root_ca, REVOKE_SUPERSEDED_AFTER="0"))
    a = rotate_at(aws, arn, START)
    serve(a, arn)
    b = rotate_at(aws, arn, START + timedelta(days=1))
    assert revoked(root_ca) == {}
    out = capfd.readouterr().out
    (skipped,) = [m for m in emf_records(out) if "RevocationsSkippedServed" in m]
    assert skipped["RevocationsSkippedServed"] == [1.0]
    (line,) = [r for r in log_records(out) if "not revoked" in r["message"]]
    assert line["serial"] == a and line["reason"] == "SUPERSEDED" and "i-0123456789abcdef0" in line["message"]

    serve(b, arn)  # the host moved on
    rotate_at(aws, arn, START + timedelta(days=2))
    assert revoked(root_ca) == {a: "SUPERSEDED"}
    out = capfd.readouterr().out
    (metric,) = [m for m in emf_records(out) if "CertificatesRevoked" in m]
    assert metric["Reason"] == "SUPERSEDED"
    (line,) = [r for r in log_records(out) if r["message"].startswith(f"certificate {a} revoked")]
    assert line["serial"] == a and line["reason"] == "SUPERSEDED"


@pytest.mark.parametrize(
    "named",
    [
        pytest.param(lambda arn: arn[: -len("-AbCdEf")], id="partial-arn"),  # RunUpdateTLS takes the name's ARN
        pytest.param(lambda arn: arn.rsplit(":", 1)[1], id="bare-name"),
        pytest.param(lambda arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:made-up-XyZxYz", id="made-up"),
    ],
)
def test_a_host_serving_the_serial_holds_it_whatever_secret_arn_its_record_names(
    aws: Any, root_ca: str, make_secret: Any, ledger: Ledger, named: Any
) -> None:
    """Issue 16 item 1(a)/(c): the host serves the certificate, not an ARN. A host installed through
    the secret's partial ARN, or whose failed run wrote a made-up SecretArn over the record of the
    file it really serves, still holds the revocation of the serial it reports."""
    arn = make_secret(spec(root_ca, REVOKE_SUPERSEDED_AFTER="0"))
    a = rotate_at(aws, arn, START)
    serve(a, named(arn))
    rotate_at(aws, arn, START + timedelta(days=1))
    assert revoked(root_ca) == {}
    assert aws.calls["acm-pca:RevokeCertificate"] == 0


def test_a_record_spelling_the_serial_lowercase_holds_it(
    aws: Any, root_ca: str, make_secret: Any, ledger: Ledger
) -> None:
    """The record is matched by serial in any spelling (the GetInventory filter sends each)."""
    arn = make_secret(spec(root_ca, REVOKE_SUPERSEDED_AFTER="0"))
    a = rotate_at(aws, arn, START)
    serve(a.lower(), arn)
    rotate_at(aws, arn, START + timedelta(days=1))
    assert revoked(root_ca) == {}


def test_a_secret_pointing_at_a_certificate_it_did_not_issue_revokes_nothing_of_it(
    aws: Any, root_ca: str, make_secret: Any, ledger: Ledger
) -> None:
    """The attacker can write secret B (PutSecretValue) and wants A's certificate revoked: they put
    A's certificate, key and chain fields into B (as its current value, then as an older one).
    B's rotations revoke only what B's rotations issued."""
    victim = make_secret(spec(root_ca, "victim.example.internal"), name="victim")
    victim_serial = rotate_at(aws, victim, START)
    attacker = make_secret(spec(root_ca, "victim.example.internal", REVOKE_SUPERSEDED_AFTER="0"), name="attacker")
    stolen = {**secret_fields(aws.sm, victim), "REVOKE_SUPERSEDED_AFTER": "0"}
    with freeze_time(START + timedelta(hours=1)):
        replace_current(aws.sm, attacker, json.dumps(stolen))
    own = [rotate_at(aws, attacker, START + timedelta(days=day)) for day in (1, 2, 3)]
    assert victim_serial not in revoked(root_ca)
    assert revoked(root_ca) == {own[0]: "SUPERSEDED", own[1]: "SUPERSEDED"}
    assert {e.serial for e in ledger.entries(attacker)} == set(own)


def test_a_host_in_a_workload_account_holds_it_and_an_unreadable_account_stops_all_revocation(
    aws: Any, root_ca: str, make_secret: Any, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The function reads each workload account's fleet view through its FleetViewRole (moto's STS
    gives the assumed role's account its own inventory)."""
    role = "arn:aws:iam::111111111111:role/certrotate-fleet-view"
    sts = boto3.client("sts", region_name=REGION)
    workload_ssm = assumed_client(sts, role, "ssm")
    broken = {"role": False}

    def assume(arn: str, region: str | None) -> Any:
        if broken["role"]:
            # moto assumes any role; a RoleArn under 20 characters is refused (by botocore's validation)
            return assumed_client(sts, "arn:aws:iam::1:r", "ssm")
        return assumed_client(sts, arn, "ssm")

    services = build_services(
        aws.sm,
        lambda region: aws.pca,
        lambda region: aws.acm,
        ledger=ledger,
        make_ssm=lambda region: boto3.client("ssm", region or REGION),
        fleet_role_arns=[role],
        assume_ssm=assume,
    )
    monkeypatch.setattr(rotation.handler, "_services", services)
    arn = make_secret(spec(root_ca, REVOKE_SUPERSEDED_AFTER="0"))
    a = rotate_at(aws, arn, START)
    serve(a, arn, "i-0ffffffffffffffff", ssm=workload_ssm)  # a host of the workload account
    b = rotate_at(aws, arn, START + timedelta(days=1))
    assert revoked(root_ca) == {}
    serve(b, arn, "i-0ffffffffffffffff", ssm=workload_ssm)
    broken["role"] = True
    c = rotate_at(aws, arn, START + timedelta(days=2))
    assert revoked(root_ca) == {}  # the workload account could not be read: nothing revoked
    assert aws.calls["acm-pca:RevokeCertificate"] == 0
    broken["role"] = False
    rotate_at(aws, arn, START + timedelta(days=3))
    assert set(revoked(root_ca)) == {a, c}  # b: the workload host still serves it


def test_acm_issued_private_certificates_are_revoked_through_their_private_ca(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any, ledger: Ledger
) -> None:
    """ACM_ISSUED alike: ACM's private certificates come from the user's CA (real_acm_chain makes
    moto's ACM sign with it), so RevokeCertificate goes to CA_ARN with the certificate's serial."""
    fields = {
        "CERTIFICATE_TYPE": "ACM_ISSUED",
        "CA_ARN": root_ca,
        "COMMON_NAME": "server1.example",
        "ENVIRONMENT": "TEST",  # every rotation renews
        "REVOKE_SUPERSEDED_AFTER": "1 DAYS",
    }
    arn = make_secret(fields)
    a = rotate_at(aws, arn, START)
    b = rotate_at(aws, arn, START + timedelta(hours=2))
    c = rotate_at(aws, arn, START + timedelta(days=1, hours=3))
    assert len({a, b, c}) == 3
    assert revoked(root_ca) == {a: "SUPERSEDED"}  # a was replaced 25 h ago; b just now
    assert {e.certificate_type for e in ledger.entries(arn)} == {"ACM_ISSUED"}


def test_the_history_expires_from_the_ledger_after_its_certificates(
    aws: Any, root_ca: str, make_secret: Any, ledger: Ledger
) -> None:
    """Each entry carries a DynamoDB TTL 90 days past its certificate's notAfter (moto records the TTL
    setting and the attribute but never deletes: DynamoDB's sweeper is not emulated), and the central
    template's table declares the same TTL attribute, so a secret rotating every few hours keeps a
    bounded history."""
    arn = make_secret(spec(root_ca))
    rotate_at(aws, arn, START)
    (entry,) = ledger.entries(arn)
    dynamodb = boto3.client("dynamodb", REGION)
    item = dynamodb.get_item(TableName=ledger.table, Key={"SecretArn": {"S": arn}, "Serial": {"S": entry.serial}})[
        "Item"
    ]
    assert int(item[TTL_ATTRIBUTE]["N"]) == int((entry.not_after + KEPT_AFTER_EXPIRY).timestamp())
    ttl = dynamodb.describe_time_to_live(TableName=ledger.table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == TTL_ATTRIBUTE and ttl["TimeToLiveStatus"] == "ENABLED"
    template = load_template(OUTPUT / "central-account.yaml")
    declared = template["Resources"]["IssuanceLedgerTable"]["Properties"]["TimeToLiveSpecification"]
    assert declared == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}


def wire(aws: Any, ledger: Ledger, monkeypatch: pytest.MonkeyPatch, **options: Any) -> None:
    """The handler on moto with the ledger and these fleet-view options (build_services')."""
    services = build_services(
        aws.sm,
        lambda region: aws.pca,
        lambda region: aws.acm,
        ledger=ledger,
        make_ssm=lambda region: boto3.client("ssm", region or REGION),
        **options,
    )
    monkeypatch.setattr(rotation.handler, "_services", services)


def test_a_host_in_another_configured_region_holds_it(
    aws: Any, root_ca: str, make_secret: Any, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16 item 1(b): the revoker reads every region of FleetScope (CERTROTATE_FLEET_REGIONS),
    not only its own; a host in eu-west-1 still serving the old certificate holds it."""
    wire(aws, ledger, monkeypatch, fleet_scope=FleetScope(regions=(REGION, "eu-west-1")))
    arn = make_secret(spec(root_ca, REVOKE_SUPERSEDED_AFTER="0"))
    a = rotate_at(aws, arn, START)
    serve(a, arn, "i-0eeeeeeeeeeeeeeee", ssm=boto3.client("ssm", "eu-west-1"))
    b = rotate_at(aws, arn, START + timedelta(days=1))
    assert revoked(root_ca) == {}
    serve(b, arn, "i-0eeeeeeeeeeeeeeee", ssm=boto3.client("ssm", "eu-west-1"))
    rotate_at(aws, arn, START + timedelta(days=2))
    assert revoked(root_ca) == {a: "SUPERSEDED"}  # a: the host moved on; b: that host serves it now


def test_a_malformed_record_holds_only_the_serial_it_names_and_the_hold_is_measured(
    aws: Any, root_ca: str, make_secret: Any, ledger: Ledger, capfd: pytest.CaptureFixture[str]
) -> None:
    """Issue 16 item 2: root on one host writes malformed records (one naming secret W's old serial,
    one naming nothing). Before, every secret's superseded revocation stopped with one WARNING line.
    Now only W's serial is held, the reason names the instance, and RevocationsHeld /
    RevocationHeldDays are emitted; the other secret's old certificate is revoked."""
    web = make_secret(spec(root_ca, "web.example.internal", REVOKE_SUPERSEDED_AFTER="0"), name="web")
    api = make_secret(spec(root_ca, "api.example.internal", REVOKE_SUPERSEDED_AFTER="0"), name="api")
    web_old, api_old = rotate_at(aws, web, START), rotate_at(aws, api, START)
    serve(web_old, web, "i-0bad0bad0bad0bad0", Status="pwned")  # unreadable, names web's serial
    ssm = boto3.client("ssm", REGION)
    ssm.put_inventory(
        InstanceId="i-0bad0bad0bad0bad1",
        Items=[
            {
                "TypeName": "Custom:CertrotateCertificate",
                "SchemaVersion": "1.0",
                "CaptureTime": "2026-03-01T00:00:00Z",
                "Content": [{"Garbage": "x"}],
            }
        ],
    )
    capfd.readouterr()
    rotate_at(aws, web, START + timedelta(days=1))
    rotate_at(aws, api, START + timedelta(days=1))
    assert revoked(root_ca) == {api_old: "SUPERSEDED"}
    out = capfd.readouterr().out
    (line,) = [r for r in log_records(out) if "not revoked" in r["message"]]
    assert line["serial"] == web_old and "123456789012/i-0bad0bad0bad0bad0" in line["message"]
    assert "unreadable record" in line["message"] and "i-0bad0bad0bad0bad1" not in line["message"]
    (held,) = [m for m in emf_records(out) if "RevocationsHeld" in m]
    (seconds,) = [m for m in emf_records(out) if "RevocationHeldDays" in m]
    assert held["RevocationsHeld"] == [1.0]
    assert seconds["RevocationHeldDays"] == [0.0]  # grace 0, superseded at this very rotation
    with freeze_time(START + timedelta(days=3)):
        capfd.readouterr()
        rotate(web)
    days_later = [m for m in emf_records(capfd.readouterr().out) if "RevocationHeldDays" in m]
    # the day-0 certificate was superseded on day 1: held for two days past its grace of 0
    assert max(m["RevocationHeldDays"][0] for m in days_later) == 2.0


def test_an_unreadable_workload_account_holds_only_the_secrets_it_may_read(
    aws: Any, root_ca: str, make_secret: Any, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16 item 2: account 111111111111 reads only secrets named web/* (SecretReaders); its
    FleetViewRole cannot be assumed. web/* revocations are held naming that account; db/* ones,
    which no host there can read, are revoked. Before, one unreadable account stopped them all."""
    role = "arn:aws:iam::111111111111:role/certrotate/FleetViewRole"

    def assume(arn: str, region: str | None) -> Any:
        # moto assumes any role; a RoleArn under 20 characters is refused (by botocore's validation)
        return assumed_client(boto3.client("sts", region_name=REGION), "arn:aws:iam::1:r", "ssm")

    scope = FleetScope(readers=(("111111111111", "web/"),))
    wire(aws, ledger, monkeypatch, fleet_role_arns=[role], assume_ssm=assume, fleet_scope=scope)
    web = make_secret(spec(root_ca, "web.example.internal", REVOKE_SUPERSEDED_AFTER="0"), name="web/front")
    db = make_secret(spec(root_ca, "db.example.internal", REVOKE_SUPERSEDED_AFTER="0"), name="db/main")
    web_old, db_old = rotate_at(aws, web, START), rotate_at(aws, db, START)
    rotate_at(aws, web, START + timedelta(days=1))
    rotate_at(aws, db, START + timedelta(days=1))
    assert revoked(root_ca) == {db_old: "SUPERSEDED"}
    assert web_old not in revoked(root_ca)


def test_a_record_rewritten_by_another_host_holds_instead_of_releasing(
    aws: Any, root_ca: str, make_secret: Any, ledger: Ledger
) -> None:
    """Issue 16 item 3: root on host X rewrites host Y's record (PutInventory is not scoped per
    instance) so that Y seems to have moved off the old certificate: to a serial this secret never
    delivered, then to the current serial but dated before it became current, then gone. Y was seen
    serving A (the ledger's HeldBy), so each forgery holds A; only a record of a newer certificate
    of the secret, made after that one became current, releases it."""
    arn = make_secret(spec(root_ca, REVOKE_SUPERSEDED_AFTER="0"))
    y = "i-0aaaaaaaaaaaaaaaa"
    a = rotate_at(aws, arn, START)
    serve(a, arn, y)
    b = rotate_at(aws, arn, START + timedelta(days=1))  # Y serves A: held, Y recorded as a holder
    assert revoked(root_ca) == {}
    assert {e.serial: e.held_by for e in ledger.entries(arn)}[a] == (f"123456789012/{y}",)
    serve("DEADBEEF", arn, y)  # forged: a serial this secret's rotations never issued
    c = rotate_at(aws, arn, START + timedelta(days=2))
    assert a not in revoked(root_ca)
    serve(b, arn, y, recorded_at=START + timedelta(hours=12))  # forged: dated before B became current
    rotate_at(aws, arn, START + timedelta(days=3))
    assert a not in revoked(root_ca)
    serve(c, arn, y)  # Y really moved to C, current since day 2: the record is dated after that
    rotate_at(aws, arn, START + timedelta(days=4))
    assert a in revoked(root_ca)


@pytest.mark.slow
def test_a_host_of_an_account_that_cannot_read_the_secret_never_holds_its_revocation(
    aws: Any, root_ca: str, make_secret: Any, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 25 item 2: root on a host of account A (SecretReaders: team-a/ only) reports team-b's
    superseded serial once (serials are public: every handshake shows one). Before, A's record held
    it, HeldBy kept A's instance, and 30 rotations later it was still not revoked. Now A's record
    counts for team-a/ secrets only, and a HeldBy entry of A (written before the fix) is released."""
    role = "arn:aws:iam::111111111111:role/certrotate/FleetViewRole"
    sts = boto3.client("sts", region_name=REGION)
    account_a = assumed_client(sts, role, "ssm")
    scope = FleetScope(readers=(("111111111111", "team-a/"),))
    wire(
        aws,
        ledger,
        monkeypatch,
        fleet_role_arns=[role],
        assume_ssm=lambda arn, region: assumed_client(sts, arn, "ssm"),
        fleet_scope=scope,
    )
    team_b = make_secret(spec(root_ca, "api.b.example.internal", REVOKE_SUPERSEDED_AFTER="0"), name="team-b/api")
    team_a = make_secret(spec(root_ca, "web.a.example.internal", REVOKE_SUPERSEDED_AFTER="0"), name="team-a/web")
    first = rotate_at(aws, team_b, START)
    a_first = rotate_at(aws, team_a, START)
    intruder = "i-0a0a0a0a0a0a0a0a0"
    ledger.add_holders(team_b, first, [f"111111111111/{intruder}"], START)  # what the old code recorded
    serve(first, team_b, intruder, ssm=account_a)  # once, and never a newer team-b certificate
    serials = [first] + [rotate_at(aws, team_b, START + timedelta(days=day)) for day in range(1, 31)]
    assert revoked(root_ca).get(first) == "SUPERSEDED"
    assert set(serials[:-1]) == set(revoked(root_ca))  # every superseded one, the current one not
    assert aws.calls["acm-pca:RevokeCertificate"] == 30
    # A's hosts still hold what A may read: team-a's own old certificate, served by that host
    serve(a_first, team_a, intruder, ssm=account_a)
    rotate_at(aws, team_a, START + timedelta(days=31))
    assert a_first not in revoked(root_ca)


def test_a_holder_that_stops_reporting_is_released_after_the_documented_time_and_counted(
    aws: Any, root_ca: str, make_secret: Any, ledger: Ledger, capfd: pytest.CaptureFixture[str]
) -> None:
    """Issue 25 item 2: a host seen serving A (HeldBy) is terminated: its record vanishes, and before
    it held A for ever. It holds A until HOLDER_RELEASE_AFTER past the last time it was seen serving
    A, then A is revoked with a "released" line and RevocationHoldersReleased (alarmed). A host whose
    record stays but stopped being refreshed is released the same way."""
    arn = make_secret(spec(root_ca, REVOKE_SUPERSEDED_AFTER="0"))
    gone, silent = "i-0dead0dead0dead00", "i-0511e0511e0511e00"
    a = rotate_at(aws, arn, START)
    serve(a, arn, gone)
    serve(a, arn, silent)
    rotate_at(aws, arn, START + timedelta(days=1))  # both serve A: held, both recorded, LastServedAt day 1
    assert set(next(e for e in ledger.entries(arn) if e.serial == a).held_by) == {
        f"123456789012/{gone}",
        f"123456789012/{silent}",
    }
    reset_inventory()  # the terminated host's record is gone (SSM drops a deregistered node's inventory)
    serve(a, arn, silent, recorded_at=START + timedelta(hours=1))  # the silent host's last word, never refreshed
    rotate_at(aws, arn, START + timedelta(days=1 + HOLDER_RELEASE_AFTER.days - 1))
    assert a not in revoked(root_ca)
    capfd.readouterr()
    rotate_at(aws, arn, START + timedelta(days=2 + HOLDER_RELEASE_AFTER.days))
    assert revoked(root_ca).get(a) == "SUPERSEDED"
    out = capfd.readouterr().out
    (released,) = [m for m in emf_records(out) if "RevocationHoldersReleased" in m]
    assert released["RevocationHoldersReleased"] == [3.0]  # the silent record, and both past holders
    (line,) = [r for r in log_records(out) if "holders released" in r["message"]]
    assert line["serial"] == a and gone in line["message"] and silent in line["message"]


@pytest.mark.parametrize(
    "named",
    [
        pytest.param(lambda arn: arn, id="full-arn"),
        pytest.param(lambda arn: arn[: -len("-AbCdEf")], id="partial-arn"),
        pytest.param(lambda arn: arn.rsplit(":", 1)[1], id="name-with-suffix"),
        pytest.param(lambda arn: arn.rsplit(":", 1)[1][: -len("-AbCdEf")], id="bare-name"),
    ],
)
def test_an_unreadable_record_naming_the_secret_without_a_serial_holds_that_secret_only(
    aws: Any, root_ca: str, make_secret: Any, ledger: Ledger, capfd: pytest.CaptureFixture[str], named: Any
) -> None:
    """Issue 25 item 5: a record that names secret W (any form) but carries no Serial holds W's
    superseded certificate, with the reason and RevocationsHeld; API's is revoked."""
    web = make_secret(spec(root_ca, "web.example.internal", REVOKE_SUPERSEDED_AFTER="0"), name="web")
    api = make_secret(spec(root_ca, "api.example.internal", REVOKE_SUPERSEDED_AFTER="0"), name="api")
    web_old, api_old = rotate_at(aws, web, START), rotate_at(aws, api, START)
    record = {"SecretArn": named(web), "CertificateFile": "/etc/ssl/certs/web.pem", "Status": "installed"}
    boto3.client("ssm", REGION).put_inventory(
        InstanceId="i-0bad0bad0bad0bad2",
        Items=[
            {
                "TypeName": "Custom:CertrotateCertificate",
                "SchemaVersion": "1.0",
                "CaptureTime": "2026-03-01T00:00:00Z",
                "Content": [record],
            }
        ],
    )
    capfd.readouterr()
    rotate_at(aws, web, START + timedelta(days=1))
    rotate_at(aws, api, START + timedelta(days=1))
    assert revoked(root_ca) == {api_old: "SUPERSEDED"}
    out = capfd.readouterr().out
    (line,) = [r for r in log_records(out) if "not revoked" in r["message"]]
    assert line["serial"] == web_old and "i-0bad0bad0bad0bad2: unreadable record names this secret" in line["message"]
    (held,) = [m for m in emf_records(out) if "RevocationsHeld" in m]
    assert held["RevocationsHeld"] == [1.0]
