"""The documents as SSM sees them, and parameters that try to reach a shell."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from rotation.build.ssm_documents import DOCUMENTS, SCRIPT, document_path, header, render, script_lines
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
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:a b",
    ],
    "VersionStage": ["AWSCURRENT;id", "$(id)", "AWSCURRENT\n"],
    "CertificateFile": ["/etc/ssl/../shadow", "relative/path.pem", "/tmp/x;id", "/tmp/$(id)", "/tmp/`id`"],
    "KeyFile": ["/etc/ssl/private/../../x", "/tmp/a b"],
    "HttpsPort": ["443;id", "0", "-1"],
    "ServiceName": ["nginx", "apache2;id"],
    "ReloadMode": ["stop", "graceful;id"],
}
CASES = [(name, value) for name, values in INJECTIONS.items() for value in values]
FLAGS = {p.name: p.flag for p in DOCUMENTS[0].parameters}


def test_documents_are_committed_as_rendered_from_the_script() -> None:
    for document in DOCUMENTS:
        assert document_path(document).read_text() == render(document), "run: python -m rotation.build.ssm_documents"


def test_documents_carry_the_script_unchanged_and_have_the_fields_ssm_requires() -> None:
    for document in DOCUMENTS:
        loaded = yaml.safe_load(document_path(document).read_text())
        assert loaded["schemaVersion"] == "2.2" and loaded["description"]
        (step,) = loaded["mainSteps"]
        assert step["action"] == "aws:runShellScript" and step["name"]
        commands = step["inputs"]["runCommand"]
        assert commands[: len(header(document))] == header(document)
        assert "\n".join(commands[len(header(document)) :]) + "\n" == SCRIPT.read_text()
        for name, spec in loaded["parameters"].items():
            assert spec["type"] == "String" and spec["description"]
            assert "allowedPattern" in spec, name  # every parameter reaches the shell
            assert spec["allowedPattern"].startswith("^") and spec["allowedPattern"].endswith("$")
            assert "'" not in spec["allowedPattern"]  # values are single-quoted into the script
            placeholder = f"'{{{{ {name} }}}}'"
            assert placeholder in commands[1]


def test_the_script_checks_the_same_patterns_as_the_documents() -> None:
    in_script = dict(re.findall(r"^RE_([A-Z_]+)='([^']*)'$", SCRIPT.read_text(), re.MULTILINE))
    declared = {p.name: p.pattern for d in DOCUMENTS for p in d.parameters if p.pattern}
    by_script_name = {
        "SecretArn": "SECRET_ARN",
        "VersionStage": "STAGE",
        "CertificateFile": "PATH",
        "KeyFile": "PATH",
        "ChainFile": "PATH",
        "ApacheConfigFile": "PATH",
        "HttpsPort": "PORT",
        "ServiceName": "SERVICE",
        "ReloadMode": "RELOAD",
    }
    for name, pattern in declared.items():
        assert in_script[by_script_name[name]] == pattern, name
    assert "{{" not in "".join(script_lines())


def test_shellcheck_passes() -> None:
    require(None if shutil.which("shellcheck") else "shellcheck is not installed (apt-get install -y shellcheck)")
    result = subprocess.run(["shellcheck", "-S", "style", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(("name", "value"), CASES, ids=[f"{n}={v!r}" for n, v in CASES])
def test_the_runner_refuses_what_ssm_refuses(name: str, value: str) -> None:
    document = yaml.safe_load(INSTALL.read_text())
    with pytest.raises(DocumentParameterError, match=name):
        resolve_parameters(document, {"SecretArn": ARN, name: value})


@pytest.mark.parametrize(("name", "value"), CASES, ids=[f"{n}={v!r}" for n, v in CASES])
def test_the_script_alone_refuses_them_too(tmp_path: Path, name: str, value: str) -> None:
    marker = Path("/tmp/certrotate-pwned")
    marker.unlink(missing_ok=True)
    arguments = {"--secret-arn": ARN, FLAGS[name]: value}
    argv = [item for pair in arguments.items() for item in pair]
    result = subprocess.run(
        ["bash", str(SCRIPT), *argv],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"]},
        cwd=tmp_path,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert "not allowed" in result.stderr
    assert not marker.exists() and list(tmp_path.iterdir()) == []


def test_the_runner_checks_names_requirements_and_values() -> None:
    document = yaml.safe_load(INSTALL.read_text())
    with pytest.raises(DocumentParameterError, match="unknown parameter"):
        resolve_parameters(document, {"SecretArn": ARN, "Command": "id"})
    with pytest.raises(DocumentParameterError, match="SecretArn is required"):
        resolve_parameters(document, {})
    with pytest.raises(DocumentParameterError, match="must be a string"):
        resolve_parameters(document, {"SecretArn": [ARN]})
    values = resolve_parameters(document, {"SecretArn": ARN})
    assert values["VersionStage"] == "AWSCURRENT" and values["ReloadMode"] == "graceful" and values["KeyFile"] == ""


def test_a_refused_parameter_runs_nothing(tmp_path: Path) -> None:
    with pytest.raises(DocumentParameterError):
        run_document(INSTALL, {"SecretArn": f"{ARN};touch {tmp_path}/ran"})
    assert not (tmp_path / "ran").exists()
