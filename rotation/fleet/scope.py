"""The fleet's scope: which regions and accounts may run hosts that serve a secret's certificate. Pure.

Revocation (:mod:`rotation.fleet.revocation`) and served-expiry alarms read hosts only where this
scope says they may run; it comes from the rotation function's environment, which the central
stack sets (``FleetRegions``, ``SecretReaders``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

#: Where revocation looks for hosts (the rotation function's environment, set by the central stack).
FLEET_REGIONS_ENV = "CERTROTATE_FLEET_REGIONS"
SECRET_READERS_ENV = "CERTROTATE_SECRET_READERS"
_ACCOUNT = re.compile(r"^[0-9]{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
#: A SecretReaders prefix (issue 25 item 4): one or more whole name segments, each ending in "/", so
#: ``team-a/`` covers ``team-a/web`` but never ``team-ab/web``, and an empty prefix (every secret of
#: the account) is refused. The central template's ``SecretReaders`` pattern admits the same.
READER_PREFIX = re.compile(r"^(?:[A-Za-z0-9_+=.@-]+/)+$")
#: At most this many entries (the template's pattern; each needs its own key-policy statement).
MAX_READERS = 5


class ScopeError(ValueError):
    """A fleet scope setting that is not valid (names the variable and the value)."""


@dataclass(frozen=True)
class FleetScope:
    """Where hosts that may serve a certificate run, so revocation reads every one of them.

    ``regions``: each region the revoker reads in every account (``CERTROTATE_FLEET_REGIONS``, the
    central stack's ``FleetRegions``; empty: the function's own region). ``readers``: (account,
    secret-name prefix) pairs from the central stack's ``SecretReaders``, the accounts each secret is
    readable from. An account that cannot be read holds only the revocations of secrets it may read
    (every secret while no reader is configured); the secret's own account concerns all of its.
    """

    regions: tuple[str, ...] = ()
    readers: tuple[tuple[str, str], ...] = ()

    def concerns(self, account: str, secret_arn: str) -> bool:
        """Whether hosts of ``account`` may serve the certificates of ``secret_arn``: the secret's own
        account always, another account only when a ``SecretReaders`` entry of it covers the secret's
        name (every account while none is configured). Applied to every record and every past holder
        of the account (readable or not): a host that cannot read a secret cannot serve it, so its word
        about that secret's certificates counts for nothing."""
        parts = secret_arn.split(":")
        if len(parts) < 7 or parts[4] == account or not self.readers:
            return True
        name = ":".join(parts[6:])
        return any(reader == account and reader_covers(prefix, name) for reader, prefix in self.readers)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> FleetScope:
        """Raises:
        ScopeError: a region or reader entry is malformed."""
        regions = [r.strip() for r in environ.get(FLEET_REGIONS_ENV, "").split(",") if r.strip()]
        for region in regions:
            if not _REGION.match(region):
                raise ScopeError(f"{FLEET_REGIONS_ENV}: {region[:40]!r} is not a region name (e.g. eu-west-1)")
        return cls(tuple(dict.fromkeys(regions)), parse_readers(environ.get(SECRET_READERS_ENV, "")))


def reader_covers(prefix: str, secret_name: str) -> bool:
    """Whether one ``SecretReaders`` prefix covers a secret's name (the one place the prefix rule lives)."""
    return secret_name.startswith(prefix)


#: No regions or readers configured: the function's own region, every account reads every secret.
DEFAULT_SCOPE = FleetScope()


def parse_readers(text: str) -> tuple[tuple[str, str], ...]:
    """``ACCOUNT:PREFIX`` entries, comma-separated (the central stack's ``SecretReaders``).

    Raises:
        ScopeError: an entry is not a 12-digit account, a colon and whole name segments each ending
            in "/" (never empty), or there are more than MAX_READERS entries.
    """
    readers = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        account, _, prefix = entry.partition(":")
        if not _ACCOUNT.match(account) or len(prefix) > 512 or not READER_PREFIX.match(prefix):
            raise ScopeError(
                f"{SECRET_READERS_ENV}: {entry[:80]!r} is not ACCOUNT:PREFIX (12 digits, a colon, then "
                "the secret-name segments that account reads, each ending in /, e.g. team-a/; not empty)"
            )
        readers.append((account, prefix))
    if len(readers) > MAX_READERS:
        raise ScopeError(f"{SECRET_READERS_ENV}: {len(readers)} entries; at most {MAX_READERS}")
    return tuple(readers)
