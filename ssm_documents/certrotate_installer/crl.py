"""CRLs, pure: the host file's CRL sources, a CRL's facts from its DER, and the decisions of a CRL run.

A mutual-TLS server given a CRL file (Apache ``SSLCARevocationFile`` with ``SSLCARevocationCheck chain``,
nginx ``ssl_crl``, HAProxy ``crl-file``) refuses a client certificate the file lists. All three then check
every certificate of the client's chain (OpenSSL's ``X509_V_FLAG_CRL_CHECK_ALL``; Apache's ``chain``, chosen
to match the other two), and a certificate whose CA has no CRL in the file fails ("unable to get
certificate CRL"), as does every client once a CRL is past its nextUpdate ("CRL has expired"). So the
installer writes a CRL file only when it holds one current CRL for every CA of the server's client-CA
bundle, each signed by that CA, none older than the one installed.

The host file names where the CRLs come from (``crl_sources``, root's choice: no document parameter
and no secret names one)::

    "crl_sources": ["s3://my-crl-bucket/crl/0b5e8f0e-....crl",
                    "http://crl.example.com/crl/4c1d....crl"]

``s3://BUCKET/KEY`` is read with the aws CLI and the host's credentials (a bucket whose CRL objects are
BUCKET_OWNER_FULL_CONTROL); ``http://`` and ``https://`` are fetched as a client fetches the CRL
Distribution Point (a PUBLIC_READ object or a custom CNAME), redirects refused.
"""

import re
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

from .certificate import _children, _der_time, _tlv, pem, pem_blocks
from .output import Exit, InstallError, refused

