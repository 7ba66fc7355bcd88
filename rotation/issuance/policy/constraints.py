"""The issuance policy's constraints: one per thing a rule limits, each reporting its own violations. Pure.

Modelled on cert-manager approver-policy's ``pkg/approver`` constraints: every constraint looks at
the request (and, where it can be seen in a certificate, at the issued certificate) on its own and
returns every violation it finds, so the evaluator (:mod:`rotation.issuance.policy.evaluator`)
reports them all at once. :data:`CONSTRAINTS` is the one table the pre-issue check, the post-issue
check, the template narrowing and ``certrotate policy validate``'s one-line summary all read: a new
rule attribute is one :class:`Constraint` here (and its key in :class:`~rotation.issuance.policy.rules.Rule`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from rotation.issuance.policy.issued import IssuedFacts
from rotation.issuance.policy.rules import ACM_PRIVATE_VALIDITY_DAYS, PolicyError, Rule
from rotation.issuance.spec import END_ENTITY_TEMPLATES, CertificateType, CertSpec, KeyAlgorithm
from rotation.issuance.validity import PCA_BACKDATE, describe, lifetime_beyond_backdate, requested_lifetime

Violations = Iterator[PolicyError]
_SERVER_ONLY_PREFIX = "EndEntityServerAuthCertificate"
_SERVER_AND_CLIENT_PREFIX = "EndEntityCertificate"


def _none_requested(rule: Rule, spec: CertSpec, now: datetime) -> Violations:
    yield from ()


def _none_issued(rule: Rule, facts: IssuedFacts) -> Violations:
    yield from ()


def _unchanged(rule: Rule, spec: CertSpec) -> CertSpec:
    return spec


@dataclass(frozen=True)
class Constraint:
    """One thing a rule limits."""

    #: The rule's attribute(s) it reads, as the policy document names them.
    keys: tuple[str, ...]
    #: What the rule allows, in a few words (``certrotate policy validate``'s summary line).
    allows: Callable[[Rule], str]
    #: Every violation of a request, before anything is issued.
    requested: Callable[[Rule, CertSpec, datetime], Violations] = _none_requested
    #: Every violation of an issued certificate (testSecret), for what a certificate shows.
    issued: Callable[[Rule, IssuedFacts], Violations] = _none_issued
    #: The request as the rule lets it be issued, once it has no violation (a template narrowed).
    narrow: Callable[[Rule, CertSpec], CertSpec] = _unchanged


def violation(rule: Rule, field_name: str, value: object, problem: str, allowed: Iterable[str] | str) -> PolicyError:
    """A refusal naming the field, the value, the rule and what the rule allows."""
    return PolicyError(field_name, value, f"{problem} (issuance policy rule {rule.name!r})", allowed)


# --- CERTIFICATE_TYPE ACM_ISSUED ----------------------------------------------------------------


def _acm_requested(rule: Rule, spec: CertSpec, now: datetime) -> Violations:
    if spec.certificate_type is not CertificateType.ACM_ISSUED:
        return
    value = spec.certificate_type.value
    if not rule.acm_issued:
        yield violation(rule, "CERTIFICATE_TYPE", value, "ACM_ISSUED is not allowed", ["PCA_ISSUED"])
    if rule.max_validity_days < ACM_PRIVATE_VALIDITY_DAYS:
        yield violation(
            rule,
            "CERTIFICATE_TYPE",
            value,
            f"ACM's private certificates live {ACM_PRIVATE_VALIDITY_DAYS} days, longer than the rule allows",
            f"PCA_ISSUED with VALIDITY of at most {rule.max_validity_days} days",
        )


# --- CA_ARN -------------------------------------------------------------------------------------


def _ca_requested(rule: Rule, spec: CertSpec, now: datetime) -> Violations:
    if not rule.allows_ca(spec.ca_arn):
        yield violation(rule, "CA_ARN", spec.ca_arn, "this CA is not allowed", rule.ca_arns or "no CA")


def _ca_issued(rule: Rule, facts: IssuedFacts) -> Violations:
    if not facts.issuer_arn or not rule.allows_ca(facts.issuer_arn):
        yield violation(
            rule, "CA_ARN", facts.issuer_arn or None, "the certificate's issuer is not allowed", rule.ca_arns
        )


# --- how many names, and which ------------------------------------------------------------------


def _name_count_requested(rule: Rule, spec: CertSpec, now: datetime) -> Violations:
    if len(spec.names) > rule.max_names:
        yield violation(
            rule,
            "SUBJECT_ALTERNATIVE_NAMES",
            f"{len(spec.names)} names",
            "too many names",
            f"at most {rule.max_names} names (COMMON_NAME included)",
        )


def _name_count_issued(rule: Rule, facts: IssuedFacts) -> Violations:
    if len(facts.names) > rule.max_names:
        yield violation(
            rule, "CERTIFICATE_PEM", f"{len(facts.names)} names", "too many names", f"at most {rule.max_names}"
        )


def _names_requested(rule: Rule, spec: CertSpec, now: datetime) -> Violations:
    for name in spec.names:
        if not rule.allows_name(name):
            field_name = "COMMON_NAME" if name == spec.common_name.lower() else "SUBJECT_ALTERNATIVE_NAMES"
            yield violation(rule, field_name, name, "this name is not allowed", _name_allowance(rule))


def _names_issued(rule: Rule, facts: IssuedFacts) -> Violations:
    for name in facts.names:
        if not rule.allows_name(name):
            yield violation(
                rule, "CERTIFICATE_PEM", name, "the certificate names a name not allowed", _name_allowance(rule)
            )


def _name_allowance(rule: Rule) -> list[str]:
    shown = [f"DNS {p}" for p in rule.dns_names] + [f"IP {r}" for r in rule.ip_ranges]
    return shown or ["no name"]


# --- KEY_ALGORITHM, REUSE_PRIVATE_KEY -----------------------------------------------------------


def _key_requested(rule: Rule, spec: CertSpec, now: datetime) -> Violations:
    if spec.key_algorithm not in rule.key_algorithms:
        yield violation(
            rule,
            "KEY_ALGORITHM",
            spec.key_algorithm.value,
            "this key algorithm is not allowed",
            [k.value for k in rule.key_algorithms],
        )


def _reuse_requested(rule: Rule, spec: CertSpec, now: datetime) -> Violations:
    if spec.reuse_private_key and not rule.reuse_private_key:
        yield violation(rule, "REUSE_PRIVATE_KEY", "true", "reusing the private key is not allowed", ["false"])


# --- VALIDITY -----------------------------------------------------------------------------------


def _validity_requested(rule: Rule, spec: CertSpec, now: datetime) -> Violations:
    """Measured as Private CA will apply ``VALIDITY`` to a certificate signed from ``now`` on
    (:mod:`rotation.issuance.validity`: ``12 MONTHS`` is 365 or 366 days depending on the dates), so
    that nothing this passes is refused by :func:`_validity_issued` after issuance. ACM's fixed
    lifetime is the ACM_ISSUED constraint's."""
    if spec.certificate_type is not CertificateType.PCA_ISSUED:
        return
    lifetime = requested_lifetime(spec.validity, now)
    if lifetime > timedelta(days=rule.max_validity_days):
        yield violation(
            rule,
            "VALIDITY",
            f"{spec.validity.value} {spec.validity.unit.value}",
            f"{describe(lifetime)} from issuance: longer than the rule allows",
            f"at most {rule.max_validity_days} days",
        )


