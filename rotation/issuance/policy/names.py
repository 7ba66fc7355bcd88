"""How the issuance policy compares certificate names with a rule's DNS patterns and IP ranges. Pure.

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
from collections.abc import Iterable

ANY_DNS = "."
ANY_IP = ("0.0.0.0/0", "::/0")


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


def name_allowed(name: str, dns_patterns: Iterable[str], ip_ranges: Iterable[str]) -> bool:
    """Whether one certificate name (DNS name, wildcard name or IP address) is inside the patterns or ranges."""
    address = ip_address(name)
    if address is not None:
        return any(address.version == n.version and address in n for n in networks(ip_ranges))
    try:
        normalized = normalize_dns(name)
    except ValueError:
        return False
    return any(dns_pattern_matches(pattern, normalized) for pattern in dns_patterns)


def ip_address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The name as an IP address, or None when it is not one."""
    try:
        return ipaddress.ip_address(name.strip())
    except ValueError:
        return None


def networks(ranges: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """CIDR texts as networks (host bits allowed)."""
    return [ipaddress.ip_network(r, strict=False) for r in ranges]
