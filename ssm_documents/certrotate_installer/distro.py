"""Distribution facts: which family a host is, and each server's names and default directories there."""

from typing import List, NamedTuple, Optional, Sequence

from .output import Exit, InstallError


class Distro(NamedTuple):
    """One server on one distribution family (a row of a ``Server.distros``)."""

    family: str  # "debian" or "rhel" (OS_FAMILIES' values)
    service: str  # the ServiceName value that selects this row (apache2, httpd)
    control: str  # the control tool (apache2ctl, apachectl)
    server: str  # the server binary, run with ``-f`` when the host file names a main config
    cert_dir: str  # certrotate's default certificate and chain directory
    key_dir: str  # certrotate's default key directory


# The default certificate and chain live in a directory of certrotate's own, never in a CA
# directory: /etc/ssl/certs (Debian) and /etc/pki/tls/certs (RHEL) are what OpenSSL's CApath and
# the trust tooling read, and a chain there became a system trust anchor.
DEBIAN_DIRS = ("/etc/ssl/certrotate", "/etc/ssl/private")
RHEL_DIRS = ("/etc/pki/tls/certrotate", "/etc/pki/tls/private")
OS_FAMILIES = {
    "debian": "debian",
    "ubuntu": "debian",
    "rhel": "rhel",
    "fedora": "rhel",
    "centos": "rhel",
    "amzn": "rhel",
}
OS_RELEASE = "/etc/os-release"


def pick_distro(distros: Sequence[Distro], service: str, os_release: Optional[str]) -> Distro:
    """Pure: the row of ``distros`` from ServiceName, else from /etc/os-release's ID and ID_LIKE.

    Raises:
        InstallError: BAD_PARAMETER when neither tells.
    """
    if service:
        return next(d for d in distros if d.service == service)
    ids: List[str] = []
    for line in (os_release or "").splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE"):
            ids.extend(value.strip().strip("\"'").split())
    for identifier in ids:
        if identifier in OS_FAMILIES:
            return next(d for d in distros if d.family == OS_FAMILIES[identifier])
    services = " or ".join(sorted({d.service for d in distros}, key=[d.service for d in distros].index))
    raise InstallError(Exit.BAD_PARAMETER, f"cannot tell the distribution; pass ServiceName {services}")


def read_os_release() -> Optional[str]:
    try:
        with open(OS_RELEASE, encoding="utf-8") as handle:
            return handle.read(65536)
    except OSError:
        return None
