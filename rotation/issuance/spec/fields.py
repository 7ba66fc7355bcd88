"""The specification's fields: one reader per field, in one table that parsing and the problem list walk. Pure.

:data:`FIELDS` names, for every :class:`~rotation.issuance.spec.record.CertSpec` attribute, the
reader that fills it from the secret's JSON fields. A reader refuses with a
:class:`~rotation.errors.SpecError` naming the field, the value and the allowed values; a reader
whose field depends on another (ACM's key types, ACM's keys never reused, the renewal policy's
default) reads that other field leniently and leaves its problem to that field's own reader. A
new field is a :class:`CertSpec` attribute, its reader and its row (a test pins the table to the
record).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rotation.errors import SpecError
from rotation.issuance.spec.choices import (
    ACM_KEY_ALGORITHMS,
    CURVE_ALIASES,
    DEFAULT_TEMPLATE_ARN,
    END_ENTITY_TEMPLATES,
    ORIGINAL_KEY_TYPES,
    RSA_SIZES,
    UNSIGNABLE,
    CertificateType,
    KeyAlgorithm,
    KeyFamily,
    RenewalPolicy,
    SigningHash,
    ValidityUnit,
)
from rotation.issuance.spec.names import check_secret_size, read_alternative_names, read_common_name
from rotation.issuance.spec.record import CertSpec, Validity
from rotation.issuance.spec.values import choice, flag, text

# Patterns are applied with ``fullmatch``: ``$`` would also match before a trailing newline.
_CA_ARN = re.compile(r"arn:aws[a-z-]*:acm-pca:[a-z]{2}(-[a-z]+)+-\d:\d{12}:certificate-authority/[0-9a-f-]{36}")

#: What a Private CA ARN looks like (the issuance policy validates its ``ca_arns`` with it too).
CA_ARN_PATTERN = _CA_ARN

_TEMPLATE_ARN = re.compile(r"arn:(aws|aws-cn|aws-us-gov):acm-pca:::template/(?P<name>[A-Za-z0-9_]+/V\d+)")

_FULL_SIGNING = re.compile(r"^SHA(256|384|512)WITH(RSA|ECDSA)$")


def _certificate_type(fields: Mapping[str, Any]) -> CertificateType:
    certificate_type = choice(fields, "CERTIFICATE_TYPE", CertificateType, required=True)
    assert certificate_type is not None
    return certificate_type


def _ca_arn(fields: Mapping[str, Any]) -> str:
    ca_arn = text(fields, "CA_ARN", required=True)
    if not _CA_ARN.fullmatch(ca_arn):
        raise SpecError(
            "CA_ARN", ca_arn, "not a Private CA ARN", "arn:aws:acm-pca:<region>:<account>:certificate-authority/<id>"
        )
    return ca_arn


def _template_arn(fields: Mapping[str, Any]) -> str:
    template_arn = text(fields, "TEMPLATE_ARN") or DEFAULT_TEMPLATE_ARN
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


def _key_algorithm(fields: Mapping[str, Any]) -> KeyAlgorithm:
    """``KEY_ALGORITHM`` (or the original ``TYPE_RSA`` + ``KEY_SIZE``, ``TYPE_EC`` + ``EC_CURVE``).

    For an ACM_ISSUED certificate, only what ACM requests (:data:`ACM_KEY_ALGORITHMS`).
    """
    key_algorithm = _key_algorithm_named(fields)
    if _issued_by(fields) is CertificateType.ACM_ISSUED and key_algorithm not in ACM_KEY_ALGORITHMS:
        raise SpecError(
            "KEY_ALGORITHM",
            key_algorithm.value,
            "ACM does not issue this key type",
            [k.value for k in ACM_KEY_ALGORITHMS],
        )
    return key_algorithm


def _key_algorithm_named(fields: Mapping[str, Any]) -> KeyAlgorithm:
    raw = text(fields, "KEY_ALGORITHM")
    allowed = [*ORIGINAL_KEY_TYPES, *(k.value for k in KeyAlgorithm)]
    if not raw:
        return KeyAlgorithm.RSA_2048
    if raw.upper() in UNSIGNABLE:
        raise SpecError("KEY_ALGORITHM", raw, UNSIGNABLE[raw.upper()], allowed)
    if raw.upper() == "TYPE_RSA":
        size = text(fields, "KEY_SIZE") or "2048"
        if size not in RSA_SIZES:
            problem = (
                "AWS Private CA cannot sign RSA keys below 2048 bits"
                if size.isdigit() and int(size) < 2048
                else "unsupported RSA key size"
            )
            raise SpecError("KEY_SIZE", size, problem, list(RSA_SIZES))
        return RSA_SIZES[size]
    if raw.upper() == "TYPE_EC":
        curve = text(fields, "EC_CURVE") or "prime256v1"
        if curve.lower() not in CURVE_ALIASES:
            raise SpecError("EC_CURVE", curve, "unsupported curve", ["prime256v1", "secp384r1", "secp521r1"])
        return CURVE_ALIASES[curve.lower()]
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
    raw_algorithm = text(fields, "SIGNING_ALGORITHM").upper()
    raw_hash = text(fields, "SIGNING_HASH").lower().replace("-", "")
    allowed_hashes = [h.value for h in SigningHash]
    if raw_hash and raw_hash not in allowed_hashes:
        raise SpecError("SIGNING_HASH", text(fields, "SIGNING_HASH"), "unsupported hash", allowed_hashes)
    full = _FULL_SIGNING.fullmatch(raw_algorithm)
    if full:
        digest = SigningHash("sha" + full.group(1))
        if raw_hash and raw_hash != digest.value:
            raise SpecError("SIGNING_HASH", raw_hash, f"contradicts SIGNING_ALGORITHM {raw_algorithm}", [digest.value])
        return KeyFamily(full.group(2)), digest
    if raw_algorithm and raw_algorithm not in KeyFamily.__members__:
        raise SpecError(
            "SIGNING_ALGORITHM",
            text(fields, "SIGNING_ALGORITHM"),
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
    raw = text(fields, "VALIDITY")
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
    raw = text(fields, "RENEW_BEFORE_DAYS", number=True)
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
    raw = text(fields, "REVOKE_SUPERSEDED_AFTER", number=True)
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


def _environment(fields: Mapping[str, Any]) -> str:
    """``ENVIRONMENT``: free text; ``TEST`` keeps the original sample's meaning (every rotation renews)."""
    return text(fields, "ENVIRONMENT") or ""


