"""The documents' parameters: the table the documents are rendered from (the server ones built from
the adapters' registry), and one run's request, checked again here against the same patterns."""

import enum
import re
from typing import Dict, NamedTuple, Optional, Tuple

from .output import Exit, InstallError
from .registry import Registry, choice_pattern


class Action(enum.Enum):
    INSTALL = "install"
    ROLLBACK = "rollback"
    TRUST = "trust"  # a trust bundle (``trust_run``; its own document, InstallTrustBundle)
    CRL = "crl"  # the CRLs of the client-CA bundle's CAs (``crl_run``; its own document, InstallCRL)


class Parameter(NamedTuple):
    """A document parameter: the program checks the same pattern as the document's allowedPattern."""

    name: str
    pattern: str
    default: Optional[str]  # None: required


# Every pattern is bounded: a value travels into the fleet record (SSM inventory) and an argv, and
# SSM counts the longest values against the document's 64 KB. Every pattern also compiles, with the
# same meaning, in Java (the SSM API) and Go (SSM Agent's regexp, which refuses nested repeats whose
# counts multiply past 1000, so 16 names of 255 characters cannot be one repeat): a path is at most
# 15 directory names of at most 50 characters, then a file name of at most 255 (NAME_MAX), so at
# most 15 * 51 + 256 = 1021 characters, within MAX_PATH_LENGTH (checked again in code).
PATH_PATTERN = r"^$|^(/[A-Za-z0-9_][A-Za-z0-9._-]{0,49}){0,15}/[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$"
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
# Which server the certificate is for (servers/: one adapter each, ``registry``). The host's root
# chooses it (the host file's ``server``, else the registry's first); the parameter may only repeat
# that choice ("" = the host's). ServiceName: a systemd unit name of an adapter's distribution rows;
# Apache's tells the distribution (apache2 Debian, httpd RHEL), nginx and haproxy are the same on
# both (the distribution then comes from /etc/os-release). ReloadMode: graceful (every adapter's,
# the undo's) or another mode an adapter takes. FileLayout: separate, certificate, key and chain in
# three files (three renames: a kill between them leaves a mismatched pair until the next run), or
# combined, one file holding the certificate, the chain and the key, mode 0600, which Apache reads
# as SSLCertificateFile alone (2.4.8+; nginx's ssl_certificate and ssl_certificate_key may name the
# same file, HAProxy's crt is such a file): one rename switches the pair, so no moment on disk has a
# certificate without its key; "" = the server's own (its first layout).
# "" = the host file's https_port, else 443.
HTTPS_PORT = Parameter("HttpsPort", r"^$|^[1-9][0-9]{0,4}$", "")
DEFAULT_HTTPS_PORT = 443
DEFAULT_RELOAD_MODE = "graceful"
FILE_PARAMETERS = (CERTIFICATE_FILE, KEY_FILE, CHAIN_FILE)
# A trust bundle is a secret under the reserved prefix ``certrotate/trust-bundles/`` (written by the
# operators only: the central template denies every other principal); the bundle's name is the rest
# of the secret's name, before the 6 characters Secrets Manager appends. BundleFile may only pick
# one of the destinations the host file gives that bundle ("" = all of them).
TRUST_BUNDLE_PREFIX = "certrotate/trust-bundles/"
BUNDLE_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
BUNDLE_ARN = Parameter(
    "BundleArn",
    r"^arn:aws(-[a-z]{1,10}){0,2}:secretsmanager:[a-z]{2}(-[a-z]{1,10}){1,3}-[0-9]{1,2}:[0-9]{12}"
    r":secret:certrotate/trust-bundles/[A-Za-z0-9][A-Za-z0-9_-]{0,63}-[A-Za-z0-9]{6}$",
    None,
)
BUNDLE_FILE = Parameter("BundleFile", PATH_PATTERN, "")


class ServerParameters(NamedTuple):
    """The parameters whose values are the registry's: their patterns list its adapters' values."""

    server: Parameter
    service_name: Parameter
    reload_mode: Parameter
    file_layout: Parameter


def server_parameters(registry: Registry) -> ServerParameters:
    """Pure: Server, ServiceName, ReloadMode and FileLayout, their patterns built from ``registry``.

    Raises:
        ValueError: a registered value is not a plain word (``registry.choice_pattern``).
    """
    return ServerParameters(
        Parameter("Server", choice_pattern(registry.names(), empty=True), ""),
        Parameter("ServiceName", choice_pattern(registry.services(), empty=True), ""),
        Parameter("ReloadMode", choice_pattern(registry.reload_modes(), empty=False), DEFAULT_RELOAD_MODE),
        Parameter("FileLayout", choice_pattern(registry.layouts(), empty=True), ""),
    )


def document_parameters(action: Action, registry: Registry) -> Tuple[Parameter, ...]:
    """Pure: the parameters of ``action``'s document, in the document's order."""
    server = server_parameters(registry)
    tail = (*FILE_PARAMETERS, server.file_layout, server.server, server.service_name, HTTPS_PORT, server.reload_mode)
    if action is Action.TRUST:
        return (BUNDLE_ARN, BUNDLE_FILE, HTTPS_PORT)
    if action is Action.CRL:  # where the CRLs come from and go is the host file's alone
        return (HTTPS_PORT,)
    return (SECRET_ARN, VERSION_STAGE, *tail) if action is Action.INSTALL else tail


class Request(NamedTuple):
    action: Action
    secret_arn: str
    version_stage: str
    files: Tuple[str, str, str]  # certificate, key, chain ("" = the host file's, else the distribution's default)
    service: str
    port: int  # 0 in a request as read: the host file's https_port, else 443
    reload_mode: str
    layout: str = "separate"  # "" in a request as read: the server's own (main.complete_request)
    server: str = "apache"  # "" in a request as read: the host's server (main.complete_request)

    @property
    def combined(self) -> bool:
        return self.layout == "combined"


def read_request(action_name: str, environ: Dict[str, str], registry: Registry) -> Request:
    """The parameters of one run, checked against the documents' patterns (``registry``'s servers).

    Raises:
        InstallError: BAD_PARAMETER naming the parameter, its value and the rule.
    """
    try:
        action = Action(action_name)
    except ValueError:
        raise InstallError(Exit.BAD_PARAMETER, f"unknown action {action_name!r} (allowed: install, rollback)") from None
    values: Dict[str, str] = {}
    for parameter in document_parameters(action, registry):
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
    port = int(values[HTTPS_PORT.name] or 0)  # 0: the host's (main.complete_request)
    if port > 65535:
        raise InstallError(Exit.BAD_PARAMETER, f"parameter HttpsPort must be at most 65535, not {port}")
    check_combined_files(values["FileLayout"], values[KEY_FILE.name], values[CHAIN_FILE.name])
    return Request(
        action,
        values.get(SECRET_ARN.name, ""),
        values.get(VERSION_STAGE.name, VERSION_STAGE.default or ""),
        (values[CERTIFICATE_FILE.name], values[KEY_FILE.name], values[CHAIN_FILE.name]),
        values["ServiceName"],
        port,
        values["ReloadMode"],
        values["FileLayout"],
        values["Server"],
    )


def check_combined_files(layout: str, key_file: str, chain_file: str) -> None:
    """Pure: the combined layout names CertificateFile alone.

    Raises:
        InstallError: BAD_PARAMETER.
    """
    if layout == "combined" and (key_file or chain_file):
        raise InstallError(
            Exit.BAD_PARAMETER,
            "parameters KeyFile and ChainFile must be empty with FileLayout combined "
            "(CertificateFile holds the certificate, the chain and the key)",
        )
