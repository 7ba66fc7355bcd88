"""The certificate specification a secret holds, parsed once into a frozen :class:`CertSpec`.

Pure: no AWS calls. Accepts every field name and value of the original sample (``TYPE_RSA`` +
``KEY_SIZE``, ``SIGNING_ALGORITHM`` ``RSA``/``ECDSA`` + ``SIGNING_HASH``, ``ENVIRONMENT`` ``TEST``)
and the newer names (``RSA_2048`` … ``EC_secp521r1``). What AWS Private CA cannot sign is refused
with a :class:`~rotation.errors.SpecError` naming the field, the value and the allowed values.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum, StrEnum
from typing import Any, TypeVar

from rotation.errors import SpecError

_E = TypeVar("_E", bound=Enum)

DEFAULT_TEMPLATE_ARN = "arn:aws:acm-pca:::template/EndEntityCertificate/V1"

#: The Private CA templates a secret may name: the end-entity TLS server templates of the Private
#: CA template docs ("template varieties": base, CSRPassthrough, APIPassthrough, APICSRPassthrough;
#: each exists only as V1). CA templates (RootCACertificate, SubordinateCACertificate_*) would let a
#: secret's writer obtain a CA; code-signing, OCSP, client-auth-only and Blank templates do not make
#: TLS server certificates. ``cfn/src/central-account.yaml`` grants IssueCertificate on exactly these
#: (a test compares the two lists).
END_ENTITY_TEMPLATES = tuple(
    f"{base}{variety}/V1"
    for base in ("EndEntityCertificate", "EndEntityServerAuthCertificate")
    for variety in ("", "_CSRPassthrough", "_APIPassthrough", "_APICSRPassthrough")
)

#: At most this many names (COMMON_NAME + SUBJECT_ALTERNATIVE_NAMES): ACM's default quota of
#: domain names per certificate, and a bound that keeps the secret under Secrets Manager's limit.
MAX_NAMES = 100

#: Secrets Manager's limit on a SecretString, in bytes.
SECRET_VALUE_LIMIT = 65536

#: Room a bundle needs in the secret besides its names: an RSA-4096 PKCS#8 key (~3.3 KB), a leaf
#: certificate's fixed part and a chain of up to four CA certificates, with metadata.
BUNDLE_ALLOWANCE = 16 * 1024

#: Keys written by rotation; everything else in the secret is the user's specification.
OUTPUT_FIELDS = (
    "CERTIFICATE_PEM",
    "PRIVATE_KEY_PEM",
    "CERTIFICATE_CHAIN_PEM",
    "CERTIFICATE_ARN",
    "CERTIFICATE_SERIAL",
    "CERTIFICATE_NOT_BEFORE",
    "CERTIFICATE_NOT_AFTER",
    "CERTIFICATE_KEY_ALGORITHM",
    "CERTIFICATE_FINGERPRINT_SHA256",
)


class CertificateType(StrEnum):
    """Which service issues the certificate."""

    ACM_ISSUED = "ACM_ISSUED"
    PCA_ISSUED = "PCA_ISSUED"


class KeyFamily(StrEnum):
    """Public-key family, named as the original ``SIGNING_ALGORITHM`` values name it."""

    RSA = "RSA"
    ECDSA = "ECDSA"


class KeyAlgorithm(StrEnum):
    """Key algorithms Private CA can sign, named as ACM and Private CA name them."""

    RSA_2048 = "RSA_2048"
    RSA_3072 = "RSA_3072"
    RSA_4096 = "RSA_4096"
    EC_prime256v1 = "EC_prime256v1"
    EC_secp384r1 = "EC_secp384r1"
    EC_secp521r1 = "EC_secp521r1"

    @property
    def family(self) -> KeyFamily:
        return KeyFamily.RSA if self.value.startswith("RSA_") else KeyFamily.ECDSA


#: ACM requests only these (RequestCertificate KeyAlgorithm for private certificates).
ACM_KEY_ALGORITHMS = (KeyAlgorithm.RSA_2048, KeyAlgorithm.EC_prime256v1, KeyAlgorithm.EC_secp384r1)


class SigningHash(StrEnum):
    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"


class RenewalPolicy(StrEnum):
    """When a scheduled rotation issues a new certificate.

    ``ALWAYS``: every rotation issues (Private CA default).
    ``WHEN_DUE``: only when the current certificate is inside its renewal window, no longer
    matches the spec, or does not chain to the CA; otherwise the current bundle is staged
    unchanged (ACM default: ACM renews managed certificates itself).
    """

    ALWAYS = "ALWAYS"
    WHEN_DUE = "WHEN_DUE"


class ValidityUnit(StrEnum):
    DAYS = "DAYS"
    MONTHS = "MONTHS"
    YEARS = "YEARS"


@dataclass(frozen=True)
class Validity:
    value: int
    unit: ValidityUnit

    def as_pca(self) -> dict[str, Any]:
        return {"Value": self.value, "Type": self.unit.value}


@dataclass(frozen=True)
class CertSpec:
    """A parsed, validated certificate specification."""

    certificate_type: CertificateType
    ca_arn: str
    common_name: str
    subject_alternative_names: tuple[str, ...]
    environment: str
    key_algorithm: KeyAlgorithm
    signing_family: KeyFamily | None
    signing_hash: SigningHash
    template_arn: str
    validity: Validity
    renewal_policy: RenewalPolicy
    renew_before: timedelta | None
    reuse_private_key: bool
    #: Revoke a certificate this long after it was replaced, once no host serves it; None = never.
    revoke_superseded_after: timedelta | None = None

    @property
    def ca_region(self) -> str:
        return self.ca_arn.split(":")[3]

    @property
    def forces_renewal(self) -> bool:
        """``ENVIRONMENT`` = ``TEST`` keeps the original meaning: every rotation renews."""
        return self.environment.upper() == "TEST"

    @property
    def names(self) -> tuple[str, ...]:
        """CN first, then the extra SANs, without duplicates: the certificate's SAN list."""
        seen: dict[str, None] = {self.common_name.lower(): None}
        for name in self.subject_alternative_names:
            seen.setdefault(name.lower(), None)
        return tuple(seen)


