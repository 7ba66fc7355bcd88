"""The documents as SSM sees them, and parameters that try to reach a shell or the program."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from certrotate_installer import host_file

from rotation.build.installer import (
    closure,
    embedded_modules,
    embedded_sources,
    module_files,
    same_code,
    same_tree,
    without_comments,
    without_docstrings,
)
from rotation.build.ssm_documents import (
    DOCUMENTS,
    HEREDOC_END,
    INSTALLER,
    REGISTRY,
    Document,
    document_path,
    embedded_program,
    entry_modules,
    launcher,
    program_text,
    render,
)
from rotation.emulation.ssm_runner import DocumentParameterError, resolve_parameters, run_document
from tests.integration.conftest import require

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:certs/web-AbCdEf"
INSTALL = document_path(DOCUMENTS[0])

INJECTIONS = {
    "SecretArn": [
        f"{ARN};touch /tmp/certrotate-pwned",
        "$(id)",
        f"{ARN}`id`",
        f"{ARN}\ntouch /tmp/x",
        f"{ARN}' && id && '",
        f'{ARN}" && id && "',
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:a b",
    ],
    "VersionStage": ["AWSCURRENT;id", "$(id)", "AWSCURRENT\n", 'AWSCURRENT"'],
    "CertificateFile": ["/etc/ssl/../shadow", "relative/path.pem", "/tmp/x;id", "/tmp/$(id)", "/tmp/`id`", '/tmp/"x'],
    "KeyFile": ["/etc/ssl/private/../../x", "/tmp/a b", "/tmp/a\\b"],
    "HttpsPort": ["443;id", "0", "-1"],
    "ServiceName": ["lighttpd", "apache2;id"],
    "Server": ["lighttpd", "nginx;id", "Apache", "$(id)"],
    "ReloadMode": ["stop", "graceful;id"],
}
CASES = [(name, value) for name, values in INJECTIONS.items() for value in values]
# Characters a double-quoted sh word interprets: AWS's fallback for old agents puts the value there.
SHELL_ACTIVE = '"$`\\\n\r'
VALID = {
    "SecretArn": ARN,
    "VersionStage": "AWSCURRENT",
    "CertificateFile": "/etc/ssl/certs/web.pem",
    "KeyFile": "/etc/ssl/private/web.key",
    "ChainFile": "/etc/ssl/certs/web-chain.pem",
    "ServiceName": "httpd",
    "Server": "haproxy",
    "HttpsPort": "8443",
    "ReloadMode": "graceful",
}


def test_documents_are_committed_as_rendered_from_the_program() -> None:
    for document in DOCUMENTS:
        assert document_path(document).read_text() == render(document), "run: python -m rotation.build.ssm_documents"


def test_documents_carry_the_program_unchanged_and_have_the_fields_ssm_requires() -> None:
    for document in DOCUMENTS:
        text = document_path(document).read_text()
        assert len(text.encode()) < 56 * 1024  # SSM's 64 KB quota; test_document_budget counts the values too
        loaded = yaml.safe_load(text)
        assert loaded["schemaVersion"] == "2.2" and loaded["description"]
        (step,) = loaded["mainSteps"]
        assert step["action"] == "aws:runShellScript" and step["name"]
        commands = step["inputs"]["runCommand"]
        assert commands[: len(launcher(document))] == launcher(document) and commands[-1] == HEREDOC_END
        assert embedded_program(document_path(document)) == program_text(document)
        assert set(loaded["parameters"]) == {
            p.name for p in INSTALLER.document_parameters(INSTALLER.Action(document.action), REGISTRY)
        }
        for name, spec in loaded["parameters"].items():
            assert spec["type"] == "String" and spec["description"]
            assert spec["interpolationType"] == "ENV_VAR"  # the value reaches the program as data
            assert spec["allowedPattern"].startswith("^") and spec["allowedPattern"].endswith("$")
            fallback = f'if [ -z "${{SSM_{name}+x}}" ]; then export SSM_{name}="{{{{ {name} }}}}"; fi'
            assert fallback in commands  # AWS's documented fallback for agents before 3.3.2746.0
        placeholders = re.findall(r"\{\{\s*(\w+)\s*\}\}", "\n".join(commands))
        assert sorted(placeholders) == sorted(loaded["parameters"])  # only inside the fallback lines


def test_every_embedded_module_is_its_file_less_its_comments_with_the_same_code_at_the_same_places() -> None:
    """The decoded program is the document's build, and each module it carries is the package's file
    with its comments cut and its docstrings' text blanked, nothing else: the same lines, the same code
    down to each node's line and column."""
    files = {name: path.read_text(encoding="utf-8") for name, path in module_files()}
    sources = tuple(sorted(embedded_sources().items()))
    for document in DOCUMENTS:
        program = embedded_program(document_path(document))
        assert program.encode("utf-8") == program_text(document).encode("utf-8")
        embedded = embedded_modules(program)
        assert list(embedded) == sorted(closure(sources, entry_modules(document)))  # its modules, in name order
        for name, source in files.items():
            if name not in embedded:
                continue
            assert embedded[name] == without_docstrings(without_comments(source))
            assert embedded[name].count("\n") == source.count("\n")  # a traceback's line is the file's line
            assert same_code(embedded[name], source), name


