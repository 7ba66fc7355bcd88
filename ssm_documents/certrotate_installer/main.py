"""One run: read the request and the host file, recover, install or roll back, record."""

import os
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .directories import open_directory
from .distro import pick_distro, read_os_release
from .fleet_record import record_failure, record_outcome
from .host import Host, Outcome, acquire_lock
from .host_file import HOST_CONFIG, HostConfig, check_server_config, load_host_config
from .output import Exit, InstallError, Interrupted, classify, warn
from .parameters import DEFAULT_HTTPS_PORT, Action, Request, check_combined_files, read_request
from .path_policy import Target, default_files, open_targets
from .recovery import recover, release
from .registry import Registry
from .runs import RUNS, print_outcome
from .servers import REGISTRY
from .servers.base import Server
from .swap import SignalGuard
from .tools import tool_environment

# Steps that run after a successful run, in order, each given the Host and the Outcome.
FINISHERS: Tuple[Callable[[Host, Outcome], None], ...] = (print_outcome, record_outcome)


def check_version_stage(request: Request, config: HostConfig) -> None:
    """Only what the rotation verified and promoted is installed: AWSCURRENT, AWSPREVIOUS, and the
    labels the host file adds (a secret's writer can stage anything under AWSPENDING or a label).

    Raises:
        InstallError: BAD_PARAMETER.
    """
    if request.action is Action.INSTALL and request.version_stage not in config.version_stages:
        raise InstallError(
            Exit.BAD_PARAMETER,
            f"parameter VersionStage {request.version_stage!r} is not allowed (allowed: "
            f"{', '.join(config.version_stages)}; others only through version_stages in {config.source}): "
            "only the stages the rotation verified are installed",
        )


def complete_request(request: Request, config: HostConfig, registry: Registry) -> Request:
    """The request with what its sender left empty taken from the host: the server it feeds, the
    file layout, the files and the port.

    The host's root chooses the server (the host file's ``server``; without it the registry's
    first, Apache, as before the Server parameter existed). A command's sender may repeat that
    choice, never change it: otherwise a sender could have the installer drive, and start when it
    is stopped, a server root never chose for this host. An empty FileLayout is the server's own
    (its first: separate for Apache, combined for nginx and HAProxy, the only layout they take); a
    ReloadMode must be one the server takes. An empty file parameter is the host file's
    ``certificate_file`` (``key_file``, ``chain_file``: the separate layout's) and an empty
    HttpsPort its ``https_port``, else the distribution's defaults and 443: so the fleet's
    association, which sends only SecretArn, installs where and checks on the port the host
    describes.

    Raises:
        InstallError: BAD_PARAMETER naming Server, FileLayout or ReloadMode, the value and what is allowed.
    """
    chosen = config.server or registry.default()
    server_class = registry.adapter(chosen)
    if request.server and request.server != chosen:
        source = HOST_CONFIG if config.source == "(defaults)" else config.source
        said = f"names {chosen}" if config.server else f"names no server, so it is {server_class.title}"
        raise InstallError(
            Exit.BAD_PARAMETER,
            f"parameter Server {request.server!r} is not allowed on this host (allowed: {chosen} or empty): "
            f'the host file {source} {said}; only root chooses the server there ("server": "{request.server}")',
        )
    if request.reload_mode not in server_class.reload_modes:
        raise InstallError(
            Exit.BAD_PARAMETER,
            f"parameter ReloadMode {request.reload_mode!r} is not allowed with Server {chosen} "
            f"(allowed: {', '.join(server_class.reload_modes)})",
        )
    layout = request.layout or server_class.layouts[0]
    if layout not in server_class.layouts:
        raise InstallError(
            Exit.BAD_PARAMETER,
            f"parameter FileLayout {layout!r} is not allowed with Server {chosen} (allowed: "
            f"{', '.join(server_class.layouts)}: one 0600 CertificateFile holding the certificate, chain and key)",
        )
    check_combined_files(layout, request.files[1], request.files[2])
    own = config.files if layout == "separate" else (config.files[0], "", "")
    files = (request.files[0] or own[0], request.files[1] or own[1], request.files[2] or own[2])
    port = request.port or config.https_port or DEFAULT_HTTPS_PORT
    return request._replace(server=chosen, layout=layout, files=files, port=port)


