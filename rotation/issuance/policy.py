"""The issuance policy: which names, CAs, lifetimes, keys and purposes each secret may obtain. Pure.

The stack operator writes the policy (a JSON document in the SSM parameter the central stack
names, :mod:`rotation.issuance.policy_store`); a secret's writer only chooses, inside the rule that governs
the secret, what the secret asks for. A rule is chosen by what the writer cannot change: the
secret's name as DescribeSecret returns it (secrets are created under IAM-scoped prefixes such as
``team-a/*``) and, optionally, the secret's account. The first rule in document order that matches
governs; a secret no rule matches gets nothing.

The rotation checks a request against its rule before anything is issued (:func:`fit_request`;
:func:`request_problems` lists every violation) and the issued certificate again in testSecret
(:func:`check_issued`). Every refusal is a
:class:`PolicyError`: the field, the value (redacted), the rule and what the rule allows.

DNS patterns, all compared on lower-case A-labels (IDN written in Unicode is converted to punycode,
one trailing dot is dropped):

- ``app.example.internal``: that name only;
- ``*.example.internal``: any one label under ``example.internal`` (RFC 6125 6.4.3: the wildcard
  is the whole leftmost label and matches exactly one label), and the wildcard name itself;
- ``.example.internal``: any name strictly under ``example.internal``, wildcards included;
- ``.``: any DNS name.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from rotation.errors import SpecError
from rotation.issuance.spec import (
    CA_ARN_PATTERN,
    END_ENTITY_TEMPLATES,
    MAX_NAMES,
    CertificateType,
    CertSpec,
    KeyAlgorithm,
)
from rotation.issuance.validity import PCA_BACKDATE, describe, lifetime_beyond_backdate, requested_lifetime

FORMAT_VERSION = 1
#: The CA/Browser Forum ceiling for public TLS certificates; the default for private ones too.
DEFAULT_MAX_VALIDITY_DAYS = 397
#: ACM's private certificates live 13 months, 395 days (ACM User Guide, "Private certificates in
#: AWS Certificate Manager": Expiration); the requester cannot choose.
ACM_PRIVATE_VALIDITY_DAYS = 395
ANY = "*"
ANY_DNS = "."
ANY_IP = ("0.0.0.0/0", "::/0")
_RULE_KEYS = {
    "name",
    "secrets",
    "accounts",
    "ca_arns",
    "dns_names",
    "ip_ranges",
    "key_algorithms",
    "max_validity_days",
    "client_auth",
    "acm_issued",
    "reuse_private_key",
    "max_names",
}
_SERVER_ONLY_PREFIX = "EndEntityServerAuthCertificate"
_SERVER_AND_CLIENT_PREFIX = "EndEntityCertificate"


class PolicyError(SpecError):
    """A request or an issued certificate is outside its rule, or a policy document is invalid."""


@dataclass(frozen=True)
class Rule:
    """One rule of the policy: which secrets it governs and what they may obtain."""

    name: str
    secrets: tuple[str, ...]
    ca_arns: tuple[str, ...]
    dns_names: tuple[str, ...] = ()
    ip_ranges: tuple[str, ...] = ()
    accounts: tuple[str, ...] = (ANY,)
    key_algorithms: tuple[KeyAlgorithm, ...] = tuple(KeyAlgorithm)
    max_validity_days: int = DEFAULT_MAX_VALIDITY_DAYS
    client_auth: bool = False
    acm_issued: bool = False
    reuse_private_key: bool = False
    max_names: int = MAX_NAMES

    def governs(self, secret_name: str, account: str) -> bool:
        return any(_glob(p, secret_name) for p in self.secrets) and any(_glob(a, account) for a in self.accounts)

    def allows_ca(self, ca_arn: str) -> bool:
        return ANY in self.ca_arns or ca_arn in self.ca_arns

    def allows_name(self, name: str) -> bool:
        """Whether one certificate name (DNS name, wildcard name or IP address) is inside the rule."""
        address = _ip(name)
        if address is not None:
            return any(address.version == n.version and address in n for n in _networks(self.ip_ranges))
        try:
            normalized = normalize_dns(name)
        except ValueError:
            return False
        return any(dns_pattern_matches(pattern, normalized) for pattern in self.dns_names)

    def client_auth_allowed(self, certificate_type: CertificateType) -> bool:
        """clientAuth in the leaf: where the rule allows it, and always for ACM (every ACM private
        certificate carries it; the rule decides whether ACM_ISSUED is allowed at all)."""
        return self.client_auth or (certificate_type is CertificateType.ACM_ISSUED and self.acm_issued)

    def describe(self) -> dict[str, Any]:
        """The rule as the policy document writes it (``certrotate policy validate`` prints this)."""
        return {
            "name": self.name,
            "secrets": list(self.secrets),
            "accounts": list(self.accounts),
            "ca_arns": list(self.ca_arns),
            "dns_names": list(self.dns_names),
            "ip_ranges": list(self.ip_ranges),
            "key_algorithms": [k.value for k in self.key_algorithms],
            "max_validity_days": self.max_validity_days,
            "client_auth": self.client_auth,
            "acm_issued": self.acm_issued,
            "reuse_private_key": self.reuse_private_key,
            "max_names": self.max_names,
        }


@dataclass(frozen=True)
class IssuancePolicy:
    rules: tuple[Rule, ...]
    #: Where it came from: ``default`` or ``ssm:NAME`` (and the parameter's version).
    source: str = "default"
    revision: str = ""
    warnings: tuple[str, ...] = field(default=())

    def rule_for(self, secret_name: str, account: str) -> Rule:
        """The first rule that governs the secret.

        Raises:
            PolicyError: no rule governs it (then it may obtain nothing).
        """
        for rule in self.rules:
            if rule.governs(secret_name, account):
                return rule
        raise PolicyError(
            "SecretId",
            secret_name,
            f"no rule of the issuance policy ({self.source}) governs this secret; nothing is issued",
            [f"rule {r.name!r}: secrets {', '.join(r.secrets)}" for r in self.rules] or "no rule at all",
        )

    def to_document(self) -> dict[str, Any]:
        return {"version": FORMAT_VERSION, "rules": [r.describe() for r in self.rules]}


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


# --- matching ----------------------------------------------------------------------------------


def _glob(pattern: str, value: str) -> bool:
    """``*`` alone: anything; ``prefix*``: a prefix (``team-a/*``); otherwise the exact value."""
    if pattern == ANY:
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.strip())
    except ValueError:
        return None


def _networks(ranges: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(r, strict=False) for r in ranges]


def normalize_dns(name: str) -> str:
    """Lower-case A-labels without the trailing dot; Unicode labels become punycode.

    Raises:
        ValueError: not a DNS name (an empty label, a label that does not encode).
    """
    text = name.strip()
    if text.endswith("."):
        text = text[:-1]
    if not text:
        raise ValueError("empty name")
    labels = []
    for label in text.split("."):
        if not label:
            raise ValueError("empty label")
        if label == "*" or label.isascii():
            labels.append(label.lower())
        else:
            labels.append(label.encode("idna").decode("ascii").lower())
    return ".".join(labels)


def dns_pattern_matches(pattern: str, name: str) -> bool:
    """Whether normalized ``name`` (possibly a wildcard name) is inside normalized ``pattern``."""
    if pattern == ANY_DNS:
        return True
    if pattern.startswith("."):
        return name.endswith(pattern) and len(name) > len(pattern)
    if pattern.startswith("*."):
        parent = pattern[2:]
        if not name.endswith("." + parent):
            return False
        first = name[: -len(parent) - 1]
        return "." not in first and first != ""
    return name == pattern


# --- requests and issued certificates -----------------------------------------------------------


def template_name(template_arn: str) -> str:
    return template_arn.rsplit("template/", 1)[-1]


def server_only_twin(template_arn: str) -> str | None:
    """``EndEntityCertificate<variety>/V1`` → ``EndEntityServerAuthCertificate<variety>/V1``."""
    name = template_name(template_arn)
    if not name.startswith(_SERVER_AND_CLIENT_PREFIX):
        return None
    twin = _SERVER_ONLY_PREFIX + name[len(_SERVER_AND_CLIENT_PREFIX) :]
    return template_arn[: -len(name)] + twin if twin in END_ENTITY_TEMPLATES else None


def _refuse(rule: Rule, field_name: str, value: object, problem: str, allowed: Iterable[str] | str) -> PolicyError:
    return PolicyError(field_name, value, f"{problem} (issuance policy rule {rule.name!r})", allowed)


def fit_request(rule: Rule, spec: CertSpec, *, now: datetime) -> CertSpec:
    """The spec as the rule lets it be issued, before anything is issued.

    A server+client template under a rule without clientAuth is narrowed to its server-only twin
    (same variety); everything else outside the rule is refused. ``VALIDITY`` is measured as
    Private CA will apply it to a certificate signed from ``now`` on (:mod:`rotation.issuance.validity`:
    ``12 MONTHS`` is 365 or 366 days depending on the dates), so that nothing this passes is
    refused by :func:`check_issued` after issuance.

    Raises:
        PolicyError: the first field outside the rule (:func:`request_problems` lists every one).
    """
    problems = request_problems(rule, spec, now=now)
    if problems:
        raise problems[0]
    if (
        spec.certificate_type is CertificateType.PCA_ISSUED
        and not rule.client_auth
        and not template_name(spec.template_arn).startswith(_SERVER_ONLY_PREFIX)
    ):
        twin = server_only_twin(spec.template_arn)
        if twin is None:  # pragma: no cover - every end-entity template has a server-only twin
            raise _refuse(rule, "TEMPLATE_ARN", spec.template_arn, "gives clientAuth", "server-only templates")
        return replace(spec, template_arn=twin)
    return spec


def request_problems(rule: Rule, spec: CertSpec, *, now: datetime) -> list[PolicyError]:
    """Every field of ``spec`` outside ``rule``, in field order: the pre-issue check.

    The rotation refuses on the first (:func:`fit_request`); ``certrotate validate`` and
    ``create-secret`` show them all, so a spec is fixed in one round.
    """
    problems: list[PolicyError] = []
    if spec.certificate_type is CertificateType.ACM_ISSUED and not rule.acm_issued:
        problems.append(
            _refuse(rule, "CERTIFICATE_TYPE", spec.certificate_type.value, "ACM_ISSUED is not allowed", ["PCA_ISSUED"])
        )
    if spec.certificate_type is CertificateType.ACM_ISSUED and rule.max_validity_days < ACM_PRIVATE_VALIDITY_DAYS:
        problems.append(
            _refuse(
                rule,
                "CERTIFICATE_TYPE",
                spec.certificate_type.value,
                f"ACM's private certificates live {ACM_PRIVATE_VALIDITY_DAYS} days, longer than the rule allows",
                f"PCA_ISSUED with VALIDITY of at most {rule.max_validity_days} days",
            )
        )
    if not rule.allows_ca(spec.ca_arn):
        problems.append(_refuse(rule, "CA_ARN", spec.ca_arn, "this CA is not allowed", rule.ca_arns or "no CA"))
    names = spec.names
    if len(names) > rule.max_names:
        problems.append(
            _refuse(
                rule,
                "SUBJECT_ALTERNATIVE_NAMES",
                f"{len(names)} names",
                "too many names",
                f"at most {rule.max_names} names (COMMON_NAME included)",
            )
        )
    for name in names:
        if not rule.allows_name(name):
            field_name = "COMMON_NAME" if name == spec.common_name.lower() else "SUBJECT_ALTERNATIVE_NAMES"
            problems.append(_refuse(rule, field_name, name, "this name is not allowed", _name_allowance(rule)))
    if spec.key_algorithm not in rule.key_algorithms:
        problems.append(
            _refuse(
                rule,
                "KEY_ALGORITHM",
                spec.key_algorithm.value,
                "this key algorithm is not allowed",
                [k.value for k in rule.key_algorithms],
            )
        )
    if spec.reuse_private_key and not rule.reuse_private_key:
        problems.append(_refuse(rule, "REUSE_PRIVATE_KEY", "true", "reusing the private key is not allowed", ["false"]))
    if spec.certificate_type is CertificateType.PCA_ISSUED:
        lifetime = requested_lifetime(spec.validity, now)
        if lifetime > timedelta(days=rule.max_validity_days):
            problems.append(
                _refuse(
                    rule,
                    "VALIDITY",
                    f"{spec.validity.value} {spec.validity.unit.value}",
                    f"{describe(lifetime)} from issuance: longer than the rule allows",
                    f"at most {rule.max_validity_days} days",
                )
            )
    return problems


def _name_allowance(rule: Rule) -> list[str]:
    shown = [f"DNS {p}" for p in rule.dns_names] + [f"IP {r}" for r in rule.ip_ranges]
    return shown or ["no name"]


@dataclass(frozen=True)
class IssuedFacts:
    """What :func:`check_issued` needs of a certificate, read from it by :func:`issued_facts`."""

    names: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    issuer_arn: str
    certificate_type: CertificateType


def issued_facts(certificate: x509.Certificate, issuer_arn: str, certificate_type: CertificateType) -> IssuedFacts:
    names: list[str] = [str(a.value) for a in certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += san.get_values_for_type(x509.DNSName)
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    unique = tuple(dict.fromkeys(n.lower().rstrip(".") for n in names))
    return IssuedFacts(
        unique, certificate.not_valid_before_utc, certificate.not_valid_after_utc, issuer_arn, certificate_type
    )


def check_issued(rule: Rule, facts: IssuedFacts) -> None:
    """The issued certificate is inside the rule: issuer, names, lifetime (EKU: verification).

    The lifetime is notAfter - notBefore less exactly Private CA's documented backdating of
    notBefore (:data:`rotation.issuance.validity.PCA_BACKDATE`, 60 minutes): a certificate asked for the
    rule's ceiling passes, one a second longer does not.

    Raises:
        PolicyError: the first property outside the rule.
    """
    if not facts.issuer_arn or not rule.allows_ca(facts.issuer_arn):
        raise _refuse(rule, "CA_ARN", facts.issuer_arn or None, "the certificate's issuer is not allowed", rule.ca_arns)
    if len(facts.names) > rule.max_names:
        raise _refuse(
            rule, "CERTIFICATE_PEM", f"{len(facts.names)} names", "too many names", f"at most {rule.max_names}"
        )
    for name in facts.names:
        if not rule.allows_name(name):
            raise _refuse(
                rule, "CERTIFICATE_PEM", name, "the certificate names a name not allowed", _name_allowance(rule)
            )
    lifetime = lifetime_beyond_backdate(facts.not_before, facts.not_after)
    if lifetime > timedelta(days=rule.max_validity_days):
        raise _refuse(
            rule,
            "CERTIFICATE_PEM",
            f"{describe(lifetime)} of validity after the {PCA_BACKDATE.seconds // 60}-minute backdating",
            "the certificate lives longer than the rule allows",
            f"at most {rule.max_validity_days} days",
        )


# --- the document -------------------------------------------------------------------------------


def parse_policy(text: str, *, source: str = "file", revision: str = "") -> IssuancePolicy:
    """Parse and validate a policy document (JSON).

    Raises:
        PolicyError: naming the first invalid field (``rules[2].dns_names[0]``) and what is allowed.
    """
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise PolicyError("policy", None, f"not valid JSON{where}", "a JSON object {version, rules}") from None
    if not isinstance(document, dict):
        raise PolicyError("policy", None, "not a JSON object", "a JSON object {version, rules}")
    unknown = set(document) - {"version", "rules", "description"}
    if unknown:
        raise PolicyError("policy", sorted(unknown)[0], "unknown key", ["version", "rules", "description"])
    if document.get("version") != FORMAT_VERSION:
        raise PolicyError("version", document.get("version"), "unsupported policy format", [str(FORMAT_VERSION)])
    rules_raw = document.get("rules")
    if not isinstance(rules_raw, list):
        raise PolicyError("rules", rules_raw, "must be a list of rules", "a JSON list")
    rules = tuple(_rule(f"rules[{i}]", raw) for i, raw in enumerate(rules_raw))
    names = [r.name for r in rules]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise PolicyError("rules[].name", duplicate, "two rules have this name", "unique rule names")
    return IssuancePolicy(rules=rules, source=source, revision=revision, warnings=tuple(policy_warnings(rules)))


def policy_warnings(rules: Sequence[Rule]) -> list[str]:
    """What a valid policy may still get wrong: shadowed rules, ACM certificates refused by validity."""
    warnings = []
    for i, rule in enumerate(rules):
        for earlier in rules[:i]:
            if ANY in earlier.secrets and ANY in earlier.accounts:
                warnings.append(
                    f"rule {rule.name!r} is never used: rule {earlier.name!r} before it governs every secret"
                )
                break
        if rule.acm_issued and rule.max_validity_days < ACM_PRIVATE_VALIDITY_DAYS:
            warnings.append(
                f"rule {rule.name!r} allows ACM_ISSUED but at most {rule.max_validity_days} days: "
                "ACM's 13-month certificates are refused before they are requested"
            )
        if ANY in rule.ca_arns:
            warnings.append(f"rule {rule.name!r} allows any CA the rotation role may use")
    return warnings


def _rule(where: str, raw: Any) -> Rule:
    if not isinstance(raw, dict):
        raise PolicyError(where, None, "a rule must be a JSON object", "an object with name, secrets, ca_arns, …")
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise PolicyError(f"{where}.{sorted(unknown)[0]}", None, "unknown key", sorted(_RULE_KEYS))
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PolicyError(f"{where}.name", name, "required: a non-empty string")
    secrets = _strings(where, raw, "secrets", required=True)
    for pattern in secrets:
        if "*" in pattern[:-1]:
            raise PolicyError(f"{where}.secrets", pattern, "'*' only at the end", "a name, 'prefix/*' or '*'")
    accounts = _strings(where, raw, "accounts") or (ANY,)
    for account in accounts:
        if account != ANY and not (account.isdigit() and len(account) == 12):
            raise PolicyError(f"{where}.accounts", account, "not an account id", "12 digits or '*'")
    ca_arns = _strings(where, raw, "ca_arns", required=True)
    for arn in ca_arns:
        if arn != ANY and not CA_ARN_PATTERN.fullmatch(arn):
            raise PolicyError(
                f"{where}.ca_arns",
                arn,
                "not a Private CA ARN",
                "'*' or arn:<partition>:acm-pca:<region>:<12-digit account>:certificate-authority/<36-character id>",
            )
    dns = tuple(_dns_pattern(f"{where}.dns_names", p) for p in _strings(where, raw, "dns_names"))
    ranges = _strings(where, raw, "ip_ranges")
    for text in ranges:
        try:
            ipaddress.ip_network(text, strict=True)
        except ValueError:
            raise PolicyError(
                f"{where}.ip_ranges", text, "not a network", "CIDR such as 10.0.0.0/8 or fd00::/8"
            ) from None
    keys = _key_algorithms(where, raw)
    return Rule(
        name=name.strip(),
        secrets=secrets,
        accounts=accounts,
        ca_arns=ca_arns,
        dns_names=dns,
        ip_ranges=tuple(str(ipaddress.ip_network(r)) for r in ranges),
        key_algorithms=tuple(keys) or tuple(KeyAlgorithm),
        max_validity_days=_int(where, raw, "max_validity_days", DEFAULT_MAX_VALIDITY_DAYS, 1, 3650),
        client_auth=_flag(where, raw, "client_auth"),
        acm_issued=_flag(where, raw, "acm_issued"),
        reuse_private_key=_flag(where, raw, "reuse_private_key"),
        max_names=_int(where, raw, "max_names", MAX_NAMES, 1, MAX_NAMES),
    )


def _key_algorithms(where: str, raw: Mapping[str, Any]) -> list[KeyAlgorithm]:
    keys = []
    for text in _strings(where, raw, "key_algorithms"):
        member = next((k for k in KeyAlgorithm if k.value.lower() == text.lower()), None)
        if member is None:
            raise PolicyError(f"{where}.key_algorithms", text, "unknown key algorithm", [k.value for k in KeyAlgorithm])
        keys.append(member)
    return keys


def _strings(where: str, raw: Mapping[str, Any], key: str, *, required: bool = False) -> tuple[str, ...]:
    value = raw.get(key)
    if value is None and not required:
        return ()
    if (
        not isinstance(value, list)
        or not all(isinstance(v, str) and v.strip() for v in value)
        or (required and not value)
    ):
        raise PolicyError(
            f"{where}.{key}", value, "must be a non-empty list of strings" if required else "must be a list of strings"
        )
    return tuple(v.strip() for v in value)


def _flag(where: str, raw: Mapping[str, Any], key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise PolicyError(f"{where}.{key}", value, "must be true or false", ["true", "false"])
    return value


def _int(where: str, raw: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PolicyError(f"{where}.{key}", value, "out of range", f"a whole number from {low} to {high}")
    return value


def _dns_pattern(where: str, pattern: str) -> str:
    """A pattern normalized as names are; refused unless it is a name, ``*.name``, ``.name`` or ``.``."""
    if pattern == ANY_DNS:
        return pattern
    suffix = pattern.startswith(".")
    body = pattern[1:] if suffix else pattern
    try:
        normalized = normalize_dns(body)
    except (ValueError, UnicodeError):
        raise PolicyError(where, pattern, "not a DNS name pattern", _PATTERN_RULE) from None
    labels = normalized.split(".")
    wildcard = labels[0] == "*"
    rest = labels[1:] if wildcard else labels
    if suffix and wildcard:
        raise PolicyError(where, pattern, "a suffix cannot hold a wildcard", _PATTERN_RULE)
    if any("*" in label or not _ldh(label) for label in rest) or (wildcard and len(rest) < 2):
        raise PolicyError(where, pattern, "not a DNS name pattern", _PATTERN_RULE)
    return ("." if suffix else "") + normalized


_PATTERN_RULE = (
    "a name (a.example), a wildcard as the whole leftmost label (*.example.internal), a suffix (.example) or '.'"
)


def _ldh(label: str) -> bool:
    return (
        0 < len(label) <= 63
        and all(c.isalnum() or c == "-" for c in label)
        and label.isascii()
        and not (label.startswith("-") or label.endswith("-"))
    )
