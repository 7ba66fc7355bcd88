"""PEM and DER, pure: PEM blocks, and the facts the installer needs from a DER certificate."""

import base64
import calendar
import hashlib
import re
import time
from typing import List, NamedTuple, Optional, Tuple

KEY_LABELS = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")


_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n\t ]*?)-----END \1-----")


def pem_blocks(text: str, field: str) -> List[Tuple[str, bytes]]:
    """Pure: (label, DER) of every PEM block; anything but whitespace between blocks is refused.

    Raises:
        ValueError: naming ``field``, never quoting its content.
    """
    blocks = []
    position = 0
    for match in _PEM_BLOCK.finditer(text):
        if text[position : match.start()].strip():
            raise ValueError(f"{field} has text outside its PEM blocks")
        try:
            der = base64.b64decode("".join(match.group(2).split()), validate=True)
        except ValueError:
            raise ValueError(f"{field} has a PEM block that is not base64") from None
        blocks.append((match.group(1), der))
        position = match.end()
    if text[position:].strip():
        raise ValueError(f"{field} has text outside its PEM blocks")
    return blocks


def pem(label: str, der: bytes) -> bytes:
    """Pure: canonical PEM (64-column base64)."""
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN {0}-----\n{1}\n-----END {0}-----\n".format(label, "\n".join(lines))).encode("ascii")