def test_cutting_comments_keeps_strings_that_hold_a_hash_and_changes_no_code() -> None:
    source = 'x = "a # b"  # a comment\n# only a comment\ny = 1\n'
    assert without_comments(source) == 'x = "a # b"\n\ny = 1\n'
    assert same_tree(source, without_comments(source))
    assert not same_tree("x = 1\n", "\nx = 1\n")  # the check sees a moved line


def test_blanking_docstrings_keeps_every_line_and_every_other_string() -> None:
    source = (
        '"""Module.\n\nMore."""\nclass A:\n    r"""One line."""\n'
        '    def f(self):\n        """Two\n        lines."""\n        return "kept"\n'
    )
    blanked = without_docstrings(source)
    assert blanked == ('"""\n\n"""\nclass A:\n    """"""\n    def f(self):\n        """\n"""\n        return "kept"\n')
    assert same_code(source, blanked)
    assert not same_tree(source, blanked)  # the text did change
    assert not same_code(source, blanked.replace('"kept"', '"lost"'))  # any other string is code


def test_no_document_offers_an_apache_config_to_the_sender() -> None:
    for document in DOCUMENTS:
        parameters = yaml.safe_load(document_path(document).read_text())["parameters"]
        assert "ApacheConfigFile" not in parameters
        assert not [name for name in parameters if "Config" in name or "Socket" in name]  # no server's either


@pytest.mark.parametrize("name", list(VALID))
def test_no_pattern_admits_a_character_the_fallback_quotes_would_interpret(name: str) -> None:
    pattern = {p.name: p.pattern for p in INSTALLER.document_parameters(INSTALLER.Action.INSTALL, REGISTRY)}[name]
    valid = VALID[name]
    assert re.fullmatch(pattern, valid)
    for character in SHELL_ACTIVE + "'":
        for position in range(len(valid) + 1):
            assert re.fullmatch(pattern, valid[:position] + character + valid[position:]) is None, (name, character)


