"""Trust bundles, pure: where the host file puts each bundle, and a bundle's CA certificates checked.

A trust bundle is a named set of CA certificates in a Secrets Manager secret under
``certrotate/trust-bundles/<name>`` (field ``TRUST_BUNDLE_PEM``), written by operators only. The host
file's ``trust_bundles`` says where each bundle a host takes goes::

    "trust_bundles": {"partners": {
        "secret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:certrotate/trust-bundles/partners",
        "client_ca": true,
        "files": ["/etc/certrotate/trust/partners.pem"],
        "system_trust_files": ["/etc/ssl/certs/partners.pem"],
        "server_name": "www.example.com"}}

``secret``: the bundle secret's ARN without the 6 characters Secrets Manager appends (required: the
account and region a bundle comes from are root's choice, never the command sender's, who could
otherwise point BundleArn at a same-named secret in an account they own); ``client_ca``: the server's
client-CA file for mutual TLS, the path its adapter's key names (``Server.client_ca_key``:
``apache_client_ca_file``...); ``files``: application trust files a local program reads, never in a
system trust directory; ``system_trust_files``: the only way into one, each named on purpose;
``server_name``: the SNI of the client-CA check (the default virtual host without it).
"""

import hashlib
import re
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from .certificate import CertificateFacts, certificate_facts, pem, pem_blocks
from .output import Exit, InstallError, refused
from .parameters import BUNDLE_ARN, BUNDLE_NAME_PATTERN, PATH_PATTERN, TRUST_BUNDLE_PREFIX

BUNDLE_FIELD = "TRUST_BUNDLE_PEM"
MAX_BUNDLE_CERTIFICATES = 64  # a bundle is a few CAs; a secret's 64 KB holds about 40 RSA-4096 ones
ENTRY_KEYS = ("client_ca", "files", "secret", "server_name", "system_trust_files")
_SERVER_NAME = r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?"


class TrustEntry(NamedTuple):
    """One bundle of the host file: where it goes on this host."""

    name: str
    secret: str  # the bundle secret's ARN less Secrets Manager's "-XXXXXX"
    client_ca: bool = False
    files: Tuple[str, ...] = ()
    system_files: Tuple[str, ...] = ()  # in a system trust directory: allowed because named here
    server_name: str = ""


class Destination(NamedTuple):
    """One file a bundle is installed to."""

    path: str
    client_ca: bool  # the server's client-CA file: a config test, reload and CA-names check follow
    system: bool  # named in system_trust_files: the trust-directory refusal does not apply


