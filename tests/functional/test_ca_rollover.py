"""Issue 27 items 2-4: a CA rollover in phases the fleet gates, driven by ``certrotate ca-rollover``.

moto in process: the rotation function runs on RotateSecret (rotation_function_in_moto) and reads the
issuance policy parameter on every step; hosts' records are put as the installer puts them
(``Custom:CertrotateTrustBundle``, ``Custom:CertrotateCertificate``) into the emulated SSM inventory.
The old CA is RSA and the new one EC: the algorithm change is the same flow.
"""

from __future__ import annotations

import json

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from rotation.emulation import rotation_service
from rotation.emulation.rollover_world import settle
from rotation.fleet.trust_view import bundle_fingerprint
from rotation.rollover.bundles import certificates
from tests.support.rollover import OUTSIDER, READER, Rig, put_served, put_trust, rig, role, rollover_secrets, trust_record

__all__ = ["rig", "rollover_secrets"]

HOST_A, HOST_B = "i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2"


def ca_cert(rig: Rig, arn: str) -> x509.Certificate:
    pem = rig.aws.pca.get_certificate_authority_certificate(CertificateAuthorityArn=arn)["Certificate"]
    return x509.load_pem_x509_certificate(pem.encode())


def leaf(rig: Rig, arn: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(rig.secret_fields(arn)["CERTIFICATE_PEM"].encode())


def issued_by(certificate: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(ca)
    except Exception:
        return False
    return True


def start_args(rig: Rig, name: str) -> list[str]:
    w = rig.world
    return ["start", name, "--old-ca", w.old_ca, "--new-ca", w.new_ca, "--bundle", w.bundle]


def test_a_rollover_moves_the_fleet_through_every_phase_rsa_to_ec(rig: Rig) -> None:
    w = rig.world
    old, new = ca_cert(rig, w.old_ca), ca_cert(rig, w.new_ca)
    before = bundle_fingerprint(rig.bundle_pem())
    for host in (HOST_A, HOST_B):
        put_trust(rig.ssm, host, trust_record(w, before))

    code, planned, _ = rig.cli("plan", "root-2027", "--old-ca", w.old_ca, "--new-ca", w.new_ca, "--bundle", w.bundle)
    assert code == 0 and planned["rollover"]["phase"] == "planned"
    assert planned["leaves"] == {"moved": 0, "to_move": 4, "to_move_names": planned["leaves"]["to_move_names"],
                                 "rotating": 0}
    assert rig.bundle_pem() and bundle_fingerprint(rig.bundle_pem()) == before  # plan writes nothing

    code, started, _ = rig.cli(*start_args(rig, "root-2027"))
    assert code == 0 and started["rollover"]["phase"] == "add"
    assert [c.subject for c in certificates(rig.bundle_pem())] == [old.subject, new.subject]
    code, proving, _ = rig.cli("advance", "root-2027")
    assert code == 0 and proving["rollover"]["phase"] == "prove"

    # Both hosts still report the bundle of before: prove holds, both named.
    code, refused, err = rig.cli("advance", "root-2027")
    assert code == 1 and refused["rollover"]["phase"] == "prove"
    assert HOST_A in err and HOST_B in err and "lag" in err
    # Host A installs the new bundle; host B is stopped (its record stays as it was).
    after_add = bundle_fingerprint(rig.bundle_pem())
    put_trust(rig.ssm, HOST_A, trust_record(w, after_add))
    code, stuck, err = rig.cli("status", "root-2027", "--check")
    assert code == 1 and [lag["host"] for lag in stuck["hosts"]["lagging"]] == [f"123456789012/{HOST_B}"]
    assert HOST_B in err and HOST_A not in err
    code, _, err = rig.cli("advance", "root-2027")
    assert code == 1 and HOST_B in err
    assert all(issued_by(leaf(rig, arn), old) for arn in w.secrets)  # nothing moved while a host lags

    put_trust(rig.ssm, HOST_B, trust_record(w, after_add))  # host B is back and converged
    code, moving, _ = rig.cli("advance", "root-2027")
    assert code == 0 and moving["rollover"]["phase"] == "move"
    settle()
    assert not rig.failures
    for arn in w.secrets:
        certificate = leaf(rig, arn)
        assert issued_by(certificate, new) and not issued_by(certificate, old)
        assert isinstance(certificate.public_key(), ec.EllipticCurvePublicKey)  # the spec's key
        assert certificate.signature_algorithm_oid == x509.oid.SignatureAlgorithmOID.ECDSA_WITH_SHA256  # new CA's
        assert rig.secret_fields(arn)["CA_ARN"] == w.old_ca  # no secret was edited

    # A host still serving an old leaf keeps the old CA in the bundles.
    first = rig.secret_fields(w.secrets[0])
    old_serial = "0A1B2C"
    put_served(rig.ssm, HOST_A, w.secrets[0], old_serial, "ab" * 32)
    code, _, err = rig.cli("advance", "root-2027")
    assert code == 1 and "old leaf" in err and HOST_A in err
    put_served(rig.ssm, HOST_A, w.secrets[0], first["CERTIFICATE_SERIAL"], first["CERTIFICATE_FINGERPRINT_SHA256"])
    code, retiring, _ = rig.cli("advance", "root-2027")
    assert code == 0 and retiring["rollover"]["phase"] == "retire"
    assert [c.subject for c in certificates(rig.bundle_pem())] == [new.subject]

    code, _, err = rig.cli("advance", "root-2027")  # hosts still have the two-CA bundle
    assert code == 1 and HOST_A in err
    final = bundle_fingerprint(rig.bundle_pem())
    for host in (HOST_A, HOST_B):
        put_trust(rig.ssm, host, trust_record(w, final))
    code, done, _ = rig.cli("advance", "root-2027")
    assert code == 0 and done["rollover"]["phase"] == "done" and done["can_advance"] is False

    # After the rollover the secret's next rotation still issues from the new CA.
    rotation_service.rotate(w.secrets[1])
    assert issued_by(leaf(rig, w.secrets[1]), new)
    code, _, err = rig.cli("advance", "root-2027")
    assert code == 3 and "done" in err


def test_abort_in_each_phase_returns_to_the_state_before_it(rig: Rig) -> None:
    """add: the new CA leaves the bundle; move: the leaves go back to the old CA (re-issued) and the
    rotation issues from it again; retire: the old CA is back in the bundle."""
    w = rig.world
    old, new = ca_cert(rig, w.old_ca), ca_cert(rig, w.new_ca)
    original = rig.bundle_pem()

    assert rig.cli(*start_args(rig, "try-1"))[0] == 0
    code, aborted, _ = rig.cli("abort", "try-1")
    assert code == 0 and aborted["rollover"]["phase"] == "aborted"
    assert certificates(rig.bundle_pem()) == certificates(original)
    assert rig.cli("abort", "try-1")[0] == 3  # nothing left to abort

    assert rig.cli(*start_args(rig, "try-2"))[0] == 0
    assert rig.cli("advance", "try-2")[1]["rollover"]["phase"] == "prove"  # no host installs the bundle yet
    assert rig.cli("advance", "try-2")[1]["rollover"]["phase"] == "move"
    settle()
    assert all(issued_by(leaf(rig, arn), new) for arn in w.secrets)
    code, back, _ = rig.cli("abort", "try-2")
    assert code == 0 and back["rollover"]["phase"] == "prove"
    assert any("re-issue from the old CA: 4 rotation(s) started" in a for a in back["actions"])
    settle()
    assert not rig.failures
    assert all(issued_by(leaf(rig, arn), old) for arn in w.secrets)
    rotation_service.rotate(w.secrets[0])  # in prove the rotation issues from the old CA again
    assert issued_by(leaf(rig, w.secrets[0]), old)
    code, gone, _ = rig.cli("abort", "try-2")  # the leaves are back: now the new CA may leave the bundle
    assert code == 0 and gone["rollover"]["phase"] == "aborted"
    assert certificates(rig.bundle_pem()) == certificates(original)

    assert rig.cli(*start_args(rig, "try-3"))[0] == 0
    for phase in ("prove", "move"):
        assert rig.cli("advance", "try-3")[1]["rollover"]["phase"] == phase
    settle()
    code, retiring, _ = rig.cli("advance", "try-3")
    assert code == 0 and retiring["rollover"]["phase"] == "retire"
    assert [c.subject for c in certificates(rig.bundle_pem())] == [new.subject]
    code, moving, _ = rig.cli("abort", "try-3")
    assert code == 0 and moving["rollover"]["phase"] == "move"
    assert {c.subject for c in certificates(rig.bundle_pem())} == {old.subject, new.subject}
    assert all(issued_by(leaf(rig, arn), new) for arn in w.secrets)  # retire's abort leaves the leaves moved


def test_abort_of_prove_waits_while_leaves_are_still_on_the_new_ca(rig: Rig) -> None:
    """After an aborted move, the new CA stays in the bundles until every leaf is back on the old CA."""
    w = rig.world
    assert rig.cli(*start_args(rig, "r"))[0] == 0
    rig.cli("advance", "r")
    rig.cli("advance", "r")
    settle()
    rig.aws.sm.put_secret_value(  # a rotation under way: Secrets Manager refuses another RotateSecret
        SecretId=w.secrets[0], SecretString=json.dumps(rig.secret_fields(w.secrets[0])), VersionStages=["AWSPENDING"]
    )
    code, back, _ = rig.cli("abort", "r")
    assert code == 0 and back["rollover"]["phase"] == "prove"
    settle()
    code, refused, err = rig.cli("abort", "r")
    assert code == 1 and "team-a/web-0000" in err and "still hold a new-CA leaf" in err
    assert refused["rollover"]["phase"] == "prove"
    assert len(certificates(rig.bundle_pem())) == 2


def test_a_secret_writer_cannot_move_the_rollover_or_point_the_rotation_at_another_ca(rig: Rig) -> None:
    """The rollover's state is the policy parameter: nothing a secret's writer writes (the secret's
    value, its tags) is read for it, and the new CA is accepted only once the operator's rollover is
    in move, for the rules that allow the old CA; any other CA stays refused."""
    from rotation.emulation.pki import create_ca
    from rotation.issuance.policy import PolicyError

    w = rig.world
    old, new = ca_cert(rig, w.old_ca), ca_cert(rig, w.new_ca)
    assert rig.cli(*start_args(rig, "r"))[0] == 0
    assert rig.cli("advance", "r")[1]["rollover"]["phase"] == "prove"
    victim, other = w.secrets[0], w.secrets[1]
    before = leaf(rig, victim)

    # In prove the new CA is not the writer's to choose: refused before anything is issued.
    rig.aws.sm.put_secret_value(SecretId=victim, SecretString=json.dumps({**rig.secret_fields(victim),
                                                                          "CA_ARN": w.new_ca}))
    try:
        rotation_service.rotate(victim)
    except PolicyError as exc:
        assert "CA_ARN" in str(exc)
    else:
        raise AssertionError("a writer's CA_ARN outside the rule was issued")
    # What a writer can write about the rollover (fields, tags) is never read.
    fields = {**rig.secret_fields(other), "rollovers": [{"name": "r", "phase": "move"}], "ROLLOVER_PHASE": "move"}
    rig.aws.sm.put_secret_value(SecretId=other, SecretString=json.dumps(fields))
    rig.aws.sm.tag_resource(SecretId=other, Tags=[{"Key": "certrotate:rollover", "Value": "r=move"}])
    code, still, _ = rig.cli("status", "r")
    assert code == 0 and still["rollover"]["phase"] == "prove"
    rotation_service.rotate(other)
    assert issued_by(leaf(rig, other), old) and not issued_by(leaf(rig, other), new)

    # In move, a CA outside the policy is still refused, whatever the rollover.
    assert rig.cli("advance", "r")[1]["rollover"]["phase"] == "move"
    settle()
    third = w.secrets[2]
    moved = leaf(rig, third)
    assert issued_by(moved, new)
    stranger = create_ca(rig.aws.pca, key="EC", name="not in the policy")
    rig.aws.sm.put_secret_value(SecretId=third, SecretString=json.dumps({**rig.secret_fields(third),
                                                                         "CA_ARN": stranger}))
    try:
        rotation_service.rotate(third)
    except PolicyError as exc:
        assert "CA_ARN" in str(exc)
    else:
        raise AssertionError("a CA outside the policy was issued from during a rollover")
    assert leaf(rig, third).serial_number == moved.serial_number
    assert issued_by(leaf(rig, victim), old) and leaf(rig, victim).serial_number == before.serial_number


def test_records_of_another_account_neither_pass_nor_hold_prove(rig: Rig) -> None:
    """Hosts are read in each account (FleetViewRole); only accounts the bundle's resource policy lets
    read it count. An outsider's records naming a reader's instance id are the outsider's own hosts."""
    w = rig.world
    assert rig.cli(*start_args(rig, "r"))[0] == 0
    rig.cli("advance", "r")
    after_add = bundle_fingerprint(rig.bundle_pem())
    before = bundle_fingerprint(certificates_text(rig, w.old_ca))
    reader, outsider = rig.account_ssm(READER), rig.account_ssm(OUTSIDER)
    put_trust(reader, HOST_A, trust_record(w, before))  # the reader's host lags
    put_trust(outsider, HOST_A, trust_record(w, after_add))  # forged: "i-…1 is done"
    put_trust(outsider, HOST_B, trust_record(w, before))  # and a host that would hold the rollover
    roles = ["--role-arn", role(READER), "--role-arn", role(OUTSIDER)]

    code, status, _ = rig.cli("status", "r", *roles)
    assert code == 0
    assert [lag["host"] for lag in status["hosts"]["lagging"]] == [f"{READER}/{HOST_A}"]
    assert all(OUTSIDER in line for line in status["hosts"]["ignored"]) and len(status["hosts"]["ignored"]) == 2
    code, _, err = rig.cli("advance", "r", *roles)
    assert code == 1 and f"{READER}/{HOST_A}" in err and OUTSIDER not in err

    put_trust(reader, HOST_A, trust_record(w, after_add))
    code, moving, _ = rig.cli("advance", "r", *roles)
    assert code == 0 and moving["rollover"]["phase"] == "move"  # the outsider's lagging host held nothing


def certificates_text(rig: Rig, ca_arn: str) -> str:
    return str(rig.aws.pca.get_certificate_authority_certificate(CertificateAuthorityArn=ca_arn)["Certificate"])
