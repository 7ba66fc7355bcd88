"""certrotate installer: put the certificate held in a Secrets Manager secret on an Apache host.

The SSM documents RunUpdateTLS and RollbackTLS embed this file (zlib + base64, for SSM's 64 KB
document limit) and run it with the host's python3 (3.6 or later, standard library only) in
isolated mode, its first argument ``install`` or ``rollback``. Parameters arrive as data in
``SSM_<Name>`` environment variables (interpolationType ENV_VAR) and are checked again here
against the documents' allowedPattern. Whoever runs the program (never a document or its sender)
may name another host file in ``CERTROTATE_INSTALLER_CONFIG``; tests and the unprivileged local
demo do. ``FINISHERS`` are the steps run after a success, each given the ``Host`` and ``Outcome``.

Guarantees:
- Writes only under the allowed directories (``DEFAULT_ALLOWED`` plus ``allowed_directories``
  of the root-owned host file ``/etc/certrotate/installer.json``, never a command parameter);
  every directory from ``/`` to a target is owned by root (or the user running the installer)
  and writable by nobody else; a target that is a symlink, has other hard links, is not a
  regular file, is not a certificate or key file, or is an OS trust bundle is refused. Every
  file is opened relative to a directory descriptor with O_NOFOLLOW; new files are created
  O_EXCL with their final mode (key 0600).
- Checks everything before the first change: the secret's fields are CERTIFICATE blocks (and
  one private key in PRIVATE_KEY_PEM only), the key matches, the chain verifies the certificate
  in an in-memory TLS handshake, the certificate is inside its validity period.
- Every change is registered in a journal (in a root-only state directory) before it is made.
  Any failure after the first change (write error or full disk, config test, reload, serve
  check, SIGTERM/SIGINT/SIGHUP, a bug) restores the previous files and reloads Apache; after a
  SIGKILL or a crash, the next run rolls the interrupted install back (or finishes keeping the
  previous files) before anything else. The saved ``*.certrotate-previous`` files are replaced
  only by a pair whose key matches its certificate, and only after the new one is served.
- One install at a time per host: a lock under ``/run/certrotate``, on a descriptor no child
  (Apache included) inherits.
- The private key is never printed or logged, and never written anywhere but the key file
  (for the handshake check it sits in an unnamed in-memory file that vanishes with the process).
- After every run that got as far as the certificate files (installed, unchanged, rolled back,
  failed) the host's fleet view is recorded: public facts of what each file serves, as SSM custom
  inventory ``Custom:CertrotateCertificate`` for the instance the SSM agent names in
  ``AWS_SSM_INSTANCE_ID``/``AWS_SSM_REGION_NAME`` (kept in the state directory, since PutInventory
  replaces the type whole). Recording never changes the run's exit code; a failure to record is a
  warning on stderr.

Exit codes (``Exit``): 0 installed, already installed or rolled back; 1 unexpected error (a bug;
the files were restored); 2 bad parameter; 3 secret unreadable or malformed; 4 bundle (or, for
RollbackTLS, the saved previous files) invalid; 5 Apache config test failed; 6 reload or serve
check failed; 7 nothing to roll back; 8 another install is running; 9 refused: unsafe path,
link, ownership or host configuration; 10 a file could not be written (full disk, I/O error);
11 interrupted by a signal; 12 a rollback could not finish (the journal is kept; the next run
retries it); 13 the host lacks a tool (python3, the aws CLI, Apache). 5, 6, 10, 11 and 1
restore the previous files.
"""

import base64
import calendar
import contextlib
import enum
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, FrozenSet, List, NamedTuple, Optional, Sequence, Set, Tuple

# ---------------------------------------------------------------------------------------------
# Closed choices and tables
# ---------------------------------------------------------------------------------------------


class Exit(enum.IntEnum):
    OK = 0
    INTERNAL = 1
    BAD_PARAMETER = 2
    SECRET_UNREADABLE = 3
    BUNDLE_INVALID = 4
    CONFIG_TEST_FAILED = 5
    RELOAD_FAILED = 6
    NOTHING_TO_ROLL_BACK = 7
    BUSY = 8
    REFUSED = 9
    WRITE_FAILED = 10
    INTERRUPTED = 11
    ROLLBACK_INCOMPLETE = 12
    HOST_UNSUPPORTED = 13


class Action(enum.Enum):
    INSTALL = "install"
    ROLLBACK = "rollback"


class Parameter(NamedTuple):
    """A document parameter: the program checks the same pattern as the document's allowedPattern."""

    name: str
    pattern: str
    default: Optional[str]  # None: required


# Every pattern is bounded: a value travels into the fleet record (SSM inventory) and an argv.
# A name is at most 255 characters (NAME_MAX), a path at most MAX_PATH_LENGTH (checked in code).
PATH_PATTERN = r"^$|^(/[A-Za-z0-9_][A-Za-z0-9._-]{0,254}){1,16}$"
MAX_PATH_LENGTH = 1024
# Partition (aws, aws-cn, aws-us-gov, aws-iso-b...), region (us-gov-west-1...), account, name:
# a secret name is at most 512 characters, and Secrets Manager appends "-" and 6 characters.
SECRET_ARN = Parameter(
    "SecretArn",
    r"^arn:aws(-[a-z]{1,10}){0,2}:secretsmanager:[a-z]{2}(-[a-z]{1,10}){1,3}-[0-9]{1,2}:[0-9]{12}"
    r":secret:[A-Za-z0-9/_+=.@-]{1,519}$",
    None,
)
# The document accepts any label; the program installs AWSCURRENT and AWSPREVIOUS only, and the
# labels the host file lists in ``version_stages`` (a label such as AWSPENDING holds what a
# secret's writer staged, not what the rotation verified and promoted).
VERSION_STAGE = Parameter("VersionStage", r"^[A-Za-z0-9_.-]{1,256}$", "AWSCURRENT")
VERIFIED_STAGES = ("AWSCURRENT", "AWSPREVIOUS")
CERTIFICATE_FILE = Parameter("CertificateFile", PATH_PATTERN, "")
KEY_FILE = Parameter("KeyFile", PATH_PATTERN, "")
CHAIN_FILE = Parameter("ChainFile", PATH_PATTERN, "")
SERVICE_NAME = Parameter("ServiceName", r"^$|^(apache2|httpd)$", "")
HTTPS_PORT = Parameter("HttpsPort", r"^[1-9][0-9]{0,4}$", "443")
RELOAD_MODE = Parameter("ReloadMode", r"^(graceful|restart)$", "graceful")

# separate: certificate, key and chain in three files (three renames: a kill between them leaves a
# mismatched pair until the next run). combined: one file holding the certificate, the chain and
# the key, mode 0600, which Apache reads as SSLCertificateFile alone (2.4.8+; nginx's
# ssl_certificate and ssl_certificate_key may name the same file, HAProxy's crt is such a file):
# one rename switches the pair, so no moment on disk has a certificate without its key.
FILE_LAYOUT = Parameter("FileLayout", r"^(separate|combined)$", "separate")
FILE_LAYOUTS = ("separate", "combined")
FILE_PARAMETERS = (CERTIFICATE_FILE, KEY_FILE, CHAIN_FILE)
APACHE_PARAMETERS = (SERVICE_NAME, HTTPS_PORT, RELOAD_MODE)
PARAMETERS = {
    Action.INSTALL: (SECRET_ARN, VERSION_STAGE, *FILE_PARAMETERS, FILE_LAYOUT, *APACHE_PARAMETERS),
    Action.ROLLBACK: (*FILE_PARAMETERS, FILE_LAYOUT, *APACHE_PARAMETERS),
}
RELOAD_MODES = ("graceful", "restart")


class Distro(NamedTuple):
    family: str
    service: str
    control: str
    server: str
    cert_dir: str
    key_dir: str


# The default certificate and chain live in a directory of certrotate's own, never in a CA
# directory: /etc/ssl/certs (Debian) and /etc/pki/tls/certs (RHEL) are what OpenSSL's CApath and
# the trust tooling read, and a chain there became a system trust anchor.
DISTROS = (
    Distro("debian", "apache2", "apache2ctl", "apache2", "/etc/ssl/certrotate", "/etc/ssl/private"),
    Distro("rhel", "httpd", "apachectl", "httpd", "/etc/pki/tls/certrotate", "/etc/pki/tls/private"),
)
OS_FAMILIES = {
    "debian": "debian",
    "ubuntu": "debian",
    "rhel": "rhel",
    "fedora": "rhel",
    "centos": "rhel",
    "amzn": "rhel",
}

HOST_CONFIG = "/etc/certrotate/installer.json"
# Read by the program only: the documents never set it, and a command's sender sets no variable
# but SSM_<Name>. A file it names is trusted only when root (or the user running the installer,
# as in the unprivileged local demo) owns it and every directory above it.
HOST_CONFIG_VARIABLE = "CERTROTATE_INSTALLER_CONFIG"
DEFAULT_ALLOWED = ("/etc/pki/tls", "/etc/ssl", "/etc/httpd", "/etc/apache2", "/etc/certrotate")
JOURNAL_DIR = "/var/lib/certrotate"
LOCK_DIR = "/run/certrotate"
HOST_CONFIG_KEYS = (
    "allowed_directories",
    "apache_config",
    "issuing_ca_sha256",
    "managed_files",
    "state_directory",
    "test_fault",
    "version_stages",
)

# Directories OpenSSL (its CApath, hash links) or a distribution's trust tooling
# (update-ca-certificates, update-ca-trust, p11-kit) reads: no target lies in or below one,
# compared by device and inode as well as by path, whatever directory is allowed. OpenSSL's own
# compiled-in CApath and CAfile (ssl.get_default_verify_paths) are added at run time.
TRUST_DIRECTORIES = (
    "/etc/ssl/certs",
    "/etc/pki/tls/certs",
    "/etc/pki/ca-trust",
    "/etc/pki/trust",
    "/etc/ca-certificates",
    "/usr/local/share/ca-certificates",
    "/usr/share/ca-certificates",
    "/usr/share/pki/ca-trust-source",
    "/usr/share/pki/trust",
    "/var/lib/ca-certificates",
)
# OS trust bundles outside those directories, by exact path (and by device and inode).
TRUST_FILES = ("/etc/ssl/cert.pem", "/etc/pki/tls/cert.pem", "/etc/ssl/ca-bundle.pem", "/etc/pki/tls/ca-bundle.crt")
# A file holding more certificates than this is a CA bundle, not a chain: never replaced, never installed.
MAX_CHAIN_CERTIFICATES = 10
# A certificate that expires within this many seconds is refused (it would not outlive the install).
MIN_REMAINING_SECONDS = 3600
TARGET_SUFFIXES = (".pem", ".crt", ".cer", ".cert", ".key")
KEY_LABELS = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")

NEW_SUFFIX = ".certrotate-new"
UNDO_SUFFIX = ".certrotate-undo"
PREVIOUS_SUFFIX = ".certrotate-previous"
JOURNAL_NAME = "journal.json"
MANAGED_NAME = "managed.json"  # the target paths certrotate created or installed on this host
LOCK_NAME = "install.lock"
MAX_FILE_BYTES = 1 << 20
SERVE_WAIT_SECONDS = 30.0
AWS_TIMEOUT_SECONDS = 120
APACHE_TIMEOUT_SECONDS = 120
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


# ---------------------------------------------------------------------------------------------
# Errors and output
# ---------------------------------------------------------------------------------------------


