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