# Patterns are applied with ``fullmatch``: ``$`` would also match before a trailing newline.
_CA_ARN = re.compile(r"arn:aws[a-z-]*:acm-pca:[a-z]{2}(-[a-z]+)+-\d:\d{12}:certificate-authority/[0-9a-f-]{36}")
#: What a Private CA ARN looks like (the issuance policy validates its ``ca_arns`` with it too).
CA_ARN_PATTERN = _CA_ARN
_TEMPLATE_ARN = re.compile(r"arn:(aws|aws-cn|aws-us-gov):acm-pca:::template/(?P<name>[A-Za-z0-9_]+/V\d+)")
_DNS_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_ORIGINAL_KEY_TYPES = ("TYPE_RSA", "TYPE_EC")
_UNSIGNABLE = {
    "TYPE_DSA": "AWS Private CA cannot sign DSA keys",
    "DSA": "AWS Private CA cannot sign DSA keys",
    "ED25519": "AWS Private CA cannot sign Ed25519 keys",
    "ED448": "AWS Private CA cannot sign Ed448 keys",
}
_CURVE_ALIASES = {
    "prime256v1": KeyAlgorithm.EC_prime256v1,
    "secp256r1": KeyAlgorithm.EC_prime256v1,
    "p-256": KeyAlgorithm.EC_prime256v1,
    "p256": KeyAlgorithm.EC_prime256v1,
    "secp384r1": KeyAlgorithm.EC_secp384r1,
    "p-384": KeyAlgorithm.EC_secp384r1,
    "p384": KeyAlgorithm.EC_secp384r1,
    "secp521r1": KeyAlgorithm.EC_secp521r1,
    "p-521": KeyAlgorithm.EC_secp521r1,
    "p521": KeyAlgorithm.EC_secp521r1,
}
_RSA_SIZES = {"2048": KeyAlgorithm.RSA_2048, "3072": KeyAlgorithm.RSA_3072, "4096": KeyAlgorithm.RSA_4096}
_FULL_SIGNING = re.compile(r"^SHA(256|384|512)WITH(RSA|ECDSA)$")
_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0", ""}


