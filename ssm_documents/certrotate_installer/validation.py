"""The bundle: content rules, key match and chain, proven by an in-memory TLS handshake."""

import errno
import hashlib
import os
import ssl
import time
from typing import Any, Callable, List, NamedTuple, Optional, Sequence, Tuple

from .certificate import KEY_LABELS, CertificateFacts, certificate_facts, pem, pem_blocks
from .output import Exit, InstallError, refused
from .path_policy import TargetKind

MAX_CHAIN_CERTIFICATES = 10
# A certificate that expires within this many seconds is refused (it would not outlive the install).
MIN_REMAINING_SECONDS = 3600


class Bundle(NamedTuple):
    """Canonical PEM bytes of the three files, and the certificate's facts."""

    certificate: bytes
    key: bytes
    chain: bytes
    facts: CertificateFacts

    def contents(self) -> Tuple[bytes, bytes, bytes]:
        return (self.certificate, self.key, self.chain)


def parse_bundle(certificate: str, key: str, chain: str, names: Tuple[str, str, str]) -> Bundle:
    """Pure: the three PEM texts under the content rules.

    CERTIFICATE_PEM holds exactly one CERTIFICATE block, CERTIFICATE_CHAIN_PEM one or more and
    nothing else, PRIVATE_KEY_PEM exactly one unencrypted private key: a key anywhere else, or
    anything else anywhere, is refused.

    Raises:
        ValueError: naming the field.
    """
    cert_blocks = pem_blocks(certificate, names[0])
    if [label for label, _ in cert_blocks] != ["CERTIFICATE"]:
        raise ValueError(f"{names[0]} must hold exactly one CERTIFICATE block and nothing else")
    chain_blocks = pem_blocks(chain, names[2])
    if not chain_blocks or any(label != "CERTIFICATE" for label, _ in chain_blocks):
        raise ValueError(f"{names[2]} must hold CERTIFICATE blocks only")
    if len(chain_blocks) > MAX_CHAIN_CERTIFICATES:
        raise ValueError(
            f"{names[2]} holds {len(chain_blocks)} certificates (at most {MAX_CHAIN_CERTIFICATES}): "
            "a CA bundle, not a chain"
        )
    key_blocks = pem_blocks(key, names[1])
    if len(key_blocks) != 1 or key_blocks[0][0] not in KEY_LABELS:
        raise ValueError(
            "{} must hold exactly one unencrypted private key ({})".format(names[1], ", ".join(KEY_LABELS))
        )
    facts = certificate_facts(cert_blocks[0][1])
    for _, der in chain_blocks:
        certificate_facts(der)
    return Bundle(
        pem("CERTIFICATE", cert_blocks[0][1]),
        pem(key_blocks[0][0], key_blocks[0][1]),
        b"".join(pem("CERTIFICATE", der) for _, der in chain_blocks),
        facts,
    )


def _raise_on_password() -> bytes:
    raise ValueError("the private key is encrypted")


def _memory_file(data: bytes, spare: Optional[int]) -> Tuple[str, Any]:
    """A /dev/fd path to an unnamed file holding ``data``, gone when closed or when this process
    dies; never linked into a directory. In order: memfd_create (Python 3.8+: in memory, in no
    file system a local user can fill), O_TMPFILE in /dev/shm, O_TMPFILE in the directory
    ``spare`` (a descriptor of the root-only state directory, once the run opened it: for when a
    local user has filled /dev/shm).

    Raises:
        OSError: no mechanism worked (the last error).
    """
    attempts: List[Callable[[], int]] = []
    create = getattr(os, "memfd_create", None)
    if create is not None:
        attempts.append(lambda: int(create("certrotate", getattr(os, "MFD_CLOEXEC", 1))))
    flags = getattr(os, "O_TMPFILE", 0) | os.O_RDWR | os.O_CLOEXEC
    in_memory = "/dev/shm"  # noqa: S108 - O_TMPFILE: the file never has a name to race for
    if flags & getattr(os, "O_TMPFILE", 0):
        attempts.append(lambda: os.open(in_memory, flags, 0o600))
        if spare is not None:
            attempts.append(lambda: os.open(".", flags, 0o600, dir_fd=spare))
    failure = OSError(errno.ENOSYS, "no unnamed-file mechanism on this host")
    for attempt in attempts:
        try:
            fd = attempt()
        except OSError as exc:
            failure = exc
            continue
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:  # ENOSPC: a full /dev/shm
            os.close(fd)
            failure = exc
            continue
        return f"/dev/fd/{fd}", os.fdopen(fd, "rb")
    raise failure


