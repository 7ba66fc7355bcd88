"""Verification of a certificate bundle against its spec and its CA, and an in-memory TLS handshake.

Pure: no AWS calls (the CA certificate is handed in). Each check raises
:class:`~rotation.errors.VerificationError` naming the property that failed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from rotation.errors import VerificationError
from rotation.issuance.bundle import CertBundle
from rotation.issuance.keys import describe_key, public_key_der
from rotation.issuance.spec import CertSpec
from rotation.redaction import quote


def verify_bundle(
    bundle: CertBundle,
    spec: CertSpec,
    ca_certificate: x509.Certificate,
    now: datetime,
    *,
    handshake: bool = True,
    client_auth: bool = False,
) -> None:
    """Check every property a staged bundle must have.

    Args:
        bundle: the certificate, key and chain to check.
        spec: what the certificate must say.
        ca_certificate: the issuing CA's certificate as Private CA returns it for ``CA_ARN``.
        now: the moment the certificate must be valid at (timezone-aware).
        handshake: also serve the bundle in a real TLS handshake to a client trusting only the CA.
        client_auth: the issuance policy lets this secret's certificate carry clientAuth.

    Raises:
        VerificationError: the first property that does not hold.
    """
    check_key_matches(bundle)
    check_chain(bundle, ca_certificate)
    check_end_entity(bundle, client_auth=client_auth)
    check_names(bundle, spec)
    check_validity(bundle, now)
    check_key_algorithm(bundle, spec)
    if handshake:
        check_handshake(bundle, spec, ca_certificate)


def verify_promotable(bundle: CertBundle, ca_certificate: x509.Certificate, *, client_auth: bool = False) -> None:
    """The cheap checks finishSecret makes before it moves AWSCURRENT.

    The bundle parses (every PEM field, certificate blocks only where certificates belong), its key
    is the certificate's, the certificate is an end-entity server certificate and it chains to the
    CA. No handshake: testSecret made it, and finishSecret must not depend on having run after it.

    Raises:
        VerificationError: the first property that does not hold.
    """
    check_key_matches(bundle)
    check_chain(bundle, ca_certificate)
    check_end_entity(bundle, client_auth=client_auth)


#: The only purposes a certrotate leaf may carry; clientAuth only where the policy allows it.
_ALLOWED_PURPOSES = {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}


def check_end_entity(bundle: CertBundle, *, client_auth: bool = False) -> None:
    """The certificate is a TLS server leaf: not a CA, cannot sign certificates or CRLs, serverAuth.

    A secret's writer must never obtain a certificate that can issue others, sign code or serve
    any purpose: the extended key usage must be present (a leaf without it is valid for every
    purpose), hold serverAuth, and nothing but serverAuth and, where the issuance policy allows
    it for the secret (``client_auth``), clientAuth.
    """
    extensions = bundle.certificate.extensions
    try:
        if extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise VerificationError("end-entity", "CERTIFICATE_PEM is a CA certificate (basicConstraints CA:TRUE)")
    except x509.ExtensionNotFound:
        pass
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
        if usage.key_cert_sign or usage.crl_sign:
            raise VerificationError("end-entity", "CERTIFICATE_PEM may sign certificates or CRLs (keyCertSign/cRLSign)")
    except x509.ExtensionNotFound:
        pass
    try:
        purposes = set(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        raise VerificationError(
            "end-entity", "CERTIFICATE_PEM has no extended key usage (valid for any purpose); serverAuth is required"
        ) from None
    if ExtendedKeyUsageOID.SERVER_AUTH not in purposes:
        raise VerificationError("end-entity", "CERTIFICATE_PEM's extended key usage lacks serverAuth")
    other = sorted(_purpose_name(p) for p in purposes - _ALLOWED_PURPOSES)
    if other:
        raise VerificationError("end-entity", f"CERTIFICATE_PEM's extended key usage also allows {', '.join(other)}")
    if ExtendedKeyUsageOID.CLIENT_AUTH in purposes and not client_auth:
        raise VerificationError(
            "end-entity", "CERTIFICATE_PEM allows clientAuth, which the issuance policy does not allow for this secret"
        )


def _purpose_name(oid: x509.ObjectIdentifier) -> str:
    if oid == ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE:
        return "anyExtendedKeyUsage"
    name = str(getattr(oid, "_name", ""))
    return name if name and name != "Unknown OID" else oid.dotted_string


def check_key_matches(bundle: CertBundle) -> None:
    if public_key_der(bundle.private_key) != public_key_der(bundle.certificate.public_key()):
        raise VerificationError("key-match", "PRIVATE_KEY_PEM is not the key of CERTIFICATE_PEM")


def check_chain(bundle: CertBundle, ca_certificate: x509.Certificate) -> None:
    """The leaf chains, signature by signature, through the bundle's chain to ``ca_certificate``."""
    anchor = ca_certificate.public_bytes(serialization.Encoding.DER)
    candidates = [*bundle.chain, ca_certificate]
    current = bundle.certificate
    for _ in range(len(candidates) + 1):
        issuer = _issuer_of(current, candidates)
        if issuer is None:
            raise VerificationError(
                "chain",
                f"no certificate in CERTIFICATE_CHAIN_PEM or the CA signed the certificate issued to "
                f"{current.subject.rfc4514_string()!r} (issuer {current.issuer.rfc4514_string()!r})",
            )
        if issuer.public_bytes(serialization.Encoding.DER) == anchor:
            return
        if not _is_ca(issuer):
            raise VerificationError("chain", f"{issuer.subject.rfc4514_string()!r} is not a CA certificate")
        current = issuer
    raise VerificationError("chain", "the chain does not reach the CA certificate of CA_ARN")