def load_secret_fields(secret_string: str) -> dict[str, Any]:
    """Decode a secret's JSON object.

    Raises:
        SpecError: the value is not a JSON object (or is nested too deeply to decode).
    """
    try:
        fields = json.loads(secret_string)
    except json.JSONDecodeError as exc:
        raise SpecError(
            "SecretString",
            None,
            f"not valid JSON (line {exc.lineno}, column {exc.colno})",
            "a JSON object of certificate fields",
        ) from None
    except RecursionError:
        raise SpecError(
            "SecretString", None, "JSON nested too deeply to decode", "a JSON object of certificate fields"
        ) from None
    if not isinstance(fields, dict):
        raise SpecError(
            "SecretString",
            None,
            f"a JSON {type(fields).__name__}, not an object",
            "a JSON object of certificate fields",
        )
    return fields


def parse_spec(fields: Mapping[str, Any]) -> CertSpec:
    """Parse and validate the specification fields of a secret.

    Raises:
        SpecError: the first field that is missing, malformed or names something Private CA
            cannot sign (:func:`spec_problems` lists them all).
    """
    certificate_type = _certificate_type(fields)
    key_algorithm = _key_algorithm(fields)
    if certificate_type is CertificateType.ACM_ISSUED and key_algorithm not in ACM_KEY_ALGORITHMS:
        raise SpecError(
            "KEY_ALGORITHM",
            key_algorithm.value,
            "ACM does not issue this key type",
            [k.value for k in ACM_KEY_ALGORITHMS],
        )
    signing_family, signing_hash = _signing(fields)
    policy_default = RenewalPolicy.ALWAYS if certificate_type is CertificateType.PCA_ISSUED else RenewalPolicy.WHEN_DUE
    reuse = _bool(fields, "REUSE_PRIVATE_KEY")
    if reuse and certificate_type is CertificateType.ACM_ISSUED:
        raise SpecError(
            "REUSE_PRIVATE_KEY",
            fields.get("REUSE_PRIVATE_KEY"),
            "ACM generates the key of an ACM_ISSUED certificate",
            ["false"],
        )
    common_name = _common_name(fields)
    sans = _sans(fields)
    _check_size(fields, common_name, sans)
    return CertSpec(
        certificate_type=certificate_type,
        ca_arn=_ca_arn(fields),
        common_name=common_name,
        subject_alternative_names=sans,
        environment=_string(fields, "ENVIRONMENT") or "",
        key_algorithm=key_algorithm,
        signing_family=signing_family,
        signing_hash=signing_hash,
        template_arn=_template_arn(fields),
        validity=_validity(fields),
        renewal_policy=_enum(fields, "RENEWAL_POLICY", RenewalPolicy) or policy_default,
        renew_before=_renew_before(fields),
        reuse_private_key=reuse,
        revoke_superseded_after=_revoke_superseded_after(fields),
    )


def spec_problems(fields: Mapping[str, Any]) -> list[SpecError]:
    """Every problem of a specification, each checked on its own, for ``certrotate validate``."""
    checks = (
        _certificate_type,
        _ca_arn,
        _common_name,
        _sans,
        _key_algorithm,
        _signing,
        _template_arn,
        _validity,
        _renew_before,
        _revoke_superseded_after,
        lambda f: _enum(f, "RENEWAL_POLICY", RenewalPolicy),
        lambda f: _bool(f, "REUSE_PRIVATE_KEY"),
        _size,
    )
    problems: list[SpecError] = []
    for check in checks:
        try:
            check(fields)
        except SpecError as exc:
            problems.append(exc)
    if not problems:
        try:
            parse_spec(fields)
        except SpecError as exc:
            problems.append(exc)
    return problems


