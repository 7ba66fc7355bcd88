"""Render the SSM Run Command documents from the installer program (one source of truth).

``python -m rotation.build.ssm_documents`` rewrites ``ssm_documents/*.yaml``; a test proves the
committed documents equal what this renders, so the YAML always carries the program unchanged.

Each parameter reaches the program as data: ``interpolationType: ENV_VAR`` makes the SSM Agent
(3.3.2746.0 and later) put the value in ``SSM_<Name>``; for older agents the launcher applies
AWS's documented fallback, ``if [ -z "${SSM_X+x}" ]; then export SSM_X="{{ X }}"; fi``, which is
safe because every ``allowedPattern`` (the program's own patterns, checked again by the program)
excludes the characters a double-quoted shell word interprets. The launcher then starts the
program with the host's python3 (or RHEL 8's platform-python).

The program is the package ``ssm_documents/certrotate_installer/`` built into one file by
``rotation/build/installer.py`` (each module less its comments, the same syntax tree): each
document's own, holding only the modules its command can import (``Document.entries`` names the
module ``main()`` imports lazily for it; ``installer.closure`` follows the imports). It travels
bz2-compressed and Ascii85-encoded in a quoted here-document, in lines of ``BLOB_LINE``
characters: SSM counts a document and its longest parameter values against 64 KB, and certrotate
keeps each document within ``budget.SIZE_BUDGET`` (56 KiB) so that later code has room. bz2 (in
every Python 3) beats the other codecs of the standard library on this text: 35.3 KB against
37.5 KB for xz (preset 9, extreme) and 42.7 KB for zlib, measured on the 151.7 KB build of
December 2026 (and lzma is an optional module of a Python build). Ascii85 (pure Python in
``base64`` since 3.4) writes 5 characters for 4 bytes where base64 writes 4 for 3; its three
characters that YAML or JSON would quote or escape are written as letters it never uses, so the
blob needs no quoting anywhere. A test proves the blob decodes to the build byte for byte, and
that every module it embeds is its file less its comments, parsing to the same tree;
``python -m rotation.build.ssm_documents --decode ssm_documents/RunUpdateTLS.yaml`` prints it.
"""

from __future__ import annotations

import base64
import bz2
import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rotation.build import installer

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS_DIR = ROOT / "ssm_documents"
PACKAGE = installer.PACKAGE_DIR
HEREDOC_END = "CERTROTATE_PYTHON"
# The installer's parameter table (certrotate_installer/parameters.py) and its registry of server
# adapters (servers/__init__.py): the documents are rendered from them.
INSTALLER = installer.load_module("parameters")
REGISTRY = installer.load_module("servers").REGISTRY
ADAPTERS = REGISTRY.adapters


