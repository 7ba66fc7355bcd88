"""The served truth of a client-CA bundle: the CA names the server asks client certificates of.

The installer cannot sign a client certificate for a CA (it holds no CA key), so it cannot present one
from every CA of the bundle. What it can observe is what the server tells every client: the
``certificate_authorities`` of its CertificateRequest (RFC 8446 4.2.4; TLS 1.2's CertificateRequest
carries the same list, RFC 5246 7.4.4). Apache, nginx and HAProxy fill it from the client-CA file
(``SSL_CTX_set_client_CA_list``), the same file OpenSSL verifies client certificates against, so a list
equal to the bundle's subjects shows that the running server took the whole new bundle. Python's ``ssl``
does not expose that list; ``openssl s_client`` prints it ("Acceptable client certificate CA names"),
and ``-nameopt RFC2253`` prints the names in the form ``openssl x509 -subject`` gives the bundle's.
"""

import subprocess
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from .certificate import pem
from .trust_bundle import TrustBundle

CHECK_TIMEOUT_SECONDS = 20
CA_NAMES_WAIT_SECONDS = 15.0  # a graceful reload's workers take over within this
_HEADING = "Acceptable client certificate CA names"
_NONE = "No client certificate CA names sent"


class CaNamesProof(NamedTuple):
    """The CA names the server sent, against the bundle's subjects."""

    ok: bool
    summary: str  # "2/2 CA names" or what differs


def parse_ca_names(output: str) -> Optional[List[str]]:
    """Pure: the names under s_client's heading (None: the server asked for no client certificate)."""
    lines = output.splitlines()
    if _HEADING not in lines:
        return [] if _NONE in lines else None
    names: List[str] = []
    for line in lines[lines.index(_HEADING) + 1 :]:
        if "=" not in line.split(":", 1)[0] or line.startswith(("Client Certificate Types", "Requested ")):
            break
        names.append(line.strip())
    return names


def compare(sent: Optional[Sequence[str]], expected: Sequence[str]) -> CaNamesProof:
    """Pure: whether the server's CA names are the bundle's subjects, exactly."""
    if sent is None:
        return CaNamesProof(False, "the server requested no client certificate (is client verification on?)")
    missing = [name for name in expected if name not in sent]
    extra = [name for name in sent if name not in expected]
    if not missing and not extra:
        return CaNamesProof(True, f"{len(expected)}/{len(expected)} CA names")
    parts = ([f"missing {'; '.join(missing)}"] if missing else []) + ([f"extra {'; '.join(extra)}"] if extra else [])
    return CaNamesProof(False, f"{len(expected) - len(missing)}/{len(expected)} CA names, " + ", ".join(parts))


def _run(command: List[str], env: Dict[str, str], data: Optional[bytes] = None) -> Tuple[int, str]:
    try:
        done = subprocess.run(
            command,
            input=data if data is not None else b"",
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            timeout=CHECK_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return -1, ""
    return done.returncode, done.stdout.decode("utf-8", "replace")


def bundle_subjects(openssl: str, bundle: TrustBundle, env: Dict[str, str]) -> List[str]:
    """Each certificate's subject as ``openssl x509 -subject -nameopt RFC2253`` prints it."""
    subjects: List[str] = []
    for cert in bundle.certificates:
        command = [openssl, "x509", "-noout", "-subject", "-nameopt", "RFC2253"]
        code, text = _run(command, env, pem("CERTIFICATE", cert.der))
        subjects.append(text.strip()[len("subject=") :] if code == 0 else "?")
    return subjects


def sent_names(openssl: str, address: Tuple[str, int], server_name: str, env: Dict[str, str]) -> Optional[List[str]]:
    """The CA names of one handshake with the server at ``address`` (no client certificate offered)."""
    host = f"[{address[0]}]" if ":" in address[0] else address[0]
    command = [openssl, "s_client", "-connect", f"{host}:{address[1]}", "-nameopt", "RFC2253"]
    if server_name:
        command += ["-servername", server_name]
    return parse_ca_names(_run(command, env)[1])


def prove_client_cas(
    openssl: str,
    listeners: Sequence[Tuple[str, int]],
    bundle: TrustBundle,
    server_name: str,
    env: Dict[str, str],
    deadline_seconds: float = CA_NAMES_WAIT_SECONDS,
) -> CaNamesProof:
    """Handshakes with every listener until each sends exactly the bundle's CA names, at most
    ``deadline_seconds``; the last comparison."""
    expected = bundle_subjects(openssl, bundle, env)
    if not listeners:
        return CaNamesProof(False, "nothing of the server listens on the port")
    stop = time.monotonic() + deadline_seconds
    while True:
        proofs = [compare(sent_names(openssl, address, server_name, env), expected) for address in listeners]
        bad = [proof for proof in proofs if not proof.ok]
        if not bad:
            return proofs[0]
        if time.monotonic() >= stop:
            return bad[0]
        time.sleep(0.2)