def _certificate_type(fields: Mapping[str, Any]) -> CertificateType:
    certificate_type = _enum(fields, "CERTIFICATE_TYPE", CertificateType, required=True)
    assert certificate_type is not None
    return certificate_type


def _ca_arn(fields: Mapping[str, Any]) -> str:
    ca_arn = _string(fields, "CA_ARN", required=True)
    if not _CA_ARN.fullmatch(ca_arn):
        raise SpecError(
            "CA_ARN", ca_arn, "not a Private CA ARN", "arn:aws:acm-pca:<region>:<account>:certificate-authority/<id>"
        )
    return ca_arn


def _common_name(fields: Mapping[str, Any]) -> str:
    common_name = _dns_or_ip("COMMON_NAME", _string(fields, "COMMON_NAME", required=True))
    if len(common_name) > 64:
        raise SpecError("COMMON_NAME", common_name, "longer than 64 characters (X.509 upper bound)")
    return common_name


def _sans(fields: Mapping[str, Any]) -> tuple[str, ...]:
    names = _name_list(fields)
    if len(names) >= MAX_NAMES:
        raise SpecError(
            "SUBJECT_ALTERNATIVE_NAMES",
            f"{len(names)} names",
            f"too many names for one certificate (COMMON_NAME counts as one of {MAX_NAMES})",
            f"at most {MAX_NAMES - 1} names",
        )
    return tuple(_dns_or_ip("SUBJECT_ALTERNATIVE_NAMES", n) for n in names)


def _size(fields: Mapping[str, Any]) -> None:
    """The size check on its own, for :func:`spec_problems` (name problems are reported apart)."""
    try:
        names = _common_name(fields), _sans(fields)
    except SpecError:
        return
    _check_size(fields, *names)


def _check_size(fields: Mapping[str, Any], common_name: str, sans: tuple[str, ...]) -> None:
    """Refuse, before anything is issued, a spec whose rotated secret would exceed 64 KB.

    The estimate counts the spec as stored (without the current bundle, which the new one
    replaces), the names twice more (in the certificate's subject and SANs, base64 in PEM) and
    :data:`BUNDLE_ALLOWANCE` for the key, the chain and the metadata.
    """
    try:
        spec_bytes = len(json.dumps({k: v for k, v in fields.items() if k not in OUTPUT_FIELDS}).encode())
    except (TypeError, ValueError, RecursionError):
        spec_bytes = SECRET_VALUE_LIMIT
    name_bytes = sum(len(n) + 4 for n in (common_name, common_name, *sans))
    estimate = spec_bytes + name_bytes * 4 // 3 + BUNDLE_ALLOWANCE
    if estimate > SECRET_VALUE_LIMIT:
        raise SpecError(
            "SecretString",
            f"{spec_bytes} bytes of specification",
            f"the rotated secret would be about {estimate} bytes, over Secrets Manager's {SECRET_VALUE_LIMIT}",
            f"a specification under {SECRET_VALUE_LIMIT - BUNDLE_ALLOWANCE - name_bytes * 4 // 3} bytes",
        )


def _template_arn(fields: Mapping[str, Any]) -> str:
    template_arn = _string(fields, "TEMPLATE_ARN") or DEFAULT_TEMPLATE_ARN
    match = _TEMPLATE_ARN.fullmatch(template_arn)
    if not match:
        raise SpecError(
            "TEMPLATE_ARN",
            template_arn,
            "not a Private CA template ARN",
            [f"arn:aws:acm-pca:::template/{t}" for t in END_ENTITY_TEMPLATES],
        )
    if match.group("name") not in END_ENTITY_TEMPLATES:
        raise SpecError(
            "TEMPLATE_ARN",
            template_arn,
            "not an end-entity TLS server template (a secret may not ask for a CA, code-signing, OCSP, "
            "client-only or blank certificate)",
            [f"arn:aws:acm-pca:::template/{t}" for t in END_ENTITY_TEMPLATES],
        )
    return template_arn