class TrustBundle(NamedTuple):
    """A bundle as fetched and checked: its CA certificates and the file content installed."""

    name: str
    certificates: Tuple[CertificateFacts, ...]
    content: bytes  # canonical PEM of every certificate, in the bundle's order

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the installed content: what hosts report and the operator compares."""
        return hashlib.sha256(self.content).hexdigest()


def bundle_name(arn: str) -> str:
    """Pure: the bundle's name in a BundleArn (the pattern has checked it): the secret's name after the
    reserved prefix, less the ``-`` and 6 characters Secrets Manager appends."""
    return arn.split(":secret:", 1)[1][len(TRUST_BUNDLE_PREFIX) : -7]


def parse_trust_bundles(path: str, value: Any) -> Tuple[TrustEntry, ...]:
    """Pure: the host file ``path``'s ``trust_bundles``.

    Raises:
        InstallError: REFUSED naming the key, the value and what is allowed.
    """
    if not isinstance(value, dict):
        raise refused(f"host configuration {path}: trust_bundles must be an object of bundle name to its files")
    entries: List[TrustEntry] = []
    for name, spec in sorted(value.items()):
        where = f"host configuration {path}: trust_bundles {name!r}"
        if re.fullmatch(BUNDLE_NAME_PATTERN, name) is None:
            raise refused(f"{where}: a bundle name matches {BUNDLE_NAME_PATTERN}")
        if not isinstance(spec, dict) or set(spec) - set(ENTRY_KEYS):
            raise refused(f"{where} must be an object with keys among {', '.join(ENTRY_KEYS)}")
        secret = spec.get("secret")
        arn = f"{secret}-AAAAAA" if isinstance(secret, str) else ""
        if re.fullmatch(BUNDLE_ARN.pattern, arn) is None or bundle_name(arn) != name:
            raise refused(
                f"{where}: secret must be the bundle secret's ARN without its 6-character suffix, ending in "
                f"{TRUST_BUNDLE_PREFIX}{name}, not {secret!r}"
            )
        client_ca = spec.get("client_ca", False)
        if not isinstance(client_ca, bool):
            raise refused(f"{where}: client_ca must be true or false, not {client_ca!r}")
        server_name = spec.get("server_name", "")
        if server_name and (not isinstance(server_name, str) or re.fullmatch(_SERVER_NAME, server_name) is None):
            raise refused(f"{where}: server_name must be a DNS name, not {server_name!r}")
        files, system = (_paths(where, spec, key) for key in ("files", "system_trust_files"))
        if not (client_ca or files or system):
            raise refused(f"{where} names no destination (client_ca, files or system_trust_files)")
        if len(set(files + system)) != len(files + system):
            raise refused(f"{where} names a file twice")
        entries.append(TrustEntry(name, str(secret), client_ca, files, system, server_name))
    return tuple(entries)


def _paths(where: str, spec: Dict[str, Any], key: str) -> Tuple[str, ...]:
    value = spec.get(key, [])
    if not isinstance(value, list):
        raise refused(f"{where}: {key} must be a list of absolute paths")
    for entry in value:
        if not isinstance(entry, str) or re.fullmatch(PATH_PATTERN, entry) is None or entry in ("", "/"):
            raise refused(f"{where}: {key} entry {entry!r} is not an absolute path")
    return tuple(value)


def find_entry(entries: Sequence[TrustEntry], arn: str, source: str) -> TrustEntry:
    """Pure: the host file's entry for the bundle BundleArn ``arn`` names, from the secret it names.

    Raises:
        InstallError: BAD_PARAMETER: the host takes no such bundle, or not from that account or region.
    """
    name = bundle_name(arn)
    for entry in entries:
        if entry.name == name:
            if arn[:-7] != entry.secret:
                raise InstallError(
                    Exit.BAD_PARAMETER,
                    f"parameter BundleArn {arn!r} is not the secret the host file {source} names for bundle "
                    f"{name!r} (allowed: {entry.secret}-XXXXXX); only root chooses where a bundle comes from",
                )
            return entry
    names = ", ".join(entry.name for entry in entries) or "none"
    raise InstallError(
        Exit.BAD_PARAMETER,
        f"parameter BundleArn names bundle {name!r}, which this host does not take (the host file {source} "
        f"names in trust_bundles: {names}); only root chooses where a bundle goes",
    )


def destinations(entry: TrustEntry, client_ca_file: Optional[str], client_ca_key: str) -> Tuple[Destination, ...]:
    """Pure: every file of ``entry``, the server's client-CA file first.

    Raises:
        InstallError: REFUSED when the entry asks for the client-CA file and the host file names none.
    """
    found: List[Destination] = []
    if entry.client_ca:
        if not client_ca_file:
            key = client_ca_key or "(this server takes no client-CA file)"
            raise refused(f"trust_bundles {entry.name!r} sets client_ca, but the host file names no {key}")
        found.append(Destination(client_ca_file, True, False))
    found += [Destination(path, False, False) for path in entry.files]
    found += [Destination(path, False, True) for path in entry.system_files]
    return tuple(found)


def choose(found: Sequence[Destination], bundle_file: str, name: str) -> Tuple[Destination, ...]:
    """Pure: the destinations of this run: all, or the one BundleFile names.

    Raises:
        InstallError: BAD_PARAMETER when BundleFile is not one of the host file's.
    """
    if not bundle_file:
        return tuple(found)
    chosen = tuple(d for d in found if d.path == bundle_file)
    if not chosen:
        raise InstallError(
            Exit.BAD_PARAMETER,
            f"parameter BundleFile {bundle_file!r} is not a destination of bundle {name!r} (allowed: "
            f"{', '.join(d.path for d in found)} or empty for all); only the host file names them",
        )
    return chosen


def parse_trust_bundle(name: str, text: Any, now: float) -> TrustBundle:
    """Pure: the bundle's certificates, each a CA (basicConstraints CA:TRUE and keyUsage keyCertSign)
    within its validity, none twice; nothing but certificates.

    Raises:
        InstallError: BUNDLE_INVALID naming the certificate (its position and CN), never its content.
    """
    field = f"bundle {name!r} field {BUNDLE_FIELD}"
    if not isinstance(text, str):
        raise InstallError(Exit.BUNDLE_INVALID, f"{field} is missing (a string of PEM certificates)")
    try:
        blocks = pem_blocks(text, field)
    except ValueError as exc:
        raise InstallError(Exit.BUNDLE_INVALID, str(exc)) from None
    if not blocks or len(blocks) > MAX_BUNDLE_CERTIFICATES:
        raise InstallError(Exit.BUNDLE_INVALID, f"{field} holds {len(blocks)} blocks (1 to {MAX_BUNDLE_CERTIFICATES})")
    facts: List[CertificateFacts] = []
    for index, (label, der) in enumerate(blocks, 1):
        if label != "CERTIFICATE":
            raise InstallError(Exit.BUNDLE_INVALID, f"{field} block {index} is a {label}, not a CERTIFICATE")
        try:
            cert = certificate_facts(der)
        except ValueError as exc:
            raise InstallError(Exit.BUNDLE_INVALID, f"{field} certificate {index} does not parse ({exc})") from None
        problem = ca_problem(cert, now)
        if problem:
            cn = cert.common_name[:64]
            raise InstallError(Exit.BUNDLE_INVALID, f"{field} certificate {index} (CN={cn}) {problem}")
        if any(other.der == cert.der for other in facts):
            raise InstallError(Exit.BUNDLE_INVALID, f"{field} certificate {index} repeats an earlier one")
        facts.append(cert)
    return TrustBundle(name, tuple(facts), b"".join(pem("CERTIFICATE", cert.der) for cert in facts))


def ca_problem(cert: CertificateFacts, now: float) -> str:
    """Pure: why ``cert`` cannot be a trust anchor ("" when it can)."""
    if not cert.is_ca:
        return "is not a CA certificate (basicConstraints CA:TRUE is required); nothing was changed"
    if not cert.cert_sign:
        return "is not a CA certificate (keyUsage keyCertSign is required); nothing was changed"
    if not cert.not_before <= now <= cert.not_after:
        return "is outside its validity period; nothing was changed"
    return ""