def server_context(bundle: Bundle, with_chain: bool = False, spare: Optional[int] = None) -> ssl.SSLContext:
    """A TLS server context holding the bundle's certificate (and with ``with_chain`` the chain it
    sends) and key (``spare``: see ``_memory_file``).

    Raises:
        ValueError: the key does not match, or cannot be read.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert_path, cert_file = _memory_file(bundle.certificate + (bundle.chain if with_chain else b""), spare)
    key_path, key_file = _memory_file(bundle.key, spare)
    try:
        context.load_cert_chain(cert_path, key_path, password=_raise_on_password)
    except (OSError, ValueError) as exc:
        if not isinstance(exc, ssl.SSLError):
            raise ValueError("the private key cannot be read") from None
        # KEY_VALUES_MISMATCH: same key type; NO_CERTIFICATE_ASSIGNED: a key of another type.
        if str(getattr(exc, "reason", "")) in ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED"):
            raise ValueError("the private key does not match the certificate") from None
        raise ValueError("the private key cannot be read") from None
    finally:
        cert_file.close()
        key_file.close()
    return context


_PARTIAL_CHAIN = 0x80000  # X509_V_FLAG_PARTIAL_CHAIN (ssl.VERIFY_X509_PARTIAL_CHAIN from Python 3.10)


def pinned_anchors(bundle: Bundle, pins: Sequence[str]) -> bytes:
    """Pure: the chain's certificates whose SHA-256 is pinned (all of the chain without pins).

    Raises:
        ValueError: pins are set and no certificate of the chain is pinned.
    """
    if not pins:
        return bundle.chain
    blocks = pem_blocks(bundle.chain.decode("ascii"), "the chain")
    anchors = [der for _, der in blocks if hashlib.sha256(der).hexdigest() in pins]
    if not anchors:
        raise ValueError(
            "the chain does not include the issuing CA the host file pins (issuing_ca_sha256 {})".format(
                ", ".join(pin[:16] + "..." for pin in pins)
            )
        )
    return b"".join(pem("CERTIFICATE", der) for der in anchors)


def handshake(bundle: Bundle, pins: Sequence[str] = (), spare: Optional[int] = None) -> None:
    """A TLS handshake in memory: our server sending the certificate and chain, a client trusting
    only the bundle's chain, or with ``pins`` only the chain's pinned CA certificates.

    Raises:
        ValueError: the key does not match or the chain does not verify the certificate.
    """
    anchors = pinned_anchors(bundle, pins)
    server = server_context(bundle, with_chain=True, spare=spare)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False  # names are the rotation's business; this proves key and chain
    client.verify_flags |= _PARTIAL_CHAIN
    client.load_verify_locations(cadata=anchors.decode("ascii"))
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_client = client.wrap_bio(to_client, to_server)
    tls_server = server.wrap_bio(to_server, to_client, server_side=True)
    done = [False, False]
    for _ in range(20):
        for index, side in enumerate((tls_client, tls_server)):
            if done[index]:
                continue
            try:
                side.do_handshake()
                done[index] = True
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except ssl.SSLError as exc:
                if index == 1 and not done[0]:
                    continue  # the client's alert explains it on its side
                reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or str(exc)
                raise ValueError(f"the chain does not verify the certificate: {reason}") from None
        if done[0]:
            return
    raise ValueError("the chain does not verify the certificate: the in-memory handshake did not finish")


def validate_bundle(bundle: Bundle, now: float, pins: Sequence[str] = (), spare: Optional[int] = None) -> None:
    """Everything checked before the first change; the end-entity rules are the engine's
    (rotation/issuance/verification.py check_end_entity). ``spare``: see ``_memory_file``.

    Raises:
        InstallError: BUNDLE_INVALID.
    """
    facts = bundle.facts
    expiry = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(facts.not_after))
    if facts.not_after <= now:
        raise InstallError(Exit.BUNDLE_INVALID, f"the certificate expired at {expiry}")
    if facts.not_after - now < MIN_REMAINING_SECONDS:
        raise InstallError(
            Exit.BUNDLE_INVALID,
            f"the certificate expires at {expiry}, in less than {MIN_REMAINING_SECONDS} seconds; certrotate "
            "installs only a certificate that outlives the install",
        )
    if facts.is_ca:
        raise InstallError(Exit.BUNDLE_INVALID, "the certificate is a CA certificate (basicConstraints CA:TRUE)")
    if facts.signs:
        raise InstallError(Exit.BUNDLE_INVALID, "the certificate may sign certificates or CRLs (keyCertSign/cRLSign)")
    if not facts.server_auth:
        raise InstallError(Exit.BUNDLE_INVALID, "the certificate's extended key usage lacks serverAuth")
    if not facts.common_name:
        raise InstallError(
            Exit.BUNDLE_INVALID, "the certificate has no common name to check the served certificate with"
        )
    try:
        handshake(bundle, pins, spare)
    except ValueError as exc:
        raise InstallError(Exit.BUNDLE_INVALID, str(exc)) from None


def key_matches(certificate: bytes, key: bytes, spare: Optional[int] = None) -> bool:
    """Whether a certificate file's first certificate and a key file's key (the same file in the
    combined layout) belong together (``spare``: see ``_memory_file``)."""
    try:
        cert_blocks = [b for b in pem_blocks(certificate.decode("ascii"), "certificate") if b[0] == "CERTIFICATE"]
        key_blocks = [b for b in pem_blocks(key.decode("ascii"), "key") if b[0] in KEY_LABELS]
        bundle = Bundle(
            pem("CERTIFICATE", cert_blocks[0][1]),
            pem(key_blocks[0][0], key_blocks[0][1]),
            b"",
            certificate_facts(cert_blocks[0][1]),
        )
        server_context(bundle, spare=spare)
    except (ValueError, IndexError, UnicodeDecodeError):
        return False
    return True


def check_existing_content(kind: TargetKind, data: bytes, shown: str) -> None:
    """An existing target must already be a certificate (or key) file: certrotate replaces no other file.

    Raises:
        InstallError: REFUSED.
    """
    try:
        labels = [label for label, _ in pem_blocks(data.decode("ascii"), shown)]
    except (ValueError, UnicodeDecodeError):
        labels = ["?"]
    if not labels:
        return
    if labels.count("CERTIFICATE") > MAX_CHAIN_CERTIFICATES:
        raise refused(
            f"{shown} holds {labels.count('CERTIFICATE')} certificates: it is a CA bundle (an OS trust bundle or "
            "a client CA file), not a certificate file; certrotate never replaces it"
        )
    if kind is TargetKind.KEY:
        expected_ok, what = len(labels) == 1 and labels[0] in KEY_LABELS, "private key"
    elif kind is TargetKind.COMBINED:
        keys = [label for label in labels if label in KEY_LABELS]
        expected_ok = len(keys) == 1 and set(labels) - set(keys) == {"CERTIFICATE"}
        what = "certificate, chain and key"
    else:
        expected_ok, what = set(labels) == {"CERTIFICATE"}, "certificate"
    if not expected_ok:
        raise refused(f"{shown} exists and is not a {what} file; certrotate replaces only its own kind of file")