def _string(fields: Mapping[str, Any], name: str, *, required: bool = False, number: bool = False) -> str:
    """A field as stripped text; JSON integers are accepted, and finite JSON numbers when ``number``."""
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise SpecError(name, None, "required field is missing or empty")
        return ""
    if number and isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SpecError(name, value, f"must be a string, not {type(value).__name__}")
    return str(value).strip()


def _enum(fields: Mapping[str, Any], name: str, enum: type[_E], *, required: bool = False) -> _E | None:
    raw = _string(fields, name, required=required)
    if not raw:
        return None
    for member in enum:
        if str(member.value).upper() == raw.upper():
            return member
    raise SpecError(name, raw, "unknown value", [str(m.value) for m in enum])


def _bool(fields: Mapping[str, Any], name: str) -> bool:
    value = fields.get(name, "")
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise SpecError(name, value, "not a boolean", ["true", "false"])


_NAME_RULE = (
    "DNS names such as app.example.internal; a wildcard only as the whole leftmost label with at least "
    "two labels after it (*.example.internal); IP addresses without a zone (%)"
)


def _dns_or_ip(field: str, name: str) -> str:
    name = name.strip()
    if "%" in name:
        raise SpecError(field, name, "an IP address with a zone cannot appear in a certificate", _NAME_RULE)
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    host = name.lower().rstrip(".")
    labels = host.split(".")
    wildcard = labels[0] == "*"
    if wildcard:
        labels = labels[1:]
    if len(host) > 253 or not labels or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise SpecError(field, name, "not a DNS name or IP address", _NAME_RULE)
    if wildcard and len(labels) < 2:
        # RFC 6125 6.4.3 / CA/Browser practice: a wildcard never covers a whole top-level domain.
        raise SpecError(field, name, "a wildcard needs at least two labels after it", _NAME_RULE)
    return host


def _name_list(fields: Mapping[str, Any]) -> list[str]:
    value = fields.get("SUBJECT_ALTERNATIVE_NAMES")
    if value is None or value == "":
        return []
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except (json.JSONDecodeError, RecursionError):
                raise SpecError(
                    "SUBJECT_ALTERNATIVE_NAMES",
                    value,
                    "not a valid JSON list",
                    "a JSON list or a comma-separated string of names",
                ) from None
        else:
            return [part for part in (p.strip() for p in stripped.split(",")) if part]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(
            "SUBJECT_ALTERNATIVE_NAMES",
            value,
            "must be a list of strings",
            "a JSON list or a comma-separated string of names",
        )
    return list(value)


def _key_algorithm(fields: Mapping[str, Any]) -> KeyAlgorithm:
    raw = _string(fields, "KEY_ALGORITHM")
    allowed = [*_ORIGINAL_KEY_TYPES, *(k.value for k in KeyAlgorithm)]
    if not raw:
        return KeyAlgorithm.RSA_2048
    if raw.upper() in _UNSIGNABLE:
        raise SpecError("KEY_ALGORITHM", raw, _UNSIGNABLE[raw.upper()], allowed)
    if raw.upper() == "TYPE_RSA":
        size = _string(fields, "KEY_SIZE") or "2048"
        if size not in _RSA_SIZES:
            problem = (
                "AWS Private CA cannot sign RSA keys below 2048 bits"
                if size.isdigit() and int(size) < 2048
                else "unsupported RSA key size"
            )
            raise SpecError("KEY_SIZE", size, problem, list(_RSA_SIZES))
        return _RSA_SIZES[size]
    if raw.upper() == "TYPE_EC":
        curve = _string(fields, "EC_CURVE") or "prime256v1"
        if curve.lower() not in _CURVE_ALIASES:
            raise SpecError("EC_CURVE", curve, "unsupported curve", ["prime256v1", "secp384r1", "secp521r1"])
        return _CURVE_ALIASES[curve.lower()]
    for member in KeyAlgorithm:
        if member.value.upper() == raw.upper():
            return member
    problem = (
        "AWS Private CA cannot sign RSA keys below 2048 bits"
        if raw.upper() in ("RSA_1024", "RSA_512")
        else "unknown key algorithm"
    )
    raise SpecError("KEY_ALGORITHM", raw, problem, allowed)


