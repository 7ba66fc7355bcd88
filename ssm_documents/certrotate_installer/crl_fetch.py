"""A CRL fetched from a source the host file names and checked: its signature by a CA of the client-CA bundle.

``s3://`` sources are read with the aws CLI (``aws s3 cp s3://BUCKET/KEY -``, the host's credentials;
the SSM agent's region); ``http(s)://`` ones with ``urllib`` as a client reads the CRL Distribution
Point, with no redirect followed (a redirect would fetch from a place root did not name) and at most
``MAX_CRL_BYTES`` read. Whatever comes back is only data: it is installed only when its signature
verifies under a CA certificate of the server's installed client-CA bundle (``openssl crl -CAfile``).

OpenSSL 3.0's ``crl -CAfile`` exits 0 whatever the verification says and tries only the first
certificate of the file whose subject matches the CRL's issuer, so each candidate CA (the bundle's
certificates whose subject is the CRL's issuer) gets a file of its own and only the line
``verify OK`` counts.
"""

import os
import subprocess
import tempfile
import urllib.error
import urllib.request
from typing import Dict, Optional, Sequence

from .aws_cli import run_aws
from .certificate import CertificateFacts, pem
from .crl import MAX_CRL_BYTES, CrlFacts, crl_facts, crls_of, invalid, s3_location
from .fleet_record import REGION_VARIABLE
from .output import Exit, InstallError

FETCH_TIMEOUT_SECONDS = 60
VERIFY_TIMEOUT_SECONDS = 30


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: the host file names the place, not the server that answers there."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        raise urllib.error.HTTPError(req.full_url, code, f"redirect to {newurl[:200]} refused", headers, fp)


def fetch(source: str, env: Dict[str, str]) -> bytes:
    """The bytes at ``source`` (one of the host file's ``crl_sources``).

    Raises:
        InstallError: SECRET_UNREADABLE naming the source and why.
    """
    what = f"cannot read the CRL at {source}"
    location = s3_location(source)
    if location is not None:
        region = env.get(REGION_VARIABLE, "")
        arguments = ["s3", "cp", f"s3://{location[0]}/{location[1]}", "-"]
        data = run_aws(arguments + (["--region", region] if region else []), env, Exit.SECRET_UNREADABLE, what)
    else:
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(source, timeout=FETCH_TIMEOUT_SECONDS) as answer:
                data = answer.read(MAX_CRL_BYTES + 1)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise InstallError(Exit.SECRET_UNREADABLE, f"{what}: {getattr(exc, 'reason', None) or exc}") from None
    if len(data) > MAX_CRL_BYTES:
        raise InstallError(Exit.SECRET_UNREADABLE, f"{what}: it is larger than {MAX_CRL_BYTES} bytes")
    return data


def parse_fetched(source: str, data: bytes) -> CrlFacts:
    """The one CRL of ``data``.

    Raises:
        InstallError: BUNDLE_INVALID.
    """
    try:
        ders = crls_of(data, f"the CRL from {source}")
        if len(ders) != 1:
            raise ValueError(f"the CRL from {source} holds {len(ders)} CRLs (one per source)")
        return crl_facts(ders[0], source)
    except ValueError as exc:
        raise InstallError(Exit.BUNDLE_INVALID, str(exc)) from None


def signed_by(openssl: str, crl: CrlFacts, cas: Sequence[CertificateFacts], env: Dict[str, str]) -> Optional[str]:
    """The CN of the bundle's CA whose key signed ``crl`` (None: none of them did)."""
    candidates = [ca for ca in cas if ca.subject_der == crl.issuer_der]
    if not candidates:
        return None
    with tempfile.TemporaryDirectory(prefix="certrotate-crl-") as work:  # 0700: nobody else writes in it
        crl_path = os.path.join(work, "crl.der")
        with open(crl_path, "wb") as handle:
            handle.write(crl.der)
        for index, ca in enumerate(candidates):
            ca_path = os.path.join(work, f"ca-{index}.pem")
            with open(ca_path, "wb") as handle:
                handle.write(pem("CERTIFICATE", ca.der))
            command = [openssl, "crl", "-inform", "DER", "-in", crl_path, "-CAfile", ca_path, "-noout"]
            try:
                done = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    env=env,
                    timeout=VERIFY_TIMEOUT_SECONDS,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                continue
            if done.returncode == 0 and "verify OK" in done.stdout.decode("utf-8", "replace").splitlines():
                return ca.common_name
    return None


def check_signature(openssl: str, crl: CrlFacts, cas: Sequence[CertificateFacts], env: Dict[str, str]) -> str:
    """The CN of the CA that signed ``crl``.

    Raises:
        InstallError: BUNDLE_INVALID when no CA of the client-CA bundle did.
    """
    signer = signed_by(openssl, crl, cas, env)
    if signer is None:
        named = any(ca.subject_der == crl.issuer_der for ca in cas)
        why = (
            "its signature does not verify under the CA of that name" if named else "no CA of it has its issuer's name"
        )
        raise invalid(
            crl.source, f"is not signed by a CA of the server's client-CA bundle ({why}); nothing was changed"
        )
    return signer
