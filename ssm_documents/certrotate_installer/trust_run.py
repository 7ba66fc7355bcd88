"""One trust-bundle run (``trust``, the InstallTrustBundle document): fetch the operators' bundle, check
each CA, swap it into the files the host file names, reload and prove the server's CA names, record."""

import json
import os
import re
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from .aws_cli import run_aws
from .client_ca_check import prove_client_cas
from .directories import walk_directory
from .host import Host, acquire_lock
from .host_file import HostConfig, load_host_config
from .output import Exit, InstallError, Interrupted, classify, refused, say, warn
from .parameters import BUNDLE_ARN, BUNDLE_FILE, DEFAULT_HTTPS_PORT, HTTPS_PORT, Action, Request
from .path_policy import Target, TargetKind, TrustStore, check_target_name
from .recovery import commit_under_guard, recover, release, roll_back
from .servers.base import Server
from .swap import SignalGuard, Swap
from .tools import find_tool
from .trust_bundle import (
    BUNDLE_FIELD,
    Destination,
    TrustBundle,
    TrustEntry,
    bundle_name,
    choose,
    destinations,
    find_entry,
    parse_trust_bundle,
)
from .trust_record import record_trust


class TrustOutcome(NamedTuple):
    """What a trust run leaves on the host."""

    bundle: TrustBundle
    changed: bool
    files: Tuple[str, ...]
    check: str  # the CA-names check's summary ("" when no client-CA file was written)


def read_trust_request(environ: Dict[str, str]) -> Tuple[Request, str]:
    """BundleArn, BundleFile and HttpsPort, checked against the document's patterns.

    Raises:
        InstallError: BAD_PARAMETER naming the parameter, its value and the rule.
    """
    values: Dict[str, str] = {}
    for parameter in (BUNDLE_ARN, BUNDLE_FILE, HTTPS_PORT):
        value = environ.get("SSM_" + parameter.name, parameter.default)
        if value is None:
            raise InstallError(Exit.BAD_PARAMETER, f"parameter {parameter.name} is required")
        if re.fullmatch(parameter.pattern, value) is None:
            raise InstallError(
                Exit.BAD_PARAMETER,
                f"parameter {parameter.name} has a value that is not allowed: {value[:120]!r} "
                f"(pattern {parameter.pattern})",
            )
        values[parameter.name] = value
    port = int(values[HTTPS_PORT.name] or 0)
    if port > 65535:
        raise InstallError(Exit.BAD_PARAMETER, f"parameter HttpsPort must be at most 65535, not {port}")
    request = Request(Action.TRUST, values[BUNDLE_ARN.name], "AWSCURRENT", ("", "", ""), "", port, "graceful", "")
    return request, values[BUNDLE_FILE.name]


def fetch_bundle(request: Request, name: str, env: Dict[str, str]) -> TrustBundle:
    """The bundle's AWSCURRENT value, checked (``trust_bundle.parse_trust_bundle``).

    Raises:
        InstallError: SECRET_UNREADABLE, BUNDLE_INVALID.
    """
    arn = request.secret_arn
    arguments = ["secretsmanager", "get-secret-value", "--secret-id", arn, "--version-stage", "AWSCURRENT"]
    stdout = run_aws(
        [*arguments, "--region", arn.split(":")[3], "--output", "json"],
        env,
        Exit.SECRET_UNREADABLE,
        f"cannot read trust bundle {arn}",
    )
    try:
        fields = json.loads(json.loads(stdout.decode("utf-8"))["SecretString"])
    except (ValueError, KeyError, TypeError, RecursionError):
        fields = None
    if not isinstance(fields, dict):
        raise InstallError(Exit.SECRET_UNREADABLE, f"trust bundle {arn}: the secret value is not a JSON object")
    return parse_trust_bundle(name, fields.get(BUNDLE_FIELD), time.time())


def open_bundle_targets(
    chosen: Sequence[Destination],
    host: Host,
    trust: Optional[TrustStore] = None,
    kind: TargetKind = TargetKind.TRUST_BUNDLE,
) -> List[Target]:
    """Each destination in a checked directory inside the allow-list; outside every system trust
    directory and bundle unless the host file names it in ``system_trust_files`` (``kind``: a
    bundle's file, or the CRL file of ``crl_run``).

    Raises:
        InstallError: BAD_PARAMETER or REFUSED.
    """
    allowed = [os.path.realpath(d) for d in host.config.allowed]
    trust = trust or TrustStore.of_this_host()
    targets: List[Target] = []
    try:
        for destination in chosen:
            check_target_name(kind, destination.path, list(host.config.allowed) + allowed)
            directory = walk_directory(os.path.dirname(destination.path), host.euid)
            resolved = os.path.join(directory.path, os.path.basename(destination.path))
            targets.append(Target(kind, resolved, directory.fd))
            check_target_name(kind, resolved, allowed)
            if not destination.system:
                try:
                    trust.check(kind, resolved, directory, directory.fd)
                except InstallError as exc:
                    raise InstallError(
                        exc.code,
                        exc.message + f"; a bundle goes there only when {host.config.source} names the file in "
                        "the bundle's system_trust_files",
                    ) from None
            if resolved in [t.path for t in targets[:-1]]:
                raise InstallError(Exit.BAD_PARAMETER, f"{kind.parameter} {resolved} is named twice")
        return targets
    except BaseException:
        for target in targets:
            os.close(target.dir_fd)
        raise


