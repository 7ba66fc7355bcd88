"""Issue 27: move's re-issue is paced at no more than half the issuer's quota, with moto throttling at
the documented quota, counted per emulated second (never timed), resumable and idempotent."""

from __future__ import annotations

import pytest
from cryptography import x509

from rotation.cli.bulk_reads import RateLimiter
from rotation.cli.session import AwsContext
from rotation.emulation.rollover_world import EmulatedClock, calls_of, settle
from rotation.emulation.throttling import DEFAULT_QUOTAS, throttled_moto
from rotation.rollover import phases
from rotation.rollover.aws_fleet import fleet_access
from rotation.rollover.reissue import pace, quota
from tests.support.rollover import Rig, rig, rollover_secrets

__all__ = ["rig", "rollover_secrets"]

ISSUE = ("acm-pca", "IssueCertificate")
#: The issuer's documented quotas, enforced in moto (rotation.emulation.throttling.DEFAULT_QUOTAS).
PCA_QUOTAS = {key: DEFAULT_QUOTAS[key] for key in (ISSUE, ("acm-pca", "GetCertificate"))}


@pytest.mark.parametrize("rollover_secrets", [40])
def test_forty_secrets_move_at_half_the_quota_and_a_second_run_rotates_none(rig: Rig) -> None:
    w = rig.world
    clock = EmulatedClock()
    fleet = fleet_access(
        AwsContext(None, "us-east-1", None),
        w.parameter,
        policy_ttl=0,
        limiter_for=lambda rate: RateLimiter(rate, clock=clock, sleep=clock.sleep),
    )
    phases.start(fleet, "r", w.old_ca, w.new_ca, [w.bundle])
    assert phases.advance(fleet, "r").rollover.phase.value == "prove"
    with throttled_moto(PCA_QUOTAS, clock=clock) as quotas, calls_of(*ISSUE, clock) as calls:
        started = clock()
        moved = phases.advance(fleet, "r")
        settle()
        elapsed = clock() - started
        assert moved.rollover.phase.value == "move"
        assert "re-issue from the new CA: 40 rotation(s) started" in moved.actions
        assert not rig.failures and quotas.throttled[ISSUE] == 0
        assert len(calls.stamps) == 40  # one IssueCertificate a secret: nothing retried, nothing failed
        assert calls.max_per_second() <= quota("PCA_ISSUED") / 2 and pace("PCA_ISSUED") == 12
        assert elapsed >= (40 - 1) / pace("PCA_ISSUED")  # the starts were spread over the emulated seconds

        again = phases.advance(fleet, "r")  # every leaf moved: nothing is rotated again
        settle()
        assert len(calls.stamps) == 40 and again.rollover.phase.value == "retire"
    new = x509.load_pem_x509_certificate(
        rig.aws.pca.get_certificate_authority_certificate(CertificateAuthorityArn=w.new_ca)["Certificate"].encode()
    )
    assert len(again.leaves.moved) == 40 and not again.leaves.to_move
    assert all(leaf.on_new_ca for leaf in again.leaves.moved) and new is not None


@pytest.mark.parametrize("rollover_secrets", [6])
def test_an_interrupted_move_resumes_with_the_secrets_left(rig: Rig) -> None:
    """The re-issue stops part way (the operator's command dies); the next advance starts only the rest."""
    w = rig.world
    fleet = fleet_access(AwsContext(None, "us-east-1", None), w.parameter, policy_ttl=0)
    phases.start(fleet, "r", w.old_ca, w.new_ca, [w.bundle])
    phases.advance(fleet, "r")
    rotated: list[str] = []

    def dies_after_two(arn: str) -> None:
        if len(rotated) == 2:
            raise KeyboardInterrupt
        rotated.append(arn)
        rig.aws.sm.rotate_secret(SecretId=arn)

    with pytest.raises(KeyboardInterrupt):
        phases.advance(phases.FleetAccess(**{**vars(fleet), "rotate": dies_after_two}), "r")
    settle()
    resumed: list[str] = []

    def counted(arn: str) -> None:
        resumed.append(arn)
        rig.aws.sm.rotate_secret(SecretId=arn)

    try:  # the gate holds only if the rotations just started have finished before it is checked
        phases.advance(phases.FleetAccess(**{**vars(fleet), "rotate": counted}), "r")
    except phases.GateClosed as exc:
        assert "not on the new CA yet" in str(exc)
    settle()
    assert sorted(resumed) == sorted(set(w.secrets) - set(rotated)) and len(resumed) == 4
    done = phases.status(fleet, "r")
    assert len(done.leaves.moved) == 6 and not rig.failures
