"""One CRL refresh (``crl``, the InstallCRL document): fetch the CRLs the host file names, check each
against the server's installed client-CA bundle, swap the server's CRL file, reload, prove, record.

What the run proves on its own (it holds no CA key, so it cannot present a client certificate, revoked
or not): each CRL verifies under a CA of the bundle and is current; together they cover every CA of the
bundle (else the server would refuse every client of the uncovered one); none is older than the one
installed; the server's config test passes with the new file (Apache, nginx and HAProxy load the CRL
file there); and after the graceful reload the server still asks for client certificates of exactly
the bundle's CAs (``client_ca_check``). That a listed client is refused and others accepted is proven
by real handshakes in ``tests/integration/test_crl_servers.py``.
"""

import os
import re
import time
from typing import Dict, List, NamedTuple, Optional, Tuple

from .crl import CrlFacts, file_content, installed_crls, invalid, older_problem, time_problem, uncovered
from .crl_fetch import check_signature, fetch, parse_fetched
from .crl_record import record_crls
from .directories import open_directory, read_regular
from .host import Host, acquire_lock
from .host_file import HostConfig, load_host_config
from .output import Exit, InstallError, Interrupted, classify, refused, say, warn
from .parameters import DEFAULT_HTTPS_PORT, HTTPS_PORT, Action, Request
from .path_policy import Target, TargetKind
from .recovery import commit_under_guard, recover, release, roll_back
from .servers.base import Server
from .swap import SignalGuard, Swap
from .tools import find_tool
from .trust_bundle import Destination, TrustBundle, parse_trust_bundle
from .trust_run import open_bundle_targets, reload_and_prove


class CrlOutcome(NamedTuple):
    """What a CRL run leaves on the host."""

    crls: Tuple[CrlFacts, ...]
    signers: Tuple[str, ...]  # the CN of the CA that signed each
    changed: bool
    check: str  # the CA-names check's summary ("" when nothing was reloaded)


def read_crl_request(environ: Dict[str, str]) -> Request:
    """HttpsPort, checked against the document's pattern: the one parameter a sender chooses.

    Raises:
        InstallError: BAD_PARAMETER.
    """
    value = environ.get("SSM_" + HTTPS_PORT.name, HTTPS_PORT.default or "")
    if re.fullmatch(HTTPS_PORT.pattern, value) is None or int(value or 0) > 65535:
        raise InstallError(
            Exit.BAD_PARAMETER, f"parameter HttpsPort has a value that is not allowed: {value[:120]!r} (a port number)"
        )
    return Request(Action.CRL, "", "AWSCURRENT", ("", "", ""), "", int(value or 0), "graceful", "")


def plan_run(environ: Dict[str, str], euid: int) -> Tuple[Request, HostConfig, Server, str, str]:
    """The request, the host file, the server, its CRL file and its client-CA file (the host file's).

    Raises:
        InstallError: BAD_PARAMETER, REFUSED.
    """
    from .main import open_server  # main dispatches here: imported late, no cycle at import time
    from .servers import REGISTRY

    request = read_crl_request(environ)
    config = load_host_config(environ, euid, REGISTRY)
    chosen = config.server or REGISTRY.default()
    request = request._replace(server=chosen, port=request.port or config.https_port or DEFAULT_HTTPS_PORT)
    adapter = REGISTRY.adapter(chosen)
    crl_file = config.server_path(adapter.crl_key) if adapter.crl_key else None
    client_ca = config.server_path(adapter.client_ca_key) if adapter.client_ca_key else None
    if not crl_file or not config.crl_sources:
        raise refused(
            f"the host file {config.source} does not opt {adapter.title} into CRLs: it names "
            + (f"no {adapter.crl_key or '(no CRL file for this server)'}" if not crl_file else "no crl_sources")
            + f" (the file its {adapter.crl_directive or 'CRL directive'} reads, and where the CRLs come from)"
        )
    if not client_ca:
        raise refused(f"the host file {config.source} names no {adapter.client_ca_key}: CRLs are checked against it")
    return request, config, open_server(request, config, environ, euid, REGISTRY), crl_file, client_ca


def read_client_cas(path: str, euid: int) -> TrustBundle:
    """The server's installed client-CA bundle, read through its checked directory.

    Raises:
        InstallError: REFUSED when it is missing, BUNDLE_INVALID when it holds no valid CA.
    """
    directory_fd = open_directory(os.path.dirname(path), euid)
    try:
        data = read_regular(directory_fd, os.path.basename(path), path)
    finally:
        os.close(directory_fd)
    if data is None:
        raise refused(f"the client-CA file {path} does not exist: install a trust bundle first")
    return parse_trust_bundle(path, data.decode("ascii", "replace"), time.time())