def _issuer_of(cert: x509.Certificate, candidates: list[x509.Certificate]) -> x509.Certificate | None:
    for candidate in candidates:
        if candidate.subject != cert.issuer or candidate is cert:
            continue
        try:
            cert.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return candidate
    return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def check_names(bundle: CertBundle, spec: CertSpec) -> None:
    """CN equals COMMON_NAME; the SANs equal COMMON_NAME plus SUBJECT_ALTERNATIVE_NAMES."""
    cns = bundle.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else ""
    if cn.lower() != spec.common_name.lower():
        raise VerificationError("names", f"subject CN {quote(cn)} differs from COMMON_NAME {quote(spec.common_name)}")
    try:
        san = bundle.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise VerificationError("names", "the certificate has no subjectAltName") from None
    found = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
    found |= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    wanted = set(spec.names)
    if found != wanted:
        raise VerificationError(
            "names",
            f"SANs {quote(sorted(found))} differ from the spec's {quote(sorted(wanted))} "
            "(COMMON_NAME + SUBJECT_ALTERNATIVE_NAMES)",
        )


#: Tolerated clock difference between the issuer and the verifier for ``notBefore``.
CLOCK_SKEW = timedelta(minutes=5)


def check_validity(bundle: CertBundle, now: datetime) -> None:
    if now + CLOCK_SKEW < bundle.not_before:
        raise VerificationError("validity", f"not valid before {bundle.not_before.isoformat()}")
    if now >= bundle.not_after:
        raise VerificationError("validity", f"expired at {bundle.not_after.isoformat()}")


def check_key_algorithm(bundle: CertBundle, spec: CertSpec) -> None:
    found = describe_key(bundle.certificate.public_key())
    if found != spec.key_algorithm.value:
        raise VerificationError(
            "key-algorithm", f"certificate key is {found}, KEY_ALGORITHM asks {spec.key_algorithm.value}"
        )


def handshake_hostname(spec: CertSpec) -> str:
    """The name a client dials: COMMON_NAME, with a wildcard's ``*`` replaced by a label."""
    return spec.common_name.replace("*", "certrotate-check", 1)


def check_handshake(bundle: CertBundle, spec: CertSpec, ca_certificate: x509.Certificate) -> None:
    """A real TLS handshake in memory: a server holding the bundle, a client trusting only the CA.

    The client verifies the chain (OpenSSL's path validation, partial chains allowed so a
    subordinate CA can be the anchor) and the host name; it must see our certificate.
    """
    hostname = handshake_hostname(spec)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with (
        _secret_file(bundle.private_key_pem) as key_path,
        _secret_file(bundle.certificate_pem + bundle.chain_pem) as cert_path,
    ):
        try:
            server_ctx.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise VerificationError("handshake", f"the server could not load the bundle ({exc.reason})") from None
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    client_ctx.load_verify_locations(cadata=ca_certificate.public_bytes(serialization.Encoding.PEM).decode())

    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(to_client, to_server, server_hostname=_sni(hostname))
    server = server_ctx.wrap_bio(server_in, server_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, end in (("client", client), ("server", server)):
            if done[name]:
                continue
            try:
                end.do_handshake()
                done[name] = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLCertVerificationError as exc:
                raise VerificationError("handshake", f"client rejected the certificate: {exc.verify_message}") from None
            except ssl.SSLError as exc:
                raise VerificationError("handshake", f"TLS error on the {name} side: {exc.reason}") from None
        server_in.write(to_server.read())
        to_client.write(server_out.read())
        if all(done.values()):
            break
    else:
        raise VerificationError("handshake", "the handshake did not complete")
    seen = client.getpeercert(binary_form=True)
    if seen != bundle.certificate.public_bytes(serialization.Encoding.DER):
        raise VerificationError("handshake", "the client saw a different certificate")


def _sni(hostname: str) -> str:
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(hostname))
    return hostname


@contextlib.contextmanager
def _secret_file(text: str) -> Iterator[str]:
    """A path holding ``text`` for OpenSSL to read: an anonymous memory file where Linux has one.

    Key material never touches a disk on Lambda: ``memfd_create`` keeps it in memory; elsewhere
    a 0600 file in a private temporary directory is removed at once.
    """
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        fd = memfd_create("certrotate", 0)
        try:
            os.write(fd, text.encode("ascii"))
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="certrotate-") as directory:
        path = os.path.join(directory, "pem")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        yield path