CRL_LABEL = "X509 CRL"
MAX_SOURCES = 16
MAX_CRL_BYTES = 16 * 1024 * 1024  # Private CA's CRLs of a million revocations are ~40 MB; ours are far smaller
_S3 = r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>[A-Za-z0-9!_.*'()/-]{1,1024})"
_HTTP = r"(?P<scheme>https?)://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?(/[A-Za-z0-9._~%!$&'()*+,;=:@/-]{0,2000})?"
_CRL_NUMBER_OID = b"\x55\x1d\x14"
_DELTA_CRL_OID = b"\x55\x1d\x1b"


class CrlFacts(NamedTuple):
    """What the installer needs of one CRL."""

    der: bytes
    issuer_der: bytes  # the issuer Name, DER (compared with a CA's subject)
    this_update: float
    next_update: Optional[float]
    number: Optional[int]  # the cRLNumber extension
    revoked: int  # how many certificates it lists
    source: str = ""


def parse_crl_sources(path: str, value: Any) -> Tuple[str, ...]:
    """Pure: the host file ``path``'s ``crl_sources``.

    Raises:
        InstallError: REFUSED naming the entry and the forms allowed.
    """
    if not isinstance(value, list) or len(value) > MAX_SOURCES:
        raise refused(f"host configuration {path}: crl_sources must be a list of at most {MAX_SOURCES} CRL locations")
    for entry in value:
        if not isinstance(entry, str) or not (re.fullmatch(_S3, entry) or re.fullmatch(_HTTP, entry)):
            raise refused(
                f"host configuration {path}: crl_sources entry {entry!r} is not a CRL location "
                "(allowed: s3://BUCKET/KEY, http://HOST/PATH or https://HOST/PATH)"
            )
    if len(set(value)) != len(value):
        raise refused(f"host configuration {path}: crl_sources names a location twice")
    return tuple(value)


def s3_location(source: str) -> Optional[Tuple[str, str]]:
    """Pure: (bucket, key) of an ``s3://`` source, None for an HTTP one."""
    match = re.fullmatch(_S3, source)
    return (match.group("bucket"), match.group("key")) if match else None


def crl_facts(der: bytes, source: str = "") -> CrlFacts:
    """Pure: the facts of a DER CRL.

    Raises:
        ValueError: not a DER CRL, or a delta CRL (a server needs the complete one).
    """
    try:
        return _crl_facts(der, source)
    except (IndexError, UnicodeDecodeError, OverflowError) as exc:
        raise ValueError(f"not a DER CRL ({type(exc).__name__})") from None


def _crl_facts(der: bytes, source: str) -> CrlFacts:
    tag, start, end = _tlv(der, 0)
    if tag != 0x30 or end != len(der):
        raise ValueError("not a DER CRL")
    tbs = _children(der, start, end)[0]
    fields = _children(der, tbs[2], tbs[3])
    index = 1 if fields[0][0] == 0x02 else 0  # version v2
    issuer, this_update = fields[index + 1], fields[index + 2]
    if issuer[0] != 0x30 or this_update[0] not in (0x17, 0x18):
        raise ValueError("not a DER CRL")
    rest = fields[index + 3 :]
    next_update = None
    if rest and rest[0][0] in (0x17, 0x18):
        next_update = _der_time(rest[0][0], der[rest[0][2] : rest[0][3]])
        rest = rest[1:]
    revoked = 0
    number: Optional[int] = None
    for field_tag, _, value, field_end in rest:
        if field_tag == 0x30:
            revoked = len(_children(der, value, field_end))
        elif field_tag == 0xA0:
            (sequence,) = _children(der, value, field_end)
            for _, _, extension, extension_end in _children(der, sequence[2], sequence[3]):
                parts = _children(der, extension, extension_end)
                oid = der[parts[0][2] : parts[0][3]]
                if oid == _DELTA_CRL_OID:
                    raise ValueError("a delta CRL (a server needs the complete CRL)")
                if oid == _CRL_NUMBER_OID:
                    (integer,) = _children(der, parts[-1][2], parts[-1][3])
                    number = int.from_bytes(der[integer[2] : integer[3]], "big")
    when = _der_time(this_update[0], der[this_update[2] : this_update[3]])
    return CrlFacts(der, der[issuer[1] : issuer[3]], when, next_update, number, revoked, source)


def crls_of(data: bytes, shown: str) -> List[bytes]:
    """Pure: the DER CRLs of ``data``: one DER CRL, or PEM ``X509 CRL`` blocks and nothing else.

    Raises:
        ValueError: naming ``shown``.
    """
    if data[:1] == b"\x30":
        return [data]
    try:
        blocks = pem_blocks(data.decode("ascii"), shown)
    except UnicodeDecodeError:
        raise ValueError(f"{shown} is neither a DER CRL nor PEM") from None
    if not blocks or any(label != CRL_LABEL for label, _ in blocks):
        raise ValueError(f"{shown} holds other PEM blocks than {CRL_LABEL} (or none)")
    return [der for _, der in blocks]


def time_problem(crl: CrlFacts, now: float) -> str:
    """Pure: why ``crl`` cannot be served at ``now`` ("" when it can)."""
    if crl.this_update > now + 300:
        return "is not yet valid (its thisUpdate is in the future): servers would refuse every client"
    if crl.next_update is None:
        return "has no nextUpdate"
    if crl.next_update <= now:
        return "is past its nextUpdate (expired): servers would refuse every client"
    return ""


def older_problem(new: CrlFacts, installed: Sequence[CrlFacts]) -> str:
    """Pure: why ``new`` must not replace the installed CRL of the same issuer ("" when it may)."""
    for old in installed:
        if old.issuer_der != new.issuer_der:
            continue
        if new.this_update < old.this_update:
            return "is older than the installed one (its thisUpdate is earlier); nothing was changed"
        if new.number is not None and old.number is not None:
            if new.number < old.number:
                return f"is older than the installed one (CRL number {new.number} < {old.number}); nothing was changed"
            if new.number == old.number and new.der != old.der:
                return f"has the installed CRL number {new.number} but other content; nothing was changed"
    return ""


def uncovered(ca_subjects: Sequence[Tuple[str, bytes]], crls: Sequence[CrlFacts]) -> List[str]:
    """Pure: the names of the client-CA bundle's CAs (name, subject DER) that no CRL of ``crls`` is for."""
    issuers = {crl.issuer_der for crl in crls}
    return [name for name, subject in ca_subjects if subject not in issuers]


def file_content(crls: Sequence[CrlFacts]) -> bytes:
    """Pure: the CRL file the servers read: every CRL as PEM, in the order of the sources."""
    return b"".join(pem(CRL_LABEL, crl.der) for crl in crls)


def installed_crls(data: Optional[bytes], path: str) -> List[CrlFacts]:
    """Pure: the CRLs of the live CRL file (none when it does not exist).

    Raises:
        InstallError: REFUSED when the file holds anything but PEM CRLs (a CRL run replaces no other file).
    """
    if data is None:
        return []
    try:
        return [crl_facts(der) for der in crls_of(data, path)] if data.strip() else []
    except ValueError as exc:
        raise refused(f"{path} exists and is not a CRL file ({exc}); a CRL run replaces no other file") from None


def invalid(source: str, problem: str) -> InstallError:
    """The failure of one fetched CRL: BUNDLE_INVALID naming its source."""
    return InstallError(Exit.BUNDLE_INVALID, f"the CRL from {source} {problem}")