class InstallError(Exception):
    """A failure with its documented exit code; the message never holds key material."""

    def __init__(self, code: Exit, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Interrupted(BaseException):
    """SIGTERM, SIGINT or SIGHUP arrived: roll back and exit 11."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def printable(text: str) -> str:
    """Pure: ``text`` as one line of printable ASCII: a newline, an escape sequence or a non-ASCII
    character (a certificate's CN, Apache's output) is written as ``\\n``, ``\\x1b``, ``\\xe9``. No
    user text can add a line to the document's output, and nothing depends on the locale's
    encoding (Python 3.6 in a C locale writes ASCII only)."""
    return "".join(c if " " <= c <= "~" and c != "\\" else c.encode("unicode_escape").decode("ascii") for c in text)


def out(text: str) -> None:
    print(printable(text), flush=True)


def say(text: str) -> None:
    out("certrotate: " + text)


def warn(text: str) -> None:
    print(printable("certrotate: " + text), file=sys.stderr, flush=True)


def refused(text: str) -> InstallError:
    return InstallError(Exit.REFUSED, text)


# ---------------------------------------------------------------------------------------------
# Parameters and host configuration
# ---------------------------------------------------------------------------------------------


class Request(NamedTuple):
    action: Action
    secret_arn: str
    version_stage: str
    files: Tuple[str, str, str]  # certificate, key, chain ("" = the distribution's default)
    service: str
    port: int
    reload_mode: str
    layout: str = "separate"

    @property
    def combined(self) -> bool:
        return self.layout == "combined"


def read_request(action_name: str, environ: Dict[str, str]) -> Request:
    """The parameters of one run, checked against the documents' patterns.

    Raises:
        InstallError: BAD_PARAMETER naming the parameter, its value and the rule.
    """
    try:
        action = Action(action_name)
    except ValueError:
        raise InstallError(Exit.BAD_PARAMETER, f"unknown action {action_name!r} (allowed: install, rollback)") from None
    values = {}  # type: Dict[str, str]
    for parameter in PARAMETERS[action]:
        value = environ.get("SSM_" + parameter.name)
        if value is None:
            if parameter.default is None:
                raise InstallError(Exit.BAD_PARAMETER, f"parameter {parameter.name} is required")
            value = parameter.default
        if re.fullmatch(parameter.pattern, value) is None:
            raise InstallError(
                Exit.BAD_PARAMETER,
                f"parameter {parameter.name} has a value that is not allowed: {value[:120]!r}"
                + ("..." if len(value) > 120 else "")
                + f" (pattern {parameter.pattern})",
            )
        values[parameter.name] = value
    for parameter in FILE_PARAMETERS:
        if len(values[parameter.name]) > MAX_PATH_LENGTH:
            raise InstallError(
                Exit.BAD_PARAMETER,
                f"parameter {parameter.name} is {len(values[parameter.name])} characters long "
                f"(at most {MAX_PATH_LENGTH})",
            )
    port = int(values[HTTPS_PORT.name])
    if port > 65535:
        raise InstallError(Exit.BAD_PARAMETER, f"parameter HttpsPort must be at most 65535, not {port}")
    if values[FILE_LAYOUT.name] == "combined" and (values[KEY_FILE.name] or values[CHAIN_FILE.name]):
        raise InstallError(
            Exit.BAD_PARAMETER,
            "parameters KeyFile and ChainFile must be empty with FileLayout combined "
            "(CertificateFile holds the certificate, the chain and the key)",
        )
    return Request(
        action,
        values.get(SECRET_ARN.name, ""),
        values.get(VERSION_STAGE.name, VERSION_STAGE.default or ""),
        (values[CERTIFICATE_FILE.name], values[KEY_FILE.name], values[CHAIN_FILE.name]),
        values[SERVICE_NAME.name],
        port,
        values[RELOAD_MODE.name],
        values[FILE_LAYOUT.name],
    )


class Fault(NamedTuple):
    """Test-only fault injection, enabled by the trusted host file: a signal at a named point."""

    at: str
    signum: int


class HostConfig(NamedTuple):
    source: str
    allowed: Tuple[str, ...]
    apache_config: Optional[str]
    journal_dir: str
    lock_dir: str
    fault: Optional[Fault]
    managed_files: Tuple[str, ...] = ()  # existing files certrotate may replace although it did not create them
    version_stages: Tuple[str, ...] = VERIFIED_STAGES
    ca_pins: Tuple[str, ...] = ()  # SHA-256 (hex) of the CA certificates a chain must end at


def load_host_config(environ: Dict[str, str], euid: int) -> HostConfig:
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
    return parse_host_config(path, settings)


def default_host_config() -> HostConfig:
    return HostConfig("(defaults)", DEFAULT_ALLOWED, None, JOURNAL_DIR, LOCK_DIR, None)


def _absolute(path: str, value: Any, what: str) -> str:
    if not isinstance(value, str) or re.fullmatch(PATH_PATTERN, value) is None or value in ("", "/"):
        raise refused(f"host configuration {path}: {what} must be an absolute path, not {value!r}")
    return value


def parse_host_config(path: str, settings: Any) -> HostConfig:
    """Pure: the validated settings of the host file ``path``."""
    if not isinstance(settings, dict):
        raise refused(f"host configuration {path} must be a JSON object")
    unknown = sorted(set(settings) - set(HOST_CONFIG_KEYS))
    if unknown:
        raise refused(
            "host configuration {}: unknown key(s) {} (allowed: {})".format(
                path, ", ".join(unknown), ", ".join(HOST_CONFIG_KEYS)
            )
        )
    extra = settings.get("allowed_directories", [])
    if not isinstance(extra, list):
        raise refused(f"host configuration {path}: allowed_directories must be a list of paths")
    allowed = DEFAULT_ALLOWED + tuple(_absolute(path, entry, "allowed_directories entry") for entry in extra)
    apache_config = settings.get("apache_config")
    if apache_config is not None:
        apache_config = _absolute(path, apache_config, "apache_config")
    journal_dir, lock_dir = JOURNAL_DIR, LOCK_DIR
    if "state_directory" in settings:
        journal_dir = lock_dir = _absolute(path, settings["state_directory"], "state_directory")
    managed = tuple(_absolute(path, entry, "managed_files entry") for entry in _list(path, settings, "managed_files"))
    stages = _list(path, settings, "version_stages")
    for stage in stages:
        if not isinstance(stage, str) or re.fullmatch(VERSION_STAGE.pattern, stage) is None:
            raise refused(f"host configuration {path}: version_stages entry {stage!r} is not a staging label")
    pins = []  # type: List[str]
    for pin in _list(path, settings, "issuing_ca_sha256"):
        text = pin.replace(":", "").lower() if isinstance(pin, str) else ""
        if re.fullmatch(r"[0-9a-f]{64}", text) is None:
            raise refused(
                f"host configuration {path}: issuing_ca_sha256 entry {pin!r} is not a SHA-256 fingerprint "
                "(64 hex digits)"
            )
        pins.append(text)
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
    return HostConfig(path, allowed, apache_config, journal_dir, lock_dir, fault, managed, stages_allowed, tuple(pins))


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


# ---------------------------------------------------------------------------------------------
# Path policy: directories opened component by component, never through a link
# ---------------------------------------------------------------------------------------------

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _owners(euid: int) -> str:
    return "root" if euid == 0 else f"root or uid {euid}"


def check_directory(st: os.stat_result, path: str, euid: int, final: bool) -> None:
    """Pure: refuse a directory another user could change.

    A root-owned sticky directory (such as /tmp) is accepted above the final one: others may add
    names to it but cannot rename or remove the entries root or the installer's user own there.
    """
    if st.st_uid not in (0, euid):
        raise refused(
            f"{path} is owned by uid {st.st_uid}; every directory on the path must be owned by {_owners(euid)}"
        )
    if st.st_mode & 0o022:
        if not final and st.st_uid == 0 and st.st_mode & stat.S_ISVTX:
            return
        raise refused(
            f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
            f"nobody but {_owners(euid)} may write there"
        )


class OpenedDirectory(NamedTuple):
    fd: int
    path: str  # resolved: no symbolic link in it
    identities: Tuple[Tuple[int, int], ...]  # (device, inode) of every directory from / to it


def open_directory(path: str, euid: int, create_mode: Optional[int] = None) -> int:
    """A descriptor on ``path`` (see ``walk_directory``)."""
    return walk_directory(path, euid, create_mode).fd


def walk_directory(path: str, euid: int, create_mode: Optional[int] = None) -> OpenedDirectory:  # noqa: PLR0915
    """``path`` opened component by component, each checked by ``check_directory``, O_NOFOLLOW.

    A symbolic link on the way (such as RHEL's /etc/ssl/certs) is followed only when root (or the
    installer's user) owns it and nobody else can replace it (its directory is writable by nobody
    else, or is root's sticky directory): a link another user planted (in /tmp) is refused. With
    ``create_mode`` a missing last component is created with that mode.

    Raises:
        InstallError: BAD_PARAMETER when it does not exist, REFUSED when it is not safe.
    """
    pending = [p for p in path.split("/") if p and p != "."]
    hops = 0
    while True:
        fd = os.open("/", _DIRECTORY_FLAGS)
        try:
            root = os.fstat(fd)
            check_directory(root, "/", euid, final=not pending)
            identities = [(root.st_dev, root.st_ino)]
            walked = []  # type: List[str]
            restart = None  # type: Optional[List[str]]
            for index, part in enumerate(pending):
                shown = "/" + "/".join([*walked, part])
                final = index == len(pending) - 1
                if part == "..":
                    restart = walked[:-1] + pending[index + 1 :]
                    break
                try:
                    child = os.open(part, _DIRECTORY_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not (final and create_mode is not None):
                        raise InstallError(Exit.BAD_PARAMETER, f"directory does not exist: {shown}") from None
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, create_mode, dir_fd=fd)
                    child = os.open(part, _DIRECTORY_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    link = os.stat(part, dir_fd=fd, follow_symlinks=False)
                    parent = os.fstat(fd)
                    if not stat.S_ISLNK(link.st_mode):
                        raise refused(f"{shown} is not a directory") from None
                    sticky = parent.st_uid == 0 and parent.st_mode & stat.S_ISVTX  # only its owner can replace it
                    if link.st_uid not in (0, euid) or (parent.st_mode & 0o022 and not sticky):
                        raise refused(
                            f"{shown} is a symbolic link another user could have made; certrotate follows "
                            f"only links of {_owners(euid)} in directories nobody else can write"
                        ) from None
                    hops += 1
                    if hops > 40:
                        raise refused(f"{shown}: too many levels of symbolic links") from None
                    target = os.readlink(part, dir_fd=fd)
                    base = [] if target.startswith("/") else walked
                    restart = base + [p for p in target.split("/") if p and p != "."] + pending[index + 1 :]
                    break
                os.close(fd)
                fd = child
                opened = os.fstat(fd)
                check_directory(opened, shown, euid, final)
                identities.append((opened.st_dev, opened.st_ino))
                walked.append(part)
            if restart is None:
                return OpenedDirectory(fd, "/" + "/".join(walked), tuple(identities))
            os.close(fd)
            pending = restart
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise


def is_within(path: str, directories: Sequence[str]) -> bool:
    """Pure: ``path`` equals one of ``directories`` or lies below one."""
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in directories)


def read_regular(
    dir_fd: int, name: str, shown: str, owner_must_be: Optional[Tuple[int, ...]] = None
) -> Optional[bytes]:
    """The bytes of ``name`` in ``dir_fd``, or None when absent; never through a link.

    Raises:
        InstallError: REFUSED for a link, a hard link, a non-regular or an oversized file.
    """
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise refused(f"{shown} is a symbolic link; certrotate never follows links")
    if not stat.S_ISREG(st.st_mode):
        raise refused(f"{shown} is not a regular file")
    if st.st_nlink != 1:
        raise refused(f"{shown} has {st.st_nlink} hard links; certrotate replaces only files with one name")
    if owner_must_be is not None and (st.st_uid not in owner_must_be or st.st_mode & 0o022):
        raise refused(f"{shown} must be owned by root and writable by nobody else")
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            raise refused(f"{shown} changed while it was checked")
        chunks = []
        size = 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_FILE_BYTES:
                raise refused(f"{shown} is larger than {MAX_FILE_BYTES} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class TargetKind(enum.Enum):
    CERTIFICATE = ("CertificateFile", 0o644)
    KEY = ("KeyFile", 0o600)
    CHAIN = ("ChainFile", 0o644)
    COMBINED = ("CertificateFile", 0o600)  # certificate, chain and key in one file

    @property
    def parameter(self) -> str:
        return str(self.value[0])

    @property
    def mode(self) -> int:
        return int(self.value[1])


class Target:
    """One file certrotate manages, held by a descriptor on its checked directory."""

    def __init__(self, kind: TargetKind, path: str, dir_fd: int) -> None:
        self.kind = kind
        self.path = path
        self.dir_fd = dir_fd
        self.name = os.path.basename(path)

    def __repr__(self) -> str:
        return f"Target({self.kind.name}, {self.path})"

    def sibling(self, suffix: str) -> str:
        return self.name + suffix

    def read(self, suffix: str = "") -> Optional[bytes]:
        return read_regular(self.dir_fd, self.name + suffix, self.path + suffix)

    def exists(self, suffix: str = "") -> bool:
        try:
            os.stat(self.name + suffix, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def remove(self, suffix: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.name + suffix, dir_fd=self.dir_fd)

    def same_file(self, suffix_a: str, suffix_b: str) -> bool:
        try:
            a = os.stat(self.name + suffix_a, dir_fd=self.dir_fd, follow_symlinks=False)
            b = os.stat(self.name + suffix_b, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def write_new(self, data: bytes) -> None:
        """``NAME.certrotate-new``: created O_EXCL|O_NOFOLLOW with the final mode, synced."""
        self.remove(NEW_SUFFIX)  # a stale one from a crash before the journal existed
        fd = os.open(
            self.sibling(NEW_SUFFIX),
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            self.kind.mode,
            dir_fd=self.dir_fd,
        )
        try:
            if os.geteuid() == 0:
                os.fchown(fd, 0, 0)
            os.fchmod(fd, self.kind.mode)  # whatever the umask
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)

    def rename(self, suffix_from: str, suffix_to: str) -> None:
        os.replace(self.name + suffix_from, self.name + suffix_to, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)

    def link(self, suffix_from: str, suffix_to: str) -> None:
        os.link(
            self.name + suffix_from,
            self.name + suffix_to,
            src_dir_fd=self.dir_fd,
            dst_dir_fd=self.dir_fd,
            follow_symlinks=False,
        )

    def sync_directory(self) -> None:
        os.fsync(self.dir_fd)


def default_files(distro: Distro) -> Tuple[str, str, str]:
    return (
        distro.cert_dir + "/certrotate.pem",
        distro.key_dir + "/certrotate.key",
        distro.cert_dir + "/certrotate-chain.pem",
    )


def check_target_name(kind: TargetKind, path: str, allowed: Sequence[str]) -> None:
    """Pure: where a target may be, from its resolved path and the allow-list.

    Raises:
        InstallError: BAD_PARAMETER naming the parameter, the value and what is allowed.
    """
    name = os.path.basename(path)
    if not is_within(os.path.dirname(path), allowed):
        raise InstallError(
            Exit.BAD_PARAMETER,
            "parameter {} {} is outside the allowed directories ({}; more only through {})".format(
                kind.parameter, path, ", ".join(allowed), HOST_CONFIG
            ),
        )
    if len(name) > 255 - max(len(NEW_SUFFIX), len(UNDO_SUFFIX), len(PREVIOUS_SUFFIX)):
        raise InstallError(
            Exit.BAD_PARAMETER, f"parameter {kind.parameter} {path}: the file name is too long for its work files"
        )
    if not name.endswith(TARGET_SUFFIXES):
        raise InstallError(
            Exit.BAD_PARAMETER,
            "parameter {} {} must end with one of {}".format(kind.parameter, path, " ".join(TARGET_SUFFIXES)),
        )


class TrustStore(NamedTuple):
    """The directories and bundles the host's TLS clients trust, by path and by device and inode."""

    directories: Tuple[str, ...]
    files: Tuple[str, ...]
    identities: FrozenSet[Tuple[int, int]]  # (device, inode) of each that exists

    @classmethod
    def of_this_host(cls) -> "TrustStore":
        paths = ssl.get_default_verify_paths()
        directories = list(TRUST_DIRECTORIES)
        files = list(TRUST_FILES)
        for value, into in (
            (paths.capath, directories),
            (paths.openssl_capath, directories),
            (paths.cafile, files),
            (paths.openssl_cafile, files),
        ):
            if value and value not in into:
                into.append(value)
        identities = set()
        for entry in directories + files:
            with contextlib.suppress(OSError):
                st = os.stat(entry)  # following links: RHEL's /etc/ssl/certs -> /etc/pki/tls/certs
                identities.add((st.st_dev, st.st_ino))
        return cls(tuple(directories), tuple(files), frozenset(identities))

    def check_path(self, kind: TargetKind, path: str) -> None:
        """Pure: refuse a target whose path is in (or below) a trust directory or is a trust bundle.

        Raises:
            InstallError: BAD_PARAMETER.
        """
        self._check(kind, path, None, None)

    def check(self, kind: TargetKind, path: str, directory: OpenedDirectory, dir_fd: int) -> None:
        """Refuse a target in (or below) a trust directory or that is a trust bundle, by path and
        by device and inode (a bind mount or another name of the same directory or file).

        Raises:
            InstallError: BAD_PARAMETER.
        """
        self._check(kind, path, directory, dir_fd)

    def _check(self, kind: TargetKind, path: str, directory: Optional[OpenedDirectory], dir_fd: Optional[int]) -> None:
        hit = next((d for d in self.directories if is_within(os.path.dirname(path), [d])), None)
        if hit is None and path in self.files:
            hit = ""
        if hit is None and directory is not None and any(i in self.identities for i in directory.identities):
            hit = "a trust directory (the same directory by device and inode)"
        if hit:
            raise InstallError(
                Exit.BAD_PARAMETER,
                f"parameter {kind.parameter} {path} is in {hit}, which OpenSSL or the system's trust tooling "
                "reads (an OS trust bundle or CA directory: a certificate there becomes a trust anchor); "
                f"certrotate never writes there (its default directory is {DISTROS[0].cert_dir})",
            )
        st = None
        if dir_fd is not None:
            with contextlib.suppress(OSError):
                st = os.stat(os.path.basename(path), dir_fd=dir_fd, follow_symlinks=False)
        if hit is not None or (st is not None and (st.st_dev, st.st_ino) in self.identities):
            raise InstallError(
                Exit.BAD_PARAMETER,
                f"parameter {kind.parameter} {path} is an OS trust bundle; certrotate never touches it",
            )


def open_targets(
    files: Tuple[str, str, str],
    host: HostConfig,
    euid: int,
    trust: Optional[TrustStore] = None,
    combined: bool = False,
) -> List[Target]:
    """The three targets, each in a checked directory inside the allow-list and outside the trust
    store, all distinct by device and inode (a bind mount or another path to the same file or
    directory is the same target).

    Raises:
        InstallError: BAD_PARAMETER or REFUSED.
    """
    allowed = [os.path.realpath(d) for d in host.allowed]
    trust = trust or TrustStore.of_this_host()
    targets = []  # type: List[Target]
    seen = []  # type: List[Tuple[Target, Tuple[int, int, str], Optional[Tuple[int, int]]]]
    try:
        kinds = [(TargetKind.COMBINED, files[0])] if combined else list(zip(TargetKind, files))
        for kind, path in kinds:
            check_target_name(kind, path, [d for d in host.allowed] + allowed)
            directory = walk_directory(os.path.dirname(path), euid)
            resolved = os.path.join(directory.path, os.path.basename(path))
            target = Target(kind, resolved, directory.fd)
            targets.append(target)
            check_target_name(kind, resolved, allowed)
            trust.check(kind, resolved, directory, directory.fd)
            where = os.fstat(directory.fd)
            place = (where.st_dev, where.st_ino, target.name)
            identity = None  # type: Optional[Tuple[int, int]]
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(target.name, dir_fd=directory.fd, follow_symlinks=False)
                identity = (st.st_dev, st.st_ino)
            for other, other_place, other_identity in seen:
                if place == other_place or (identity is not None and identity == other_identity):
                    raise InstallError(
                        Exit.BAD_PARAMETER,
                        f"parameter {kind.parameter} must name a different file than {other.kind.parameter}: "
                        f"{resolved} and {other.path} are the same file (same device and inode)",
                    )
            seen.append((target, place, identity))
        return targets
    except BaseException:
        for target in targets:
            os.close(target.dir_fd)
        raise


# ---------------------------------------------------------------------------------------------
# PEM and DER (pure)
# ---------------------------------------------------------------------------------------------

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


def _extension_flags(der: bytes, fields: List[Tuple[int, int, int, int]]) -> Tuple[bool, bool, bool]:
    """(CA:TRUE, keyCertSign or cRLSign, serverAuth allowed) from the [3] extensions field."""
    is_ca, signs, server_auth = False, False, True
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
            elif oid == _EXTENDED_KEY_USAGE_OID:
                purposes = {der[v:e] for _, _, v, e in _children(der, inner[0][2], inner[0][3])}
                server_auth = bool(purposes & {_SERVER_AUTH_OID, _ANY_EXTENDED_KEY_USAGE_OID})
    return is_ca, signs, server_auth


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
    return CertificateFacts(der, serial, times[0], times[1], common_name, der[key[1] : key[3]], *flags)


# ---------------------------------------------------------------------------------------------
# The bundle: content rules, key match and chain, proven by an in-memory TLS handshake
# ---------------------------------------------------------------------------------------------


class Bundle(NamedTuple):
    """Canonical PEM bytes of the three files, and the certificate's facts."""

    certificate: bytes
    key: bytes
    chain: bytes
    facts: CertificateFacts

    def contents(self) -> Tuple[bytes, bytes, bytes]:
        return (self.certificate, self.key, self.chain)


def parse_bundle(certificate: str, key: str, chain: str, names: Tuple[str, str, str]) -> Bundle:
    """Pure: the three PEM texts under the content rules.

    CERTIFICATE_PEM holds exactly one CERTIFICATE block, CERTIFICATE_CHAIN_PEM one or more and
    nothing else, PRIVATE_KEY_PEM exactly one unencrypted private key: a key anywhere else, or
    anything else anywhere, is refused.

    Raises:
        ValueError: naming the field.
    """
    cert_blocks = pem_blocks(certificate, names[0])
    if [label for label, _ in cert_blocks] != ["CERTIFICATE"]:
        raise ValueError(f"{names[0]} must hold exactly one CERTIFICATE block and nothing else")
    chain_blocks = pem_blocks(chain, names[2])
    if not chain_blocks or any(label != "CERTIFICATE" for label, _ in chain_blocks):
        raise ValueError(f"{names[2]} must hold CERTIFICATE blocks only")
    if len(chain_blocks) > MAX_CHAIN_CERTIFICATES:
        raise ValueError(
            f"{names[2]} holds {len(chain_blocks)} certificates (at most {MAX_CHAIN_CERTIFICATES}): "
            "a CA bundle, not a chain"
        )
    key_blocks = pem_blocks(key, names[1])
    if len(key_blocks) != 1 or key_blocks[0][0] not in KEY_LABELS:
        raise ValueError(
            "{} must hold exactly one unencrypted private key ({})".format(names[1], ", ".join(KEY_LABELS))
        )
    facts = certificate_facts(cert_blocks[0][1])
    for _, der in chain_blocks:
        certificate_facts(der)
    return Bundle(
        pem("CERTIFICATE", cert_blocks[0][1]),
        pem(key_blocks[0][0], key_blocks[0][1]),
        b"".join(pem("CERTIFICATE", der) for _, der in chain_blocks),
        facts,
    )


def _raise_on_password() -> bytes:
    raise ValueError("the private key is encrypted")


# The root-only state directory, once a run has opened it: the last place for an unnamed file.
UNNAMED_FILE_DIRECTORIES = []  # type: List[int]


def _memory_file(data: bytes) -> Tuple[str, Any]:
    """A /dev/fd path to an unnamed file holding ``data``, gone when closed or when this process
    dies; never linked into a directory. In order: memfd_create (Python 3.8+: in memory, in no
    file system a local user can fill), O_TMPFILE in /dev/shm, O_TMPFILE in the root-only state
    directory (when a local user has filled /dev/shm).

    Raises:
        OSError: no mechanism worked (the last error).
    """
    attempts = []  # type: List[Callable[[], int]]
    create = getattr(os, "memfd_create", None)
    if create is not None:
        attempts.append(lambda: int(create("certrotate", getattr(os, "MFD_CLOEXEC", 1))))
    flags = getattr(os, "O_TMPFILE", 0) | os.O_RDWR | os.O_CLOEXEC
    in_memory = "/dev/shm"  # noqa: S108 - O_TMPFILE: the file never has a name to race for
    if flags & getattr(os, "O_TMPFILE", 0):
        attempts.append(lambda: os.open(in_memory, flags, 0o600))
        for dir_fd in UNNAMED_FILE_DIRECTORIES:
            attempts.append(lambda dir_fd=dir_fd: os.open(".", flags, 0o600, dir_fd=dir_fd))  # type: ignore[misc]
    failure = OSError(errno.ENOSYS, "no unnamed-file mechanism on this host")
    for attempt in attempts:
        try:
            fd = attempt()
        except OSError as exc:
            failure = exc
            continue
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:  # ENOSPC: a full /dev/shm
            os.close(fd)
            failure = exc
            continue
        return f"/dev/fd/{fd}", os.fdopen(fd, "rb")
    raise failure


def server_context(bundle: Bundle, with_chain: bool = False) -> ssl.SSLContext:
    """A TLS server context holding the bundle's certificate (and with ``with_chain`` the chain it
    sends) and key.

    Raises:
        ValueError: the key does not match, or cannot be read.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert_path, cert_file = _memory_file(bundle.certificate + (bundle.chain if with_chain else b""))
    key_path, key_file = _memory_file(bundle.key)
    try:
        context.load_cert_chain(cert_path, key_path, password=_raise_on_password)
    except (OSError, ValueError) as exc:
        if not isinstance(exc, ssl.SSLError):
            raise ValueError("the private key cannot be read") from None
        # KEY_VALUES_MISMATCH: same key type; NO_CERTIFICATE_ASSIGNED: a key of another type.
        if str(getattr(exc, "reason", "")) in ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED"):
            raise ValueError("the private key does not match the certificate") from None
        raise ValueError("the private key cannot be read") from None
    finally:
        cert_file.close()
        key_file.close()
    return context


_PARTIAL_CHAIN = 0x80000  # X509_V_FLAG_PARTIAL_CHAIN (ssl.VERIFY_X509_PARTIAL_CHAIN from Python 3.10)


def pinned_anchors(bundle: Bundle, pins: Sequence[str]) -> bytes:
    """Pure: the chain's certificates whose SHA-256 is pinned (all of the chain without pins).

    Raises:
        ValueError: pins are set and no certificate of the chain is pinned.
    """
    if not pins:
        return bundle.chain
    blocks = pem_blocks(bundle.chain.decode("ascii"), "the chain")
    anchors = [der for _, der in blocks if hashlib.sha256(der).hexdigest() in pins]
    if not anchors:
        raise ValueError(
            "the chain does not include the issuing CA the host file pins (issuing_ca_sha256 {})".format(
                ", ".join(pin[:16] + "..." for pin in pins)
            )
        )
    return b"".join(pem("CERTIFICATE", der) for der in anchors)


def handshake(bundle: Bundle, pins: Sequence[str] = ()) -> None:
    """A TLS handshake in memory: our server sending the certificate and chain, a client trusting
    only the bundle's chain, or with ``pins`` only the chain's pinned CA certificates.

    Raises:
        ValueError: the key does not match or the chain does not verify the certificate.
    """
    anchors = pinned_anchors(bundle, pins)
    server = server_context(bundle, with_chain=True)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False  # names are the rotation's business; this proves key and chain
    client.verify_flags |= _PARTIAL_CHAIN
    client.load_verify_locations(cadata=anchors.decode("ascii"))
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_client = client.wrap_bio(to_client, to_server)
    tls_server = server.wrap_bio(to_server, to_client, server_side=True)
    done = [False, False]
    for _ in range(20):
        for index, side in enumerate((tls_client, tls_server)):
            if done[index]:
                continue
            try:
                side.do_handshake()
                done[index] = True
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except ssl.SSLError as exc:
                if index == 1 and not done[0]:
                    continue  # the client's alert explains it on its side
                reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or str(exc)
                raise ValueError(f"the chain does not verify the certificate: {reason}") from None
        if done[0]:
            return
    raise ValueError("the chain does not verify the certificate: the in-memory handshake did not finish")


def validate_bundle(bundle: Bundle, now: float, pins: Sequence[str] = ()) -> None:
    """Everything checked before the first change; the end-entity rules are the engine's
    (rotation/verification.py check_end_entity).

    Raises:
        InstallError: BUNDLE_INVALID.
    """
    facts = bundle.facts
    expiry = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(facts.not_after))
    if facts.not_after <= now:
        raise InstallError(Exit.BUNDLE_INVALID, f"the certificate expired at {expiry}")
    if facts.not_after - now < MIN_REMAINING_SECONDS:
        raise InstallError(
            Exit.BUNDLE_INVALID,
            f"the certificate expires at {expiry}, in less than {MIN_REMAINING_SECONDS} seconds; certrotate "
            "installs only a certificate that outlives the install",
        )
    if facts.is_ca:
        raise InstallError(Exit.BUNDLE_INVALID, "the certificate is a CA certificate (basicConstraints CA:TRUE)")
    if facts.signs:
        raise InstallError(Exit.BUNDLE_INVALID, "the certificate may sign certificates or CRLs (keyCertSign/cRLSign)")
    if not facts.server_auth:
        raise InstallError(Exit.BUNDLE_INVALID, "the certificate's extended key usage lacks serverAuth")
    if not facts.common_name:
        raise InstallError(
            Exit.BUNDLE_INVALID, "the certificate has no common name to check the served certificate with"
        )
    try:
        handshake(bundle, pins)
    except ValueError as exc:
        raise InstallError(Exit.BUNDLE_INVALID, str(exc)) from None


def key_matches(certificate: bytes, key: bytes) -> bool:
    """Whether a certificate file's first certificate and a key file's key (the same file in the
    combined layout) belong together."""
    try:
        cert_blocks = [b for b in pem_blocks(certificate.decode("ascii"), "certificate") if b[0] == "CERTIFICATE"]
        key_blocks = [b for b in pem_blocks(key.decode("ascii"), "key") if b[0] in KEY_LABELS]
        bundle = Bundle(
            pem("CERTIFICATE", cert_blocks[0][1]),
            pem(key_blocks[0][0], key_blocks[0][1]),
            b"",
            certificate_facts(cert_blocks[0][1]),
        )
        server_context(bundle)
    except (ValueError, IndexError, UnicodeDecodeError):
        return False
    return True


def check_existing_content(kind: TargetKind, data: bytes, shown: str) -> None:
    """An existing target must already be a certificate (or key) file: certrotate replaces no other file.

    Raises:
        InstallError: REFUSED.
    """
    try:
        labels = [label for label, _ in pem_blocks(data.decode("ascii"), shown)]
    except (ValueError, UnicodeDecodeError):
        labels = ["?"]
    if not labels:
        return
    if labels.count("CERTIFICATE") > MAX_CHAIN_CERTIFICATES:
        raise refused(
            f"{shown} holds {labels.count('CERTIFICATE')} certificates: it is a CA bundle (an OS trust bundle or "
            "a client CA file), not a certificate file; certrotate never replaces it"
        )
    if kind is TargetKind.KEY:
        expected_ok, what = len(labels) == 1 and labels[0] in KEY_LABELS, "private key"
    elif kind is TargetKind.COMBINED:
        keys = [label for label in labels if label in KEY_LABELS]
        expected_ok = len(keys) == 1 and set(labels) - set(keys) == {"CERTIFICATE"}
        what = "certificate, chain and key"
    else:
        expected_ok, what = set(labels) == {"CERTIFICATE"}, "certificate"
    if not expected_ok:
        raise refused(f"{shown} exists and is not a {what} file; certrotate replaces only its own kind of file")


# ---------------------------------------------------------------------------------------------
# Subprocesses: the aws CLI and Apache
# ---------------------------------------------------------------------------------------------


def tool_environment(environ: Dict[str, str]) -> Dict[str, str]:
    env = dict(environ)
    env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    env["LANG"] = env["LC_ALL"] = "C"
    return env


def find_tool(name: str, env: Dict[str, str]) -> str:
    """The first ``name`` on PATH that nobody but root (or the installer's user) can have replaced:
    the file and its directory owned by them and writable by nobody else.

    Raises:
        InstallError: HOST_UNSUPPORTED when there is none.
    """
    euid = os.geteuid()
    skipped = []  # type: List[str]
    for directory in env["PATH"].split(":"):
        if not directory.startswith("/"):
            continue
        found = shutil.which(name, path=directory)
        if found is None:
            continue
        real = os.path.realpath(found)
        try:
            checks = [os.stat(real), os.stat(os.path.dirname(real))]
        except OSError:
            continue
        if all(st.st_uid in (0, euid) and not st.st_mode & 0o022 for st in checks):
            return real
        skipped.append(found)
    where = f"; not used, because another user can change them: {', '.join(skipped)}" if skipped else ""
    raise InstallError(Exit.HOST_UNSUPPORTED, f"{name} is not installed on this host (not in {env['PATH']}){where}")


def run_aws(arguments: List[str], env: Dict[str, str], code: Exit, what: str) -> bytes:
    """The stdout of ``aws ARGUMENTS``.

    Raises:
        InstallError: ``code`` with ``what`` and stderr's last line (never stdout), HOST_UNSUPPORTED.
    """
    try:
        done = subprocess.run(
            [find_tool("aws", env), *arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            timeout=AWS_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InstallError(code, what + ": the aws CLI timed out") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
        raise InstallError(code, "{}: {}".format(what, lines[-1] if lines else f"aws exit {done.returncode}"))
    return done.stdout


def fetch_secret(request: Request, env: Dict[str, str]) -> Dict[str, Any]:
    """The secret's JSON fields, read with the aws CLI in the secret's own region.

    Raises:
        InstallError: SECRET_UNREADABLE (stderr's last line, never stdout), HOST_UNSUPPORTED.
    """
    where = f"secret {request.secret_arn} ({request.version_stage})"
    arguments = ["secretsmanager", "get-secret-value", "--secret-id", request.secret_arn]
    arguments += ["--version-stage", request.version_stage, "--region", request.secret_arn.split(":")[3]]
    stdout = run_aws([*arguments, "--output", "json"], env, Exit.SECRET_UNREADABLE, "cannot read " + where)
    try:
        fields = json.loads(json.loads(stdout.decode("utf-8"))["SecretString"])
    except (ValueError, KeyError, TypeError, RecursionError):
        raise InstallError(Exit.SECRET_UNREADABLE, f"{where}: the secret value is not a JSON object") from None
    if not isinstance(fields, dict):
        raise InstallError(Exit.SECRET_UNREADABLE, f"{where}: the secret value is not a JSON object")
    for field in ("CERTIFICATE_PEM", "PRIVATE_KEY_PEM", "CERTIFICATE_CHAIN_PEM"):
        if not isinstance(fields.get(field), str) or "-----BEGIN" not in fields[field]:
            raise InstallError(Exit.SECRET_UNREADABLE, f"{where}: the secret has no {field}")
    return fields


def pick_distro(service: str, os_release: Optional[str]) -> Distro:
    """Pure: the distribution row from ServiceName, else from /etc/os-release's ID and ID_LIKE."""
    if service:
        return next(d for d in DISTROS if d.service == service)
    ids = []  # type: List[str]
    for line in (os_release or "").splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE"):
            ids.extend(value.strip().strip("\"'").split())
    for identifier in ids:
        if identifier in OS_FAMILIES:
            return next(d for d in DISTROS if d.family == OS_FAMILIES[identifier])
    raise InstallError(Exit.BAD_PARAMETER, "cannot tell the distribution; pass ServiceName apache2 or httpd")


# ---------------------------------------------------------------------------------------------
# The served-truth check: every fresh connection presents the expected certificate
# ---------------------------------------------------------------------------------------------

# After a reload, one connection that sees the new certificate proves only the worker it reached.
# A worker left over from before the reload (a graceful reload's old generation that keeps its
# listener; a second process in an SO_REUSEPORT group; a load-balanced set of processes) serves
# the old certificate to the connections the kernel hands it. So once one connection sees the
# expected certificate, SERVED_SAMPLE fresh connections must all present it, opened
# SERVED_ROUND at a time and held open until the whole round has its certificate (a worker busy
# with one cannot take the next in turn), one round every SERVED_SPACING seconds: 16 connections
# over just over a second, a full tick of Apache's once-a-second child maintenance. Each lands on
# a listener independently (SO_REUSEPORT hashes the connection's source port), so a stale share
# p of the listeners escapes 16 connections with probability (1 - p) ** 16: 1.5e-5 for one of
# two, 1 % for one of four. Anything else (an old serial, no handshake) restarts the count; the
# whole check is bounded by SERVE_WAIT_SECONDS (as before: a reload that has not settled in
# 30 s will not), with at least SERVED_PROOF_SECONDS left for the proof after a late first
# sighting. The result travels in the fleet record as ServedCheck.
SERVED_SAMPLE = 16
SERVED_ROUND = 4
SERVED_SPACING = 0.35
SERVED_POLL = 0.1  # seconds between single connections until one sees the expected certificate
SERVED_PROOF_SECONDS = 5.0
SERVED_CONNECT_SECONDS = 3.0
SERVED_RECHECK_SECONDS = 5.0  # the check of what a run left in place: nothing was reloaded, no long wait
SERVED_CHECK_LIMIT = 128  # characters of the fleet record's ServedCheck
MATCH = "="  # a probe's label: the expected certificate, byte for byte
NO_TLS = ""  # a probe's label: no TLS handshake (refused, reset, timed out)


class ServedProof(NamedTuple):
    """What the served-truth check saw: the labels of the last SERVED_SAMPLE probes (MATCH, NO_TLS
    or the serial presented instead), the expected serial, and how long it looked."""

    ok: bool
    labels: Tuple[str, ...]
    expected: str
    seconds: float

    @property
    def summary(self) -> str:
        return served_summary(self.labels)

    def why(self, port: int) -> str:
        return served_explanation(self, port)


def probe_label(der: Optional[bytes], expected: bytes) -> str:
    """Pure: the label of one probe's certificate."""
    if der is None:
        return NO_TLS
    if der == expected:
        return MATCH
    try:
        return certificate_facts(der).serial_hex
    except (ValueError, IndexError):
        return "unparsable"


def _counted(labels: Sequence[str]) -> List[Tuple[str, int]]:
    counts = {}  # type: Dict[str, int]
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def served_summary(labels: Sequence[str]) -> str:
    """Pure: the fleet record's ServedCheck: ``16/16`` when every probe presented the expected
    certificate, else ``stale: 3/16 serial AB12..., new: 13/16`` (the most frequent other serial,
    ``+N other`` for the rest, ``no handshake: K/16``), at most SERVED_CHECK_LIMIT characters."""
    total = len(labels)
    if not total:
        return ""
    counts = dict(_counted(labels))
    if counts.get(MATCH, 0) == total:
        return f"{total}/{total}"
    others = [(label, count) for label, count in _counted(labels) if label not in (MATCH, NO_TLS)]
    parts = []  # type: List[str]
    if others:
        serial = others[0][0] if len(others[0][0]) <= 20 else others[0][0][:20] + "..."
        parts.append(f"stale: {others[0][1]}/{total} serial {serial}")
        if len(others) > 1:
            parts.append(f"+{sum(count for _, count in others[1:])} other")
    if counts.get(NO_TLS):
        parts.append(f"no handshake: {counts[NO_TLS]}/{total}")
    parts.append(f"new: {counts.get(MATCH, 0)}/{total}")
    return bounded(", ".join(parts), SERVED_CHECK_LIMIT)


def served_explanation(proof: ServedProof, port: int) -> str:
    """Pure: the failure message: what the last connections presented, and for how long it waited."""
    total = len(proof.labels)
    if not total or all(label == NO_TLS for label in proof.labels):
        return f"nothing answers TLS on port {port} (waited {proof.seconds:.1f} s)"
    seen = []  # type: List[str]
    for label, count in _counted(proof.labels):
        if label == MATCH:
            seen.append(f"{count} the expected serial {proof.expected}")
        elif label == NO_TLS:
            seen.append(f"{count} no TLS handshake")
        else:
            seen.append(f"{count} serial {label}")
    stale = any(label not in (MATCH, NO_TLS) for label in proof.labels)
    hint = (
        "; a worker left from an earlier reload (or another process on the port) serves another certificate"
        if stale
        else ""
    )
    return "of the last {} fresh connections to port {} (in {:.1f} s), {}{}".format(
        total, port, proof.seconds, ", ".join(seen), hint
    )


def _probe(address: Tuple[str, int], hostname: str, barrier: Any, found: List[Optional[bytes]], index: int) -> None:
    """One fresh TLS connection with SNI: its certificate into ``found[index]``, held open until
    every connection of its round has one."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the DER served is compared byte for byte
    tls = None  # type: Optional[ssl.SSLSocket]
    try:
        raw = socket.create_connection(address, timeout=SERVED_CONNECT_SECONDS)
        try:
            tls = context.wrap_socket(raw, server_hostname=hostname)
            found[index] = tls.getpeercert(binary_form=True)
        except BaseException:
            raw.close()
            raise
    except (OSError, ssl.SSLError, ValueError):
        pass
    finally:
        with contextlib.suppress(Exception):
            barrier.wait(SERVED_CONNECT_SECONDS * 2)
        if tls is not None:
            tls.close()


def probe_round(address: Tuple[str, int], hostname: str, size: int) -> List[Optional[bytes]]:
    """``size`` fresh TLS connections at once; each one's certificate (None: no handshake)."""
    found = [None] * size  # type: List[Optional[bytes]]
    if size == 1:
        _probe(address, hostname, threading.Barrier(1), found, 0)
        return found
    barrier = threading.Barrier(size)
    threads = [
        threading.Thread(target=_probe, args=(address, hostname, barrier, found, index), daemon=True)
        for index in range(size)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SERVED_CONNECT_SECONDS * 4)
    return list(found)


def prove_served(
    port: int,
    hostname: str,
    facts: CertificateFacts,
    deadline_seconds: float = SERVE_WAIT_SECONDS,
    host: str = "127.0.0.1",
) -> ServedProof:
    """The served-truth check (see SERVED_SAMPLE): single connections until one presents ``facts``'
    certificate, then rounds until the last SERVED_SAMPLE connections all did, within the bound."""
    started = time.monotonic()
    deadline = started + deadline_seconds
    labels = []  # type: List[str]
    sighted = False
    while True:
        round_started = time.monotonic()
        size = SERVED_ROUND if sighted else 1
        labels.extend(probe_label(der, facts.der) for der in probe_round((host, port), hostname, size))
        labels = labels[-SERVED_SAMPLE:]
        if not sighted and labels[-1] == MATCH:
            sighted = True
            deadline = max(deadline, time.monotonic() + SERVED_PROOF_SECONDS)
        now = time.monotonic()
        if sighted and len(labels) == SERVED_SAMPLE and all(label == MATCH for label in labels):
            return ServedProof(True, tuple(labels), facts.serial_hex, now - started)
        if now >= deadline:
            return ServedProof(False, tuple(labels), facts.serial_hex, now - started)
        pause = SERVED_SPACING if sighted else SERVED_POLL
        time.sleep(max(0.0, min(pause - (now - round_started), deadline - now)))


class Apache:
    """The config test, reload and served-certificate check of the host's Apache."""

    def __init__(self, distro: Distro, main_config: Optional[str], port: int, env: Dict[str, str]) -> None:
        self.distro = distro
        self.main_config = main_config
        self.port = port
        self.env = env

    def _command(self, *arguments: str) -> List[str]:
        if self.main_config:
            return [find_tool(self.distro.server, self.env), "-f", self.main_config, *arguments]
        return [find_tool(self.distro.control, self.env), *arguments]

    def config_test(self) -> Tuple[bool, str]:
        command = self._command("-t") if self.main_config else self._command("configtest")
        try:
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.env,
                timeout=APACHE_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False, f"the config test did not finish in {APACHE_TIMEOUT_SECONDS} s"
        return done.returncode == 0, done.stdout.decode("utf-8", "replace")

    def reload(self, mode: str) -> Tuple[bool, str]:
        """graceful or restart; starts Apache when it is not running. Output goes to a file, not a
        pipe, because a daemon started here would hold a pipe open; no descriptor of ours but
        that file is inherited (Python's descriptors are non-inheritable)."""
        import tempfile

        command = self._command("-k", mode) if self.main_config else self._command(mode)
        with tempfile.TemporaryFile() as output:
            try:
                done = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=output,
                    env=self.env,
                    timeout=APACHE_TIMEOUT_SECONDS,
                    check=False,
                    close_fds=True,
                )
            except subprocess.TimeoutExpired:
                return False, f"{' '.join(command)} did not finish in {APACHE_TIMEOUT_SECONDS} s"
            output.seek(0)
            text = output.read(65536).decode("utf-8", "replace")
        return done.returncode == 0, text

    def served(self, hostname: str) -> Optional[bytes]:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the DER served is compared byte for byte
        try:
            raw = socket.create_connection(("127.0.0.1", self.port), timeout=3)
            with raw, context.wrap_socket(raw, server_hostname=hostname) as tls:
                return tls.getpeercert(binary_form=True)
        except (OSError, ssl.SSLError, ValueError):
            return None

    def wait_for(self, facts: CertificateFacts, deadline_seconds: float = SERVE_WAIT_SECONDS) -> ServedProof:
        """The served-truth check on this Apache's port, with the certificate's name as SNI."""
        return prove_served(self.port, facts.common_name, facts, deadline_seconds)


# ---------------------------------------------------------------------------------------------
# The journal and the swap: register, change, verify, undo on any failure
# ---------------------------------------------------------------------------------------------


class Phase(enum.Enum):
    STAGING = "staging"  # writing NAME.certrotate-new files; live files untouched
    SWAPPING = "swapping"  # live files being replaced; Apache not reloaded yet
    SWAPPED = "swapped"  # all live files replaced; Apache may have been reloaded
    COMMITTING = "committing"  # the new files are served; undo files become the previous files


def replace_state_file(dir_fd: int, name: str, data: bytes) -> None:
    """Replace ``name`` in the state directory atomically (mode 0600, never through a link)."""
    temporary = name + ".tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary, dir_fd=dir_fd)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)


class Journal:
    """One JSON record in the state directory, replaced atomically at every phase."""

    def __init__(self, dir_fd: int, directory: str) -> None:
        self.dir_fd = dir_fd
        self.path = os.path.join(directory, JOURNAL_NAME)

    def read(self) -> Optional[Dict[str, Any]]:
        data = read_regular(self.dir_fd, JOURNAL_NAME, self.path)
        if data is None:
            return None
        try:
            record = json.loads(data.decode("utf-8"))
        except ValueError:
            raise InstallError(
                Exit.ROLLBACK_INCOMPLETE, f"journal {self.path} is unreadable; inspect the certificate files by hand"
            ) from None
        if not isinstance(record, dict):
            raise InstallError(Exit.ROLLBACK_INCOMPLETE, f"journal {self.path} is not a record")
        return record

    def write(self, record: Dict[str, Any]) -> None:
        replace_state_file(self.dir_fd, JOURNAL_NAME, json.dumps(record, sort_keys=True).encode("utf-8"))

    def clear(self) -> None:
        for name in (JOURNAL_NAME, JOURNAL_NAME + ".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=self.dir_fd)
        os.fsync(self.dir_fd)

    def phase(self) -> Optional[str]:
        """The phase the journal on disk records (None: no journal), for what the next run will do."""
        try:
            record = self.read()
        except InstallError:
            return "unreadable"
        return None if record is None else str(record.get("phase"))


def sha256(data: Optional[bytes]) -> Optional[str]:
    return None if data is None else hashlib.sha256(data).hexdigest()


class Swap:
    """Replace the three live files together, keeping what it takes to undo every step.

    For each target: ``NAME.certrotate-new`` is written (stage); the live file gets a second name
    ``NAME.certrotate-undo`` (a hard link: no copy, no space) and the new file is renamed over it
    (apply); on success the undo name becomes ``NAME.certrotate-previous`` when the old pair
    matched, else it is dropped (commit); on failure each undo name is renamed back (undo).
    Every phase is in the journal first, so the next run can finish or undo it after a SIGKILL.
    """

    def __init__(
        self,
        action: Action,
        targets: Sequence[Target],
        contents: Sequence[bytes],
        keep_previous: bool,
        journal: Journal,
        faults: FaultInjector,
    ) -> None:
        self.action = action
        self.targets = list(targets)
        self.contents = list(contents)
        self.keep_previous = keep_previous
        self.journal = journal
        self.faults = faults
        self.existed = [t.exists() for t in self.targets]
        self.new_hashes = [str(sha256(c)) for c in self.contents]
        self.phase = None  # type: Optional[Phase]

    @classmethod
    def from_journal(
        cls, record: Dict[str, Any], targets: Sequence[Target], journal: Journal, faults: FaultInjector
    ) -> "Swap":
        swap = cls(
            Action(record["action"]), targets, [b""] * len(targets), bool(record["keep_previous"]), journal, faults
        )
        swap.existed = [bool(entry["existed"]) for entry in record["targets"]]
        swap.new_hashes = [str(entry["new_sha256"]) for entry in record["targets"]]
        swap.phase = Phase(record["phase"])
        return swap

    def record(self, phase: Phase) -> None:
        self.journal.write(
            {
                "version": 1,
                "action": self.action.value,
                "phase": phase.value,
                "keep_previous": self.keep_previous,
                "pid": os.getpid(),
                "targets": [
                    {"path": t.path, "kind": t.kind.name, "existed": existed, "new_sha256": digest}
                    for t, existed, digest in zip(self.targets, self.existed, self.new_hashes)
                ],
            }
        )
        self.phase = phase

    def stage(self) -> None:
        self.phase = Phase.STAGING  # a failure writing the first record leaves NAME.certrotate-new at most
        self.record(Phase.STAGING)
        for target, data in zip(self.targets, self.contents):
            target.write_new(data)
        self.faults.point("staged")

    def apply(self) -> None:
        self.record(Phase.SWAPPING)
        for target, existed in zip(self.targets, self.existed):
            if existed:
                target.remove(UNDO_SUFFIX)
                target.link("", UNDO_SUFFIX)
                self.faults.changed()
            target.rename(NEW_SUFFIX, "")
            self.faults.changed()
        for target in self.targets:
            target.sync_directory()
        self.record(Phase.SWAPPED)
        self.faults.point("swapped")

    def commit(self) -> None:
        """Record COMMITTING, then turn the undo names into the previous files.

        When the state file system is full the record cannot be written and the journal still
        says SWAPPED, which the next run would undo (taking the served certificate away): the
        commit then goes on without it (renames and unlinks need no space) and clears the
        journal; only when that fails too does the journal stay, and ``swap_in`` says what the
        next run will do with it.
        """
        try:
            self.record(Phase.COMMITTING)
        except OSError:
            self.faults.point("commit-record-failed")
        self.finish_commit()

    def finish_commit(self) -> None:
        for target in self.targets:
            if target.exists(UNDO_SUFFIX):
                if self.keep_previous:
                    target.rename(UNDO_SUFFIX, PREVIOUS_SUFFIX)
                    self.faults.changed()
                else:
                    target.remove(UNDO_SUFFIX)
            target.remove(NEW_SUFFIX)
            target.sync_directory()
        self.journal.clear()

    def undo(self) -> None:
        """Put every live file back as it was; idempotent, so recovery runs the same code."""
        for target, existed, digest in zip(self.targets, self.existed, self.new_hashes):
            if target.exists(UNDO_SUFFIX):
                if target.same_file(UNDO_SUFFIX, ""):
                    target.remove(UNDO_SUFFIX)  # linked, not yet replaced: rename would do nothing
                else:
                    target.rename(UNDO_SUFFIX, "")
            elif not existed and target.exists() and sha256(target.read()) == digest:
                target.remove("")
            target.remove(NEW_SUFFIX)
            target.sync_directory()
        self.journal.clear()


class SignalGuard:
    """Turns SIGTERM/SIGINT/SIGHUP into ``Interrupted``, except while an undo, a commit or the reload
    after an undo runs: those are the way back to a consistent host, so a signal then is ignored
    and the run ends as soon as they are done (SIGKILL is left to the journal)."""

    def __init__(self) -> None:
        self.deferred = False
        self.pending = None  # type: Optional[int]

    def install(self) -> None:
        for signum in SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if not self.deferred:
            raise Interrupted(signum)
        self.pending = signum

    def protect(self, work: Callable[[], None]) -> None:
        before = self.deferred
        self.deferred = True
        try:
            work()
        finally:
            self.deferred = before

    def hold(self) -> None:
        """From now on a signal is noted, not raised: the install is committed (or its failure is
        being recorded), and only the finishing steps are left."""
        self.deferred = True

    def report(self) -> None:
        if self.pending is not None:
            say(
                f"signal {signal.Signals(self.pending).name} arrived after the run was decided; "
                "it was finished first (the exit code says what it did)"
            )


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------


class Outcome(NamedTuple):
    """What this run leaves the host serving: the input of every finishing step."""

    action: Action
    changed: bool
    facts: CertificateFacts
    targets: Tuple[str, str, str]
    port: int
    previous_kept: bool
    replaced: Optional[CertificateFacts] = None  # what the certificate file served before (kept as previous)


class Host:
    """Everything one run works with, opened and checked once."""

    def __init__(self, request: Request, config: HostConfig, apache: Apache, euid: int, guard: SignalGuard) -> None:
        self.request = request
        self.config = config
        self.apache = apache
        self.euid = euid
        self.guard = guard
        self.faults = FaultInjector(config.fault)
        self.served_check = ""  # the latest served-truth check's summary (the fleet record's ServedCheck)
        self.journal_fd = open_directory(config.journal_dir, euid, create_mode=0o700)
        self.journal = Journal(self.journal_fd, config.journal_dir)
        UNNAMED_FILE_DIRECTORIES.append(self.journal_fd)

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            UNNAMED_FILE_DIRECTORIES.remove(self.journal_fd)
        os.close(self.journal_fd)

    def read_state(self, name: str) -> Any:
        """A JSON file of the state directory (None when absent or not JSON, with a warning)."""
        path = os.path.join(self.config.journal_dir, name)
        data = read_regular(self.journal_fd, name, path)
        if data is None:
            return None
        try:
            return json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError):
            warn(f"warning: {path} is not valid JSON; starting it again from this run")
            return None

    def write_state(self, name: str, value: Any) -> None:
        replace_state_file(self.journal_fd, name, json.dumps(value, sort_keys=True).encode("utf-8"))


def acquire_lock(config: HostConfig, euid: int) -> int:
    """The host's one install lock, on a descriptor no child inherits (O_CLOEXEC).

    Raises:
        InstallError: BUSY when another run holds it, REFUSED when it is not ours.
    """
    dir_fd = open_directory(config.lock_dir, euid, create_mode=0o700)
    path = os.path.join(config.lock_dir, LOCK_NAME)
    try:
        fd = os.open(LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise refused(f"lock {path} is a symbolic link") from None
        raise
    finally:
        os.close(dir_fd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid not in (0, euid):
        os.close(fd)
        raise refused(f"lock {path} is not a regular file of {_owners(euid)}")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            raise InstallError(Exit.BUSY, f"another certrotate install is running on this host (lock {path})") from None
        raise
    return fd


def reload_after_undo(host: Host, restored: Optional[CertificateFacts] = None) -> str:
    """Reload Apache onto the restored files and, given the ``restored`` certificate, check that it
    is what fresh connections get (SERVED_RECHECK_SECONDS); a failure here is reported, never raised."""
    try:
        ok, _ = host.apache.config_test()
        if not ok:
            return "Apache was not reloaded: its config test fails with the restored files too"
        ok, _ = host.apache.reload("graceful")
        if ok and restored is not None:
            return "Apache reloaded; " + restored_served(host, restored)
    except Exception as exc:  # the restore is done; say why the reload is not
        return f"Apache was not reloaded: {classify(exc)[1]}"
    return "Apache reloaded" if ok else "Apache did not reload"


def restored_served(host: Host, restored: CertificateFacts) -> str:
    """The served-truth check of the certificate a rollback restored, as a clause of its message."""
    proof = host.apache.wait_for(restored, SERVED_RECHECK_SECONDS)
    if proof.ok:
        return f"the restored serial {restored.serial_hex} is served on {proof.summary} fresh connections"
    return "the restored certificate is not served on every connection: " + proof.why(host.request.port)


def recover(host: Host) -> None:
    """Before anything else: undo (or finish) a run that was killed halfway.

    Raises:
        InstallError: ROLLBACK_INCOMPLETE when it cannot, the journal kept for the next run.
    """
    record = host.journal.read()
    if record is None:
        return
    targets = []  # type: List[Target]
    try:
        try:
            for entry in record["targets"]:
                path = str(entry["path"])
                targets.append(
                    Target(TargetKind[entry["kind"]], path, open_directory(os.path.dirname(path), host.euid))
                )
            swap = Swap.from_journal(record, targets, host.journal, host.faults)
        except (KeyError, ValueError, TypeError) as exc:
            raise InstallError(
                Exit.ROLLBACK_INCOMPLETE,
                f"journal {host.journal.path} cannot be used ({exc}); inspect the certificate files by hand",
            ) from None
        try:
            if swap.phase is Phase.COMMITTING:
                host.guard.protect(swap.finish_commit)
                say(f"finished an interrupted {swap.action.value} (its certificate was served); previous files kept")
            else:
                host.guard.protect(swap.undo)
                note = ""
                if swap.phase is Phase.SWAPPED:
                    note = "; " + reload_after_undo(host)
                say(
                    "recovered an interrupted {} (stopped while {}): the files it replaced are back{}".format(
                        swap.action.value, swap.phase.value if swap.phase else "?", note
                    )
                )
        except OSError as exc:
            raise InstallError(
                Exit.ROLLBACK_INCOMPLETE,
                f"cannot recover an interrupted install ({describe_os_error(exc)}); "
                f"the journal {host.journal.path} is kept for the next run",
            ) from None
    finally:
        for target in targets:
            os.close(target.dir_fd)


def describe_os_error(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def classify(exc: BaseException) -> Tuple[Exit, str]:
    """The exit code and message of a failure; never the text of an arbitrary exception."""
    if isinstance(exc, InstallError):
        return exc.code, exc.message
    if isinstance(exc, Interrupted):
        return Exit.INTERRUPTED, f"interrupted by signal {signal.Signals(exc.signum).name}"
    if isinstance(exc, OSError):
        return Exit.WRITE_FAILED, f"a file operation failed: {describe_os_error(exc)}"
    trace = exc.__traceback__
    while trace is not None and trace.tb_next is not None:
        trace = trace.tb_next
    line = trace.tb_lineno if trace is not None else 0
    return Exit.INTERNAL, f"unexpected {type(exc).__name__} at line {line} of the installer"


def roll_back(host: Host, swap: Swap, exc: BaseException) -> InstallError:
    code, reason = classify(exc)
    phase = swap.phase
    if phase is None:
        return InstallError(code, reason + "; nothing was changed")
    try:
        host.guard.protect(swap.undo)
    except Exception as undo_exc:
        return InstallError(
            Exit.ROLLBACK_INCOMPLETE,
            f"{reason}; restoring the previous files failed too ({classify(undo_exc)[1]}); "
            f"the journal {host.journal.path} is kept and the next run finishes the rollback",
        )
    if phase is Phase.STAGING:
        return InstallError(code, reason + "; no live file was changed")
    note = ""
    if phase is Phase.SWAPPED:
        notes = []  # type: List[str]
        restored = None  # type: Optional[CertificateFacts]
        with contextlib.suppress(OSError):
            restored = live_facts(swap.targets[0].read()) if swap.existed[0] else None
        host.guard.protect(lambda: notes.append(reload_after_undo(host, restored)))
        note = f" ({notes[0]})" if notes else ""
    return InstallError(code, f"{reason}; the previous certificate files are restored{note}")


def managed_paths(host: Host) -> Set[str]:
    """The files certrotate may replace: those it created or installed on this host (the state
    directory's ``managed.json``; before it existed, the files of the fleet records of successful
    runs) and those the host file names in ``managed_files``."""
    return set(host.config.managed_files) | recorded_managed(host)


def recorded_managed(host: Host) -> Set[str]:
    paths = set()  # type: Set[str]
    recorded = host.read_state(MANAGED_NAME)
    if isinstance(recorded, list):
        paths.update(entry for entry in recorded if isinstance(entry, str))
    elif recorded is None:
        state = host.read_state(INVENTORY_STATE)
        records = state.get("records") if isinstance(state, dict) else state
        for record in records if isinstance(records, list) else []:
            if isinstance(record, dict) and record.get("Status") in ("installed", "unchanged", "rolled-back"):
                paths.update(str(record.get(key, "")) for key in ("CertificateFile", "KeyFile", "ChainFile"))
    return paths


def remember_managed(host: Host, targets: Sequence[Target]) -> None:
    """Record the files this run installed as certrotate's own; a failure to record is a warning."""
    try:
        paths = recorded_managed(host) | {target.path for target in targets}
        host.guard.protect(lambda: host.write_state(MANAGED_NAME, sorted(p for p in paths if isinstance(p, str))))
    except (OSError, InstallError) as exc:
        warn("warning: the installed files were not recorded as certrotate's own: " + classify(exc)[1])


def read_live(host: Host, targets: Sequence[Target]) -> List[Optional[bytes]]:
    """The live files; an existing one must be certrotate's own (see ``managed_paths``) and of its kind.

    Raises:
        InstallError: REFUSED.
    """
    live = []  # type: List[Optional[bytes]]
    managed = None  # type: Optional[Set[str]]
    for target in targets:
        data = target.read()
        if data is not None:
            check_existing_content(target.kind, data, target.path)
            managed = managed_paths(host) if managed is None else managed
            if target.path not in managed:
                raise refused(
                    f"{target.path} ({target.kind.parameter}) exists and was not created or installed by certrotate; "
                    f"certrotate replaces only its own files, or those {host.config.source} names in managed_files"
                )
        live.append(data)
    return live


def live_facts(data: Optional[bytes]) -> Optional[CertificateFacts]:
    """The facts of a live certificate file's first certificate (None when it has none)."""
    try:
        blocks = pem_blocks((data or b"").decode("ascii"), "certificate")
        return certificate_facts(blocks[0][1]) if blocks else None
    except (ValueError, UnicodeDecodeError):
        return None


def old_pair_matches(live: Sequence[Optional[bytes]]) -> bool:
    """Whether the live files may become the previous files: all present, key matching."""
    if any(data is None for data in live):
        return False
    certificate, key = live[0], live[-1] if len(live) == 1 else live[1]
    assert certificate is not None and key is not None
    return key_matches(certificate, key)


def swap_in(host: Host, targets: Sequence[Target], bundle: Bundle, keep_previous: bool) -> None:
    """Stage, swap, config test, reload, prove over TLS; undo everything on any failure."""
    swap = Swap(
        host.request.action, targets, layout_contents(bundle, targets), keep_previous, host.journal, host.faults
    )
    mode = host.request.reload_mode
    try:
        swap.stage()
        swap.apply()
        ok, output = host.apache.config_test()
        if not ok:
            for line in output.strip().splitlines()[-3:]:
                warn("  " + line)
            raise InstallError(Exit.CONFIG_TEST_FAILED, "Apache config test failed")
        ok, output = host.apache.reload(mode)
        if not ok:
            lines = [line for line in output.splitlines() if line.strip()]
            raise InstallError(Exit.RELOAD_FAILED, "Apache {} failed{}".format(mode, ": " + lines[-1] if lines else ""))
        host.faults.point("reloaded")
        proof = host.apache.wait_for(bundle.facts)
        host.served_check = proof.summary
        if not proof.ok:
            raise InstallError(
                Exit.RELOAD_FAILED, "Apache does not serve the new certificate: " + proof.why(host.request.port)
            )
    except BaseException as exc:  # every failure after the first change is undone
        raise roll_back(host, swap, exc) from None
    failures = []  # type: List[OSError]

    def commit() -> None:
        try:
            swap.commit()
        except OSError as exc:
            failures.append(exc)

    host.guard.protect(commit)
    host.guard.hold()  # committed (or as good as): a signal from here on cannot undo it
    if failures:
        raise InstallError(Exit.WRITE_FAILED, commit_failure_message(host, swap, failures[0])) from None
    remember_managed(host, targets)


def commit_failure_message(host: Host, swap: "Swap", exc: OSError) -> str:
    """What a failed commit left, in agreement with what the next run does with the journal."""
    served = f"the new certificate is served, but finishing the install failed ({describe_os_error(exc)})"
    phase = host.journal.phase()
    if phase == Phase.COMMITTING.value:
        return served + "; the next run finishes it (keeping the previous files) before anything else"
    if phase is None:
        return served + "; the previous files were not kept (*.certrotate-undo files may be left)"
    try:
        host.guard.protect(host.journal.clear)  # a journal saying "swapped" would make the next run undo the install
    except OSError:
        return (
            served + f"; the journal {host.journal.path} still says {phase}: the next run restores the previous "
            "certificate files and reloads Apache (free space in the state directory and run again)"
        )
    return served + "; the previous files were not kept (*.certrotate-undo files may be left)"


BUNDLE_FIELDS = ("CERTIFICATE_PEM", "PRIVATE_KEY_PEM", "CERTIFICATE_CHAIN_PEM")


def layout_contents(bundle: Bundle, targets: Sequence[Target]) -> List[bytes]:
    """Pure: what each target holds: the three files, or one file of certificate, chain and key."""
    if len(targets) == 1:
        return [bundle.certificate + bundle.chain + bundle.key]
    return list(bundle.contents())


def target_files(targets: Sequence[Target]) -> Tuple[str, str, str]:
    """The certificate, key and chain paths (one path three times in the combined layout)."""
    paths = [target.path for target in targets]
    return (paths[0], paths[1 % len(paths)], paths[2 % len(paths)])


def split_saved(saved: Sequence[bytes]) -> Tuple[str, str, str]:
    """The certificate, key and chain texts of saved files (one combined file: its blocks).

    Raises:
        ValueError: UnicodeDecodeError on non-ASCII content.
    """
    texts = [data.decode("ascii") for data in saved]
    if len(texts) == 3:
        return texts[0], texts[1], texts[2]
    blocks = pem_blocks(texts[0], "the saved combined file")
    certificates = [pem(label, der) for label, der in blocks if label == "CERTIFICATE"]
    keys = [pem(label, der) for label, der in blocks if label in KEY_LABELS]
    rest = [label for label, _ in blocks if label != "CERTIFICATE" and label not in KEY_LABELS]
    if rest or not certificates:
        raise ValueError("the saved combined file holds other blocks than certificates and one key")
    return certificates[0].decode(), b"".join(keys).decode(), b"".join(certificates[1:]).decode()


def check_in_place(host: Host, facts: CertificateFacts) -> None:
    """The served-truth check of a certificate already installed (nothing reloaded): recorded in
    the fleet view; a failure is a warning, since the files are right and nothing is undone."""
    proof = host.apache.wait_for(facts, SERVED_RECHECK_SECONDS)
    host.served_check = proof.summary
    if not proof.ok:
        warn(
            "warning: the installed certificate is not served on every connection: "
            + proof.why(host.request.port)
            + "; reload or restart Apache"
        )


def run_install(host: Host, targets: Sequence[Target]) -> Outcome:
    fields = fetch_secret(host.request, host.apache.env)
    try:
        bundle = parse_bundle(
            fields[BUNDLE_FIELDS[0]], fields[BUNDLE_FIELDS[1]], fields[BUNDLE_FIELDS[2]], BUNDLE_FIELDS
        )
    except ValueError as exc:
        raise InstallError(Exit.BUNDLE_INVALID, str(exc)) from None
    validate_bundle(bundle, time.time(), host.config.ca_pins)
    live = read_live(host, targets)
    files = target_files(targets)
    if live == layout_contents(bundle, targets):
        check_in_place(host, bundle.facts)
        return Outcome(Action.INSTALL, False, bundle.facts, files, host.request.port, False)
    keep = old_pair_matches(live)
    swap_in(host, targets, bundle, keep)
    return Outcome(Action.INSTALL, True, bundle.facts, files, host.request.port, keep, live_facts(live[0]))


def run_rollback(host: Host, targets: Sequence[Target]) -> Outcome:
    saved = []  # type: List[bytes]
    for target in targets:
        data = target.read(PREVIOUS_SUFFIX)
        if data is None:
            raise InstallError(Exit.NOTHING_TO_ROLL_BACK, f"no previous file to restore for {target.path}")
        saved.append(data)
    files = target_files(targets)
    names = (files[0] + PREVIOUS_SUFFIX, files[1] + PREVIOUS_SUFFIX, files[2] + PREVIOUS_SUFFIX)
    try:
        bundle = parse_bundle(*split_saved(saved), names)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InstallError(
            Exit.BUNDLE_INVALID, f"the saved previous files are not a valid pair ({exc}); nothing was changed"
        ) from None
    try:
        validate_bundle(bundle, time.time(), host.config.ca_pins)
    except InstallError as exc:
        raise InstallError(
            Exit.BUNDLE_INVALID, f"the saved previous files are not a valid pair ({exc.message}); nothing was changed"
        ) from None
    live = read_live(host, targets)
    keep = old_pair_matches(live)
    swap_in(host, targets, bundle, keep)
    return Outcome(Action.ROLLBACK, True, bundle.facts, files, host.request.port, keep, live_facts(live[0]))


RUNS = {Action.INSTALL: run_install, Action.ROLLBACK: run_rollback}  # type: Dict[Action, Callable[[Host, Sequence[Target]], Outcome]]


def print_outcome(host: Host, outcome: Outcome) -> None:
    facts = outcome.facts
    if not outcome.changed:
        say(f"certificate serial {facts.serial_hex} is already installed; nothing changed")
    elif outcome.action is Action.INSTALL:
        say(f"installed; Apache on port {outcome.port} serves:")
    else:
        say(f"rolled back; Apache on port {outcome.port} serves:")
    out(f"  subject=CN={facts.common_name}")
    out(f"  serial={facts.serial_hex}")
    out("  notAfter={}".format(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(facts.not_after))))
    out(f"  SHA256 Fingerprint={facts.fingerprint}")
    if outcome.changed:
        kept = (
            "previous kept as *" + PREVIOUS_SUFFIX
            if outcome.previous_kept
            else f"the replaced files were not a matching pair, so the *{PREVIOUS_SUFFIX} files were left as they were"
        )
        if len(set(outcome.targets)) == 1:
            say(f"file written: {outcome.targets[0]} (0600: certificate, chain and key); {kept}")
        else:
            say(f"files written: {outcome.targets[0]} {outcome.targets[1]} (0600) {outcome.targets[2]}; {kept}")
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------
# The fleet view: what this host serves, recorded as SSM custom inventory after every run
# ---------------------------------------------------------------------------------------------

INVENTORY_TYPE = "Custom:CertrotateCertificate"
INVENTORY_SCHEMA_VERSION = "1.0"
INVENTORY_STATE = "inventory.json"
INVENTORY_ITEMS = "inventory-items.json"  # what put-inventory sends (--items file://...)
INSTANCE_ID_VARIABLE = "AWS_SSM_INSTANCE_ID"  # the SSM agent sets both for every command it runs
REGION_VARIABLE = "AWS_SSM_REGION_NAME"
INSTANCE_ID_PATTERN = r"i-(\w{8}|\w{17})|mi-\w{17}"  # PutInventory's InstanceId pattern
REGION_PATTERN = r"[a-z]{2}(-[a-z]{1,10}){1,3}-[0-9]{1,2}"
MAX_UNSERVED_RECORDS = 8  # records of files certrotate never installed (failed runs only); oldest dropped
MAX_INVENTORY_BYTES = 60000  # the records' JSON: far below SSM's item size limit (ItemSizeLimitExceeded)
MESSAGE_LIMIT = 512
SUBJECT_LIMIT = 256
# What the file serves: set by a successful install or rollback only (InstalledAt: when; empty
# when certrotate never installed the file and the facts are read off the live file).
SERVED_KEYS = ("SecretArn", "VersionStage", "Serial", "FingerprintSha256", "NotAfter", "Subject", "InstalledAt")
FILE_KEYS = ("CertificateFile", "KeyFile", "ChainFile", "HttpsPort")
# The latest run, whatever it did (a failed run shows as failed in the fleet view).
# ServedCheck: the run's served-truth check (``16/16``, ``stale: 3/16 serial ..., new: 13/16``;
# empty when the run did not get as far as a check, and in an older installer's records).
RUN_KEYS = ("Status", "ExitCode", "Message", "RecordedAt", "ServedCheck")
# The latest run when it failed: what it tried to install (empty after a successful run).
FAILURE_KEYS = (
    "LastFailureSecretArn",
    "LastFailureVersionStage",
    "LastFailureExitCode",
    "LastFailureMessage",
    "LastFailureAt",
)
INVENTORY_KEYS = SERVED_KEYS + FILE_KEYS + RUN_KEYS + FAILURE_KEYS


class Served(enum.Enum):
    INSTALLED = "installed"
    UNCHANGED = "unchanged"
    ROLLED_BACK = "rolled-back"
    FAILED = "failed"


def iso_time(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def bounded(text: str, limit: int) -> str:
    """Pure: printable ASCII, at most ``limit`` characters."""
    text = printable(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def facts_fields(facts: Optional[CertificateFacts]) -> Dict[str, str]:
    if facts is None:
        return {"Serial": "", "FingerprintSha256": "", "NotAfter": "", "Subject": ""}
    return {
        "Serial": facts.serial_hex,
        "FingerprintSha256": facts.fingerprint,
        "NotAfter": iso_time(facts.not_after),
        "Subject": bounded(facts.common_name, SUBJECT_LIMIT),
    }


class RunReport(NamedTuple):
    """One run's contribution to the fleet record of its certificate file."""

    status: Served
    request: Request
    files: Tuple[str, str, str]
    facts: Optional[CertificateFacts]  # success: what is served now; failure: the live file's certificate
    replaced: Optional[CertificateFacts]  # success: what the file served before (now the previous file)
    previous_kept: bool
    code: int
    message: str
    now: float
    served_check: str = ""  # the served-truth check's summary (empty: no check ran)


class FleetState(NamedTuple):
    """The state directory's ``inventory.json``: the records sent, and what each file's
    ``*.certrotate-previous`` serves (for the record after a rollback onto it)."""

    records: List[Dict[str, str]]
    previous: Dict[str, Dict[str, str]]


def load_fleet_state(recorded: Any) -> FleetState:
    """Pure: the kept state (a list: the records of an older installer). Malformed records are dropped."""
    records = recorded.get("records") if isinstance(recorded, dict) else recorded
    previous = recorded.get("previous") if isinstance(recorded, dict) else None
    kept = []  # type: List[Dict[str, str]]
    for record in records if isinstance(records, list) else []:
        if not isinstance(record, dict) or not all(isinstance(v, str) for v in record.values()):
            continue
        if not all(isinstance(record.get(key), str) for key in ("CertificateFile", "RecordedAt")):
            continue
        entry = dict.fromkeys(INVENTORY_KEYS, "")
        entry.update((key, bounded(record[key], MAX_PATH_LENGTH)) for key in INVENTORY_KEYS if key in record)
        if "InstalledAt" not in record and record.get("Status") != Served.FAILED.value:
            entry["InstalledAt"] = entry["RecordedAt"]  # an older installer's record of a successful run
        kept.append(entry)
    saved = {}  # type: Dict[str, Dict[str, str]]
    for path, fields in previous.items() if isinstance(previous, dict) else []:
        if isinstance(fields, dict) and all(isinstance(fields.get(key), str) for key in SERVED_KEYS):
            saved[str(path)] = {key: fields[key] for key in SERVED_KEYS}
    return FleetState(kept, saved)


def served_of(record: Optional[Dict[str, str]], facts: Optional[CertificateFacts]) -> Dict[str, str]:
    """Pure: the served fields for a file that serves ``facts``: ``record``'s when it describes that
    certificate (same fingerprint), else the certificate's own facts with no known secret."""
    if record is not None and facts is not None and record.get("FingerprintSha256") == facts.fingerprint:
        return {key: record.get(key, "") for key in SERVED_KEYS}
    return dict(facts_fields(facts), SecretArn="", VersionStage="", InstalledAt="")


def next_fleet_state(state: FleetState, report: RunReport, exists: Callable[[str], bool]) -> FleetState:
    """Pure: the records after one run.

    A record says what its certificate file serves: the served fields change only with a successful
    install (this run's secret and certificate) or rollback (the secret recorded for the previous
    file when it was kept, if it is that certificate). A failed run changes the run fields and adds
    LastFailure* only. Records of files certrotate installed are never dropped for count; records
    of files it never installed are kept up to MAX_UNSERVED_RECORDS, newest first; over
    MAX_INVENTORY_BYTES those go first, then failure messages, then records of files that no
    longer exist.
    """
    records = {record["CertificateFile"]: record for record in state.records}
    previous = dict(state.previous)
    certificate_file = report.files[0]
    old = records.get(certificate_file)
    entry = dict.fromkeys(INVENTORY_KEYS, "")
    request = report.request
    run = {
        "Status": report.status.value,
        "ExitCode": str(int(report.code)),
        "Message": bounded(report.message, MESSAGE_LIMIT),
        "RecordedAt": iso_time(report.now),
        "ServedCheck": bounded(report.served_check, SERVED_CHECK_LIMIT),
    }
    if report.status is Served.FAILED:
        if old is not None:
            entry.update((key, old[key]) for key in SERVED_KEYS + FILE_KEYS)
        else:
            entry.update(served_of(None, report.facts))
            entry.update(zip(FILE_KEYS[:3], report.files), HttpsPort=str(request.port))
        entry.update(
            LastFailureSecretArn=request.secret_arn,
            LastFailureVersionStage=request.version_stage if request.secret_arn else "",
            LastFailureExitCode=run["ExitCode"],
            LastFailureMessage=run["Message"],
            LastFailureAt=run["RecordedAt"],
        )
    else:
        if report.status is Served.ROLLED_BACK:
            served = dict(served_of(previous.get(certificate_file), report.facts), InstalledAt=run["RecordedAt"])
        else:
            served = dict(facts_fields(report.facts), SecretArn=request.secret_arn, VersionStage=request.version_stage)
            same = old is not None and report.facts is not None and old["FingerprintSha256"] == report.facts.fingerprint
            kept = old["InstalledAt"] if old is not None and same and report.status is Served.UNCHANGED else ""
            served["InstalledAt"] = kept or run["RecordedAt"]
        if report.previous_kept and report.replaced is not None:
            previous[certificate_file] = served_of(old, report.replaced)
        entry.update(served)
        entry.update(zip(FILE_KEYS[:3], report.files), HttpsPort=str(request.port))
    entry.update(run)
    records[certificate_file] = entry
    return bound_fleet_state(FleetState(list(records.values()), previous), exists)


def _size(records: List[Dict[str, str]]) -> int:
    return len(json.dumps(records, sort_keys=True))


def bound_fleet_state(state: FleetState, exists: Callable[[str], bool]) -> FleetState:
    """Pure (``exists`` aside): the caps of ``next_fleet_state``."""
    served = [r for r in state.records if r["InstalledAt"]]
    unserved = sorted((r for r in state.records if not r["InstalledAt"]), key=lambda r: r["RecordedAt"], reverse=True)
    unserved = unserved[:MAX_UNSERVED_RECORDS]
    while unserved and _size(served + unserved) > MAX_INVENTORY_BYTES:
        unserved.pop()
    if _size(served + unserved) > MAX_INVENTORY_BYTES:
        served = [dict(r, Message=r["Message"][:64], LastFailureMessage=r["LastFailureMessage"][:64]) for r in served]
    if _size(served + unserved) > MAX_INVENTORY_BYTES:
        served = [r for r in served if exists(r["CertificateFile"])]
    records = sorted(served + unserved, key=lambda record: record["CertificateFile"])
    files = {record["CertificateFile"] for record in records}
    return FleetState(records, {path: fields for path, fields in state.previous.items() if path in files})


def inventory_items(entries: List[Dict[str, str]], now: float) -> List[Dict[str, Any]]:
    """Pure: PutInventory's Items. No ContentHash: every run's RecordedAt changes the content anyway,
    and MD5 is unavailable on FIPS-mode hosts."""
    return [
        {
            "TypeName": INVENTORY_TYPE,
            "SchemaVersion": INVENTORY_SCHEMA_VERSION,
            "CaptureTime": iso_time(now),
            "Content": entries,
        }
    ]


def put_inventory(host: Host, items: List[Dict[str, Any]], env: Dict[str, str]) -> str:
    """PutInventory with the aws CLI for the instance the SSM agent runs us on; returns what it did.

    The items travel in a file (``--items file://``) of the root-only state directory, never in
    argv: one argv string is limited to 128 KiB (MAX_ARG_STRLEN), and a record over it made every
    later put-inventory fail with E2BIG.

    Raises:
        InstallError: the record could not be sent (the caller reports it and carries on).
    """
    instance = env.get(INSTANCE_ID_VARIABLE, "")
    region = env.get(REGION_VARIABLE, "")
    if not instance:
        return f"{INSTANCE_ID_VARIABLE} is not set (not run by the SSM agent): kept on this host only"
    if re.fullmatch(INSTANCE_ID_PATTERN, instance) is None:
        raise InstallError(Exit.INTERNAL, f"{INSTANCE_ID_VARIABLE} {instance[:64]!r} is not an instance id")
    if re.fullmatch(REGION_PATTERN, region) is None:
        raise InstallError(Exit.INTERNAL, f"{REGION_VARIABLE} {region[:64]!r} is not a region")
    size = _size(items[0]["Content"])
    if size > MAX_INVENTORY_BYTES:
        raise InstallError(
            Exit.INTERNAL,
            f"the records of this host's certificate files are {size} bytes (at most {MAX_INVENTORY_BYTES}); "
            "remove certificate files certrotate no longer manages from "
            + os.path.join(host.config.journal_dir, INVENTORY_STATE),
        )
    host.write_state(INVENTORY_ITEMS, items)
    items_path = os.path.join(host.config.journal_dir, INVENTORY_ITEMS)
    arguments = ["ssm", "put-inventory", "--instance-id", instance, "--region", region]
    arguments += ["--items", "file://" + items_path, "--output", "json"]
    run_aws(arguments, env, Exit.INTERNAL, "PutInventory")
    return f"{INVENTORY_TYPE} of {instance} in {region}"


def record_fleet_view(host: Host, report: RunReport) -> None:
    """Fold this run into this host's records and send them all; never fails the run.

    PutInventory replaces a custom type whole, so every run sends the records of all the
    certificate files this host serves, kept in its state directory. A record that cannot be kept
    or sent is reported on stderr ("fleet view not recorded") and the run keeps its own exit code:
    the install itself is what the exit code describes, and a host that stops reporting shows as
    stale in ``certrotate hosts``.
    """
    try:
        state = load_fleet_state(host.read_state(INVENTORY_STATE))
        state = next_fleet_state(state, report, os.path.exists)
        host.write_state(INVENTORY_STATE, {"version": 2, "records": state.records, "previous": state.previous})
        where = put_inventory(host, inventory_items(state.records, report.now), host.apache.env)
        entry = next(r for r in state.records if r["CertificateFile"] == report.files[0])
        check = f", served check {entry['ServedCheck']}" if entry["ServedCheck"] else ""
        say(f"fleet view: {report.status.value}; serves serial {entry['Serial'] or '-'}{check} recorded ({where})")
    except Exception as exc:
        warn("warning: fleet view not recorded: " + classify(exc)[1])


def record_outcome(host: Host, outcome: Outcome) -> None:
    if outcome.action is Action.ROLLBACK:
        status = Served.ROLLED_BACK
    else:
        status = Served.INSTALLED if outcome.changed else Served.UNCHANGED
    report = RunReport(
        status,
        host.request,
        outcome.targets,
        outcome.facts,
        outcome.replaced,
        outcome.previous_kept,
        Exit.OK,
        "",
        time.time(),
        host.served_check,
    )
    record_fleet_view(host, report)


def record_failure(host: Host, targets: Sequence[Target], code: int, message: str) -> None:
    """A failed run is recorded too: its failure, and what the certificate file still serves."""
    facts = None  # type: Optional[CertificateFacts]
    with contextlib.suppress(Exception):
        facts = live_facts(targets[0].read())
    files = target_files(targets)
    report = RunReport(
        Served.FAILED, host.request, files, facts, None, False, code, message, time.time(), host.served_check
    )
    record_fleet_view(host, report)


# Steps that run after a successful run, in order, each given the Host and the Outcome.
FINISHERS = (print_outcome, record_outcome)  # type: Tuple[Callable[[Host, Outcome], None], ...]


def read_os_release() -> Optional[str]:
    try:
        with open("/etc/os-release", encoding="utf-8") as handle:
            return handle.read(65536)
    except OSError:
        return None


def check_apache_config(path: str, euid: int) -> None:
    """The host file's apache_config: like the host file, only root (or the installer's user) wrote it."""
    dir_fd = open_directory(os.path.dirname(path), euid)
    try:
        if read_regular(dir_fd, os.path.basename(path), path, owner_must_be=(0, euid)) is None:
            raise refused(f"apache_config {path} does not exist")
    finally:
        os.close(dir_fd)


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


def main(argv: Sequence[str], environ: Dict[str, str]) -> int:
    """Run one install or rollback; returns the exit code (``Exit``)."""
    euid = os.geteuid()
    guard = SignalGuard()
    guard.install()
    lock_fd = None  # type: Optional[int]
    host = None  # type: Optional[Host]
    targets = []  # type: List[Target]
    try:
        request = read_request(argv[1] if len(argv) > 1 else "install", environ)
        config = load_host_config(environ, euid)
        if config.apache_config:
            check_apache_config(config.apache_config, euid)
        check_version_stage(request, config)
        distro = pick_distro(request.service, read_os_release())
        files = tuple(given or default for given, default in zip(request.files, default_files(distro)))
        apache = Apache(distro, config.apache_config, request.port, tool_environment(environ))
        lock_fd = acquire_lock(config, euid)
        host = Host(request, config, apache, euid, guard)
        recover(host)
        if not (request.files[0] and (request.files[2] or request.combined)):  # certrotate's own, made on first use
            os.close(open_directory(distro.cert_dir, euid, create_mode=0o755))
        targets = open_targets((files[0], files[1], files[2]), config, euid, combined=request.combined)
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
            record_failure(host, targets, int(exc.code), exc.message)
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
        for target in targets:
            os.close(target.dir_fd)
        if host is not None:
            host.close()
        if lock_fd is not None:
            os.close(lock_fd)


if __name__ == "__main__":
    sys.exit(main(sys.argv, dict(os.environ)))