def open_server(request: Request, config: HostConfig, environ: Dict[str, str], euid: int, registry: Registry) -> Server:
    """The adapter of the server this run feeds (``complete_request`` decided it), for this host's
    distribution, with what the host file says about it (its main config, HAProxy's sockets), each
    checked.

    Raises:
        InstallError: BAD_PARAMETER (distribution or ServiceName), REFUSED (host file).
    """
    server_class = registry.adapter(request.server)
    main_config = config.server_path(server_class.config_key) if server_class.config_key else None
    if main_config:
        check_server_config(main_config, euid, server_class.config_key)
    distro = pick_distro(server_class.distros, request.service, read_os_release())
    server = server_class(distro, main_config, request.port, tool_environment(environ))
    server.configure(config, euid)
    return server


def main(argv: Sequence[str], environ: Dict[str, str]) -> int:
    """Run one install, rollback, trust-bundle install (``trust_run``) or CRL refresh (``crl_run``); returns
    the exit code (``Exit``)."""
    if len(argv) > 1 and argv[1] == Action.TRUST.value:
        from .trust_run import trust_main  # imports this module's open_server

        return trust_main(environ)
    if len(argv) > 1 and argv[1] == Action.CRL.value:
        from .crl_run import crl_main  # imports this module's open_server

        return crl_main(environ)
    return run_certificate(argv, environ)


def run_certificate(argv: Sequence[str], environ: Dict[str, str]) -> int:
    """Run one install or rollback of a certificate; returns the exit code (``Exit``)."""
    euid = os.geteuid()
    guard = SignalGuard()
    guard.install()
    lock_fd: Optional[int] = None
    host: Optional[Host] = None
    targets: List[Target] = []
    try:
        request = read_request(argv[1] if len(argv) > 1 else "install", environ, REGISTRY)
        config = load_host_config(environ, euid, REGISTRY)
        check_version_stage(request, config)
        request = complete_request(request, config, REGISTRY)
        server = open_server(request, config, environ, euid, REGISTRY)
        files = tuple(given or default for given, default in zip(request.files, default_files(server.distro)))
        lock_fd = acquire_lock(config, euid)
        host = Host(request, config, server, euid, guard)
        recover(host)
        if not (request.files[0] and (request.files[2] or request.combined)):  # certrotate's own, made on first use
            os.close(open_directory(server.distro.cert_dir, euid, create_mode=0o755))
        targets = open_targets((files[0], files[1], files[2]), config, euid, combined=request.combined)
        server.files = tuple(target.path for target in targets if target.kind.parameter == "CertificateFile")
        outcome = RUNS[request.action](host, targets)
        guard.hold()
        for finish in FINISHERS:
            finish(host, outcome)
        guard.report()
        return int(Exit.OK)
    except InstallError as exc:
        guard.hold()
        warn("error: " + exc.message)
        if host is not None and targets:
            record_failure(host, targets, int(exc.code), exc.message, exc.served_check)
        guard.report()
        return int(exc.code)
    except Interrupted as exc:
        guard.hold()
        warn(f"error: {classify(exc)[1]}; nothing was changed")
        return int(Exit.INTERRUPTED)
    except Exception as exc:
        guard.hold()
        code, reason = classify(exc)
        warn(f"error: {reason}; nothing was changed")
        if host is not None and targets:
            record_failure(host, targets, int(code), reason)
        guard.report()
        return int(code)
    finally:
        release(targets, host, lock_fd)


if __name__ == "__main__":
    sys.exit(main(sys.argv, dict(os.environ)))