def checked_crls(host: Host, bundle: TrustBundle, now: float) -> Tuple[List[CrlFacts], List[str]]:
    """Every source's CRL, fetched, current and signed by a CA of ``bundle``; together covering its CAs.

    Raises:
        InstallError: SECRET_UNREADABLE, BUNDLE_INVALID.
    """
    env = host.server.env
    openssl = find_tool("openssl", env)
    crls: List[CrlFacts] = []
    signers: List[str] = []
    for source in host.config.crl_sources:
        crl = parse_fetched(source, fetch(source, env))
        problem = time_problem(crl, now)
        if problem:
            raise invalid(source, problem + "; nothing was changed")
        signers.append(check_signature(openssl, crl, bundle.certificates, env))
        if any(other.issuer_der == crl.issuer_der for other in crls):
            raise invalid(source, "is for a CA another source's CRL is for (one CRL per CA); nothing was changed")
        crls.append(crl)
    missing = uncovered([(ca.common_name, ca.subject_der) for ca in bundle.certificates], crls)
    if missing:
        raise InstallError(
            Exit.BUNDLE_INVALID,
            f"no CRL of {host.config.source}'s crl_sources is for CA {', '.join(missing)} of the client-CA bundle: "
            f"with a CRL file, {host.server.title} would refuse every client of that CA; nothing was changed",
        )
    return crls, signers


def refresh(host: Host, target: Target, bundle: TrustBundle, server_name: str) -> CrlOutcome:
    """Fetch and check, compare with the installed CRLs, swap, reload and prove; undo on any failure."""
    crls, signers = checked_crls(host, bundle, time.time())
    live = target.read()
    installed = installed_crls(live, target.path)
    for crl in crls:
        problem = older_problem(crl, installed)
        if problem:
            raise invalid(crl.source, problem)
    content = file_content(crls)
    if live == content:
        return CrlOutcome(tuple(crls), tuple(signers), False, "")
    swap = Swap(Action.CRL, [target], [content], live is not None, host.journal, host.faults)
    check = ""
    try:
        swap.stage()
        swap.apply()
        check = reload_and_prove(host, bundle, server_name)
    except BaseException as exc:  # every failure after the first change is undone
        raise roll_back(host, swap, exc).with_served_check(check) from None
    commit_under_guard(host, swap, check)
    return CrlOutcome(tuple(crls), tuple(signers), True, check)


def report(host: Host, outcome: CrlOutcome, path: str) -> None:
    verb = "installed" if outcome.changed else "already installed; nothing changed, nothing reloaded"
    say(f"CRL file {path} {verb}: {len(outcome.crls)} CRL(s)")
    for crl, signer in zip(outcome.crls, outcome.signers):
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(crl.this_update))
        say(f"  CN={signer}: CRL number {crl.number}, thisUpdate {when}, {crl.revoked} revoked, from {crl.source}")
    if outcome.check:
        say(f"{host.server.title} loaded it ({host.server.crl_directive}) and asks for {outcome.check}")


def crl_main(environ: Dict[str, str]) -> int:
    """Refresh the server's CRL file; returns the exit code (``Exit``)."""
    euid = os.geteuid()
    guard = SignalGuard()
    guard.install()
    lock_fd: Optional[int] = None
    host: Optional[Host] = None
    targets: List[Target] = []
    try:
        request, config, server, crl_file, client_ca = plan_run(environ, euid)
        lock_fd = acquire_lock(config, euid)
        host = Host(request, config, server, euid, guard)
        recover(host)
        targets = open_bundle_targets([Destination(crl_file, False, False)], host, kind=TargetKind.CRL)
        bundle = read_client_cas(client_ca, euid)
        names = [entry.server_name for entry in config.trust_bundles if entry.client_ca and entry.server_name]
        outcome = refresh(host, targets[0], bundle, names[0] if names else "")
        host.guard.hold()
        report(host, outcome, targets[0].path)
        status = "installed" if outcome.changed else "unchanged"
        record_crls(host, outcome.crls, outcome.signers, targets[0].path, (status, 0, ""))
        guard.report()
        return int(Exit.OK)
    except Interrupted as exc:
        guard.hold()
        warn(f"error: {classify(exc)[1]}; nothing was changed")
        return int(Exit.INTERRUPTED)
    except Exception as exc:
        guard.hold()
        code, reason = classify(exc)
        warn("error: " + reason)
        if host is not None:
            path = targets[0].path if targets else ""
            record_crls(host, (), (), path, ("failed", int(code), reason))
        guard.report()
        return int(code)
    finally:
        release(targets, host, lock_fd)
