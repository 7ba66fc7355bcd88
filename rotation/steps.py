"""The four rotation steps Secrets Manager calls, each short, dispatched by :data:`STEPS`.

Every step is safe to run twice, and a failing step raises before anything half-made is put.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rotation import telemetry
from rotation.bundle import CertBundle, merge_into_secret
from rotation.certificate_authority import CaFacts, CertificateAuthorities
from rotation.errors import CertRotateError, SpecError, VerificationError
from rotation.guard import SecretMetadata
from rotation.issuers.base import Issuer, IssueRequest, WaitBudget
from rotation.ledger import Ledger
from rotation.renewal import decide
from rotation.revocation import IssuedCertificate
from rotation.revoker import FleetReader, after_promotion
from rotation.rotation_event import RotationEvent, Step
from rotation.secrets_store import SecretStore
from rotation.spec import SECRET_VALUE_LIMIT, CertificateType, CertSpec, load_secret_fields, parse_spec
from rotation.telemetry import logger
from rotation.verification import (
    check_chain,
    check_end_entity,
    check_key_algorithm,
    check_key_matches,
    check_names,
    verify_bundle,
    verify_promotable,
)


@dataclass(frozen=True)
class Services:
    """The adapters a rotation uses; tests hand in ones built on moto clients."""

    store: SecretStore
    authorities: CertificateAuthorities
    issuers: Mapping[CertificateType, Issuer]
    #: The issuance ledger (None: no history kept, nothing revoked).
    ledger: Ledger | None = None
    #: Private CA client per region, for RevokeCertificate.
    pca_for_region: Callable[[str], Any] | None = None
    #: The fleet view's evidence about some serials of a secret (rotation.revoker.fleet_reader).
    fleet: FleetReader | None = None


@dataclass(frozen=True)
class StepContext:
    event: RotationEvent
    metadata: SecretMetadata
    services: Services
    clock: Callable[[], datetime]
    budget: WaitBudget
    observe: Callable[[CertSpec], None]

    @property
    def secret_arn(self) -> str:
        return self.metadata.arn


def create_secret(ctx: StepContext) -> None:
    """Issue (or keep) a certificate per the spec and renewal policy; stage it AWSPENDING."""
    store = ctx.services.store
    if store.pending_value(ctx.secret_arn, ctx.event.token) is not None:
        logger.info("AWSPENDING already holds a value for this token; nothing to create")
        return
    fields = load_secret_fields(store.current_value(ctx.secret_arn))
    spec = parse_spec(fields)
    ctx.observe(spec)
    ca = ctx.services.authorities.get(spec.ca_arn)
    current = _readable_bundle(fields)
    decision = decide(
        spec,
        current,
        current_fits=lambda: current is not None and _still_fits(current, spec, ca),
        rotate_now=ctx.metadata.rotate_now_requested(ctx.event.token),
        now=ctx.clock(),
    )
    logger.info("renewal decision: %s (%s)", decision.plan.value, decision.reason)
    request = IssueRequest(spec, decision.plan, ctx.event.token, ctx.secret_arn, current, ca, ctx.clock())
    bundle = ctx.services.issuers[spec.certificate_type].issue(request, ctx.budget)
    verify_bundle(bundle, spec, ca.certificate, ctx.clock(), handshake=False)
    secret_string = json.dumps(merge_into_secret(fields, bundle))
    if len(secret_string.encode()) > SECRET_VALUE_LIMIT:
        raise SpecError(
            "SecretString",
            f"{len(secret_string.encode())} bytes",
            "the rotated secret would exceed Secrets Manager's limit",
            f"at most {SECRET_VALUE_LIMIT} bytes: fewer or shorter names",
        )
    fresh = current is None or bundle.fingerprint_sha256 != current.fingerprint_sha256
    if fresh and ctx.services.ledger is not None:
        ctx.services.ledger.record_issued(
            IssuedCertificate(
                secret_arn=ctx.secret_arn,
                serial=bundle.serial_hex,
                ca_arn=spec.ca_arn,
                certificate_type=spec.certificate_type.value,
                version_id=ctx.event.token,
                issued_at=ctx.clock(),
                not_after=bundle.not_after,
                fingerprint=bundle.fingerprint_sha256,
            )
        )
    store.put_pending(ctx.secret_arn, ctx.event.token, secret_string)
    if fresh:
        telemetry.certificate_issued(spec.certificate_type.value, ctx.secret_arn, bundle.not_after, ctx.clock())
    logger.info(
        "staged %s certificate as AWSPENDING",
        "a new" if fresh else "the current",
        extra={"certificate": bundle.summary(), "plan": decision.plan.value},
    )


def set_secret(ctx: StepContext) -> None:
    """Nothing to push: hosts pull the certificate after finishSecret (SSM Run Command).

    Succeeds without side effects, however often Secrets Manager calls it.
    """
    logger.info("setSecret: no service to update; hosts pull the certificate after finishSecret")


def test_secret(ctx: StepContext) -> None:
    """Verify the pending bundle fully, including a TLS handshake against the CA alone."""
    spec, bundle, ca = _pending(ctx)
    verify_bundle(bundle, spec, ca.certificate, ctx.clock(), handshake=True)
    logger.info("pending certificate verified", extra={"certificate": bundle.summary()})


def finish_secret(ctx: StepContext) -> None:
    """Check the pending bundle cheaply, then move AWSCURRENT to it (Secrets Manager moves AWSPREVIOUS).

    finishSecret may run without a successful testSecret before it (a caller of the step, a
    pending value written by someone else): AWSCURRENT moves only to a bundle that parses, whose
    key is the certificate's, which is an end-entity certificate and chains to the CA.
    """
    spec, bundle, ca = _pending(ctx)
    verify_promotable(bundle, ca.certificate)
    current = ctx.metadata.version_with("AWSCURRENT")
    ctx.services.store.promote(ctx.secret_arn, ctx.event.token, current)
    logger.info("AWSCURRENT moved to the new version", extra={"previous_version": current})
    _after_promotion(ctx, spec, bundle)


def _after_promotion(ctx: StepContext, spec: CertSpec, bundle: CertBundle) -> None:
    """Record the promotion in the ledger, then revoke superseded certificates past their grace.

    The rotation has succeeded by now: a failure here is logged and counted, never raised (a retry
    of finishSecret would find the version current and stop before this).
    """
    services = ctx.services
    if services.ledger is None:
        return
    try:
        after_promotion(
            services.ledger,
            services.pca_for_region,
            services.fleet,
            ctx.secret_arn,
            ctx.event.token,
            bundle.serial_hex,
            ctx.clock(),
            spec.revoke_superseded_after,
        )
    except CertRotateError as exc:
        telemetry.revocation_failed()
        logger.error("superseded revocation failed: %s", exc, extra={"error_type": type(exc).__name__})


STEPS: dict[Step, Callable[[StepContext], None]] = {
    Step.CREATE: create_secret,
    Step.SET: set_secret,
    Step.TEST: test_secret,
    Step.FINISH: finish_secret,
}


def _pending(ctx: StepContext) -> tuple[CertSpec, CertBundle, CaFacts]:
    """The AWSPENDING version's spec, bundle and CA.

    Raises:
        VerificationError: the version has no value or no certificate.
        SpecError: the value is not a valid specification.
    """
    value = ctx.services.store.pending_value(ctx.secret_arn, ctx.event.token)
    if value is None:
        raise VerificationError("pending", f"version {ctx.event.token} has no value staged AWSPENDING")
    fields = load_secret_fields(value)
    spec = parse_spec(fields)
    ctx.observe(spec)
    bundle = CertBundle.from_fields(fields)
    if bundle is None:
        raise VerificationError("pending", "the AWSPENDING version holds no certificate")
    return spec, bundle, ctx.services.authorities.get(spec.ca_arn)


def _readable_bundle(fields: Mapping[str, Any]) -> CertBundle | None:
    """The current bundle, or None when it is absent or unreadable (then a new one is issued)."""
    try:
        bundle = CertBundle.from_fields(fields)
        if bundle is not None:
            _ = bundle.certificate, bundle.chain  # the key is parsed only if the plan needs it
        return bundle
    except VerificationError as exc:
        logger.warning("the current bundle is unreadable (%s); issuing a new certificate", exc.check)
        return None


def _still_fits(current: CertBundle, spec: CertSpec, ca: CaFacts) -> bool:
    try:
        check_key_matches(current)
        check_chain(current, ca.certificate)
        check_end_entity(current)
        check_names(current, spec)
        check_key_algorithm(current, spec)
    except CertRotateError as exc:
        logger.info("the current certificate no longer fits: %s", exc)
        return False
    return True


__all__ = ["STEPS", "Services", "StepContext"]
