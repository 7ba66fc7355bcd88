"""The four rotation steps Secrets Manager calls, each short, dispatched by :data:`STEPS`.

Every step is safe to run twice, and a failing step raises before anything half-made is put.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature

from rotation import telemetry
from rotation.errors import CertRotateError, SpecError, VerificationError
from rotation.issuance.bundle import CertBundle, merge_into_secret
from rotation.issuance.certificate_authority import CaFacts, CertificateAuthorities
from rotation.issuance.issuers.base import Issuer, IssueRequest, WaitBudget
from rotation.issuance.policy import IssuancePolicy, Rule, check_issued, default_policy, fit_request, issued_facts
from rotation.issuance.spec import SECRET_VALUE_LIMIT, CertificateType, CertSpec, load_secret_fields, parse_spec
from rotation.issuance.validity import PCA_BACKDATE
from rotation.issuance.verification import (
    check_chain,
    check_end_entity,
    check_key_algorithm,
    check_key_matches,
    check_names,
    verify_bundle,
    verify_promotable,
)
from rotation.lifecycle.guard import SecretMetadata
from rotation.lifecycle.renewal import decide
from rotation.lifecycle.rotation_event import RotationEvent, Step
from rotation.lifecycle.secrets_store import SecretStore
from rotation.telemetry import logger

if TYPE_CHECKING:  # pragma: no cover - the ledger and the fleet view load only when a ledger is configured
    from rotation.fleet.ledger import Ledger
    from rotation.fleet.revoker import FleetReader


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
    #: The fleet view's evidence about some serials of a secret (rotation.fleet.revoker.fleet_reader).
    fleet: FleetReader | None = None
    #: The issuance policy (cached by its source, never fetched per step).
    policy: Callable[[], IssuancePolicy] = field(default=lambda: default_policy(None))


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

    def rule(self) -> Rule:
        """The issuance policy rule governing this secret, chosen by DescribeSecret's name and account.

        Raises:
            PolicyError: no rule governs the secret.
        """
        policy = self.services.policy()
        rule = policy.rule_for(self.metadata.name, self.secret_arn.split(":")[4])
        logger.append_keys(policy_rule=rule.name, policy=f"{policy.source}@{policy.revision or '-'}")
        return rule

    def issuing(self, spec: CertSpec) -> CertSpec:
        """The spec as this rotation issues it: a CA rollover of the policy in move, retire or done
        issues from its new CA for a spec naming the old one (the secret is not edited)."""
        issued = self.services.policy().issuing_spec(spec)
        if issued.ca_arn != spec.ca_arn:
            logger.info("CA rollover: issuing from %s for CA_ARN %s", issued.ca_arn, spec.ca_arn)
        return issued


def create_secret(ctx: StepContext) -> None:
    """Issue (or keep) a certificate per the spec and renewal policy; stage it AWSPENDING."""
    store = ctx.services.store
    if store.pending_value(ctx.secret_arn, ctx.event.token) is not None:
        logger.info("AWSPENDING already holds a value for this token; nothing to create")
        return
    fields = load_secret_fields(store.current_value(ctx.secret_arn))
    spec = ctx.issuing(parse_spec(fields))
    ctx.observe(spec)
    rule = ctx.rule()
    asked = spec.template_arn
    spec = fit_request(rule, spec, now=ctx.clock())  # before anything is issued
    if spec.template_arn != asked:
        logger.info("issuance policy allows no clientAuth: template narrowed to %s", spec.template_arn)
    ca = ctx.services.authorities.get(spec.ca_arn)
    current = _readable_bundle(fields)
    decision = decide(
        spec,
        current,
        current_fits=lambda: current is not None and _still_fits(current, spec, ca, rule),
        rotate_now=ctx.metadata.rotate_now_requested(ctx.event.token),
        now=ctx.clock(),
    )
    logger.info("renewal decision: %s (%s)", decision.plan.value, decision.reason)
    request = IssueRequest(spec, decision.plan, ctx.event.token, ctx.secret_arn, current, ca, ctx.clock(), rule)
    bundle = ctx.services.issuers[spec.certificate_type].issue(request, ctx.budget)
    issuer = bundle.issuer_arn or spec.ca_arn  # a kept bundle: the CA its chain is verified to below
    try:
        secret_string = _accepted(ctx, rule, spec, fields, bundle, ca, issuer)
    except CertRotateError as exc:
        if _fresh(bundle, current):  # issued for this rotation, then refused: kept in view
            _record(ctx, spec, bundle, issuer, refusal=f"{type(exc).__name__}: {exc}")
        raise
    fresh = _fresh(bundle, current)
    if fresh:
        _record(ctx, spec, bundle, issuer)
    elif ctx.services.ledger is not None:  # the version keeps the current certificate: say which version holds it
        ctx.services.ledger.record_kept(ctx.secret_arn, bundle.serial_hex, bundle.fingerprint_sha256, ctx.event.token)
    store.put_pending(ctx.secret_arn, ctx.event.token, secret_string)
    if fresh:
        telemetry.certificate_issued(spec.certificate_type.value, ctx.secret_arn, bundle.not_after, ctx.clock())
    logger.info(
        "staged %s certificate as AWSPENDING",
        "a new" if fresh else "the current",
        extra={"certificate": bundle.summary(), "plan": decision.plan.value},
    )


def _accepted(
    ctx: StepContext,
    rule: Rule,
    spec: CertSpec,
    fields: Mapping[str, Any],
    bundle: CertBundle,
    ca: CaFacts,
    issuer: str,
) -> str:
    """The secret value to stage, once the bundle is verified and inside the rule.

    Raises:
        CertRotateError: the bundle is refused (verification, the issuance policy, the size limit).
    """
    client_auth = rule.client_auth_allowed(spec.certificate_type)
    verify_bundle(bundle, spec, ca.certificate, ctx.clock(), handshake=False, client_auth=client_auth)
    check_issued(rule, issued_facts(bundle.certificate, issuer, spec.certificate_type))
    secret_string = json.dumps(merge_into_secret(fields, bundle))
    if len(secret_string.encode()) > SECRET_VALUE_LIMIT:
        raise SpecError(
            "SecretString",
            f"{len(secret_string.encode())} bytes",
            "the rotated secret would exceed Secrets Manager's limit",
            f"at most {SECRET_VALUE_LIMIT} bytes: fewer or shorter names",
        )
    return secret_string


def _fresh(bundle: CertBundle, current: CertBundle | None) -> bool:
    """Whether the issuer returned another certificate than the current one (an unreadable one is)."""
    if current is None:
        return True
    try:
        return bundle.fingerprint_sha256 != current.fingerprint_sha256
    except CertRotateError:
        return bundle is not current


def _record(ctx: StepContext, spec: CertSpec, bundle: CertBundle, issuer: str, *, refusal: str = "") -> None:
    """Write a certificate the CA just issued to the ledger; with ``refusal``, as refused.

    A refused certificate is never staged; the entry keeps it in view (``certrotate status``) and
    lets the revoker revoke it. One that cannot even be read is logged by its ARN instead.
    """
    ledger = ctx.services.ledger
    if refusal:
        logger.warning(
            "the issued certificate is refused and not staged: %s",
            refusal,
            extra={"certificate_arn": bundle.certificate_arn},
        )
    if ledger is None:
        return
    from rotation.fleet.revocation import IssuedCertificate

    try:
        entry = IssuedCertificate(
            secret_arn=ctx.secret_arn,
            serial=bundle.serial_hex,
            ca_arn=issuer,
            certificate_type=spec.certificate_type.value,
            version_id=ctx.event.token,
            issued_at=ctx.clock(),
            not_after=bundle.not_after,
            fingerprint=bundle.fingerprint_sha256,
        )
    except (CertRotateError, ValueError):
        logger.error(
            "an issued certificate cannot be read for the ledger", extra={"certificate_arn": bundle.certificate_arn}
        )
        return
    if refusal:
        ledger.record_refused(entry, refusal, certificate_arn=bundle.certificate_arn)
    else:
        ledger.record_issued(entry, certificate_arn=bundle.certificate_arn)


def set_secret(ctx: StepContext) -> None:
    """Nothing to push: hosts pull the certificate after finishSecret (SSM Run Command).

    Succeeds without side effects, however often Secrets Manager calls it.
    """
    logger.info("setSecret: no service to update; hosts pull the certificate after finishSecret")


def test_secret(ctx: StepContext) -> None:
    """Verify the pending bundle fully, including a TLS handshake against the CA alone."""
    spec, bundle, ca = _pending(ctx)
    rule = ctx.rule()
    # VALIDITY measured from when the CA signed it (its notBefore is backdated), not from now.
    spec = fit_request(rule, spec, now=bundle.not_before + PCA_BACKDATE)
    client_auth = rule.client_auth_allowed(spec.certificate_type)
    verify_bundle(bundle, spec, ca.certificate, ctx.clock(), handshake=True, client_auth=client_auth)
    check_issued(rule, issued_facts(bundle.certificate, _issuer(ctx, bundle, ca), spec.certificate_type))
    logger.info("pending certificate verified", extra={"certificate": bundle.summary()})


def finish_secret(ctx: StepContext) -> None:
    """Check the pending bundle cheaply, then move AWSCURRENT to it (Secrets Manager moves AWSPREVIOUS).

    finishSecret may run without a successful testSecret before it (a caller of the step, a
    pending value written by someone else): AWSCURRENT moves only to a bundle that parses, whose
    key is the certificate's, which is an end-entity certificate and chains to the CA.
    """
    spec, bundle, ca = _pending(ctx)
    rule = ctx.rule()
    verify_promotable(bundle, ca.certificate, client_auth=rule.client_auth_allowed(spec.certificate_type))
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
        from rotation.fleet.revoker import Promotion, after_promotion

        after_promotion(
            Promotion(
                ledger=services.ledger,
                secret_arn=ctx.secret_arn,
                version_id=ctx.event.token,
                serial=bundle.serial_hex,
                now=ctx.clock(),
                grace=spec.revoke_superseded_after,
                pca_for_region=services.pca_for_region,
                fleet=services.fleet,
            )
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
    spec = ctx.issuing(parse_spec(fields))
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


def _issuer(ctx: StepContext, bundle: CertBundle, ca: CaFacts) -> str:
    """The CA that issued the (chain-verified) pending certificate.

    CA_ARN when its certificate signed the leaf directly; otherwise (an ACM certificate issued by a
    subordinate of CA_ARN) the CA the ledger recorded when createSecret received it, or "" (refused).
    """
    try:
        bundle.certificate.verify_directly_issued_by(ca.certificate)
        return ca.arn
    except (ValueError, TypeError, InvalidSignature):
        pass
    ledger = ctx.services.ledger
    if ledger is None:
        return ""
    entry = ledger.entry(ctx.secret_arn, bundle.serial_hex)  # one GetItem, whatever the history
    return entry.ca_arn if entry is not None else ""


def _still_fits(current: CertBundle, spec: CertSpec, ca: CaFacts, rule: Rule) -> bool:
    try:
        check_key_matches(current)
        check_chain(current, ca.certificate)
        check_end_entity(current, client_auth=rule.client_auth_allowed(spec.certificate_type))
        check_names(current, spec)
        check_key_algorithm(current, spec)
        check_issued(rule, issued_facts(current.certificate, spec.ca_arn, spec.certificate_type))
    except CertRotateError as exc:
        logger.info("the current certificate no longer fits: %s", exc)
        return False
    return True


__all__ = ["STEPS", "Services", "StepContext"]