def _renewal_policy(fields: Mapping[str, Any]) -> RenewalPolicy:
    """``RENEWAL_POLICY``; absent: ``ALWAYS`` for Private CA, ``WHEN_DUE`` for ACM (ACM renews its own)."""
    chosen = choice(fields, "RENEWAL_POLICY", RenewalPolicy)
    if chosen is not None:
        return chosen
    return RenewalPolicy.WHEN_DUE if _issued_by(fields) is CertificateType.ACM_ISSUED else RenewalPolicy.ALWAYS


def _reuse_private_key(fields: Mapping[str, Any]) -> bool:
    """``REUSE_PRIVATE_KEY``: never for ACM_ISSUED (ACM generates the key)."""
    reuse = flag(fields, "REUSE_PRIVATE_KEY")
    if reuse and _issued_by(fields) is CertificateType.ACM_ISSUED:
        raise SpecError(
            "REUSE_PRIVATE_KEY",
            fields.get("REUSE_PRIVATE_KEY"),
            "ACM generates the key of an ACM_ISSUED certificate",
            ["false"],
        )
    return reuse


def _issued_by(fields: Mapping[str, Any]) -> CertificateType | None:
    """``CERTIFICATE_TYPE`` read leniently, for a field that depends on it (its problem is its own reader's)."""
    try:
        return _certificate_type(fields)
    except SpecError:
        return None


@dataclass(frozen=True)
class SpecField:
    """A row of :data:`FIELDS`: the :class:`CertSpec` attributes ``read`` fills from the secret's fields.

    One attribute: ``read`` returns its value; several: a tuple of their values, in order; none:
    ``read`` only checks (the secret's size).
    """

    attributes: tuple[str, ...]
    read: Callable[[Mapping[str, Any]], Any]


#: Every field, in the order problems are reported (:func:`spec_problems`) and the first is raised (:func:`parse_spec`).
FIELDS: tuple[SpecField, ...] = (
    SpecField(("certificate_type",), _certificate_type),
    SpecField(("ca_arn",), _ca_arn),
    SpecField(("common_name",), read_common_name),
    SpecField(("subject_alternative_names",), read_alternative_names),
    SpecField(("key_algorithm",), _key_algorithm),
    SpecField(("signing_family", "signing_hash"), _signing),
    SpecField(("template_arn",), _template_arn),
    SpecField(("validity",), _validity),
    SpecField(("renew_before",), _renew_before),
    SpecField(("revoke_superseded_after",), _revoke_superseded_after),
    SpecField(("renewal_policy",), _renewal_policy),
    SpecField(("reuse_private_key",), _reuse_private_key),
    SpecField((), check_secret_size),
    SpecField(("environment",), _environment),
)


def parse_spec(fields: Mapping[str, Any]) -> CertSpec:
    """Parse and validate the specification fields of a secret.

    Raises:
        SpecError: the first field that is missing, malformed or names something Private CA
            cannot sign (:func:`spec_problems` lists them all).
    """
    values, problems = _read(fields)
    if problems:
        raise problems[0]
    return CertSpec(**values)


def spec_problems(fields: Mapping[str, Any]) -> list[SpecError]:
    """Every problem of a specification, each field read on its own, for ``certrotate validate``."""
    return _read(fields)[1]


def _read(fields: Mapping[str, Any]) -> tuple[dict[str, Any], list[SpecError]]:
    values: dict[str, Any] = {}
    problems: list[SpecError] = []
    for row in FIELDS:
        try:
            value = row.read(fields)
        except SpecError as exc:
            problems.append(exc)
            continue
        if len(row.attributes) == 1:
            values[row.attributes[0]] = value
        elif row.attributes:
            values.update(zip(row.attributes, value, strict=True))
    return values, problems
