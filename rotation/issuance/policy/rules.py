"""The issuance policy's model: a rule, the policy (rules in order), and the default when none is written. Pure.

A rule is chosen by what a secret's writer cannot change: the secret's name as DescribeSecret
returns it (secrets are created under IAM-scoped prefixes such as ``team-a/*``) and, optionally,
the secret's account. The first rule in document order that matches governs; a secret no rule
matches gets nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any

from rotation.errors import SpecError
from rotation.issuance.policy.names import ANY_DNS, ANY_IP, name_allowed
from rotation.issuance.policy.rollovers import Rollover, redirect, widened_cas
from rotation.issuance.spec import MAX_NAMES, CertificateType, CertSpec, KeyAlgorithm

FORMAT_VERSION = 1
#: The CA/Browser Forum ceiling for public TLS certificates; the default for private ones too.
DEFAULT_MAX_VALIDITY_DAYS = 397
#: ACM's private certificates live 13 months, 395 days (ACM User Guide, "Private certificates in
#: AWS Certificate Manager": Expiration); the requester cannot choose.
ACM_PRIVATE_VALIDITY_DAYS = 395
ANY = "*"


class PolicyError(SpecError):
    """A request or an issued certificate is outside its rule, or a policy document is invalid."""


@dataclass(frozen=True)
class Rule:
    """One rule of the policy: which secrets it governs and what they may obtain.

    Every attribute is a key of the rule in the policy document, under the same name
    (:mod:`rotation.issuance.policy.document`); what each allowance means for a request is a
    constraint (:mod:`rotation.issuance.policy.constraints`).
    """

    name: str
    #: Secret names it governs: exact, ``prefix*`` or ``*``.
    secrets: tuple[str, ...]
    #: Private CA ARNs its secrets may use, or ``*``.
    ca_arns: tuple[str, ...]
    #: DNS patterns (:mod:`rotation.issuance.policy.names`) the certificate's names must be inside.
    dns_names: tuple[str, ...] = ()
    #: CIDR ranges the certificate's IP addresses must be inside.
    ip_ranges: tuple[str, ...] = ()
    #: Accounts (12 digits, or ``*``) whose secrets it governs.
    accounts: tuple[str, ...] = (ANY,)
    key_algorithms: tuple[KeyAlgorithm, ...] = tuple(KeyAlgorithm)
    max_validity_days: int = DEFAULT_MAX_VALIDITY_DAYS
    #: clientAuth allowed in the leaf (otherwise a server+client template is narrowed to server-only).
    client_auth: bool = False
    acm_issued: bool = False
    reuse_private_key: bool = False
    #: At most this many names, COMMON_NAME included.
    max_names: int = MAX_NAMES

    def governs(self, secret_name: str, account: str) -> bool:
        return any(_glob(p, secret_name) for p in self.secrets) and any(_glob(a, account) for a in self.accounts)

    def allows_ca(self, ca_arn: str) -> bool:
        return ANY in self.ca_arns or ca_arn in self.ca_arns

    def allows_name(self, name: str) -> bool:
        """Whether one certificate name (DNS name, wildcard name or IP address) is inside the rule."""
        return name_allowed(name, self.dns_names, self.ip_ranges)

    def client_auth_allowed(self, certificate_type: CertificateType) -> bool:
        """clientAuth in the leaf: where the rule allows it, and always for ACM (every ACM private
        certificate carries it; the rule decides whether ACM_ISSUED is allowed at all)."""
        return self.client_auth or (certificate_type is CertificateType.ACM_ISSUED and self.acm_issued)

    def describe(self) -> dict[str, Any]:
        """The rule as the policy document writes it (``certrotate policy validate`` prints this)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _plain(value: object) -> object:
    """A rule's attribute as JSON writes it: tuples as lists, enum members as their values."""
    if isinstance(value, tuple):
        return [m.value if isinstance(m, Enum) else m for m in value]
    return value


@dataclass(frozen=True)
class IssuancePolicy:
    rules: tuple[Rule, ...]
    #: Where it came from: ``default`` or ``ssm:NAME`` (and the parameter's version).
    source: str = "default"
    revision: str = ""
    warnings: tuple[str, ...] = field(default=())
    #: CA rollovers (:mod:`rotation.issuance.policy.rollovers`): operator-written like the rules.
    rollovers: tuple[Rollover, ...] = ()

    def rule_for(self, secret_name: str, account: str) -> Rule:
        """The first rule that governs the secret, as it applies during the policy's CA rollovers
        (a rule allowing a CA that a rollover in move, retire or done moves also allows its new CA).

        Raises:
            PolicyError: no rule governs it (then it may obtain nothing).
        """
        for rule in self.rules:
            if rule.governs(secret_name, account):
                if ANY in rule.ca_arns or not self.rollovers:
                    return rule
                return replace(rule, ca_arns=widened_cas(rule.ca_arns, self.rollovers))
        raise PolicyError(
            "SecretId",
            secret_name,
            f"no rule of the issuance policy ({self.source}) governs this secret; nothing is issued",
            [f"rule {r.name!r}: secrets {', '.join(r.secrets)}" for r in self.rules] or "no rule at all",
        )

    def issuing_spec(self, spec: CertSpec) -> CertSpec:
        """The spec as the rotation issues it: its CA moved by the rollovers that issue from a new CA
        (:func:`rotation.issuance.policy.rollovers.redirect`); the secret itself is never edited."""
        return redirect(spec, self.rollovers) if self.rollovers else spec

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"version": FORMAT_VERSION, "rules": [r.describe() for r in self.rules]}
        if self.rollovers:
            document["rollovers"] = [r.describe() for r in self.rollovers]
        return document


def default_policy(stack_cas: Sequence[str] | None) -> IssuancePolicy:
    """The policy when the operator wrote none.

    One rule for every secret: the stack's only CA, any name, server-only Private CA templates
    (a server+client template is narrowed to its server-only twin), ACM_ISSUED allowed (ACM's
    private certificates carry clientAuth: write a policy to refuse them), at most
    :data:`DEFAULT_MAX_VALIDITY_DAYS` days. A stack of several CAs and no policy issues nothing:
    which team may use which CA is exactly what the operator must say.
    """
    warnings = ["no issuance policy is written: the default applies"]
    if stack_cas is None:
        cas: tuple[str, ...] = (ANY,)
        warnings.append("the stack's CA list is unknown (CERTROTATE_CA_ARNS unset): any CA the role may use")
    elif len(stack_cas) == 1:
        cas = (stack_cas[0],)
    else:
        warnings.append(
            f"the stack lists {len(stack_cas)} CAs and no policy says which secret may use which: nothing is issued"
        )
        return IssuancePolicy(rules=(), warnings=tuple(warnings))
    rule = Rule(
        name="default",
        secrets=(ANY,),
        ca_arns=cas,
        dns_names=(ANY_DNS,),
        ip_ranges=ANY_IP,
        client_auth=False,
        acm_issued=True,
        reuse_private_key=True,
    )
    warnings.append("any name may be requested and ACM_ISSUED certificates carry clientAuth")
    return IssuancePolicy(rules=(rule,), warnings=tuple(warnings))


def _glob(pattern: str, value: str) -> bool:
    """``*`` alone: anything; ``prefix*``: a prefix (``team-a/*``); otherwise the exact value."""
    if pattern == ANY:
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern
