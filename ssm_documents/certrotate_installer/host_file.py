"""The host's own settings (``/etc/certrotate/installer.json``), trusted only when root (or the
installer's user) wrote it, with the keys each server adapter adds, and the test-only fault
injector it can enable."""

import json
import os
import re
import signal
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from .crl import parse_crl_sources
from .directories import open_directory, read_regular
from .output import InstallError, refused
from .parameters import PATH_PATTERN, VERIFIED_STAGES, VERSION_STAGE
from .registry import Registry
from .trust_bundle import TrustEntry, parse_trust_bundles

HOST_CONFIG = "/etc/certrotate/installer.json"
# Read by the program only: the documents never set it, and a command's sender sets no variable
# but SSM_<Name>. A file it names is trusted only when root (or the user running the installer,
# as in the unprivileged local demo) owns it and every directory above it.
HOST_CONFIG_VARIABLE = "CERTROTATE_INSTALLER_CONFIG"
DEFAULT_ALLOWED = ("/etc/pki/tls", "/etc/ssl", "/etc/httpd", "/etc/apache2", "/etc/certrotate")
JOURNAL_DIR = "/var/lib/certrotate"
LOCK_DIR = "/run/certrotate"
# The host file's own keys; each server adapter adds its own (``Server.host_paths``: its config and,
# for HAProxy, its sockets: the files the server runs as root, sockets the installer sends the
# private key to, so only the host file ever names them, never a document parameter).
COMMON_KEYS = (
    "allowed_directories",
    "certificate_file",
    "chain_file",
    "crl_sources",
    "https_port",
    "issuing_ca_sha256",
    "key_file",
    "managed_files",
    "server",
    "state_directory",
    "test_fault",
    "trust_bundles",
    "version_stages",
)


def host_config_keys(registry: Registry) -> Tuple[str, ...]:
    """Pure: every key a host file may hold with ``registry``'s adapters, sorted."""
    return tuple(sorted(COMMON_KEYS + registry.host_paths()))


# Directories OpenSSL (its CApath, hash links) or a distribution's trust tooling
# (update-ca-certificates, update-ca-trust, p11-kit) reads: no target lies in or below one,
# compared by device and inode as well as by path, whatever directory is allowed. OpenSSL's own


class Fault(NamedTuple):
    """Test-only fault injection, enabled by the trusted host file: a signal at a named point."""

    at: str
    signum: int


class HostConfig(NamedTuple):
    """The host file's settings, validated (built by keyword: ``parse_host_config``)."""

    source: str
    allowed: Tuple[str, ...]
    journal_dir: str
    lock_dir: str
    fault: Optional[Fault] = None
    managed_files: Tuple[str, ...] = ()  # existing files certrotate may replace although it did not create them
    version_stages: Tuple[str, ...] = VERIFIED_STAGES
    ca_pins: Tuple[str, ...] = ()  # SHA-256 (hex) of the CA certificates a chain must end at
    server: Optional[str] = None  # the host's TLS server (a registered adapter's name); None: the registry's first
    files: Tuple[str, str, str] = ("", "", "")  # certificate, key, chain for empty parameters ("": the distribution's)
    https_port: int = 0  # for an empty HttpsPort (0: 443)
    server_paths: Tuple[Tuple[str, str], ...] = ()  # (key, absolute path) of the adapters' keys the file sets
    trust_bundles: Tuple[TrustEntry, ...] = ()  # the bundles this host takes and where each goes (trust_bundle)
    crl_sources: Tuple[str, ...] = ()  # where the CRLs of the client-CA bundle's CAs come from (crl)

    def server_path(self, key: str) -> Optional[str]:
        """The path the host file gives an adapter's ``key`` (``apache_config``, ``haproxy_master_socket``),
        None when it gives none (the server's own default)."""
        return dict(self.server_paths).get(key)


def load_host_config(environ: Dict[str, str], euid: int, registry: Registry) -> HostConfig:
    """The host's own settings: only root (or the installer's user) can have written them.

    Raises:
        InstallError: REFUSED when the file is not trustworthy or not valid.
    """
    path = environ.get(HOST_CONFIG_VARIABLE) or HOST_CONFIG
    explicit = HOST_CONFIG_VARIABLE in environ
    if not os.path.isabs(path):
        raise refused(f"{HOST_CONFIG_VARIABLE} must be an absolute path, not {path!r}")
    directory, name = os.path.split(path)
    try:
        dir_fd = open_directory(directory, euid)
    except InstallError:
        if not explicit and not os.path.lexists(path):
            return default_host_config()
        raise
    try:
        data = read_regular(dir_fd, name, path, owner_must_be=(0, euid))
    finally:
        os.close(dir_fd)
    if data is None:
        if explicit:
            raise refused(f"host configuration {path} does not exist")
        return default_host_config()
    try:
        settings = json.loads(data.decode("utf-8"))
    except ValueError as exc:
        raise refused(f"host configuration {path} is not valid JSON: {exc}") from None
    return parse_host_config(path, settings, registry)


def default_host_config() -> HostConfig:
    return HostConfig("(defaults)", DEFAULT_ALLOWED, JOURNAL_DIR, LOCK_DIR)


def _absolute(path: str, value: Any, what: str) -> str:
    if not isinstance(value, str) or re.fullmatch(PATH_PATTERN, value) is None or value in ("", "/"):
        raise refused(f"host configuration {path}: {what} must be an absolute path, not {value!r}")
    return value


def parse_host_config(path: str, settings: Any, registry: Registry) -> HostConfig:
    """Pure: the validated settings of the host file ``path``, for ``registry``'s servers."""
    if not isinstance(settings, dict):
        raise refused(f"host configuration {path} must be a JSON object")
    keys = host_config_keys(registry)
    unknown = sorted(set(settings) - set(keys))
    if unknown:
        raise refused(
            "host configuration {}: unknown key(s) {} (allowed: {})".format(path, ", ".join(unknown), ", ".join(keys))
        )
    extra = settings.get("allowed_directories", [])
    if not isinstance(extra, list):
        raise refused(f"host configuration {path}: allowed_directories must be a list of paths")
    allowed = DEFAULT_ALLOWED + tuple(_absolute(path, entry, "allowed_directories entry") for entry in extra)
    server_paths = tuple(
        (key, _absolute(path, settings[key], key)) for key in registry.host_paths() if settings.get(key) is not None
    )
    journal_dir, lock_dir = JOURNAL_DIR, LOCK_DIR
    if "state_directory" in settings:
        journal_dir = lock_dir = _absolute(path, settings["state_directory"], "state_directory")
    managed = tuple(_absolute(path, entry, "managed_files entry") for entry in _list(path, settings, "managed_files"))
    stages = _list(path, settings, "version_stages")
    for stage in stages:
        if not isinstance(stage, str) or re.fullmatch(VERSION_STAGE.pattern, stage) is None:
            raise refused(f"host configuration {path}: version_stages entry {stage!r} is not a staging label")
    pins: List[str] = []
    for pin in _list(path, settings, "issuing_ca_sha256"):
        text = pin.replace(":", "").lower() if isinstance(pin, str) else ""
        if re.fullmatch(r"[0-9a-f]{64}", text) is None:
            raise refused(
                f"host configuration {path}: issuing_ca_sha256 entry {pin!r} is not a SHA-256 fingerprint "
                "(64 hex digits)"
            )
        pins.append(text)
    server, files, https_port = _host_server(path, settings, registry.names())
    fault = None
    if "test_fault" in settings:
        spec = settings["test_fault"]
        names = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "STOP": signal.SIGSTOP}
        if not isinstance(spec, dict) or not isinstance(spec.get("at"), str) or spec.get("signal") not in names:
            raise refused(
                "host configuration "
                + path
                + ': test_fault must be an object {"at": POINT, "signal": "KILL", "TERM" or "STOP"}'
            )
        fault = Fault(spec["at"], int(names[spec["signal"]]))
    stages_allowed = VERIFIED_STAGES + tuple(stages)
    return HostConfig(
        source=path,
        allowed=allowed,
        journal_dir=journal_dir,
        lock_dir=lock_dir,
        fault=fault,
        managed_files=managed,
        version_stages=stages_allowed,
        ca_pins=tuple(pins),
        server=server,
        files=files,
        https_port=https_port,
        server_paths=server_paths,
        trust_bundles=parse_trust_bundles(path, settings.get("trust_bundles", {})),
        crl_sources=parse_crl_sources(path, settings.get("crl_sources", [])),
    )


def _host_server(
    path: str, settings: Dict[str, Any], servers: Tuple[str, ...]
) -> Tuple[Optional[str], Tuple[str, str, str], int]:
    """Pure: the host's server, its certificate, key and chain files and its HTTPS port, each
    for a parameter its sender left empty ("" and 0 where the host file says nothing)."""
    files = tuple(
        "" if settings.get(key) is None else _absolute(path, settings[key], key)
        for key in ("certificate_file", "key_file", "chain_file")
    )
    https_port = settings.get("https_port", 0)
    port_number = isinstance(https_port, int) and not isinstance(https_port, bool) and 0 < https_port < 65536
    if "https_port" in settings and not port_number:
        raise refused(f"host configuration {path}: https_port must be a port number (1 to 65535), not {https_port!r}")
    server = settings.get("server")
    if server is not None and server not in servers:
        raise refused(f"host configuration {path}: server must be one of {', '.join(servers)}, not {server!r}")
    return server, (files[0], files[1], files[2]), https_port


def _list(path: str, settings: Dict[str, Any], key: str) -> List[Any]:
    value = settings.get(key, [])
    if not isinstance(value, list):
        raise refused(f"host configuration {path}: {key} must be a list")
    return value


class FaultInjector:
    """Sends the configured signal to this process at the configured point (tests only)."""

    def __init__(self, fault: Optional[Fault]) -> None:
        self.fault = fault
        self.changes = 0

    def point(self, name: str) -> None:
        if self.fault is not None and self.fault.at == name:
            os.kill(os.getpid(), self.fault.signum)

    def changed(self) -> None:
        """Called after every rename or link that changes what is on disk: points change:1, change:2..."""
        self.changes += 1
        self.point(f"change:{self.changes}")


def check_server_config(path: str, euid: int, key: str) -> None:
    """The host file's server config (``key``: the adapter's ``config_key``): like the
    host file, only root (or the installer's user) wrote it, for the server runs it as root."""
    dir_fd = open_directory(os.path.dirname(path), euid)
    try:
        if read_regular(dir_fd, os.path.basename(path), path, owner_must_be=(0, euid)) is None:
            raise refused(f"{key} {path} does not exist")
    finally:
        os.close(dir_fd)
