"""The names a specification asks for (COMMON_NAME, SUBJECT_ALTERNATIVE_NAMES) and the secret size they imply. Pure."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any

from rotation.errors import SpecError
from rotation.issuance.spec.record import BUNDLE_ALLOWANCE, MAX_NAMES, OUTPUT_FIELDS, SECRET_VALUE_LIMIT
from rotation.issuance.spec.values import text

_DNS_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def read_common_name(fields: Mapping[str, Any]) -> str:
    common_name = _dns_or_ip("COMMON_NAME", text(fields, "COMMON_NAME", required=True))
    if len(common_name) > 64:
        raise SpecError("COMMON_NAME", common_name, "longer than 64 characters (X.509 upper bound)")
    return common_name


def read_alternative_names(fields: Mapping[str, Any]) -> tuple[str, ...]:
    names = _name_list(fields)
    if len(names) >= MAX_NAMES:
        raise SpecError(
            "SUBJECT_ALTERNATIVE_NAMES",
            f"{len(names)} names",
            f"too many names for one certificate (COMMON_NAME counts as one of {MAX_NAMES})",
            f"at most {MAX_NAMES - 1} names",
        )
    return tuple(_dns_or_ip("SUBJECT_ALTERNATIVE_NAMES", n) for n in names)


def check_secret_size(fields: Mapping[str, Any]) -> None:
    """The rotated secret fits in Secrets Manager (checked only once the names read: their problems are their own)."""
    try:
        names = read_common_name(fields), read_alternative_names(fields)
    except SpecError:
        return
    _refuse_oversized(fields, *names)


def _refuse_oversized(fields: Mapping[str, Any], common_name: str, sans: tuple[str, ...]) -> None:
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