def read_live(targets: Sequence[Target]) -> List[Optional[bytes]]:
    """The live files; an existing one must hold certificates only (a bundle replaces no other file).

    Raises:
        InstallError: REFUSED.
    """
    from .certificate import pem_blocks

    live: List[Optional[bytes]] = []
    for target in targets:
        data = target.read()
        if data is not None:
            try:
                labels = {label for label, _ in pem_blocks(data.decode("ascii"), target.path)}
            except (ValueError, UnicodeDecodeError):
                labels = {"?"}
            if labels - {"CERTIFICATE"}:
                raise refused(
                    f"{target.path} exists and holds more than certificates; a trust bundle replaces no other file"
                )
        live.append(data)
    return live


def swap_bundle(host: Host, targets: Sequence[Target], bundle: TrustBundle, chosen: Sequence[Destination]) -> str:
    """Stage, swap, and when the client-CA file changed: config test, reload, CA-names check; undo
    everything on any failure. Returns the check's summary."""
    live = read_live(targets)
    keep = all(data is not None for data in live)
    swap = Swap(Action.TRUST, targets, [bundle.content] * len(targets), keep, host.journal, host.faults)
    client_ca = any(d.client_ca for d in chosen)
    check = ""
    try:
        swap.stage()
        swap.apply()
        if client_ca:
            entry = find_entry(host.config.trust_bundles, host.request.secret_arn, host.config.source)
            check = reload_and_prove(host, bundle, entry.server_name)
    except BaseException as exc:  # every failure after the first change is undone
        raise roll_back(host, swap, exc).with_served_check(check) from None
    commit_under_guard(host, swap, check)
    return check


def reload_and_prove(host: Host, bundle: TrustBundle, server_name: str) -> str:
    """Config test, graceful reload, then the server's CA names (SNI ``server_name``) equal to the
    bundle's subjects.

    Raises:
        InstallError: CONFIG_TEST_FAILED, RELOAD_FAILED.
    """
    server = host.server
    ok, output = server.config_test()
    if not ok:
        for line in output.strip().splitlines()[-3:]:
            warn("  " + line)
        raise InstallError(Exit.CONFIG_TEST_FAILED, server.title + " config test failed")
    ok, output = server.reload("graceful")
    if not ok:
        lines = [line for line in output.splitlines() if line.strip()]
        raise InstallError(Exit.RELOAD_FAILED, f"{server.title} graceful failed" + (": " + lines[-1] if lines else ""))
    host.faults.point("reloaded")
    openssl = find_tool("openssl", server.env)
    proof = prove_client_cas(openssl, server.listeners(), bundle, server_name, server.env)
    if not proof.ok:
        raise InstallError(
            Exit.RELOAD_FAILED, f"{server.title} does not ask client certificates of the bundle's CAs: {proof.summary}"
        )
    return proof.summary


def plan_run(
    environ: Dict[str, str], euid: int
) -> Tuple[Request, HostConfig, TrustEntry, Server, Tuple[Destination, ...]]:
    """The request, the host file and its entry for the bundle, the server and this run's destinations.

    Raises:
        InstallError: BAD_PARAMETER, REFUSED.
    """
    from .main import open_server  # main dispatches here: imported late, no cycle at import time
    from .servers import REGISTRY

    request, bundle_file = read_trust_request(environ)
    config = load_host_config(environ, euid, REGISTRY)
    name = bundle_name(request.secret_arn)
    entry = find_entry(config.trust_bundles, request.secret_arn, config.source)
    chosen_server = config.server or REGISTRY.default()
    request = request._replace(server=chosen_server, port=request.port or config.https_port or DEFAULT_HTTPS_PORT)
    server = open_server(request, config, environ, euid, REGISTRY)
    key = server.client_ca_key
    found = destinations(entry, config.server_path(key) if key else None, key)
    return request, config, entry, server, choose(found, bundle_file, name)


def install(host: Host, chosen: Sequence[Destination], targets: Sequence[Target], name: str) -> TrustOutcome:
    """Fetch, compare, swap (``swap_bundle``) and say what was done."""
    bundle = fetch_bundle(host.request, name, host.server.env)
    files = tuple(t.path for t in targets)
    if read_live(targets) == [bundle.content] * len(targets):
        outcome = TrustOutcome(bundle, False, files, "")
    else:
        outcome = TrustOutcome(bundle, True, files, swap_bundle(host, targets, bundle, chosen))
    host.guard.hold()
    verb = "installed" if outcome.changed else "already installed; nothing changed"
    say(f"trust bundle {name} {verb}: {len(bundle.certificates)} CA certificate(s), sha256 {bundle.fingerprint}")
    asks = f"; {host.server.title} asks for {outcome.check}" if outcome.check else ""
    say("files: " + " ".join(files) + asks)
    return outcome


def trust_main(environ: Dict[str, str]) -> int:
    """Install one trust bundle; returns the exit code (``Exit``)."""
    euid = os.geteuid()
    guard = SignalGuard()
    guard.install()
    lock_fd: Optional[int] = None
    host: Optional[Host] = None
    targets: List[Target] = []
    try:
        request, config, entry, server, chosen = plan_run(environ, euid)
        lock_fd = acquire_lock(config, euid)
        host = Host(request, config, server, euid, guard)
        recover(host)
        targets = open_bundle_targets(chosen, host)
        outcome = install(host, chosen, targets, entry.name)
        status = "installed" if outcome.changed else "unchanged"
        record_trust(host, request, entry.name, outcome.bundle.fingerprint, outcome.files, (status, 0, ""))
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
            name = bundle_name(host.request.secret_arn)
            record_trust(host, host.request, name, "", tuple(t.path for t in targets), ("failed", int(code), reason))
        guard.report()
        return int(code)
    finally:
        release(targets, host, lock_fd)