def test_the_launcher_passes_shellcheck_as_posix_sh(tmp_path: Path) -> None:
    require(None if shutil.which("shellcheck") else "shellcheck is not installed (apt-get install -y shellcheck)")
    for document in DOCUMENTS:
        script = tmp_path / f"{document.name}.sh"
        script.write_text("\n".join([*launcher(document), "AAAA", HEREDOC_END]) + "\n")
        result = subprocess.run(
            ["shellcheck", "-s", "sh", "-S", "style", str(script)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(("name", "value"), CASES, ids=[f"{n}={v!r}" for n, v in CASES])
def test_the_runner_refuses_what_ssm_refuses(name: str, value: str) -> None:
    document = yaml.safe_load(INSTALL.read_text())
    with pytest.raises(DocumentParameterError, match=name):
        resolve_parameters(document, {"SecretArn": ARN, name: value})


@pytest.mark.parametrize(("name", "value"), CASES, ids=[f"{n}={v!r}" for n, v in CASES])
def test_the_program_alone_refuses_them_too(tmp_path: Path, name: str, value: str) -> None:
    """The second wall: the program checks SSM_<Name> against the same patterns, before anything."""
    marker = Path("/tmp/certrotate-pwned")
    marker.unlink(missing_ok=True)
    result = subprocess.run(
        [sys.executable, "-I", "-", "install"],  # the program on stdin, as the launcher feeds it
        input=program_text(DOCUMENTS[0]),
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"], "SSM_SecretArn": ARN, f"SSM_{name}": value},
        cwd=tmp_path,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert "not allowed" in result.stderr and name in result.stderr
    assert not marker.exists() and list(tmp_path.iterdir()) == []


def test_the_runner_checks_names_requirements_and_values() -> None:
    document = yaml.safe_load(INSTALL.read_text())
    with pytest.raises(DocumentParameterError, match="unknown parameter"):
        resolve_parameters(document, {"SecretArn": ARN, "Command": "id"})
    with pytest.raises(DocumentParameterError, match="unknown parameter"):
        resolve_parameters(document, {"SecretArn": ARN, "ApacheConfigFile": "/tmp/evil.conf"})
    with pytest.raises(DocumentParameterError, match="SecretArn is required"):
        resolve_parameters(document, {})
    with pytest.raises(DocumentParameterError, match="must be a string"):
        resolve_parameters(document, {"SecretArn": [ARN]})
    values = resolve_parameters(document, {"SecretArn": ARN})
    assert values["VersionStage"] == "AWSCURRENT" and values["ReloadMode"] == "graceful" and values["KeyFile"] == ""
    broken = {**document, "parameters": {"X": {"type": "String", "interpolationType": "SHELL"}}}
    with pytest.raises(DocumentParameterError, match="interpolationType"):
        resolve_parameters(broken, {"X": "y"})


def test_a_refused_parameter_runs_nothing(tmp_path: Path) -> None:
    with pytest.raises(DocumentParameterError):
        run_document(INSTALL, {"SecretArn": f"{ARN};touch {tmp_path}/ran"})
    assert not (tmp_path / "ran").exists()


ECHO = {
    "schemaVersion": "2.2",
    "description": "prints its parameter two ways",
    "parameters": {"Message": {"type": "String", "interpolationType": "ENV_VAR", "allowedPattern": '^[^"]*$'}},
    "mainSteps": [
        {
            "action": "aws:runShellScript",
            "name": "echo",
            "inputs": {
                "runCommand": [
                    'if [ -z "${SSM_Message+x}" ]; then export SSM_Message="{{ Message }}"; fi',
                    'printf "%s|%s\\n" "$SSM_Message" "${CAME_FROM_AGENT:-text}"',
                ]
            },
        }
    ],
}


@pytest.mark.parametrize("new_agent", [True, False], ids=["agent-3.3.2746+", "older-agent"])
def test_the_runner_interpolates_as_the_agent_documents(tmp_path: Path, new_agent: bool) -> None:
    """New agents export SSM_<Name>; older ones only substitute {{ }} text, and the fallback fills it."""
    path = tmp_path / "echo.yaml"
    path.write_text(yaml.safe_dump(ECHO))
    result = run_document(path, {"Message": "a b $HOME"}, env_var_interpolation=new_agent)
    assert result.ok, result.stderr
    expanded = "a b $HOME" if new_agent else f"a b {os.environ['HOME']}"  # why every pattern excludes $
    assert result.stdout == f"{expanded}|text\n"


def test_the_host_file_variable_is_the_programs() -> None:
    from rotation.cli.local_apache import INSTALLER_CONFIG_VARIABLE

    assert host_file.HOST_CONFIG_VARIABLE == INSTALLER_CONFIG_VARIABLE
    assert INSTALLER_CONFIG_VARIABLE not in "\n".join(launcher(DOCUMENTS[0]))


OLDEST_PYTHONS = sorted(glob.glob("/root/.pyenv/versions/3.6.*/bin/python3") + glob.glob("/usr/bin/python3.6"))


@pytest.mark.parametrize("python", OLDEST_PYTHONS or ["none"])
def test_the_document_decodes_and_starts_its_program_on_python_3_6(python: str, tmp_path: Path) -> None:
    """The launcher and its Ascii85 + bz2 here-document, run by sh as the agent runs them, on the oldest
    python3 the hosts have (RHEL 8's platform-python is 3.6): the program starts and refuses a bad value."""
    if python == "none":
        pytest.skip("no Python 3.6 on this machine")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(python)
    commands = yaml.safe_load(INSTALL.read_text())["mainSteps"][0]["inputs"]["runCommand"]
    script = tmp_path / "_script.sh"
    script.write_text("\n".join(commands) + "\n")
    result = subprocess.run(
        ["sh", str(script)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "SSM_SecretArn": "not-an-arn"},
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "parameter SecretArn has a value that is not allowed: 'not-an-arn'" in result.stderr


IMPORT_ALL = """
import importlib, importlib.util, sys
spec = importlib.util.spec_from_file_location("installer", sys.argv[1])
program = importlib.util.module_from_spec(spec)
spec.loader.exec_module(program)
program.install_finder()
for name in sorted(program.MODULES):
    importlib.import_module(name)
for name in sys.argv[2:]:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as error:
        print("absent", error.name)
"""
ONLY_TRUST_AND_CRL = ("crl_run", "crl_fetch", "crl_record", "trust_run", "trust_record", "client_ca_check")


@pytest.mark.parametrize("document", DOCUMENTS, ids=[d.name for d in DOCUMENTS])
def test_each_document_embeds_what_its_command_imports_and_install_and_rollback_no_trust_or_crl_run(
    tmp_path: Path, document: Document
) -> None:
    """The decoded program of each document: every import its command's modules make (module level or
    in a function, by the package's own files) is embedded; each embedded module imports for real from
    the program alone; the install and rollback programs hold none of the trust-bundle and CRL runs'
    modules, and importing one there fails (the integration tests run each document's command whole)."""
    program = embedded_program(document_path(document))
    embedded = set(embedded_modules(program))
    package = tuple(sorted(embedded_sources().items()))
    assert closure(package, entry_modules(document)) <= embedded
    assert "certrotate_installer.main" in embedded and "certrotate_installer.host_file" in embedded
    if document.action in ("install", "rollback"):
        assert not {f"certrotate_installer.{name}" for name in ONLY_TRUST_AND_CRL} & embedded
    else:
        assert f"certrotate_installer.{document.action}_run" in embedded
    path = tmp_path / "program.py"
    path.write_text(program)
    probes = [f"certrotate_installer.{name}" for name in ONLY_TRUST_AND_CRL]
    result = subprocess.run(
        [sys.executable, "-I", "-c", IMPORT_ALL, str(path), *probes],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    absent = sorted(line.split()[1] for line in result.stdout.splitlines() if line.startswith("absent "))
    assert absent == sorted(set(probes) - embedded)
    if document.action in ("install", "rollback"):
        assert absent == sorted(probes)