def _validity_issued(rule: Rule, facts: IssuedFacts) -> Violations:
    """notAfter - notBefore less exactly Private CA's documented backdating of notBefore
    (:data:`rotation.issuance.validity.PCA_BACKDATE`, 60 minutes): a certificate asked for the
    rule's ceiling passes, one a second longer does not."""
    lifetime = lifetime_beyond_backdate(facts.not_before, facts.not_after)
    if lifetime > timedelta(days=rule.max_validity_days):
        yield violation(
            rule,
            "CERTIFICATE_PEM",
            f"{describe(lifetime)} of validity after the {PCA_BACKDATE.seconds // 60}-minute backdating",
            "the certificate lives longer than the rule allows",
            f"at most {rule.max_validity_days} days",
        )


# --- clientAuth: narrowed, not refused (EKU of the issued certificate: rotation.issuance.verification) --


def template_name(template_arn: str) -> str:
    return template_arn.rsplit("template/", 1)[-1]


def server_only_twin(template_arn: str) -> str | None:
    """``EndEntityCertificate<variety>/V1`` → ``EndEntityServerAuthCertificate<variety>/V1``."""
    name = template_name(template_arn)
    if not name.startswith(_SERVER_AND_CLIENT_PREFIX):
        return None
    twin = _SERVER_ONLY_PREFIX + name[len(_SERVER_AND_CLIENT_PREFIX) :]
    return template_arn[: -len(name)] + twin if twin in END_ENTITY_TEMPLATES else None


def _client_auth_narrow(rule: Rule, spec: CertSpec) -> CertSpec:
    """A server+client template under a rule without clientAuth becomes its server-only twin (same variety).

    Raises:
        PolicyError: the template has no server-only twin.
    """
    if (
        spec.certificate_type is not CertificateType.PCA_ISSUED
        or rule.client_auth
        or template_name(spec.template_arn).startswith(_SERVER_ONLY_PREFIX)
    ):
        return spec
    twin = server_only_twin(spec.template_arn)
    if twin is None:  # pragma: no cover - every end-entity template has a server-only twin
        raise violation(rule, "TEMPLATE_ARN", spec.template_arn, "gives clientAuth", "server-only templates")
    return replace(spec, template_arn=twin)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _keys_allowed(rule: Rule) -> str:
    return "any key" if set(rule.key_algorithms) == set(KeyAlgorithm) else "keys " + ", ".join(rule.key_algorithms)


#: Every constraint, in the order violations are reported (the secret's fields, roughly in order).
CONSTRAINTS: tuple[Constraint, ...] = (
    Constraint(("acm_issued",), lambda r: f"ACM_ISSUED {_yes(r.acm_issued)}", requested=_acm_requested),
    Constraint(("ca_arns",), lambda r: f"CAs {len(r.ca_arns)}", requested=_ca_requested, issued=_ca_issued),
    Constraint(
        ("max_names",),
        lambda r: f"<= {r.max_names} names",
        requested=_name_count_requested,
        issued=_name_count_issued,
    ),
    Constraint(
        ("dns_names", "ip_ranges"),
        lambda r: f"names {', '.join([*r.dns_names, *r.ip_ranges]) or 'none'}",
        requested=_names_requested,
        issued=_names_issued,
    ),
    Constraint(("key_algorithms",), _keys_allowed, requested=_key_requested),
    Constraint(("reuse_private_key",), lambda r: f"reuse key {_yes(r.reuse_private_key)}", requested=_reuse_requested),
    Constraint(
        ("max_validity_days",),
        lambda r: f"<= {r.max_validity_days} days",
        requested=_validity_requested,
        issued=_validity_issued,
    ),
    Constraint(
        ("client_auth",),
        lambda r: "server+client" if r.client_auth else "server-only",
        narrow=_client_auth_narrow,
    ),
)
