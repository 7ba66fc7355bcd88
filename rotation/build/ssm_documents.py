"""Render the SSM Run Command documents from the installer script (one source of truth).

``python -m rotation.build.ssm_documents`` rewrites ``ssm_documents/*.yaml``; a test proves the
committed documents equal what this renders, so the YAML always carries the script unchanged.
Every parameter that reaches the shell has an ``allowedPattern`` (or ``allowedValues``), the
same pattern the script checks again, and the script receives each value single-quoted.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS_DIR = ROOT / "ssm_documents"
SCRIPT = DOCUMENTS_DIR / "install_certificate.sh"

SECRET_ARN_PATTERN = (
    r"^arn:aws[a-z-]*:secretsmanager:[a-z]{2}(-[a-z]+)+-[0-9]:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$"
)
PATH_PATTERN = r"^$|^(/[A-Za-z0-9_][A-Za-z0-9._-]*)+$"


@dataclass(frozen=True)
class Parameter:
    name: str
    flag: str
    description: str
    default: str | None = None
    pattern: str | None = None
    values: tuple[str, ...] = ()

    def to_ssm(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": "String", "description": self.description}
        if self.default is not None:
            spec["default"] = self.default
        if self.values:
            spec["allowedValues"] = list(self.values)
        if self.pattern:
            spec["allowedPattern"] = self.pattern
        return spec


SECRET = Parameter(
    "SecretArn",
    "--secret-arn",
    "Full ARN of the certificate secret (any account and region; the host calls the secret's region).",
    pattern=SECRET_ARN_PATTERN,
)
STAGE = Parameter(
    "VersionStage", "--version-stage", "Staging label to install.", "AWSCURRENT", r"^[A-Za-z0-9_.-]{1,256}$"
)
FILES = (
    Parameter(
        "CertificateFile",
        "--certificate-file",
        "Certificate path; empty = the distribution's default "
        "(/etc/ssl/certs/certrotate.pem or /etc/pki/tls/certs/certrotate.pem).",
        "",
        PATH_PATTERN,
    ),
    Parameter(
        "KeyFile",
        "--key-file",
        "Private key path (written 0600, root); empty = the distribution's "
        "default (/etc/ssl/private/certrotate.key or /etc/pki/tls/private/certrotate.key).",
        "",
        PATH_PATTERN,
    ),
    Parameter(
        "ChainFile",
        "--chain-file",
        "Chain path; empty = the distribution's default (certrotate-chain.pem next to the certificate).",
        "",
        PATH_PATTERN,
    ),
)
APACHE = (
    Parameter(
        "ServiceName",
        "--service",
        "Apache flavour: apache2 (Debian/Ubuntu) or httpd (Amazon Linux/RHEL); empty = detect from /etc/os-release.",
        "",
        r"^$|^(apache2|httpd)$",
    ),
    Parameter(
        "ApacheConfigFile",
        "--apache-config",
        "Apache main config file when not the distribution's default; empty = use apachectl/apache2ctl.",
        "",
        PATH_PATTERN,
    ),
    Parameter(
        "HttpsPort",
        "--https-port",
        "Local port where Apache serves TLS, to prove the new certificate is served.",
        "443",
        r"^[1-9][0-9]{0,4}$",
    ),
    Parameter(
        "ReloadMode",
        "--reload",
        "graceful (default: no dropped connections) or restart.",
        "graceful",
        r"^(graceful|restart)$",
        values=("graceful", "restart"),
    ),
)


@dataclass(frozen=True)
class Document:
    name: str
    description: str
    step: str
    parameters: tuple[Parameter, ...]
    action: str


DOCUMENTS = (
    Document(
        "RunUpdateTLS",
        "certrotate: install the certificate from a Secrets Manager secret on Apache, "
        "validated first, atomically, with a config test, graceful reload, TLS check and automatic rollback.",
        "installCertificate",
        (SECRET, STAGE, *FILES, *APACHE),
        "install",
    ),
    Document(
        "RollbackTLS",
        "certrotate: restore the certificate files kept by the last install on Apache, then "
        "config test, reload and TLS check.",
        "rollbackCertificate",
        (*FILES, *APACHE),
        "rollback",
    ),
)


def script_lines() -> list[str]:
    text = SCRIPT.read_text()
    if "{{" in text:
        raise ValueError(f"{SCRIPT} must not contain '{{{{': SSM would substitute it")
    return text.splitlines()


def header(document: Document) -> list[str]:
    """The lines before the script: its arguments, each value single-quoted.

    Safe because every allowedPattern excludes quotes, and the script checks each value again.
    """
    arguments = " ".join(f"{p.flag} '{{{{ {p.name} }}}}'" for p in document.parameters)
    return ["#!/usr/bin/env bash", f"set -- --action {document.action} {arguments}"]


def render(document: Document) -> str:
    body = {
        "schemaVersion": "2.2",
        "description": document.description,
        "parameters": {p.name: p.to_ssm() for p in document.parameters},
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": document.step,
                "precondition": {"StringEquals": ["platformType", "Linux"]},
                "inputs": {"timeoutSeconds": "600", "runCommand": [*header(document), *script_lines()]},
            }
        ],
    }
    generated = "# Generated by `python -m rotation.build.ssm_documents` from install_certificate.sh; do not edit.\n"
    return generated + str(yaml.safe_dump(body, sort_keys=False, width=120))


def document_path(document: Document) -> Path:
    return DOCUMENTS_DIR / f"{document.name}.yaml"


def main() -> int:
    for document in DOCUMENTS:
        document_path(document).write_text(render(document))
        print(f"wrote {document_path(document).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
