"""Private keys and CSRs: generation by :class:`~rotation.issuance.spec.KeyAlgorithm`, description of a key.

Pure: no AWS calls. Dispatch is by table (key algorithm → generator), never by ``getattr``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from rotation.issuance.spec import CertSpec, KeyAlgorithm, KeyFamily

if TYPE_CHECKING:  # pragma: no cover - loaded when a first RSA spare is made (a reused or EC key needs none)
    from concurrent.futures import Future, ThreadPoolExecutor

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def _rsa(bits: int) -> Callable[[], PrivateKey]:
    return lambda: rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _ec(curve: ec.EllipticCurve) -> Callable[[], PrivateKey]:
    return lambda: ec.generate_private_key(curve)


_GENERATORS: dict[KeyAlgorithm, Callable[[], PrivateKey]] = {
    KeyAlgorithm.RSA_2048: _rsa(2048),
    KeyAlgorithm.RSA_3072: _rsa(3072),
    KeyAlgorithm.RSA_4096: _rsa(4096),
    KeyAlgorithm.EC_prime256v1: _ec(ec.SECP256R1()),
    KeyAlgorithm.EC_secp384r1: _ec(ec.SECP384R1()),
    KeyAlgorithm.EC_secp521r1: _ec(ec.SECP521R1()),
}
_CURVES: dict[str, KeyAlgorithm] = {
    "secp256r1": KeyAlgorithm.EC_prime256v1,
    "secp384r1": KeyAlgorithm.EC_secp384r1,
    "secp521r1": KeyAlgorithm.EC_secp521r1,
}
_CSR_HASH: dict[KeyAlgorithm, hashes.SHA256 | hashes.SHA384 | hashes.SHA512] = {
    KeyAlgorithm.EC_secp384r1: hashes.SHA384(),
    KeyAlgorithm.EC_secp521r1: hashes.SHA512(),
}


def generate_key(algorithm: KeyAlgorithm) -> PrivateKey:
    """A fresh private key of the given algorithm."""
    return _GENERATORS[algorithm]()


class _SpareKeys:
    """Fresh keys made one issuance ahead, in a background thread, while the rotation waits on AWS.

    :meth:`take` hands out a key that was never used for anything (each key once) and starts
    making the next one of the same algorithm at once, so key generation (RSA-2048: ~35 ms of
    CPU, RSA-4096 far more) runs while this rotation waits for IssueCertificate and
    GetCertificate instead of before them. OpenSSL releases the GIL while it searches for primes.
    The first issuance of an algorithm in a container generates in line; EC keys (well under a
    millisecond) always do.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spares: dict[KeyAlgorithm, Future[PrivateKey]] = {}
        self._executor: ThreadPoolExecutor | None = None

    def take(self, algorithm: KeyAlgorithm) -> PrivateKey:
        with self._lock:
            spare = self._spares.pop(algorithm, None)
        # A spare under way finishes sooner than a new start; with none, generate in line first.
        key = spare.result() if spare is not None else generate_key(algorithm)
        self._prepare(algorithm)
        return key

    def wait(self) -> None:
        """Block until every spare under way is made (benchmarks count that time as the rotation's)."""
        with self._lock:
            spares = list(self._spares.values())
        for spare in spares:
            spare.exception()

    def clear(self) -> None:
        with self._lock:
            self._spares.clear()

    def _prepare(self, algorithm: KeyAlgorithm) -> None:
        if algorithm.family is not KeyFamily.RSA:
            return  # an EC key takes well under a millisecond: nothing to win
        with self._lock:
            if algorithm in self._spares:
                return
            if self._executor is None:
                from concurrent.futures import ThreadPoolExecutor

                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="certrotate-keygen")
            self._spares[algorithm] = self._executor.submit(generate_key, algorithm)


#: The container's spare keys (see :class:`_SpareKeys`).
SPARE_KEYS = _SpareKeys()


def key_algorithm_of(key: object) -> KeyAlgorithm | None:
    """The :class:`KeyAlgorithm` of a public or private key, or None when Private CA cannot sign it."""
    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        return {2048: KeyAlgorithm.RSA_2048, 3072: KeyAlgorithm.RSA_3072, 4096: KeyAlgorithm.RSA_4096}.get(key.key_size)
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        return _CURVES.get(key.curve.name)
    return None


def describe_key(key: object) -> str:
    """A human label for any key, for error messages (``RSA-1024``, ``Ed25519`` …)."""
    algorithm = key_algorithm_of(key)
    if algorithm is not None:
        return algorithm.value
    size = getattr(key, "key_size", None)
    return f"{type(key).__name__.removeprefix('_')}{f'-{size}' if size else ''}"


def public_key_der(key: PrivateKey | PublicKey | CertificatePublicKeyTypes) -> bytes:
    """SubjectPublicKeyInfo DER of a key (private keys give their public half)."""
    public = key.public_key() if isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)) else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_sha256(key: PrivateKey | PublicKey) -> str:
    """SHA-256 hex of the SubjectPublicKeyInfo: safe to log, binds a request to one key."""
    return hashlib.sha256(public_key_der(key)).hexdigest()


class _CheckedKeys:
    """Key objects this container generated or fully checked, by the exact unencrypted PEM text.

    Loading a PEM RSA key runs OpenSSL's full consistency check (~35 ms for RSA-2048). A rotation
    reads back, in testSecret and finishSecret, the very PEM text createSecret wrote: the same
    bytes give the same key, so the check is paid once per key per container. A key arriving from
    outside (another container, an operator's edit, an ACM export) has other bytes and is checked
    in full. Bounded, least recently used first out.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._keys: OrderedDict[str, PrivateKey] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, pem: str) -> PrivateKey | None:
        with self._lock:
            key = self._keys.get(pem)
            if key is not None:
                self._keys.move_to_end(pem)
            return key

    def put(self, pem: str, key: PrivateKey) -> None:
        with self._lock:
            self._keys[pem] = key
            self._keys.move_to_end(pem)
            while len(self._keys) > self._size:
                self._keys.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()


CHECKED_KEYS = _CheckedKeys(size=32)


def private_key_pem(key: PrivateKey) -> str:
    """Unencrypted PKCS#8 PEM, the format stored in ``PRIVATE_KEY_PEM``.

    The key object is remembered under this text, so reading the same text back is free.
    """
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    CHECKED_KEYS.put(pem, key)
    return pem


def load_private_key(pem: str, password: bytes | None = None) -> PrivateKey:
    """Load a PEM private key of a family Private CA can sign.

    Unencrypted text this container produced or already checked comes from :data:`CHECKED_KEYS`;
    anything else gets OpenSSL's full key check.

    Raises:
        ValueError: not a PEM key, wrong password, or a key type other than RSA/EC. The
            message never contains the PEM.
    """
    if password is None:
        known = CHECKED_KEYS.get(pem)
        if known is not None:
            return known
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=password)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise ValueError("not a readable PEM private key") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise ValueError(f"unsupported private key type {describe_key(key)}")
    if password is None:
        CHECKED_KEYS.put(pem, key)
    return key


def build_csr(key: PrivateKey, spec: CertSpec) -> bytes:
    """A PEM CSR with the spec's CN and every name (CN first) as a SAN."""
    sans: list[x509.GeneralName] = []
    for name in spec.names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, spec.common_name)]))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, _CSR_HASH.get(spec.key_algorithm, hashes.SHA256()))
    )
    return csr.public_bytes(serialization.Encoding.PEM)
