"""Issue 27: the policy's ``rollovers`` section, the redirect and widening it causes, and the rollover's
pure gates and bundle edits."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from rotation.cli import main
from rotation.fleet.trust_view import TrustReport, bundle_fingerprint
from rotation.fleet.view import HostReport, RunStatus
from rotation.issuance.policy import PolicyError, parse_policy
from rotation.issuance.policy.rollovers import ABORT_TO, NEXT, Phase
from rotation.issuance.spec import KeyFamily, parse_spec
from rotation.rollover import bundles
from rotation.rollover.gates import Leaf, bundle_hosts, old_leaves_served, reader_accounts
from rotation.rollover.reissue import estimated_seconds, pace
from tests.support.certs import LocalCA

OLD = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/0b9e7f3c-2d4a-4e8b-9f61-5c3d2a1b0e47"
NEW = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/7d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
OTHER = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/11111111-2222-4333-8444-555555555555"


def document(phase: str = "move", **rollover: object) -> dict[str, object]:
    return {
        "version": 1,
        "rules": [
            {"name": "team-a", "secrets": ["team-a/*"], "ca_arns": [OLD]},
            {"name": "team-b", "secrets": ["team-b/*"], "ca_arns": [OTHER]},
        ],
        "rollovers": [
            {
                "name": "root-2027",
                "old_ca_arn": OLD,
                "new_ca_arn": NEW,
                "bundles": ["partners"],
                "phase": phase,
                "changed_at": "2026-12-01T10:00:00Z",
                **rollover,
            }
        ],
    }


def spec_fields(ca: str = OLD, **extra: str) -> dict[str, str]:
    return {"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": ca, "COMMON_NAME": "a.example", **extra}


@pytest.mark.parametrize("phase", [p.value for p in Phase])
def test_the_rule_accepts_the_new_ca_and_issuance_moves_to_it_only_from_move_on(phase: str) -> None:
    policy = parse_policy(json.dumps(document(phase)))
    rule = policy.rule_for("team-a/web", "111122223333")
    spec = policy.issuing_spec(parse_spec(spec_fields(SIGNING_ALGORITHM="SHA384WITHRSA")))
    moving = phase in ("move", "retire", "done")
    assert (NEW in rule.ca_arns) is moving and OLD in rule.ca_arns
    assert spec.ca_arn == (NEW if moving else OLD)
    # the new CA's key decides the signature's family; the spec's hash and key settings stay
    assert spec.signing_family is (None if moving else KeyFamily.RSA)
    assert spec.signing_hash.value == "sha384"
    assert NEW not in policy.rule_for("team-b/web", "111122223333").ca_arns  # a rule without the old CA


def test_a_writer_naming_another_ca_is_not_redirected() -> None:
    policy = parse_policy(json.dumps(document()))
    assert policy.issuing_spec(parse_spec(spec_fields(OTHER))).ca_arn == OTHER


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"phase": "moving"}, "rollovers[0].phase"),
        ({"new_ca_arn": OLD}, "rollovers[0].new_ca_arn"),
        ({"old_ca_arn": "arn:aws:acm-pca:us-east-1:1:certificate-authority/x"}, "rollovers[0].old_ca_arn"),
        ({"bundles": ["../etc"]}, "rollovers[0].bundles"),
        ({"changed_at": "yesterday"}, "rollovers[0].changed_at"),
        ({"owner": "me"}, "rollovers[0].owner"),
    ],
)
def test_an_invalid_rollover_names_its_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(json.dumps(document(**change)))  # type: ignore[arg-type]
    assert caught.value.field == field


def test_two_live_rollovers_of_one_ca_and_a_cycle_are_refused() -> None:
    twice = document()
    twice["rollovers"].append({**twice["rollovers"][0], "name": "again", "new_ca_arn": OTHER})  # type: ignore[union-attr]
    with pytest.raises(PolicyError, match="already moves this CA"):
        parse_policy(json.dumps(twice))
    aborted = json.loads(json.dumps(twice))
    aborted["rollovers"][0]["phase"] = "aborted"
    assert len(parse_policy(json.dumps(aborted)).rollovers) == 2
    loop = document()
    loop["rollovers"].append({**loop["rollovers"][0], "name": "back", "old_ca_arn": NEW, "new_ca_arn": OLD})  # type: ignore[union-attr]
    with pytest.raises(PolicyError, match="back to itself"):
        parse_policy(json.dumps(loop))


def test_policy_validate_accepts_and_round_trips_the_rollovers(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document("prove")))
    assert main(["policy", "validate", str(path), "--output", "json"]) == 0
    printed = capfd.readouterr().out
    assert json.loads(printed)["rollovers"][0]["phase"] == "prove"
    again = tmp_path / "again.json"
    again.write_text(printed)
    assert parse_policy(printed) == parse_policy(path.read_text())  # the same policy, rollovers included
    assert main(["policy", "validate", str(again)]) == 0
    assert "CA rollover root-2027: prove" in capfd.readouterr().out


def test_the_phase_tables() -> None:
    order = [Phase.PLANNED]
    while order[-1] in NEXT:
        order.append(NEXT[order[-1]])
    assert [p.value for p in order] == ["planned", "add", "prove", "move", "retire", "done"]
    assert ABORT_TO[Phase.MOVE] is Phase.PROVE and ABORT_TO[Phase.RETIRE] is Phase.MOVE
    assert Phase.DONE not in ABORT_TO and ABORT_TO[Phase.ADD] is Phase.ABORTED


def test_bundle_edits_are_idempotent_and_the_fingerprint_is_what_hosts_report() -> None:
    old, new = LocalCA(name="old root"), LocalCA(name="new root")
    text = old.certificate.public_bytes(serialization.Encoding.PEM).decode()
    both = bundles.with_ca(text, new.certificate)
    assert bundles.with_ca(both, new.certificate) == both
    assert [c.subject for c in bundles.certificates(both)] == [old.certificate.subject, new.certificate.subject]
    assert bundles.without_ca(bundles.without_ca(both, old.certificate), old.certificate) == bundles.with_ca(
        "", new.certificate
    )
    crlf = both.replace("\n", "\r\n")
    assert bundle_fingerprint(crlf) == bundle_fingerprint(both) == bundles.Bundle("p", "arn", both).fingerprint


def test_reader_accounts_come_from_the_bundles_resource_policy() -> None:
    policy = {
        "Statement": [
            {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": ["secretsmanager:PutSecretValue"]},
            {
                "Effect": "Allow",
                "Principal": {"AWS": ["arn:aws:iam::444455556666:role/x", "777788889999"]},
                "Action": "secretsmanager:GetSecretValue",
            },
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
                "Action": "secretsmanager:Describe*",
            },
        ]
    }
    assert reader_accounts(json.dumps(policy), "111122223333") == {"111122223333", "444455556666", "777788889999"}
    assert reader_accounts(None, "111122223333") == {"111122223333"}
    assert reader_accounts("not json", "111122223333") == {"111122223333"}
    anyone = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "secretsmanager:*"}]}
    assert reader_accounts(json.dumps(anyone), "111122223333") is None


def trust(
    account: str,
    instance: str,
    fingerprint: str,
    arn: str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:certrotate/trust-bundles/partners-AbCdEf",
) -> TrustReport:
    return TrustReport(account, instance, "partners", arn, fingerprint, "/f", "installed", "0", "", "t", "t")


def test_bundle_hosts_count_only_readers_and_the_bundle_named() -> None:
    arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:certrotate/trust-bundles/partners-AbCdEf"
    reports = [
        trust("111122223333", "i-1", "new"),
        trust("444455556666", "i-2", "old"),
        trust("999999999999", "i-2", "new"),  # an outsider naming a reader's instance id
        trust("999999999999", "i-3", "old"),
        trust("111122223333", "i-4", "old", arn="arn:aws:secretsmanager:us-east-1:111122223333:secret:other"),
    ]
    progress = bundle_hosts(reports, {"partners": (arn, "new")}, lambda a, b: a != "999999999999")
    assert progress.done == ("111122223333/i-1/partners",)
    assert [lag.host for lag in progress.lagging] == ["444455556666/i-2"] and not progress.proven
    assert len(progress.ignored) == 2


def test_a_host_serving_another_leaf_of_a_moved_secret_holds_retire() -> None:
    moved = Leaf("arn:aws:secretsmanager:us-east-1:1:secret:a-AbCdEf", "a", "PCA_ISSUED", "0A", "ff" * 32, True)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    serving = HostReport("1", "i-1", moved.arn, "/c", RunStatus("installed"), 0, now, "0B", "ee" * 32)
    assert len(old_leaves_served([serving], [moved])) == 1
    assert old_leaves_served([replace(serving, serial="0A", fingerprint="ff" * 32)], [moved]) == []
    assert pace("PCA_ISSUED") == 12 and pace("ACM_ISSUED") == 2 and pace("SOMETHING") == 2
    assert estimated_seconds([moved] * 24 + [replace(moved, certificate_type="ACM_ISSUED")] * 4) == 4.0


def test_a_chained_rollover_counts_the_secrets_an_earlier_one_moved_onto_its_old_ca() -> None:
    """A -> B done, then B -> C: secrets still naming A issue from B, so B -> C must move them too."""
    from rotation.cli.inventory import SecretRecord
    from rotation.issuance.policy.rollovers import Rollover
    from rotation.rollover.aws_fleet import classify

    a_to_b = Rollover("first", OTHER, OLD, ("partners",), Phase.DONE)
    b_to_c = Rollover("second", OLD, NEW, ("partners",), Phase.MOVE)
    b, c = LocalCA(name="B"), LocalCA(name="C")
    on_b = b.issue(["a.example"]).certificate_pem
    records = [
        SecretRecord("names-a", "arn:a", {}, {**spec_fields(OTHER), "CERTIFICATE_PEM": on_b}),
        SecretRecord("names-b", "arn:b", {}, {**spec_fields(OLD), "CERTIFICATE_PEM": on_b}),
        SecretRecord("names-c", "arn:c", {}, spec_fields(NEW)),
    ]
    leaves = classify(records, b_to_c, b.certificate, c.certificate, [a_to_b, b_to_c])
    assert [(leaf.name, leaf.on_old_ca, leaf.on_new_ca) for leaf in leaves] == [
        ("names-a", True, False),
        ("names-b", True, False),
    ]
    assert [leaf.name for leaf in classify(records, b_to_c, b.certificate, c.certificate)] == ["names-b"]