def _listed(words: list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return " or ".join([", ".join(words[:-1]), words[-1]]) if len(words) > 1 else "".join(words)


def _services(adapter: Any) -> str:
    """``apache2 (debian) or httpd (rhel) for Apache``; one service for all families: ``nginx for nginx``."""
    rows = adapter.distros
    if len({row.service for row in rows}) == 1:
        return f"{rows[0].service} for {adapter.title}"
    return _listed([f"{row.service} ({row.family})" for row in rows]) + f" for {adapter.title}"


TITLES = _listed([adapter.title for adapter in ADAPTERS])

DESCRIPTIONS = {
    "SecretArn": "Full ARN of the certificate secret (any account and region; the host calls the secret's region).",
    "VersionStage": "Staging label to install: AWSCURRENT or AWSPREVIOUS "
    "(others only where the host file allows them).",
    "CertificateFile": "Certificate path under an allowed directory (with FileLayout combined: the one 0600 file of "
    "certificate, chain and key); empty = the host file's certificate_file, else the distribution's default "
    "(/etc/ssl/certrotate/certrotate.pem or "
    "/etc/pki/tls/certrotate/certrotate.pem; never a CA directory).",
    "KeyFile": "Private key path under an allowed directory (written 0600, root); empty = the host file's key_file, "
    "else the distribution's default (/etc/ssl/private/certrotate.key or /etc/pki/tls/private/certrotate.key).",
    "ChainFile": "Chain path under an allowed directory; empty = the host file's chain_file, else the "
    "distribution's default (certrotate-chain.pem next to the certificate).",
    "Server": "The TLS server to feed: empty (default) = the host's, which root names in the host file "
    f'("server": {_listed(list(REGISTRY.names()))}; {ADAPTERS[0].title} without it); a value must equal it. HAProxy '
    "takes the certificate through its Runtime API where the host file names the socket.",
    "ServiceName": f"Service name: {'; '.join(_services(adapter) for adapter in ADAPTERS)}; "
    "empty = detect the distribution from /etc/os-release.",
    "HttpsPort": "Local port where the server serves TLS, to prove the new certificate is served; empty (default) = "
    "the host file's https_port, else 443.",
    "ReloadMode": f"{_listed(list(REGISTRY.reload_modes()))}: graceful (default) drops no connection (HAProxy: the "
    "Runtime API where configured).",
    "BundleArn": "Full ARN of the trust bundle: a secret named certrotate/trust-bundles/<name> (written by operators "
    "only); the host installs it only where its host file's trust_bundles names <name>.",
    "BundleFile": "Empty (default) = every file the host file gives the bundle (the server's client-CA file, "
    "application trust files); a value must be one of them.",
    "FileLayout": "separate (CertificateFile, KeyFile, ChainFile) or combined: CertificateFile alone holds the "
    "certificate, chain and key (0600), switched by one rename; Apache needs only SSLCertificateFile. Empty "
    "(default) = the server's own: "
    + "; ".join(f"{adapter.layouts[0]} for {adapter.title}" for adapter in ADAPTERS)
    + " (each server's layouts: "
    + "; ".join(f"{adapter.title} {_listed(list(adapter.layouts))}" for adapter in ADAPTERS)
    + ").",
}


@dataclass(frozen=True)
class Parameter:
    name: str
    description: str
    pattern: str
    default: str | None = None
    values: tuple[str, ...] = ()

    def to_ssm(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": "String", "description": self.description}
        if self.default is not None:
            spec["default"] = self.default
        if self.values:
            spec["allowedValues"] = list(self.values)
        spec["allowedPattern"] = self.pattern
        spec["interpolationType"] = "ENV_VAR"
        return spec


# The parameters whose values are a closed list: the document shows them as allowedValues too.
# (Server and FileLayout default to "", the host's server and its own layout: their pattern says so.)
CLOSED_VALUES = {
    "ReloadMode": REGISTRY.reload_modes(),
}


def _parameters(action: Any) -> tuple[Parameter, ...]:
    return tuple(
        Parameter(
            p.name,
            DESCRIPTIONS[p.name],
            p.pattern,
            p.default,
            CLOSED_VALUES.get(p.name, ()),
        )
        for p in INSTALLER.document_parameters(action, REGISTRY)
    )


@dataclass(frozen=True)
class Document:
    name: str
    description: str
    step: str
    parameters: tuple[Parameter, ...]
    action: str
    # The modules main() imports lazily for this command (certrotate_installer.<entry>): the program
    # embeds them and what they import, nothing else of the package beyond main's own closure.
    entries: tuple[str, ...] = ()


DOCUMENTS = (
    Document(
        "RunUpdateTLS",
        f"certrotate: install the certificate from a Secrets Manager secret on {TITLES}, "
        "validated first, atomically, with a config test, graceful reload, TLS check and automatic rollback.",
        "installCertificate",
        _parameters(INSTALLER.Action.INSTALL),
        "install",
    ),
    Document(
        "RollbackTLS",
        f"certrotate: restore the certificate files kept by the last install on {TITLES}, then "
        "config test, reload and TLS check.",
        "rollbackCertificate",
        _parameters(INSTALLER.Action.ROLLBACK),
        "rollback",
    ),
    Document(
        "InstallTrustBundle",
        f"certrotate: install a trust bundle (CA certificates an operator published) where the host file says, on "
        f"{TITLES}: each certificate checked to be a CA, atomically, with a config test, graceful reload, a check "
        "that the server asks client certificates of exactly the bundle's CAs, and automatic rollback.",
        "installTrustBundle",
        _parameters(INSTALLER.Action.TRUST),
        "trust",
        ("trust_run",),
    ),
    Document(
        "InstallCRL",
        f"certrotate: refresh the mutual-TLS server's CRL file from the CRL locations the host file names, on "
        f"{TITLES}: each CRL verified under a CA of the server's client-CA bundle, current, not older than the "
        "one installed, atomically, with a config test, graceful reload, a check that the server still asks for "
        "the bundle's CAs, and automatic rollback. An unchanged CRL changes nothing.",
        "installCrl",
        _parameters(INSTALLER.Action.CRL),
        "crl",
        ("crl_run",),
    ),
)


def entry_modules(document: Document) -> tuple[str, ...]:
    """The module names of ``document``'s lazy entries (``certrotate_installer.trust_run``)."""
    return tuple(f"{installer.PACKAGE_NAME}.{entry}" for entry in document.entries)


def check_entries(sources: tuple[tuple[str, str], ...], documents: tuple[Document, ...] = DOCUMENTS) -> None:
    """Every lazy import of ``main()`` in ``sources`` (name, source) is some document's entry: a command
    added there gets its modules embedded, or the build stops.

    Raises:
        ValueError: ``main()`` imports a module lazily that no document names.
    """
    named = {name for document in documents for name in entry_modules(document)}
    unnamed = installer.dispatch_imports(sources) - named
    if unnamed:
        raise ValueError(f"{', '.join(sorted(unnamed))}: main() imports it lazily, but no document names it")


def program_text(document: Document) -> str:
    """The program ``document`` embeds: the modules its command can import, built from the package
    (no ``{{``: SSM would substitute it)."""
    return installer.build(entry_modules(document))


# Ascii85 (``!`` to ``u``, and ``z``) but for the three characters a YAML or JSON string would quote
# or escape, which take the three letters Ascii85 never writes: no quote, no backslash, no ``{``.
_A85_QUOTED = b"'" + b'"' + b"\\"
_BLOB_LETTERS = b"vwx"
BLOB_LINE = 4096  # characters per here-document line: a YAML list item costs 7 bytes more


def program_blob_lines(document: Document) -> list[str]:
    """``document``'s program, bz2-compressed and Ascii85-encoded (``_A85_QUOTED`` written as ``_BLOB_LETTERS``).

    Raises:
        ValueError: a line would end the here-document early (it cannot: the terminator is shorter).
    """
    return list(_blob_lines(program_text(document)))


@functools.lru_cache(maxsize=4)
def _blob_lines(program: str) -> tuple[str, ...]:
    """Pure: :func:`program_blob_lines` of ``program`` (bz2 at level 9 is kept, not redone per document)."""
    encoded = base64.a85encode(bz2.compress(program.encode("utf-8"), 9))
    blob = encoded.translate(bytes.maketrans(_A85_QUOTED, _BLOB_LETTERS)).decode("ascii")
    lines = tuple(blob[i : i + BLOB_LINE] for i in range(0, len(blob), BLOB_LINE))
    if HEREDOC_END in lines:
        raise ValueError("a line of the program's blob equals the here-document's terminator")
    return lines


def decode_blob(lines: list[str]) -> str:
    encoded = "".join(lines).encode("ascii").translate(bytes.maketrans(_BLOB_LETTERS, _A85_QUOTED))
    return bz2.decompress(base64.a85decode(encoded)).decode("utf-8")


# Runs the here-document: the decoded program as __main__, its argv[1] the action. It sits between
# single quotes in sh, so it spells the three characters by their codes (39, 34, 92).
_BOOTSTRAP = (
    "import base64, bz2, sys; "
    f'blob = sys.stdin.buffer.read().translate(bytes.maketrans(b"{_BLOB_LETTERS.decode()}", '
    f"bytes({tuple(_A85_QUOTED)!r}))); "
    "source = bz2.decompress(base64.a85decode(blob)); "
    'exec(compile(source, "certrotate-installer.py", "exec"), {"__name__": "__main__"})'
)


def launcher(document: Document) -> list[str]:
    """The POSIX sh lines before the program: parameters into SSM_<Name>, then python3."""
    fallback = [
        f'if [ -z "${{SSM_{p.name}+x}}" ]; then export SSM_{p.name}="{{{{ {p.name} }}}}"; fi'
        for p in document.parameters
    ]
    return [
        "#!/bin/sh",
        "# certrotate: the SSM Agent passes each parameter in SSM_<Name> (interpolationType ENV_VAR,",
        "# agent 3.3.2746.0 and later); for older agents AWS's documented fallback fills it in. The",
        "# program checks every value again. The here-document is the package ssm_documents/certrotate_installer/",
        "# (the modules this command imports) built into one program, bz2-compressed and Ascii85-encoded",
        "# (SSM's 64 KB document limit).",
        *fallback,
        'python=""',
        "for candidate in python3 /usr/libexec/platform-python; do",
        '  if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi',
        "done",
        'if [ -z "$python" ]; then',
        "  echo 'certrotate: error: no python3 on this host (install python3, 3.6 or later)' >&2",
        "  exit 13",
        "fi",
        f"exec \"$python\" -I -c '{_BOOTSTRAP}' {document.action} <<'{HEREDOC_END}'",
    ]


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
                "inputs": {
                    "timeoutSeconds": "600",
                    "runCommand": [*launcher(document), *program_blob_lines(document), HEREDOC_END],
                },
            }
        ],
    }
    generated = "# Generated by `python -m rotation.build.ssm_documents` from certrotate_installer/; do not edit.\n"
    return generated + str(yaml.safe_dump(body, sort_keys=False, width=120))


def document_path(document: Document) -> Path:
    return DOCUMENTS_DIR / f"{document.name}.yaml"


def embedded_program(path: Path) -> str:
    """The program a rendered document carries, decoded."""
    commands: list[str] = yaml.safe_load(path.read_text())["mainSteps"][0]["inputs"]["runCommand"]
    start = next(i for i, line in enumerate(commands) if line.endswith(f"<<'{HEREDOC_END}'")) + 1
    return decode_blob(commands[start : commands.index(HEREDOC_END, start)])


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m rotation.build.ssm_documents",
        description="Render ssm_documents/*.yaml from the package ssm_documents/certrotate_installer/ (rewrites them).",
    )
    parser.add_argument(
        "--decode", metavar="DOCUMENT", help="print the program a rendered document embeds; write nothing"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)  # --help exits here, writing nothing
    if args.decode:
        sys.stdout.write(embedded_program(Path(args.decode)))
        return 0
    check_entries(tuple(sorted(installer.embedded_sources().items())))
    for document in DOCUMENTS:
        document_path(document).write_text(render(document))
        print(f"wrote {document_path(document).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