def _signing(fields: Mapping[str, Any]) -> tuple[KeyFamily | None, SigningHash]:
    raw_algorithm = _string(fields, "SIGNING_ALGORITHM").upper()
    raw_hash = _string(fields, "SIGNING_HASH").lower().replace("-", "")
    allowed_hashes = [h.value for h in SigningHash]
    if raw_hash and raw_hash not in allowed_hashes:
        raise SpecError("SIGNING_HASH", _string(fields, "SIGNING_HASH"), "unsupported hash", allowed_hashes)
    full = _FULL_SIGNING.fullmatch(raw_algorithm)
    if full:
        digest = SigningHash("sha" + full.group(1))
        if raw_hash and raw_hash != digest.value:
            raise SpecError("SIGNING_HASH", raw_hash, f"contradicts SIGNING_ALGORITHM {raw_algorithm}", [digest.value])
        return KeyFamily(full.group(2)), digest
    if raw_algorithm and raw_algorithm not in KeyFamily.__members__:
        raise SpecError(
            "SIGNING_ALGORITHM",
            _string(fields, "SIGNING_ALGORITHM"),
            "unknown signing algorithm",
            [
                "RSA",
                "ECDSA",
                "SHA256WITHRSA",
                "SHA384WITHRSA",
                "SHA512WITHRSA",
                "SHA256WITHECDSA",
                "SHA384WITHECDSA",
                "SHA512WITHECDSA",
            ],
        )
    family = KeyFamily(raw_algorithm) if raw_algorithm else None
    return family, SigningHash(raw_hash) if raw_hash else SigningHash.SHA256


_VALIDITY = re.compile(r"^(\d{1,5})\s*(DAYS?|MONTHS?|YEARS?|D|M|Y)?$", re.IGNORECASE)
_UNIT = {"D": ValidityUnit.DAYS, "M": ValidityUnit.MONTHS, "Y": ValidityUnit.YEARS}


def _validity(fields: Mapping[str, Any]) -> Validity:
    raw = _string(fields, "VALIDITY")
    if not raw:
        return Validity(365, ValidityUnit.DAYS)
    match = _VALIDITY.fullmatch(raw)
    if not match or int(match.group(1)) < 1:
        raise SpecError(
            "VALIDITY",
            raw,
            "not a validity period",
            "a positive number of days (e.g. 90), or '<n> DAYS', '<n> MONTHS', '<n> YEARS'",
        )
    unit = _UNIT[(match.group(2) or "D")[0].upper()]
    return Validity(int(match.group(1)), unit)


def _renew_before(fields: Mapping[str, Any]) -> timedelta | None:
    raw = _string(fields, "RENEW_BEFORE_DAYS", number=True)
    if not raw:
        return None
    try:
        days = float(raw)
    except ValueError:
        days = -1.0
    if not 0 < days <= 3650:
        raise SpecError(
            "RENEW_BEFORE_DAYS",
            raw,
            "not a number of days",
            "a number greater than 0 (fractions allowed, e.g. 0.25 for 6 hours)",
        )
    return timedelta(days=days)


_GRACE = re.compile(r"(\d{1,4})\s*(HOURS?|DAYS?|H|D)?", re.IGNORECASE)


def _revoke_superseded_after(fields: Mapping[str, Any]) -> timedelta | None:
    """``REVOKE_SUPERSEDED_AFTER``: how long a replaced certificate stays valid (absent: never revoked)."""
    raw = _string(fields, "REVOKE_SUPERSEDED_AFTER", number=True)
    if not raw:
        return None
    match = _GRACE.fullmatch(raw.strip())
    if not match:
        raise SpecError(
            "REVOKE_SUPERSEDED_AFTER",
            raw,
            "not a grace period",
            "a whole number of days (e.g. 7), or '<n> DAYS', '<n> HOURS' (0 to 9999)",
        )
    amount = int(match.group(1))
    unit = (match.group(2) or "D")[0].upper()
    return timedelta(hours=amount) if unit == "H" else timedelta(days=amount)