def _tlv(data: bytes, position: int) -> Tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the DER element at ``position``."""
    if position + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length = data[position], data[position + 1]
    position += 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or position + count > len(data):
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[position : position + count], "big")
        position += count
    end = position + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, position, end


def _children(data: bytes, start: int, end: int) -> List[Tuple[int, int, int, int]]:
    """(tag, header start, value start, end) of each element between ``start`` and ``end``."""
    found = []
    position = start
    while position < end:
        tag, value, stop = _tlv(data, position)
        found.append((tag, position, value, stop))
        position = stop
    return found


def _der_time(tag: int, value: bytes) -> float:
    text = value.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ
        year = int(text[:2])
        text = ("19" if year >= 50 else "20") + text
    return float(calendar.timegm(time.strptime(text.rstrip("Z"), "%Y%m%d%H%M%S")))


_STRING_CODECS = {0x0C: "utf-8", 0x13: "latin-1", 0x14: "latin-1", 0x16: "latin-1", 0x1E: "utf-16-be"}
_COMMON_NAME_OID = b"\x55\x04\x03"


_BASIC_CONSTRAINTS_OID = b"\x55\x1d\x13"
_KEY_USAGE_OID = b"\x55\x1d\x0f"
_EXTENDED_KEY_USAGE_OID = b"\x55\x1d\x25"
_SERVER_AUTH_OID = b"\x2b\x06\x01\x05\x05\x07\x03\x01"
_ANY_EXTENDED_KEY_USAGE_OID = b"\x55\x1d\x25\x00"


class CertificateFacts(NamedTuple):
    der: bytes
    serial: int
    not_before: float
    not_after: float
    common_name: str
    public_key: bytes  # SubjectPublicKeyInfo DER
    is_ca: bool = False  # basicConstraints CA:TRUE
    signs: bool = False  # keyUsage keyCertSign or cRLSign
    server_auth: bool = True  # no extendedKeyUsage, or one that allows serverAuth
    cert_sign: bool = False  # keyUsage keyCertSign (what a CA of a trust bundle must have)
    subject_der: bytes = b""  # the subject Name, DER (a trust bundle's CA names)

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.der).hexdigest().upper()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))

    @property
    def serial_hex(self) -> str:
        return f"{self.serial:X}"


def certificate_facts(der: bytes) -> CertificateFacts:
    """Pure: what the installer needs from a DER certificate.

    Raises:
        ValueError: not a certificate (a truncated or mutated DER included).
    """
    try:
        return _certificate_facts(der)
    except (IndexError, UnicodeDecodeError, OverflowError) as exc:
        raise ValueError(f"not a DER certificate ({type(exc).__name__})") from None


def _extension_flags(der: bytes, fields: List[Tuple[int, int, int, int]]) -> Tuple[bool, bool, bool, bool]:
    """(CA:TRUE, keyCertSign or cRLSign, serverAuth allowed, keyCertSign) from the [3] extensions field."""
    is_ca, signs, server_auth, cert_sign = False, False, True, False
    for tag, _, value, end in fields:
        if tag != 0xA3:
            continue
        (sequence,) = _children(der, value, end)
        for _, _, extension, extension_end in _children(der, sequence[2], sequence[3]):
            parts = _children(der, extension, extension_end)
            oid = der[parts[0][2] : parts[0][3]]
            octets = parts[-1]
            if octets[0] != 0x04:
                raise ValueError("an extension value is not an OCTET STRING")
            inner = _children(der, octets[2], octets[3])
            if oid == _BASIC_CONSTRAINTS_OID:
                members = _children(der, inner[0][2], inner[0][3])
                is_ca = bool(members) and members[0][0] == 0x01 and der[members[0][2] : members[0][3]] != b"\x00"
            elif oid == _KEY_USAGE_OID:
                bits = der[inner[0][2] + 1 : inner[0][3]]  # after the unused-bits octet
                signs = len(bits) > 0 and bool(bits[0] & 0x06)  # bit 5 keyCertSign, bit 6 cRLSign
                cert_sign = len(bits) > 0 and bool(bits[0] & 0x04)
            elif oid == _EXTENDED_KEY_USAGE_OID:
                purposes = {der[v:e] for _, _, v, e in _children(der, inner[0][2], inner[0][3])}
                server_auth = bool(purposes & {_SERVER_AUTH_OID, _ANY_EXTENDED_KEY_USAGE_OID})
    return is_ca, signs, server_auth, cert_sign


def _certificate_facts(der: bytes) -> CertificateFacts:
    tag, start, end = _tlv(der, 0)
    if tag != 0x30 or end != len(der):
        raise ValueError("not a DER certificate")
    tbs = _children(der, start, end)[0]
    fields = _children(der, tbs[2], tbs[3])
    index = 1 if fields[0][0] == 0xA0 else 0
    serial_field, validity, subject, key = fields[index], fields[index + 3], fields[index + 4], fields[index + 5]
    if serial_field[0] != 0x02 or validity[0] != 0x30 or subject[0] != 0x30 or key[0] != 0x30:
        raise ValueError("not a DER certificate")
    serial = int.from_bytes(der[serial_field[2] : serial_field[3]], "big", signed=True)
    times = [_der_time(t, der[v:e]) for t, _, v, e in _children(der, validity[2], validity[3])]
    common_name = ""
    for _, _, rdn_value, rdn_end in _children(der, subject[2], subject[3]):
        for _, _, attribute, attribute_end in _children(der, rdn_value, rdn_end):
            parts = _children(der, attribute, attribute_end)
            if len(parts) == 2 and der[parts[0][2] : parts[0][3]] == _COMMON_NAME_OID and not common_name:
                codec = _STRING_CODECS.get(parts[1][0], "latin-1")
                common_name = der[parts[1][2] : parts[1][3]].decode(codec)
    flags = _extension_flags(der, fields[index + 6 :])
    subject_der = der[subject[1] : subject[3]]
    return CertificateFacts(der, serial, times[0], times[1], common_name, der[key[1] : key[3]], *flags, subject_der)


def live_facts(data: Optional[bytes]) -> Optional[CertificateFacts]:
    """The facts of a live certificate file's first certificate (None when it has none)."""
    try:
        blocks = pem_blocks((data or b"").decode("ascii"), "certificate")
        return certificate_facts(blocks[0][1]) if blocks else None
    except (ValueError, UnicodeDecodeError):
        return None
